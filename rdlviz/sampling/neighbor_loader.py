"""Disjoint temporal neighbour sampling: :func:`sample` (one batch) and :class:`NeighborLoader`.

This is the sampler RelBench's models are trained with, reimplemented so it needs no
``pyg-lib``: every seed (a row, with the time at which a prediction is made) grows its
own tree of neighbours, hop by hop, and only sees rows whose time is ``<=`` its seed
time -- the guarantee that a model never looks into the future of the example it is
scoring. The output is the ``HeteroData`` PyG's ``NeighborLoader(disjoint=True,
time_attr=...)`` produces, so ``relbench.modeling``'s encoders and GNNs run on it
unchanged.

Semantics, matching pyg-lib's disjoint sampler: at hop ``h`` each node found at hop
``h - 1`` draws up to ``num_neighbors[h]`` neighbours per edge type (``-1``: all; fewer
available: all of them), uniformly without replacement (``"uniform"``) or the most
recent ones (``"last"``); a node reached twice within one seed's tree appears once
(both edges point to it), while the same row reached from two seeds appears twice, once
in each tree. Within a node type, nodes are ordered seeds first, then by hop, then by
tree; edges by hop.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from torch import Tensor
from torch_geometric.data import HeteroData

from rdlviz.errors import ConfigError
from rdlviz.sampling.batch import to_hetero_data
from rdlviz.sampling.csr import EdgeType, TemporalCSR, resolve_fanouts
from rdlviz.sampling.loader import BaseLoader, SeedPool, parse_input_nodes
from rdlviz.sampling.sampler import (
    CostHint,
    RawSample,
    check_strategy,
    check_threads,
    cost_hint,
    sample_ids,
    sample_raw,
    tree_key,
)

__all__ = ["sample", "NeighborLoader"]

NumNeighbors = Union[List[int], Dict[EdgeType, List[int]]]


def _graph(data_or_csr, time_attr):
    if isinstance(data_or_csr, TemporalCSR):
        return None, data_or_csr
    return data_or_csr, TemporalCSR.from_data(data_or_csr, time_attr)


def sample(
    data_or_csr: Union[HeteroData, TemporalCSR],
    seeds: Union[Tuple[str, Tensor], Dict[str, Tensor]],
    seed_time: Union[Tensor, Dict[str, Tensor], None] = None,
    num_neighbors: NumNeighbors = (),
    *,
    temporal_strategy: str = "uniform",
    time_attr: Optional[str] = "time",
    seed: Optional[int] = None,
    num_threads: int = 1,
) -> HeteroData:
    """Sample one disjoint temporal batch from explicit seeds and seed times.

    Args:
        data_or_csr: the graph (features are gathered) or its :class:`TemporalCSR`
            (structure only: ids, ``batch``, edges).
        seeds: ``(node_type, ids)`` or ``{node_type: ids}`` (``int64`` ids); with a dict,
            batch indices run over the types in the order given.
        seed_time: unix seconds per seed (a tensor, or a dict per type); ``None`` uses
            each seed's own time (no bound for untimed types).
        num_neighbors: fan-out per hop; a list for all edge types or a dict per edge
            type (missing edge types: 0); ``-1`` = all neighbours.
        temporal_strategy: ``"uniform"`` or ``"last"``.
        time_attr: the node time attribute (ignored when a CSR is given, which carries
            its own); ``None`` = no time constraint.
        seed: generator seed (``None``: drawn from torch's global RNG).
        num_threads: threads for this batch; the result does not depend on it.

    Returns:
        A ``HeteroData`` batch (see :mod:`rdlviz.sampling.batch`); seeds are the first
        rows of their type, ``batch`` maps every node to its seed.

    Example::

        b = sample(data, ("drivers", torch.tensor([3, 7])),
                   torch.tensor([t0, t0]), [128, 64], seed=0)
    """
    data, csr = _graph(data_or_csr, time_attr)
    sub = sample_ids(csr, seeds, seed_time, num_neighbors, temporal_strategy=temporal_strategy,
                     seed=seed, num_threads=num_threads)  # fmt: skip
    return to_hetero_data(sub, data)


class NeighborLoader(BaseLoader):
    """Mini-batches of disjoint temporal neighbourhoods (PyG ``NeighborLoader`` subset).

    Takes the arguments RelBench's examples pass to ``torch_geometric.loader.
    NeighborLoader`` and yields the same batches: per node type ``n_id``, ``batch``,
    ``num_sampled_nodes``, every node attribute gathered (``tf``, ``time``, ``x``...);
    per edge type ``edge_index`` (local; row 0 = ``src``, messages flow ``src -> dst``),
    ``e_id``, ``num_sampled_edges``; on the input type ``input_id`` (positions in
    ``input_nodes``), ``seed_time`` and ``batch_size``, the seeds being its first
    ``batch_size`` rows. Sampling is always disjoint.

    Args:
        data: the graph (``relbench.modeling.graph.make_pkey_fkey_graph`` output, with
            ``time`` in unix seconds).
        num_neighbors: fan-out per hop (list) or per edge type (dict; missing: 0).
        input_nodes: a node type, ``(type, ids)``, ``(type, bool mask)``, ``(type, None)``.
        input_time: ``int64 [len(input_nodes)]`` unix seconds, the time of each example;
            default: each node's own time.
        time_attr: node attribute with times (``None``: no time constraint).
        batch_size, shuffle, drop_last: as in ``torch.utils.data.DataLoader``.
        temporal_strategy: ``"uniform"`` or ``"last"``.
        seed: makes every epoch reproducible: batch ``b`` of epoch ``e`` is sampled with
            a generator seeded from ``(seed, e, b)``; ``None``: torch's global RNG.
        num_workers: worker processes that sample the ids (features are then gathered
            and ``transform`` applied in this process); same batches as with 0.
        transform: applied to each batch (e.g. RelBench's ``AttachTargetTransform``).
        num_threads: threads for sampling (same batches for any value); with 2 or more,
            the next batch is sampled in the background while features are gathered,
            and a batch is split across threads, when its estimated sampling time
            makes that pay (``sampler.PARALLEL_MIN_S``; small batches run inline).
        persistent_workers: keep worker processes between epochs.

    ``len(loader)`` is the number of batches per epoch; each pass over the loader is one
    epoch (:meth:`set_epoch` sets it explicitly).
    """

    def __init__(
        self,
        data: HeteroData,
        num_neighbors: NumNeighbors,
        input_nodes: Union[str, Tuple[str, Optional[Tensor]]],
        input_time: Optional[Tensor] = None,
        time_attr: Optional[str] = "time",
        batch_size: int = 1,
        shuffle: bool = False,
        temporal_strategy: str = "uniform",
        seed: Optional[int] = None,
        num_workers: int = 0,
        transform: Optional[Callable[[HeteroData], Any]] = None,
        drop_last: bool = False,
        num_threads: int = 1,
        persistent_workers: bool = False,
    ):
        if not isinstance(data, HeteroData):
            raise ConfigError(f"NeighborLoader needs a HeteroData graph, got {type(data).__name__}")
        self.data = data
        self.csr = TemporalCSR.from_data(data, time_attr)
        self.num_neighbors = num_neighbors
        self.fanouts = resolve_fanouts(self.csr, num_neighbors)
        self.temporal_strategy = temporal_strategy
        self._last = check_strategy(temporal_strategy)
        self.num_threads = check_threads(num_threads)
        seeds, times = parse_input_nodes(self.csr, input_nodes, input_time, allow_many=False)
        self.pool = SeedPool(self.csr, seeds, times)
        self.input_type = self.pool.types[0]
        self._init_loader(batch_size, shuffle, seed, num_workers, transform, drop_last, persistent_workers)

    def sample_raw(self, stype, snode, stau, rng, num_threads: int, alloc=None) -> RawSample:
        return sample_raw(self.csr, self.fanouts, self._last, stype, snode, stau, rng, num_threads, alloc)

    def cost_hint(self) -> CostHint:
        return cost_hint(self.csr, tree_key(self.fanouts, self._last))

    def __repr__(self) -> str:
        return (
            f"NeighborLoader(input_type='{self.input_type}', seeds={len(self.pool)}, "
            f"num_neighbors={self.num_neighbors}, batch_size={self.batch_size}, "
            f"temporal_strategy='{self.temporal_strategy}')"
        )
