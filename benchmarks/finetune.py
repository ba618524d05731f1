"""Fine-tuning speed on rel-f1: wall time for one task, per epoch and to early stop.

One scratch run per task with the protocol's budget (RelBench's defaults: batch 512,
temporal fan-out [128, 64], Adam lr 5e-3, selection on validation), timed end to end
(sampling, training, validation, the test evaluation). Goal: one rel-f1 task fine-tuned
in <= 180 s on this 2-core machine. Accuracy is printed for orientation only; the
paired comparison over seeds lives in ``rel_f1.py``.

    RDLVIZ_F1_SOURCE=../shared/data/f1db python benchmarks/finetune.py
    python benchmarks/finetune.py --tasks driver-top3 --epochs 20 --threads 2

Writes benchmarks/results/finetune.json and finetune.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _common  # noqa: E402

import rdlviz  # noqa: E402


def bench(db, graph, task: str, args) -> dict:
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = rdlviz.finetune(db, task, mode="scratch", graph=graph, epochs=args.epochs, patience=args.patience,
                          num_neighbors=args.num_neighbors, seed=args.seed, progress=not args.quiet)
    wall = time.perf_counter() - t0
    h = res.history
    epoch_s = h["time"].diff().fillna(h["time"].iloc[0]).tolist()
    return {
        "task": task,
        "wall_seconds": round(wall, 1),
        "seconds": {k: round(v, 1) for k, v in res.seconds.items()},
        "epochs_run": int(len(h)),
        "best_epoch": int(res.best_epoch),
        "median_epoch_seconds": round(float(sorted(epoch_s)[len(epoch_s) // 2]), 1),
        "train_seeds": int(len(db.load_task(task).get_table("train").df)),
        "metric": res.metric,
        "val": round(res.val[res.metric], 4),
        "test": round(res.test_score, 4),
        "load_average_start": round(load_start, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["driver-top3", "driver-position", "driver-dnf"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--num-neighbors", type=int, nargs="+", default=[128, 64])
    _common.add_run_args(p)
    args = _common.parse_run_args(p)
    db = rdlviz.load("rel-f1")
    graph = rdlviz.build_graph(db, text=args.text)
    rows = [bench(db, graph, t, args) for t in args.tasks]
    payload = {"machine": _common.machine(), "command": "python " + " ".join(sys.argv), "results": rows}
    m = payload["machine"]
    md = ["# Fine-tuning speed (rel-f1, scratch)", "",
          f"Command: `{payload['command']}`. Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
          f"({m['torch_threads']} threads), {m['date']}. Budget: up to {args.epochs} epochs, early stop after "
          f"{args.patience} epochs without a better validation metric, fan-out {args.num_neighbors}, batch 512.",
          "Wall time covers sampling, training, validation every epoch and the final val/test prediction.", "",
          "| task | train seeds | wall s | epochs run (best) | median s/epoch | val | test | load (start / end) |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['task']} | {r['train_seeds']:,} | {r['wall_seconds']} | {r['epochs_run']} ({r['best_epoch']}) | "
                  f"{r['median_epoch_seconds']} | {r['metric']} {r['val']} | {r['test']} | "
                  f"{r['load_average_start']} / {r['load_average_end']} |")
    md.append("")
    _common.write("finetune", payload, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
