"""Shared bits of the probe benchmarks (``pretrain_budget.py``, ``ablation.py``): their
options, the database and tasks they probe, and the probe itself."""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

import _common

import rdlviz


def add_probe_args(parser) -> None:
    """``--db``, ``--tasks``, ``--probe-seeds`` and the shared run options."""
    parser.add_argument("--db", default="rel-f1")
    parser.add_argument("--tasks", nargs="+", default=None, help="default: every entity task of the database")
    parser.add_argument("--probe-seeds", type=int, nargs="+", default=[0, 1])
    _common.add_run_args(parser)


def setup(args) -> Tuple[object, object, List[str]]:
    """``(db, graph, tasks)``: the database, its graph and the entity tasks to probe."""
    db = rdlviz.load(args.db)
    graph = rdlviz.build_graph(db, text=args.text)
    tasks = args.tasks or [t for t in db.get_task_names() if hasattr(db.load_task(t), "entity_table")]
    return db, graph, tasks


def probe_all(db, graph, backbone, tasks: Sequence[str], seeds: Sequence[int]) -> dict:
    """A head on the frozen ``backbone`` per task and seed; val / test means per task."""
    out = {}
    for task in tasks:
        runs = [rdlviz.finetune(db, task, backbone=backbone, mode="probe", graph=graph, seed=s, progress=False)
                for s in seeds]
        out[task] = {"metric": runs[0].metric, "higher_is_better": runs[0].higher_is_better,
                     "val": round(float(np.mean([r.val[r.metric] for r in runs])), 4),
                     "test": round(float(np.mean([r.test_score for r in runs])), 4),
                     "val_per_seed": [round(r.val[r.metric], 4) for r in runs],
                     "test_per_seed": [round(r.test_score, 4) for r in runs]}
    return out
