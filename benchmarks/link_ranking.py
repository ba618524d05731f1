"""What a link model ranks: the lists behind a MAP@k number.

A link task's val or test split can be small: rel-f1's driver-circuit-compete scores 27
drivers at one seed time. Its MAP@10 is then one number that can hide what the model
does. This script trains the protocol's variants on the same seeds, budgets and
pretrained backbones as ``rel_f1.py`` / ``rel_lahman.py`` (it takes the same options),
then for every variant and split reports:

- how many different top-k lists the model gives the split's sources (1: every source gets
  the same list, so the model ranks destinations and ignores who asks);
- the list most sources get, with each destination's share of sources whose truth holds
  it and the time of its latest linked row before the seed time (a circuit's latest race);
- AP@k for sources whose truth holds at least k destinations and for the others.

    RDLVIZ_F1_SOURCE=../shared/data/f1db python benchmarks/link_ranking.py \\
        --tasks driver-circuit-compete --seeds 0 --variants scratch finetune \\
        --steps 1000 --pretrain-patience 4 --epochs 10 --patience 3 --pretrained-dir DIR

Writes benchmarks/results/link_ranking-<database>-<task>.json and .md (or ``--out``).
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _common  # noqa: E402
import error_by_time  # noqa: E402
import protocol  # noqa: E402

import rdlviz  # noqa: E402
from rdlviz.graph.time import to_unix_seconds  # noqa: E402
from rdlviz.nn import Backbone  # noqa: E402


def average_precision(pred, truth, k: int) -> float:
    """AP@k of one ranked list against one set of true destinations (RelBench's MAP is
    the mean of these over sources)."""
    truth, hits, total = set(truth), 0, 0.0
    for i, p in enumerate(pred[:k]):
        if p in truth:
            hits += 1
            total += hits / (i + 1)
    return total / min(k, len(truth))


def display_names(db, table: str) -> pd.Series:
    """A readable name per row of ``table``: its first text column that is not a key."""
    t = db.get_db().table_dict[table]
    keys = {t.pkey_col, *t.fkey_col_to_pkey_table}
    text = [c for c in t.df.columns if c not in keys and t.df[c].dtype == object]
    return t.df[text[0]].astype(str) if text else pd.Series(t.df.index.astype(str))


def lists(db, graph, task, split: str, pred: np.ndarray) -> dict:
    """The report for one split's predictions ``[rows, k]`` (module docstring)."""
    df = task.get_table(split, mask_input_cols=False).df.reset_index(drop=True)
    k = task.eval_k
    truths = df[task.dst_entity_col].tolist()
    ap = np.array([average_precision(list(p), t, k) for p, t in zip(pred, truths)])
    full = np.array([len(t) >= k for t in truths])
    ordered = Counter(tuple(int(x) for x in p[:k]) for p in pred)
    common, n_common = ordered.most_common(1)[0]
    names = display_names(db, task.dst_entity_table)
    times = df[task.time_col].unique()
    latest = (error_by_time.linked_row_time(graph, task.dst_entity_table, "amax",
                                            float(to_unix_seconds(pd.Series(times)).max()))
              if len(times) == 1 else None)  # a link split has one seed time; else not shown
    in_truth = Counter(d for t in truths for d in t)
    items = []
    for d in common:
        last = None if latest is None or not np.isfinite(latest[d]) else str(pd.to_datetime(latest[d], unit="s").date())
        items.append({"id": d, "name": names.iloc[d], "share_in_truth": in_truth[d] / len(df), "latest_row": last})
    return {"split": split, "sources": len(df), "map": float(ap.mean()),
            # RelBench's own MAP, which the mean of the APs above must equal.
            "task_map": float((task.evaluate(pred) if split == "test" else
                               task.evaluate(pred, task.get_table(split)))["map"]),
            "distinct_lists": len(ordered), "distinct_sets": len({frozenset(x) for x in ordered}),
            "common_list_sources": n_common, "common_list": items,
            "full_sources": int(full.sum()), "map_full": float(ap[full].mean()) if full.any() else None,
            "map_rest": float(ap[~full].mean()) if (~full).any() else None}


def main() -> None:
    p = protocol.parser("rel-f1", ["driver-circuit-compete"], __doc__)
    p.add_argument("--database", default="rel-f1", help="rel-f1 or rel-lahman")
    p.set_defaults(out=None)
    a = p.parse_args()
    pre, ft = protocol.configs(p, a)
    protocol.check_config(ft, a.variants)
    db = rdlviz.load(a.database)
    for name, kind in protocol.check_tasks(db, a.tasks, ft).items():
        if kind != "link":
            p.error(f"--tasks {name}: not a link task (this script reads ranked lists)")
    tasks = {name: db.load_task(name) for name in a.tasks}
    graph = protocol.build_graph(db, a.text, not a.no_time_features, a.drop)
    options = protocol.graph_options(not a.no_time_features, a.drop)
    runs = {name: [] for name in a.tasks}
    for seed in a.seeds:  # one pretrained backbone per seed serves every task
        cache = (protocol.cache_folder(a.pretrained_dir, a.database, seed, pre, a.text, options)
                 if a.pretrained_dir else None)
        pretrained, _ = protocol.pretrained_backbone(graph, seed, pre, device=a.device, cache=cache)
        torch.manual_seed(10_000 + seed)  # the protocol's random backbone
        random_backbone = Backbone(graph.data, graph.col_stats, **pretrained.config())
        for name, task in tasks.items():
            for variant in [v for v in protocol.VARIANTS if v in a.variants]:
                mode, kw = protocol.variant_config(variant, ft)
                res = rdlviz.finetune(db, task, backbone=random_backbone if variant == "random_probe" else pretrained,
                                      mode=mode, graph=graph, seed=seed, progress=False, device=a.device, **kw)
                splits = [lists(db, graph, task, s, np.asarray(res.predictions[s])) for s in ("val", "test")]
                runs[name].append({"seed": seed, "variant": variant, "best_epoch": res.best_epoch,
                                   "seconds": res.seconds["total"], "splits": splits})
                print(f"[seed {seed}] {name} {variant}: val {splits[0]['map']:.4f} test {splits[1]['map']:.4f}",
                      flush=True)
    for name, task in tasks.items():
        # --out names the file of a single task; with several, each task's name is appended.
        out = (a.out if len(tasks) == 1 else f"{a.out}-{name}") if a.out else f"link_ranking-{a.database}-{name}"
        write(a, out, name, task, pre, ft, runs[name])


def write(a, out: str, name: str, task, pre: dict, ft: dict, runs: list) -> None:
    m = _common.machine()
    payload = {"machine": m, "command": "python " + " ".join(sys.argv), "database": a.database, "task": name,
               "pretrain": pre, "finetune": ft, "runs": runs}
    k = task.eval_k
    md = [f"# {a.database} {name}: the ranked lists behind MAP@{k}", "",
          f"Command: `{payload['command']}`. Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
          f"{m['date']}.", "",
          f"*lists*: distinct top-{k} lists over the split's sources (as sets in brackets). *common*: how many "
          f"sources get the most common list. *full*: sources whose truth holds at least {k} destinations.", "",
          f"| seed | variant | split | MAP@{k} | lists | common | MAP@{k}, full | MAP@{k}, rest |",
          "|---|---|---|---|---|---|---|---|"]
    fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    for r in runs:
        for s in r["splits"]:
            md.append(f"| {r['seed']} | {r['variant']} | {s['split']} | {s['map']:.4f} | {s['distinct_lists']} "
                      f"({s['distinct_sets']}) | {s['common_list_sources']} / {s['sources']} | "
                      f"{fmt(s['map_full'])} ({s['full_sources']}) | {fmt(s['map_rest'])} |")
    for r in runs:
        for s in r["splits"]:
            md += ["", f"**Seed {r['seed']}, {r['variant']}, {s['split']}: the most common list** "
                   f"({s['common_list_sources']} of {s['sources']} sources)", "",
                   "| rank | destination | share of sources whose truth holds it | latest linked row |",
                   "|---|---|---|---|"]
            md += [f"| {i + 1} | {d['name']} | {d['share_in_truth']:.2f} | {d['latest_row'] or '-'} |"
                   for i, d in enumerate(s["common_list"])]
    md.append("")
    _common.write(out, payload, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
