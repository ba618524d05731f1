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
import os

__version__ = "0.1.0"


def quick() -> bool:
    """True in small-budget mode (``RDLVIZ_QUICK=1``), which CI uses to run every notebook."""
    return os.environ.get("RDLVIZ_QUICK", "").strip().lower() in ("1", "true", "yes")


def budget(full, quick_value):
    """``quick_value`` in small-budget mode (see :func:`quick`), else ``full``.

    Notebooks write their budgets this way, e.g. ``steps = rdlviz.budget(2000, 40)``, so
    one switch shrinks them for CI and the same notebook runs for real otherwise.
    """
    return quick_value if quick() else full

# public name -> module that defines it
_LAZY = {
    "load": "rdlviz.data.load",
    "describe": "rdlviz.data.describe",
    "drift": "rdlviz.data.drift",
    "from_tables": "rdlviz.data.custom",
    "from_sqlite": "rdlviz.data.custom",
    "from_duckdb": "rdlviz.data.custom",
    "from_csv": "rdlviz.data.custom",
    "entity_task": "rdlviz.data.tasks",
    "link_task": "rdlviz.data.tasks",
    "build_graph": "rdlviz.graph.build",
    "Graph": "rdlviz.graph.build",
    "PretrainRun": "rdlviz.pretrain.run",
    "load_backbone": "rdlviz.pretrain.checkpoint",
    "FinetuneResult": "rdlviz.finetune.result",
}
_SUBMODULES = {"data", "graph", "sampling", "nn", "pretrain", "finetune", "viz", "errors"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES) + ["pretrain", "finetune", "quick", "budget", "__version__"]

# ``rdlviz.pretrain`` / ``rdlviz.finetune`` are both a subpackage and the one-call function
# of that step. Python binds a subpackage as an attribute of its parent when it is first
# imported, which would shadow a lazily provided function; importing the functions here,
# after their packages, makes the names mean the functions for good.
from rdlviz.finetune import finetune  # noqa: E402
from rdlviz.pretrain import pretrain  # noqa: E402


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
