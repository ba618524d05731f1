"""Compiled kernels: disjoint temporal neighbour trees, budget sampling, output assembly.

Everything that runs per node lives here, compiled with numba (``cache=True`` so the
compilation happens once per machine, ``nogil=True`` so chunks of a batch run on
several Python threads at once). The Python side loops only per batch.

Randomness. Each seed tree draws from its *own* stream, a splitmix64 generator whose
state is derived from ``(batch seed, tree index)``. A tree's sample therefore does not
depend on which thread built it or on what other trees drew, which makes batches
bit-identical for any number of threads and removes the shared-generator bias that a
single non-thread-safe engine has under parallel use. Integers in ``[0, n)`` use
Lemire's multiply-shift with rejection (exactly uniform for ``n < 2**32``).

Uniform sampling of ``k`` out of ``n`` neighbours without replacement is Floyd's
algorithm (every ``k``-subset equally likely; Bentley & Floyd, CACM 1987), the same
scheme pyg-lib uses.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(0x100000000)
_S11 = np.uint64(11)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_INT32_MAX = 2147483647
_LOW32I = 0xFFFFFFFF  # int64 mask of a slot's position bits


@njit(cache=True, inline="always")
def _mix(z):
    """splitmix64 finaliser: a bijective 64-bit hash."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def _next(state):
    """One splitmix64 step: ``(new state, 64 random bits)``."""
    state = state + _GOLDEN
    return state, _mix(state)


@njit(cache=True)
def _below(state, n):
    """``(new state, r)`` with ``r`` uniform in ``[0, n)``, ``n >= 1``."""
    un = np.uint64(n)
    state, z = _next(state)
    if un <= _LOW32:
        m = (z >> _S32) * un
        low = m & _LOW32
        if low < un:
            t = (_TWO32 - un) % un
            while low < t:
                state, z = _next(state)
                m = (z >> _S32) * un
                low = m & _LOW32
        return state, np.int64(m >> _S32)
    return state, np.int64(z % un)  # n >= 2**32: bias below 2**-32 * n / 2**32


@njit(cache=True)
def _unit(state):
    """``(new state, u)`` with ``u`` uniform in ``(0, 1]``."""
    state, z = _next(state)
    return state, ((z >> _S11) + np.uint64(1)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def tree_state(rng_seed, tree):
    """Initial generator state of tree ``tree`` of a batch drawn with ``rng_seed``."""
    return _mix(np.uint64(rng_seed) ^ _mix(np.uint64(tree) * _GOLDEN + _M1))


@njit(cache=True, inline="always")
def _upper_bound(adj, lo, hi, value):
    """First position ``p`` in ``[lo, hi)`` with ``adj[p, 1] > value`` (sorted times)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if adj[mid, 1] <= value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _grow(buf, need):
    cap = buf.shape[1]
    while cap < need:
        cap = cap * 2 + 64
    out = np.empty((buf.shape[0], cap), dtype=buf.dtype)
    out[:, : buf.shape[1]] = buf
    return out


@njit(cache=True)
def _grow1(buf, need):
    cap = buf.shape[0]
    while cap < need:
        cap = cap * 2 + 64
    out = np.empty(cap, dtype=buf.dtype)
    out[: buf.shape[0]] = buf
    return out


@njit(cache=True, nogil=True)
def sample_trees(
    seed_type, seed_node, seed_time, t_begin, t_end, rng_seed,
    timed, node_offset, edge_src, fptr, flist, foff, fadj, nptr, nlist,
    indptr, indptr_offset, adj,
    fanout, last,
    slot, mark, picked, counter, nodes, edges, ncount, ecount,
):  # fmt: skip
    """Sample the disjoint trees ``t_begin .. t_end - 1`` of a batch.

    Tree ``t`` starts at ``(seed_type[t], seed_node[t])`` and expands hop by hop: at hop
    ``h`` every node found at hop ``h - 1`` draws, for each edge type whose ``dst`` is
    its type, ``fanout[e, h]`` neighbours among those with time ``<= seed_time[t]``
    (timed neighbour types only; ``-1`` = all; ``last`` = the most recent ones).
    A node reached twice within a tree is kept once (both edges point to it); across
    trees nothing is shared. ``slot[node_offset[type] + id]`` holds ``stamp << 32 |
    position`` of the node in the tree being built (a fresh stamp per tree, so the
    array is never cleared); ``adj`` is the CSR's ``[M, 3]`` (neighbour, time, edge id).

    Returns:
        ``nodes`` ``int64 [4, cap]`` rows (type, id, hop, tree) for the first ``nn``
        columns, ordered by tree, then hop, then discovery; ``edges`` ``int64 [5, cap]``
        rows (edge type, neighbour position, frontier position, edge id, hop) for the
        first ``ne`` columns, positions indexing ``nodes``; and the next stamp value.
        ``ncount`` ``[T * (L + 1)]`` and ``ecount`` ``[E * L]`` are filled with the
        number of nodes per (type, hop) and edges per (edge type, hop) -- the input of
        :func:`scatter`.
    """
    L = fanout.shape[1]
    H = L + 1
    ncount[:] = 0
    ecount[:] = 0
    nn = 0
    ne = 0
    for t in range(t_begin, t_end):
        if counter >= _INT32_MAX:  # stamps fill 31 bits: start over with a clean slate
            slot[:] = 0
            counter = 1
        s = counter
        counter += 1
        state = tree_state(rng_seed, t)
        tau = seed_time[t]
        if nn + 1 > nodes.shape[1]:
            nodes = _grow(nodes, nn + 1)
        st = seed_type[t]
        sv = seed_node[t]
        nodes[0, nn] = st
        nodes[1, nn] = sv
        nodes[2, nn] = 0
        nodes[3, nn] = t
        slot[node_offset[st] + sv] = (s << 32) | nn
        ncount[st * H] += 1
        nn += 1
        begin = nn - 1
        end = nn
        for h in range(L):
            for i in range(begin, end):
                T = nodes[0, i]
                v = nodes[1, i]
                # Functional edge types (foreign keys): one row of fadj holds them all.
                kf = fptr[T + 1] - fptr[T]
                if kf > 0:
                    if nn + kf > nodes.shape[1]:
                        nodes = _grow(nodes, nn + kf)
                    if ne + kf > edges.shape[1]:
                        edges = _grow(edges, ne + kf)
                    base = foff[T] + 3 * kf * v
                    for j in range(kf):
                        e = flist[fptr[T] + j]
                        w = fadj[base + 3 * j]
                        if w < 0 or fanout[e, h] == 0:
                            continue
                        S = edge_src[e]
                        if timed[S] and fadj[base + 3 * j + 1] > tau:
                            continue
                        key = node_offset[S] + w
                        x = slot[key]
                        if (x >> 32) == s:
                            pos = x & _LOW32I
                        else:
                            slot[key] = (s << 32) | nn
                            nodes[0, nn] = S
                            nodes[1, nn] = w
                            nodes[2, nn] = h + 1
                            nodes[3, nn] = t
                            ncount[S * H + h + 1] += 1
                            pos = nn
                            nn += 1
                        edges[0, ne] = e
                        edges[1, ne] = pos
                        edges[2, ne] = i
                        edges[3, ne] = fadj[base + 3 * j + 2]
                        edges[4, ne] = h + 1
                        ne += 1
                        ecount[e * L + h] += 1
                for k in range(nptr[T], nptr[T + 1]):
                    e = nlist[k]
                    cnt = fanout[e, h]
                    if cnt == 0:
                        continue
                    base = indptr_offset[e] + v
                    lo = indptr[base]
                    hi = indptr[base + 1]
                    if lo == hi:
                        continue
                    S = edge_src[e]
                    if timed[S]:
                        hi = _upper_bound(adj, lo, hi, tau)
                        if last and cnt > 0 and hi - lo > cnt:
                            lo = hi - cnt
                    pop = hi - lo
                    if pop <= 0:
                        continue
                    take = pop if (cnt < 0 or cnt >= pop) else cnt
                    if nn + take > nodes.shape[1]:
                        nodes = _grow(nodes, nn + take)
                    if ne + take > edges.shape[1]:
                        edges = _grow(edges, ne + take)
                    off = node_offset[S]
                    first = pop - take
                    for j in range(first, pop):
                        if take == pop:
                            r = j
                        else:
                            state, r = _below(state, j + 1)
                            if mark[r] != 0:
                                r = j
                            mark[r] = 1
                            picked[j - first] = r
                        p = lo + r
                        w = adj[p, 0]
                        key = off + w
                        x = slot[key]
                        if (x >> 32) == s:
                            pos = x & _LOW32I
                        else:
                            slot[key] = (s << 32) | nn
                            nodes[0, nn] = S
                            nodes[1, nn] = w
                            nodes[2, nn] = h + 1
                            nodes[3, nn] = t
                            ncount[S * H + h + 1] += 1
                            pos = nn
                            nn += 1
                        edges[0, ne] = e
                        edges[1, ne] = pos
                        edges[2, ne] = i
                        edges[3, ne] = adj[p, 2]
                        edges[4, ne] = h + 1
                        ne += 1
                    ecount[e * L + h] += take
                    if take != pop:
                        for j in range(take):
                            mark[picked[j]] = 0
            begin = end
            end = nn
            if begin == end:
                break
    return nodes, nn, edges, ne, counter


@njit(cache=True, nogil=True)
def sample_budget(
    seed_type, seed_node, seed_time, rng_seed,
    timed, node_offset, edge_src, etype_ptr, etype_list,
    indptr, indptr_offset, adj,
    budget, constrained,
    mslot, cslot, counter, nodes, ntau, edges,
):  # fmt: skip
    """Budget (HGT-style) sampling of one shared subgraph from many seeds.

    Every node carries the seed it was reached through (``batch``) and that seed's time
    ``tau``. At hop ``h`` each node admitted at hop ``h - 1`` spreads ``1 / d`` to each
    of its ``d`` admissible neighbours not yet admitted (per edge type; admissible: time
    ``<= tau`` when ``constrained`` and the neighbour type is timed), the first spreader
    fixing the candidate's seed. Then, per node type ``T``, ``budget[T, h]`` candidates
    (``-1`` = all) are admitted without replacement with probability proportional to
    their squared accumulated budget (Hu et al., HGT, WWW 2020); candidates left over
    stay for later hops. Sampling keys are Efraimidis-Spirakis ``E / w`` with
    ``E ~ Exp(1)``, smallest first.

    Edges are the subgraph induced on the admitted nodes; with ``constrained`` an edge
    ``v -> u`` is kept only if ``time(v) <= tau(u)`` and ``tau(v) <= tau(u)``, so no
    message carries information newer than the receiving seed's time, even through
    nodes shared by several seeds.

    Returns ``nodes`` (type, id, hop, seed) ``[4, cap]`` and count, ``ntau``, ``edges``
    (edge type, neighbour pos, frontier pos, edge id, hop) ``[5, cap]`` and count, and
    the next stamp value. An edge's hop is the later of its endpoints' hops (at least 1).
    """
    L = budget.shape[1]
    T_count = budget.shape[0]
    if counter >= _INT32_MAX:
        mslot[:] = 0
        cslot[:] = 0
        counter = 1
    s = counter
    counter += 1
    state = tree_state(rng_seed, 0)
    B = seed_type.shape[0]
    nn = 0
    if B > nodes.shape[1]:
        nodes = _grow(nodes, B)
        ntau = _grow1(ntau, B)
    for b in range(B):
        st = seed_type[b]
        sv = seed_node[b]
        nodes[0, nn] = st
        nodes[1, nn] = sv
        nodes[2, nn] = 0
        nodes[3, nn] = b
        ntau[nn] = seed_time[b]
        key = node_offset[st] + sv
        if (mslot[key] >> 32) != s:  # a node given twice as a seed resolves to its first row
            mslot[key] = (s << 32) | nn
        nn += 1

    cap = 256
    c_type = np.empty(cap, np.int64)
    c_id = np.empty(cap, np.int64)
    c_orig = np.empty(cap, np.int64)
    c_tau = np.empty(cap, np.int64)
    c_w = np.empty(cap, np.float64)
    c_alive = np.empty(cap, np.bool_)
    nc = 0
    begin = 0
    end = nn
    for h in range(L):
        for i in range(begin, end):
            T = nodes[0, i]
            v = nodes[1, i]
            tau = ntau[i]
            for k in range(etype_ptr[T], etype_ptr[T + 1]):
                e = etype_list[k]
                base = indptr_offset[e] + v
                lo = indptr[base]
                hi = indptr[base + 1]
                S = edge_src[e]
                if constrained and timed[S]:
                    hi = _upper_bound(adj, lo, hi, tau)
                if hi <= lo:
                    continue
                w = 1.0 / (hi - lo)
                off = node_offset[S]
                for p in range(lo, hi):
                    key = off + adj[p, 0]
                    if (mslot[key] >> 32) == s:
                        continue
                    cx = cslot[key]
                    if (cx >> 32) != s:
                        if nc >= cap:
                            cap = cap * 2
                            c_type = _grow1(c_type, cap)
                            c_id = _grow1(c_id, cap)
                            c_orig = _grow1(c_orig, cap)
                            c_tau = _grow1(c_tau, cap)
                            c_w = _grow1(c_w, cap)
                            c_alive = _grow1(c_alive, cap)
                        cslot[key] = (s << 32) | nc
                        cx = cslot[key]
                        c_type[nc] = S
                        c_id[nc] = adj[p, 0]
                        c_orig[nc] = nodes[3, i]
                        c_tau[nc] = tau
                        c_w[nc] = 0.0
                        c_alive[nc] = True
                        nc += 1
                    c_w[cx & _LOW32I] += w
        for T in range(T_count):
            want = budget[T, h]
            if want == 0:
                continue
            m = 0
            for c in range(nc):
                if c_alive[c] and c_type[c] == T:
                    m += 1
            if m == 0:
                continue
            idx = np.empty(m, np.int64)
            m = 0
            for c in range(nc):
                if c_alive[c] and c_type[c] == T:
                    idx[m] = c
                    m += 1
            if want > 0 and m > want:
                keys = np.empty(m, np.float64)
                for j in range(m):
                    state, u = _unit(state)
                    wt = c_w[idx[j]]
                    keys[j] = -np.log(u) / (wt * wt)
                order = np.argsort(keys, kind="mergesort")
                chosen = idx[order[:want]]
            else:
                chosen = idx
            need = nn + chosen.shape[0]
            if need > nodes.shape[1]:
                nodes = _grow(nodes, need)
                ntau = _grow1(ntau, need)
            for c in chosen:
                c_alive[c] = False
                mslot[node_offset[T] + c_id[c]] = (s << 32) | nn
                nodes[0, nn] = T
                nodes[1, nn] = c_id[c]
                nodes[2, nn] = h + 1
                nodes[3, nn] = c_orig[c]
                ntau[nn] = c_tau[c]
                nn += 1
        begin = end
        end = nn

    ne = 0
    for i in range(nn):
        T = nodes[0, i]
        v = nodes[1, i]
        tau = ntau[i]
        for k in range(etype_ptr[T], etype_ptr[T + 1]):
            e = etype_list[k]
            base = indptr_offset[e] + v
            lo = indptr[base]
            hi = indptr[base + 1]
            S = edge_src[e]
            if constrained and timed[S]:
                hi = _upper_bound(adj, lo, hi, tau)
            off = node_offset[S]
            for p in range(lo, hi):
                x = mslot[off + adj[p, 0]]
                if (x >> 32) != s:
                    continue
                j = x & _LOW32I
                if constrained and ntau[j] > tau:
                    continue
                if ne >= edges.shape[1]:
                    edges = _grow(edges, ne + 1)
                hop = max(nodes[2, i], nodes[2, j], 1)
                edges[0, ne] = e
                edges[1, ne] = j
                edges[2, ne] = i
                edges[3, ne] = adj[p, 2]
                edges[4, ne] = hop
                ne += 1
    return nodes, nn, ntau, edges, ne, counter


@njit(cache=True, nogil=True)
def count_bins(nodes, nn, edges, ne, ncount, ecount, L):
    """Fill ``ncount`` ``[T * (L + 1)]`` / ``ecount`` ``[E * L]`` with the number of
    nodes per (type, hop) and edges per (edge type, hop) of a kernel's output."""
    H = L + 1
    ncount[:] = 0
    ecount[:] = 0
    for i in range(nn):
        ncount[nodes[0, i] * H + nodes[2, i]] += 1
    for i in range(ne):
        ecount[edges[0, i] * L + edges[4, i] - 1] += 1


@njit(cache=True, nogil=True)
def scatter(nodes, nn, edges, ne, L, nstart, type_base, estart, ebase, n_id, batch, ei, e_id, newpos):
    """Write one chunk of sampled trees into the batch's output arrays.

    The output groups nodes by type, then hop, then tree, and edges by edge type, then
    hop -- a counting sort whose bin offsets the caller computed from every chunk's
    counts, so chunks write disjoint ranges and may run concurrently.

    Args:
        nodes, nn, edges, ne: one chunk's kernel output.
        nstart: ``int64 [T * (L + 1)]`` first output position of this chunk in each
            (type, hop) bin (advanced in place).
        type_base: ``int64 [T]`` first output position of each node type.
        estart: ``int64 [E * L]`` first output position of this chunk per (edge type,
            hop) bin (advanced in place).
        ebase: ``int64 [E + 1]`` first edge of each edge type.
        n_id, batch: ``int64 [N]`` outputs: global id and tree of each node.
        ei: ``int64 [2 * M]`` output; edge type ``e`` owns ``ei[2 * ebase[e] :
            2 * ebase[e + 1]]`` as a contiguous ``[2, m_e]`` block (row 0: neighbour,
            local to the ``src`` type; row 1: frontier, local to the ``dst`` type).
        e_id: ``int64 [M]`` output: the edge's column in the graph's ``edge_index``.
        newpos: ``int64 [>= nn]`` scratch.
    """
    H = L + 1
    for i in range(nn):
        t = nodes[0, i]
        b = t * H + nodes[2, i]
        p = nstart[b]
        nstart[b] = p + 1
        n_id[p] = nodes[1, i]
        batch[p] = nodes[3, i]
        newpos[i] = p - type_base[t]
    for i in range(ne):
        et = edges[0, i]
        b = et * L + edges[4, i] - 1
        p = estart[b]
        estart[b] = p + 1
        m = ebase[et + 1] - ebase[et]
        q = 2 * ebase[et] + (p - ebase[et])
        ei[q] = newpos[edges[1, i]]
        ei[q + m] = newpos[edges[2, i]]
        e_id[p] = edges[3, i]
