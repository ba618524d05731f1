"""What every rdlviz loader shares: seed pool, epoch plan, seeding, worker processes.

A loader owns a *pool* of seeds (node type, node id, time bound) and, per epoch, a
*plan*: the list of batches, each a set of pool positions plus a 64-bit generator seed
derived from ``(seed, epoch, batch index)``. Batches are built from the plan alone, so
they are identical whether they are built in this process, on several threads, or in
``num_workers`` worker processes, and in whatever order workers finish; how a batch is
computed (inline, split across threads, prefetched, in a worker) is decided per batch
for speed alone (see ``sampler.PARALLEL_MIN_S``). With
``seed=None`` the epoch's shuffle and base seed come from torch's global generator, so
``torch.manual_seed`` makes a run repeatable, as with PyG's loaders.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from rdlviz.errors import ConfigError
from rdlviz.sampling.batch import to_hetero_data
from rdlviz.sampling.csr import TIME_MAX, TemporalCSR
from rdlviz.sampling.sampler import CostHint, RawSample, _as_int64, derive_seed, raw_to_subgraph

__all__ = ["SeedPool", "BaseLoader", "parse_input_nodes"]

_SHUFFLE = 0x5348554646  # domain tags keep shuffle and sampling streams independent
_SAMPLE = 0x53414D504C


class SeedPool:
    """Seeds of one or more node types, flattened into parallel arrays.

    Attributes: ``types`` (node type names, in input order), ``type_idx``/``node``/
    ``tau`` ``int64 [P]`` (type index in the graph, node id, time bound in unix
    seconds), ``group`` ``int64 [P]`` (index into ``types``), ``offset`` ``int64
    [len(types) + 1]`` (pool range of each type), ``known[i]`` whether type ``i`` has
    real seed times.
    """

    def __init__(self, csr: TemporalCSR, seeds: Dict[str, np.ndarray], times: Dict[str, Optional[np.ndarray]]):
        self.types = list(seeds)
        parts_t, parts_n, parts_tau, parts_g, self.known = [], [], [], [], []
        for g, t in enumerate(self.types):
            ti = csr.type_index(t)
            ids = seeds[t]
            n = int(csr.num_nodes[ti])
            if ids.size and (ids.min() < 0 or ids.max() >= n):
                raise ConfigError(f"input nodes of '{t}' must lie in [0, {n}), got [{ids.min()}, {ids.max()}]")
            tau = times.get(t)
            if tau is not None:
                if tau.shape != ids.shape:
                    raise ConfigError(f"input_time of '{t}' has {tau.size} entries for {ids.size} input nodes")
                self.known.append(True)
            elif csr.node_time[ti] is not None:
                tau = csr.node_time[ti][ids]
                self.known.append(True)
            else:
                tau = np.full(ids.size, TIME_MAX, np.int64)
                self.known.append(False)
            parts_t.append(np.full(ids.size, ti, np.int64))
            parts_n.append(ids)
            parts_tau.append(tau)
            parts_g.append(np.full(ids.size, g, np.int64))
        self.type_idx = np.concatenate(parts_t)
        self.node = np.concatenate(parts_n)
        self.tau = np.concatenate(parts_tau)
        self.group = np.concatenate(parts_g)
        self.offset = np.zeros(len(self.types) + 1, np.int64)
        self.offset[1:] = np.cumsum([p.size for p in parts_n])
        if self.node.size == 0:
            raise ConfigError("there are no input nodes to sample from")

    def __len__(self) -> int:
        return int(self.node.size)

    def select(self, idx: np.ndarray):
        """Seeds at pool positions ``idx``, grouped by type (stable).

        Returns ``(seed_types [(type, count)], type_idx, node, tau, known, input_id)``
        where ``input_id[type]`` are positions in that type's input list.
        """
        if len(self.types) == 1:
            order = idx
        else:
            order = idx[np.argsort(self.group[idx], kind="stable")]
        g = self.group[order]
        seed_types, known, input_id = [], [], {}
        for i, t in enumerate(self.types):
            sel = order[g == i] if len(self.types) > 1 else order
            if sel.size == 0:
                continue
            seed_types.append((t, int(sel.size)))
            known.append(self.known[i])
            input_id[t] = torch.from_numpy(sel - self.offset[i])
        return (
            seed_types,
            np.ascontiguousarray(self.type_idx[order]),
            np.ascontiguousarray(self.node[order]),
            np.ascontiguousarray(self.tau[order]),
            known,
            input_id,
        )


def parse_input_nodes(csr: TemporalCSR, input_nodes, input_time, allow_many: bool):
    """``input_nodes``/``input_time`` in PyG's forms -> ``(seeds, times)`` dicts of arrays.

    ``input_nodes``: a node type (all its nodes), ``(type, None)``, ``(type, ids)``,
    ``(type, bool mask)``, or (when ``allow_many``) ``{type: ids or None}``.
    ``input_time``: ``None``, an integer tensor (one entry per input node), or a dict.
    """
    if isinstance(input_nodes, str) or (
        isinstance(input_nodes, tuple) and len(input_nodes) == 2 and isinstance(input_nodes[0], str)
    ):
        input_nodes = {input_nodes: None} if isinstance(input_nodes, str) else {input_nodes[0]: input_nodes[1]}
        if input_time is not None and not isinstance(input_time, dict):
            input_time = {next(iter(input_nodes)): input_time}
    elif isinstance(input_nodes, dict) and allow_many:
        if input_time is not None and not isinstance(input_time, dict):
            raise ConfigError("with input_nodes given per node type, give input_time per node type too")
    else:
        forms = "a node type, (node_type, ids)" + (" or {node_type: ids}" if allow_many else "")
        raise ConfigError(f"input_nodes must be {forms}, got {type(input_nodes).__name__}")
    if isinstance(input_nodes, dict) and not input_nodes:
        raise ConfigError("input_nodes is empty")
    input_time = {} if input_time is None else input_time
    extra = set(input_time) - set(input_nodes)
    if extra:
        raise ConfigError(f"input_time names node types without input nodes: {sorted(extra)}")
    seeds, times = {}, {}
    for t, ids in input_nodes.items():
        ti = csr.type_index(t)
        if ids is None:
            arr = np.arange(int(csr.num_nodes[ti]), dtype=np.int64)
        elif isinstance(ids, Tensor) and ids.dtype == torch.bool:
            if ids.numel() != int(csr.num_nodes[ti]):
                raise ConfigError(f"the input mask of '{t}' has {ids.numel()} entries for {int(csr.num_nodes[ti])} nodes")
            arr = ids.nonzero().view(-1).numpy().astype(np.int64)
        else:
            arr = _as_int64(ids, f"input nodes of '{t}'")
        seeds[t] = arr
        if t in input_time and input_time[t] is not None:
            if csr.time_attr is None:
                raise ConfigError("input_time needs time_attr (the node attribute holding times)")
            times[t] = _as_int64(input_time[t], f"input_time of '{t}'")
    return seeds, times


def _identity(x):
    return x


class _Ring:
    """Preallocated shared-memory slots through which worker processes hand over batches.

    ``buf`` ``int64 [slots, capacity]`` is shared with the workers once, when they start.
    The main process gives each dispatched batch a free slot (:meth:`claim`, called as
    the DataLoader draws the batch from the plan); the worker writes the batch's
    :class:`RawSample` block into it and sends back only its length and the two small
    count matrices; the main process copies the block out and frees the slot
    (:meth:`release`) before yielding the batch, so batches never alias the ring.

    A DataLoader has at most ``prefetch_factor * num_workers`` batches in flight and
    draws the next one just before handing over the current one, so that many slots
    plus one never run out. If none is free anyway, or a batch is longer than a slot,
    the worker sends that block by value in the message instead (correct, a little
    slower). This replaces a fresh shared-memory segment per batch, whose creation,
    file-descriptor passing and first-touch page faults cost more than sampling a
    small batch.
    """

    def __init__(self, slots: int, capacity: int):
        self.buf = torch.empty((slots, max(1, capacity)), dtype=torch.int64).share_memory_()
        self.free = list(range(slots))[::-1]

    @property
    def capacity(self) -> int:
        return int(self.buf.shape[1])

    def claim(self) -> Optional[int]:
        return self.free.pop() if self.free else None

    def release(self, slot: int) -> None:
        self.free.append(slot)

    def reset(self) -> None:
        """Every slot free (a new epoch: the workers have finished the previous one)."""
        self.free = list(range(self.buf.shape[0]))[::-1]


class _PlanDataset(torch.utils.data.Dataset):
    """Worker-side view of a loader: item = (batch index, pool positions, seed, slot).

    A worker samples; the main process gathers the features. The sampled ids travel
    through a slot of the shared :class:`_Ring` (or by value, when ``slot`` is ``None``
    or the batch does not fit), whereas a finished batch would need every gathered
    feature copied into shared memory -- which costs as much as building the batch.
    Returns ``(slot, length or block, node_count, edge_count, cpu_s)``: plain numpy
    arrays and numbers, which pickle without any shared-memory hand-off.
    """

    def __init__(self, loader: "BaseLoader", ring: _Ring):
        self.loader = loader
        self.ring = ring

    def __getitem__(self, item):
        _, idx, rng, slot = item
        ring = self.ring.buf.numpy()

        def alloc(n: int) -> np.ndarray:
            if slot is not None and n <= ring.shape[1]:
                return ring[slot, :n]
            return np.empty(n, np.int64)

        stype, snode, stau = self.loader.pool.select(idx)[1:4]
        raw = self.loader.sample_raw(stype, snode, stau, rng, 1, alloc)
        in_ring = slot is not None and raw.block.size <= ring.shape[1]
        body = raw.block.size if in_ring else raw.block
        return (slot if in_ring else None), body, raw.node_count, raw.edge_count, raw.cpu_s

    def __len__(self):
        return len(self.loader)


class _PlanSampler(torch.utils.data.Sampler):
    """Yields the plan's batches to the DataLoader, each with a ring slot claimed as it
    is dispatched (``None`` when no slot is free)."""

    def __init__(self):
        self.plan: List[Tuple[int, np.ndarray, np.uint64]] = []
        self.ring: Optional[_Ring] = None

    def __iter__(self):
        for b, idx, rng in self.plan:
            yield b, idx, rng, self.ring.claim()

    def __len__(self):
        return len(self.plan)


class BaseLoader:
    """Iteration, shuffling, seeding and worker processes for the rdlviz loaders.

    Subclasses set ``self.pool`` (a :class:`SeedPool`), ``self.data``, ``self.csr``,
    ``self.num_threads`` and implement :meth:`sample_raw` and :meth:`cost_hint`.

    With ``num_threads >= 2`` (and no worker processes) iteration is pipelined where it
    pays: while this thread gathers the features of the current batch, the next one is
    sampled on a background thread (the compiled kernels release the GIL) -- if its
    estimated sampling time is at least ``sampler.PARALLEL_MIN_S``; smaller batches are
    sampled inline, exactly as with one thread, because the hand-off would cost more
    than the overlap saves.

    With ``num_workers > 0``, worker processes sample the ids and hand them over through
    a shared-memory ring (:class:`_Ring`); this process gathers the features. Epochs
    whose batches are too small to repay the hand-off run as without workers
    (:meth:`_workers_pay`).
    """

    pool: SeedPool
    data: HeteroData
    num_threads: int = 1
    # ring slots for prefetch_factor * num_workers batches in flight, plus the one
    # being handed over; capacity = this margin times the estimated largest batch
    _PREFETCH = 2
    _RING_MARGIN = 1.5

    def _init_loader(
        self,
        batch_size: int,
        shuffle: bool,
        seed: Optional[int],
        num_workers: int,
        transform: Optional[Callable[[HeteroData], Any]],
        drop_last: bool,
        persistent_workers: bool,
    ) -> None:
        for name, v, lo in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ConfigError(f"{name} must be an int >= {lo}, got {v!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ConfigError(f"seed must be an int or None, got {seed!r}")
        if transform is not None and not callable(transform):
            raise ConfigError("transform must be callable")
        if persistent_workers and num_workers == 0:
            raise ConfigError("persistent_workers needs num_workers > 0")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = None if seed is None else int(seed)
        self.num_workers = int(num_workers)
        self.transform = transform
        self.drop_last = bool(drop_last)
        self.persistent_workers = bool(persistent_workers)
        self.epoch = 0
        self._dl = None
        self._plan_sampler: Optional[_PlanSampler] = None
        self._ring: Optional[_Ring] = None
        self._largest_block = 0  # longest RawSample block received from a worker

    def __len__(self) -> int:
        n = len(self.pool)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch the next iteration uses (it then advances by one per pass)."""
        self.epoch = int(epoch)

    def plan(self, epoch: Optional[int] = None) -> List[Tuple[int, np.ndarray, np.uint64]]:
        """The batches of ``epoch`` (default: the current one): ``(index, positions, seed)``."""
        epoch = self.epoch if epoch is None else int(epoch)
        n = len(self.pool)
        if self.seed is not None:
            base = int(derive_seed(self.seed, epoch, _SAMPLE))
            if self.shuffle:
                g = np.random.Generator(np.random.PCG64(int(derive_seed(self.seed, epoch, _SHUFFLE))))
                perm = g.permutation(n)
            else:
                perm = np.arange(n)
        else:
            perm = torch.randperm(n).numpy() if self.shuffle else np.arange(n)
            base = int(torch.randint(0, 2**62, ()))
        nb = len(self)
        return [
            (b, perm[b * self.batch_size : (b + 1) * self.batch_size].astype(np.int64), derive_seed(base, b))
            for b in range(nb)
        ]

    def __iter__(self) -> Iterator[Any]:
        plan = self.plan()
        self.epoch += 1
        if self.num_workers > 0 and self._workers_pay(plan):
            return self._from_workers(plan)
        if self.num_threads >= 2 and len(plan) > 1:
            return self._threaded(plan)
        return (self._finish(self._build(idx, rng)) for _, idx, rng in plan)

    def _workers_pay(self, plan) -> bool:
        """Whether this epoch's batches are worth worker processes: as for threads, only
        when a batch's estimated sampling time is at least ``sampler.PARALLEL_MIN_S``
        (each batch through a worker costs a copy and two process hand-offs; a
        pretraining batch, ~0.4 ms in the kernels, was slower that way). Decided per
        epoch from this process's running estimate, which the workers' reports keep up
        to date; with no estimate yet, one batch is sampled here to get one. Smaller
        batches are sampled in this process, exactly as with ``num_workers=0``."""
        if not plan:
            return False
        hint = self.cost_hint()
        if hint.cpu_per_seed is None:
            self.sample_ids(plan[0][1], plan[0][2], 1)
        return hint.parallel_pays(max(idx.size for _, idx, _ in plan))

    def _from_workers(self, plan):
        if self._dl is None or not self.persistent_workers:
            # A new DataLoader starts new workers, which receive a new ring.
            self._ring = _Ring(self.num_workers * self._PREFETCH + 1, self._ring_capacity(plan))
            self._plan_sampler = _PlanSampler()
            self._plan_sampler.ring = self._ring
            self._dl = torch.utils.data.DataLoader(
                _PlanDataset(self, self._ring),
                batch_size=None,
                sampler=self._plan_sampler,
                num_workers=self.num_workers,
                collate_fn=_identity,
                persistent_workers=self.persistent_workers,
                prefetch_factor=self._PREFETCH,
            )
        # Persistent workers finish the previous epoch's batches before the DataLoader
        # dispatches new ones, so every slot is free again.
        self._ring.reset()
        self._plan_sampler.plan = plan
        ring = self._ring
        hint = self.cost_hint()
        for (_, idx, _), (slot, body, node_count, edge_count, cpu_s) in zip(plan, self._dl):
            if slot is None:
                block = body
            else:
                block = ring.buf.numpy()[slot, :body].copy()
                ring.release(slot)
            self._largest_block = max(self._largest_block, block.size)
            types, _, _, stau, known, input_id = self.pool.select(idx)
            raw = RawSample(block, node_count, edge_count, cpu_s)
            hint.update(raw, idx.size)  # the workers' costs decide the next epoch
            sub = raw_to_subgraph(self.csr, raw, types, stau, known)
            yield self._finish(to_hetero_data(sub, self.data, input_id=input_id))

    def _ring_capacity(self, plan) -> int:
        """Slot length (``int64``s) for the batches of ``plan``: the margin times the
        largest block seen, or estimated from this process's running estimate (which
        :meth:`_workers_pay` has made sure exists)."""
        hint = self.cost_hint()
        most = max(idx.size for _, idx, _ in plan) if plan else 1
        est = (hint.ints_per_seed or 0.0) * most
        return int(self._RING_MARGIN * max(est, self._largest_block)) + 64

    def __call__(self, index) -> Any:
        """The batch of the given pool positions (``input_id``s), as PyG's loaders do.

        With a loader ``seed``, the generator seed is derived from it and the positions,
        so the same call returns the same batch."""
        idx = _as_int64(index, "index")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.pool)):
            raise ConfigError(f"index must lie in [0, {len(self.pool)})")
        base = self.seed if self.seed is not None else int(torch.randint(0, 2**62, ()))
        rng = derive_seed(base, 0x43414C4C, *idx[:64].tolist(), idx.size)
        return self._finish(self._build(idx, rng))

    def _threaded(self, plan):
        """Iterate ``plan`` with ``num_threads >= 2``: batch ``j + 1`` is sampled on a
        background thread while batch ``j`` is gathered here, when it is big enough for
        that to pay (:meth:`CostHint.parallel_pays`); otherwise it is sampled inline when
        its turn comes. The estimate is updated by every batch, so a loader whose first
        batch shows small batches never starts the background thread at all."""
        hint = self.cost_hint()
        ex: Optional[ThreadPoolExecutor] = None
        pending = None  # the next batch's sampling, when it was handed to ``ex``
        try:
            for j, (_, idx, rng) in enumerate(plan):
                if pending is not None:
                    sub, input_id = pending.result()
                    pending = None
                else:
                    sub, input_id = self.sample_ids(idx, rng)
                if j + 1 < len(plan) and hint.parallel_pays(plan[j + 1][1].size):
                    if ex is None:
                        ex = ThreadPoolExecutor(1, thread_name_prefix="rdlviz-prefetch")
                    # the other threads sample; this one gathers
                    pending = ex.submit(self.sample_ids, plan[j + 1][1], plan[j + 1][2], self.num_threads - 1)
                yield self._finish(to_hetero_data(sub, self.data, input_id=input_id))
        finally:
            if ex is not None:
                ex.shutdown(wait=False, cancel_futures=True)

    def _finish(self, batch):
        return batch if self.transform is None else self.transform(batch)

    def _build(self, idx: np.ndarray, rng: np.uint64) -> HeteroData:
        sub, input_id = self.sample_ids(idx, rng)
        return to_hetero_data(sub, self.data, input_id=input_id)

    def sample_ids(self, idx: np.ndarray, rng: np.uint64, num_threads: Optional[int] = None):
        """Sampling alone (no features): ``(SampledSubgraph, input_id per seed type)``
        for pool positions ``idx`` (``int64 [B]``) and generator seed ``rng``."""
        types, stype, snode, stau, known, input_id = self.pool.select(idx)
        threads = self.num_threads if num_threads is None else num_threads
        raw = self.sample_raw(stype, snode, stau, rng, threads)
        return raw_to_subgraph(self.csr, raw, types, stau, known), input_id

    def sample_raw(self, stype, snode, stau, rng, num_threads: int, alloc=None) -> RawSample:
        """The :class:`RawSample` of seeds ``stype``/``snode``/``stau`` ``int64 [B]``
        (``alloc(n)``: where to write the ``int64 [n]`` block; default a new array)."""
        raise NotImplementedError  # pragma: no cover - implemented by the loaders

    def cost_hint(self) -> CostHint:
        """This loader's configuration's running cost estimate (shared with every
        sampler call on the same graph and configuration in this process)."""
        raise NotImplementedError  # pragma: no cover - implemented by the loaders

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_dl"] = None
        state["_plan_sampler"] = None
        state["_ring"] = None  # a worker gets the ring through _PlanDataset
        return state
