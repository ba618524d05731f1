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

A fine-tuning lever (``--backbone-lr``, ``--probe-epochs``, ``--wise-alpha``) changes only the ``finetune``
variant: ``--variants finetune`` runs that one alone, and ``--pretrained-dir`` keeps each
seed's pretrained backbone, so a second lever on the same seeds loads it instead of
pretraining again. Pretraining is deterministic given the seed on one machine, so a loaded
backbone is the one a fresh run there would have trained (the cache key is the database,
seed, pretraining config and graph options). Another CPU rounds differently and pretrains
to other losses; a ``--baseline`` from such a run is flagged in the paired table.
"""

from __future__ import annotations

import fnmatch
import hashlib
import inspect
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import _common  # noqa: E402

import rdlviz  # noqa: E402
from rdlviz.errors import ConfigError  # noqa: E402
from rdlviz.finetune.loop import check_args, check_task_args  # noqa: E402
from rdlviz.nn import Backbone, embed_rows  # noqa: E402
from rdlviz.pretrain.checkpoint import load_backbone  # noqa: E402
from rdlviz.pretrain.health import effective_rank, uniformity  # noqa: E402
from rdlviz.pretrain.loop import PRETRAINING_VERSION  # noqa: E402

VARIANTS = ("scratch", "probe", "finetune", "random_probe")
# Per-run facts a results file keeps per seed (as ``<field>_per_seed``) when the runs have
# them: the epoch validation chose, and with several WiSE-FT candidates the α it chose and
# every candidate's validation score (``{"0.25": score, ...}``). Files written before a
# field was kept lack it.
PER_SEED_FIELDS = ("best_epoch", "wise_alpha", "wise_val")


def _health(backbone, graph, table: str, n: int = 2000) -> Dict[str, float]:
    nodes = torch.arange(min(n, graph.data[table].num_nodes))
    z = embed_rows(backbone, graph, table, nodes=nodes)
    return {"effective_rank": round(float(effective_rank(z)), 2),
            "uniformity": round(float(uniformity(torch.nn.functional.normalize(z, dim=-1))), 3)}


def pretrained_backbone(graph, seed: int, pre: dict, device: str = "cpu", cache: str = None):
    """``(backbone, pretrain record)`` for ``seed``: pretrained now, or loaded from ``cache``
    (a checkpoint folder) when an earlier run saved it there; a fresh run saves it."""
    summary = os.path.join(cache, "protocol.json") if cache else None
    if summary and os.path.exists(summary):
        backbone = load_backbone(cache, graph).to(device)
        with open(summary) as f:
            rec = json.load(f)
        print(f"[seed {seed}] pretrained backbone loaded from {cache}", flush=True)
        return backbone, {**rec, "loaded_from": cache}
    t0 = time.perf_counter()
    run = rdlviz.pretrain(graph, seed=seed, progress=False, device=device, **pre)
    rec = {"seconds": time.perf_counter() - t0, "steps": run.step, "best_step": run.best_step,
           "stopped": run.stopped, "val": run.final_losses("val")}
    print(f"[seed {seed}] {run}", flush=True)
    if cache:
        run.save(cache)
        with open(summary, "w") as f:  # written last: its presence marks a complete checkpoint
            json.dump(rec, f, default=str)
    return run.backbone, rec


def cache_folder(root: str, db_name: str, seed: int, pre: dict, text: str, graph_options: dict = None) -> str:
    """The checkpoint folder for one seed's pretraining under ``root``; its name hashes all
    that the pretrained weights depend on, so a changed lever, or pretraining code that
    changed what a lever gives (``PRETRAINING_VERSION``), never loads a stale backbone."""
    key = json.dumps({"db": db_name, "seed": seed, "pretrain": pre, "text": text, "graph": graph_options,
                      "version": PRETRAINING_VERSION}, sort_keys=True, default=list)
    return os.path.join(root, f"{db_name}-seed{seed}-{hashlib.sha1(key.encode()).hexdigest()[:12]}")


def variant_config(variant: str, ft: dict) -> Tuple[str, dict]:
    """``(finetune mode, finetune kwargs)`` for one variant: the fine-tuning schedule
    (backbone learning rate, head-only epochs, WiSE-FT) applies to the fine-tuned variant
    only; every variant shares the rest (data, budgets, sampler)."""
    mode = {"scratch": "scratch", "probe": "probe", "finetune": "full", "random_probe": "probe"}[variant]
    kw = dict(ft)
    if variant != "finetune":
        for k in ("backbone_lr", "probe_epochs", "wise_alpha"):
            kw.pop(k, None)
    return mode, kw


def check_config(ft: dict, variants: Sequence[str]) -> None:
    """Raise ``ConfigError`` now for a fine-tuning configuration some variant cannot run,
    rather than after pretraining (minutes) has been spent."""
    checked = set(inspect.signature(check_args).parameters)
    for variant in variants:
        mode, kw = variant_config(variant, ft)
        check_args(mode=mode, **{k: v for k, v in kw.items() if k in checked})


def check_tasks(db, tasks: Sequence[str], ft: dict) -> Dict[str, str]:
    """Raise ``ConfigError`` now for a task name ``db`` lacks or a fine-tuning option one of
    ``tasks`` cannot take (a link task has one evaluation window), rather than after
    pretraining. Returns each task's kind (``"binary"``, ..., ``"link"``)."""
    names = db.get_task_names()
    kinds = {}
    for name in tasks:
        if name not in names:
            raise ConfigError(f"--tasks {name}: not a task of this database; tasks: {', '.join(names)}")
        kinds[name] = check_task_args(db.load_task(name), train_history=ft.get("train_history", "seed"),
                                      reference_time=ft.get("reference_time", "seed"),
                                      test_history=ft.get("test_history", "cutoff"),
                                      min_steps_per_epoch=ft.get("min_steps_per_epoch"),
                                      pair_features=ft.get("pair_features"),
                                      clamp_predictions=ft.get("clamp_predictions", False))
    return kinds


def run_seed(db, graph, tasks: Sequence[str], seed: int, pre: dict, ft: dict, device: str = "cpu",
             variants: Sequence[str] = VARIANTS, cache: str = None, ft_graph=None) -> dict:
    """Pretrain once with ``seed`` on ``graph`` (or load it from ``cache``), then train each
    of ``variants`` on every task, sampling from ``ft_graph`` (default ``graph``): one
    record."""
    ft_graph = graph if ft_graph is None else ft_graph
    rec = {"seed": seed, "runs": [], "health": [], "pretrain": {}}
    pretrained, rec["pretrain"] = pretrained_backbone(graph, seed, pre, device=device, cache=cache)
    torch.manual_seed(10_000 + seed)
    random_backbone = Backbone(graph.data, graph.col_stats, **pretrained.config()).to(device)
    tables = sorted({getattr(db.load_task(t), "entity_table", None) for t in tasks} - {None})
    for table in tables:
        rec["health"].append({"seed": seed, "table": table, "pretrained": _health(pretrained, graph, table),
                              "random": _health(random_backbone, graph, table)})
    for task in tasks:
        for variant in variants:
            mode, kw = variant_config(variant, ft)
            backbone = random_backbone if variant == "random_probe" else pretrained
            res = rdlviz.finetune(db, task, backbone=backbone, mode=mode, graph=ft_graph, seed=seed,
                                  progress=False, device=device, **kw)
            rec["runs"].append({"task": task, "variant": variant, "metric": res.metric,
                                "higher_is_better": res.higher_is_better, "test": res.test_score,
                                "val": res.val[res.metric], "seconds": res.seconds["total"],
                                "best_epoch": res.best_epoch})
            if res.wise_val:  # several WiSE-FT candidates: the one validation chose, and why
                rec["runs"][-1]["wise_alpha"] = res.wise_alpha
                rec["runs"][-1]["wise_val"] = {format(a, "g"): s for a, s in res.wise_val.items()}
            print(f"  {task:24s} {variant:12s} val {res.val[res.metric]:.4f} test {res.test_score:.4f} "
                  f"({res.seconds['total']:.0f}s)", flush=True)
    return rec


def summarize(db_name: str, records: Sequence[dict], config: dict, machine: dict, notes: str = "") -> dict:
    """The results file (documented shape) from per-seed records."""
    records = sorted(records, key=lambda r: r["seed"])
    out = {"database": db_name, "seeds": [r["seed"] for r in records], "machine": machine,
           "config": config, "notes": notes,
           "phase_seconds_mean": {"pretrain": round(float(np.mean([r["pretrain"]["seconds"] for r in records])), 1)},
           "pretrain": [dict(seed=r["seed"], **r["pretrain"]) for r in records],
           "health": [h for r in records for h in r["health"]], "tasks": {}}
    runs = [dict(x) for r in records for x in r["runs"]]
    for v in VARIANTS:
        secs = [x["seconds"] for x in runs if x["variant"] == v]
        if secs:
            out["phase_seconds_mean"][v] = round(float(np.mean(secs)), 1)
    for task in dict.fromkeys(x["task"] for x in runs):
        first = next(x for x in runs if x["task"] == task)
        t = out["tasks"][task] = {"metric": first["metric"], "higher_is_better": first["higher_is_better"],
                                  "variants": {}}
        for v in VARIANTS:
            rs = [x for x in runs if x["task"] == task and x["variant"] == v]
            if not rs:  # a run restricted with --variants
                continue
            xs = [x["test"] for x in rs]
            t["variants"][v] = {"mean": float(np.mean(xs)),
                                "std": float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0,
                                "per_seed": xs, "val_per_seed": [x["val"] for x in rs],
                                "seconds": float(np.mean([x["seconds"] for x in rs]))}
            for field in PER_SEED_FIELDS:
                if any(field in x for x in rs):
                    t["variants"][v][f"{field}_per_seed"] = [x.get(field) for x in rs]
    return out


def build_graph(db, text: str, time_features: bool = True, drop: Sequence[str] = ()):
    """The protocol's graph; ``drop`` names feature columns to leave out as ``table.column``
    (shell-style patterns work: ``*.yearID``)."""
    full = rdlviz.build_graph(db, text=text, time_features=time_features)
    features = [f"{t}.{c}" for t, cs in full.stypes.items() for c in cs]
    columns = {}
    for pattern in drop:
        names = fnmatch.filter(features, pattern)
        if not names:
            raise SystemExit(f"--drop {pattern}: matches no feature column; features are " + ", ".join(features))
        for name in names:
            table, _, col = name.partition(".")
            if col == full.db.table_dict[table].time_col:
                raise SystemExit(f"--drop {name}: the time column stays a feature unless --no-time-features")
            keep = columns.setdefault(table, list(full.stypes[table]))
            if col in keep:
                keep.remove(col)
    return rdlviz.build_graph(db, text=text, time_features=time_features, columns=columns) if columns else full


def graph_options(time_features: bool, drop: Sequence[str]) -> Optional[dict]:
    """The graph options a results file and a checkpoint folder record: ``None`` for the
    default graph, so files and folders from before these options still match."""
    return {"time_features": time_features, "drop": sorted(drop)} if not time_features or drop else None


def link_model(kinds: Dict[str, str], ft: dict) -> dict:
    """``{"link_model": ...}`` when a link task is scored with the pair term, else ``{}``:
    the pair term came on by default after the first link results, which were the two
    towers alone, so a config without the key still means two towers and merges with them
    (``--no-pair-features`` runs included), and one with it does not."""
    if "link" in kinds.values() and ft.get("pair_features", True):
        return {"link_model": "two-tower + pair term"}
    return {}


def results_config(pre: dict, ft: dict, text: str, device: str, kinds: Dict[str, str],
                   options: Optional[dict], variants: Sequence[str]) -> dict:
    """The config a results file records, and :func:`merge` compares: the levers, plus
    ``pretraining_version`` (``PRETRAINING_VERSION``), so runs whose backbones came from
    pretraining code that gives other weights are never merged into one table. Graph
    options and a variant subset are recorded only when set, so older files still merge."""
    config = {"pretrain": pre, "finetune": ft, "text": text, "device": device,
              "pretraining_version": PRETRAINING_VERSION}
    config.update(link_model(kinds, ft))
    if options:
        config["graph"] = options
    variants = [v for v in VARIANTS if v in variants]  # the table's order
    if variants != list(VARIANTS):
        config["variants"] = variants
    return config


def run_protocol(db_name: str, tasks: Sequence[str], seeds: Sequence[int], pre: dict, ft: dict,
                 text: str = "hash", out_name: str = None, notes: str = "", device: str = "cpu",
                 partial_dir: str = None, time_features: bool = True, drop: Sequence[str] = (),
                 variants: Sequence[str] = VARIANTS, pretrained_dir: str = None, baseline: str = None) -> dict:
    # Refuse what cannot run now, not after hours of pretraining.
    check_config(ft, variants)
    if baseline:
        load_baseline(baseline, db_name, seeds, tasks)
    db = rdlviz.load(db_name)
    kinds = check_tasks(db, tasks, ft)
    graph = build_graph(db, text, time_features, drop)
    # Pretraining stays on the test-cutoff graph (its seeds lie before the val cutoff
    # either way); fine-tuning with --test-history seed samples from every row.
    ft_graph = graph.with_cutoff(None) if ft.get("test_history", "cutoff") == "seed" else graph
    config = results_config(pre, ft, text, device, kinds, graph_options(time_features, drop), variants)
    variants = config.get("variants", list(VARIANTS))
    records = []
    for seed in seeds:
        cache = (cache_folder(pretrained_dir, db_name, seed, pre, text, config.get("graph"))
                 if pretrained_dir else None)
        rec = run_seed(db, graph, tasks, seed, pre, ft, device=device, variants=variants, cache=cache,
                       ft_graph=ft_graph)
        records.append(rec)
        if partial_dir:  # one file per seed, so a long protocol can run in pieces
            os.makedirs(partial_dir, exist_ok=True)
            with open(os.path.join(partial_dir, f"{out_name or db_name}-seed{seed}.json"), "w") as f:
                json.dump({"record": rec, "config": config, "machine": _common.machine()}, f, default=str)
    out = summarize(db_name, records, config, _common.machine(), notes)
    if baseline:
        attach_baseline(out, baseline)
    _common.write(out_name or db_name, out, markdown(out))
    print(markdown(out))
    return out


def records_from_results(out: dict) -> list:
    """Per-seed records back from a results file (the inverse of :func:`summarize`).

    Lets runs made in separate processes (``--out`` per run) be merged without their
    ``--partial-dir`` files. A task's seconds are kept only as a mean over the file's
    seeds: each seed gets that mean, which leaves every mean over seeds that
    :func:`summarize` computes exact. Fields of ``PER_SEED_FIELDS`` come back where the
    file kept them.
    """
    records = []
    for i, seed in enumerate(out["seeds"]):
        pre = dict(next(p for p in out["pretrain"] if p["seed"] == seed))
        pre.pop("seed")
        runs = [{"task": task, "variant": v, "metric": t["metric"], "higher_is_better": t["higher_is_better"],
                 "test": s["per_seed"][i], "val": s["val_per_seed"][i],
                 # the file's mean over its seeds (see above)
                 "seconds": s["seconds"],
                 **{f: s[f"{f}_per_seed"][i] for f in PER_SEED_FIELDS if f"{f}_per_seed" in s}}
                for task, t in out["tasks"].items() for v, s in t["variants"].items()]
        records.append({"seed": seed, "pretrain": pre, "runs": runs,
                        "health": [h for h in out["health"] if h["seed"] == seed]})
    return records


def load_baseline(path: str, database: str, seeds: Sequence[int], tasks: Sequence[str]) -> dict:
    """The results file at ``path``, refused unless it ran on ``database`` and holds every
    one of ``seeds`` and ``tasks``. Called before a run as well, so a wrong baseline costs
    nothing."""
    with open(path) as f:
        base = json.load(f)
    if base["database"] != database:
        raise ValueError(f"--baseline {path} is {base['database']}, this run is {database}")
    missing = sorted(set(seeds) - set(base["seeds"]))
    if missing:
        raise ValueError(f"--baseline {path} has no seed(s) {missing}; it has {base['seeds']}")
    for task in tasks:
        if task not in base["tasks"]:
            raise ValueError(f"--baseline {path} has no task {task!r}; it has {sorted(base['tasks'])}")
    return base


def attach_baseline(out: dict, path: str) -> dict:
    """Add ``out["baseline"]``: the same seeds' numbers from the results file at ``path``
    (the run without the lever), so the markdown can pair every seed with it.

    A run of a fine-tuning lever trains only ``finetune`` (``--variants``); its scratch
    numbers are the baseline's, which did not depend on the lever. Refuses a baseline that
    lacks one of ``out``'s seeds or tasks, or that ran on another database.
    """
    base = load_baseline(path, out["database"], out["seeds"], list(out["tasks"]))
    idx = [base["seeds"].index(s) for s in out["seeds"]]
    tasks = {}
    for task in out["tasks"]:
        tasks[task] = {v: {"per_seed": [r["per_seed"][i] for i in idx],
                           "val_per_seed": [r["val_per_seed"][i] for i in idx]}
                       for v, r in base["tasks"][task]["variants"].items()}
    out["baseline"] = {"file": os.path.basename(path), "config": base["config"], "tasks": tasks,
                       "machine": base.get("machine", {}),
                       "other_backbone": _other_backbones(out, base)}
    return out


def _other_backbones(out: dict, base: dict) -> List[int]:
    """The seeds whose pretraining ended with other validation losses than in ``base``:
    another backbone, so the probe and fine-tuned variants are paired by seed only. The
    same seed and config give the same backbone on one machine, not across CPUs."""
    def losses(results):
        return {p["seed"]: p.get("val") for p in results.get("pretrain", [])}
    here, there = losses(out), losses(base)
    return [s for s in out["seeds"] if s in here and s in there and here[s] != there[s]]


def _pretraining(record: dict) -> str:
    """A seed's pretraining record, less where it was loaded from: a run that loaded a
    cached backbone (``--pretrained-dir``) reads the record the pretraining run saved."""
    return json.dumps({k: v for k, v in record["pretrain"].items() if k != "loaded_from"}, sort_keys=True)


def _join_tasks(records: list) -> list:
    """One record per seed: records of one seed that ran different tasks (``--tasks`` in
    separate processes) from the same pretrained backbone are joined; a seed that ran a
    task twice, or was pretrained differently, is refused."""
    by_seed: Dict[int, dict] = {}
    for r in records:
        if r["seed"] not in by_seed:
            by_seed[r["seed"]] = dict(r, runs=list(r["runs"]))
            continue
        have = by_seed[r["seed"]]
        twice = sorted({x["task"] for x in have["runs"]} & {x["task"] for x in r["runs"]})
        if twice:
            raise ValueError(f"merge got seed(s) [{r['seed']}] twice (task(s) {twice})")
        if _pretraining(have) != _pretraining(r):
            raise ValueError(f"merge got seed {r['seed']} from two different pretraining runs; join only runs "
                             "that loaded the same backbone (--pretrained-dir)")
        have["runs"] += r["runs"]
    return list(by_seed.values())


def merge(files: Sequence[str], db_name: str, out_name: str, notes: str = "", baseline: str = None) -> dict:
    """Combine runs over disjoint seeds, or disjoint tasks of one seed, into one results file.

    Accepts the files written with ``--partial-dir`` and results files (one seed or
    several) alike; a seed may repeat only with other tasks and the same pretraining
    record, and the configs must match. The merged machine's date spans the parts' dates,
    earliest to latest.
    """
    parts = [json.load(open(f)) for f in files]
    records = _join_tasks([r for p in parts for r in ([p["record"]] if "record" in p else records_from_results(p))])
    configs = {json.dumps(p["config"], sort_keys=True) for p in parts}
    if len(configs) > 1:
        raise ValueError(f"merge got runs with different configs, which are not comparable: {sorted(configs)}")
    machines = {json.dumps({k: p["machine"][k] for k in ("cpu", "cores", "torch")}) for p in parts}
    if len(machines) > 1:
        notes = (notes + " Merged from runs on different machines: " + "; ".join(sorted(machines))).strip()
    machine = dict(parts[0]["machine"])
    dates = sorted(p["machine"]["date"] for p in parts)
    if dates[0] != dates[-1]:  # runs made on different days: the header shows when all of them ran
        machine["date"] = f"{dates[0]} to {dates[-1]}"
    out = summarize(db_name, records, parts[0]["config"], machine, notes)
    if baseline:
        attach_baseline(out, baseline)
    _common.write(out_name, out, markdown(out))
    print(markdown(out))
    return out


NAMES = {"scratch": "scratch (B)", "probe": "probe (P)", "finetune": "fine-tuned (P&F)",
         "random_probe": "random-backbone probe"}


def _wins(task: dict, key: str, other: dict = None) -> str:
    """``"k/n"``: seeds on which fine-tuned beats scratch on ``key`` (paired by seed);
    scratch from ``other`` (the baseline's variants) when given."""
    ft = task["variants"]["finetune"][key]
    sc = (other or task["variants"])["scratch"][key]
    return paired_wins(ft, sc, task["higher_is_better"])


def paired_wins(xs: Sequence[float], ys: Sequence[float], higher_is_better: bool) -> str:
    """``"k/n"``: pairs where ``xs`` beats ``ys``."""
    sign = 1 if higher_is_better else -1
    return f"{sum(sign * (a - b) > 0 for a, b in zip(xs, ys))}/{len(xs)}"


def _baseline_lines(out: dict, ran: Sequence[str]) -> list:
    """The run against its baseline file, seed by seed: each variant's test mean here and
    there, and the seeds where this run is better; then fine-tuned here against scratch
    there when this run did not train scratch."""
    b = out["baseline"]
    # Validation seeds that see different history score different forecasts: no pairing then.
    same_val = (out["config"].get("finetune", {}).get("val_history", "seed")
                == b["config"].get("finetune", {}).get("val_history", "seed"))
    lines = ["", f"Against `{b['file']}` on the same seeds (the run without this lever; config "
             f"`{json.dumps(b['config'])}`). Test mean here (there), and the seeds where this run is better "
             + ("on test / on validation:" if same_val else
                "on test (validation is not paired: the two runs' validation seeds see different history):"), "",
             "| task | metric | " + " | ".join(NAMES[v] for v in ran) + " |", "|---|---|" + "---|" * len(ran)]
    caveats = []
    there = b.get("machine", {})
    if there and any(there.get(k) != out["machine"].get(k) for k in ("cpu", "torch")):
        caveats.append(f"The baseline ran on another machine ({there.get('cpu')}, torch {there.get('torch')}).")
    if b.get("other_backbone"):
        caveats.append(f"Seed(s) {b['other_backbone']} were pretrained to other validation losses there, so "
                       "their pretrained backbones differ and the probe and fine-tuned variants are paired "
                       "by seed only, not by backbone.")
    if caveats:
        lines[1:1] = ["", " ".join(caveats)]
    for task, t in out["tasks"].items():
        cells = []
        for v in ran:
            here, there = t["variants"][v], b["tasks"][task].get(v)
            if there is None:
                cells.append(f"{here['mean']:.4f} (—)")
                continue
            if here["per_seed"] == there["per_seed"]:  # a variant the lever does not touch reproduces
                cells.append(f"{here['mean']:.4f} (same on every seed)")
                continue
            hib = t["higher_is_better"]
            # A lever that changes only test (reference_time) leaves validation as it was.
            val = ("same" if here["val_per_seed"] == there["val_per_seed"]
                   else paired_wins(here["val_per_seed"], there["val_per_seed"], hib))
            cells.append(f"{here['mean']:.4f} ({np.mean(there['per_seed']):.4f}), "
                         f"{paired_wins(here['per_seed'], there['per_seed'], hib)}"
                         + (f" / {val}" if same_val else ""))
        lines.append(f"| {task} | {t['metric']} {'↑' if t['higher_is_better'] else '↓'} | " + " | ".join(cells) + " |")
    if "finetune" in ran and "scratch" not in ran and all("scratch" in b["tasks"][t] for t in out["tasks"]):
        lines += ["", f"Fine-tuned (P&F) here against scratch (B) in `{b['file']}`, seeds where P&F is better "
                  "(scratch does not depend on a fine-tuning lever): " +
                  "; ".join(f"{task} test {_wins(t, 'per_seed', b['tasks'][task])}"
                            + (f", val {_wins(t, 'val_per_seed', b['tasks'][task])}" if same_val else "")
                            for task, t in out["tasks"].items())]
    return lines


def _cell(xs) -> str:
    """``mean ± std`` of per-seed metrics; one seed has no spread, so only its value."""
    xs = np.asarray(xs, dtype=float)
    return f"{xs.mean():.4f} ± {xs.std(ddof=1):.4f}" if len(xs) > 1 else f"{xs[0]:.4f} (one seed)"


def _wise_val_table(curves: Dict[str, list]) -> list:
    """Markdown rows: per task, the mean validation metric of each WiSE-FT candidate α
    over the seeds that scored it."""
    alphas = sorted({a for seeds in curves.values() for c in seeds if c for a in c}, key=float)
    rows = ["| task | " + " | ".join(f"α = {a}" for a in alphas) + " |", "|---|" + "---|" * len(alphas)]
    for task, seeds in curves.items():
        cells = []
        for a in alphas:
            xs = [c[a] for c in seeds if c and a in c]
            cells.append(f"{np.mean(xs):.4f}" if xs else "—")
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    return rows


def markdown(out: dict) -> str:
    m = out["machine"]
    lines = [f"# {out['database']}: scratch vs probe vs fine-tuned", "",
             f"Test metric, mean ± std over seeds {out['seeds']} (paired: same seeds, splits, sampler "
             f"and budgets for every variant). Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
             f"{m['date']}.", ""]
    if out.get("notes"):
        lines += [out["notes"], ""]
    ran = [v for v in VARIANTS if all(v in t["variants"] for t in out["tasks"].values())]
    header = ["| task | metric | " + " | ".join(NAMES[v] for v in ran) + " |", "|---|---|" + "---|" * len(ran)]
    lines += header
    for task, t in out["tasks"].items():
        arrow = "↑" if t["higher_is_better"] else "↓"
        cells = []
        for v in ran:
            cells.append(_cell(t["variants"][v]["per_seed"]))
        lines.append(f"| {task} | {t['metric']} {arrow} | " + " | ".join(cells) + " |")
    # The validation split is the one model selection sees; on rel-f1 the test period is
    # shifted from it (driver-position's per-driver-median baseline: val 3.65, test 4.32 MAE),
    # so a variant can win on one and lose on the other. Showing both keeps that visible.
    lines += ["", "Validation metric (the split early stopping and model selection see), mean ± std:", "",
              *header]
    for task, t in out["tasks"].items():
        arrow = "↑" if t["higher_is_better"] else "↓"
        cells = []
        for v in ran:
            cells.append(_cell(t["variants"][v]["val_per_seed"]))
        lines.append(f"| {task} | {t['metric']} {arrow} | " + " | ".join(cells) + " |")
    if {"finetune", "scratch"} <= set(ran):
        lines += ["", "Paired wins of fine-tuned (P&F) over scratch (B), seeds where P&F is better: " +
                  "; ".join(f"{task} test {_wins(t, 'per_seed')}, val {_wins(t, 'val_per_seed')}"
                            for task, t in out["tasks"].items())]
    chosen = {task: t["variants"]["finetune"]["wise_alpha_per_seed"] for task, t in out["tasks"].items()
              if "wise_alpha_per_seed" in t["variants"].get("finetune", {})}
    if chosen:
        lines += ["", "WiSE-FT α chosen on validation, per seed: " +
                  "; ".join(f"{task} {alphas}" for task, alphas in chosen.items())]
    curves = {task: t["variants"]["finetune"]["wise_val_per_seed"] for task, t in out["tasks"].items()
              if any(t["variants"].get("finetune", {}).get("wise_val_per_seed") or [])}
    if curves:
        lines += ["", "WiSE-FT validation metric per candidate α (mean over seeds; each seed chose its best):",
                  ""] + _wise_val_table(curves)
    epochs = [v for v in ran if all(t["variants"][v].get("best_epoch_per_seed") for t in out["tasks"].values())]
    if epochs:
        lines += ["", "Epoch chosen on validation, per seed (probes: head epochs; fine-tuned: epochs after "
                  "the head-only ones):", "", "| task | " + " | ".join(NAMES[v] for v in epochs) + " |",
                  "|---|" + "---|" * len(epochs)]
        for task, t in out["tasks"].items():
            lines.append(f"| {task} | " + " | ".join(
                ", ".join(str(e) for e in t["variants"][v]["best_epoch_per_seed"]) for v in epochs) + " |")
    if out.get("baseline"):
        lines += _baseline_lines(out, ran)
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


def _parse_weights(parser, items: Sequence[str]) -> Dict[str, float]:
    """``["link=0.5", "row=1"]`` -> ``{"link": 0.5, "row": 1.0}``; a malformed item is a usage error."""
    weights = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            weight = float(value)  # "" (no "=") fails here too
        except ValueError:
            weight = None
        if weight is None or name not in ("row", "link", "context"):  # the objectives the protocol pretrains
            parser.error(f"--objective-weights {item!r}: write OBJECTIVE=W with OBJECTIVE one of row, link, "
                         "context, e.g. link=0.5")
        weights[name] = weight
    return weights


def parser(db_name: str, default_tasks: Sequence[str], doc: str):
    """The options shared by ``rel_f1.py`` and ``rel_lahman.py``."""
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(default_tasks))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--steps", type=int, default=2000, help="max pretraining steps (early stopping)")
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patience", type=int, default=5, help="fine-tuning early stopping (epochs)")
    p.add_argument("--pretrain-patience", type=int, default=5, help="pretraining early stopping (evaluations)")
    p.add_argument("--max-steps-per-epoch", type=int, default=None)
    p.add_argument("--min-steps-per-epoch", type=int, default=None,
                   help="entity tasks train on smaller batches where needed so that an epoch takes at least "
                        "this many steps (finetune(min_steps_per_epoch=...)); at 512 rows a batch a small "
                        "table gets a handful of steps an epoch")
    p.add_argument("--num-neighbors", type=int, nargs="+", default=[128, 64])
    p.add_argument("--temporal-strategy", default="uniform", choices=["uniform", "last"],
                   help="which of a row's earlier neighbours fine-tuning samples: any, uniformly (RelBench), "
                        "or the most recent ones (finetune(temporal_strategy=...)); with a small fan-out, "
                        "'last' makes a seed's mean over its rows a mean over its recent form")
    p.add_argument("--pretrain-neighbors", type=int, nargs="+", default=[16, 8])
    p.add_argument("--pretrain-temporal-strategy", default="uniform", choices=["uniform", "last"],
                   help="which earlier neighbours pretraining's subgraphs take (pretrain(temporal_strategy=...); "
                        "default uniform); 'last' matches a fine-tuning run with --temporal-strategy last")
    p.add_argument("--seed-tables", nargs="+", default=None, metavar="TABLE",
                   help="tables whose rows seed pretraining subgraphs (pretrain(seed_tables=...); "
                        "default: every table with a time column), e.g. drivers")
    p.add_argument("--seed-weighting", choices=["size", "uniform"], default=None,
                   help="how often each seed table is drawn: by its number of rows or each equally often "
                        "(pretrain(seed_weighting=...); default size)")
    p.add_argument("--objective-weights", nargs="+", default=None, metavar="OBJECTIVE=W",
                   help="pretraining loss weights, e.g. link=0.5 (pretrain(weights=...); default 1 each)")
    p.add_argument("--corruption-p", type=float, default=None,
                   help="row-level corruption rate (pretrain(corruption_p=...); default 0.3)")
    p.add_argument("--link-holdout", type=float, default=None,
                   help="share of each batch's foreign-key pairs hidden from message passing and scored by "
                        "the link objective (pretrain(link_holdout=...); default 0, as in the paper)")
    p.add_argument("--backbone-lr", type=float, default=1e-3)
    p.add_argument("--probe-epochs", type=int, default=3, help="LP-FT head-only epochs before fine-tuning")
    p.add_argument("--wise-alpha", type=float, nargs="+", default=None, metavar="A",
                   help="WiSE-FT: the fine-tuned variant returns (1 - a) * linear probe + a * fine-tuned "
                        "weights; several values: the one best on validation, per task and seed "
                        "(finetune(wise_alpha=...); default: the fine-tuned weights)")
    p.add_argument("--text", default="hash")
    p.add_argument("--val-history", default="seed", choices=["seed", "cutoff"],
                   help="what validation seeds see: rows up to their own time (RelBench) or up to the val "
                        "cutoff, as test seeds see rows up to the test cutoff (finetune(val_history=...))")
    p.add_argument("--train-history", default="seed", choices=["seed", "stale"],
                   help="training seeds sampled from history up to the test period's length old "
                        "(finetune(train_history='stale'))")
    p.add_argument("--reference-time", default="seed", choices=["seed", "history"],
                   help="the time evaluation seeds are encoded at: their own (RelBench) or the end of the "
                        "history they see, min(seed time, cutoff) (finetune(reference_time=...)); changes "
                        "every variant's test numbers, not what is trained")
    p.add_argument("--test-history", default="cutoff", choices=["cutoff", "seed"],
                   help="what test seeds see: rows up to the test cutoff (RelBench) or every row up to their "
                        "own time, from a graph of every row (finetune(test_history=...)); the numbers are "
                        "then not comparable with RelBench's")
    p.add_argument("--no-pair-features", action="store_true",
                   help="link tasks: score with the two towers alone, without the pair term "
                        "(finetune(pair_features=False)), as every link result before that term was")
    p.add_argument("--clamp-regression", action="store_true",
                   help="regression tasks: clip validation and test predictions to the training targets' "
                        "2nd-98th percentiles, as RelBench's gnn_entity.py does "
                        "(finetune(clamp_predictions=True)); every variant; only with regression --tasks")
    p.add_argument("--no-time-features", action="store_true",
                   help="leave timestamp columns out of the features (build_graph(time_features=False))")
    p.add_argument("--drop", nargs="+", default=[], metavar="TABLE.COLUMN",
                   help="feature columns to leave out, e.g. races.year")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                   help="the variants to train (default all); a fine-tuning lever such as --backbone-lr "
                        "changes only finetune")
    p.add_argument("--pretrained-dir",
                   help="keep each seed's pretrained backbone here and load it when a later run has the "
                        "same seed, pretraining config and graph options")
    p.add_argument("--baseline",
                   help="a results file over the same seeds without the lever (e.g. "
                        "benchmarks/results/rel-f1.json): the markdown pairs every seed with it")
    p.add_argument("--out", default=db_name)
    p.add_argument("--device", default="cpu", help="cpu or cuda (sampling always runs on the CPU)")
    p.add_argument("--partial-dir", help="also write one JSON per seed here")
    p.add_argument("--merge", nargs="+", help="combine per-seed JSON files instead of running")
    p.add_argument("--notes", default="", help="added to the results (e.g. where it ran)")
    return p


def configs(p, a):
    """``(pretrain kwargs, finetune kwargs)`` from parsed options ``a`` of parser ``p``."""
    pre = dict(steps=a.steps, channels=a.channels, num_neighbors=tuple(a.pretrain_neighbors))
    # Pretraining levers are recorded only when set, so older results files still merge.
    if a.seed_tables:
        pre["seed_tables"] = list(a.seed_tables)
    if a.seed_weighting:
        pre["seed_weighting"] = a.seed_weighting
    if a.objective_weights:
        pre["weights"] = _parse_weights(p, a.objective_weights)
    if a.corruption_p is not None:
        pre["corruption_p"] = a.corruption_p
    if a.link_holdout is not None:
        pre["link_holdout"] = a.link_holdout
    if a.pretrain_temporal_strategy != "uniform":  # an explicit default reuses the cached backbones
        pre["temporal_strategy"] = a.pretrain_temporal_strategy
    ft = dict(epochs=a.epochs, max_steps_per_epoch=a.max_steps_per_epoch, num_neighbors=tuple(a.num_neighbors),
              backbone_lr=a.backbone_lr, probe_epochs=a.probe_epochs)
    if a.val_history != "seed":  # recorded only when set, so older results files still merge
        ft["val_history"] = a.val_history
    if a.train_history != "seed":
        ft["train_history"] = a.train_history
    if a.reference_time != "seed":
        ft["reference_time"] = a.reference_time
    if a.test_history != "cutoff":
        ft["test_history"] = a.test_history
    if a.min_steps_per_epoch is not None:
        ft["min_steps_per_epoch"] = a.min_steps_per_epoch
    if a.wise_alpha is not None:  # one value stays a number, as results files have always had it
        ft["wise_alpha"] = a.wise_alpha[0] if len(a.wise_alpha) == 1 else a.wise_alpha
    if a.temporal_strategy != "uniform":
        ft["temporal_strategy"] = a.temporal_strategy
    if a.no_pair_features:
        ft["pair_features"] = False
    if a.clamp_regression:
        ft["clamp_predictions"] = True
    return {**pre, "patience": a.pretrain_patience}, {**ft, "patience": a.patience}


def cli(db_name: str, default_tasks: Sequence[str], doc: str) -> None:
    """The command line shared by ``rel_f1.py`` and ``rel_lahman.py``."""
    p = parser(db_name, default_tasks, doc)
    a = p.parse_args()
    pre, ft = configs(p, a)
    script = os.path.basename(sys.argv[0])
    # the command as run, without the --notes text (which follows it once)
    argv = sys.argv[1:]
    if "--notes" in argv:
        i = argv.index("--notes")
        argv = argv[:i] + ["--notes", "..."] + argv[i + 2:]
    notes = f"Command: `python benchmarks/{script} {' '.join(argv)}`. {a.notes}".strip()
    if a.merge:
        merge(a.merge, db_name, a.out, notes=a.notes, baseline=a.baseline)
        return
    try:  # run_protocol checks the configuration and the tasks before it trains anything
        run_protocol(db_name, a.tasks, a.seeds, pre, ft, text=a.text,
                     out_name=a.out, notes=notes, device=a.device, partial_dir=a.partial_dir,
                     time_features=not a.no_time_features, drop=a.drop, variants=a.variants,
                     pretrained_dir=a.pretrained_dir, baseline=a.baseline)
    except ConfigError as e:
        p.error(str(e))
