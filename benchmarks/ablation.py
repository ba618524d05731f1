"""Objective ablation: which of row / link / context contrast do the downstream tasks use?

For each set of objectives: pretrain with the library's defaults (early stopping
included, same seed), then probe every entity task of the database (a head on the frozen
backbone, selected on validation, mean over probe seeds) and measure the representation
health of the task tables' embeddings (effective rank, uniformity). A randomly
initialised backbone is the reference row. Probes isolate what pretraining put into the
backbone; fine-tuning would partly wash it out and costs ~20x more per task.

    python benchmarks/ablation.py --db rel-f1 --variants row,link,context row,context row link context

Writes benchmarks/results/ablation-<db>.json and .md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import _common  # noqa: E402
import _probes  # noqa: E402
from protocol import _health  # noqa: E402

import rdlviz  # noqa: E402
from rdlviz.nn import Backbone  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["row,link,context", "row,context", "row", "link", "context"],
                   help="comma-separated objective sets")
    p.add_argument("--steps", type=int, default=2000, help="most pretraining steps (early stopping may end sooner)")
    _probes.add_probe_args(p)
    args = _common.parse_run_args(p)
    db, graph, tasks = _probes.setup(args)
    tables = sorted({db.load_task(t).entity_table for t in tasks})
    rows = []
    for variant in [None] + args.variants:
        t0 = time.perf_counter()
        if variant is None:
            torch.manual_seed(10_000 + args.seed)
            probe = bb = Backbone(graph.data, graph.col_stats)
            row = {"objectives": "random backbone", "steps": 0, "best_step": 0, "pretrain_seconds": 0.0}
        else:
            run = rdlviz.pretrain(graph, objectives=tuple(variant.split(",")), steps=args.steps,
                                  seed=args.seed, progress=not args.quiet)
            probe, bb = run, run.backbone
            row = {"objectives": variant, "steps": run.step, "best_step": run.best_step,
                   "stopped": run.stopped, "pretrain_seconds": round(run.seconds["total"], 1),
                   "val_losses": {k: round(v, 4) for k, v in run.final_losses("val").items()}}
        row["health"] = {t: _health(bb, graph, t) for t in tables}
        row["probes"] = _probes.probe_all(db, graph, probe, tasks, args.probe_seeds)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(row, flush=True)
    payload = {"database": args.db, "seed": args.seed, "probe_seeds": args.probe_seeds, "tasks": tasks,
               "machine": _common.machine(), "command": "python " + " ".join(sys.argv), "rows": rows}
    head = ("| objectives | steps (best) | " + " | ".join(
        f"{t} val / test ({rows[0]['probes'][t]['metric']})" for t in tasks)
        + " | " + " | ".join(f"{t} eff. rank" for t in tables) + " |")
    md = [f"# Objective ablation ({args.db})", "",
          f"Pretraining seed {args.seed} with `rdlviz.pretrain` defaults (up to {args.steps} steps, early "
          f"stopping), then a probe per task (head on the frozen backbone), mean over probe seeds "
          f"{args.probe_seeds}. Effective rank of the task tables' embeddings: higher = less collapsed "
          "(128 channels).", "", head, "|" + "---|" * (2 + len(tasks) + len(tables))]
    for r in rows:
        cells = " | ".join(f"{r['probes'][t]['val']:.4f} / {r['probes'][t]['test']:.4f}" for t in tasks)
        ranks = " | ".join(f"{r['health'][t]['effective_rank']:.1f}" for t in tables)
        md.append(f"| {r['objectives']} | {r['steps']} ({r['best_step']}) | {cells} | {ranks} |")
    m = payload["machine"]
    md += ["", f"Command: `{payload['command']}` on {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
               f"({m['torch_threads']} threads), {m['date']}.", ""]
    _common.write(f"ablation-{args.db}", payload, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
