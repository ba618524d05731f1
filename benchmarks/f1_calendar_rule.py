"""rel-f1 driver-circuit-compete: what the race calendar alone scores (MAP@10).

Which circuits a driver races at in the next 365 days is mostly next season's calendar,
and that is mostly last season's. This script ranks circuits for every (driver, seed time)
row from rows up to the seed time only (no training), so the link task's MAP in
``rel-f1-link-task.md`` can be read against it:

- ``calendar``: circuits that held a race in the year before the seed time first, then
  the rest, each group ordered by how many races the circuit held in the ten years before;
- ``driver calendar``: as ``calendar``, but circuits the driver raced at in that year
  come first (a driver who raced last year races the calendar; one who did not, less so).

    python benchmarks/f1_calendar_rule.py

Writes benchmarks/results/f1_calendar_rule.json and .md. No training; seconds.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _common  # noqa: E402

import rdlviz  # noqa: E402

YEAR = pd.Timedelta(days=365)


def rank(rule: str, table: pd.DataFrame, races: pd.DataFrame, results: pd.DataFrame, k: int,
         n_circuits: int) -> np.ndarray:
    """``[len(table), k]`` circuit ids per row, reading races and results up to its seed time."""
    pred = np.zeros((len(table), k), dtype=np.int64)
    for ts, rows in table.groupby("date", sort=False):
        past = races[races.date <= ts]
        last_year = past[past.date > ts - YEAR]
        decade = past[past.date > ts - 10 * YEAR].circuitId.value_counts()
        base = np.zeros(n_circuits)
        base[decade.index.to_numpy()] += decade.to_numpy() / (decade.max() + 1.0)  # in [0, 1)
        base[last_year.circuitId.unique()] += 1.0
        raced = results[(results.date <= ts) & (results.date > ts - YEAR)].merge(
            races[["raceId", "circuitId"]], on="raceId")
        by_driver = raced.groupby("driverId").circuitId.unique()
        for pos, driver in zip(rows.index, rows.driverId):
            s = base.copy()
            if rule == "driver calendar" and driver in by_driver.index:
                s[by_driver[driver]] += 2.0
            pred[table.index.get_loc(pos)] = np.argsort(-s, kind="stable")[:k]
    return pred


def main() -> None:
    ds = rdlviz.load("rel-f1")
    db = ds.get_db(upto_test_timestamp=False)
    races, results = db.table_dict["races"].df, db.table_dict["results"].df
    task = ds.load_task("driver-circuit-compete")
    n = len(db.table_dict["circuits"].df)
    rows = []
    for split in ("val", "test"):
        table = task.get_table(split, mask_input_cols=False)
        for rule in ("calendar", "driver calendar"):
            pred = rank(rule, table.df, races, results, task.eval_k, n)
            rows.append({"rule": rule, "split": split, "map": float(task.evaluate(pred, table)["map"])})
    payload = {"machine": _common.machine(), "command": "python benchmarks/f1_calendar_rule.py", "rules": rows}
    md = ["# rel-f1 driver-circuit-compete: the race calendar as a ranking", "",
          "Rows up to each seed time only; MAP@10 from `task.evaluate`. See the script's docstring.", "",
          "| rule | split | MAP@10 |", "|---|---|---|"]
    md += [f"| {r['rule']} | {r['split']} | {r['map']:.4f} |" for r in rows]
    _common.write("f1_calendar_rule", payload, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
