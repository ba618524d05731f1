"""rdlviz: relational deep learning you can see.

The pipeline, one call per step::

    db    = rdlviz.load("rel-lahman")              # rdlviz.data
    graph = rdlviz.build_graph(db)                 # rdlviz.graph
    run   = rdlviz.pretrain(graph, steps=500)      # rdlviz.pretrain (uses rdlviz.sampling, rdlviz.nn)
    res   = rdlviz.finetune(db, "player-allstar", backbone=run)   # rdlviz.finetune
    rdlviz.viz.embeddings(run, graph)              # rdlviz.viz

Heavy modules (torch, PyG) are imported on first use, so ``import rdlviz`` and the data
layer stay fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "load": "rdlviz.data.load",
    "describe": "rdlviz.data.describe",
    "from_tables": "rdlviz.data.custom",
    "from_sqlite": "rdlviz.data.custom",
    "from_duckdb": "rdlviz.data.custom",
    "from_csv": "rdlviz.data.custom",
    "entity_task": "rdlviz.data.tasks",
    "link_task": "rdlviz.data.tasks",
    "build_graph": "rdlviz.graph.build",
    "Graph": "rdlviz.graph.build",
    "pretrain": "rdlviz.pretrain.loop",
    "PretrainRun": "rdlviz.pretrain.loop",
    "load_backbone": "rdlviz.pretrain.checkpoint",
    "finetune": "rdlviz.finetune.loop",
}
_SUBMODULES = {"data", "graph", "sampling", "nn", "pretrain", "finetune", "viz", "errors"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"rdlviz.{name}")
    raise AttributeError(f"module 'rdlviz' has no attribute {name!r}")


def __dir__():
    return __all__
