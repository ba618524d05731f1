"""Pretraining speed and convergence on rel-f1 and rel-lahman.

Measures, per database: steps/s, seed rows/s and sampled rows/s, peak RSS, the step and
wall time at which early stopping ends the run, and the final validation loss per
objective. Goal: rel-f1 pretraining reaches early stop in <= 600 s on a 2-core laptop
(the authors' code took ~1,600-2,200 s on 8 cores).

    python benchmarks/pretrain.py                 # both databases, default config
    python benchmarks/pretrain.py --db rel-f1 --steps 2000 --seed 0

Writes benchmarks/results/pretrain.json and pretrain.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _common  # noqa: E402

import rdlviz  # noqa: E402


class _Count:
    def __init__(self):
        self.rows = 0

    def on_batch(self, step, batch):
        self.rows += sum(batch[t].num_nodes for t in batch.node_types)


def bench(db_name: str, args) -> dict:
    db = rdlviz.load(db_name)
    load_start = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    graph = rdlviz.build_graph(db, text=args.text)
    build_s = time.perf_counter() - t0
    counter = _Count()
    run = rdlviz.pretrain(graph, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                          eval_every=args.eval_every, patience=args.patience,
                          **({} if args.min_delta is None else {"min_delta": args.min_delta}),
                          channels=args.channels, num_neighbors=tuple(args.num_neighbors),
                          callbacks=[counter], progress=not args.quiet)
    s = run.seconds
    train_s = s["total"] - s["eval"]
    return {
        "database": db_name,
        "graph_build_seconds": round(build_s, 2),
        "config": run.config,
        "steps": run.step,
        "stopped": run.stopped,
        "best_step": run.best_step,
        "seconds_total": round(s["total"], 1),
        "seconds": {k: round(v, 2) for k, v in s.items()},
        "steps_per_second": round(run.step / train_s, 2),
        "seed_rows_per_second": round(run.step * args.batch_size / train_s, 1),
        "sampled_rows_per_second": round(counter.rows / train_s, 1),
        "sampled_rows_per_step": round(counter.rows / max(run.step, 1), 1),
        "final_val_losses": {k: round(v, 4) for k, v in run.final_losses("val").items()},
        "first_train_losses": {k: round(float(run.history.iloc[0][k]), 4)
                               for k in list(run.config["objectives"]) + ["total"]},
        "peak_rss_mb": round(_common.peak_rss_mb(), 1),
        # the validation curve: how close the run was to stopping early
        "val_history": run.history[run.history.split == "val"].drop(columns=["split"]).round(4)
                          .to_dict(orient="records"),
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", nargs="+", default=["rel-f1", "rel-lahman"])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--min-delta", type=float, default=None,
                   help="early-stopping threshold (default: rdlviz.pretrain's)")
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--num-neighbors", type=int, nargs="+", default=[16, 8])
    _common.add_run_args(p)
    args = _common.parse_run_args(p)
    rows = [bench(db, args) for db in args.db]
    for r in rows:
        r["machine"] = _common.machine()
        r["command"] = "python " + " ".join(sys.argv)
    # Databases not run this time keep their last measured row (each row says when and how).
    previous = _common.RESULTS / "pretrain.json"
    if previous.exists():
        old = json.loads(previous.read_text()).get("results", [])
        rows = [r for r in old if r["database"] not in args.db and "machine" in r] + rows
    rows.sort(key=lambda r: r["database"])
    payload = {"machine": _common.machine(), "results": rows}
    md = ["# Pretraining benchmark", "",
          "Each row: one run of `benchmarks/pretrain.py` on this machine (command, machine, torch",
          "threads and load average in the row's notes below); seconds include validation.", "",
          "| database | steps (stop) | best step | seconds | steps/s | seed rows/s | sampled rows/s | peak RSS MiB | load (start / end) | final val losses |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        losses = ", ".join(f"{k} {v:.3f}" for k, v in r["final_val_losses"].items())
        md.append(f"| {r['database']} | {r['steps']} ({r['stopped']}) | {r['best_step']} | {r['seconds_total']} | "
                  f"{r['steps_per_second']} | {r['seed_rows_per_second']} | {r['sampled_rows_per_second']} | "
                  f"{r['peak_rss_mb']} | {r['load_average_start'][0]} / {r['load_average_end'][0]} | {losses} |")
    md.append("")
    for r in rows:
        m = r["machine"]
        md.append(f"- {r['database']}: `{r['command']}` on {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
                  f"({m['torch_threads']} threads), {m['date']}; graph built in {r['graph_build_seconds']} s; "
                  f"time split {r['seconds']}.")
    md.append("")
    _common.write("pretrain", payload, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
