"""Benchmark of the visual layer: the embedding projector at rel-f1 scale, and the cost of
live loss plotting.

Measures, on this machine:

1. **Projector of every rel-f1 row** (74,063 rows before the test cutoff, 9 tables): a
   backbone pretrained briefly (``--steps``, 50 by default), then
   ``rdlviz.viz.embeddings(run, seed=None)`` -- embedding (``embed_rows`` per table),
   the cosine neighbour graph (:func:`rdlviz.viz.embeddings.cosine_knn`) and UMAP,
   timed separately; UMAP's first call in a process includes numba's compilation, so a
   second, warm layout of the same neighbour graph is timed too. Target: the UMAP part
   (neighbour graph + layout) within 60 s.
2. **Recall** of the approximate (inverted-file) neighbour graph against exact cosine
   search, on 2,000 random rows.
3. **Baseline**: umap-learn left to its own devices (its NN-descent search, default
   epochs, two threads) on the same vectors (``--no-baseline`` skips it).
4. **Threads**: embedding one table with 1 and with 2 torch threads (on a busy 2-core
   machine the second thread mostly waits).
5. **HTML size** of the projector page with all 74k points.
6. **Live loss view**: ``LossMonitor.on_step`` cost per call over 2,000 steps (mean,
   p95, max) with the default redraw throttle, and redrawing at every step for contrast.

Writes ``benchmarks/results/viz.json`` and ``viz.md`` and prints the same. Run::

    .venv/bin/python benchmarks/viz.py            # ~5-8 minutes on 2 busy cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except OSError:
        return "n/a"


def load_average() -> list:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict:
    """The shared machine description plus the versions this benchmark depends on."""
    import numba
    import plotly
    import umap

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _common

    return {**_common.machine(), "system": f"{platform.system()} {platform.release()}",
            "umap_learn": umap.__version__, "numba": numba.__version__, "plotly": plotly.__version__}


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t0


def bench_projector(args, res: dict) -> None:
    import numpy as np
    import torch

    import rdlviz
    from rdlviz.nn import embed_rows
    from rdlviz.viz import embeddings
    from rdlviz.viz.embeddings import _normalize, cosine_knn, project

    db = rdlviz.load("rel-f1", source=args.source)
    graph, t_graph = timed(rdlviz.build_graph, db, text="hash")
    n_rows = sum(graph.num_nodes.values())
    res["graph"] = {"rows": n_rows, "tables": len(graph.node_types), "build_s": round(t_graph, 2),
                    "from_cache": graph.from_cache}
    print(f"rel-f1 graph: {n_rows:,} rows in {len(graph.node_types)} tables ({t_graph:.1f} s)", flush=True)

    torch.set_num_threads(args.threads)
    run, t_pre = timed(rdlviz.pretrain, graph, steps=args.steps, channels=args.channels, num_neighbors=(16, 8),
                       eval_every=max(1, args.steps), eval_batches=2, progress=False, seed=0)
    res["pretrain"] = {"steps": run.step, "channels": args.channels, "seconds": round(t_pre, 1),
                       "torch_threads": args.threads}
    print(f"pretrained {run.step} steps ({args.channels} channels) in {t_pre:.1f} s", flush=True)

    load_before = load_average()
    view, t_view = timed(embeddings, run, graph, seed=None, num_threads=args.threads, progress=False)
    tm = view.timings
    res["projector"] = {
        "points": len(view.points), "dims": int(view.embedding.shape[1]), "num_neighbors": list(view.num_neighbors),
        "embed_s": round(tm["embed"], 1), "knn_s": round(tm["knn"], 1), "umap_layout_cold_s": round(tm["umap"], 1),
        "umap_total_cold_s": round(tm["knn"] + tm["umap"], 1), "call_total_s": round(t_view, 1),
        "umap_threads": args.threads,
        "embed_rows_per_s": round(len(view.points) / tm["embed"]), "torch_threads": args.threads,
        "load_average_before": load_before, "load_average_after": load_average(),
    }
    print(f"embeddings(): {len(view.points):,} points; embed {tm['embed']:.1f} s, neighbour graph {tm['knn']:.1f} s, "
          f"UMAP layout {tm['umap']:.1f} s (first call, with numba compilation); total {t_view:.1f} s", flush=True)

    z = view.embedding
    knn, t_knn = timed(cosine_knn, z, 15, None)
    _, t_warm1 = timed(project, z, 2, 15, None, None, knn, n_jobs=1)
    _, t_warm2 = timed(project, z, 2, 15, None, None, knn, n_jobs=2)
    res["projector"].update(knn_warm_s=round(t_knn, 1), umap_layout_warm_1_thread_s=round(t_warm1, 1),
                            umap_layout_warm_2_threads_s=round(t_warm2, 1),
                            umap_total_warm_1_thread_s=round(t_knn + t_warm1, 1))
    print(f"warm: neighbour graph {t_knn:.1f} s; layout {t_warm1:.1f} s on 1 thread, {t_warm2:.1f} s on 2",
          flush=True)

    # recall of the approximate neighbour graph against exact search
    zn = _normalize(z)
    rng = np.random.default_rng(0)
    q = rng.choice(len(z), 2000, replace=False)
    s = zn[q] @ zn.T
    s[torch.arange(len(q)), torch.from_numpy(q)] = 2.0
    kth = s.topk(15, dim=1).values[:, -1].numpy()
    got = 1.0 - knn[1][q]
    recall = float(np.mean([(got[i] >= kth[i] - 1e-6).sum() / 15 for i in range(len(q))]))
    res["projector"]["knn_recall_at_15"] = round(recall, 4)
    print(f"neighbour-graph recall@15 vs exact cosine (2,000 rows): {recall:.3f}", flush=True)

    # HTML size of the full projector
    with tempfile.TemporaryDirectory() as d:
        path, t_html = timed(view.to_html, Path(d) / "projector.html")
        size = path.stat().st_size
    from plotly.offline import get_plotlyjs

    res["html"] = {"points": len(view.points), "bytes": size, "mb": round(size / 2**20, 2),
                   "plotlyjs_mb": round(len(get_plotlyjs()) / 2**20, 2), "write_s": round(t_html, 1),
                   "mb_per_10k_points_beyond_plotlyjs": round((size - len(get_plotlyjs())) / 2**20 / len(view.points) * 1e4, 2)}
    print(f"projector HTML, {len(view.points):,} points: {size / 2**20:.1f} MB "
          f"(plotly.js {len(get_plotlyjs()) / 2**20:.1f} MB of it), written in {t_html:.1f} s", flush=True)

    if args.baseline:
        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, t_base = timed(umap.UMAP(n_components=2, n_neighbors=15, metric="cosine", n_jobs=2).fit_transform, z)
        res["baseline_umap_learn_defaults_s"] = round(t_base, 1)
        print(f"umap-learn with its own defaults (NN-descent, 200 epochs, 2 threads): {t_base:.1f} s", flush=True)

    # threads: the same table embedded with 1 and 2 torch threads
    table = "constructor_results"
    per = {}
    for th in (1, 2):
        torch.set_num_threads(th)
        _, per[th] = timed(embed_rows, run, graph, table, num_neighbors=view.num_neighbors)
    torch.set_num_threads(args.threads)
    res["threads"] = {"table": table, "rows": graph.num_nodes[table],
                      "embed_s_1_thread": round(per[1], 1), "embed_s_2_threads": round(per[2], 1)}
    print(f"embed {table} ({graph.num_nodes[table]:,} rows): 1 thread {per[1]:.1f} s, 2 threads {per[2]:.1f} s",
          flush=True)


def bench_losses(res: dict, steps: int = 2000) -> None:
    import math

    import numpy as np

    from rdlviz.viz import LossMonitor

    out = {}
    for label, every_ms in (("default_throttle_300ms", 300.0), ("every_ms_0_only_the_10pct_cost_cap", 0.0)):
        mon = LossMonitor(every_ms=every_ms, auto_display=False)
        costs = np.empty(steps)
        t_start = time.perf_counter()
        for s in range(1, steps + 1):
            logs = {k: math.exp(-s / (300 + 100 * i)) + 0.3 for i, k in enumerate(("row", "link", "context"))}
            logs.update(total=sum(logs.values()), time=time.perf_counter() - t_start, lr=1e-3)
            t0 = time.perf_counter()
            mon.on_step(s, logs)
            costs[s - 1] = time.perf_counter() - t0
            if s % 100 == 0:
                mon.on_eval(s, {k: v * 1.05 for k, v in logs.items()})
            # a training step takes time; without it every redraw would land back to back
            time.sleep(0.002)
        ms = costs * 1e3
        out[label] = {"steps": steps, "mean_ms": round(float(ms.mean()), 4), "p95_ms": round(float(np.percentile(ms, 95)), 4),
                      "max_ms": round(float(ms.max()), 2), "redraws": mon.redraws,
                      "redraw_seconds": round(mon.plot_seconds, 3)}
        print(f"LossMonitor.on_step ({label}): mean {ms.mean():.3f} ms, p95 {np.percentile(ms, 95):.3f} ms, "
              f"max {ms.max():.1f} ms; {mon.redraws} redraws over {steps} steps", flush=True)
    res["loss_monitor"] = out


def write_md(res: dict) -> str:
    m, p, h = res["machine"], res.get("projector", {}), res.get("html", {})
    lines = ["# Visual layer benchmark", "",
             f"Measured {res['date']} with `{res['command']}`.", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['system']}; torch {m['torch']}, umap-learn "
             f"{m['umap_learn']}, numba {m['numba']}, plotly {m['plotly']}.",
             f"Load when starting: `{res['uptime_start']}`; when done: `{res['uptime_end']}` "
             "(other jobs shared the 2 cores: absolute times are pessimistic).", ""]
    if p:
        g, pre = res["graph"], res["pretrain"]
        lines += ["## Projector of every rel-f1 row", "",
                  f"{g['rows']:,} rows in {g['tables']} tables (hash text encoding), backbone pretrained "
                  f"{pre['steps']} steps ({pre['channels']} channels, {pre['seconds']} s), embedded with fan-outs "
                  f"{p['num_neighbors']}; `embeddings(run, seed=None, num_threads={p['torch_threads']})`.", "",
                  "| step | seconds |", "|---|---|",
                  f"| embed all rows (`embed_rows`, {p['embed_rows_per_s']:,} rows/s) | {p['embed_s']} |",
                  f"| neighbour graph (`cosine_knn`, inverted file) | {p['knn_s']} |",
                  f"| UMAP layout, first call (includes numba compilation; {p['umap_threads']} thread(s)) | "
                  f"{p['umap_layout_cold_s']} |",
                  f"| **UMAP total, first call (graph + layout)** | **{p['umap_total_cold_s']}** |",
                  f"| UMAP total, warm (graph {p['knn_warm_s']} + layout {p['umap_layout_warm_1_thread_s']}, 1 thread) | "
                  f"{p['umap_total_warm_1_thread_s']} |",
                  f"| UMAP layout, warm, 2 threads (the default without `num_threads`) | {p['umap_layout_warm_2_threads_s']} |",
                  f"| whole `embeddings()` call | {p['call_total_s']} |", "",
                  f"Target: UMAP of all rows within 60 s. Neighbour-graph recall@15 against exact cosine search "
                  f"(2,000 random rows): {p['knn_recall_at_15']}.", ""]
        if "baseline_umap_learn_defaults_s" in res:
            lines += [f"For comparison, umap-learn with its own defaults on the same vectors (NN-descent search, "
                      f"default epochs, 2 threads): {res['baseline_umap_learn_defaults_s']} s.", ""]
        t = res["threads"]
        lines += [f"Threads: embedding `{t['table']}` ({t['rows']:,} rows) took {t['embed_s_1_thread']} s with 1 torch "
                  f"thread and {t['embed_s_2_threads']} s with 2 on this shared machine; `embeddings(..., "
                  "num_threads=1)` chooses the first.", "",
                  "## Projector page size", "",
                  f"{h['points']:,} points: {h['mb']} MB (plotly.js is {h['plotlyjs_mb']} MB of it; "
                  f"{h['mb_per_10k_points_beyond_plotlyjs']} MB per 10,000 points for coordinates and hover text), "
                  f"written in {h['write_s']} s.", ""]
    lm = res.get("loss_monitor")
    if lm:
        lines += ["## Live loss view", "", "`LossMonitor.on_step` per call, 2,000 steps (2 ms of simulated work per step):",
                  "", "| setting | mean ms | p95 ms | max ms | redraws |", "|---|---|---|---|---|"]
        names = {"default_throttle_300ms": "`every_ms=300` (default)",
                 "every_ms_0_only_the_10pct_cost_cap": "`every_ms=0` (redraw whenever the 10% cost cap allows)"}
        for k, v in lm.items():
            lines.append(f"| {names.get(k, k)} | {v['mean_ms']} | {v['p95_ms']} | {v['max_ms']} | {v['redraws']} |")
        lines += ["", "A step only appends numbers; the mean includes the redraws (a batched FigureWidget "
                  "update, a few ms each), the p95 is the cost of a step without one."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=os.environ.get("RDLVIZ_F1_SOURCE", str(ROOT.parent / "shared" / "data" / "f1db")),
                    help="the raw Ergast CSV folder of rel-f1")
    ap.add_argument("--steps", type=int, default=50, help="pretraining steps before embedding")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for pretraining and embedding")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip umap-learn's default run")
    ap.add_argument("--skip-projector", action="store_true", help="only the loss-monitor part")
    args = ap.parse_args()

    res = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "command": "python benchmarks/viz.py "
           + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in (("steps", args.steps), ("channels", args.channels),
                                                                   ("threads", args.threads))),
           "uptime_start": uptime()}
    res["machine"] = machine()
    print(f"machine: {res['machine']}\nload: {res['uptime_start']}", flush=True)
    if not args.skip_projector:
        bench_projector(args, res)
    bench_losses(res)
    res["uptime_end"] = uptime()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "viz.json").write_text(json.dumps(res, indent=2))
    md = write_md(res)
    (OUT / "viz.md").write_text(md + "\n")
    print("\n" + md)
    print(f"written {OUT / 'viz.json'} and {OUT / 'viz.md'}")


if __name__ == "__main__":
    main()
