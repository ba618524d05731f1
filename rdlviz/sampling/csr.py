"""Per-edge-type compressed sparse rows, sorted by (frontier node, neighbour time).

Sampling walks *against* the message direction: for an edge type ``(src, rel, dst)``
messages flow ``src -> dst``, so a frontier node of type ``dst`` looks up its
neighbours of type ``src`` (PyG's CSC layout). :class:`TemporalCSR` stores, for every
edge type, the neighbour lists of every ``dst`` node back to back, each list ordered by
the neighbour's time (ties by original edge order). The neighbours a seed with time
``t`` may see are then a *prefix* of that list, found by one binary search, and "the
``k`` most recent" is the last ``k`` entries of the prefix.

All edge types are concatenated into a handful of flat ``int64`` arrays (``indptr``,
``nbr``, ``nbr_time``, ``eid``) so that one compiled kernel can walk every hop and every
edge type of a batch in a single call. The structure is built once per graph and cached
(keyed by the graph object and a fingerprint of its edges and times), so loaders and
views that sample from the same :class:`~torch_geometric.data.HeteroData` share it.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch_geometric.data import HeteroData

from rdlviz.errors import ConfigError

__all__ = ["TemporalCSR"]

EdgeType = Tuple[str, str, str]

# A node type without a time attribute is "always allowed": its neighbours are never cut.
# Seeds of an untimed type without an explicit seed time see the whole history.
TIME_MAX = np.iinfo(np.int64).max


@dataclass(eq=False)
class _Scratch:
    """Per-thread working memory of the sampling kernels (never shared by two threads).

    ``htab``/``hshift``: the tree kernel's hash table from global node key to position
    in the current tree (grown on demand, kept between calls; see ``kernels._probe``).
    The budget kernel, whose node sets span the whole batch, keeps per-node slot arrays
    in ``extra`` instead.
    """

    htab: np.ndarray  # int64 [2**k, 2]
    hshift: np.uint64
    mark: np.ndarray  # uint8 [max degree + 1], Floyd's "already picked" flags
    picked: np.ndarray  # int64 [max degree + 1], positions to unmark afterwards
    counter: int = 1  # next stamp value
    sizes: tuple = (0, 0)  # (nodes, edges) held in the buffers
    # Output buffers, grown by the kernels and kept for the next call.
    buffers: Optional[tuple] = None
    # Budget sampler extras (allocated on first use).
    extra: Dict[str, object] = field(default_factory=dict)


@dataclass(eq=False)
class TemporalCSR:
    """Sampling view of a heterogeneous graph: every edge type as time-sorted CSR.

    Attributes (``T`` node types, ``E`` edge types, ``M`` edges in all):
        node_types: the node types, in ``data.node_types`` order.
        edge_types: the edge types ``(src, rel, dst)``, in ``data.edge_types`` order.
        num_nodes: ``int64 [T]`` nodes per type.
        node_offset: ``int64 [T + 1]`` start of each type in one virtual node space.
        node_time: per type, ``int64 [num_nodes]`` unix seconds, or ``None`` (untimed).
        timed: ``bool [T]``; whether the type has a time attribute.
        edge_src / edge_dst: ``int64 [E]`` type index of the neighbour (``src``) and of
            the frontier node (``dst``) of each edge type.
        indptr: ``int64``, for edge type ``e`` and frontier node ``v`` the neighbour list
            is ``adj[indptr[indptr_offset[e] + v] : indptr[indptr_offset[e] + v + 1]]``
            (positions are absolute in ``adj``).
        indptr_offset: ``int64 [E]``.
        adj: ``int64 [M, 3]``, per edge (neighbour id of type ``src``, the neighbour's
            time -- ``0`` for untimed types --, the edge's column in
            ``data[edge_type].edge_index``). Interleaved so that reading an edge, and the
            binary search over a neighbour list, touch one cache line, not three;
            :attr:`nbr`, :attr:`nbr_time`, :attr:`eid` are its columns.
        etype_ptr / etype_list: for node type ``t``, the edge types whose frontier type
            is ``t`` are ``etype_list[etype_ptr[t] : etype_ptr[t + 1]]``.
        fptr / flist, nptr / nlist: the same split into *functional* edge types (each
            ``dst`` node has at most one neighbour, e.g. a row's foreign key) and the rest.
        foff / fadj: the functional edge types stored densely per ``dst`` type: for
            type ``t`` with ``k`` functional edge types, node ``v`` and the ``j``-th of
            them, ``fadj[foff[t] + 3 * (v * k + j) : ... + 3]`` = (neighbour or ``-1``,
            its time, edge id).
        inverse_functional: ``bool [E]``, each ``src`` node has at most one neighbour.
        ofptr / oflist / ofoff / ofadj: those edge types stored densely per ``src``
            type, rows (``dst`` neighbour or ``-1``, the ``src`` node's time, edge id).
        time_attr: the node attribute the times came from (``None``: no time).
    """

    node_types: Tuple[str, ...]
    edge_types: Tuple[EdgeType, ...]
    num_nodes: np.ndarray
    node_offset: np.ndarray
    node_time: Tuple[Optional[np.ndarray], ...]
    timed: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    indptr: np.ndarray
    indptr_offset: np.ndarray
    adj: np.ndarray
    etype_ptr: np.ndarray
    etype_list: np.ndarray
    fptr: np.ndarray
    flist: np.ndarray
    nptr: np.ndarray
    nlist: np.ndarray
    foff: np.ndarray
    fadj: np.ndarray
    inverse_functional: np.ndarray
    ofptr: np.ndarray
    oflist: np.ndarray
    ofoff: np.ndarray
    ofadj: np.ndarray
    max_degree: int
    time_attr: Optional[str]
    _pool: List[_Scratch] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_data(cls, data: HeteroData, time_attr: Optional[str] = "time") -> "TemporalCSR":
        """Build (or fetch from the cache) the CSR of ``data``.

        Args:
            data: a heterogeneous graph; every edge type needs ``edge_index`` ``[2, m]``.
            time_attr: node attribute holding ``int64`` unix seconds, or ``None`` to
                sample without a time constraint. Types that lack it are untimed.

        Raises:
            ConfigError: the graph is not heterogeneous, an ``edge_index`` is missing or
                out of range, ``time_attr`` is an edge attribute, found on no node type,
                or holds non-integer or wrongly sized values.
        """
        if not isinstance(data, HeteroData):
            raise ConfigError(
                f"sampling needs a torch_geometric HeteroData graph, got {type(data).__name__}"
            )
        key = _fingerprint(data, time_attr)
        entries = _cache_entries(data)
        if time_attr in entries and entries[time_attr][0] == key:
            return entries[time_attr][1]
        csr = cls._build(data, time_attr)
        entries[time_attr] = (key, csr)
        return csr

    @classmethod
    def _build(cls, data: HeteroData, time_attr: Optional[str]) -> "TemporalCSR":
        node_types = tuple(data.node_types)
        edge_types = tuple(tuple(et) for et in data.edge_types)
        if not node_types:
            raise ConfigError("the graph has no node types")
        if len(node_types) >= 1 << 16:  # the kernels pack the node type into 16 bits
            raise ConfigError(f"at most 65535 node types are supported, got {len(node_types)}")
        type_index = {t: i for i, t in enumerate(node_types)}
        num_nodes = np.zeros(len(node_types), dtype=np.int64)
        for i, t in enumerate(node_types):
            n = data[t].num_nodes
            if n is None:
                raise ConfigError(
                    f"node type '{t}' has no node count; set data['{t}'].num_nodes"
                )
            num_nodes[i] = int(n)
        node_offset = np.zeros(len(node_types) + 1, dtype=np.int64)
        node_offset[1:] = np.cumsum(num_nodes)

        node_time: List[Optional[np.ndarray]] = [None] * len(node_types)
        if time_attr is not None:
            for et in edge_types:
                if time_attr in data[et]:
                    raise ConfigError(
                        f"'{time_attr}' is an edge attribute of {et}; only node-level "
                        "times are supported (store each row's time on its node type)"
                    )
            for i, t in enumerate(node_types):
                if time_attr in data[t]:
                    node_time[i] = _as_time(data[t][time_attr], int(num_nodes[i]), t, time_attr)
            if all(x is None for x in node_time):
                raise ConfigError(
                    f"time_attr='{time_attr}' is found on no node type; pass time_attr=None "
                    "to sample without a time constraint"
                )
        timed = np.array([x is not None for x in node_time], dtype=np.bool_)

        edge_src = np.array([type_index[et[0]] for et in edge_types], dtype=np.int64)
        edge_dst = np.array([type_index[et[2]] for et in edge_types], dtype=np.int64)
        indptr_parts, nbr_parts, time_parts, eid_parts = [], [], [], []
        indptr_offset = np.zeros(len(edge_types), dtype=np.int64)
        functional = np.zeros(len(edge_types), dtype=np.bool_)
        inverse_functional = np.zeros(len(edge_types), dtype=np.bool_)
        raw = []
        pos, ioff, max_degree = 0, 0, 0
        for e, et in enumerate(edge_types):
            store = data[et]
            if "edge_index" not in store:
                raise ConfigError(f"edge type {et} has no edge_index")
            ei = store.edge_index
            ei = ei.numpy() if isinstance(ei, torch.Tensor) else np.asarray(ei)
            if ei.ndim != 2 or ei.shape[0] != 2:
                raise ConfigError(f"edge type {et}: edge_index must have shape [2, m]")
            src = ei[0].astype(np.int64, copy=False)
            dst = ei[1].astype(np.int64, copy=False)
            n_src, n_dst = int(num_nodes[edge_src[e]]), int(num_nodes[edge_dst[e]])
            if src.size and (src.min() < 0 or src.max() >= n_src or dst.min() < 0 or dst.max() >= n_dst):
                raise ConfigError(
                    f"edge type {et}: edge_index refers to nodes outside "
                    f"[0, {n_src}) x [0, {n_dst})"
                )
            stime = node_time[edge_src[e]]
            if stime is not None:
                # lexsort is stable: ties in (dst, time) keep the original edge order.
                perm = np.lexsort((stime[src], dst))
            else:
                perm = np.argsort(dst, kind="stable")
            counts = np.bincount(dst, minlength=n_dst)
            ptr = np.empty(n_dst + 1, dtype=np.int64)
            ptr[0] = 0
            np.cumsum(counts, out=ptr[1:])
            if counts.size:
                max_degree = max(max_degree, int(counts.max()))
            functional[e] = counts.size == 0 or int(counts.max()) <= 1
            inverse_functional[e] = src.size == 0 or int(np.bincount(src).max()) <= 1
            raw.append((src, dst))
            indptr_parts.append(ptr + pos)
            nbr_parts.append(src[perm])
            time_parts.append(stime[src[perm]] if stime is not None else np.zeros(src.size, np.int64))
            eid_parts.append(perm.astype(np.int64, copy=False))
            indptr_offset[e] = ioff
            ioff += n_dst + 1
            pos += src.size

        def cat(parts):
            return np.ascontiguousarray(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

        order = np.argsort(edge_dst, kind="stable")
        etype_ptr = np.zeros(len(node_types) + 1, dtype=np.int64)
        etype_ptr[1:] = np.cumsum(np.bincount(edge_dst, minlength=len(node_types)))

        # Functional edge types (every dst node has at most one neighbour: a row's
        # foreign key seen from the row) are also stored densely, per dst node type, as
        # fadj[foff[t] + 3 * (v * k_t + j) + (0, 1, 2)] = (neighbour or -1, time, edge
        # id) for its j-th functional edge type. All foreign keys of a row then sit in one
        # cache line, where the CSR would cost two scattered reads per key.
        T = len(node_types)
        fptr = np.zeros(T + 1, dtype=np.int64)
        nptr = np.zeros(T + 1, dtype=np.int64)
        flist, nlist, blocks = [], [], []
        foff = np.zeros(T, dtype=np.int64)
        fpos = 0
        for t in range(T):
            mine = [int(e) for e in order if edge_dst[e] == t]
            fs = [e for e in mine if functional[e]]
            flist += fs
            nlist += [e for e in mine if not functional[e]]
            fptr[t + 1], nptr[t + 1] = len(flist), len(nlist)
            foff[t] = fpos
            if fs:
                block = np.empty((int(num_nodes[t]), len(fs), 3), dtype=np.int64)
                block[:, :, 0], block[:, :, 1], block[:, :, 2] = -1, 0, -1
                for j, e in enumerate(fs):
                    src, dst = raw[e]
                    block[dst, j, 0] = src
                    stime = node_time[edge_src[e]]
                    block[dst, j, 1] = stime[src] if stime is not None else 0
                    block[dst, j, 2] = np.arange(src.size)
                blocks.append(block.reshape(-1))
                fpos += block.size
        # Inverse-functional edge types (every src node has at most one neighbour: a
        # foreign key seen from the row that holds it) stored densely per *src* type,
        # ofadj rows = (dst or -1, src time, edge id). The budget sampler's induced-edge
        # pass reads them from the row's side instead of scanning the referenced node's
        # (possibly huge) neighbour list.
        ofptr = np.zeros(T + 1, dtype=np.int64)
        oflist, oblocks = [], []
        ofoff = np.zeros(T, dtype=np.int64)
        opos = 0
        for t in range(T):
            fs = [e for e in range(len(edge_types)) if edge_src[e] == t and inverse_functional[e]]
            oflist += fs
            ofptr[t + 1] = len(oflist)
            ofoff[t] = opos
            if fs:
                block = np.empty((int(num_nodes[t]), len(fs), 3), dtype=np.int64)
                block[:, :, 0], block[:, :, 1], block[:, :, 2] = -1, 0, -1
                for j, e in enumerate(fs):
                    src, dst = raw[e]
                    block[src, j, 0] = dst
                    if node_time[t] is not None:
                        block[src, j, 1] = node_time[t][src]
                    block[src, j, 2] = np.arange(src.size)
                oblocks.append(block.reshape(-1))
                opos += block.size
        return cls(
            node_types=node_types,
            edge_types=edge_types,
            num_nodes=num_nodes,
            node_offset=node_offset,
            node_time=tuple(node_time),
            timed=timed,
            edge_src=edge_src,
            edge_dst=edge_dst,
            indptr=cat(indptr_parts),
            indptr_offset=indptr_offset,
            adj=np.ascontiguousarray(np.stack([cat(nbr_parts), cat(time_parts), cat(eid_parts)], axis=1)),
            etype_ptr=etype_ptr,
            etype_list=order.astype(np.int64),
            fptr=fptr,
            flist=np.array(flist, dtype=np.int64),
            nptr=nptr,
            nlist=np.array(nlist, dtype=np.int64),
            foff=foff,
            fadj=np.concatenate(blocks) if blocks else np.zeros(0, np.int64),
            inverse_functional=inverse_functional,
            ofptr=ofptr,
            oflist=np.array(oflist, dtype=np.int64),
            ofoff=ofoff,
            ofadj=np.concatenate(oblocks) if oblocks else np.zeros(0, np.int64),
            max_degree=max_degree,
            time_attr=time_attr,
        )

    # -- helpers used by the samplers ---------------------------------------------------

    @property
    def nbr(self) -> np.ndarray:
        """``int64 [M]`` neighbour ids (a view of ``adj``)."""
        return self.adj[:, 0]

    @property
    def nbr_time(self) -> np.ndarray:
        """``int64 [M]`` neighbour times, sorted within each neighbour list."""
        return self.adj[:, 1]

    @property
    def eid(self) -> np.ndarray:
        """``int64 [M]`` edge columns in the graph's ``edge_index``."""
        return self.adj[:, 2]

    def type_index(self, node_type: str) -> int:
        """Index of ``node_type`` in :attr:`node_types` (``ConfigError`` if unknown)."""
        try:
            return self.node_types.index(node_type)
        except ValueError:
            raise ConfigError(
                f"unknown node type '{node_type}'; the graph has {list(self.node_types)}"
            ) from None

    def degree(self, edge_type: EdgeType) -> np.ndarray:
        """``int64 [num dst nodes]``: in-degree of every ``dst`` node for ``edge_type``."""
        e = self.edge_types.index(tuple(edge_type))
        n = int(self.num_nodes[self.edge_dst[e]])
        o = int(self.indptr_offset[e])
        return np.diff(self.indptr[o : o + n + 1])

    def acquire(self) -> _Scratch:
        """Take a scratch set for one thread (allocated on demand, returned by release)."""
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return _Scratch(
            htab=np.zeros((1024, 2), dtype=np.int64),
            hshift=np.uint64(64 - 10),
            mark=np.zeros(self.max_degree + 1, dtype=np.uint8),
            picked=np.zeros(self.max_degree + 1, dtype=np.int64),
        )

    def release(self, scratch: _Scratch) -> None:
        with self._lock:
            self._pool.append(scratch)

    def __post_init__(self):
        _LIVE.add(self)

    def __getstate__(self):
        # Scratch memory and the lock are per process; worker processes make their own.
        state = dict(self.__dict__)
        state["_pool"] = []
        state.pop("_lock")
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        _LIVE.add(self)

    def __repr__(self) -> str:
        return (
            f"TemporalCSR({len(self.node_types)} node types, {len(self.edge_types)} edge "
            f"types, {int(self.node_offset[-1])} nodes, {self.adj.shape[0]} edges, "
            f"time_attr={self.time_attr!r})"
        )


# Every live CSR: a forked child (a DataLoader worker) gets fresh locks, in case the
# parent forked while a sampling thread held one.
_LIVE: "weakref.WeakSet[TemporalCSR]" = weakref.WeakSet()


def _after_fork() -> None:
    global _CACHE_LOCK
    _CACHE_LOCK = threading.Lock()
    for csr in list(_LIVE):
        csr._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)

# id(data) -> (weak reference to data, {time_attr: (fingerprint, csr)}). HeteroData is
# unhashable, so the cache is keyed by identity; an entry vanishes with its graph.
_CACHE: Dict[int, Tuple[weakref.ref, dict]] = {}
_CACHE_LOCK = threading.Lock()


def _cache_entries(data: HeteroData) -> dict:
    key = id(data)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0]() is data:
            return hit[1]

        def drop(ref, key=key):
            with _CACHE_LOCK:
                if key in _CACHE and _CACHE[key][0] is ref:
                    del _CACHE[key]

        entries: dict = {}
        _CACHE[key] = (weakref.ref(data, drop), entries)
        return entries


def _fingerprint(data: HeteroData, time_attr: Optional[str]) -> tuple:
    """Cheap identity of the parts of ``data`` the CSR depends on (no hashing of data)."""
    parts = []
    for t in data.node_types:
        store = data[t]
        tm = store[time_attr] if time_attr is not None and time_attr in store else None
        parts.append((t, store.num_nodes, _tensor_id(tm)))
    for et in data.edge_types:
        parts.append((et, _tensor_id(data[et].get("edge_index"))))
    return tuple(parts)


def _tensor_id(x) -> tuple:
    if x is None:
        return (None,)
    if isinstance(x, torch.Tensor):
        return (x.data_ptr(), tuple(x.shape), x._version)
    return (id(x), getattr(x, "shape", None))


def _as_time(value, n: int, node_type: str, time_attr: str) -> np.ndarray:
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ConfigError(
            f"data['{node_type}'].{time_attr} must be a 1-D tensor of length {n} "
            f"(one time per node), got shape {tuple(arr.shape)}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(
            f"data['{node_type}'].{time_attr} has dtype {arr.dtype}; times must be integer "
            "unix seconds (e.g. ser.astype('datetime64[s]').astype('int64'))"
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def resolve_fanouts(
    csr: TemporalCSR, num_neighbors, what: str = "num_neighbors"
) -> np.ndarray:
    """``num_neighbors`` (list, or dict per edge type) -> ``int64 [E, L]`` fan-outs.

    A list applies to every edge type; a dict gives per-edge-type lists of equal length,
    and edge types it leaves out get fan-out 0. ``-1`` means all neighbours.
    """
    E = len(csr.edge_types)
    if isinstance(num_neighbors, dict):
        lists = {}
        for k, v in num_neighbors.items():
            k = tuple(k) if isinstance(k, (tuple, list)) else k
            if k not in csr.edge_types:
                raise ConfigError(
                    f"{what} names edge type {k}, which is not in the graph "
                    f"(edge types: {list(csr.edge_types)})"
                )
            lists[k] = _check_list(v, what)
        return hops_matrix(csr.edge_types, lists, what, "edge type")
    fan = _check_list(num_neighbors, what)
    return np.tile(np.asarray(fan, dtype=np.int64), (E, 1)).reshape(E, len(fan))


def hops_matrix(keys: Sequence, lists: Dict, what: str, unit: str) -> np.ndarray:
    """``{key: [count per hop]}`` -> ``int64 [len(keys), L]`` in ``keys`` order; keys the
    dict leaves out get 0. Every list must have the same length ``L``."""
    lengths = {len(v) for v in lists.values()}
    if len(lengths) > 1:
        raise ConfigError(f"{what}: every {unit} needs the same number of hops, got {sorted(lengths)}")
    L = lengths.pop() if lengths else 0
    out = np.zeros((len(keys), L), dtype=np.int64)
    for i, k in enumerate(keys):
        if k in lists:
            out[i] = lists[k]
    return out


def _check_list(v, what: str) -> List[int]:
    if isinstance(v, (int, np.integer)) or not isinstance(v, Sequence) and not isinstance(v, np.ndarray):
        raise ConfigError(f"{what} must be a list of ints (one per hop), got {v!r}")
    out = []
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < -1:
            raise ConfigError(f"{what}: each entry must be an int >= -1 (-1 = all), got {x!r}")
        out.append(int(x))
    if not out:
        raise ConfigError(f"{what} must list at least one hop")
    if len(out) > 64:  # the kernels pack the hop into 8 bits
        raise ConfigError(f"{what}: at most 64 hops are supported, got {len(out)}")
    return out
