"""Where rel-f1 stands: one table of test means, read from the stored results files.

The protocol has been run in many settings (``benchmarks/results/rel-f1-*.md``, each with
its lever, seeds, machine and paired baseline). This script picks the settings that
decide the targets and prints their test means side by side, so that the README's table
is generated, not typed: ``tests/test_benchmark_summary.py`` checks that the README
holds exactly this output. Nothing is run here; every number names the file it is from.

The one distinction that matters when reading it is the **test history**: with RelBench's
protocol (``frozen``) a test seed sees rows up to the test cutoff only, however late the
seed; with ``open`` history (``finetune(test_history="seed")``) it sees every row up to its
own time, as in the public code behind the REDELEX and Relational Transformer rows
(docs/protocol.md, point 9). Numbers from the two settings are not comparable.

Usage::

    python benchmarks/summary.py            # print the markdown table
    python benchmarks/summary.py --readme   # write it into README.md, between its markers
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- summary:start -->\n", "<!-- summary:end -->"
TASKS = ("driver-dnf", "driver-top3", "driver-position")
VARIANTS = ("scratch", "probe", "finetune")

# (test history, what differs, results file stem). Frozen first: it is RelBench's protocol.
SETTINGS: Sequence[tuple] = (
    ("frozen", "RelBench's sampler settings: uniform draw, fan-out [128, 64]", "rel-f1-per-row-head-xeon"),
    ("frozen", "each seed's 16 / 8 most recent rows per edge type", "rel-f1-recent-rows"),
    ("frozen", "recent rows; evaluation seeds encoded and selected at the cutoff",
     "rel-f1-recent-rows-reference-time-val-cutoff"),
    ("frozen", "as above, backbones pretrained on the recent rows",
     "rel-f1-recent-rows-pretrain-recent-rows"),
    ("frozen", "as above, validation seeds on their own history",
     "rel-f1-recent-rows-reference-time-pretrain-recent-rows"),
    ("frozen", "recent rows, stale training history, backbones pretrained on the recent rows",
     "rel-f1-recent-rows-stale-history-pretrain-recent-rows"),
    ("open", "RelBench's sampler settings", "rel-f1-test-history-seed"),
    ("open", "each seed's 16 / 8 most recent rows per edge type", "rel-f1-recent-rows-test-history-seed"),
    ("open", "recent rows, without the points columns", "rel-f1-recent-rows-test-history-seed-no-points"),
)

# Published rows, quoted from their papers, not measured here:
# (model, test history of its public code, dnf AUROC, top3 AUROC, position MAE).
REFERENCES: Sequence[tuple] = (
    ("RelBench GNN", "frozen", 0.726, 0.755, 4.022),
    ("REDELEX ResNet-SAGE, scratch / fine-tuned", "open (their code)", "0.778 / 0.768", "0.852 / 0.799",
     "3.871 / 3.469"),
    ("Relational Transformer, fine-tuned", "open", 0.842, 0.921, None),
)
TARGETS = (0.80, 0.87, 3.4)


def _load(stem: str) -> dict:
    path = RESULTS / f"{stem}.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: summary.py lists it in SETTINGS; run its benchmark or drop the row")
    return json.loads(path.read_text())


def _per_seed(result: dict, task: str, variant: str) -> Optional[List[float]]:
    """The variant's per-seed test metrics; a file that ran only the pretrained variants
    takes scratch from its paired baseline (same seeds), as its own markdown does."""
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
    return x if isinstance(x, str) else f"{x:.3f}"


def row(history: str, what: str, stem: str) -> Dict[str, object]:
    """One setting: the test mean of each variant on each task, and the seeds on which
    fine-tuned (P&F) beats scratch (B) on test."""
    result = _load(stem)
    means, wins = {}, {}
    for task in TASKS:
        higher = result["tasks"][task]["higher_is_better"]
        runs = {v: _per_seed(result, task, v) for v in VARIANTS}
        means[task] = {v: _mean(runs[v]) for v in VARIANTS}
        b, pf = runs["scratch"], runs["finetune"]
        if b and pf:
            better = sum((f > s) if higher else (f < s) for s, f in zip(b, pf))
            wins[task] = f"{better}/{len(pf)}"
        else:
            wins[task] = "—"
    return {"history": history, "what": what, "stem": stem, "seeds": len(result["seeds"]),
            "means": means, "wins": wins}


def markdown() -> str:
    """The README's table: settings, then the no-training rule, then the published rows."""
    head = ("| test history | setting | seeds | driver-dnf AUROC ↑ B / P / P&F | driver-top3 AUROC ↑ B / P / P&F "
            "| driver-position MAE ↓ B / P / P&F | P&F beats B (test seeds) | file |")
    lines = [head, "|" + "---|" * 8]
    for history, what, stem in SETTINGS:
        r = row(history, what, stem)
        cells = [" / ".join(_fmt(r["means"][t][v]) for v in VARIANTS) for t in TASKS]
        wins = ", ".join(r["wins"][t] for t in TASKS)
        lines.append(f"| {history} | {what} | {r['seeds']} | " + " | ".join(cells) + f" | {wins} | `{stem}.md` |")
    rule = json.loads((RESULTS / "f1_recent_form_rule.json").read_text())["tasks"]
    for history, key in (("frozen", "cutoff"), ("open", "seed")):
        cells = [_fmt(rule[t]["test"][key]) for t in TASKS]
        lines.append(f"| {history} | a driver's recent form, no training | — | " + " | ".join(cells)
                     + " | — | `f1_recent_form_rule.md` |")
    for model, history, *numbers in REFERENCES:
        lines.append(f"| {history} | {model} (published) | — | " + " | ".join(_fmt(x) for x in numbers)
                     + " | — | paper |")
    lines.append("| | goal | | ≥ 0.80 | ≥ 0.87 | ≤ 3.4 | every task | |")
    return "\n".join(lines) + "\n"


def readme_block(text: str) -> str:
    """The table as it stands in ``text`` (the README), between the two markers."""
    found = re.search(re.escape(START) + "(.*?)" + re.escape(END), text, flags=re.S)
    if found is None:
        raise SystemExit(f"README.md has no {START.strip()} ... {END} block for the table")
    return found.group(1)


def write_readme() -> None:
    text = README.read_text()
    old = readme_block(text)
    README.write_text(text.replace(START + old + END, START + markdown() + END))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--readme", action="store_true", help="write the table into README.md")
    if p.parse_args().readme:
        write_readme()
    else:
        print(markdown(), end="")
