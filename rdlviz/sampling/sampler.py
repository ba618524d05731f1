"""Sampling one batch: seeds and seed times in, sampled node ids and local edges out.

This is the layer between the compiled kernels and the loaders. :func:`sample_ids`
runs the disjoint temporal neighbour sampler (optionally on several threads, one
contiguous chunk of seed trees per thread, each thread with its own scratch memory) and
:func:`sample_budget_ids` the budget sampler; both return a :class:`SampledSubgraph`
of ``int64`` tensors with no features attached. :mod:`rdlviz.sampling.batch` turns one
into a :class:`~torch_geometric.data.HeteroData` batch.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from rdlviz.errors import ConfigError
from rdlviz.sampling import kernels
from rdlviz.sampling.csr import TIME_MAX, EdgeType, TemporalCSR, _check_list, hops_matrix, resolve_fanouts

__all__ = ["SampledSubgraph", "RawSample", "sample_ids", "sample_budget_ids", "normalize_seeds", "PARALLEL_MIN_S"]

SeedsLike = Union[Tuple[str, Tensor], Dict[str, Tensor]]


@dataclass
class SampledSubgraph:
    """Ids of one sampled batch, in PyG's disjoint-sampler conventions.

    For every node type ``t``: ``n_id[t]`` ``int64 [N_t]`` global ids, the seeds of
    type ``t`` first, then hop by hop; ``batch[t]`` ``int64 [N_t]`` the seed (batch
    index ``0 .. B-1``, counted across seed types in the order given) each node
    belongs to; ``num_sampled_nodes[t]``: ``L + 1`` counts (seeds, hop 1, ..., hop L).

    For every edge type ``(src, rel, dst)``: ``edge_index[et]`` ``int64 [2, M]`` local
    indices (row 0 into ``n_id[src]``, row 1 into ``n_id[dst]``; messages flow
    ``src -> dst``), grouped by hop; ``e_id[et]`` ``int64 [M]`` columns of the graph's
    ``edge_index``; ``num_sampled_edges[et]``: ``L`` counts.

    ``seed_types`` lists ``(type, count)`` in batch-index order; ``seed_time``
    ``int64 [B]`` is the time bound of each seed (unix seconds, ``int64`` max where
    unbounded); ``time_known[i]`` says whether seed type ``i`` has real seed times
    (given by the caller or the seeds' own times) rather than "unbounded".
    """

    n_id: Dict[str, Tensor]
    batch: Dict[str, Tensor]
    num_sampled_nodes: Dict[str, List[int]]
    edge_index: Dict[EdgeType, Tensor]
    e_id: Dict[EdgeType, Tensor]
    num_sampled_edges: Dict[EdgeType, List[int]]
    seed_types: List[Tuple[str, int]]
    seed_time: Tensor
    time_known: List[bool]

    @property
    def num_nodes(self) -> int:
        """Total sampled nodes over all types."""
        return int(sum(v.numel() for v in self.n_id.values()))

    @property
    def num_edges(self) -> int:
        """Total sampled edges over all types."""
        return int(sum(v.numel() for v in self.e_id.values()))


@dataclass
class RawSample:
    """One batch's sampled ids in a single flat block, before they are split per type.

    This is the compact form in which worker processes hand a batch over (one ``int64``
    array and two small count matrices, nothing per type): ``block`` ``int64
    [2 N + 3 M]`` holds ``n_id [N] | batch [N] | edge_index [2 M] | e_id [M]``, nodes
    grouped by type then hop, edges by edge type then hop, each edge type's
    ``edge_index`` a contiguous ``[2, m_e]`` block. ``node_count`` ``int64 [T, L + 1]``
    and ``edge_count`` ``int64 [E, L]`` are the nodes per (type, hop) and edges per
    (edge type, hop). ``cpu_s`` is the CPU time the kernels spent on it (all threads).
    """

    block: np.ndarray
    node_count: np.ndarray
    edge_count: np.ndarray
    cpu_s: float = 0.0

    @property
    def sizes(self) -> Tuple[int, int]:
        """``(N, M)``: sampled nodes and edges."""
        return int(self.node_count.sum()), int(self.edge_count.sum())


def block_size(num_nodes: int, num_edges: int) -> int:
    """Length of a :class:`RawSample` block with ``num_nodes`` nodes and ``num_edges`` edges."""
    return 2 * num_nodes + 3 * num_edges


# -- when parallel work pays -----------------------------------------------------------

# Handing work to another thread costs a fixed amount however small the work: waking a
# pool thread, taking the GIL back and forth, a second scratch set and scatter call --
# about 0.1 ms per hand-off on an idle 2-core EPYC VM, several times that when the other
# core is busy. A pretraining batch (64 seeds, fan-outs [8, 4, 2]) spends only ~0.4 ms
# in the kernels, so splitting it or sampling it on a background thread made 2 threads
# 1.5-3x *slower* than 1. A batch is therefore parallelised (split across threads, or
# prefetched on a background thread by the loaders) only when the kernels are expected
# to spend at least PARALLEL_MIN_S CPU seconds on it; below that it runs inline, exactly
# as with one thread. The estimate is the CPU time measured on the previous batches of
# the same graph and configuration (thread CPU time, so other jobs on the machine do not
# inflate it); the first batch of a configuration always runs inline. The decision never
# changes a batch, only where it is computed. 0 parallelises every batch (the tests use
# it to cover both paths), ``inf`` none.
PARALLEL_MIN_S = 1.0e-3


class CostHint:
    """Running estimate of what one seed costs for one (graph, sampler configuration).

    ``cpu_per_seed``: kernel CPU seconds per seed; ``ints_per_seed``: :class:`RawSample`
    block length per seed. Both are exponential moving averages over the batches
    sampled so far in this process (``None`` before the first).
    """

    __slots__ = ("cpu_per_seed", "ints_per_seed")

    def __init__(self):
        self.cpu_per_seed: Optional[float] = None
        self.ints_per_seed: Optional[float] = None

    def update(self, raw: RawSample, num_seeds: int) -> None:
        if num_seeds <= 0:
            return
        cpu, ints = raw.cpu_s / num_seeds, raw.block.size / num_seeds
        if self.cpu_per_seed is None:
            self.cpu_per_seed, self.ints_per_seed = cpu, ints
        else:  # halve the weight of older batches (graphs change batch to batch little)
            self.cpu_per_seed = 0.5 * (self.cpu_per_seed + cpu)
            self.ints_per_seed = 0.5 * (self.ints_per_seed + ints)

    def cpu_s(self, num_seeds: int) -> Optional[float]:
        """Estimated kernel CPU seconds for a batch of ``num_seeds`` (``None``: unknown)."""
        return None if self.cpu_per_seed is None else self.cpu_per_seed * num_seeds

    def parallel_pays(self, num_seeds: int) -> bool:
        """Whether a batch of ``num_seeds`` is worth a hand-off to another thread."""
        if PARALLEL_MIN_S <= 0:
            return True
        est = self.cpu_s(num_seeds)
        return est is not None and est >= PARALLEL_MIN_S


_HINTS: "weakref.WeakKeyDictionary[TemporalCSR, Dict[tuple, CostHint]]" = weakref.WeakKeyDictionary()


def cost_hint(csr: TemporalCSR, key: tuple) -> CostHint:
    """The :class:`CostHint` of configuration ``key`` on ``csr`` (created on first use)."""
    per = _HINTS.get(csr)
    if per is None:
        per = _HINTS.setdefault(csr, {})
    hint = per.get(key)
    if hint is None:
        hint = per.setdefault(key, CostHint())
    return hint


def tree_key(fan: np.ndarray, last: bool) -> tuple:
    """Configuration key of the tree sampler (fan-out matrix ``int64 [E, L]``, strategy)."""
    return ("tree", fan.shape, fan.tobytes(), bool(last))


def budget_key(budget: np.ndarray, time_constrained: bool) -> tuple:
    """Configuration key of the budget sampler (``int64 [T, L]`` budget, constraint)."""
    return ("budget", budget.shape, budget.tobytes(), bool(time_constrained))


def num_chunks(hint: CostHint, num_seeds: int, num_threads: int) -> int:
    """Threads to split a batch of ``num_seeds`` trees across: 1 unless each of them
    gets at least ``PARALLEL_MIN_S / 2`` of estimated kernel time and 8 trees."""
    if num_threads < 2 or not hint.parallel_pays(num_seeds):
        return 1
    most = min(num_threads, num_seeds // 8)
    if PARALLEL_MIN_S > 0:
        most = min(most, int(hint.cpu_s(num_seeds) / (PARALLEL_MIN_S / 2)))
    return max(1, most)


# -- seeds ------------------------------------------------------------------------------


def normalize_seeds(
    csr: TemporalCSR, seeds: SeedsLike, seed_time=None
) -> Tuple[List[Tuple[str, int]], np.ndarray, np.ndarray, np.ndarray, List[bool]]:
    """Validate seeds; return ``(seed_types, type_idx [B], node [B], tau [B], known)``.

    ``seed_time`` may be ``None`` (each seed's own time; unbounded for untimed types),
    a tensor (with ``(type, ids)`` seeds) or a dict per type (with dict seeds).
    """
    if isinstance(seeds, tuple) and len(seeds) == 2 and isinstance(seeds[0], str):
        seeds_d = {seeds[0]: seeds[1]}
        if seed_time is not None and not isinstance(seed_time, dict):
            seed_time = {seeds[0]: seed_time}
    elif isinstance(seeds, dict):
        seeds_d = dict(seeds)
        if seed_time is not None and not isinstance(seed_time, dict):
            raise ConfigError("with seeds given per node type, give seed_time per node type too")
    else:
        raise ConfigError(
            "seeds must be (node_type, ids) or {node_type: ids}, got "
            f"{type(seeds).__name__}"
        )
    if not seeds_d:
        raise ConfigError("no seeds given")
    if seed_time is not None:
        extra = set(seed_time) - set(seeds_d)
        if extra:
            raise ConfigError(f"seed_time names node types without seeds: {sorted(extra)}")
    types, idx, nodes, taus, known = [], [], [], [], []
    for t, ids in seeds_d.items():
        ti = csr.type_index(t)
        ids = _as_int64(ids, f"seeds of '{t}'")
        n = int(csr.num_nodes[ti])
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise ConfigError(f"seeds of '{t}' must lie in [0, {n}), got [{ids.min()}, {ids.max()}]")
        if seed_time is not None:
            if t not in seed_time:
                raise ConfigError(f"seed_time is missing node type '{t}'")
            tau = _as_int64(seed_time[t], f"seed_time of '{t}'")
            if tau.shape != ids.shape:
                raise ConfigError(
                    f"seed_time of '{t}' has {tau.size} entries for {ids.size} seeds"
                )
        elif csr.node_time[ti] is not None:
            tau = csr.node_time[ti][ids]
        else:
            tau = np.full(ids.size, TIME_MAX, dtype=np.int64)
        types.append((t, int(ids.size)))
        known.append(seed_time is not None or csr.node_time[ti] is not None)
        idx.append(np.full(ids.size, ti, dtype=np.int64))
        nodes.append(ids)
        taus.append(tau)
    return (
        types,
        np.concatenate(idx),
        np.ascontiguousarray(np.concatenate(nodes)),
        np.ascontiguousarray(np.concatenate(taus)),
        known,
    )


def _as_int64(x, what: str) -> np.ndarray:
    if isinstance(x, Tensor):
        if x.dtype.is_floating_point or x.dtype == torch.bool:
            raise ConfigError(f"{what} must be integers, got dtype {x.dtype}")
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ConfigError(f"{what} must be 1-D, got shape {tuple(arr.shape)}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"{what} must be integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def derive_seed(*parts: int) -> np.uint64:
    """Hash integers into one 64-bit generator seed (splitmix64 chain).

    Loaders derive each batch's seed from ``(seed, epoch, batch index)`` this way, so a
    batch is the same whichever process or thread samples it and in whatever order."""
    mask = (1 << 64) - 1
    h = 0x243F6A8885A308D3
    for x in parts:
        h = (h ^ (int(x) & mask)) & mask
        h = (h + 0x9E3779B97F4A7C15) & mask
        z = h
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        h = z ^ (z >> 31)
    return np.uint64(h)


def draw_seed(seed: Optional[int]) -> np.uint64:
    """A 64-bit generator seed: ``seed`` itself, or one drawn from torch's global RNG."""
    if seed is None:
        return np.uint64(int(torch.randint(0, 2**62, ())))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an int or None, got {seed!r}")
    return np.uint64(int(seed) % 2**64)


def check_strategy(temporal_strategy: str) -> bool:
    """Validate ``temporal_strategy``; ``True`` for ``"last"``."""
    if temporal_strategy not in ("uniform", "last"):
        raise ConfigError(f"temporal_strategy must be 'uniform' or 'last', got {temporal_strategy!r}")
    return temporal_strategy == "last"


def check_threads(num_threads) -> int:
    """Validate ``num_threads`` (an int >= 1)."""
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ConfigError(f"num_threads must be an int >= 1, got {num_threads!r}")
    return int(num_threads)


# -- threads ----------------------------------------------------------------------------

_POOL: Optional[ThreadPoolExecutor] = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="rdlviz-sample"
            )
        return _POOL


def _after_fork() -> None:  # a forked worker must not inherit the parent's thread pool
    global _POOL
    _POOL = None


os.register_at_fork(after_in_child=_after_fork)


# -- neighbour sampling ----------------------------------------------------------------


def sample_ids(
    csr: TemporalCSR,
    seeds: SeedsLike,
    seed_time=None,
    num_neighbors=(),
    *,
    temporal_strategy: str = "uniform",
    seed: Optional[int] = None,
    num_threads: int = 1,
) -> SampledSubgraph:
    """Sample disjoint temporal neighbourhood trees, one per seed (ids only).

    Args:
        csr: the graph's :class:`TemporalCSR` (``TemporalCSR.from_data(data)``).
        seeds: ``(node_type, ids)`` or ``{node_type: ids}``; ids ``int64 [B_t]``.
        seed_time: unix seconds per seed (tensor, or dict per type); ``None`` = each
            seed's own time (unbounded for untimed seed types).
        num_neighbors: fan-out per hop, a list for every edge type or a dict per edge
            type (missing edge types: 0); ``-1`` = all neighbours.
        temporal_strategy: ``"uniform"`` (without replacement) or ``"last"`` (the most
            recent neighbours; untimed neighbour types fall back to uniform, as in PyG).
        seed: generator seed; ``None`` draws one from torch's global RNG.
        num_threads: threads sharing the batch's trees; the result does not depend on it.

    Returns:
        A :class:`SampledSubgraph`. A neighbour is admitted only if its time is
        ``<=`` its own tree's seed time (node types without time: always).
    """
    last = check_strategy(temporal_strategy)
    threads = check_threads(num_threads)
    fan = resolve_fanouts(csr, num_neighbors)
    types, stype, snode, stau, known = normalize_seeds(csr, seeds, seed_time)
    return _sample_resolved(csr, fan, last, types, stype, snode, stau, known, draw_seed(seed), threads)


Alloc = Callable[[int], np.ndarray]


def _sample_resolved(csr, fan, last, types, stype, snode, stau, known, rng, num_threads) -> SampledSubgraph:
    """:func:`sample_raw`, then split per type into a :class:`SampledSubgraph`."""
    raw = sample_raw(csr, fan, last, stype, snode, stau, rng, num_threads)
    return raw_to_subgraph(csr, raw, types, stau, known)


def sample_raw(csr, fan, last, stype, snode, stau, rng, num_threads, alloc: Optional[Alloc] = None) -> RawSample:
    """Sample the trees of all seeds and assemble them into one :class:`RawSample`.

    Seeds are ``stype``/``snode``/``stau`` ``int64 [B]``; ``fan`` ``int64 [E, L]``.
    ``alloc(n)`` returns the ``int64 [n]`` array the block is written to (default: a
    fresh array; worker processes pass a slot of their shared-memory ring).

    The batch is split into ``k`` contiguous chunks of trees, ``k`` from
    :func:`num_chunks` (1 for small batches: see :data:`PARALLEL_MIN_S`). Two phases:
    (1) chunk ``c`` is sampled into its own scratch buffers, counting nodes per (type,
    hop) and edges per (edge type, hop); (2) once the offsets of every chunk in every bin
    are known, each chunk is written into disjoint ranges of the output. The calling
    thread does chunk 0 itself and pool threads the others. The result is identical for
    any ``k`` (each tree has its own generator stream).
    """
    B = snode.size
    L = fan.shape[1]
    T, E = len(csr.node_types), len(csr.edge_types)
    hint = cost_hint(csr, tree_key(fan, last))
    k = num_chunks(hint, B, num_threads)
    bounds = np.linspace(0, B, k + 1).astype(np.int64)
    scratch = [csr.acquire() for _ in range(k)]
    try:
        args = [(csr, fan, last, stype, snode, stau, rng, int(bounds[c]), int(bounds[c + 1]), scratch[c]) for c in range(k)]
        chunks = _run_chunks(_sample_chunk, args)
        ncount = np.stack([c[0] for c in chunks])  # [k, T * H]
        ecount = np.stack([c[1] for c in chunks])  # [k, E * L]
        cpu = sum(c[2] for c in chunks)
        ntot, etot = ncount.sum(0), ecount.sum(0)
        nbin = np.zeros(ntot.size + 1, np.int64)
        np.cumsum(ntot, out=nbin[1:])
        ebin = np.zeros(etot.size + 1, np.int64)
        np.cumsum(etot, out=ebin[1:])
        # chunk c starts, in each bin, after the bin's start and chunks 0 .. c-1
        nstart = nbin[:-1] + np.cumsum(ncount, 0) - ncount
        estart = ebin[:-1] + np.cumsum(ecount, 0) - ecount
        type_base = np.ascontiguousarray(nbin[: T * (L + 1) : L + 1])
        ebase = np.ascontiguousarray(ebin[::L]) if L else np.zeros(E + 1, np.int64)
        N, M = int(nbin[-1]), int(ebin[-1])
        block = (alloc or _empty)(block_size(N, M))
        out = _split_block(block, N, M)
        sargs = [(scratch[c], L, nstart[c].copy(), type_base, estart[c].copy(), ebase, out) for c in range(k)]
        cpu += sum(_run_chunks(_scatter_chunk, sargs))
    finally:
        for sc in scratch:
            csr.release(sc)
    raw = RawSample(block, ntot.reshape(T, L + 1), etot.reshape(E, L), cpu)
    hint.update(raw, B)
    return raw


def _run_chunks(fn, args: list) -> list:
    """``[fn(*a) for a in args]``, ``args[0]`` on this thread and the rest on the pool
    (this thread would otherwise sit idle waiting, and one hand-off fewer is spent)."""
    if len(args) == 1:
        return [fn(*args[0])]
    futs = [_pool().submit(fn, *a) for a in args[1:]]
    first = fn(*args[0])
    return [first] + [f.result() for f in futs]


def _empty(n: int) -> np.ndarray:
    return np.empty(n, np.int64)


def _split_block(block: np.ndarray, N: int, M: int):
    """Views ``(n_id [N], batch [N], ei [2M], e_id [M])`` of a :class:`RawSample` block."""
    return block[:N], block[N : 2 * N], block[2 * N : 2 * N + 2 * M], block[2 * N + 2 * M : 2 * N + 3 * M]


def _sample_chunk(csr, fan, last, stype, snode, stau, rng, t0, t1, sc):
    """Run the tree kernel on trees ``t0 .. t1 - 1`` with scratch ``sc``, growing its
    buffers whenever the kernel reports them full; returns the (type, hop) and
    (edge type, hop) counts and this thread's CPU seconds, and leaves the output in
    ``sc.buffers``/``sc.sizes``."""
    c0 = time.thread_time()
    T, E, L = len(csr.node_types), len(csr.edge_types), fan.shape[1]
    if sc.buffers is None:
        est = max(256, (t1 - t0) * 64)
        sc.buffers = (np.empty((2, est), np.int64), np.empty((3, est), np.int64), np.empty(est, np.int64))
    nodes, edges, newpos = sc.buffers
    ncount = np.zeros(T * (L + 1), np.int64)
    ecount = np.zeros(E * L, np.int64)
    t, nn, ne = t0, 0, 0
    while True:
        status, t, nn, ne, sc.counter = kernels.sample_trees(
            stype, snode, stau, t, t1, rng,
            csr.timed, csr.node_offset, csr.edge_src, csr.fptr, csr.flist, csr.foff, csr.fadj, csr.nptr, csr.nlist,
            csr.indptr, csr.indptr_offset, csr.adj,
            fan, last, sc.htab, sc.hshift, sc.mark, sc.picked, sc.counter, nodes, edges, ncount, ecount, nn, ne,
        )  # fmt: skip
        if status == kernels.DONE:
            break
        if status == kernels.FULL_TABLE:
            sc.htab = np.zeros((2 * sc.htab.shape[0], 2), np.int64)
            sc.hshift = np.uint64(sc.hshift - np.uint64(1))
        else:  # double both buffers, keeping what the finished trees wrote
            grown = np.empty((2, 2 * nodes.shape[1]), np.int64)
            grown[:, :nn] = nodes[:, :nn]
            nodes = grown
            grown = np.empty((3, 2 * edges.shape[1]), np.int64)
            grown[:, :ne] = edges[:, :ne]
            edges = grown
    if newpos.size < nn:
        newpos = np.empty(nodes.shape[1], np.int64)
    sc.buffers = (nodes, edges, newpos)
    sc.sizes = (nn, ne)
    return ncount, ecount, time.thread_time() - c0


def _scatter_chunk(sc, L, nstart, type_base, estart, ebase, out) -> float:
    """Write one chunk into the output (see :func:`kernels.scatter`); CPU seconds."""
    c0 = time.thread_time()
    nodes, edges, newpos = sc.buffers
    nn, ne = sc.sizes
    n_id, batch, ei, e_id = out
    kernels.scatter(nodes, nn, edges, ne, L, nstart, type_base, estart, ebase, n_id, batch, ei, e_id, newpos)
    return time.thread_time() - c0


def raw_to_subgraph(csr: TemporalCSR, raw: RawSample, types, stau, known) -> SampledSubgraph:
    """Split a :class:`RawSample` into per-type tensors (views of ``raw.block``).

    ``types``/``stau``/``known`` are the seed types, seed times and known-time flags of
    :func:`normalize_seeds` (or ``SeedPool.select``)."""
    # torch.split makes every per-type view in one call (slicing one by one costs more
    # than the rest of the assembly on small batches).
    N, M = raw.sizes
    n_id, batch, ei, e_id = (torch.from_numpy(x) for x in _split_block(raw.block, N, M))
    counts = raw.node_count.tolist()
    sizes = [sum(c) for c in counts]
    nodes_d = dict(zip(csr.node_types, n_id.split(sizes)))
    batch_d = dict(zip(csr.node_types, batch.split(sizes)))
    nsn = dict(zip(csr.node_types, counts))
    esizes = raw.edge_count.sum(1).tolist()
    eid_d = dict(zip(csr.edge_types, e_id.split(esizes)))
    blocks = ei.split([2 * m for m in esizes])
    ei_d = {et: blk.view(2, m) for et, blk, m in zip(csr.edge_types, blocks, esizes)}
    nse = dict(zip(csr.edge_types, raw.edge_count.tolist()))
    return SampledSubgraph(
        n_id=nodes_d,
        batch=batch_d,
        num_sampled_nodes=nsn,
        edge_index=ei_d,
        e_id=eid_d,
        num_sampled_edges=nse,
        seed_types=types,
        seed_time=torch.from_numpy(stau),
        time_known=known,
    )


# -- budget sampling -------------------------------------------------------------------


def resolve_budget(csr: TemporalCSR, num_samples) -> np.ndarray:
    """``num_samples`` (list for every node type, or dict per type) -> ``int64 [T, L]``.

    Node types missing from a dict get 0 (never admitted beyond the seeds)."""
    T = len(csr.node_types)
    if isinstance(num_samples, dict):
        lists = {}
        for k, v in num_samples.items():
            csr.type_index(k)
            lists[k] = _check_list(v, "num_samples")
        out = hops_matrix(csr.node_types, lists, "num_samples", "node type")
        if out.shape[1] == 0:
            raise ConfigError("num_samples must list at least one hop")
        return out
    v = _check_list(num_samples, "num_samples")
    return np.tile(np.asarray(v, dtype=np.int64), (T, 1)).reshape(T, len(v))


def sample_budget_ids(
    csr: TemporalCSR,
    seeds: SeedsLike,
    seed_time=None,
    num_samples=(),
    *,
    time_constrained: bool = True,
    seed: Optional[int] = None,
) -> SampledSubgraph:
    """Budget (HGT-style) sampling of one shared subgraph; see :func:`kernels.sample_budget`.

    Args:
        csr: the graph's :class:`TemporalCSR`.
        seeds / seed_time: as in :func:`sample_ids`; several seed types may be mixed.
        num_samples: nodes to admit per node type per hop (list for every type, or dict
            per type; missing types: 0; ``-1``: all candidates).
        time_constrained: admit a node only if its time is ``<=`` the time of the seed
            through which it was reached, and keep only leakage-free edges.
        seed: generator seed (``None``: drawn from torch's global RNG).

    Returns:
        A :class:`SampledSubgraph`; ``batch`` is the index of the seed through which each
        node was first reached (not an exclusive tree: nodes are shared by all seeds).
    """
    budget = resolve_budget(csr, num_samples)
    types, stype, snode, stau, known = normalize_seeds(csr, seeds, seed_time)
    return _budget_resolved(csr, budget, bool(time_constrained), types, stype, snode, stau, known, draw_seed(seed))


def _budget_resolved(csr, budget, time_constrained, types, stype, snode, stau, known, rng) -> SampledSubgraph:
    """:func:`budget_raw`, then split per type into a :class:`SampledSubgraph`."""
    raw = budget_raw(csr, budget, time_constrained, stype, snode, stau, rng)
    return raw_to_subgraph(csr, raw, types, stau, known)


def budget_raw(csr, budget, time_constrained, stype, snode, stau, rng, alloc: Optional[Alloc] = None) -> RawSample:
    """One budget batch as a :class:`RawSample` (one thread; ``alloc`` as in
    :func:`sample_raw`). Seeds ``int64 [B]``, ``budget`` ``int64 [T, L]``."""
    c0 = time.thread_time()
    sc = csr.acquire()
    try:
        total = int(csr.node_offset[-1])
        x = sc.extra
        if not x:
            # The budget kernel has its own slot arrays and counter: its stamps must
            # never collide with those of the tree kernel sharing this scratch set.
            est = max(256, snode.size * 64)
            x.update(
                mslot=np.zeros(total, np.int64), cslot=np.zeros(total, np.int64), counter=1,
                nodes=np.empty((2, est), np.int64), ntau=np.empty(est, np.int64),
                edges=np.empty((3, est), np.int64), cand=np.empty((4, est), np.int64),
                cand_w=np.empty(est, np.float64), cand_alive=np.empty(est, np.uint8),
            )  # fmt: skip
        while True:
            status, nn, ne, x["counter"] = kernels.sample_budget(
                stype, snode, stau, rng,
                csr.timed, csr.node_offset, csr.edge_src, csr.edge_dst, csr.etype_ptr, csr.etype_list,
                csr.indptr, csr.indptr_offset, csr.adj,
                csr.inverse_functional, csr.ofptr, csr.oflist, csr.ofoff, csr.ofadj,
                budget, time_constrained,
                x["mslot"], x["cslot"], x["counter"], x["nodes"], x["ntau"], x["edges"],
                x["cand"], x["cand_w"], x["cand_alive"],
            )  # fmt: skip
            if status == kernels.DONE:
                break
            # Some buffer was too small: double them all and sample the batch again
            # (same generator seed, same result).
            for k in ("nodes", "ntau", "edges", "cand", "cand_w", "cand_alive"):
                a = x[k]
                x[k] = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        nodes, edges = x["nodes"], x["edges"]
        T, E, L = len(csr.node_types), len(csr.edge_types), budget.shape[1]
        ncount = np.empty(T * (L + 1), np.int64)
        ecount = np.empty(E * L, np.int64)
        kernels.count_bins(nodes, nn, edges, ne, ncount, ecount, L)
        nbin = np.zeros(ncount.size + 1, np.int64)
        np.cumsum(ncount, out=nbin[1:])
        ebin = np.zeros(ecount.size + 1, np.int64)
        np.cumsum(ecount, out=ebin[1:])
        type_base = np.ascontiguousarray(nbin[: T * (L + 1) : L + 1])
        ebase = np.ascontiguousarray(ebin[::L])
        block = (alloc or _empty)(block_size(nn, ne))
        n_id, batch, ei, e_id = _split_block(block, nn, ne)
        kernels.scatter(nodes, nn, edges, ne, L, nbin[:-1].copy(), type_base, ebin[:-1].copy(), ebase,
                        n_id, batch, ei, e_id, np.empty(nn, np.int64))  # fmt: skip
    finally:
        csr.release(sc)
    raw = RawSample(block, ncount.reshape(T, L + 1), ecount.reshape(E, L), time.thread_time() - c0)
    cost_hint(csr, budget_key(budget, time_constrained)).update(raw, stype.size)
    return raw
