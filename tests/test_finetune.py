"""Fine-tuning: it learns, probing leaves the backbone alone, no test label is used before
selection, and runs are reproducible."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import rdlviz
from rdlviz.errors import ConfigError

FT = dict(epochs=2, batch_size=256, num_neighbors=(8, 4), progress=False,
          backbone_kwargs=dict(channels=16, encoder_layers=1))


@pytest.fixture(scope="module")
def graph(shop):
    return rdlviz.build_graph(shop, text="drop")


@pytest.fixture(scope="module")
def run(graph):
    return rdlviz.pretrain(graph, steps=4, batch_size=16, num_neighbors=(8, 4), channels=16,
                           encoder_layers=1, eval_every=2, eval_batches=2, progress=False)


def test_scratch_beats_a_constant_predictor_on_validation(shop, graph):
    res = rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, **FT)
    # A constant predictor has AUROC 0.5; order frequency is visible in the graph.
    assert res.val["roc_auc"] > 0.6
    assert set(res.test) >= {"roc_auc"} and 0.0 <= res.test["roc_auc"] <= 1.0
    assert len(res.history) >= 1 and res.best_epoch in res.history.epoch.tolist()
    assert res.predictions["val"].shape == (320,)


def test_scratch_learns_without_calendar_time_features(shop):
    # Only the relative time a fine-tuned model sees remains: it still learns the task.
    g = rdlviz.build_graph(shop, text="drop", time_features=False)
    res = rdlviz.finetune(shop, "customer-order", mode="scratch", graph=g, **FT)
    assert res.val["roc_auc"] > 0.6


def test_probe_leaves_the_backbone_untouched(shop, graph, run):
    before = {k: v.clone() for k, v in run.backbone.state_dict().items()}
    res = rdlviz.finetune(shop, "customer-order", backbone=run, mode="probe", graph=graph, **FT)
    after = res.model.backbone.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    # and the run's own backbone was not modified either
    for k, v in before.items():
        assert torch.equal(v, run.backbone.state_dict()[k])


def test_full_fine_tuning_changes_the_backbone(shop, graph, run):
    res = rdlviz.finetune(shop, "customer-order", backbone=run, mode="full", graph=graph,
                          backbone_lr=1e-3, **FT)
    changed = [k for k, v in run.backbone.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, res.model.backbone.state_dict()[k])]
    assert changed


def test_same_seed_same_metrics(shop, graph):
    a = rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, seed=7, **FT)
    b = rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, seed=7, **FT)
    assert a.val == b.val and a.test == b.test
    np.testing.assert_array_equal(a.predictions["test"], b.predictions["test"])


def test_test_labels_play_no_part_in_training_or_selection(shop, graph, monkeypatch):
    task = shop.load_task("customer-order")
    a = rdlviz.finetune(shop, task, mode="scratch", graph=graph, seed=1, **FT)
    original = task.get_table

    def shuffled(split, *args, **kwargs):
        table = original(split, *args, **kwargs)
        if split == "test" and "label" in table.df:
            table.df = table.df.assign(label=np.random.default_rng(0).permutation(table.df.label.to_numpy()))
        return table

    monkeypatch.setattr(task, "get_table", shuffled)
    b = rdlviz.finetune(shop, task, mode="scratch", graph=graph, seed=1, **FT)
    assert a.best_epoch == b.best_epoch and a.val == b.val
    np.testing.assert_array_equal(a.predictions["test"], b.predictions["test"])


def test_bad_arguments(shop, graph):
    with pytest.raises(ConfigError, match="mode"):
        rdlviz.finetune(shop, "customer-order", mode="nope", graph=graph)
    with pytest.raises(ConfigError, match="needs a backbone"):
        rdlviz.finetune(shop, "customer-order", mode="full", graph=graph)
    with pytest.raises(ValueError, match="not a task"):
        rdlviz.finetune(shop, "nope", mode="scratch", graph=graph)


def test_comparison_of_runs_feeds_the_compare_view(shop, graph, run):
    from rdlviz.finetune import comparison

    runs = [rdlviz.finetune(shop, "customer-order", backbone=run, mode=m, graph=graph, seed=s, **FT)
            for m in ("scratch", "probe") for s in (0, 1)]
    table = comparison(runs, database="shop")
    v = table["tasks"]["customer-order"]["variants"]
    assert set(v) == {"scratch", "probe"} and table["seeds"] == [0, 1]
    scratch = [r.test_score for r in runs if r.mode == "scratch"]
    assert v["scratch"]["per_seed"] == scratch
    assert v["scratch"]["mean"] == pytest.approx(np.mean(scratch))
    assert v["scratch"]["std"] == pytest.approx(np.std(scratch, ddof=1))
    named = comparison({"random_probe": runs[2]})
    assert list(named["tasks"]["customer-order"]["variants"]) == ["random_probe"]
    view = rdlviz.viz.compare(runs)  # the view accepts the runs directly
    assert len(view.figure.data) > 0
    with pytest.raises(ConfigError):
        comparison([])


def test_validation_can_see_only_what_test_sees(shop, graph):
    a = rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, seed=3, **FT)
    b = rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, seed=3, val_history="cutoff", **FT)
    # Validation seeds now miss the orders placed after the val cutoff: other predictions.
    assert not np.allclose(a.predictions["val"], b.predictions["val"])
    assert b.config["val_history"] == "cutoff" and 0.0 <= b.test["roc_auc"] <= 1.0
    with pytest.raises(ConfigError, match="val_history"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, val_history="val", **FT)


def test_training_from_stale_history_still_learns(shop, graph):
    res = rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, seed=3,
                          train_history="stale", **FT)
    assert res.val["roc_auc"] > 0.6 and res.config["train_history"] == "stale"
    with pytest.raises(ConfigError, match="train_history"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, train_history="old", **FT)


def test_stale_training_is_refused_for_a_link_task():
    # Checked before any graph is built: a link task has one evaluation window.
    with pytest.raises(ConfigError, match="player-team"):
        rdlviz.finetune("rel-lahman", "player-team", mode="scratch", train_history="stale")


def test_evaluation_at_the_end_of_history(shop, graph):
    kw = dict(mode="scratch", graph=graph, seed=3, temporal_strategy="last", **FT)
    a = rdlviz.finetune(shop, "customer-order", **kw)
    b = rdlviz.finetune(shop, "customer-order", reference_time="history", **kw)
    # Training and model selection are untouched: only test seeds are encoded differently.
    assert a.best_epoch == b.best_epoch and a.val == b.val
    np.testing.assert_array_equal(a.predictions["val"], b.predictions["val"])
    test = shop.load_task("customer-order").get_table("test").df
    at_cutoff = (test.timestamp <= shop.test_timestamp).to_numpy()
    assert at_cutoff.any() and (~at_cutoff).any()
    # Seeds at the cutoff are predicted as before; later ones no longer see their rows age...
    np.testing.assert_array_equal(a.predictions["test"][at_cutoff], b.predictions["test"][at_cutoff])
    assert not np.allclose(a.predictions["test"][~at_cutoff], b.predictions["test"][~at_cutoff])
    # ...so every window of one customer gets the prediction made at the cutoff.
    per_customer = test.assign(p=b.predictions["test"]).groupby("customer_id").p.nunique()
    assert (per_customer == 1).all()
    assert b.config["reference_time"] == "history"


def test_evaluation_at_the_end_of_history_is_checked(shop, graph):
    with pytest.raises(ConfigError, match="reference_time"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, reference_time="cutoff", **FT)
    with pytest.raises(ConfigError, match="train_history='stale'"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, reference_time="history",
                        train_history="stale", **FT)
    with pytest.raises(ConfigError, match="player-team"):
        rdlviz.finetune("rel-lahman", "player-team", mode="scratch", reference_time="history")


def test_test_seeds_can_see_their_own_history(shop, graph):
    open_graph = graph.with_cutoff(None)
    assert open_graph.cutoff is None and graph.with_cutoff("test") is graph
    kw = dict(mode="scratch", seed=3, temporal_strategy="last", **FT)
    a = rdlviz.finetune(shop, "customer-order", graph=graph, **kw)
    b = rdlviz.finetune(shop, "customer-order", graph=open_graph, test_history="seed", **kw)
    # Training and model selection are untouched: their seeds lie before the test cutoff.
    # (The open graph numbers the orders differently, so sums may round differently.)
    assert a.best_epoch == b.best_epoch
    np.testing.assert_allclose(a.predictions["val"], b.predictions["val"], rtol=1e-4, atol=1e-6)
    test = shop.load_task("customer-order").get_table("test").df
    at_cutoff = (test.timestamp <= shop.test_timestamp).to_numpy()
    assert at_cutoff.any() and (~at_cutoff).any()
    # Seeds at the cutoff see what they saw; later ones see the orders placed since.
    np.testing.assert_allclose(a.predictions["test"][at_cutoff], b.predictions["test"][at_cutoff],
                               rtol=1e-4, atol=1e-6)
    assert not np.allclose(a.predictions["test"][~at_cutoff], b.predictions["test"][~at_cutoff])
    assert b.config["test_history"] == "seed" and a.config["test_history"] == "cutoff"


def test_a_test_seed_sees_rows_past_the_cutoff_but_none_past_its_time(shop, graph):
    from rdlviz.graph.time import to_unix_seconds
    from rdlviz.sampling import NeighborLoader

    test = shop.load_task("customer-order").get_table("test").df
    times = torch.from_numpy(to_unix_seconds(test.timestamp))
    nodes = torch.from_numpy(test.customer_id.to_numpy().astype(np.int64))
    cutoff = to_unix_seconds(pd.Series([shop.test_timestamp]))[0]
    seen_after_cutoff = 0
    for cut_graph in (graph, graph.with_cutoff(None)):
        loader = NeighborLoader(cut_graph.data, [-1, -1], input_nodes=("customers", nodes), input_time=times,
                                batch_size=len(nodes), temporal_strategy="last")
        batch = next(iter(loader))
        seed_time = batch["customers"].seed_time[batch["orders"].batch]
        assert (batch["orders"].time <= seed_time).all()  # never a row after the seed's time
        seen_after_cutoff = int((batch["orders"].time > cutoff).sum())
        if cut_graph is graph:
            assert seen_after_cutoff == 0
    assert seen_after_cutoff > 0  # the open graph shows later test seeds the orders since the cutoff


def test_a_backbone_pretrained_at_the_val_cutoff_is_fine_tuned_on_the_graph_test_asks_for(shop, graph):
    val_graph = rdlviz.build_graph(shop, text="drop", cutoff="val")
    run = rdlviz.pretrain(val_graph, steps=2, batch_size=16, num_neighbors=(8, 4), channels=16,
                          encoder_layers=1, eval_every=2, eval_batches=1, progress=False)
    kw = dict(backbone=run, mode="probe", seed=1, temporal_strategy="last", **FT)
    default = {}
    for history, expected in (("cutoff", graph), ("seed", graph.with_cutoff(None))):
        default[history] = rdlviz.finetune(shop, "customer-order", test_history=history, **kw)
        explicit = rdlviz.finetune(shop, "customer-order", graph=expected, test_history=history, **kw)
        np.testing.assert_allclose(default[history].predictions["test"], explicit.predictions["test"], rtol=1e-5)
    # on the val-cutoff graph itself, test seeds would see nothing after the val cutoff
    frozen = rdlviz.finetune(shop, "customer-order", graph=val_graph, **kw)
    assert not np.allclose(frozen.predictions["test"], default["cutoff"].predictions["test"])


def test_open_test_history_is_checked(shop, graph):
    with pytest.raises(ConfigError, match="test_history must be one of"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, test_history="open", **FT)
    # A graph that does not hold the test period cannot give test seeds their history...
    with pytest.raises(ConfigError, match=r"with_cutoff\(None\)"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, test_history="seed", **FT)
    # ...and one that does would leak it into RelBench's protocol.
    with pytest.raises(ConfigError, match=r"with_cutoff\('test'\)"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph.with_cutoff(None), **FT)
    for option in (dict(val_history="cutoff"), dict(train_history="stale"), dict(reference_time="history")):
        with pytest.raises(ConfigError, match=f"{next(iter(option))}=.*test_history='seed'"):
            rdlviz.finetune(shop, "customer-order", mode="scratch", test_history="seed", **option, **FT)
    with pytest.raises(ConfigError, match="player-team"):
        rdlviz.finetune("rel-lahman", "player-team", mode="scratch", test_history="seed")


def test_a_small_table_gets_the_steps_it_asks_for(shop, graph, run, monkeypatch):
    n_train = len(shop.load_task("customer-order").get_table("train").df)
    steps = []
    adam_step = torch.optim.Adam.step

    def counted(self, *args, **kwargs):
        steps.append(1)
        return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counted)
    kw = {**FT, "epochs": 1, "patience": 1, "graph": graph}
    plain = rdlviz.finetune(shop, "customer-order", mode="scratch", **kw)
    assert len(steps) == -(-n_train // 256) and plain.config["train_batch_size"] == 256
    want = len(steps) + 3  # more steps than one pass at batch_size gives
    for mode, backbone in (("scratch", None), ("probe", run)):
        steps.clear()
        res = rdlviz.finetune(shop, "customer-order", mode=mode, backbone=backbone,
                              min_steps_per_epoch=want, **kw)
        bs = res.config["train_batch_size"]
        assert bs == -(-n_train // want) < 256, mode
        assert len(steps) == -(-n_train // bs) >= want, mode


def test_an_epoch_of_few_steps_is_warned_about(shop, graph):
    n_train = len(shop.load_task("customer-order").get_table("train").df)
    kw = {**FT, "epochs": 1, "patience": 1, "graph": graph, "batch_size": n_train}
    with pytest.warns(UserWarning, match=r"'customer-order'.* give 1 optimisation step"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", **kw)
    # A cap on the steps counts too, and the advice must fit under it.
    capped = {**kw, "batch_size": 1, "max_steps_per_epoch": 2}
    with pytest.warns(UserWarning, match=r"give 2 optimisation step.*max_steps_per_epoch>=20 \(now 2\)"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", **capped)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rdlviz.finetune(shop, "customer-order", mode="scratch", min_steps_per_epoch=10, **kw)
    assert not [w for w in caught if "optimisation step" in str(w.message)]


def test_min_steps_per_epoch_is_checked(shop, graph):
    with pytest.raises(ConfigError, match="min_steps_per_epoch"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, min_steps_per_epoch=0, **FT)
    with pytest.raises(ConfigError, match="exceeds max_steps_per_epoch"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, min_steps_per_epoch=20,
                        max_steps_per_epoch=10, **FT)
    with pytest.raises(ConfigError, match="player-team"):
        rdlviz.finetune("rel-lahman", "player-team", mode="scratch", min_steps_per_epoch=20)


def test_a_prediction_does_not_depend_on_its_batch(shop, graph):
    from rdlviz.graph.time import to_unix_seconds
    from rdlviz.sampling import NeighborLoader

    res = rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, seed=2,
                          temporal_strategy="last", head_layers=3, **FT)
    test = shop.load_task("customer-order").get_table("test").df
    nodes = torch.from_numpy(test.customer_id.to_numpy().astype(np.int64))
    times = torch.from_numpy(to_unix_seconds(test.timestamp))
    model = res.model.eval()

    def predict(batch_size):
        loader = NeighborLoader(graph.data, num_neighbors=[8, 4], input_nodes=("customers", nodes),
                                input_time=times, batch_size=batch_size, temporal_strategy="last")
        with torch.no_grad():
            return torch.cat([model(b).view(-1) for b in loader]).numpy()

    # Every normalisation is per row: batched with others or alone, a seed scores the same.
    np.testing.assert_allclose(predict(7), predict(len(test)), rtol=0, atol=1e-5)
    probability = torch.sigmoid(torch.from_numpy(predict(7))).numpy()
    np.testing.assert_allclose(probability, res.predictions["test"], rtol=0, atol=1e-5)


def test_wise_ft_interpolates_from_the_probe_to_the_fine_tuned_model(shop, graph, run):
    kw = dict(backbone=run, mode="full", graph=graph, probe_epochs=1, backbone_lr=1e-3, seed=3, **FT)
    ft = rdlviz.finetune(shop, "customer-order", **kw)
    ends = {a: rdlviz.finetune(shop, "customer-order", wise_alpha=a, **kw) for a in (0.0, 0.5, 1.0)}
    pretrained, tuned = run.backbone.state_dict(), ft.model.backbone.state_dict()
    floats = [k for k, v in pretrained.items() if v.is_floating_point()]
    assert any(not torch.equal(pretrained[k], tuned[k]) for k in floats)  # the two ends differ
    for k in floats:
        # alpha = 0 is the pretrained backbone; 0.5 lies halfway to the fine-tuned one
        assert torch.equal(ends[0.0].model.backbone.state_dict()[k], pretrained[k]), k
        torch.testing.assert_close(ends[0.5].model.backbone.state_dict()[k], (pretrained[k] + tuned[k]) / 2)
    # alpha = 1 is the fine-tuned model, and its metrics are those of the returned model
    np.testing.assert_array_equal(ends[1.0].predictions["test"], ft.predictions["test"])
    assert ends[1.0].val == ft.val and ends[1.0].test == ft.test
    assert ends[0.5].val != ft.val and ends[0.5].config["wise_alpha"] == 0.5
    assert ends[0.5].wise_alpha == 0.5 and ends[0.5].wise_val == {} and ft.wise_alpha is None
    # Several candidates: each is scored on validation and the best one is returned.
    chosen = rdlviz.finetune(shop, "customer-order", wise_alpha=[0.0, 0.5, 1.0], **kw)
    metric = chosen.metric
    assert chosen.wise_val == pytest.approx({a: ends[a].val[metric] for a in ends}, abs=1e-12)
    best = max(ends, key=lambda a: ends[a].val[metric])
    assert chosen.wise_alpha == best
    np.testing.assert_array_equal(chosen.predictions["test"], ends[best].predictions["test"])
    assert chosen.test == ends[best].test


def test_wise_ft_is_checked(shop, graph, run):
    for bad, match in [(dict(wise_alpha=1.5, probe_epochs=1), r"\[0, 1\]"),
                       (dict(wise_alpha=0.5, probe_epochs=0), "probe_epochs >= 1"),
                       (dict(wise_alpha=0.5, probe_epochs=1, mode="probe"), "mode='full'"),
                       (dict(wise_alpha=[0.5, 1.2], probe_epochs=1), r"\[0, 1\]"),
                       (dict(wise_alpha=[], probe_epochs=1), "empty sequence"),
                       (dict(wise_alpha="0.5", probe_epochs=1), "a sequence of them")]:
        kw = dict(mode="full") | bad
        with pytest.raises(ConfigError, match=match):
            rdlviz.finetune(shop, "customer-order", backbone=run, graph=graph, **kw)


@pytest.fixture(scope="module")
def spend(tmp_path_factory):
    """The shop with a regression task: each customer's spend over the next 30 days (0
    for most; heavy-tailed above), so RelBench's percentile clamp has tails to cut."""
    import relbench

    from conftest import SHOP_KEYS, make_shop_tables
    from rdlviz.data.manifest import write_dataset
    from rdlviz.data.tasks import entity_task

    task = entity_task(
        "customer-spend", entity_table="customers", entity_col="customer_id", target_col="spend",
        task_type="regression", timedelta="30 days", num_eval_timestamps=4,
        sql="""
            SELECT t.timestamp, c.customer_id,
                   COALESCE((SELECT SUM(o.amount) FROM orders o WHERE o.customer_id = c.customer_id
                             AND o.ordered_at > t.timestamp
                             AND o.ordered_at <= t.timestamp + INTERVAL '{timedelta}'), 0) AS spend
            FROM timestamps t, customers c
        """)
    out = tmp_path_factory.mktemp("spend") / "db"
    write_dataset("shop-spend", make_shop_tables(), out_dir=out, tasks=[task], **SHOP_KEYS)
    db = relbench.load_dataset(out)
    return db, rdlviz.build_graph(db, text="drop")


def test_regression_beats_the_median_and_clamps_as_relbench_does(spend):
    db, g = spend
    task = db.load_task("customer-spend")
    y = {s: task.get_table(s, mask_input_cols=False).df["spend"].to_numpy() for s in ("train", "val", "test")}
    kw = dict(FT, mode="scratch", graph=g, seed=2, epochs=3)
    raw = rdlviz.finetune(db, task, **kw)
    # L1's best constant is the training median; the model must beat it on validation.
    assert raw.val["mae"] < np.abs(y["val"] - np.median(y["train"])).mean()
    assert raw.config["clamp"] is None

    clamped = rdlviz.finetune(db, task, clamp_predictions=True, **kw)
    lo, hi = np.percentile(y["train"], [2, 98])
    assert clamped.config["clamp"] == pytest.approx([lo, hi])
    # Training is unchanged, and here validation chose the same epoch, so the clamped
    # predictions are the raw ones clipped, and every metric is computed from them.
    assert clamped.best_epoch == raw.best_epoch
    for split in ("val", "test"):
        np.testing.assert_allclose(clamped.predictions[split], np.clip(raw.predictions[split], lo, hi), rtol=1e-6)
        assert (clamped.predictions[split] != raw.predictions[split]).any()
    assert clamped.val["mae"] == pytest.approx(np.abs(y["val"] - clamped.predictions["val"]).mean())
    assert clamped.test["mae"] == pytest.approx(np.abs(y["test"] - clamped.predictions["test"]).mean())


def test_clamping_is_refused_for_a_classification_task(shop, graph):
    with pytest.raises(ConfigError, match="clamp_predictions.*binary"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", graph=graph, clamp_predictions=True, **FT)
