"""The evaluation protocol: scratch (B) vs probe (P) vs pretrained-and-fine-tuned (P&F).

For every seed: pretrain once; then for every task train

* ``scratch``      -- the same architecture from random initialisation (B);
* ``probe``        -- the pretrained backbone frozen, a head on top (P);
* ``finetune``     -- the pretrained backbone fine-tuned with its head (P&F);
* ``random_probe`` -- a head on a frozen *randomly initialised* backbone: the control that
  tells what the probe owes to pretraining rather than to the architecture.

Same data, same sampler, same budgets and the same seeds for every variant (paired
comparisons). Writes ``benchmarks/results/<db>.json`` in the documented shape and a
markdown table with mean ± std per task and variant plus wall time per phase, and the
representation health (effective rank, uniformity) of pretrained vs random embeddings.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Dict, List, Sequence

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _common  # noqa: E402

import rdlviz  # noqa: E402
from rdlviz.nn import Backbone, embed_rows  # noqa: E402
from rdlviz.pretrain.health import effective_rank, uniformity  # noqa: E402

VARIANTS = ("scratch", "probe", "finetune", "random_probe")


def _health(backbone, graph, table: str, n: int = 2000) -> Dict[str, float]:
    nodes = torch.arange(min(n, graph.data[table].num_nodes))
    z = embed_rows(backbone, graph, table, nodes=nodes)
    return {"effective_rank": round(float(effective_rank(z)), 2),
            "uniformity": round(float(uniformity(torch.nn.functional.normalize(z, dim=-1))), 3)}


def run_protocol(db_name: str, tasks: Sequence[str], seeds: Sequence[int], pre: dict, ft: dict,
                 text: str = "hash", out_name: str = None, notes: str = "") -> dict:
    db = rdlviz.load(db_name)
    graph = rdlviz.build_graph(db, text=text)
    per: Dict[str, Dict[str, List[dict]]] = {t: {v: [] for v in VARIANTS} for t in tasks}
    phases = {"pretrain": [], **{f"{v}": [] for v in VARIANTS}}
    health = []
    metric_info = {}
    for seed in seeds:
        t0 = time.perf_counter()
        run = rdlviz.pretrain(graph, seed=seed, progress=False, **pre)
        phases["pretrain"].append(time.perf_counter() - t0)
        print(f"[seed {seed}] {run}", flush=True)
        torch.manual_seed(10_000 + seed)
        random_backbone = Backbone(graph.data, graph.col_stats, **run.backbone.config())
        for table in {db.load_task(t).entity_table for t in tasks if hasattr(db.load_task(t), "entity_table")}:
            health.append({"seed": seed, "table": table, "pretrained": _health(run, graph, table),
                           "random": _health(random_backbone, graph, table)})
        for task in tasks:
            for variant in VARIANTS:
                mode = {"scratch": "scratch", "probe": "probe", "finetune": "full",
                        "random_probe": "probe"}[variant]
                backbone = random_backbone if variant == "random_probe" else run
                kw = dict(ft)
                if variant != "finetune":
                    kw.pop("backbone_lr", None)
                    kw.pop("probe_epochs", None)
                res = rdlviz.finetune(db, task, backbone=backbone, mode=mode, graph=graph, seed=seed,
                                      progress=False, **kw)
                metric_info[task] = (res.metric, res.higher_is_better)
                per[task][variant].append({"test": res.test_score, "val": res.val[res.metric],
                                           "seconds": res.seconds["total"], "best_epoch": res.best_epoch})
                phases[variant].append(res.seconds["total"])
                print(f"  {task:24s} {variant:12s} val {res.val[res.metric]:.4f} test {res.test_score:.4f} "
                      f"({res.seconds['total']:.0f}s)", flush=True)
    out = {"database": db_name, "seeds": list(seeds), "machine": _common.machine(),
           "config": {"pretrain": pre, "finetune": ft, "text": text}, "notes": notes,
           "phase_seconds_mean": {k: round(float(np.mean(v)), 1) for k, v in phases.items() if v},
           "health": health, "tasks": {}}
    for task in tasks:
        metric, higher = metric_info[task]
        out["tasks"][task] = {"metric": metric, "higher_is_better": higher, "variants": {}}
        for v in VARIANTS:
            xs = [r["test"] for r in per[task][v]]
            out["tasks"][task]["variants"][v] = {
                "mean": float(np.mean(xs)), "std": float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0,
                "per_seed": xs, "val_per_seed": [r["val"] for r in per[task][v]],
                "seconds": float(np.mean([r["seconds"] for r in per[task][v]]))}
    name = out_name or db_name
    _common.write(name, out, markdown(out))
    print(markdown(out))
    return out


def markdown(out: dict) -> str:
    m = out["machine"]
    lines = [f"# {out['database']}: scratch vs probe vs fine-tuned", "",
             f"Test metric, mean ± std over seeds {out['seeds']} (paired: same seeds, splits, sampler "
             f"and budgets for every variant). Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
             f"{m['date']}.", ""]
    if out.get("notes"):
        lines += [out["notes"], ""]
    lines += ["| task | metric | scratch (B) | probe (P) | fine-tuned (P&F) | random-backbone probe |",
              "|---|---|---|---|---|---|"]
    for task, t in out["tasks"].items():
        arrow = "↑" if t["higher_is_better"] else "↓"
        cells = []
        for v in VARIANTS:
            s = t["variants"][v]
            cells.append(f"{s['mean']:.4f} ± {s['std']:.4f}")
        lines.append(f"| {task} | {t['metric']} {arrow} | " + " | ".join(cells) + " |")
    lines += ["", "Wall time per phase (mean seconds per run): " +
              ", ".join(f"{k} {v}" for k, v in out["phase_seconds_mean"].items()), ""]
    if out.get("health"):
        lines += ["Representation health of entity-table embeddings (effective rank, higher = less "
                  "collapsed; uniformity, lower = more spread):", ""]
        for h in out["health"]:
            lines.append(f"- seed {h['seed']} `{h['table']}`: pretrained {h['pretrained']}, random {h['random']}")
        lines.append("")
    lines += [f"Config: `{json.dumps(out['config'])}`", ""]
    return "\n".join(lines)


def cli(db_name: str, default_tasks: Sequence[str], doc: str) -> None:
    """The command line shared by ``rel_f1.py`` and ``rel_lahman.py``."""
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(default_tasks))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=2000, help="max pretraining steps (early stopping)")
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--max-steps-per-epoch", type=int, default=None)
    p.add_argument("--num-neighbors", type=int, nargs="+", default=[128, 64])
    p.add_argument("--pretrain-neighbors", type=int, nargs="+", default=[16, 8])
    p.add_argument("--backbone-lr", type=float, default=1e-3)
    p.add_argument("--probe-epochs", type=int, default=3, help="LP-FT head-only epochs before fine-tuning")
    p.add_argument("--text", default="hash")
    p.add_argument("--out", default=db_name)
    a = p.parse_args()
    pre = dict(steps=a.steps, channels=a.channels, num_neighbors=tuple(a.pretrain_neighbors))
    ft = dict(epochs=a.epochs, max_steps_per_epoch=a.max_steps_per_epoch, num_neighbors=tuple(a.num_neighbors),
              backbone_lr=a.backbone_lr, probe_epochs=a.probe_epochs)
    script = os.path.basename(sys.argv[0])
    run_protocol(db_name, a.tasks, a.seeds, pre, ft, text=a.text, out_name=a.out,
                 notes=f"Command: `python benchmarks/{script} {' '.join(sys.argv[1:])}`")
