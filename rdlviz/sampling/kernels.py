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

Memory. Sampling is bound by memory latency, not arithmetic, so the layout is chosen
to touch few cache lines per sampled node: a row's foreign keys are read from one dense
row (``fadj``), neighbour lists are ``(id, time, edge id)`` triples (``adj``), the
per-tree "already in this tree?" lookup is a small hash table that stays in cache, and
the output is written to packed buffers (40 bytes per node plus edge) that
:func:`scatter` then sorts into PyG's order in one counting-sort pass.
"""

from __future__ import annotations

import llvmlite.binding
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

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
_LOW32I = 0xFFFFFFFF  # int64 mask of the low 32 bits (a position)
_AHEAD = 8  # frontier nodes between a prefetch and its use


# LLVM >= 15 has opaque pointers, which changed the intrinsic's mangled name.
_PREFETCH = "llvm.prefetch.p0" if llvmlite.binding.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the CPU to load ``arr[idx]`` into cache (no effect on results).

    The kernels know the next frontier nodes in advance, so they ask for those nodes'
    rows a few iterations early; the cache misses then overlap instead of stalling
    the loop one after the other.
    """
    if not isinstance(arr, types.Array) or arr.ndim != 1 or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        arrty, idxty = signature.args
        ary = context.make_array(arrty)(context, builder, args[0])
        ptr = builder.gep(ary.data, [context.cast(builder, args[1], idxty, types.intp)])
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32]), _PREFETCH
        )
        # read, high temporal locality, data cache
        builder.call(fn, [i8p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


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


@njit(cache=True, inline="always")
def _probe(htab, shift, key, s):
    """Row of ``htab`` holding ``key`` in generation ``s``, or the free row for it.

    ``htab`` ``int64 [2**k, 2]`` rows are (key, ``generation << 32 | position``); a row
    of an older generation counts as free, so a new tree (a new generation) starts with
    an empty table without clearing it. Fibonacci hashing, linear probing; the caller
    keeps the load at most 1/2. ``shift`` is ``64 - k`` as ``uint64``.
    """
    mask = htab.shape[0] - 1
    i = np.int64((np.uint64(key) * _GOLDEN) >> shift)
    while True:
        if (htab[i, 1] >> 32) != s or htab[i, 0] == key:
            return i
        i = (i + 1) & mask


# Status codes of the kernels: buffers are fixed-size inside a call (an array variable
# reassigned in a hot loop costs reference counting on every iteration), so a kernel
# that runs out of room stops at a clean point and the caller grows the buffer and
# resumes.
DONE = 0
FULL_BUFFERS = 1  # nodes/edges (trees) or candidates/nodes/edges (budget)
FULL_TABLE = 2  # the per-tree hash table


@njit(cache=True, inline="always")
def _rollback(nodes, edges, ncount, ecount, n0, nn, e0, ne, H, L):
    """Undo the counts of the partial tree ``nodes[:, n0:nn]``, ``edges[:, e0:ne]``."""
    for j in range(n0, nn):
        info = nodes[1, j]
        ncount[((info >> 8) & 0xFFFF) * H + (info & 0xFF)] -= 1
    for j in range(e0, ne):
        info = edges[0, j]
        ecount[(info >> 8) * L + (info & 0xFF) - 1] -= 1


@njit(cache=True, nogil=True)
def sample_trees(
    seed_type, seed_node, seed_time, t_begin, t_end, rng_seed,
    timed, node_offset, edge_src, fptr, flist, foff, fadj, nptr, nlist,
    indptr, indptr_offset, adj,
    fanout, last,
    htab, hshift, mark, picked, counter, nodes, edges, ncount, ecount, nn, ne,
):  # fmt: skip
    """Sample the disjoint trees ``t_begin .. t_end - 1`` of a batch.

    Tree ``t`` starts at ``(seed_type[t], seed_node[t])`` and expands hop by hop: at hop
    ``h`` every node found at hop ``h - 1`` draws, for each edge type whose ``dst`` is
    its type, ``fanout[e, h]`` neighbours among those with time ``<= seed_time[t]``
    (timed neighbour types only; ``-1`` = all; ``last`` = the most recent ones).
    A node reached twice within a tree is kept once (both edges point to it); across
    trees nothing is shared. The tree's nodes are found through ``htab``, a small
    open-addressing hash table (see :func:`_probe`) that is reused from tree to tree
    and fits in the L1/L2 cache, where an array indexed by global node id would miss
    the cache on nearly every new node. ``adj`` is the CSR's ``[M, 3]`` (neighbour,
    time, edge id).

    Output, appended after the first ``nn`` / ``ne`` columns already there:
    ``nodes`` ``int64 [2, cap]`` ordered by tree, then hop, then discovery: row 0 the
    node id, row 1 ``tree << 24 | type << 8 | hop``; ``edges`` ``int64 [3, cap]``:
    ``edge type << 8 | hop``, ``neighbour position << 32 | frontier position``
    (positions index ``nodes``), edge id. ``ncount`` ``[T * (L + 1)]`` and ``ecount``
    ``[E * L]`` accumulate nodes per (type, hop) and edges per (edge type, hop), the
    input of :func:`scatter`.

    Returns:
        ``(status, t, nn, ne, counter)``: :data:`DONE` and ``t = t_end``, or
        :data:`FULL_BUFFERS` / :data:`FULL_TABLE` with ``t`` the first tree not
        sampled (its partial output removed) -- grow that buffer and call again from
        ``t``; the tree comes out the same, its generator depending only on
        ``(rng_seed, t)``. ``counter`` is the next generation stamp (see :func:`_probe`).
    """
    L = fanout.shape[1]
    H = L + 1
    cap_n = nodes.shape[1]
    cap_e = edges.shape[1]
    cap_h = htab.shape[0]
    for t in range(t_begin, t_end):
        if counter >= _INT32_MAX:  # stamps fill 31 bits: start over with a clean slate
            htab[:, 1] = 0
            counter = 1
        s = counter
        counter += 1
        state = tree_state(rng_seed, t)
        tau = seed_time[t]
        n0 = nn
        e0 = ne
        if nn + 1 > cap_n:
            return FULL_BUFFERS, t, nn, ne, counter
        st = seed_type[t]
        sv = seed_node[t]
        nodes[0, nn] = sv
        nodes[1, nn] = (t << 24) | (st << 8)
        key = node_offset[st] + sv
        q = _probe(htab, hshift, key, s)
        htab[q, 0] = key
        htab[q, 1] = (s << 32) | nn
        ncount[st * H] += 1
        nn += 1
        begin = n0
        end = nn
        status = DONE
        for h in range(L):
            for i in range(begin, end):
                if i + _AHEAD < end:  # fetch the row of a frontier node a few steps ahead
                    va = nodes[0, i + _AHEAD]
                    Ta = (nodes[1, i + _AHEAD] >> 8) & 0xFFFF
                    ka = fptr[Ta + 1] - fptr[Ta]
                    if ka > 0:
                        _prefetch(fadj, foff[Ta] + 3 * ka * va)
                    if nptr[Ta + 1] > nptr[Ta]:
                        _prefetch(indptr, indptr_offset[nlist[nptr[Ta]]] + va)
                v = nodes[0, i]
                T = (nodes[1, i] >> 8) & 0xFFFF
                # Functional edge types (foreign keys): one row of fadj holds them all.
                kf = fptr[T + 1] - fptr[T]
                if kf > 0:
                    if nn + kf > cap_n or ne + kf > cap_e:
                        status = FULL_BUFFERS
                        break
                    if 2 * (nn + kf - n0) > cap_h:
                        status = FULL_TABLE
                        break
                    base = foff[T] + 3 * kf * v
                    for j in range(kf):
                        e = flist[fptr[T] + j]
                        if fanout[e, h] == 0:
                            continue
                        w = fadj[base + 3 * j]
                        if w < 0:
                            continue
                        S = edge_src[e]
                        if timed[S] and fadj[base + 3 * j + 1] > tau:
                            continue
                        key = node_offset[S] + w
                        q = _probe(htab, hshift, key, s)
                        if (htab[q, 1] >> 32) == s:
                            pos = htab[q, 1] & _LOW32I
                        else:
                            htab[q, 0] = key
                            htab[q, 1] = (s << 32) | nn
                            nodes[0, nn] = w
                            nodes[1, nn] = (t << 24) | (S << 8) | (h + 1)
                            ncount[S * H + h + 1] += 1
                            pos = nn
                            nn += 1
                        edges[0, ne] = (e << 8) | (h + 1)
                        edges[1, ne] = (pos << 32) | i
                        edges[2, ne] = fadj[base + 3 * j + 2]
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
                    if nn + take > cap_n or ne + take > cap_e:
                        status = FULL_BUFFERS
                        break
                    if 2 * (nn + take - n0) > cap_h:
                        status = FULL_TABLE
                        break
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
                        q = _probe(htab, hshift, key, s)
                        if (htab[q, 1] >> 32) == s:
                            pos = htab[q, 1] & _LOW32I
                        else:
                            htab[q, 0] = key
                            htab[q, 1] = (s << 32) | nn
                            nodes[0, nn] = w
                            nodes[1, nn] = (t << 24) | (S << 8) | (h + 1)
                            ncount[S * H + h + 1] += 1
                            pos = nn
                            nn += 1
                        edges[0, ne] = (e << 8) | (h + 1)
                        edges[1, ne] = (pos << 32) | i
                        edges[2, ne] = adj[p, 2]
                        ne += 1
                    ecount[e * L + h] += take
                    if take != pop:
                        for j in range(take):
                            mark[picked[j]] = 0
                if status != DONE:
                    break
            if status != DONE:
                _rollback(nodes, edges, ncount, ecount, n0, nn, e0, ne, H, L)
                return status, t, n0, e0, counter
            begin = end
            end = nn
            if begin == end:
                break
    return DONE, t_end, nn, ne, counter


@njit(cache=True, nogil=True)
def sample_budget(
    seed_type, seed_node, seed_time, rng_seed,
    timed, node_offset, edge_src, edge_dst, etype_ptr, etype_list,
    indptr, indptr_offset, adj, inv_functional, ofptr, oflist, ofoff, ofadj,
    budget, constrained,
    mslot, cslot, counter, nodes, ntau, edges, cand, cand_w, cand_alive,
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

    ``mslot``/``cslot`` ``int64 [total nodes]`` hold ``stamp << 32 | position`` of the
    admitted nodes and of the candidates (one stamp per call). ``cand`` ``int64 [4, C]``
    (type, id, seed, tau), ``cand_w`` ``float64 [C]`` and ``cand_alive`` ``uint8 [C]``
    are the candidate buffers.

    Returns:
        ``(status, nn, ne, counter)``: :data:`DONE`, or :data:`FULL_BUFFERS` when
        ``nodes``/``ntau``/``edges``/the candidate buffers are too small -- grow them
        all and call again (the batch comes out the same). Output in
        :func:`sample_trees`'s packed layout (the "tree" field holding the seed each
        node was reached through); an edge's hop is the later of its endpoints' hops
        (at least 1).
    """
    L = budget.shape[1]
    T_count = budget.shape[0]
    cap_n = nodes.shape[1]
    cap_e = edges.shape[1]
    cap_c = cand.shape[1]
    if counter >= _INT32_MAX:
        mslot[:] = 0
        cslot[:] = 0
        counter = 1
    s = counter
    counter += 1
    state = tree_state(rng_seed, 0)
    B = seed_type.shape[0]
    if B > cap_n:
        return FULL_BUFFERS, 0, 0, counter
    nn = 0
    for b in range(B):
        st = seed_type[b]
        sv = seed_node[b]
        nodes[0, nn] = sv
        nodes[1, nn] = (b << 24) | (st << 8)
        ntau[nn] = seed_time[b]
        key = node_offset[st] + sv
        if (mslot[key] >> 32) != s:  # a node given twice as a seed resolves to its first row
            mslot[key] = (s << 32) | nn
        nn += 1

    nc = 0
    begin = 0
    end = nn
    for h in range(L):
        for i in range(begin, end):
            v = nodes[0, i]
            T = (nodes[1, i] >> 8) & 0xFFFF
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
                if nc + (hi - lo) > cap_c:
                    return FULL_BUFFERS, 0, 0, counter
                w = 1.0 / (hi - lo)
                off = node_offset[S]
                for p in range(lo, hi):
                    if p + _AHEAD < hi:
                        _prefetch(mslot, off + adj[p + _AHEAD, 0])
                        _prefetch(cslot, off + adj[p + _AHEAD, 0])
                    key = off + adj[p, 0]
                    if (mslot[key] >> 32) == s:
                        continue
                    cx = cslot[key]
                    if (cx >> 32) != s:
                        cx = (s << 32) | nc
                        cslot[key] = cx
                        cand[0, nc] = S
                        cand[1, nc] = adj[p, 0]
                        cand[2, nc] = nodes[1, i] >> 24
                        cand[3, nc] = tau
                        cand_w[nc] = 0.0
                        cand_alive[nc] = 1
                        nc += 1
                    cand_w[cx & _LOW32I] += w
        for T in range(T_count):
            want = budget[T, h]
            if want == 0:
                continue
            m = 0
            for c in range(nc):
                if cand_alive[c] != 0 and cand[0, c] == T:
                    m += 1
            if m == 0:
                continue
            idx = np.empty(m, np.int64)
            m = 0
            for c in range(nc):
                if cand_alive[c] != 0 and cand[0, c] == T:
                    idx[m] = c
                    m += 1
            if want > 0 and m > want:
                keys = np.empty(m, np.float64)
                for j in range(m):
                    state, u = _unit(state)
                    wt = cand_w[idx[j]]
                    keys[j] = -np.log(u) / (wt * wt)
                chosen = idx[np.argsort(keys, kind="mergesort")[:want]]
            else:
                chosen = idx
            if nn + chosen.shape[0] > cap_n:
                return FULL_BUFFERS, 0, 0, counter
            for c in chosen:
                cand_alive[c] = 0
                mslot[node_offset[T] + cand[1, c]] = (s << 32) | nn
                nodes[0, nn] = cand[1, c]
                nodes[1, nn] = (cand[2, c] << 24) | (T << 8) | (h + 1)
                ntau[nn] = cand[3, c]
                nn += 1
        begin = end
        end = nn

    ne = 0
    for i in range(nn):
        v = nodes[0, i]
        T = (nodes[1, i] >> 8) & 0xFFFF
        tau = ntau[i]
        # Edges out of i along inverse-functional types (i's own foreign keys), read
        # from i's side; the scan below then skips those types.
        kf = ofptr[T + 1] - ofptr[T]
        if kf > 0:
            if ne + kf > cap_e:
                return FULL_BUFFERS, 0, 0, counter
            base = ofoff[T] + 3 * kf * v
            for j2 in range(kf):
                w = ofadj[base + 3 * j2]
                if w < 0:
                    continue
                e = oflist[ofptr[T] + j2]
                x = mslot[node_offset[edge_dst[e]] + w]
                if (x >> 32) != s:
                    continue
                j = x & _LOW32I
                if constrained and (tau > ntau[j] or (timed[T] and ofadj[base + 3 * j2 + 1] > ntau[j])):
                    continue
                hop = max(nodes[1, i] & 0xFF, nodes[1, j] & 0xFF, 1)
                edges[0, ne] = (e << 8) | hop
                edges[1, ne] = (i << 32) | j
                edges[2, ne] = ofadj[base + 3 * j2 + 2]
                ne += 1
        for k in range(etype_ptr[T], etype_ptr[T + 1]):
            e = etype_list[k]
            if inv_functional[e]:
                continue
            base = indptr_offset[e] + v
            lo = indptr[base]
            hi = indptr[base + 1]
            S = edge_src[e]
            if constrained and timed[S]:
                hi = _upper_bound(adj, lo, hi, tau)
            if ne + (hi - lo) > cap_e:
                return FULL_BUFFERS, 0, 0, counter
            off = node_offset[S]
            for p in range(lo, hi):
                x = mslot[off + adj[p, 0]]
                if (x >> 32) != s:
                    continue
                j = x & _LOW32I
                if constrained and ntau[j] > tau:
                    continue
                hop = max(nodes[1, i] & 0xFF, nodes[1, j] & 0xFF, 1)
                edges[0, ne] = (e << 8) | hop
                edges[1, ne] = (j << 32) | i
                edges[2, ne] = adj[p, 2]
                ne += 1
    return DONE, nn, ne, counter


@njit(cache=True, nogil=True)
def count_bins(nodes, nn, edges, ne, ncount, ecount, L):
    """Fill ``ncount`` ``[T * (L + 1)]`` / ``ecount`` ``[E * L]`` with the number of
    nodes per (type, hop) and edges per (edge type, hop) of a kernel's output."""
    H = L + 1
    ncount[:] = 0
    ecount[:] = 0
    for i in range(nn):
        info = nodes[1, i]
        ncount[((info >> 8) & 0xFFFF) * H + (info & 0xFF)] += 1
    for i in range(ne):
        info = edges[0, i]
        ecount[(info >> 8) * L + (info & 0xFF) - 1] += 1


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
        info = nodes[1, i]
        t = (info >> 8) & 0xFFFF
        b = t * H + (info & 0xFF)
        p = nstart[b]
        nstart[b] = p + 1
        n_id[p] = nodes[0, i]
        batch[p] = info >> 24
        newpos[i] = p - type_base[t]
    for i in range(ne):
        info = edges[0, i]
        et = info >> 8
        b = et * L + (info & 0xFF) - 1
        p = estart[b]
        estart[b] = p + 1
        m = ebase[et + 1] - ebase[et]
        q = 2 * ebase[et] + (p - ebase[et])
        pos = edges[1, i]
        ei[q] = newpos[pos >> 32]
        ei[q + m] = newpos[pos & _LOW32I]
        e_id[p] = edges[2, i]
