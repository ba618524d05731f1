"""Assembling a :class:`~torch_geometric.data.HeteroData` batch from sampled ids.

The output mirrors what PyG's ``NeighborLoader`` returns for disjoint temporal
sampling (``torch_geometric.loader.utils.filter_hetero_data`` plus
``NodeLoader.filter_fn``): every node-level attribute of the graph (``tf``, ``x``,
``time``, ...) is gathered at ``n_id``; every edge-level attribute at ``e_id``; other
attributes are carried over by reference; and the sampler's bookkeeping is attached:

- node type ``t``: ``n_id``, ``batch``, ``num_sampled_nodes`` (list, ``L + 1``);
- edge type: ``edge_index`` (local, ``[2, M]``), ``e_id``, ``num_sampled_edges``;
- each seed type: ``input_id`` (positions in the caller's seed list), ``seed_time``
  (unix seconds), ``batch_size``.

When seeds of several node types share one batch, the graph-level ``seed_time`` holds
the time of every seed in batch-index order, so ``seed_time[batch[t]]`` is each node's
seed time whatever its type.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch_frame import TensorFrame
from torch_geometric.data import HeteroData

from rdlviz.sampling.sampler import SampledSubgraph

__all__ = ["to_hetero_data"]


def to_hetero_data(
    sub: SampledSubgraph,
    data: Optional[HeteroData] = None,
    input_id: Optional[Dict[str, Tensor]] = None,
    seed_time: Optional[Dict[str, Tensor]] = None,
) -> HeteroData:
    """Build the batch for ``sub``, gathering features from ``data`` if given.

    Args:
        sub: the sampled ids.
        data: the full graph the ids refer to; ``None`` gives a structure-only batch.
        input_id: per seed type, ``int64 [B_t]`` positions of the seeds in the caller's
            input list (default: ``0 .. B_t - 1``).
        seed_time: per seed type, the seed times to report (default: the times used for
            sampling if the caller gave them or the seed type is timed, else none).
    """
    # Attributes are written straight into each storage's mapping: a fresh storage has
    # no attribute-type cache to invalidate, and PyG's per-attribute __setattr__ path
    # costs more than the gathering itself on small batches.
    out = HeteroData()
    if data is not None:
        out._global_store._mapping.update(data._global_store._mapping)
    node_types = set(data.node_types) if data is not None else ()
    for t, n_id in sub.n_id.items():
        m = out.get_node_store(t)._mapping
        if t in node_types:
            src = data.get_node_store(t)
            idx_np = n_id.numpy()
            for key, value in src._mapping.items():
                if key == "num_nodes":
                    m[key] = n_id.numel()
                elif src.is_node_attr(key):
                    m[key] = _gather(value, n_id, idx_np)
                else:
                    m[key] = value
        m["n_id"] = n_id
        m["batch"] = sub.batch[t]
        m["num_sampled_nodes"] = sub.num_sampled_nodes[t]
    edge_types = set(data.edge_types) if data is not None else ()
    for et, ei in sub.edge_index.items():
        m = out.get_edge_store(*et)._mapping
        e_id = sub.e_id[et]
        if et in edge_types:
            src = data.get_edge_store(*et)
            idx_np = e_id.numpy()
            for key, value in src._mapping.items():
                if key != "edge_index":
                    m[key] = _gather(value, e_id, idx_np) if src.is_edge_attr(key) else value
        m["edge_index"] = ei
        m["e_id"] = e_id
        m["num_sampled_edges"] = sub.num_sampled_edges[et]

    start = 0
    for (t, count), known in zip(sub.seed_types, sub.time_known):
        store = out[t]
        store.input_id = (
            input_id[t] if input_id is not None and t in input_id else torch.arange(count)
        )
        st = None
        if seed_time is not None and t in seed_time:
            st = seed_time[t]
        elif known:
            st = sub.seed_time[start : start + count]
        if st is not None:
            store.seed_time = st
        store.batch_size = count
        start += count
    if len(sub.seed_types) > 1:
        out.seed_time = sub.seed_time
    return out


def _gather(value, index: Tensor, idx_np: np.ndarray):
    """Rows ``index`` of a node/edge attribute (tensor, TensorFrame, array or list)."""
    if isinstance(value, Tensor):
        return _take(value, index, idx_np)
    if isinstance(value, TensorFrame):
        feat_dict = {}
        for st, feat in value.feat_dict.items():
            if isinstance(feat, dict):
                feat_dict[st] = {k: _take(v, index, idx_np) for k, v in feat.items()}
            else:
                feat_dict[st] = _take(feat, index, idx_np)
        y = None if value.y is None else _take(value.y, index, idx_np)
        return TensorFrame(feat_dict, value.col_names_dict, y=y, num_rows=index.numel())
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.take(value, idx_np, axis=0))
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [value[i] for i in idx_np.tolist()]
    return value


def _take(x, index: Tensor, idx_np: np.ndarray):
    """``x[index]`` along dim 0.

    Plain CPU tensors go through ``numpy.take``: single-threaded and, on small gathers,
    faster than torch's parallel indexing, whose thread team stalls when the machine is
    busy. Everything else (nested tensors, GPU, autograd) uses the tensor's own method.
    """
    if (
        type(x) is Tensor
        and x.device.type == "cpu"
        and not x.requires_grad
        and x.dtype in _NUMPY_DTYPES
        and x.dim() >= 1
    ):
        return torch.from_numpy(x.numpy().take(idx_np, axis=0))
    if isinstance(x, Tensor):
        return x.index_select(0, index.to(x.device))
    return x[index]


_NUMPY_DTYPES = {
    torch.float16, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32,
    torch.int64, torch.uint8, torch.bool, torch.complex64, torch.complex128,
}  # fmt: skip

