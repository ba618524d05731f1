"""rel-f1 entity tasks: what a driver's recent form alone scores, by the history test seeds see.

A rule with no training, to read the protocol's numbers against (``docs/protocol.md``):
each evaluation row (driver, seed time t) is scored from the driver's last ``k`` rows
that the row may see:

- driver-dnf (AUROC): the share of those results the driver did not finish
  (``statusId != 1``, the label's definition);
- driver-top3 (AUROC): the share of those qualifying sessions in the top 3;
- driver-position (MAE): the mean ``positionOrder`` of those results.

A driver with no such row gets the training labels' mean (the median for MAE). ``k`` is
chosen on validation from ``K_CHOICES`` and then scored on test once. Two histories, as
in ``finetune(test_history=...)``:

- ``cutoff`` (RelBench's protocol): a test row sees rows up to the test cutoff only;
- ``seed``: every row up to its own time t.

Validation rows see rows up to their own time in both (they lie before the test cutoff).
Nothing after a row's seed time is read. Test metrics come from ``task.evaluate``.

    python benchmarks/f1_recent_form_rule.py

Writes benchmarks/results/f1_recent_form_rule.json and .md. No training; seconds.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _common  # noqa: E402

import rdlviz  # noqa: E402

K_CHOICES = (1, 3, 5, 10, 20, 50)
# task -> (table the form is read from, per-row value of the form, metric)
FORMS = {
    "driver-dnf": ("results", lambda df: (df.statusId != 1).astype(float), "roc_auc"),
    "driver-top3": ("qualifying", lambda df: (df.position <= 3).astype(float), "roc_auc"),
    "driver-position": ("results", lambda df: df.positionOrder.astype(float), "mae"),
}


def recent_form(rows: pd.DataFrame, drivers: np.ndarray, until: np.ndarray, k: int,
                fill: float) -> Tuple[np.ndarray, np.ndarray]:
    """Mean ``value`` of each driver's last ``k`` rows with ``date <= until`` (``fill``
    for a driver without one), and whether the driver had one. ``rows``: ``driverId``,
    ``date``, ``value``."""
    by_driver = {d: (g.date.to_numpy(), g.value.to_numpy())
                 for d, g in rows.sort_values("date", kind="stable").groupby("driverId")}
    out = np.full(len(drivers), fill, dtype=float)
    seen = np.zeros(len(drivers), dtype=bool)
    for i, (d, h) in enumerate(zip(drivers, until)):
        if d not in by_driver:
            continue
        dates, values = by_driver[d]
        end = int(np.searchsorted(dates, h, side="right"))
        if end:
            out[i], seen[i] = values[max(0, end - k):end].mean(), True
    return out, seen


def score(task, pred: np.ndarray, metric: str, split: str) -> float:
    """``task.evaluate`` on ``split``; MAE from its NMAE, as ``finetune`` reports it."""
    res = task.evaluate(pred, None if split == "test" else task.get_table(split))
    return float(res["nmae"] * task.nmae_std) if metric == "mae" else float(res[metric])


def run_task(ds, task_name: str, db) -> Dict:
    task = ds.load_task(task_name)
    table_name, value, metric = FORMS[task_name]
    src = db.table_dict[table_name].df
    rows = pd.DataFrame({"driverId": src.driverId.to_numpy(), "date": src.date.to_numpy(),
                         "value": value(src).to_numpy()}).dropna()
    y_train = task.get_table("train").df[task.target_col]
    fill = float(y_train.median() if metric == "mae" else y_train.mean())
    cut = np.datetime64(pd.Timestamp(ds.test_timestamp))
    val = task.get_table("val").df
    test = task.get_table("test").df

    def predict(df: pd.DataFrame, k: int, history: Optional[str]) -> Tuple[np.ndarray, np.ndarray]:
        until = df.date.to_numpy()
        if history == "cutoff":
            until = np.minimum(until, cut)
        return recent_form(rows, df.driverId.to_numpy(), until, k, fill)

    val_scores = {k: score(task, predict(val, k, None)[0], metric, "val") for k in K_CHOICES}
    pick = (max if metric == "roc_auc" else min)(val_scores, key=val_scores.get)
    out = {"metric": metric, "higher_is_better": metric == "roc_auc", "k": pick,
           "val": val_scores[pick], "val_by_k": val_scores,
           "test": {h: score(task, predict(test, pick, h)[0], metric, "test") for h in ("cutoff", "seed")}}
    # The share of test rows with any row to read, under each history.
    out["test_rows_with_history"] = {h: float(np.mean(predict(test, pick, h)[1])) for h in ("cutoff", "seed")}
    return out


def markdown(res: Dict) -> str:
    lines = ["# rel-f1: a driver's recent form as the prediction", "",
             "No training. Each row is scored from the driver's last k rows it may see; k is chosen on "
             "validation. Test under RelBench's history (rows up to the test cutoff) and under each "
             "seed's own history (`finetune(test_history=\"seed\")`). See the script's docstring.", "",
             "| task | metric | k (chosen on val) | val | test, history to the cutoff | test, history to the seed |"
             " test rows with history (cutoff / seed) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in res["tasks"].items():
        arrow = "↑" if r["higher_is_better"] else "↓"
        share = r["test_rows_with_history"]
        lines.append(f"| {name} | {r['metric']} {arrow} | {r['k']} | {r['val']:.4f} | {r['test']['cutoff']:.4f} | "
                     f"{r['test']['seed']:.4f} | {share['cutoff']:.2f} / {share['seed']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ds = rdlviz.load("rel-f1")
    db = ds.get_db(upto_test_timestamp=False)  # read up to each row's own history below
    res = {"database": "rel-f1", "machine": _common.machine(),
           "tasks": {name: run_task(ds, name, db) for name in FORMS}}
    _common.write("f1_recent_form_rule", res, markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
