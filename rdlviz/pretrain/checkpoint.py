"""Checkpoints: safetensors weights + a JSON config + the schema they were trained on.

A checkpoint folder holds::

    backbone.safetensors     the backbone's weights
    objectives.safetensors   the pretraining heads (projections, bilinear maps), for resuming
    optimizer.pt             optimiser state, for resuming
    config.json              pretraining config, backbone config, schema, history, progress

The schema (tables, keys, feature columns and their semantic types, category counts,
edge types, text encoder) is what a backbone's weights depend on; :func:`load_backbone` compares it
with the graph it is asked to serve and refuses a mismatch with an error that lists every
difference, instead of failing deep inside ``load_state_dict``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Union

import torch
from safetensors.torch import load_file, save_file
from torch_frame import stype
from torch_frame.data.stats import StatType

from rdlviz.errors import SchemaError

__all__ = ["schema_of", "schema_diff", "save_checkpoint", "read_checkpoint", "load_backbone"]

FORMAT_VERSION = 1


def _graph_parts(graph):
    data = graph.data if hasattr(graph, "data") else graph
    col_stats = getattr(graph, "col_stats", None)
    return data, col_stats


def _encoding_sizes(graph) -> Dict[str, int]:
    """``{"table.column": size}``: category counts and embedding widths, which shape the
    encoder's weights (an embedding table per categorical column)."""
    data, col_stats = _graph_parts(graph)
    sizes: Dict[str, int] = {}
    for t in sorted(data.node_types):
        for st, names in data[t].tf.col_names_dict.items():
            for c in names:
                stats = (col_stats or {}).get(t, {}).get(c, {})
                if st == stype.categorical and StatType.COUNT in stats:
                    sizes[f"{t}.{c}"] = len(stats[StatType.COUNT][0])
                elif st == stype.multicategorical and StatType.MULTI_COUNT in stats:
                    sizes[f"{t}.{c}"] = len(stats[StatType.MULTI_COUNT][0])
                elif st == stype.embedding and StatType.EMB_DIM in stats:
                    sizes[f"{t}.{c}"] = int(stats[StatType.EMB_DIM])
    return sizes


def schema_of(graph) -> Dict[str, Any]:
    """What a backbone's weights depend on, as plain JSON: the graph's
    :meth:`~rdlviz.graph.build.Graph.schema` (tables, keys, features and their semantic
    types, edge types, text encoder) plus the encoding sizes of its columns."""
    return {**graph.schema(), "sizes": _encoding_sizes(graph)}


def schema_diff(saved: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """Human-readable differences between two schemas (empty when they match)."""
    from rdlviz.graph.build import schema_diff as graph_schema_diff

    out = graph_schema_diff(saved, current)
    a, b = saved.get("sizes", {}), current.get("sizes", {})
    for key in sorted(set(a) & set(b)):
        if a[key] != b[key]:
            t, c = key.split(".", 1)
            out.append(f"table '{t}', column '{c}': {a[key]} categories/dims in the checkpoint, "
                       f"{b[key]} in the graph")
    return out


def _owned(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """CPU copies that share no memory: torch_frame's timestamp encoders of different
    tables share one constant buffer, which safetensors refuses to write twice."""
    return {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}


def save_checkpoint(path: Union[str, Path], *, backbone, objectives=None, optimizer=None,
                    config: Dict[str, Any]) -> Path:
    """Write a checkpoint folder (see the module docstring)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file(_owned(backbone.state_dict()), str(path / "backbone.safetensors"))
    if objectives is not None:
        state = _owned(objectives.state_dict())
        if state:
            save_file(state, str(path / "objectives.safetensors"))
    if optimizer is not None:
        torch.save(optimizer.state_dict(), path / "optimizer.pt")
    cfg = dict(config, format_version=FORMAT_VERSION)
    (path / "config.json").write_text(json.dumps(cfg, indent=2, default=str))
    return path


def read_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a checkpoint's ``config.json``, with a clear error when it is not one."""
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.exists() or not (path / "backbone.safetensors").exists():
        raise SchemaError(
            f"{path} is not an rdlviz checkpoint (expected config.json and backbone.safetensors)",
            fix="pass the folder written by run.save(dir)",
        )
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise SchemaError(f"{cfg_path} is not valid JSON ({e})", fix="re-save the checkpoint") from None
    for key in ("schema", "backbone"):
        if key not in cfg:
            raise SchemaError(f"{cfg_path} has no '{key}' entry", fix="re-save the checkpoint")
    return cfg


def load_backbone(path: Union[str, Path], graph, strict_schema: bool = True):
    """Rebuild a pretrained backbone for ``graph`` from a checkpoint folder.

    Raises :class:`~rdlviz.errors.SchemaError` listing every schema difference when the
    graph's tables, columns, category counts or edge types differ from the checkpoint's.

    Example:
        >>> run.save("ckpt")
        >>> backbone = rdlviz.load_backbone("ckpt", graph)
    """
    from rdlviz.nn import Backbone

    path = Path(path)
    cfg = read_checkpoint(path)
    diff = schema_diff(cfg["schema"], schema_of(graph))
    if diff and strict_schema:
        raise SchemaError(
            "the checkpoint was trained on a different schema:\n  - " + "\n  - ".join(diff),
            fix="build the graph with the same tables, columns, semantic types and text "
            "option as for pretraining (config.json 'pretrain' -> 'graph_options')",
        )
    data, col_stats = _graph_parts(graph)
    backbone = Backbone(data, col_stats, **cfg["backbone"])
    state = load_file(str(path / "backbone.safetensors"))
    try:
        backbone.load_state_dict(state)
    except RuntimeError as e:
        raise SchemaError(f"weights do not fit the graph: {str(e).splitlines()[0]}",
                          fix="rebuild the graph with the pretraining options") from None
    return backbone
