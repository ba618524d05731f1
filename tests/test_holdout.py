"""Held-out links: the pairs the link objective scores are not edges the GNN passes along."""

from __future__ import annotations

import pytest
import torch

import rdlviz
from rdlviz.errors import ConfigError
from rdlviz.pretrain.holdout import hold_out_links
from rdlviz.pretrain.losses import LinkContrastiveLoss
from rdlviz.pretrain.losses._nce import module_key
from rdlviz.sampling import sample


@pytest.fixture(scope="module")
def batch(shop):
    data = rdlviz.build_graph(shop, text="drop").data
    orders = torch.arange(min(40, data["orders"].num_nodes))
    times = data["orders"].time[orders]
    return sample(data, ("orders", orders), times, num_neighbors=[8, 4], seed=0)


def _keys(ei, n_parent):
    return set((ei[0] * n_parent + ei[1]).tolist())


def test_held_pairs_leave_message_passing_in_both_directions(batch):
    before = {e: batch[e].edge_index.clone() for e in batch.edge_types}
    mp, held, linked = hold_out_links(batch, 0.5, torch.Generator().manual_seed(0))
    assert held, "the shop batch has foreign-key pairs to hold out"
    for et, pairs in held.items():
        child, rel, parent = et
        rev = (parent, "rev_" + rel, child)
        n = batch[parent].num_nodes
        h, all_pairs = _keys(pairs, n), _keys(linked[et], n)
        kept = _keys(mp[et].edge_index, n) | _keys(mp[rev].edge_index.flip(0), n)
        assert h and not (h & kept)                      # no held pair is still an edge
        assert h | kept == all_pairs                     # nothing else was removed
        assert len(h) == int(0.5 * len(all_pairs))
    # the sampled batch itself is untouched (the split works on a shallow copy)
    for e, ei in before.items():
        assert torch.equal(batch[e].edge_index, ei)
    assert mp["orders"].tf is batch["orders"].tf        # features are shared, not copied


def test_same_generator_same_split(batch):
    a = hold_out_links(batch, 0.3, torch.Generator().manual_seed(1))[1]
    b = hold_out_links(batch, 0.3, torch.Generator().manual_seed(1))[1]
    c = hold_out_links(batch, 0.3, torch.Generator().manual_seed(2))[1]
    assert all(torch.equal(a[e], b[e]) for e in a)
    assert any(not torch.equal(a[e], c[e]) for e in a)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2])
def test_fraction_outside_the_open_interval_is_refused(batch, fraction):
    with pytest.raises(ConfigError, match="link_holdout"):
        hold_out_links(batch, fraction, torch.Generator())


def test_pairs_left_in_message_passing_are_not_negatives():
    # Parent 0 has three children; only (0, 0) is held out and scored. Its siblings 1 and 2
    # are still its children (in message passing), so they must not be the parent's negatives.
    et = ("results", "f2p_driverId", "drivers")
    loss_fn = LinkContrastiveLoss([et], channels=4)
    with torch.no_grad():
        loss_fn.weight[module_key(*et)].copy_(torch.eye(4))
    e = torch.eye(4) * 10
    h = {"drivers": torch.stack([e[0], e[1]]), "results": torch.stack([e[0], e[0], e[0], e[1]])}
    held = {et: torch.tensor([[0], [0]])}
    linked = {et: torch.tensor([[0, 1, 2, 3], [0, 0, 0, 1]])}
    assert float(loss_fn(h, held, linked_index_dict=linked).detach()) < 1e-3
    assert float(loss_fn(h, held).detach()) > 0.1               # without it the siblings compete


def test_pretraining_with_held_out_links(shop):
    graph = rdlviz.build_graph(shop, text="drop")
    fast = dict(steps=4, batch_size=16, num_neighbors=(4, 2), channels=16, encoder_layers=1,
                eval_every=2, eval_batches=2, max_negatives=15, progress=False)
    a = rdlviz.pretrain(graph, link_holdout=0.5, seed=0, **fast)
    b = rdlviz.pretrain(graph, link_holdout=0.5, seed=0, **fast)
    off = rdlviz.pretrain(graph, seed=0, **fast)
    assert a.history["link"].notna().all() and a.config["link_holdout"] == 0.5
    assert a.history.drop(columns="time").equals(b.history.drop(columns="time"))
    assert not a.history["link"].equals(off.history["link"])
    with pytest.raises(ConfigError, match="link_holdout"):
        rdlviz.pretrain(graph, link_holdout=1.0, **fast)
    with pytest.raises(ConfigError, match="add 'link'"):
        rdlviz.pretrain(graph, objectives=("row",), link_holdout=0.5, **fast)
