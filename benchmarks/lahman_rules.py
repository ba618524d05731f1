"""rel-lahman's rule baselines, with the history a model is given.

``docs/databases/rel-lahman.md`` scores three "last season" rules with rows up to each
seed time. Under RelBench's protocol a model sees less on test: the graph stops at the
test cutoff (2021-01-01), so a 2023 seed's "last season" in the graph is 2020. This script
scores each rule both ways, so a model can be compared with the rule that had the same
information:

- ``seed``: the rule reads the season before each seed time (as in the database docs);
- ``frozen``: the rule reads the season before min(seed time, cutoff), the cutoff being the
  val cutoff for validation and the test cutoff for test (what a model sees on test, and
  what ``finetune(val_history="cutoff")`` gives validation).

    python benchmarks/lahman_rules.py

Writes benchmarks/results/lahman_rules.json and lahman_rules.md. No training; seconds.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _common  # noqa: E402

import rdlviz  # noqa: E402

SEASON = pd.Timedelta(days=365)


def _last_season(df: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """Rows of the season ending in (at - 1 year, at] (each season is dated 15 December)."""
    return df[(df.date > at - SEASON) & (df.date <= at)]


def score(task_name: str, table: pd.DataFrame, db, cut) -> float:
    """The rule's metric on one split, reading the season before min(seed time, cut)."""
    t = db.table_dict
    preds = []
    for ts, rows in table.groupby("timestamp", sort=False):
        at = ts if cut is None else min(ts, cut)
        if task_name == "player-allstar":
            star = set(_last_season(t["all_star"].df, at).person_id)
            hits = _last_season(t["batting"].df, at).groupby("person_id").H.sum()
            p = rows.person_id.isin(star) * 1000.0 + rows.person_id.map(hits).fillna(0)
        elif task_name == "player-hits":
            hits = _last_season(t["batting"].df, at).groupby("person_id").H.sum()
            p = rows.person_id.map(hits).fillna(0.0)
        else:  # team-win-ratio; a franchise without a last season gets the league's 0.5
            teams = _last_season(t["teams"].df, at)
            ratio = (teams.W / (teams.W + teams.L)).groupby(teams.franchise_id).mean()
            p = rows.franchise_id.map(ratio).fillna(0.5)
        preds.append(pd.Series(p.to_numpy(dtype=float), index=rows.index))
    pred = pd.concat(preds).reindex(table.index).to_numpy()
    target = table.iloc[:, -1].to_numpy(dtype=float)
    if task_name == "player-allstar":
        return float(roc_auc_score(target, pred))
    return float(np.abs(pred - target).mean())


def main() -> None:
    ds = rdlviz.load("rel-lahman")
    db = ds.get_db(upto_test_timestamp=False)
    cuts = {"val": pd.Timestamp(ds.val_timestamp), "test": pd.Timestamp(ds.test_timestamp)}
    rows = []
    for name in ("player-allstar", "player-hits", "team-win-ratio"):
        task = ds.load_task(name)
        for split in ("val", "test"):
            table = task.get_table(split, mask_input_cols=False).df
            rows.append({"task": name, "split": split, "metric": "roc_auc" if name == "player-allstar" else "mae",
                         "seed": score(name, table, db, None), "frozen": score(name, table, db, cuts[split])})
    payload = {"machine": _common.machine(), "command": "python benchmarks/lahman_rules.py", "rules": rows}
    md = ["# rel-lahman: last-season rules, with the history a model is given", "",
          "`seed`: the season before each seed time. `frozen`: the season before min(seed time, the split's "
          "cutoff), which is what a model sees on test under RelBench's protocol (and on validation with "
          "`finetune(val_history=\"cutoff\")`).", "",
          "| task | rule | split | metric | seed | frozen |", "|---|---|---|---|---|---|"]
    rule = {"player-allstar": "All-Star last season, then last season's hits",
            "player-hits": "last season's hits", "team-win-ratio": "last season's W / (W + L)"}
    for r in rows:
        md.append(f"| {r['task']} | {rule[r['task']]} | {r['split']} | {r['metric']} | {r['seed']:.4f} | {r['frozen']:.4f} |")
    md.append("")
    _common.write("lahman_rules", payload, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
