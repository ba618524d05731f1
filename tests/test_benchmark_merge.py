"""The benchmark protocol's merge: runs made in separate processes combine into the same
results file that one run over all seeds would have written."""

import importlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
protocol = importlib.import_module("protocol")
_common = importlib.import_module("_common")

CONFIG = {"pretrain": {"steps": 10}, "finetune": {"epochs": 2}, "text": "hash", "device": "cpu"}
MACHINE = {"cpu": "test", "cores": 2, "torch": "x", "date": "2026-01-01"}


def _record(seed):
    runs = []
    for task, metric, hib in (("t-cls", "roc_auc", True), ("t-reg", "mae", False)):
        for i, v in enumerate(protocol.VARIANTS):
            runs.append({"task": task, "variant": v, "metric": metric, "higher_is_better": hib,
                         "test": 0.5 + 0.01 * seed + 0.001 * i, "val": 0.4 + 0.02 * seed - 0.001 * i,
                         "seconds": 10.0 * (seed + 1) + i, "best_epoch": 1 + seed + i})
    return {"seed": seed, "pretrain": {"seconds": 100.0 + seed, "steps": 10},
            "runs": runs, "health": [{"seed": seed, "table": "a", "pretrained": {}, "random": {}}]}


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    return tmp_path


def _write(path, seeds, machine=MACHINE, config=CONFIG):
    out = protocol.summarize("db", [_record(s) for s in seeds], config, machine)
    path.write_text(json.dumps(out))
    return str(path)


def test_merging_a_multi_seed_file_with_a_one_seed_file_equals_one_run_over_all_seeds(results_dir):
    whole = protocol.summarize("db", [_record(s) for s in (0, 1, 2)], CONFIG, MACHINE)
    a = _write(results_dir / "a.json", [0, 1])
    b = _write(results_dir / "b.json", [2])
    merged = protocol.merge([b, a], "db", "merged")
    assert merged["seeds"] == [0, 1, 2]
    assert merged["phase_seconds_mean"] == whole["phase_seconds_mean"]
    for task, t in whole["tasks"].items():
        for v, s in t["variants"].items():
            m = merged["tasks"][task]["variants"][v]
            assert m["per_seed"] == s["per_seed"] and m["val_per_seed"] == s["val_per_seed"]
            assert m["mean"] == pytest.approx(s["mean"]) and m["std"] == pytest.approx(s["std"])
            assert m["seconds"] == pytest.approx(s["seconds"])
    assert (results_dir / "merged.json").exists() and (results_dir / "merged.md").exists()


def test_merging_keeps_the_chosen_epochs_and_the_wise_ft_choice_per_seed(results_dir):
    records = [_record(s) for s in (0, 1)]
    for rec, alpha in zip(records, (0.5, 1.0)):
        for run in rec["runs"]:
            if run["variant"] == "finetune":
                run["wise_alpha"] = alpha
                run["wise_val"] = {"0.5": 0.6 + rec["seed"], "1": 0.7}
    for rec in records:
        (results_dir / f"s{rec['seed']}.json").write_text(json.dumps(protocol.summarize("db", [rec], CONFIG,
                                                                                        MACHINE)))
    merged = protocol.merge([str(results_dir / "s0.json"), str(results_dir / "s1.json")], "db", "merged")
    for t in merged["tasks"].values():
        ft = t["variants"]["finetune"]
        assert ft["wise_alpha_per_seed"] == [0.5, 1.0]
        assert ft["wise_val_per_seed"] == [{"0.5": 0.6, "1": 0.7}, {"0.5": 1.6, "1": 0.7}]
        assert "wise_alpha_per_seed" not in t["variants"]["scratch"]
        assert "wise_val_per_seed" not in t["variants"]["scratch"]
        for i, v in enumerate(protocol.VARIANTS):
            assert t["variants"][v]["best_epoch_per_seed"] == [1 + i, 2 + i]
    md = (results_dir / "merged.md").read_text()
    # the mean of each candidate's validation over the seeds, and each variant's epochs
    assert "| t-cls | 1.1000 | 0.7000 |" in md
    assert "| t-reg | 1, 2 | 2, 3 | 3, 4 | 4, 5 |" in md


def test_merge_refuses_repeated_seeds_and_mixed_configs(results_dir):
    a = _write(results_dir / "a.json", [0, 1])
    b = _write(results_dir / "b.json", [1])
    with pytest.raises(ValueError, match=r"seed\(s\) \[1\] twice"):
        protocol.merge([a, b], "db", "merged")
    other = protocol.summarize("db", [_record(3)], dict(CONFIG, text="minilm"), MACHINE)
    (results_dir / "c.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="different configs"):
        protocol.merge([a, str(results_dir / "c.json")], "db", "merged")


def test_merge_refuses_runs_from_other_pretraining_code(results_dir, monkeypatch):
    # a backbone pretrained before a fix (another PRETRAINING_VERSION) gives other numbers
    def part(path, seeds):
        config = protocol.results_config({"steps": 10}, {"epochs": 2}, "hash", "cpu", {}, None, protocol.VARIANTS)
        return _write(path, seeds, config=config)

    now = part(results_dir / "now.json", [0])
    assert json.load(open(now))["config"]["pretraining_version"] == protocol.PRETRAINING_VERSION
    monkeypatch.setattr(protocol, "PRETRAINING_VERSION", protocol.PRETRAINING_VERSION + 1)
    later = part(results_dir / "later.json", [1])
    with pytest.raises(ValueError, match="different configs"):
        protocol.merge([now, later], "db", "merged")
    assert protocol.merge([later, part(results_dir / "later2.json", [2])], "db", "merged")["seeds"] == [1, 2]


def _part(path, seeds, task, pretrain_seconds=None, loaded_from=None):
    records = []
    for seed in seeds:
        r = _record(seed)
        r["runs"] = [x for x in r["runs"] if x["task"] == task]
        if pretrain_seconds is not None:
            r["pretrain"]["seconds"] = pretrain_seconds
        if loaded_from is not None:
            r["pretrain"]["loaded_from"] = loaded_from
        records.append(r)
    path.write_text(json.dumps(protocol.summarize("db", records, CONFIG, MACHINE)))
    return str(path)


def test_runs_of_other_tasks_on_the_same_seeds_join(results_dir):
    whole = protocol.summarize("db", [_record(s) for s in (0, 1)], CONFIG, MACHINE)
    cls = _part(results_dir / "cls.json", [0, 1], "t-cls")
    reg = _part(results_dir / "reg.json", [0, 1], "t-reg")
    merged = protocol.merge([cls, reg], "db", "merged")
    assert merged["seeds"] == [0, 1] and list(merged["tasks"]) == ["t-cls", "t-reg"]
    for task, t in whole["tasks"].items():
        for v, s in t["variants"].items():
            assert merged["tasks"][task]["variants"][v]["per_seed"] == s["per_seed"]
    # the same task twice, or another backbone under the same seed, is refused
    with pytest.raises(ValueError, match=r"seed\(s\) \[0\] twice \(task\(s\) \['t-cls'\]\)"):
        protocol.merge([cls, cls], "db", "merged")
    # a run that loaded the same backbone from the cache joins the run that pretrained it
    cached = _part(results_dir / "cached.json", [0, 1], "t-reg", loaded_from="/cache")
    assert protocol.merge([cls, cached], "db", "merged")["seeds"] == [0, 1]
    other = _part(results_dir / "other.json", [0, 1], "t-reg", pretrain_seconds=1.0)
    with pytest.raises(ValueError, match="two different pretraining runs"):
        protocol.merge([cls, other], "db", "merged")


def test_merged_header_spans_the_dates_of_its_runs(results_dir):
    a = _write(results_dir / "a.json", [0, 1])
    b = _write(results_dir / "b.json", [2], machine=dict(MACHINE, date="2026-01-03"))
    merged = protocol.merge([b, a], "db", "merged")
    assert merged["machine"]["date"] == "2026-01-01 to 2026-01-03"
    assert "2026-01-01 to 2026-01-03" in (results_dir / "merged.md").read_text()
    same_day = protocol.merge([a, _write(results_dir / "c.json", [3])], "db", "merged2")
    assert same_day["machine"]["date"] == "2026-01-01"


def test_a_baseline_pairs_every_seed_and_refuses_missing_seeds(results_dir):
    base = _write(results_dir / "base.json", [0, 1, 2])
    lever = protocol.summarize("db", [_record(s) for s in (1, 2)], CONFIG, MACHINE)
    for r in lever["tasks"]["t-cls"]["variants"]["finetune"], lever["tasks"]["t-reg"]["variants"]["finetune"]:
        r["per_seed"] = [x + 0.5 for x in r["per_seed"]]  # better for t-cls (AUROC), worse for t-reg (MAE)
    path = results_dir / "lever.json"
    path.write_text(json.dumps(lever))
    out = protocol.merge([str(path)], "db", "merged", baseline=base)
    assert out["baseline"]["tasks"]["t-cls"]["scratch"]["per_seed"] == \
        json.load(open(base))["tasks"]["t-cls"]["variants"]["scratch"]["per_seed"][1:]
    md = (results_dir / "merged.md").read_text()
    assert "Against `base.json` on the same seeds" in md
    assert "(same on every seed)" in md  # the untouched variants reproduce
    rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| t-")}
    assert "2/2 /" in rows["t-cls"].split(" | ")[4] and "0/2 /" in rows["t-reg"].split(" | ")[4]
    # only test changed: validation is reported as the same, not as "better on 0/2"
    assert rows["t-cls"].split(" | ")[4].endswith("2/2 / same")
    with pytest.raises(ValueError, match=r"no seed\(s\) \[3\]"):
        protocol.merge([_write(results_dir / "s3.json", [3])], "db", "x", baseline=base)


def test_a_baseline_from_another_machine_or_backbone_is_flagged(results_dir):
    base = _write(results_dir / "base.json", [0, 1])
    records = [_record(s) for s in (0, 1)]
    same = protocol.summarize("db", records, CONFIG, MACHINE)
    (results_dir / "same.json").write_text(json.dumps(same))
    out = protocol.merge([str(results_dir / "same.json")], "db", "m1", baseline=base)
    assert out["baseline"]["other_backbone"] == []
    assert "another machine" not in (results_dir / "m1.md").read_text()
    # seed 1 pretrained to another validation loss, on another CPU
    records[1]["pretrain"]["val"] = {"total": 0.9}
    other = protocol.summarize("db", records, CONFIG, dict(MACHINE, cpu="other cpu"))
    (results_dir / "other.json").write_text(json.dumps(other))
    out = protocol.merge([str(results_dir / "other.json")], "db", "m2", baseline=base)
    assert out["baseline"]["other_backbone"] == [1]
    md = (results_dir / "m2.md").read_text()
    assert "The baseline ran on another machine (test, torch x)" in md
    assert "Seed(s) [1] were pretrained to other validation losses there" in md


def test_a_run_refuses_a_wrong_baseline_before_it_trains(results_dir):
    base = _write(results_dir / "base.json", [0, 1])
    # "db" is no loadable database: reaching rdlviz.load would fail differently
    with pytest.raises(ValueError, match=r"no seed\(s\) \[5\]"):
        protocol.run_protocol("db", ["t-cls"], [5], {}, {}, baseline=base)
    with pytest.raises(ValueError, match="no task 't-other'"):
        protocol.run_protocol("db", ["t-other"], [0], {}, {}, baseline=base)


def test_a_one_seed_table_claims_no_spread():
    one = protocol.markdown(protocol.summarize("db", [_record(0)], CONFIG, MACHINE))
    assert "(one seed)" in one and "± 0.0000" not in one
    two = protocol.markdown(protocol.summarize("db", [_record(0), _record(1)], CONFIG, MACHINE))
    assert "(one seed)" not in two and "± 0.0071" in two  # the test spread of 0.50 and 0.51
