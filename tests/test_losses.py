"""The pretraining objectives: scale (chance = 1), learnability, gradients, negatives that
are never copies or true links, argument checks, linear memory, determinism."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import torch_frame
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch_geometric.data import HeteroData

from rdlviz.errors import ConfigError
from rdlviz.pretrain.corruption import Corruption
from rdlviz.pretrain.losses import (
    LOSSES,
    ContextContrastiveLoss,
    LinkContrastiveLoss,
    MaskedCellReconstructionLoss,
    RowContrastiveLoss,
    normalized_info_nce,
)
from rdlviz.pretrain.losses._nce import module_key, score_negatives

RES = ("results", "f2p_driverId", "drivers")
RES_REV = ("drivers", "rev_f2p_driverId", "results")
RACE = ("results", "f2p_raceId", "races")
RACE_REV = ("races", "rev_f2p_raceId", "results")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These tensors are tiny: intra-op threads only add synchronisation cost (10x slower
    # on a loaded 2-core machine). Restored afterwards for the rest of the session.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class MaxNumel(TorchDispatchMode):
    """Records the largest tensor any aten op produces (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.max, self.op = 0, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.numel() > self.max:
                self.max, self.op = t.numel(), func
        return out


def _train(loss_fn, params, closure, steps=300, lr=0.05):
    opt = torch.optim.Adam(list(params) + list(loss_fn.parameters()), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = closure()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(closure())


def _two_fkeys(n_res=40, n_drv=8, n_race=5):
    """results -> drivers and results -> races; (driver, race) pairs are all distinct."""
    r = torch.arange(n_res)
    e_drv = torch.stack([r, r % n_drv])
    e_race = torch.stack([r, r % n_race])
    ei = {RES: e_drv, RES_REV: e_drv.flip(0), RACE: e_race, RACE_REV: e_race.flip(0)}
    sizes = {"results": n_res, "drivers": n_drv, "races": n_race}
    return ei, sizes


# ---------------------------------------------------------------------------------------
# normalized InfoNCE
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("K", [1, 7, 255])
def test_nce_equal_scores_is_exactly_one(K):
    pos, neg = torch.full((5,), 3.7), torch.full((5, K), 3.7)
    assert float(normalized_info_nce(pos, neg)) == pytest.approx(1.0, abs=1e-6)
    mask = torch.rand(5, K) < 0.5
    mask[:, 0] = True
    assert float(normalized_info_nce(pos, neg, mask)) == pytest.approx(1.0, abs=1e-6)


def test_nce_matches_cross_entropy_and_counts_only_valid_negatives():
    torch.manual_seed(0)
    pos, neg = torch.randn(6), torch.randn(6, 9)
    ref = F.cross_entropy(torch.cat([pos[:, None], neg], 1) / 0.5, torch.zeros(6, dtype=torch.long),
                          reduction="none") / math.log(10)
    assert torch.allclose(normalized_info_nce(pos, neg, temperature=0.5, reduction="none"), ref, atol=1e-6)
    # masking = removing the columns
    mask = torch.ones(6, 9, dtype=torch.bool)
    mask[:, 4:] = False
    ref4 = F.cross_entropy(torch.cat([pos[:, None], neg[:, :4]], 1), torch.zeros(6, dtype=torch.long),
                           reduction="none") / math.log(5)
    assert torch.allclose(normalized_info_nce(pos, neg, mask, reduction="none"), ref4, atol=1e-6)
    # an anchor without valid negatives is skipped, not counted as 0
    mask[2] = False
    out = normalized_info_nce(pos, neg, mask, reduction="none")
    assert out.shape == (5,)
    assert float(normalized_info_nce(pos, neg, mask)) == pytest.approx(float(out.mean()), abs=1e-6)


def test_nce_no_anchor_gives_attached_zero():
    pos = torch.randn(3, requires_grad=True)
    neg = torch.randn(3, 4, requires_grad=True)
    loss = normalized_info_nce(pos, neg, torch.zeros(3, 4, dtype=torch.bool))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()


def test_nce_stable_at_small_temperature():
    pos = torch.tensor([900.0, 50.0, 10.0], requires_grad=True)
    neg = torch.tensor([[1000.0, 880.0], [-40.0, 60.0], [10.0, 10.0]], requires_grad=True)
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    # the naive formula overflows here
    assert not torch.isfinite(torch.exp(neg.detach() / 1e-3)).all()
    loss = normalized_info_nce(pos, neg, mask, temperature=1e-3)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
    # anchor 2 ties its negatives: chance level (up to float32 rounding of logits ~1e4);
    # anchor 1: beats its one valid negative by 90 / 1e-3 (the masked 60 would beat it)
    per = normalized_info_nce(pos.detach(), neg.detach(), mask, temperature=1e-3, reduction="none")
    assert float(per[2]) == pytest.approx(1.0, abs=1e-4)
    assert float(per[1]) == pytest.approx(0.0, abs=1e-6)
    assert float(per[0]) == pytest.approx(100.0 / 1e-3 / math.log(3), rel=1e-4)


@pytest.mark.parametrize("tau", [0, -1.0, float("inf"), float("nan"), None, True])
def test_nce_rejects_bad_temperature(tau):
    with pytest.raises(ConfigError, match="temperature"):
        normalized_info_nce(torch.zeros(2), torch.zeros(2, 2), temperature=tau)


# ---------------------------------------------------------------------------------------
# negatives and scores
# ---------------------------------------------------------------------------------------


def test_score_negatives_never_self_exactly_k_and_uniform():
    torch.manual_seed(0)
    q, keys = torch.randn(50, 4, dtype=torch.double), torch.randn(50, 4, dtype=torch.double)
    own = torch.arange(50)
    cand, s, valid = score_negatives(q, keys, 10, self_index=own)
    assert cand.shape == (11,) and len(set(cand.tolist())) == 11  # distinct rows
    assert s.shape == valid.shape == (50, 11)
    assert torch.allclose(s, q @ keys[cand].t())
    assert not valid[cand, torch.arange(11)].any()  # an anchor is never its own negative
    assert (valid.sum(dim=1) == 10).all()  # every anchor keeps exactly k
    # fewer rows than k + 1: every anchor against all the others
    cand, s, valid = score_negatives(q[:5], keys[:5], 10, self_index=torch.arange(5))
    assert cand.sort().values.tolist() == list(range(5)) and (valid.sum(dim=1) == 4).all()
    # anchors that are not candidates: min(k, N) columns, all valid
    cand, s, valid = score_negatives(q[:3], keys[:5], 10)
    assert cand.numel() == 5 and valid is None and s.shape == (3, 5)
    # each anchor's negatives are a uniform subset of the other rows: N=6, k=2, many draws
    counts = torch.zeros(2, 6)
    for _ in range(3000):
        cand, _, valid = score_negatives(q[:2], keys[:6], 2, self_index=torch.tensor([0, 5]))
        for a in range(2):
            counts[a] += torch.bincount(cand[valid[a]], minlength=6)
    assert counts[0, 0] == 0 and counts[1, 5] == 0
    expected = 3000 * 2 / 5
    for a, others in ((0, slice(1, 6)), (1, slice(0, 5))):
        assert ((counts[a, others] - expected).abs() < 5 * math.sqrt(expected)).all(), counts


def test_score_negatives_gradients_match_the_dense_product():
    torch.manual_seed(0)
    q = torch.randn(7, 3, dtype=torch.double, requires_grad=True)
    k = torch.randn(11, 3, dtype=torch.double, requires_grad=True)
    torch.manual_seed(1)
    cand, s, _ = score_negatives(q, k, 5)
    (s * torch.arange(5.0, dtype=torch.double)).sum().backward()
    q2, k2 = q.detach().clone().requires_grad_(), k.detach().clone().requires_grad_()
    ((q2 @ k2.t())[:, cand] * torch.arange(5.0, dtype=torch.double)).sum().backward()
    assert torch.allclose(q.grad, q2.grad) and torch.allclose(k.grad, k2.grad)
    with pytest.raises(ConfigError, match="k must be"):
        score_negatives(q, k, 0)
    with pytest.raises(ConfigError, match="query"):
        score_negatives(q, k[:, :2], 3)


# ---------------------------------------------------------------------------------------
# row
# ---------------------------------------------------------------------------------------


def test_row_chance_level_at_init():
    loss_fn = RowContrastiveLoss(["a", "b"], 16)
    zero = {"a": torch.zeros(30, 16), "b": torch.zeros(300, 16)}
    assert float(loss_fn(zero, zero)) == pytest.approx(1.0, abs=1e-6)
    torch.manual_seed(0)
    h = {k: 1e-3 * torch.randn_like(v) for k, v in zero.items()}
    assert float(loss_fn(h, {k: v + 1e-4 * torch.randn_like(v) for k, v in h.items()})) == pytest.approx(1.0, abs=0.01)
    assert loss_fn.last_breakdown["b"][1] == 300


def test_row_learns_and_reaches_every_projection():
    torch.manual_seed(0)
    loss_fn = RowContrastiveLoss(["a", "b"], 16, max_negatives=31)
    h = {"a": torch.randn(64, 16, requires_grad=True), "b": torch.randn(20, 16, requires_grad=True)}
    hc = {k: torch.randn_like(v).requires_grad_() for k, v in h.items()}
    first = loss_fn(h, hc)
    first.backward()
    for name, p in loss_fn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert float(first) > 0.8
    final = _train(loss_fn, [*h.values(), *hc.values()], lambda: loss_fn(h, hc))
    assert final < 0.2


def _identity_row_loss(C):
    loss_fn = RowContrastiveLoss(["t"], C)
    with torch.no_grad():
        loss_fn.proj[module_key("t")].weight.copy_(torch.eye(C))
    return loss_fn


def test_row_copy_of_anchor_is_never_a_negative():
    e = torch.eye(4) * 10
    h = {"t": torch.stack([e[0], e[0], e[1], e[2], e[3], -e[1]])}  # rows 0 and 1: one global row
    n_id = {"t": torch.tensor([7, 7, 1, 2, 3, 4])}
    loss_fn = _identity_row_loss(4)
    assert float(loss_fn(h, h, n_id)) < 1e-3
    # without ids the copy is a negative as good as the positive: >= log 2 / log 6 for 2 anchors
    assert float(loss_fn(h, h)) > 2 * math.log(2) / math.log(6) / 6 - 1e-4
    # a table whose rows are all one global row has nothing to contrast
    same = {"t": torch.tensor([3, 3, 3, 3, 3, 3])}
    hh = {"t": h["t"].clone().requires_grad_()}
    out = loss_fn(hh, hh, same)
    assert float(out) == 0.0
    out.backward()  # still attached to the graph


def test_row_same_id_never_sampled_many_rows():
    # 500 rows from 50 global rows; K < N, so the sampled negatives are exercised
    torch.manual_seed(0)
    n_id = torch.arange(500) % 50
    base = 10 * F.normalize(torch.randn(50, 32), dim=1)
    h = {"t": base[n_id]}
    loss_fn = _identity_row_loss(32)
    loss_fn.max_negatives = 64
    with_ids = float(loss_fn(h, h, {"t": n_id}))
    without = float(loss_fn(h, h))
    assert with_ids < 0.05 < without


def test_row_deterministic_under_manual_seed():
    torch.manual_seed(0)
    loss_fn = RowContrastiveLoss(["t"], 8, max_negatives=5)
    h = {"t": torch.randn(40, 8)}
    hc = {"t": torch.randn(40, 8)}
    vals = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        vals.append(float(loss_fn(h, hc)))
    assert vals[0] == vals[1] != vals[2]


def test_row_memory_is_linear():
    N, C, K = 20_000, 8, 32
    torch.manual_seed(0)
    loss_fn = RowContrastiveLoss(["t"], C, max_negatives=K)
    h = {"t": torch.randn(N, C, requires_grad=True)}
    hc = {"t": torch.randn(N, C)}
    with MaxNumel() as rec:
        loss = loss_fn(h, hc)
        loss.backward()
    assert torch.isfinite(loss)
    # logits [N, 1 + (K+1)] (positive + the shared draw) -- never [N, N] = 4e8
    assert rec.max <= N * (K + 2), (rec.max, rec.op)
    assert h["t"].grad is not None


def test_row_argument_checks():
    with pytest.raises(ConfigError, match="temperature"):
        RowContrastiveLoss(["t"], 8, temperature=0)
    with pytest.raises(ConfigError, match="temperature"):
        RowContrastiveLoss(["t"], 8, temperature=-0.5)
    for k in (0, -3, 1.5, True):
        with pytest.raises(ConfigError, match="max_negatives"):
            RowContrastiveLoss(["t"], 8, max_negatives=k)
    with pytest.raises(ConfigError, match="channels"):
        RowContrastiveLoss(["t"], 0)
    with pytest.raises(ConfigError, match="empty"):
        RowContrastiveLoss([], 8)
    with pytest.raises(ConfigError, match="single string"):
        RowContrastiveLoss("drivers", 8)
    loss_fn = RowContrastiveLoss(["t"], 8)
    with pytest.raises(ConfigError, match="'t'.*\\[N, 8\\]"):
        loss_fn({"t": torch.zeros(5, 8)}, {"t": torch.zeros(4, 8)})
    with pytest.raises(ConfigError, match="corrupted view"):
        loss_fn({"t": torch.zeros(5, 8)}, None)


def test_table_names_that_clash_with_module_dict_methods():
    names = ["items", "keys", "a.b", "a%2Eb", "update"]
    loss_fn = RowContrastiveLoss(names, 4)
    assert len(list(loss_fn.parameters())) == len(names)
    # the keys survive a checkpoint round trip
    other = RowContrastiveLoss(names, 4)
    other.load_state_dict(loss_fn.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(loss_fn.parameters(), other.parameters()))
    h = {n: torch.randn(3, 4) for n in names}
    assert torch.isfinite(loss_fn(h, h))


# ---------------------------------------------------------------------------------------
# link
# ---------------------------------------------------------------------------------------


def test_link_chance_level_at_init():
    ei, sizes = _two_fkeys()
    loss_fn = LinkContrastiveLoss([RES, RACE], 16)
    zero = {t: torch.zeros(n, 16) for t, n in sizes.items()}
    assert float(loss_fn(zero, ei)) == pytest.approx(1.0, abs=1e-6)
    torch.manual_seed(0)
    h = {t: 1e-3 * torch.randn(n, 16) for t, n in sizes.items()}
    assert float(loss_fn(h, ei)) == pytest.approx(1.0, abs=0.01)
    # 40 edges per relation, both directions
    assert loss_fn.last_breakdown["results-f2p_driverId-drivers"][1] == 80


def test_link_learns_and_reaches_every_relation():
    ei, sizes = _two_fkeys()
    torch.manual_seed(0)
    loss_fn = LinkContrastiveLoss([RES, RACE], 16)
    h = {t: torch.randn(n, 16, requires_grad=True) for t, n in sizes.items()}
    loss_fn(h, ei).backward()
    for name, p in loss_fn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    final = _train(loss_fn, h.values(), lambda: loss_fn(h, ei))
    assert final < 0.2


def test_link_reverse_edges_alone_are_used_and_deduplicated():
    ei, sizes = _two_fkeys()
    loss_fn = LinkContrastiveLoss([RES], 8)
    torch.manual_seed(0)
    h = {t: torch.randn(n, 8) for t, n in sizes.items()}
    torch.manual_seed(1)
    only_rev = loss_fn(h, {RES_REV: ei[RES_REV]})
    n_rev = loss_fn.last_breakdown["results-f2p_driverId-drivers"][1]
    torch.manual_seed(1)
    only_f2p = loss_fn(h, {RES: ei[RES]})
    torch.manual_seed(1)
    both = loss_fn(h, {RES: ei[RES], RES_REV: ei[RES_REV]})
    n_both = loss_fn.last_breakdown["results-f2p_driverId-drivers"][1]
    assert n_rev == n_both == 80  # the same 40 pairs, counted once
    assert float(only_rev) == pytest.approx(float(only_f2p)) == pytest.approx(float(both))


def _identity_link_loss(C):
    loss_fn = LinkContrastiveLoss([RES], C)
    with torch.no_grad():
        loss_fn.weight[module_key(*RES)].copy_(torch.eye(C))
    return loss_fn


def test_link_linked_siblings_are_not_negatives():
    # parent 0 has three children pointing the same way: for parent anchors, the other two
    # are linked to it and must not be negatives
    e = torch.eye(4) * 10
    h = {"drivers": torch.stack([e[0], e[1], e[2]]),
         "results": torch.stack([e[0], e[0], e[0], e[1], e[2]])}
    ei = {RES: torch.tensor([[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]])}
    assert float(_identity_link_loss(4)(h, ei)) < 1e-3


def test_link_copies_of_the_true_partner_are_not_negatives():
    # drivers 0 and 1 are one global row sampled in two seed trees
    e = torch.eye(4) * 10
    h = {"drivers": torch.stack([e[0], e[0], e[1], e[2]]),
         "results": torch.stack([e[0], e[0], e[1], e[2]])}
    ei = {RES: torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]])}
    n_id = {"drivers": torch.tensor([5, 5, 6, 7]), "results": torch.tensor([10, 11, 12, 13])}
    loss_fn = _identity_link_loss(4)
    assert float(loss_fn(h, ei, n_id)) < 1e-3
    # without global ids the copy competes with the true parent
    assert float(loss_fn(h, ei)) > 0.1


def test_link_max_anchors_and_linear_memory():
    N, C, K, A = 20_000, 8, 32, 256
    torch.manual_seed(0)
    r = torch.arange(N)
    ei = {RES: torch.stack([r, torch.randint(N, (N,))])}
    h = {"results": torch.randn(N, C, requires_grad=True), "drivers": torch.randn(N, C, requires_grad=True)}
    n_id = {"results": r * 1_000_003, "drivers": r + 10**12}  # large global ids do not overflow
    loss_fn = LinkContrastiveLoss([RES], C, max_negatives=K, max_anchors=A)
    with MaxNumel() as rec:
        loss = loss_fn(h, ei, n_id)
        loss.backward()
    assert torch.isfinite(loss)
    assert loss_fn.last_breakdown["results-f2p_driverId-drivers"][1] == 2 * A
    # linear in nodes, edges and negatives: far below |dst| x |src| = 4e8
    assert rec.max <= max(2 * N, N * C, A * (K + 1)), (rec.max, rec.op)
    assert h["results"].grad.abs().sum() > 0 and h["drivers"].grad.abs().sum() > 0
    # the recorder does see a dense score matrix when one is built
    with MaxNumel() as dense:
        h["results"][:5000] @ h["drivers"][:5000].t()
    assert dense.max == 5000 * 5000


def test_link_argument_checks():
    with pytest.raises(ConfigError, match="rev_"):
        LinkContrastiveLoss([RES_REV], 8)
    with pytest.raises(ConfigError, match="triples"):
        LinkContrastiveLoss([("a", "b")], 8)
    with pytest.raises(ConfigError, match="temperature"):
        LinkContrastiveLoss([RES], 8, temperature=0.0)
    with pytest.raises(ConfigError, match="max_negatives"):
        LinkContrastiveLoss([RES], 8, max_negatives=0)
    with pytest.raises(ConfigError, match="max_anchors"):
        LinkContrastiveLoss([RES], 8, max_anchors=0)
    loss_fn = LinkContrastiveLoss([RES], 8)
    with pytest.raises(ConfigError, match="outside h"):
        loss_fn({"results": torch.zeros(3, 8), "drivers": torch.zeros(2, 8)}, {RES: torch.tensor([[0, 1], [0, 5]])})
    # a batch without the relation's edges contributes an attached zero
    h = {"results": torch.zeros(3, 8, requires_grad=True), "drivers": torch.zeros(2, 8)}
    out = loss_fn(h, {})
    assert float(out) == 0.0
    out.backward()


def test_link_deterministic_under_manual_seed():
    ei, sizes = _two_fkeys(200, 30, 7)
    loss_fn = LinkContrastiveLoss([RES, RACE], 8, max_negatives=4, max_anchors=50)
    torch.manual_seed(0)
    h = {t: torch.randn(n, 8) for t, n in sizes.items()}
    vals = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        vals.append(float(loss_fn(h, ei)))
    assert vals[0] == vals[1] != vals[2]


# ---------------------------------------------------------------------------------------
# context
# ---------------------------------------------------------------------------------------

ALL_EDGES = [RES, RES_REV, RACE, RACE_REV]


def test_context_chance_level_at_init():
    ei, sizes = _two_fkeys()
    loss_fn = ContextContrastiveLoss(list(sizes), ALL_EDGES, 16)
    zero = {t: torch.zeros(n, 16) for t, n in sizes.items()}
    assert float(loss_fn(zero, ei)) == pytest.approx(1.0, abs=1e-6)
    torch.manual_seed(0)
    h = {t: 1e-3 * torch.randn(n, 16) for t, n in sizes.items()}
    assert float(loss_fn(h, ei)) == pytest.approx(1.0, abs=0.01)


def test_context_learns_and_reaches_every_projection():
    ei, sizes = _two_fkeys()
    torch.manual_seed(0)
    loss_fn = ContextContrastiveLoss(list(sizes), ALL_EDGES, 32)
    h = {t: torch.randn(n, 32, requires_grad=True) for t, n in sizes.items()}
    loss_fn(h, ei).backward()
    for name, p in loss_fn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    final = _train(loss_fn, h.values(), lambda: loss_fn(h, ei), steps=400)
    assert final < 0.2


def test_context_is_the_mean_over_edge_types_of_projected_neighbour_means():
    ei, sizes = _two_fkeys(10, 3, 2)
    torch.manual_seed(0)
    loss_fn = ContextContrastiveLoss(list(sizes), ALL_EDGES, 4)
    h = {t: torch.randn(n, 4) for t, n in sizes.items()}
    ctx = loss_fn.contexts(h, ei)
    P = {et: loss_fn.proj[module_key(*et)].weight for et in ALL_EDGES}
    # result 4: driver 4 % 3 = 1, race 0
    idx, c = ctx["results"]
    expect = 0.5 * (P[RES_REV] @ h["drivers"][1] + P[RACE_REV] @ h["races"][0])
    assert torch.allclose(c[(idx == 4).nonzero()[0, 0]], expect, atol=1e-6)
    # driver 1: children 1, 4, 7
    idx, c = ctx["drivers"]
    expect = P[RES] @ h["results"][[1, 4, 7]].mean(0)
    assert torch.allclose(c[(idx == 1).nonzero()[0, 0]], expect, atol=1e-6)


def test_context_skips_isolated_nodes_and_self_loops():
    et = ("emp", "f2p_manager", "emp")
    loss_fn = ContextContrastiveLoss(["emp"], [et], 4)
    h = {"emp": torch.randn(6, 4)}
    # 0 -> 1, 2 -> 1, 3 -> 4, self-loop 5 -> 5: only 1 and 4 have a context
    ei = {et: torch.tensor([[0, 2, 3, 5], [1, 1, 4, 5]])}
    idx, _ = loss_fn.contexts(h, ei)["emp"]
    assert idx.tolist() == [1, 4]
    loss_fn(h, ei)
    assert loss_fn.last_breakdown["emp"][1] == 2


def test_context_copies_are_not_negatives():
    # two copies of one driver with identical neighbourhoods
    e = torch.eye(3) * 10
    h = {"drivers": torch.stack([e[0], e[0], e[1], e[2]]), "results": torch.stack([e[0], e[0], e[1], e[2]])}
    ei = {RES: torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]])}
    loss_fn = ContextContrastiveLoss(["drivers"], [RES], 3)
    with torch.no_grad():
        loss_fn.proj[module_key(*RES)].weight.copy_(torch.eye(3))
    n_id = {"drivers": torch.tensor([9, 9, 1, 2])}
    assert float(loss_fn(h, ei, n_id)) < 1e-3
    assert float(loss_fn(h, ei)) > 0.1


def test_context_argument_checks_and_determinism():
    with pytest.raises(ConfigError, match="temperature"):
        ContextContrastiveLoss(["a"], [RES], 8, temperature=-1)
    with pytest.raises(ConfigError, match="max_negatives"):
        ContextContrastiveLoss(["a"], [RES], 8, max_negatives=0)
    with pytest.raises(ConfigError, match="edge_types is empty"):
        ContextContrastiveLoss(["a"], [], 8)
    ei, sizes = _two_fkeys(200, 30, 7)
    loss_fn = ContextContrastiveLoss(list(sizes), ALL_EDGES, 8, max_negatives=4)
    torch.manual_seed(0)
    h = {t: torch.randn(n, 8) for t, n in sizes.items()}
    vals = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        vals.append(float(loss_fn(h, ei)))
    assert vals[0] == vals[1] != vals[2]


# ---------------------------------------------------------------------------------------
# reconstruction
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recon_setup():
    g = torch.Generator().manual_seed(0)
    n = 300
    x = torch.randn(n, generator=g) * 5 + 100
    x[::17] = float("nan")  # missing values are never targets
    df = pd.DataFrame({
        "x": x.numpy(),
        "y": torch.rand(n, generator=g).numpy(),
        "c": pd.Series(list("abcdef"))[torch.randint(6, (n,), generator=g).numpy()].to_numpy(),
        "k": pd.Series(list("pq"))[torch.randint(2, (n,), generator=g).numpy()].to_numpy(),
    })
    S = torch_frame.stype
    full = torch_frame.data.Dataset(
        df, {"x": S.numerical, "y": S.numerical, "c": S.categorical, "k": S.categorical}
    ).materialize().tensor_frame
    batch = full[torch.arange(0, 300, 3)]
    view, mask = Corruption({"t": full}, p=0.4)({"t": batch}, generator=torch.Generator().manual_seed(1),
                                                return_mask=True)
    return full, batch, view, mask


def test_reconstruction_scale_learning_and_gradients(recon_setup):
    full, batch, view, mask = recon_setup
    torch.manual_seed(0)
    loss_fn = MaskedCellReconstructionLoss({"t": full}, channels=32)
    zero = {"t": torch.zeros(batch.num_rows, 32)}
    assert float(loss_fn(zero, {"t": batch}, mask)) == pytest.approx(1.0, abs=0.25)
    h = {"t": torch.randn(batch.num_rows, 32, requires_grad=True)}
    loss_fn(h, {"t": batch}, mask).backward()
    for name, p in loss_fn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    final = _train(loss_fn, h.values(), lambda: loss_fn(h, {"t": batch}, mask), steps=200)
    assert final < 0.2


def test_reconstruction_only_scores_replaced_cells(recon_setup):
    full, batch, view, mask = recon_setup
    torch.manual_seed(0)
    loss_fn = MaskedCellReconstructionLoss({"t": full}, channels=8)
    h = {"t": torch.randn(batch.num_rows, 8)}
    base = float(loss_fn(h, {"t": batch}, mask))
    assert math.isfinite(base)
    S = torch_frame.stype
    m = mask["t"][S.numerical]
    # changing the original value of a cell that was not replaced changes nothing ...
    other = batch[torch.arange(batch.num_rows)]
    other.feat_dict = dict(other.feat_dict)
    num = other.feat_dict[S.numerical].clone()
    num[~m] = 1e6
    other.feat_dict[S.numerical] = num
    assert float(loss_fn(h, {"t": other}, mask)) == pytest.approx(base)
    # ... changing a replaced one does
    num = num.clone()
    num[m] = 1e6
    other.feat_dict[S.numerical] = num
    assert float(loss_fn(h, {"t": other}, mask)) > base + 1


def test_reconstruction_from_graph_and_checks(recon_setup):
    full, batch, view, mask = recon_setup
    data = HeteroData()
    data["t"].tf = full
    data["t"].num_nodes = full.num_rows
    loss_fn = MaskedCellReconstructionLoss.from_graph(data, 8)
    assert loss_fn.tables == ["t"]
    with pytest.raises(ConfigError, match="rows"):
        loss_fn({"t": torch.zeros(3, 8)}, {"t": batch}, mask)
    with pytest.raises(ConfigError, match="channels"):
        MaskedCellReconstructionLoss({"t": full}, channels=0)


def test_registry():
    assert LOSSES == {"row": RowContrastiveLoss, "link": LinkContrastiveLoss,
                      "context": ContextContrastiveLoss, "reconstruction": MaskedCellReconstructionLoss}


def test_module_keys_are_injective():
    from rdlviz.pretrain.losses._nce import module_key

    keys = {module_key("a.b"), module_key("a%2Eb"), module_key("a_b"),
            module_key("a|b", "c", "d"), module_key("a", "b|c", "d"), module_key("a", "b", "c")}
    assert len(keys) == 6
    assert all("." not in k for k in keys)
    ContextContrastiveLoss(["a"], [("a|b", "c", "d"), ("a", "b|c", "d")], 4)  # no clash
