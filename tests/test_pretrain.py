"""The pretraining loop: determinism, leakage, checkpoints, resume, interruption, errors."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import rdlviz
from rdlviz.errors import ConfigError, SchemaError

FAST = dict(steps=6, batch_size=16, num_neighbors=(4, 2), channels=16, encoder_layers=1,
            eval_every=3, eval_batches=2, max_negatives=15, progress=False)


@pytest.fixture(scope="module")
def graph(shop):
    return rdlviz.build_graph(shop, text="drop")


def _train_losses(run):
    h = run.history
    return h[h.split == "train"].drop(columns=["time"]).reset_index(drop=True)


def test_same_seed_same_curve(graph):
    a = rdlviz.pretrain(graph, seed=3, **FAST)
    b = rdlviz.pretrain(graph, seed=3, **FAST)
    pd.testing.assert_frame_equal(a.history.drop(columns="time"), b.history.drop(columns="time"))
    c = rdlviz.pretrain(graph, seed=4, **FAST)
    assert not _train_losses(a).equals(_train_losses(c))


def test_history_has_every_objective_and_validation(graph):
    run = rdlviz.pretrain(graph, **FAST)
    for col in ("row", "link", "context", "total"):
        assert run.history[col].notna().all()
    assert set(run.history.split) == {"train", "val"}
    assert (run.history[run.history.split == "val"].step.tolist()) == [3, 6]
    # Each objective is normalised so that chance level is about 1 at the start.
    first = run.history.iloc[0]
    for col in ("row", "link", "context"):
        assert 0.3 < first[col] < 2.0


def test_no_row_after_the_val_cutoff_reaches_a_batch(graph):
    seen = []

    class Collect:
        def on_batch(self, step, batch):
            seen.append(batch)

    rdlviz.pretrain(graph, callbacks=[Collect()], **FAST)
    assert len(seen) == FAST["steps"]
    cutoff = graph.val_time
    for batch in seen:
        assert any("seed_time" in batch[t] for t in batch.node_types)
        for t in batch.node_types:
            if "seed_time" in batch[t]:
                assert int(batch[t].seed_time.max()) <= cutoff
            if "time" in batch[t] and batch[t].num_nodes:
                assert int(batch[t].time.max()) <= cutoff, t
                # and every node is no newer than its own seed
                seed_time = next(batch[s].seed_time for s in batch.node_types if "seed_time" in batch[s])
                assert bool((batch[t].time <= seed_time[batch[t].batch]).all())


def test_checkpoint_round_trips_exactly(graph, tmp_path):
    run = rdlviz.pretrain(graph, **FAST)
    run.save(tmp_path / "ck")
    restored = rdlviz.load_backbone(tmp_path / "ck", graph)
    for (ka, va), (kb, vb) in zip(run.backbone.state_dict().items(), restored.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    from rdlviz.nn import embed_rows

    torch.testing.assert_close(embed_rows(run, graph, "customers"), embed_rows(restored, graph, "customers"))


def test_mismatched_schema_is_refused_with_the_differences(shop, graph, tmp_path):
    run = rdlviz.pretrain(graph, **FAST)
    run.save(tmp_path / "ck")
    other = rdlviz.build_graph(shop, text="drop", columns={"orders": ["amount"]})
    with pytest.raises(SchemaError) as e:
        rdlviz.load_backbone(tmp_path / "ck", other)
    assert "channel" in str(e.value) and "orders" in str(e.value)
    with pytest.raises(SchemaError, match="not an rdlviz checkpoint"):
        rdlviz.load_backbone(tmp_path, graph)


def test_resume_continues_the_same_curve(graph, tmp_path):
    cfg = dict(FAST, steps=8, eval_every=4)
    straight = rdlviz.pretrain(graph, seed=5, **cfg)
    half = rdlviz.pretrain(graph, seed=5, **dict(cfg, steps=4))
    half.save(tmp_path / "half")
    resumed = rdlviz.pretrain(graph, seed=5, resume_from=tmp_path / "half", **cfg)
    a, b = _train_losses(straight), _train_losses(resumed)
    assert b.step.tolist() == list(range(1, 9))
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-5, atol=1e-6)


def test_ctrl_c_stops_cleanly_and_keeps_the_backbone(graph):
    class Interrupt:
        def on_step(self, step, logs):
            if step == 4:
                raise KeyboardInterrupt

    run = rdlviz.pretrain(graph, callbacks=[Interrupt()], **dict(FAST, eval_every=2))
    assert run.stopped == "interrupted" and run.step == 4
    assert run.best_step == 2  # the best state of the evaluations that did happen


def test_each_objective_alone(graph):
    for obj in ("row", "link", "context", "reconstruction"):
        run = rdlviz.pretrain(graph, objectives=(obj,), **dict(FAST, steps=2, eval_every=2))
        assert run.history[obj].notna().all() and run.history["total"].notna().all()


def test_early_stopping_needs_an_improvement_larger_than_min_delta(graph):
    cfg = dict(FAST, steps=12, eval_every=2, patience=2)
    # No evaluation can beat the first one by 10 (chance level of each objective is ~1):
    # the run keeps step 2's state and stops two evaluations later.
    strict = rdlviz.pretrain(graph, min_delta=10.0, **cfg)
    assert (strict.stopped, strict.best_step, strict.step) == ("early_stop", 2, 6)
    # With no threshold, every evaluation that lowers the loss at all is an improvement.
    loose = rdlviz.pretrain(graph, min_delta=0.0, **cfg)
    val = loose.history[loose.history.split == "val"].set_index("step")["total"]
    assert loose.best_val == val.loc[loose.best_step] == val.loc[:loose.step].min()


@pytest.mark.parametrize("kwargs, message", [
    (dict(objectives=("row", "nope")), "unknown objectives"),
    (dict(objectives=()), "at least one"),
    (dict(corruption_p=1.5), "corruption_p"),
    (dict(batch_size=1), "batch_size"),
    (dict(num_neighbors=(0,)), "num_neighbors"),
    (dict(weights={"link": 1.0}, objectives=("row",)), "weights"),
    (dict(min_delta=-0.1), "min_delta"),
])
def test_bad_config_is_a_clear_error(graph, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        rdlviz.pretrain(graph, **dict(FAST, **kwargs))


def test_missing_values_do_not_poison_training(tmp_path):
    """A missing number must not turn the encoder's weights into NaN (0 * NaN gradients)."""
    import relbench

    from conftest import SHOP_KEYS, make_shop_tables, shop_tasks
    from rdlviz.data.manifest import write_dataset

    tables = make_shop_tables(seed=1)
    tables["orders"].loc[tables["orders"].index[::3], "amount"] = float("nan")
    tables["customers"].loc[::4, "age"] = float("nan")
    write_dataset("shop-nan", tables, out_dir=tmp_path / "db", tasks=shop_tasks(), **SHOP_KEYS)
    graph = rdlviz.build_graph(relbench.load_dataset(tmp_path / "db"), text="drop")
    assert torch.isnan(graph.data["orders"].tf.feat_dict[next(
        st for st in graph.data["orders"].tf.feat_dict if st.value == "numerical")]).any()
    run = rdlviz.pretrain(graph, **dict(FAST, steps=4))
    assert run.history[["row", "link", "context", "total"]].notna().all().all()
    for name, p in run.backbone.named_parameters():
        assert torch.isfinite(p).all(), name


def test_checkpoint_with_timestamp_columns_in_several_tables(tmp_path):
    """torch_frame shares a buffer between the timestamp encoders of different tables;
    saving must still work and round-trip."""
    import relbench

    from conftest import SHOP_KEYS, make_shop_tables, shop_tasks
    from rdlviz.data.manifest import write_dataset

    tables = make_shop_tables(seed=2)
    tables["customers"]["signed_up"] = pd.Timestamp("2018-01-01") + pd.to_timedelta(
        range(len(tables["customers"])), unit="D")
    write_dataset("shop-ts", tables, out_dir=tmp_path / "db", tasks=shop_tasks(), **SHOP_KEYS)
    graph = rdlviz.build_graph(relbench.load_dataset(tmp_path / "db"), text="drop")
    with_ts = [t for t in graph.node_types if any(st.value == "timestamp" for st in graph.data[t].tf.col_names_dict)]
    assert len(with_ts) >= 2
    run = rdlviz.pretrain(graph, **dict(FAST, steps=2, eval_every=2))
    run.save(tmp_path / "ck")
    restored = rdlviz.load_backbone(tmp_path / "ck", graph)
    for k, v in run.backbone.state_dict().items():
        assert torch.equal(v, restored.state_dict()[k]), k
