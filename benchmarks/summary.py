"""Where the protocol stands: one table per database of test means, read from the stored
results files.

The scratch / probe / fine-tuned protocol has been run in many settings
(``benchmarks/results/rel-*.md``, each with its lever, seeds, machine and paired baseline).
This script picks the settings that decide the goals and prints their test means side by
side, so that the README's tables are generated, not typed:
``tests/test_benchmark_summary.py`` checks that the README holds exactly this output.
Nothing is run here; every number names the file it is from.

The one distinction that matters when reading it is the **test history**: with RelBench's
protocol (``frozen``) a test seed sees rows up to the test cutoff only, however late the
seed; with ``open`` history (``finetune(test_history="seed")``) it sees every row up to its
own time, as in the public code behind the REDELEX and Relational Transformer rows
(docs/protocol.md, point 9). Numbers from the two are not comparable.

Usage::

    python benchmarks/summary.py            # print the markdown tables
    python benchmarks/summary.py --readme   # write them into README.md, between its markers
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Dict, List, Optional

from protocol import paired_wins  # the count the results files' own markdown uses

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- summary:start -->\n", "<!-- summary:end -->"
VARIANTS = ("scratch", "probe", "finetune")
METRIC_NAMES = {"roc_auc": "AUROC", "mae": "MAE"}


def _f1_rule(history: str) -> List[float]:
    tasks = json.loads((RESULTS / "f1_recent_form_rule.json").read_text())["tasks"]
    return [tasks[t]["test"]["cutoff" if history == "frozen" else "seed"] for t in DATABASES["rel-f1"]["tasks"]]


def _lahman_rule(history: str) -> List[float]:
    rules = json.loads((RESULTS / "lahman_rules.json").read_text())["rules"]
    test = {r["task"]: r["frozen" if history == "frozen" else "seed"] for r in rules if r["split"] == "test"}
    return [test[t] for t in DATABASES["rel-lahman"]["tasks"]]


# Per database: its entity tasks; the settings, as (test history, what differs, results
# file stem), frozen first because it is RelBench's protocol; the no-training rule (its
# name, file and reader); published rows, quoted from their papers, not measured here, as
# (model, test history of its public code, one number per task); and the goal row.
DATABASES: Dict[str, dict] = {
    "rel-f1": {
        "tasks": ("driver-dnf", "driver-top3", "driver-position"),
        "settings": (
            ("frozen", "RelBench's sampler settings: uniform draw, fan-out [128, 64]", "rel-f1-per-row-head-xeon"),
            ("frozen", "as above, without the points or timestamp columns", "rel-f1-no-points-no-time"),
            ("frozen", "each seed's 16 / 8 most recent rows per edge type", "rel-f1-recent-rows"),
            ("frozen", "recent rows, without the points or timestamp columns", "rel-f1-recent-rows-no-points-no-time"),
            ("frozen", "as above, and without races.year", "rel-f1-recent-rows-no-points-no-time-no-year"),
            ("frozen", "recent rows; evaluation seeds encoded and selected at the cutoff",
             "rel-f1-recent-rows-reference-time-val-cutoff"),
            ("frozen", "as above, without the points or timestamp columns",
             "rel-f1-recent-rows-reference-time-val-cutoff-no-points-no-time"),
            ("frozen", "recent rows, encoded and selected at the cutoff, backbones pretrained on the recent rows",
             "rel-f1-recent-rows-pretrain-recent-rows"),
            ("frozen", "as above, validation seeds on their own history",
             "rel-f1-recent-rows-reference-time-pretrain-recent-rows"),
            ("frozen", "recent rows, stale training history, backbones pretrained on the recent rows",
             "rel-f1-recent-rows-stale-history-pretrain-recent-rows"),
            ("open", "RelBench's sampler settings", "rel-f1-test-history-seed"),
            ("open", "as above, without the points or timestamp columns", "rel-f1-test-history-seed-no-points-no-time"),
            ("open", "each seed's 16 / 8 most recent rows per edge type", "rel-f1-recent-rows-test-history-seed"),
            ("open", "recent rows, without the points columns", "rel-f1-recent-rows-test-history-seed-no-points"),
            ("open", "recent rows, without the points or timestamp columns",
             "rel-f1-recent-rows-test-history-seed-no-points-no-time"),
            ("open", "as above, and without races.year", "rel-f1-recent-rows-test-history-seed-no-points-no-time-no-year"),
        ),
        "rule": ("a driver's recent form, no training", "f1_recent_form_rule", _f1_rule),
        "references": (
            ("RelBench GNN", "frozen", 0.726, 0.755, 4.022),
            ("REDELEX ResNet-SAGE, scratch / fine-tuned", "open (their code)", "0.778 / 0.768", "0.852 / 0.799",
             "3.871 / 3.469"),
            ("Relational Transformer, fine-tuned", "open", 0.842, 0.921, None),
        ),
        "goal": ("≥ 0.80", "≥ 0.87", "≤ 3.4"),
    },
    "rel-lahman": {
        "tasks": ("player-allstar", "player-hits", "team-win-ratio"),
        "settings": (
            ("frozen", "RelBench's sampler settings: uniform draw, fan-out [128, 64]",
             "rel-lahman-per-row-head-xeon"),
            ("frozen", "each seed's 16 / 8 most recent rows per edge type", "rel-lahman-recent-rows"),
            ("frozen", "test seeds encoded at the cutoff", "rel-lahman-reference-time"),
            ("frozen", "at least 20 optimisation steps an epoch", "rel-lahman-min-steps"),
            ("open", "each seed's 16 / 8 most recent rows per edge type",
             "rel-lahman-recent-rows-test-history-seed"),
        ),
        "rule": ("last season's value, no training", "lahman_rules", _lahman_rule),
        "references": (),
        "goal": None,
    },
}


def _load(stem: str) -> dict:
    path = RESULTS / f"{stem}.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: summary.py lists it in DATABASES; run its benchmark or drop the row")
    return json.loads(path.read_text())


def _per_seed(result: dict, task: str, variant: str) -> Optional[List[float]]:
    """The variant's per-seed test metrics; a file that ran only the pretrained variants
    takes scratch from its paired baseline (stored aligned to its seeds), as its own markdown does."""
    entry = result["tasks"][task]["variants"].get(variant)
    if entry is not None:
        return entry["per_seed"]
    base = (result.get("baseline") or {}).get("tasks", {}).get(task, {}).get(variant)
    return base["per_seed"] if base else None


def _mean(xs: Optional[List[float]]) -> Optional[float]:
    return sum(xs) / len(xs) if xs else None


def _fmt(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    return f"{x:.2f}" if abs(x) >= 10 else f"{x:.3f}" if abs(x) >= 0.1 else f"{x:.4f}"


def row(history: str, what: str, stem: str, tasks=DATABASES["rel-f1"]["tasks"]) -> Dict[str, object]:
    """One setting: the test mean of each variant on each task, and the seeds on which
    fine-tuned (P&F) beats scratch (B) on test. A task the file did not run is ``None``."""
    result = _load(stem)
    means, wins, labels = {}, {}, {}
    for task in tasks:
        if task not in result["tasks"]:
            means[task], wins[task] = None, "—"
            continue
        metric, higher = result["tasks"][task]["metric"], result["tasks"][task]["higher_is_better"]
        labels[task] = METRIC_NAMES.get(metric, metric) + (" ↑" if higher else " ↓")
        runs = {v: _per_seed(result, task, v) for v in VARIANTS}
        means[task] = {v: _mean(runs[v]) for v in VARIANTS}
        b, pf = runs["scratch"], runs["finetune"]
        wins[task] = paired_wins(pf, b, higher) if b and pf else "—"
    return {"history": history, "what": what, "stem": stem, "seeds": len(result["seeds"]),
            "means": means, "wins": wins, "labels": labels}


def markdown(database: str = "rel-f1") -> str:
    """One database's table: the settings, the no-training rule, the published rows, the goal."""
    spec = DATABASES[database]
    tasks = spec["tasks"]
    rows = [row(history, what, stem, tasks) for history, what, stem in spec["settings"]]
    labels = {t: label for r in reversed(rows) for t, label in r["labels"].items()}  # from the first file that ran the task
    head = "| test history | setting | seeds | " + " | ".join(f"{t} {labels[t]} B / P / P&F" for t in tasks) \
        + " | P&F beats B (test seeds) | file |"
    lines = [head, "|" + "---|" * (len(tasks) + 5)]
    for r in rows:
        history, what, stem = r["history"], r["what"], r["stem"]
        cells = ["—" if r["means"][t] is None else " / ".join(_fmt(r["means"][t][v]) for v in VARIANTS)
                 for t in tasks]
        wins = ", ".join(r["wins"][t] for t in tasks)
        lines.append(f"| {history} | {what} | {r['seeds']} | " + " | ".join(cells) + f" | {wins} | `{stem}.md` |")
    name, stem, read = spec["rule"]
    for history in ("frozen", "open"):
        lines.append(f"| {history} | {name} | — | " + " | ".join(_fmt(x) for x in read(history))
                     + f" | — | `{stem}.md` |")
    for model, history, *numbers in spec["references"]:
        lines.append(f"| {history} | {model} (published) | — | " + " | ".join(_fmt(x) for x in numbers)
                     + " | — | paper |")
    if spec["goal"]:
        lines.append("| | goal | | " + " | ".join(spec["goal"]) + " | every task | |")
    return "\n".join(lines) + "\n"


def tables() -> str:
    """Every database's table, each under its name: what the README holds."""
    return "\n".join(f"**{db}**\n\n{markdown(db)}" for db in DATABASES)


def readme_block(text: str) -> str:
    """The tables as they stand in ``text`` (the README), between the two markers."""
    found = re.search(re.escape(START) + "(.*?)" + re.escape(END), text, flags=re.S)
    if found is None:
        raise SystemExit(f"README.md has no {START.strip()} ... {END} block for the tables")
    return found.group(1)


def write_readme() -> None:
    text = README.read_text()
    old = readme_block(text)
    README.write_text(text.replace(START + old + END, START + tables() + END))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--readme", action="store_true", help="write the tables into README.md")
    if p.parse_args().readme:
        write_readme()
    else:
        print(tables(), end="")
