"""Where in the evaluation period does a model go wrong? Metrics per seed time.

A val or test table holds several seed times (rel-lahman's player-hits: four seasons
each). One number over all of them can hide a single bad season. This script trains one
scratch model with the protocol's budget, then scores its val and test predictions
separately at each seed time, next to the training mean (for regression) and the mean
prediction: a model that misreads a shifted season shows up as a gap between the mean
prediction and the mean target there.

    python benchmarks/error_by_time.py rel-lahman player-hits
    python benchmarks/error_by_time.py rel-lahman player-hits --no-time-features --drop '*.yearID' \
        people.birthYear --out error_by_time-rel-lahman-player-hits-no-time
    RDLVIZ_F1_SOURCE=../shared/data/f1db python benchmarks/error_by_time.py rel-f1 driver-position

Writes benchmarks/results/error_by_time-<database>-<task>.json and .md (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from sklearn.metrics import mean_absolute_error, roc_auc_score

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _common  # noqa: E402
import protocol  # noqa: E402

import rdlviz  # noqa: E402
from rdlviz.graph.time import to_unix_seconds  # noqa: E402


def linked_row_time(graph, entity: str, reduce: str = "amin", before: float = float("inf")) -> np.ndarray:
    """Per entity row, the earliest (``reduce="amin"``) or latest (``"amax"``) time of a
    timed row linked to it in the graph and no later than ``before`` (``inf`` / ``-inf``
    when it has none)."""
    data = graph.data
    empty = float("inf") if reduce == "amin" else float("-inf")
    out = torch.full((data[entity].num_nodes,), empty, dtype=torch.float64)
    for src, rel, dst in data.edge_types:
        if src == entity and "time" in data[dst]:
            e = data[src, rel, dst].edge_index
            t = data[dst].time[e[1]].double()
            keep = t <= before
            out.scatter_reduce_(0, e[0][keep], t[keep], reduce=reduce)
    return out.numpy()


def first_row_time(graph, entity: str) -> np.ndarray:
    """Per entity row, the time of its earliest linked timed row in the graph (``inf``
    when it has none): an entity whose first row is later than a seed's history has no
    history at all for that seed, whatever the model."""
    return linked_row_time(graph, entity, "amin")


def per_time(task, split: str, pred: np.ndarray, kind: str, train_mean: float,
             first: np.ndarray, history_end: float) -> list:
    """One row per seed time: rows, the share of seeds with any history, mean target, mean
    prediction, metric, constant's metric. Test seeds see the graph up to ``history_end``
    (the graph's cutoff), validation seeds up to their own time."""
    df = task.get_table(split, mask_input_cols=False).df
    y = df[task.target_col].to_numpy(dtype=float)
    seen_until = to_unix_seconds(df[task.time_col]).astype(float)
    if split == "test":
        seen_until = np.minimum(seen_until, history_end)
    has_history = first[df[task.entity_col].to_numpy()] <= seen_until
    rows = []
    for t, idx in df.groupby(task.time_col).indices.items():
        yt, pt = y[idx], pred[idx]
        row = {"split": split, "time": str(t.date()), "rows": int(len(idx)),
               "with_history": float(has_history[idx].mean()),
               "mean_target": float(yt.mean()), "mean_prediction": float(pt.mean())}
        if kind == "regression":
            row["mae"] = float(mean_absolute_error(yt, pt))
            row["train_mean_mae"] = float(np.abs(yt - train_mean).mean())
        else:
            row["roc_auc"] = float(roc_auc_score(yt, pt)) if len(set(yt)) > 1 else float("nan")
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("database")
    p.add_argument("task")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--no-time-features", action="store_true", help="build_graph(time_features=False)")
    p.add_argument("--drop", nargs="+", default=[], metavar="TABLE.COLUMN",
                   help="feature columns to leave out (patterns work: '*.yearID')")
    p.add_argument("--train-history", default="seed", choices=["seed", "stale"])
    p.add_argument("--val-history", default="seed", choices=["seed", "cutoff"])
    p.add_argument("--reference-time", default="seed", choices=["seed", "history"],
                   help="finetune(reference_time=...): encode test seeds at their own time or at the cutoff")
    p.add_argument("--out", help="results name (default error_by_time-<database>-<task>)")
    _common.add_run_args(p)
    args = _common.parse_run_args(p)
    db = rdlviz.load(args.database)
    task = db.load_task(args.task)
    graph = protocol.build_graph(db, args.text, not args.no_time_features, args.drop)
    res = rdlviz.finetune(db, task, mode="scratch", graph=graph, epochs=args.epochs, patience=args.patience,
                          seed=args.seed, progress=not args.quiet, train_history=args.train_history,
                          val_history=args.val_history, reference_time=args.reference_time)
    kind = "regression" if res.metric == "mae" else "binary"
    train_mean = float(task.get_table("train").df[task.target_col].mean())
    first = first_row_time(graph, task.entity_table)
    rows = [r for s in ("val", "test") for r in per_time(task, s, np.asarray(res.predictions[s]).reshape(-1),
                                                          kind, train_mean, first,
                                                          float(to_unix_seconds(graph.cutoff)))]
    payload = {"machine": _common.machine(), "command": "python " + " ".join(sys.argv),
               "database": args.database, "task": args.task, "time_features": not args.no_time_features,
               "drop": args.drop, "train_history": args.train_history, "val_history": args.val_history,
               "reference_time": args.reference_time, "seed": args.seed, "metric": res.metric,
               "val": res.val[res.metric], "test": res.test_score, "train_mean": train_mean, "per_time": rows}
    m = payload["machine"]
    cols = ["mae", "train_mean_mae"] if kind == "regression" else ["roc_auc"]
    md = [f"# {args.database} {args.task}: error per seed time (scratch, seed {args.seed})", "",
          f"Command: `{payload['command']}`. Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
          f"{m['date']}. Budget: {args.epochs} epochs, patience {args.patience}. Calendar-time features: "
          f"{'no' if args.no_time_features else 'yes'}; left out: {', '.join(args.drop) or 'nothing'}. "
          f"History: train {args.train_history}, val {args.val_history}; evaluation seeds encoded at "
          f"{'their own time' if args.reference_time == 'seed' else 'the end of their history'}. "
          f"Overall {res.metric}: "
          f"val {res.val[res.metric]:.4f}, test {res.test_score:.4f}.", "",
          "*with history*: the share of seeds whose entity has a linked timed row they can see "
          "(test seeds see the graph up to the test cutoff).", "",
          "| split | seed time | rows | with history | mean target | mean prediction | " + " | ".join(cols) + " |",
          "|---|---|---|---|---|---|" + "---|" * len(cols)]
    for r in rows:
        md.append(f"| {r['split']} | {r['time']} | {r['rows']} | {r['with_history']:.2f} | {r['mean_target']:.3f} | "
                  f"{r['mean_prediction']:.3f} | "
                  + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    md.append("")
    _common.write(args.out or f"error_by_time-{args.database}-{args.task}", payload, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
