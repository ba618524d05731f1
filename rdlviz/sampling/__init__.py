"""Temporal heterogeneous subgraph sampling (pipeline step: graph -> mini-batches).

Turns a temporal heterogeneous graph (``HeteroData`` with a ``time`` attribute in unix
seconds on the timed node types) into ``HeteroData`` mini-batches that PyG and
``relbench.modeling`` models consume unchanged, without ``pyg-lib``:

- :class:`NeighborLoader` / :func:`sample`: disjoint temporal neighbour trees, one per
  seed, fan-out per hop -- the fine-tuning sampler (PyG ``NeighborLoader`` semantics).
- :class:`BudgetLoader` / :func:`sample_budget`: a fixed number of nodes per node type
  per hop for the whole batch, time-aware -- the pretraining sampler (``HGTLoader``-like).
- :class:`TemporalCSR`: the per-edge-type, time-sorted adjacency both are built on,
  constructed once per graph and cached.
- :func:`freeze_history`: a view of a graph whose rows after a cutoff are never sampled
  (validation that sees what test sees); :func:`stale_seed_times`: training seeds sampled
  from stale history (training for the test situation).

No sampled node is newer than the seed it belongs to. The per-node work runs in
compiled kernels (:mod:`rdlviz.sampling.kernels`); every batch is a pure function of its
seeds, their times and a 64-bit generator seed, so results do not depend on the number
of threads or worker processes.
"""

from rdlviz.sampling.budget_loader import BudgetLoader, sample_budget
from rdlviz.sampling.csr import TemporalCSR
from rdlviz.sampling.history import freeze_history, stale_seed_times
from rdlviz.sampling.neighbor_loader import NeighborLoader, sample
from rdlviz.sampling.sampler import SampledSubgraph

__all__ = ["NeighborLoader", "BudgetLoader", "TemporalCSR", "sample", "sample_budget", "SampledSubgraph",
           "freeze_history", "stale_seed_times"]
