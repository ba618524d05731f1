"""Budget sampling: :func:`sample_budget` (one batch) and :class:`BudgetLoader`.

The pretraining sampler. Where :class:`~rdlviz.sampling.NeighborLoader` grows one tree
per seed with a fan-out per edge, this draws a fixed number of nodes *per node type
per hop* for the whole batch, as PyG's ``HGTLoader`` does (Hu et al., HGT, WWW 2020):
a node's chance grows with the squared sum of ``1 / degree`` over the already sampled
nodes that reach it, so a batch covers every table in a controlled amount. The seeds
may come from several tables at once, each with its own time.

Unlike ``HGTLoader`` it is time-aware by default: a node is admitted only if its time
is ``<=`` the time of the seed through which it was reached, and of the edges between
sampled nodes only those that cannot carry newer information to an older seed are
kept (``v -> u`` needs ``time(v) <= tau(u)`` and ``tau(v) <= tau(u)``, ``tau`` being the
time of a node's seed). ``batch`` therefore means "the seed through which the node was
first reached" -- the subgraph is shared, not a set of disjoint trees.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from torch import Tensor
from torch_geometric.data import HeteroData

from rdlviz.errors import ConfigError
from rdlviz.sampling.batch import to_hetero_data
from rdlviz.sampling.csr import TemporalCSR
from rdlviz.sampling.loader import BaseLoader, SeedPool, parse_input_nodes
from rdlviz.sampling.sampler import (
    CostHint,
    RawSample,
    _budget_resolved,
    budget_key,
    budget_raw,
    check_threads,
    cost_hint,
    draw_seed,
    normalize_seeds,
    resolve_budget,
)

__all__ = ["sample_budget", "BudgetLoader"]

NumSamples = Union[List[int], Dict[str, List[int]]]


def sample_budget(
    data_or_csr: Union[HeteroData, TemporalCSR],
    seeds: Union[Tuple[str, Tensor], Dict[str, Tensor]],
    seed_time: Union[Tensor, Dict[str, Tensor], None] = None,
    num_samples: NumSamples = (),
    *,
    time_constrained: bool = True,
    time_attr: Optional[str] = "time",
    seed: Optional[int] = None,
) -> HeteroData:
    """Sample one budget batch from explicit seeds and seed times.

    Args:
        data_or_csr: the graph (features gathered) or its :class:`TemporalCSR`.
        seeds: ``(node_type, ids)`` or ``{node_type: ids}``.
        seed_time: unix seconds per seed (tensor or dict); ``None``: own times.
        num_samples: nodes admitted per node type per hop (list for every type or dict
            per type; missing types: 0; ``-1``: all candidates).
        time_constrained: see the module docstring; ``False`` gives plain HGT sampling.
        time_attr: node time attribute (ignored for a CSR).
        seed: generator seed (``None``: torch's global RNG).

    Returns:
        A ``HeteroData`` batch with the :class:`NeighborLoader` conventions, except that
        ``batch`` is the seed each node was reached through, edges are induced among the
        sampled nodes (ordered by the later endpoint's hop), and with several seed types
        the graph-level ``seed_time`` lists all seed times in batch-index order.
    """
    if isinstance(data_or_csr, TemporalCSR):
        data, csr = None, data_or_csr
    else:
        data, csr = data_or_csr, TemporalCSR.from_data(data_or_csr, time_attr)
    budget = resolve_budget(csr, num_samples)
    types, stype, snode, stau, known = normalize_seeds(csr, seeds, seed_time)
    sub = _budget_resolved(csr, budget, bool(time_constrained), types, stype, snode, stau, known, draw_seed(seed))
    return to_hetero_data(sub, data)


class BudgetLoader(BaseLoader):
    """Mini-batches of budget-sampled subgraphs (a time-aware ``HGTLoader``).

    Args:
        data: the graph.
        num_samples: nodes per node type per hop (list for all types, or dict per type;
            missing types: 0).
        input_nodes: a node type, ``(type, ids)``, ``(type, mask)``, or
            ``{type: ids or None}`` to draw seeds from several tables; the pool is
            shuffled as a whole, so a batch mixes types.
        input_time: seed times (``int64`` unix seconds; a tensor, or a dict per type);
            default: the seeds' own times.
        time_attr: node attribute with times (``None``: no time).
        time_constrained: admit only nodes not newer than their seed (default ``True``).
        batch_size, shuffle, seed, num_workers, transform, drop_last,
        persistent_workers: as in :class:`~rdlviz.sampling.NeighborLoader`.
        num_threads: with 2 or more, the next batch is sampled in the background while
            the features of the current one are gathered, when its estimated sampling
            time makes that pay (same batches).

    Each seed type of a batch carries ``input_id`` (positions in its input list),
    ``seed_time`` and ``batch_size``; ``batch`` is the index (over all seeds of the batch,
    types in input order) of the seed through which a node was reached.
    """

    def __init__(
        self,
        data: HeteroData,
        num_samples: NumSamples,
        input_nodes: Union[str, Tuple[str, Optional[Tensor]], Dict[str, Optional[Tensor]]],
        input_time: Union[Tensor, Dict[str, Tensor], None] = None,
        time_attr: Optional[str] = "time",
        time_constrained: bool = True,
        batch_size: int = 1,
        shuffle: bool = False,
        seed: Optional[int] = None,
        num_workers: int = 0,
        transform: Optional[Callable[[HeteroData], Any]] = None,
        drop_last: bool = False,
        persistent_workers: bool = False,
        num_threads: int = 1,
    ):
        if not isinstance(data, HeteroData):
            raise ConfigError(f"BudgetLoader needs a HeteroData graph, got {type(data).__name__}")
        self.data = data
        self.csr = TemporalCSR.from_data(data, time_attr)
        self.num_samples = num_samples
        self.budget = resolve_budget(self.csr, num_samples)
        self.time_constrained = bool(time_constrained)
        self.num_threads = check_threads(num_threads)
        seeds, times = parse_input_nodes(self.csr, input_nodes, input_time, allow_many=True)
        self.pool = SeedPool(self.csr, seeds, times)
        self._init_loader(batch_size, shuffle, seed, num_workers, transform, drop_last, persistent_workers)

    def sample_raw(self, stype, snode, stau, rng, num_threads: int, alloc=None) -> RawSample:
        # one batch is one shared subgraph, sampled on one thread
        return budget_raw(self.csr, self.budget, self.time_constrained, stype, snode, stau, rng, alloc)

    def cost_hint(self) -> CostHint:
        return cost_hint(self.csr, budget_key(self.budget, self.time_constrained))

    def __repr__(self) -> str:
        return (
            f"BudgetLoader(input_types={self.pool.types}, seeds={len(self.pool)}, "
            f"num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"time_constrained={self.time_constrained})"
        )
