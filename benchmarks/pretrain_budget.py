"""How many pretraining steps do the downstream tasks use? Probes along one pretraining run.

One pretraining run with early stopping switched off (``min_delta=0``, unbounded
patience) is cut into segments with ``resume_from`` (a resumed run continues exactly the
curve it left). At the end of each segment the backbone that early stopping would hand
over there -- the best-so-far state -- is probed on every entity task of the database: a
head on the frozen backbone, selected on validation (``rdlviz.finetune(mode="probe")``).
Step 0 is a randomly initialised backbone. Probes are cheap (seconds), so the curve of
downstream quality against pretraining steps costs little more than the pretraining run.

This is the evidence behind ``rdlviz.pretrain``'s ``min_delta`` default: if the probes
stop improving while the validation loss still drifts down, steps past that point buy
nothing the tasks use.

    python benchmarks/pretrain_budget.py --db rel-f1 --checkpoints 250 500 750 1000 1500

Writes benchmarks/results/pretrain_budget.json and pretrain_budget.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import _common  # noqa: E402
import _probes  # noqa: E402

import rdlviz  # noqa: E402
from rdlviz.nn import Backbone  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", type=int, nargs="+", default=[250, 500, 750, 1000, 1500])
    _probes.add_probe_args(p)
    args = _common.parse_run_args(p)
    db, graph, tasks = _probes.setup(args)
    rows = []
    t0 = time.perf_counter()
    torch.manual_seed(10_000 + args.seed)
    random_backbone = None
    with tempfile.TemporaryDirectory() as tmp:
        prev = None
        for steps in sorted(args.checkpoints):
            run = rdlviz.pretrain(graph, steps=steps, seed=args.seed, min_delta=0.0, patience=10**9,
                                  resume_from=prev, progress=not args.quiet)
            run.save(tmp)
            prev = tmp
            if random_backbone is None:
                random_backbone = Backbone(graph.data, graph.col_stats, **run.backbone.config())
                rows.append({"step": 0, "best_step": 0, "val_loss": None, "pretrain_seconds": 0.0,
                             "probes": _probes.probe_all(db, graph, random_backbone, tasks, args.probe_seeds)})
            rows.append({"step": steps, "best_step": run.best_step, "val_loss": round(run.best_val, 4),
                         "pretrain_seconds": round(run.seconds["total"], 1),
                         "probes": _probes.probe_all(db, graph, run, tasks, args.probe_seeds)})
            print(rows[-1], flush=True)
    payload = {"database": args.db, "seed": args.seed, "probe_seeds": args.probe_seeds, "tasks": tasks,
               "machine": _common.machine(), "command": "python " + " ".join(sys.argv),
               "seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    head = "| pretraining step (best) | val loss | " + " | ".join(
        f"{t} val / test ({rows[0]['probes'][t]['metric']})" for t in tasks) + " |"
    md = [f"# Downstream probes along a pretraining run ({args.db})", "",
          "Each row: the backbone that early stopping would hand over after that many steps "
          "(best-so-far validation loss, no threshold), probed on every task: a head on the frozen "
          f"backbone, mean over probe seeds {args.probe_seeds}. Step 0: a randomly initialised backbone.", "",
          head, "|" + "---|" * (2 + len(tasks))]
    for r in rows:
        cells = " | ".join(f"{r['probes'][t]['val']:.4f} / {r['probes'][t]['test']:.4f}" for t in tasks)
        vl = "—" if r["val_loss"] is None else f"{r['val_loss']:.3f}"
        md.append(f"| {r['step']} ({r['best_step']}) | {vl} | {cells} |")
    m = payload["machine"]
    md += ["", f"Command: `{payload['command']}` on {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
               f"({m['torch_threads']} threads), {m['date']}; {payload['seconds']} s in all.", ""]
    _common.write("pretrain_budget", payload, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
