"""The protocol's fine-tuning-lever path: ``--variants`` trains only the named variants, and
``--pretrained-dir`` reloads a seed's pretrained backbone so a second run on the same seed
gives the numbers a fresh pretraining would have given."""

import importlib
import sys
from pathlib import Path

import pytest

import rdlviz

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
protocol = importlib.import_module("protocol")

PRE = dict(steps=4, batch_size=16, num_neighbors=(8, 4), channels=16, encoder_layers=1,
           eval_every=2, eval_batches=2)
FT = dict(epochs=2, batch_size=256, num_neighbors=(8, 4), backbone_lr=1e-3, probe_epochs=1)


@pytest.fixture(scope="module")
def graph(shop):
    return rdlviz.build_graph(shop, text="drop")


def test_a_reloaded_backbone_gives_the_fresh_runs_numbers(shop, graph, tmp_path):
    cache = protocol.cache_folder(str(tmp_path), "shop", 0, PRE, "drop")
    fresh = protocol.run_seed(shop, graph, ["customer-order"], 0, PRE, FT, variants=["finetune"], cache=cache)
    assert (Path(cache) / "protocol.json").exists()
    again = protocol.run_seed(shop, graph, ["customer-order"], 0, PRE, FT, variants=["finetune"], cache=cache)
    assert again["pretrain"]["loaded_from"] == cache and "loaded_from" not in fresh["pretrain"]
    assert [r["variant"] for r in fresh["runs"]] == ["finetune"]
    strip = ("seconds", "loaded_from")
    assert {k: v for k, v in again["pretrain"].items() if k not in strip} == \
        {k: v for k, v in fresh["pretrain"].items() if k not in strip}
    assert again["health"] == fresh["health"]
    assert again["runs"][0]["test"] == fresh["runs"][0]["test"]
    assert again["runs"][0]["val"] == fresh["runs"][0]["val"]


def test_a_changed_pretraining_lever_never_loads_another_backbone(tmp_path):
    base = protocol.cache_folder(str(tmp_path), "shop", 0, PRE, "drop")
    assert protocol.cache_folder(str(tmp_path), "shop", 0, {**PRE, "corruption_p": 0.5}, "drop") != base
    assert protocol.cache_folder(str(tmp_path), "shop", 1, PRE, "drop") != base
    assert protocol.cache_folder(str(tmp_path), "shop", 0, PRE, "hash") != base
    assert protocol.cache_folder(str(tmp_path), "shop", 0, PRE, "drop", {"time_features": False}) != base


def test_pretraining_code_that_changed_never_loads_an_older_backbone(tmp_path, monkeypatch):
    base = protocol.cache_folder(str(tmp_path), "shop", 0, PRE, "drop")
    monkeypatch.setattr(protocol, "PRETRAINING_VERSION", protocol.PRETRAINING_VERSION + 1)
    assert protocol.cache_folder(str(tmp_path), "shop", 0, PRE, "drop") != base


def test_a_restricted_run_tabulates_only_its_variants():
    runs = [{"task": "t", "variant": "finetune", "metric": "roc_auc", "higher_is_better": True,
             "test": 0.6 + 0.01 * s, "val": 0.7, "seconds": 1.0, "best_epoch": 1} for s in range(2)]
    records = [{"seed": s, "pretrain": {"seconds": 1.0}, "runs": [runs[s]], "health": []} for s in range(2)]
    out = protocol.summarize("db", records, {"variants": ["finetune"]}, {"cpu": "c", "cores": 2, "torch": "x",
                                                                         "date": "d"})
    assert list(out["tasks"]["t"]["variants"]) == ["finetune"]
    md = protocol.markdown(out)
    assert "| task | metric | fine-tuned (P&F) |" in md and "scratch (B)" not in md
    assert "Paired wins" not in md  # nothing to pair with


def test_a_fine_tuning_lever_reaches_only_the_fine_tuned_variant(shop, graph, tmp_path):
    # scratch and the probes would refuse wise_alpha (ConfigError), so it must not reach them
    cache = protocol.cache_folder(str(tmp_path), "shop", 0, PRE, "drop")
    rec = protocol.run_seed(shop, graph, ["customer-order"], 0, PRE, {**FT, "wise_alpha": [0.0, 1.0]},
                            cache=cache)
    assert [r["variant"] for r in rec["runs"]] == list(protocol.VARIANTS)
    # the α that validation chose is kept with the fine-tuned run, and reaches the table
    assert [r["variant"] for r in rec["runs"] if "wise_alpha" in r] == ["finetune"]
    run = next(r for r in rec["runs"] if "wise_alpha" in r)
    alpha = run["wise_alpha"]
    assert alpha in (0.0, 1.0)
    # with every candidate's validation score, of which the chosen one is the best (AUROC)
    assert set(run["wise_val"]) == {"0", "1"}
    assert run["wise_val"][format(alpha, "g")] == max(run["wise_val"].values())
    assert run["val"] == pytest.approx(run["wise_val"][format(alpha, "g")])
    out = protocol.summarize("shop", [rec], {}, {"cpu": "c", "cores": 2, "torch": "t", "date": "d"})
    assert out["tasks"]["customer-order"]["variants"]["finetune"]["wise_alpha_per_seed"] == [alpha]
    assert f"WiSE-FT α chosen on validation, per seed: customer-order [{alpha}]" in protocol.markdown(out)


@pytest.mark.parametrize("ft, variants, words", [
    ({**FT, "reference_time": "history", "train_history": "stale"}, ["scratch"], "pull opposite ways"),
    ({**FT, "probe_epochs": 0, "wise_alpha": 0.5}, ["finetune"], "probe_epochs >= 1"),
    ({**FT, "val_history": "later"}, ["probe"], "val_history must be one of"),
    ({**FT, "temporal_strategy": "newest"}, ["scratch"], "temporal_strategy must be 'uniform' or 'last'"),
])
def test_a_configuration_no_variant_can_run_is_refused_before_pretraining(ft, variants, words):
    with pytest.raises(rdlviz.errors.ConfigError, match=words):
        protocol.check_config(ft, variants)


def test_the_schedule_levers_are_checked_only_where_they_apply():
    # wise_alpha with head-only epochs: fine for the fine-tuned variant, and dropped for the others
    protocol.check_config({**FT, "wise_alpha": 0.5}, list(protocol.VARIANTS))
    assert protocol.variant_config("scratch", {**FT, "wise_alpha": 0.5}) == (
        "scratch", {k: v for k, v in FT.items() if k not in ("backbone_lr", "probe_epochs")})
    assert protocol.variant_config("finetune", FT) == ("full", FT)


def test_the_command_line_refuses_a_bad_configuration_at_once():
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "rel_f1.py"
    out = subprocess.run([sys.executable, str(script), "--reference-time", "history", "--train-history", "stale",
                          "--seeds", "0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "pull opposite ways" in out.stderr
    assert "pretrain" not in out.stdout  # nothing was loaded or trained


def test_check_args_defaults_are_finetunes():
    # the protocol checks a partial configuration, so the rest must default as finetune does
    import inspect

    from rdlviz.finetune.loop import check_args

    ft = inspect.signature(rdlviz.finetune).parameters
    for name, p in inspect.signature(check_args).parameters.items():
        assert p.default == ft[name].default, name


@pytest.mark.parametrize("args, words", [
    (["--tasks", "player-team", "--train-history", "stale"], "link task 'player-team'"),
    (["--tasks", "player-team", "--reference-time", "history"], "reference_time='history' is for entity tasks"),
    (["--tasks", "player-nope"], "--tasks player-nope: not a task of this database"),
])
def test_the_command_line_refuses_a_task_it_cannot_run_before_pretraining(args, words):
    # These need the database's tasks, so they are checked once it is loaded, still before
    # anything is pretrained (a link task has one evaluation window).
    import subprocess

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "rel_lahman.py"
    out = subprocess.run([sys.executable, str(script), *args, "--seeds", "0"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 2 and words in out.stderr
    assert "pretrain" not in out.stdout
