"""The temporal heterogeneous samplers: semantics against brute force, uniformity,
determinism across threads and worker processes, and relbench.modeling on the batches."""

from __future__ import annotations

import itertools
import threading
from collections import Counter, defaultdict
from typing import Optional

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from torch_geometric.data import HeteroData

from rdlviz.errors import ConfigError
from rdlviz.sampling import BudgetLoader, NeighborLoader, TemporalCSR, sample, sample_budget
from rdlviz.sampling import sampler as sampler_mod
from rdlviz.sampling.sampler import sample_budget_ids

HYPO = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- graphs ---------------------------------------------------------------------------


class Spec:
    """A small graph in plain Python: the ground truth the brute force reads."""

    def __init__(self, num, time, edges):
        self.num, self.time, self.edges = num, time, edges  # edges: et -> [(src, dst)]

    def data(self) -> HeteroData:
        d = HeteroData()
        for t, n in self.num.items():
            d[t].x = torch.arange(n, dtype=torch.float32).view(-1, 1) + 0.5
            if self.time[t] is not None:
                d[t].time = torch.tensor(self.time[t], dtype=torch.int64)
        for et, pairs in self.edges.items():
            ei = torch.tensor(pairs, dtype=torch.int64).t().reshape(2, -1)
            d[et].edge_index = ei
            d[et].w = torch.arange(len(pairs), dtype=torch.float32)
        return d

    def timed(self, t) -> bool:
        return self.time[t] is not None

    def valid(self, et, v, tau, use_time=True):
        """Edge ids of ``et`` into ``v`` whose source is not newer than ``tau``."""
        s_type = et[0]
        out = [i for i, (s, d) in enumerate(self.edges[et]) if d == v]
        if use_time and self.timed(s_type):
            out = [i for i in out if self.time[s_type][self.edges[et][i][0]] <= tau]
        return out

    def by_recency(self, et, eids):
        s_type = et[0]
        return sorted(eids, key=lambda i: (self.time[s_type][self.edges[et][i][0]], i))


@st.composite
def graphs(draw, max_nodes=7, max_edges=14):
    types = ["A", "B", "C"][: draw(st.integers(2, 3))]
    num = {t: draw(st.integers(1, max_nodes)) for t in types}
    timed = {t: draw(st.booleans()) for t in types}
    timed[types[0]] = True  # at least one timed type
    time = {t: (draw(st.lists(st.integers(0, 6), min_size=num[t], max_size=num[t])) if timed[t] else None)
            for t in types}
    pairs = [(s, d) for s in types for d in types]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=4))
    edges = {}
    for i, (s, d) in enumerate(chosen):
        n = draw(st.integers(0, max_edges))
        edges[(s, f"r{i}", d)] = [(draw(st.integers(0, num[s] - 1)), draw(st.integers(0, num[d] - 1)))
                                  for _ in range(n)]
    return Spec(num, time, edges)


# -- brute force ----------------------------------------------------------------------


def reference_trees(spec, seeds, taus, fan, last, use_time=True):
    """Deterministic trees (fan-outs -1 / enough / "last"): (nodes, edges) sets per tree."""
    ets = list(spec.edges)
    L = len(next(iter(fan.values())))
    nodes, edges = set(), Counter()
    for b, ((st_, sv), tau) in enumerate(zip(seeds, taus)):
        seen = {(st_, sv): 0}
        nodes.add((b, st_, sv, 0))
        frontier = [(st_, sv)]
        for h in range(L):
            new = []
            for (T, v) in frontier:
                for et in ets:
                    if et[2] != T or fan[et][h] == 0:
                        continue
                    cand = spec.valid(et, v, tau, use_time)
                    k = fan[et][h]
                    if k > 0 and len(cand) > k:
                        assert last and spec.timed(et[0]) and use_time, "not deterministic"
                        cand = spec.by_recency(et, cand)[-k:]
                    for i in cand:
                        w = (et[0], spec.edges[et][i][0])
                        if w not in seen:
                            seen[w] = h + 1
                            nodes.add((b, w[0], w[1], h + 1))
                            new.append(w)
                        edges[(b, et, w[1], v, i, h + 1)] += 1
            frontier = new
    return nodes, edges


def hops_of(counts):
    return [h for h, c in enumerate(counts) for _ in range(c)]


def batch_tables(out):
    """(nodes set, edges Counter) of a sampled batch in the reference's terms."""
    nodes, edges, where = set(), Counter(), {}
    for t in out.node_types:
        hop = hops_of(out[t].num_sampled_nodes)
        assert len(hop) == out[t].n_id.numel()
        for i, (v, b) in enumerate(zip(out[t].n_id.tolist(), out[t].batch.tolist())):
            nodes.add((b, t, v, hop[i]))
            where[(t, i)] = (b, v, hop[i])
    for et in out.edge_types:
        ehop = hops_of(out[et].num_sampled_edges)  # 0-based: hop - 1
        ei, eid = out[et].edge_index, out[et].e_id.tolist()
        assert ei.shape[1] == len(eid) == len(ehop)
        for k in range(len(eid)):
            bs, s, _ = where[(et[0], int(ei[0, k]))]
            bd, d, _ = where[(et[2], int(ei[1, k]))]
            assert bs == bd, "an edge joins two different seeds' trees"
            edges[(bd, et, s, d, eid[k], ehop[k] + 1)] += 1
    return nodes, edges, where


def check_neighbor_batch(spec, out, seeds, taus, fan, strategy, use_time=True):
    """Every property of a disjoint temporal batch, checked against the graph."""
    L = len(next(iter(fan.values())))
    B = len(seeds)
    nodes, edges, where = batch_tables(out)
    # seeds first, batch = 0..B-1
    st_ = seeds[0][0]
    assert out[st_].batch_size == B
    assert out[st_].n_id[:B].tolist() == [v for _, v in seeds]
    assert out[st_].batch[:B].tolist() == list(range(B))
    for t in out.node_types:
        assert len(out[t].num_sampled_nodes) == L + 1
        if "x" in out[t]:  # features gathered at n_id
            assert torch.equal(out[t].x.view(-1), out[t].n_id.float() + 0.5)
    # within a tree a node appears once; time never exceeds the seed's
    keys = [(b, t, v) for (b, t, v, h) in nodes]
    assert len(keys) == len(set(keys)) == sum(out[t].n_id.numel() for t in out.node_types)
    for (b, t, v, h) in nodes:
        if h > 0 and use_time and spec.timed(t):
            assert spec.time[t][v] <= taus[b]
    # every sampled edge exists, runs from hop h-1 frontier, and is consistent
    per_frontier = defaultdict(list)
    hop_of = {(b, t, v): h for (b, t, v, h) in nodes}
    for (b, et, s, d, i, h), c in edges.items():
        assert spec.edges[et][i] == (s, d)
        assert hop_of[(b, et[2], d)] == h - 1
        assert hop_of[(b, et[0], s)] <= h
        per_frontier[(b, et, d)].extend([i] * c)
    for (b, t, v, h) in nodes:
        if h >= L:
            continue
        for et in spec.edges:
            if et[2] != t:
                continue
            got = per_frontier.get((b, et, v), [])
            valid = spec.valid(et, v, taus[b], use_time)
            k = fan[et][h]
            want = len(valid) if k < 0 else min(k, len(valid))
            assert len(got) == len(set(got)) == want, (et, v, got, valid, k)
            assert set(got) <= set(valid)
            if strategy == "last" and k > 0 and use_time and spec.timed(et[0]):
                assert set(got) == set(spec.by_recency(et, valid)[-k:])
    # hop h holds exactly the new endpoints of hop-h edges
    for b in range(B):
        for h in range(1, L + 1):
            got = {(t, v) for (bb, t, v, hh) in nodes if bb == b and hh == h}
            reached = {(et[0], s) for (bb, et, s, d, i, hh) in edges if bb == b and hh == h}
            earlier = {(t, v) for (bb, t, v, hh) in nodes if bb == b and hh < h}
            assert got == reached - earlier


def seeds_and_times(spec, draw_ints, n):
    t = "A"
    ids = [draw_ints(0, spec.num[t] - 1) for _ in range(n)]
    taus = [draw_ints(0, 6) for _ in range(n)]
    return [(t, v) for v in ids], taus


# -- neighbour sampling: semantics ------------------------------------------------------


@HYPO
@given(graphs(), st.data())
def test_uniform_batches_satisfy_every_invariant(spec, data):
    seeds, taus = seeds_and_times(spec, lambda a, b: data.draw(st.integers(a, b)), data.draw(st.integers(1, 6)))
    L = data.draw(st.integers(1, 3))
    fan = {et: [data.draw(st.integers(-1, 3)) for _ in range(L)] for et in spec.edges}
    threads = data.draw(st.sampled_from([1, 2]))
    out = sample(spec.data(), ("A", torch.tensor([v for _, v in seeds])), torch.tensor(taus), fan,
                 seed=data.draw(st.integers(0, 2**40)), num_threads=threads)
    check_neighbor_batch(spec, out, seeds, taus, fan, "uniform")
    # edge attributes are gathered at e_id
    for et in out.edge_types:
        assert torch.equal(out[et].w, out[et].e_id.float())


@HYPO
@given(graphs(), st.data())
def test_last_and_full_fanout_equal_the_brute_force_reference(spec, data):
    seeds, taus = seeds_and_times(spec, lambda a, b: data.draw(st.integers(a, b)), data.draw(st.integers(1, 5)))
    L = data.draw(st.integers(1, 3))
    strategy = data.draw(st.sampled_from(["last", "all"]))
    if strategy == "all":
        fan = {et: [-1] * L for et in spec.edges}
    else:  # "last" on timed sources is deterministic; untimed sources take everything
        fan = {et: [data.draw(st.integers(1, 3)) if spec.timed(et[0]) else -1 for _ in range(L)]
               for et in spec.edges}
    out = sample(spec.data(), ("A", torch.tensor([v for _, v in seeds])), torch.tensor(taus), fan,
                 temporal_strategy="last" if strategy == "last" else "uniform", seed=1)
    nodes, edges, _ = batch_tables(out)
    ref_nodes, ref_edges = reference_trees(spec, seeds, taus, fan, strategy == "last")
    assert nodes == ref_nodes
    assert edges == ref_edges
    check_neighbor_batch(spec, out, seeds, taus, fan, "last")


@HYPO
@given(graphs(), st.data())
def test_without_time_attr_every_neighbour_is_reachable(spec, data):
    seeds, taus = seeds_and_times(spec, lambda a, b: data.draw(st.integers(a, b)), 3)
    fan = {et: [-1, -1] for et in spec.edges}
    d = spec.data()
    csr = TemporalCSR.from_data(d, time_attr=None)
    out = sample(csr, ("A", torch.tensor([v for _, v in seeds])), None, fan, seed=0)
    nodes, edges, _ = batch_tables(out)
    ref_nodes, ref_edges = reference_trees(spec, seeds, taus, fan, False, use_time=False)
    assert nodes == ref_nodes and edges == ref_edges
    assert "x" not in out["A"]  # a CSR alone gives structure only


def test_trees_of_different_seeds_are_disjoint_and_duplicates_within_a_tree_merge():
    # A0 <- B0, B1; B0 <- A0 (a cycle back to the seed) ; two seeds share everything
    spec = Spec({"A": 1, "B": 2}, {"A": [0], "B": [0, 0]},
                {("B", "ab", "A"): [(0, 0), (1, 0)], ("A", "ba", "B"): [(0, 0), (0, 1)]})
    out = sample(spec.data(), ("A", torch.tensor([0, 0])), torch.tensor([5, 5]), [-1, -1], seed=0)
    # each tree: A0 (seed), B0, B1 at hop 1; hop 2 returns to A0, which is not re-added
    assert out["A"].n_id.tolist() == [0, 0] and out["A"].num_sampled_nodes == [2, 0, 0]
    assert sorted(zip(out["B"].batch.tolist(), out["B"].n_id.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    ei = out["A", "ba", "B"].edge_index
    assert out["A", "ba", "B"].num_sampled_edges == [0, 4]
    # both hop-2 edges of tree b point at that tree's own seed row b
    assert sorted(zip(out["B"].batch[ei[1]].tolist(), ei[0].tolist())) == [(0, 0), (0, 0), (1, 1), (1, 1)]


def test_edge_types_missing_from_a_dict_get_no_neighbours():
    spec = Spec({"A": 2, "B": 3}, {"A": [0, 0], "B": [0, 1, 2]},
                {("B", "x", "A"): [(0, 0), (1, 0), (2, 1)], ("B", "y", "A"): [(0, 0), (2, 0)]})
    out = sample(spec.data(), ("A", torch.tensor([0])), torch.tensor([10]), {("B", "x", "A"): [-1]}, seed=0)
    assert out["B", "y", "A"].edge_index.shape == (2, 0)
    assert sorted(out["B"].n_id.tolist()) == [0, 1]


# -- uniformity -----------------------------------------------------------------------


def star(n_leaves=7):
    """One untimed hub with ``n_leaves`` leaves at times 0, 1, 2, ..."""
    return Spec({"hub": 1, "leaf": n_leaves}, {"hub": None, "leaf": list(range(n_leaves))},
                {("leaf", "to", "hub"): [(i, 0) for i in range(n_leaves)]})


def subset_counts(batches, k):
    counts = Counter()
    for out in batches:
        leaves = out["leaf"].n_id
        for b in out["leaf"].batch.unique().tolist():
            sel = tuple(sorted(leaves[out["leaf"].batch == b].tolist()))
            assert len(sel) == k
            counts[sel] += 1
    return counts


def assert_uniform(counts, n, k, draws):
    subsets = list(itertools.combinations(range(n), k))
    assert set(counts) <= set(subsets)
    observed = [counts.get(s, 0) for s in subsets]
    assert sum(observed) == draws
    p = stats.chisquare(observed).pvalue
    assert p > 1e-3, (p, observed)


@pytest.mark.parametrize("threads", [1, 2])
def test_uniform_draws_every_k_subset_equally_often(threads):
    # seed time 4 admits leaves 0..4: all 2-subsets of 5 must be equally likely
    d = star().data()
    draws = 6000
    out = sample(d, ("hub", torch.zeros(draws, dtype=torch.long)), torch.full((draws,), 4), [2],
                 seed=123, num_threads=threads)
    assert_uniform(subset_counts([out], 2), 5, 2, draws)


@pytest.fixture
def workers_always(monkeypatch):
    """Use worker processes whatever the batch size (these small test batches would
    otherwise be sampled in the main process: see ``BaseLoader._workers_pay``)."""
    monkeypatch.setattr(sampler_mod, "PARALLEL_MIN_S", 0.0)


def test_uniform_is_uniform_through_worker_processes(workers_always):
    d = star().data()
    n = 4000
    loader = NeighborLoader(d, [3], ("hub", torch.zeros(n, dtype=torch.long)), torch.full((n,), 5),
                            batch_size=500, seed=7, num_workers=2, num_threads=2)
    assert_uniform(subset_counts(list(loader), 3), 6, 3, n)


def test_last_takes_the_most_recent_admissible_neighbours():
    d = star().data()
    out = sample(d, ("hub", torch.tensor([0, 0, 0])), torch.tensor([4, 1, 100]), [3], temporal_strategy="last")
    got = {b: sorted(out["leaf"].n_id[out["leaf"].batch == b].tolist()) for b in range(3)}
    assert got == {0: [2, 3, 4], 1: [0, 1], 2: [4, 5, 6]}


# -- determinism ----------------------------------------------------------------------


def random_graph(seed=0, n_a=300, n_b=40, n_c=2000):
    rng = np.random.default_rng(seed)
    d = HeteroData()
    d["a"].x = torch.randn(n_a, 3)
    d["a"].time = torch.from_numpy(rng.integers(0, 10**6, n_a))
    d["b"].x = torch.randn(n_b, 2)
    d["c"].x = torch.randn(n_c, 4)
    d["c"].time = torch.from_numpy(rng.integers(0, 10**6, n_c))
    ar = torch.arange(n_c)
    for name, other, n in (("a", "a", n_a), ("b", "b", n_b)):
        fk = torch.from_numpy(rng.integers(0, n, n_c))
        d["c", f"f2p_{name}", other].edge_index = torch.stack([ar, fk])
        d[other, f"rev_f2p_{name}", "c"].edge_index = torch.stack([fk, ar])
    return d


def assert_same_batch(x, y):
    for t in x.node_types:
        for key in ("n_id", "batch", "x"):
            assert torch.equal(x[t][key], y[t][key]), (t, key)
        assert x[t].num_sampled_nodes == y[t].num_sampled_nodes
    for et in x.edge_types:
        assert torch.equal(x[et].edge_index, y[et].edge_index)
        assert torch.equal(x[et].e_id, y[et].e_id)


def test_same_seed_gives_identical_batches_across_threads_and_workers(workers_always):
    d = random_graph()
    seeds = torch.arange(300)
    base = sample(d, ("a", seeds), None, [6, 3], seed=11)
    assert_same_batch(base, sample(d, ("a", seeds), None, [6, 3], seed=11, num_threads=2))
    assert not torch.equal(base["c"].n_id, sample(d, ("a", seeds), None, [6, 3], seed=12)["c"].n_id)

    kw = dict(batch_size=64, shuffle=True, seed=5)
    one = list(NeighborLoader(d, [6, 3], ("a", None), **kw))
    for other in (NeighborLoader(d, [6, 3], ("a", None), num_threads=2, **kw),  # pipelined
                  NeighborLoader(d, [6, 3], ("a", None), num_threads=3, **kw),  # + 2 sampling threads
                  NeighborLoader(d, [6, 3], ("a", None), num_workers=2, **kw)):
        batches = list(other)
        assert len(batches) == len(one) == 5
        for x, y in zip(one, batches):
            assert_same_batch(x, y)
            assert torch.equal(x["a"].input_id, y["a"].input_id)
    # a new epoch reshuffles, and the plan covers every seed once
    loader = NeighborLoader(d, [6, 3], ("a", None), **kw)
    e0 = torch.cat([b["a"].input_id for b in loader])
    e1 = torch.cat([b["a"].input_id for b in loader])
    assert sorted(e0.tolist()) == sorted(e1.tolist()) == list(range(300))
    assert not torch.equal(e0, e1)
    loader.set_epoch(0)
    assert torch.equal(torch.cat([b["a"].input_id for b in loader]), e0)


@pytest.fixture(params=["inline", "parallel"])
def parallel_path(request, monkeypatch):
    """Force the per-batch decision of ``sampler.PARALLEL_MIN_S`` one way: ``inline``
    (never split or prefetch) or ``parallel`` (always); the default threshold leaves
    these small test batches inline."""
    monkeypatch.setattr(sampler_mod, "PARALLEL_MIN_S", float("inf") if request.param == "inline" else 0.0)
    return request.param


def _prefetch_threads():
    return {t for t in threading.enumerate() if t.name.startswith("rdlviz-prefetch")}


def test_inline_and_parallel_paths_give_identical_batches(parallel_path):
    d = random_graph()
    seeds = torch.arange(300)
    base = sample(d, ("a", seeds), None, [6, 3], seed=11)
    for threads in (2, 3):
        assert_same_batch(base, sample(d, ("a", seeds), None, [6, 3], seed=11, num_threads=threads))
    kw = dict(batch_size=64, shuffle=True, seed=5)
    one = list(NeighborLoader(d, [6, 3], ("a", None), **kw))
    before = _prefetch_threads()
    for threads in (2, 3):
        it = iter(NeighborLoader(d, [6, 3], ("a", None), num_threads=threads, **kw))
        batches = [next(it)]
        # the background thread exists exactly when the decision says prefetching pays
        assert bool(_prefetch_threads() - before) == (parallel_path == "parallel")
        batches += list(it)
        assert len(batches) == len(one)
        for x, y in zip(one, batches):
            assert_same_batch(x, y)
            assert torch.equal(x["a"].input_id, y["a"].input_id)
    inputs = {"a": None, "c": torch.arange(100)}
    bkw = dict(batch_size=40, shuffle=True, seed=2)
    for x, y in zip(BudgetLoader(d, [8, 8], inputs, **bkw), BudgetLoader(d, [8, 8], inputs, num_threads=2, **bkw)):
        assert_same_batch(x, y)


def test_parallel_work_is_decided_from_the_measured_cost(monkeypatch):
    from rdlviz.sampling.sampler import CostHint, num_chunks

    monkeypatch.setattr(sampler_mod, "PARALLEL_MIN_S", 1e-3)
    hint = CostHint()
    assert not hint.parallel_pays(512) and num_chunks(hint, 512, 4) == 1  # unknown: inline
    hint.cpu_per_seed = 1e-6  # 64 seeds: 0.064 ms, far below a hand-off's worth
    assert not hint.parallel_pays(64) and num_chunks(hint, 64, 2) == 1
    hint.cpu_per_seed = 5e-6  # 512 seeds: 2.56 ms: worth splitting, each thread >= 0.5 ms
    assert hint.parallel_pays(512)
    assert num_chunks(hint, 512, 1) == 1
    assert num_chunks(hint, 512, 2) == 2
    assert num_chunks(hint, 512, 16) == 5
    assert num_chunks(hint, 16, 16) == 1  # too few trees and too little work to split
    # a loader's estimate follows the batches it samples (thread CPU time)
    d = random_graph()
    loader = NeighborLoader(d, [6, 3], ("a", None), batch_size=64, seed=0)
    assert loader.cost_hint().cpu_per_seed is None
    next(iter(loader))
    h = loader.cost_hint()
    assert h.cpu_per_seed > 0 and h.ints_per_seed > 0
    assert NeighborLoader(d, [6, 3], ("a", None), batch_size=8).cost_hint() is h  # same graph and fan-outs
    assert NeighborLoader(d, [6, 2], ("a", None), batch_size=8).cost_hint() is not h


def test_workers_are_skipped_when_batches_are_too_small_to_repay_them(monkeypatch):
    d = random_graph()
    kw = dict(batch_size=48, shuffle=True, seed=9)
    one = list(NeighborLoader(d, [6, 3], ("a", None), **kw))
    monkeypatch.setattr(sampler_mod, "PARALLEL_MIN_S", 1e-3)  # the default
    loader = NeighborLoader(d, [6, 3], ("a", None), num_workers=2, **kw)
    small = list(loader)  # ~microseconds per batch: sampled here, no worker started
    assert loader._dl is None and loader.cost_hint().cpu_s(48) < 1e-3
    for x, y in zip(one, small):
        assert_same_batch(x, y)
    monkeypatch.setattr(sampler_mod, "PARALLEL_MIN_S", 0.0)  # now every batch pays
    big = list(loader)
    assert loader._dl is not None and len(big) == len(one)


@pytest.mark.parametrize("persistent", [False, True])
def test_workers_hand_batches_over_through_the_ring_or_by_value(monkeypatch, persistent):
    from rdlviz.sampling import loader as loader_mod

    d = random_graph()
    kw = dict(batch_size=48, shuffle=True, seed=9)
    inline = NeighborLoader(d, [6, 3], ("a", None), **kw)
    one = [list(inline), list(inline)]  # epochs 0 and 1
    bkw = dict(batch_size=40, shuffle=True, seed=2)
    inputs = {"a": None, "c": torch.arange(100)}
    one_b = list(BudgetLoader(d, [8, 8], inputs, **bkw))

    def check(expect_ring: bool, expect_value: Optional[bool]):
        released = Counter()
        real_release = loader_mod._Ring.release
        monkeypatch.setattr(loader_mod._Ring, "release", lambda self, slot: (released.update([slot]),
                                                                             real_release(self, slot)))
        monkeypatch.setattr(sampler_mod, "PARALLEL_MIN_S", 0.0)  # workers for these small batches
        loader = NeighborLoader(d, [6, 3], ("a", None), num_workers=2, persistent_workers=persistent, **kw)
        for epoch in range(2):  # compared after the whole epoch: no batch aliases the ring
            batches = list(loader)
            assert len(batches) == len(one[epoch])
            for x, y in zip(one[epoch], batches):
                assert_same_batch(x, y)
                assert torch.equal(x["a"].input_id, y["a"].input_id)
        budget = list(BudgetLoader(d, [8, 8], inputs, num_workers=2, **bkw))
        for x, y in zip(one_b, budget):
            assert_same_batch(x, y)
        total = len(one[0]) + len(one[1]) + len(budget)
        assert (released.total() > 0) == expect_ring  # batches handed over in a slot
        if expect_value is not None:  # the others: by value
            assert (released.total() < total) == expect_value
        monkeypatch.undo()

    # through ring slots (a batch much larger than the first ones may go by value)
    check(expect_ring=True, expect_value=None)
    # slots too short for any batch: every block travels by value in the message
    monkeypatch.setattr(loader_mod.BaseLoader, "_RING_MARGIN", 0.0)
    check(expect_ring=False, expect_value=True)
    # no free slot for every other batch (as if more were in flight than expected)
    calls = itertools.count()
    real_claim = loader_mod._Ring.claim
    monkeypatch.setattr(loader_mod._Ring, "claim", lambda self: None if next(calls) % 2 else real_claim(self))
    check(expect_ring=True, expect_value=True)


def test_seed_none_follows_torch_manual_seed():
    d = random_graph()
    torch.manual_seed(3)
    x = next(iter(NeighborLoader(d, [4, 2], ("a", None), batch_size=32, shuffle=True)))
    torch.manual_seed(3)
    y = next(iter(NeighborLoader(d, [4, 2], ("a", None), batch_size=32, shuffle=True)))
    assert_same_batch(x, y)


def test_loader_matches_pyg_conventions():
    d = random_graph()
    times = torch.full((300,), 500_000)
    loader = NeighborLoader(d, [5, 2], "a", input_time=times, batch_size=128, drop_last=True)
    assert len(loader) == 2
    assert len(NeighborLoader(d, [5, 2], ("a", None), batch_size=128)) == 3
    batch = next(iter(loader))
    assert batch["a"].batch_size == 128
    assert torch.equal(batch["a"].input_id, torch.arange(128))
    assert torch.equal(batch["a"].seed_time, times[:128])
    for t in batch.node_types:  # every node's time <= its seed's time
        if "time" in batch[t] and batch[t].n_id.numel():
            hop0 = batch[t].num_sampled_nodes[0]
            assert (batch[t].time[hop0:] <= batch["a"].seed_time[batch[t].batch[hop0:]]).all()
        assert torch.equal(batch[t].x, d[t].x[batch[t].n_id])
    # a boolean mask selects input nodes; a transform is applied to every batch
    mask = torch.zeros(300, dtype=torch.bool)
    mask[[3, 7]] = True
    out = next(iter(NeighborLoader(d, [2], ("a", mask), batch_size=8, transform=lambda b: (b, 1))))
    assert out[1] == 1 and out[0]["a"].n_id[:2].tolist() == [3, 7]
    assert loader(torch.tensor([5, 6]))["a"].n_id[:2].tolist() == [5, 6]


# -- budget sampling ------------------------------------------------------------------


def check_budget_batch(spec, out, seeds, taus, budget, constrained=True):
    L = len(next(iter(budget.values())))
    rows, hop, orig, tau_of = {}, {}, {}, {}
    for t in out.node_types:
        hs = hops_of(out[t].num_sampled_nodes)
        for i, (v, b) in enumerate(zip(out[t].n_id.tolist(), out[t].batch.tolist())):
            rows[(t, i)] = v
            if hs[i] > 0:
                assert (t, v) not in hop, "a node admitted twice"
                hop[(t, v)], orig[(t, v)] = hs[i], b
            elif (t, v) not in hop:
                hop[(t, v)], orig[(t, v)] = 0, b
            tau_of[(t, v)] = taus[orig[(t, v)]]
        for h in range(1, L + 1):
            k = budget[t][h - 1]
            assert k < 0 or out[t].num_sampled_nodes[h] <= k
    seeds_at = {}
    for b, (t, v) in enumerate(seeds):
        seeds_at.setdefault((t, v), b)
    for (t, v), h in hop.items():
        if h > 0 and constrained and spec.timed(t):
            assert spec.time[t][v] <= tau_of[(t, v)]

    def admissible(et, u):
        return [(et[0], spec.edges[et][i][0]) for i in spec.valid(et, u[1], tau_of[u], constrained)]

    # hop-h nodes are exactly min(k, |candidates|) of the candidates
    for h in range(1, L + 1):
        before = {u for u, hh in hop.items() if hh < h}
        cand = defaultdict(set)
        for u in before:
            for et in spec.edges:
                if et[2] == u[0]:
                    for w in admissible(et, u):
                        if w not in before:
                            cand[w[0]].add(w)
        for t in spec.num:
            got = {u for u, hh in hop.items() if hh == h and u[0] == t}
            assert got <= cand[t]
            k = budget[t][h - 1]
            assert len(got) == (len(cand[t]) if k < 0 else min(k, len(cand[t])))
            for w in got:  # reached through a node of the seed it is attributed to
                assert any(orig[u] == orig[w] and w in admissible(et, u)
                           for u in before for et in spec.edges if et[2] == u[0])
    # edges: exactly the graph's edges between sampled nodes that carry nothing newer
    # than the receiving node's seed time
    for et in out.edge_types:
        ei, eid = out[et].edge_index, out[et].e_id.tolist()
        got = Counter()
        for k in range(len(eid)):
            s, d = rows[(et[0], int(ei[0, k]))], rows[(et[2], int(ei[1, k]))]
            assert spec.edges[et][eid[k]] == (s, d)
            got[eid[k]] += 1
        want = Counter()
        for i, (s, d) in enumerate(spec.edges[et]):
            if (et[0], s) in hop and (et[2], d) in hop:
                if constrained and (tau_of[(et[0], s)] > tau_of[(et[2], d)] or (
                        spec.timed(et[0]) and spec.time[et[0]][s] > tau_of[(et[2], d)])):
                    continue
                want[i] += 1
        assert got == want, et


@HYPO
@given(graphs(max_nodes=6, max_edges=10), st.data())
def test_budget_batches_satisfy_every_invariant(spec, data):
    # distinct seeds: a node given twice as a seed resolves to its first row as a neighbour
    ids = data.draw(st.lists(st.integers(0, spec.num["A"] - 1), min_size=1, max_size=4, unique=True))
    taus = [data.draw(st.integers(0, 6)) for _ in ids]
    L = data.draw(st.integers(1, 3))
    budget = {t: [data.draw(st.integers(-1, 3)) for _ in range(L)] for t in spec.num}
    out = sample_budget(spec.data(), ("A", torch.tensor(ids)), torch.tensor(taus), budget,
                        seed=data.draw(st.integers(0, 2**40)))
    check_budget_batch(spec, out, [("A", v) for v in ids], taus, budget)


def test_budget_prefers_nodes_with_more_budget_squared():
    # seeds s0, s1; x reaches both (budget 1/2 + 1), y only s0 (budget 1/2):
    # P(x chosen first) = 1.5^2 / (1.5^2 + 0.5^2) = 0.9
    spec = Spec({"S": 2, "X": 2}, {"S": [0, 0], "X": None},
                {("X", "r", "S"): [(0, 0), (1, 0), (0, 1)]})
    csr = TemporalCSR.from_data(spec.data())
    n = 3000
    hits = sum(int(sample_budget_ids(csr, ("S", torch.tensor([0, 1])), None, [1], seed=i).n_id["X"][0] == 0)
               for i in range(n))
    assert stats.binomtest(hits, n, 0.9).pvalue > 1e-3, hits


def test_budget_loader_mixes_seed_types_and_is_reproducible(workers_always):
    d = random_graph()
    kw = dict(batch_size=40, shuffle=True, seed=2)
    inputs = {"a": None, "c": torch.arange(100)}
    one = list(BudgetLoader(d, [8, 8], inputs, **kw))
    for other in (BudgetLoader(d, [8, 8], inputs, num_workers=2, **kw),
                  BudgetLoader(d, [8, 8], inputs, num_threads=2, **kw)):
        batches = list(other)
        assert len(one) == len(batches) == 10
        for x, y in zip(one, batches):
            assert_same_batch(x, y)
    mixed = next(b for b in one if "input_id" in b["a"] and "input_id" in b["c"])
    na, nc = mixed["a"].batch_size, mixed["c"].batch_size
    assert na + nc == 40 and mixed.seed_time.numel() == 40
    # seed rows come first; batch indexes the graph-level seed_time across both types
    assert torch.equal(mixed["a"].batch[:na], torch.arange(na))
    assert torch.equal(mixed["c"].batch[:nc], torch.arange(na, 40))
    for t in ("a", "c"):
        assert (mixed[t].time <= mixed.seed_time[mixed[t].batch]).all()
    ids = torch.cat([b["c"].input_id for b in one if "input_id" in b["c"]])
    assert sorted(ids.tolist()) == list(range(100))


def test_unconstrained_budget_sampling_may_look_ahead():
    spec = Spec({"S": 1, "X": 3}, {"S": [0], "X": [1, 5, 9]},
                {("X", "r", "S"): [(0, 0), (1, 0), (2, 0)]})
    d = spec.data()
    free = sample_budget(d, ("S", torch.tensor([0])), torch.tensor([2]), [-1], time_constrained=False)
    held = sample_budget(d, ("S", torch.tensor([0])), torch.tensor([2]), [-1])
    assert sorted(free["X"].n_id.tolist()) == [0, 1, 2]
    assert held["X"].n_id.tolist() == [0]


# -- errors and the CSR ---------------------------------------------------------------


def test_bad_arguments_raise_config_errors():
    d = random_graph()
    cases = [
        lambda: NeighborLoader(d, {("x", "y", "z"): [2]}, "a"),
        lambda: NeighborLoader(d, {("c", "f2p_a", "a"): [2], ("c", "f2p_b", "b"): [2, 2]}, "a"),
        lambda: NeighborLoader(d, [2, -2], "a"),
        lambda: NeighborLoader(d, 2, "a"),
        lambda: NeighborLoader(d, [2], "a", temporal_strategy="first"),
        lambda: NeighborLoader(d, [2], "a", batch_size=0),
        lambda: NeighborLoader(d, [2], "nope"),
        lambda: NeighborLoader(d, [2], ("a", torch.tensor([300]))),
        lambda: NeighborLoader(d, [2], ("a", torch.tensor([1, 2])), input_time=torch.tensor([1.0, 2.0])),
        lambda: NeighborLoader(d, [2], ("a", torch.tensor([1, 2])), input_time=torch.tensor([1])),
        lambda: NeighborLoader(d, [2], ("a", torch.tensor([1])), input_time=torch.tensor([1]), time_attr=None),
        lambda: NeighborLoader(d, [2], "a", time_attr="when"),
        lambda: NeighborLoader(d, [2], "a", num_threads=0),
        lambda: BudgetLoader(d, {"zzz": [2]}, "a"),
        lambda: sample(d, ["a", 1], None, [2]),
    ]
    for make in cases:
        with pytest.raises(ConfigError):
            make()
    bad = random_graph()
    bad["a"].time = bad["a"].time.float()
    with pytest.raises(ConfigError, match="integer unix seconds"):
        TemporalCSR.from_data(bad)
    bad = random_graph()
    bad["c", "f2p_a", "a"].time = torch.zeros(2000, dtype=torch.long)
    with pytest.raises(ConfigError, match="edge attribute"):
        TemporalCSR.from_data(bad)


def test_csr_is_sorted_by_time_and_cached_per_graph():
    d = random_graph()
    csr = TemporalCSR.from_data(d)
    assert TemporalCSR.from_data(d) is csr
    e = csr.edge_types.index(("c", "f2p_a", "a"))
    deg = csr.degree(("c", "f2p_a", "a"))
    assert deg.sum() == 2000
    o = csr.indptr_offset[e]
    for v in range(5):
        lo, hi = csr.indptr[o + v], csr.indptr[o + v + 1]
        assert np.all(np.diff(csr.nbr_time[lo:hi]) >= 0)
        assert np.array_equal(csr.nbr_time[lo:hi], d["c"].time.numpy()[csr.nbr[lo:hi]])
        assert np.all(d["c", "f2p_a", "a"].edge_index[1].numpy()[csr.eid[lo:hi]] == v)
    d["c", "f2p_a", "a"].edge_index = d["c", "f2p_a", "a"].edge_index[:, :10]
    assert TemporalCSR.from_data(d) is not csr


# -- relbench.modeling on the batches ---------------------------------------------------


def relbench_forward(data, col_stats, batch, entity, channels=16):
    from relbench.modeling.nn import HeteroEncoder, HeteroGraphSAGE, HeteroTemporalEncoder

    torch.manual_seed(0)
    enc = HeteroEncoder(channels, {t: data[t].tf.col_names_dict for t in data.node_types}, col_stats,
                        torch_frame_model_kwargs={"channels": channels, "num_layers": 1})
    tenc = HeteroTemporalEncoder([t for t in data.node_types if "time" in data[t]], channels)
    gnn = HeteroGraphSAGE(data.node_types, data.edge_types, channels, num_layers=2)
    head = torch.nn.Linear(channels, 1)
    seed_time = batch[entity].seed_time
    x = enc(batch.tf_dict)
    rel = tenc(seed_time, batch.time_dict, batch.batch_dict)
    for t, r in rel.items():
        x[t] = x[t] + r
    x = gnn(x, batch.edge_index_dict, batch.num_sampled_nodes_dict, batch.num_sampled_edges_dict)
    out = head(x[entity][: seed_time.size(0)])
    out.sum().backward()
    assert out.shape == (batch[entity].batch_size, 1) and torch.isfinite(out).all()
    # messages reach the seeds: the loss depends on another table's encoder
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for t in data.node_types if t != entity for p in enc.encoders[t].parameters())
    return out


def unix_seconds(ser: pd.Series) -> torch.Tensor:
    return torch.from_numpy(ser.astype("datetime64[s]").astype("int64").to_numpy())


def test_relbench_models_run_on_batches_of_a_relbench_graph():
    from relbench.base import Database, Table
    from relbench.modeling.graph import make_pkey_fkey_graph
    from relbench.modeling.utils import get_stype_proposal

    rng = np.random.default_rng(0)
    n_u, n_i, n_t = 30, 12, 400
    users = pd.DataFrame({"user_id": np.arange(n_u), "age": rng.integers(18, 80, n_u).astype(float),
                          "country": rng.choice(["fr", "de", "cz"], n_u)})
    # (a table may not be called "items": relbench's ModuleDicts are keyed by table name)
    products = pd.DataFrame({"product_id": np.arange(n_i), "price": rng.random(n_i) * 10})
    when = pd.to_datetime("2020-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 365, n_t)), unit="D")
    txns = pd.DataFrame({"txn_id": np.arange(n_t), "user_id": rng.integers(0, n_u, n_t),
                         "product_id": rng.integers(0, n_i, n_t), "amount": rng.random(n_t), "date": when})
    db = Database({
        "users": Table(users, {}, pkey_col="user_id"),
        "products": Table(products, {}, pkey_col="product_id"),
        "txns": Table(txns, {"user_id": "users", "product_id": "products"}, pkey_col="txn_id", time_col="date"),
    })
    data, col_stats = make_pkey_fkey_graph(db, get_stype_proposal(db), text_embedder_cfg=None)
    data["txns"].time = unix_seconds(txns["date"])  # relbench's to_unix_time is off under pandas 3
    seed_time = unix_seconds(pd.Series(pd.to_datetime(["2020-07-01"] * n_u)))
    loader = NeighborLoader(data, [8, 4], ("users", None), input_time=seed_time, batch_size=16, seed=0,
                            temporal_strategy="last")
    for batch in loader:
        assert (batch["txns"].time <= batch["users"].seed_time[batch["txns"].batch]).all()
        relbench_forward(data, col_stats, batch, "users")


def f1_graph(f1):
    """rel-f1 as relbench builds it (text columns left out), with unix-second times.

    The materialised TensorFrames are cached under RDLVIZ_HOME, keyed by the database's
    shape and the column types, so reruns skip the materialisation."""
    import hashlib
    import os

    from relbench.modeling.graph import make_pkey_fkey_graph
    from relbench.modeling.utils import get_stype_proposal
    from torch_frame import stype

    db = f1.get_db()
    stypes = get_stype_proposal(db)
    for cols in stypes.values():
        for c in [c for c, s in cols.items() if s == stype.text_embedded]:
            del cols[c]
    key = repr(sorted((n, len(t.df), list(t.df.columns), sorted((c, str(s)) for c, s in stypes[n].items()))
                      for n, t in db.table_dict.items()))
    cache = os.path.join(os.environ["RDLVIZ_HOME"], "sampling-f1-graph", hashlib.sha1(key.encode()).hexdigest()[:16])
    data, col_stats = make_pkey_fkey_graph(db, stypes, text_embedder_cfg=None, cache_dir=cache)
    for name, table in db.table_dict.items():
        if table.time_col is not None:
            data[name].time = unix_seconds(table.df[table.time_col])
    return data, col_stats


@pytest.mark.f1
def test_relbench_models_run_on_rel_f1_batches(f1):
    data, col_stats = f1_graph(f1)
    table = f1.load_task("driver-dnf").get_table("train")
    nodes = torch.from_numpy(table.df["driverId"].to_numpy())
    times = unix_seconds(table.df["date"])
    loader = NeighborLoader(data, [128, 64], ("drivers", nodes), input_time=times, batch_size=512,
                            shuffle=True, seed=0, num_threads=2)
    batch = next(iter(loader))
    for t in batch.node_types:
        if "time" in batch[t]:
            assert (batch[t].time <= batch["drivers"].seed_time[batch[t].batch]).all(), t
    assert batch["drivers"].n_id[:512].tolist() == nodes[batch["drivers"].input_id].tolist()
    # (a smaller batch keeps the CPU forward/backward pass quick)
    relbench_forward(data, col_stats, loader(torch.arange(96)), "drivers")
    # the pretraining pattern: result rows as seeds at their own time
    small = sample(data, ("results", torch.arange(0, 20000, 313)), None, [8, 4, 2], seed=0)
    for t in small.node_types:
        if "time" in small[t]:
            assert (small[t].time <= small["results"].seed_time[small[t].batch]).all(), t
    bud = sample_budget(data, {"results": torch.arange(0, 20000, 313), "drivers": torch.arange(64)},
                        {"results": data["results"].time[torch.arange(0, 20000, 313)],
                         "drivers": torch.full((64,), int(data["results"].time.median()))},
                        [64, 64, 64], seed=0)
    for t in bud.node_types:
        assert all(c <= 64 for c in bud[t].num_sampled_nodes[1:])
        if "time" in bud[t]:
            assert (bud[t].time <= bud.seed_time[bud[t].batch]).all(), t


# -- history frozen at a cutoff ---------------------------------------------------------


def test_frozen_history_never_samples_a_row_after_the_cutoff():
    from rdlviz.sampling import freeze_history

    d = random_graph(seed=3)
    cut = 500_000
    seeds, times = torch.arange(40), torch.full((40,), 900_000)
    view = freeze_history(d, cut)
    assert view["a"].x is d["a"].x and view["c", "f2p_a", "a"].edge_index is d["c", "f2p_a", "a"].edge_index
    assert torch.equal(d["c"].time[d["c"].time <= cut], view["c"].time[d["c"].time <= cut])

    def newest(data):  # the latest original time of any sampled timed row
        out = sample(data, ("b", seeds), times, [16, 8], seed=0)
        return max(int(d[t].time[out[t].n_id].max()) for t in ("a", "c") if out[t].n_id.numel())

    assert newest(d) > cut  # the seeds' own time lets later rows in ...
    assert newest(view) <= cut  # ... the frozen view does not
    # a kept type keeps its times (the seeds' own type)
    assert torch.equal(freeze_history(d, cut, keep=["a"])["a"].time, d["a"].time)


def test_stale_seed_times_stay_within_the_horizon_and_follow_the_seed():
    from rdlviz.sampling import stale_seed_times

    t = torch.arange(1_000, dtype=torch.int64) * 10**6
    h = 40 * 30 * 86400
    a = stale_seed_times(t, h, seed=1)
    assert a.dtype == torch.int64 and bool(((a <= t) & (a >= t - h)).all())
    assert torch.equal(a, stale_seed_times(t, h, seed=1))
    assert not torch.equal(a, stale_seed_times(t, h, seed=2))
    assert float((t - a).float().mean()) == pytest.approx(h / 2, rel=0.1)  # uniform staleness
    assert torch.equal(stale_seed_times(t, 0, seed=1), t)
    with pytest.raises(ValueError, match="horizon"):
        stale_seed_times(t, -1, seed=0)
