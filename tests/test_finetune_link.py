"""Fine-tuning on a link (recommendation) task: the two-tower model learns what a popularity
ranking cannot, the probe leaves the backbone alone, LP-FT and WiSE-FT keep their meaning,
test targets play no part before selection, and runs are reproducible.

The database is a shop whose customers each like one product category and buy mostly from
it, so which products a customer buys next is learnable from the graph (their column and
their past orders) but not from product popularity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rdlviz
from rdlviz.errors import ConfigError

FT = dict(epochs=2, batch_size=128, num_neighbors=(8, 4), progress=False,
          backbone_kwargs=dict(channels=16, encoder_layers=1))
@pytest.fixture(scope="module")
def graph(shop_links):
    return rdlviz.build_graph(shop_links, text="drop")


@pytest.fixture(scope="module")
def run(graph):
    return rdlviz.pretrain(graph, steps=4, batch_size=16, num_neighbors=(8, 4), channels=16,
                           encoder_layers=1, eval_every=2, eval_batches=2, progress=False)


def test_scratch_beats_a_popularity_ranking_on_validation(shop_links, graph):
    task = shop_links.load_task("customer-product")
    res = rdlviz.finetune(shop_links, task, mode="scratch", graph=graph, **FT)
    # The constant recommender: the k products bought most often in the training windows.
    train = task.get_table("train").df
    popular = train["product_id"].explode().value_counts().index[: task.eval_k].to_numpy(dtype=np.int64)
    val = task.get_table("val")
    popularity = task.evaluate(np.tile(popular, (len(val.df), 1)), val)["map"]
    assert res.metric == "map" and res.higher_is_better
    assert res.val["map"] > popularity + 0.05, (res.val["map"], popularity)
    assert res.predictions["val"].shape == (len(val.df), task.eval_k)
    assert 0.0 <= res.test["map"] <= 1.0
    assert list(res.history.columns) == ["epoch", "train_loss", "val_map", "time"]


def test_probe_leaves_the_backbone_untouched(shop_links, graph, run):
    before = {k: v.clone() for k, v in run.backbone.state_dict().items()}
    res = rdlviz.finetune(shop_links, "customer-product", backbone=run, mode="probe", graph=graph, **FT)
    for k, v in before.items():
        assert torch.equal(v, res.model["backbone"].state_dict()[k]), k
        assert torch.equal(v, run.backbone.state_dict()[k]), k


def test_lp_ft_trains_the_head_first_and_wise_ft_interpolates_from_there(shop_links, graph, run):
    kw = dict(backbone=run, mode="full", graph=graph, probe_epochs=1, backbone_lr=1e-3, seed=4, **FT)
    ft = rdlviz.finetune(shop_links, "customer-product", **kw)
    assert len(ft.history) == FT["epochs"]  # the head-only epoch selects nothing
    changed = [k for k, v in run.backbone.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, ft.model["backbone"].state_dict()[k])]
    assert changed
    # α = 0 is the end of the head-only epochs: the pretrained backbone, a trained head.
    lp = rdlviz.finetune(shop_links, "customer-product", wise_alpha=0.0, **kw)
    for k, v in run.backbone.state_dict().items():
        assert torch.equal(v, lp.model["backbone"].state_dict()[k]), k
    # α = 1 is the fine-tuned model itself.
    end = rdlviz.finetune(shop_links, "customer-product", wise_alpha=1.0, **kw)
    np.testing.assert_array_equal(end.predictions["test"], ft.predictions["test"])
    assert end.val == ft.val
    # Both ends as candidates: the one with the better validation MAP is returned.
    chosen = rdlviz.finetune(shop_links, "customer-product", wise_alpha=(0.0, 1.0), **kw)
    assert chosen.wise_val == pytest.approx({0.0: lp.val["map"], 1.0: end.val["map"]}, abs=1e-12)
    best = end if end.val["map"] > lp.val["map"] else lp
    assert chosen.wise_alpha == best.wise_alpha
    np.testing.assert_array_equal(chosen.predictions["test"], best.predictions["test"])
    with pytest.raises(ConfigError, match="probe_epochs"):
        rdlviz.finetune(shop_links, "customer-product", backbone=run, mode="full", graph=graph,
                        wise_alpha=0.5, **FT)


def test_same_seed_same_metrics(shop_links, graph):
    a = rdlviz.finetune(shop_links, "customer-product", mode="scratch", graph=graph, seed=7, **FT)
    b = rdlviz.finetune(shop_links, "customer-product", mode="scratch", graph=graph, seed=7, **FT)
    assert a.val == b.val and a.test == b.test
    np.testing.assert_array_equal(a.predictions["test"], b.predictions["test"])


def test_test_targets_play_no_part_in_training_or_selection(shop_links, graph, monkeypatch):
    task = shop_links.load_task("customer-product")
    a = rdlviz.finetune(shop_links, task, mode="scratch", graph=graph, seed=1, **FT)
    original = task.get_table

    def scrambled(split, *args, **kwargs):
        table = original(split, *args, **kwargs)
        if split == "test" and "product_id" in table.df:
            rng = np.random.default_rng(0)
            table.df = table.df.assign(product_id=[list(rng.choice(30, 3, replace=False)) for _ in range(len(table.df))])
        return table

    monkeypatch.setattr(task, "get_table", scrambled)
    b = rdlviz.finetune(shop_links, task, mode="scratch", graph=graph, seed=1, **FT)
    assert a.best_epoch == b.best_epoch and a.val == b.val
    np.testing.assert_array_equal(a.predictions["test"], b.predictions["test"])
    assert a.test != b.test  # the scrambled targets were read, after selection


def test_steps_hold_whole_rows_of_few_seed_times_and_cover_every_row_once():
    from rdlviz.finetune.link import _steps

    rng = np.random.default_rng(0)
    row_time = torch.from_numpy(rng.integers(0, 12, 300))
    row_pairs = torch.from_numpy(rng.integers(1, 9, 300))
    row_pairs[7] = 50  # a row with more pairs than a step holds still gets a step
    steps = _steps(row_time, row_pairs, batch_size=40, n_candidates=30, gen=torch.Generator().manual_seed(1))
    rows = torch.cat(steps)
    assert sorted(rows.tolist()) == list(range(300))
    for s in steps:
        assert len(s) == 1 or int(row_pairs[s].sum()) <= 40
        assert len(torch.unique(row_time[s])) <= (4 * 40) // 30  # destination embeddings per step
    # Rows of one seed time are contiguous in the epoch: a step touches few times.
    assert np.mean([len(torch.unique(row_time[s])) for s in steps]) < 2.5
    again = _steps(row_time, row_pairs, batch_size=40, n_candidates=30, gen=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(steps, again))


def test_drawn_candidates_when_the_destination_table_is_large(shop_links, graph, monkeypatch):
    """Above MAX_CANDIDATES destinations a step scores the positives plus a uniform draw."""
    import importlib

    link = importlib.import_module("rdlviz.finetune.link")  # rdlviz.finetune is also a function
    monkeypatch.setattr(link, "MAX_CANDIDATES", 8)  # the shop has 30 products
    task = shop_links.load_task("customer-product")
    res = rdlviz.finetune(shop_links, task, mode="scratch", graph=graph, seed=3, **FT)
    train = task.get_table("train").df
    popular = train["product_id"].explode().value_counts().index[: task.eval_k].to_numpy(dtype=np.int64)
    val = task.get_table("val")
    popularity = task.evaluate(np.tile(popular, (len(val.df), 1)), val)["map"]
    assert res.val["map"] > popularity + 0.05, (res.val["map"], popularity)


@pytest.mark.parametrize("key", [-1, 30])
def test_destination_keys_outside_the_table_are_refused(shop_links, graph, monkeypatch, key):
    from rdlviz.errors import TaskError

    task = shop_links.load_task("customer-product")
    original = task.get_table

    def broken(split, *args, **kwargs):
        table = original(split, *args, **kwargs)
        if split == "train":
            df = table.df.copy()
            df.at[df.index[0], "product_id"] = [key]  # the shop has products 0..29
            table.df = df
        return table

    monkeypatch.setattr(task, "get_table", broken)
    with pytest.raises(TaskError, match=r"(?s)'product_id' holds 1 keys outside 'products'.*same database"):
        rdlviz.finetune(shop_links, task, mode="scratch", graph=graph, **FT)
