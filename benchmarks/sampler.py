"""Benchmark of rdlviz's temporal heterogeneous samplers on rel-f1.

Measures, for the fine-tuning pattern (one epoch over the driver-dnf train table: 11,411
driver seeds, each with its own time, batch 512) and the pretraining pattern (64 seeds
from ``results`` at their own time, fan-outs [8, 4, 2]):

- seeds/s, sampled nodes/s and ms per batch for the whole loader (sampling + feature
  gathering + HeteroData assembly) and for the sampling call alone;
- CPU seconds of this process (less sensitive to other jobs on the machine than wall
  time; with worker processes the main process's CPU only);
- peak resident memory: each configuration runs in a fresh child process, which reports
  its RSS before the measured loop and its peak (``ru_maxrss``), workers separately.

Each measurement is repeated ``--repeats`` times in each of ``--rounds`` fresh child
processes per configuration (run in alternating order); the table shows the median over
all of them, the JSON keeps every run. The machine's load average is recorded around every configuration:
on a shared machine, other jobs inflate wall times.

Usage::

    .venv/bin/python benchmarks/sampler.py [--source ../shared/data/f1db] [--repeats 5] [--rounds 3]

Writes ``benchmarks/results/sampler.json`` and ``sampler.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# Reference: pyg-lib 0.9.0 (built from source for comparison), same machine, 1 thread.
PYG_LIB = {
    "dnf [128, 64] uniform": {"whole_seeds_per_s": 34_200, "sampling_seeds_per_s": 53_700,
                              "nodes_per_s": 4.9e6, "nodes_per_seed": 143},
    "dnf [64, 32] uniform": {"whole_seeds_per_s": 40_600},
    "pretrain results [8, 4, 2]": {"whole_seeds_per_s": 15_900, "ms_per_batch": 4.0},
}

CONFIGS = {
    # name: (pattern, fan-outs, strategy, num_threads, num_workers)
    "dnf [128, 64] uniform": ("dnf", [128, 64], "uniform", 1, 0),
    "dnf [128, 64] uniform, 2 threads": ("dnf", [128, 64], "uniform", 2, 0),
    "dnf [128, 64] uniform, 2 workers": ("dnf", [128, 64], "uniform", 1, 2),
    "dnf [128, 64] last": ("dnf", [128, 64], "last", 1, 0),
    "dnf [64, 32] uniform": ("dnf", [64, 32], "uniform", 1, 0),
    "dnf [64, 32] uniform, 2 threads": ("dnf", [64, 32], "uniform", 2, 0),
    "dnf [64, 32] last": ("dnf", [64, 32], "last", 1, 0),
    "pretrain results [8, 4, 2]": ("pretrain", [8, 4, 2], "uniform", 1, 0),
    "pretrain results [8, 4, 2], 2 threads": ("pretrain", [8, 4, 2], "uniform", 2, 0),
    "pretrain results [8, 4, 2], 2 workers": ("pretrain", [8, 4, 2], "uniform", 1, 2),
    "budget results 64/type x 3 hops": ("budget", [64, 64, 64], "uniform", 1, 0),
}

SEED = 0
PRETRAIN_BATCHES = 200


# -- graph --------------------------------------------------------------------------------


def build_graph(source: str, path: Path) -> dict:
    """rel-f1 as relbench builds it (text columns left out) with unix-second times,
    plus the driver-dnf train table; saved to ``path`` for the child processes."""
    import pandas as pd
    import torch
    from relbench.modeling.graph import make_pkey_fkey_graph
    from relbench.modeling.utils import get_stype_proposal
    from torch_frame import stype

    import rdlviz

    def unix(ser: pd.Series) -> torch.Tensor:
        # relbench's to_unix_time assumes nanoseconds; pandas 3 gives microseconds
        return torch.from_numpy(ser.astype("datetime64[s]").astype("int64").to_numpy())

    ds = rdlviz.load("rel-f1", source=source)
    db = ds.get_db()
    stypes = get_stype_proposal(db)
    for cols in stypes.values():
        for c in [c for c, s in cols.items() if s == stype.text_embedded]:
            del cols[c]
    t0 = time.perf_counter()
    data, _ = make_pkey_fkey_graph(db, stypes, text_embedder_cfg=None)
    for name, table in db.table_dict.items():
        if table.time_col is not None:
            data[name].time = unix(table.df[table.time_col])
    table = ds.load_task("driver-dnf").get_table("train")
    dnf = (torch.from_numpy(table.df["driverId"].to_numpy()), unix(table.df["date"]))
    # pretraining sees rows before the validation cutoff only
    val = int(pd.Timestamp(ds.val_timestamp).value // 10**9)
    results = torch.nonzero(data["results"].time < val).view(-1)
    torch.save({"data": data, "dnf": dnf, "results": results}, path)
    return {
        "graph_build_s": round(time.perf_counter() - t0, 2),
        "nodes": int(sum(data[t].num_nodes for t in data.node_types)),
        "edges": int(sum(data[e].num_edges for e in data.edge_types)),
        "node_types": len(data.node_types),
        "edge_types": len(data.edge_types),
        "dnf_seeds": int(dnf[0].numel()),
        "pretrain_seed_pool": int(results.numel()),
    }


# -- one configuration (child process) ----------------------------------------------------


def _status_mb(pid, field: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _children(pid: int):
    """Pids of the direct children of ``pid`` (the loader's worker processes)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def run_config(name: str, graph_path: str, repeats: int) -> dict:
    import itertools

    import torch

    from rdlviz.sampling import BudgetLoader, NeighborLoader

    pattern, fan, strategy, threads, workers = CONFIGS[name]
    g = torch.load(graph_path, weights_only=False)
    data = g["data"]
    if pattern == "dnf":
        nodes, times = g["dnf"]
        loader = NeighborLoader(data, fan, ("drivers", nodes), input_time=times, batch_size=512,
                                shuffle=True, temporal_strategy=strategy, seed=SEED,
                                num_threads=threads, num_workers=workers,
                                persistent_workers=workers > 0)
        n_batches = len(loader)
    elif pattern == "pretrain":
        loader = NeighborLoader(data, fan, ("results", g["results"]), batch_size=64, shuffle=True,
                                seed=SEED, num_threads=threads, num_workers=workers,
                                persistent_workers=workers > 0)
        n_batches = min(PRETRAIN_BATCHES, len(loader))
    else:
        loader = BudgetLoader(data, fan, ("results", g["results"]), batch_size=64, shuffle=True,
                              seed=SEED)
        n_batches = min(PRETRAIN_BATCHES, len(loader))

    # warm-up (one pass): load the compiled kernels, start workers, fault in the graph,
    # the CSR and the kernels' buffers -- first-touch costs that a training run pays once
    for b in itertools.islice(loader, n_batches):
        pass
    rss_before = _status_mb("self", "VmRSS")

    def whole():
        n_seeds = n_nodes = 0
        for b in itertools.islice(loader, n_batches):
            for t in b.node_types:
                n_nodes += b[t].n_id.numel()
                if "batch_size" in b[t]:
                    n_seeds += b[t].batch_size
        return n_seeds, n_nodes

    def sampling():
        n_seeds = n_nodes = 0
        for _, idx, rng in loader.plan()[:n_batches]:
            sub, _ = loader.sample_ids(idx, rng)
            n_seeds += idx.size
            n_nodes += sub.num_nodes
        return n_seeds, n_nodes

    runs = {"whole": [], "sampling": []}
    for _ in range(repeats):
        for kind, fn in (("whole", whole), ("sampling", sampling)):
            if kind == "sampling" and workers:
                continue  # sampling alone is the same call as without workers
            load0 = os.getloadavg()[0]
            c0, t0 = time.process_time(), time.perf_counter()
            n_seeds, n_nodes = fn()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            runs[kind].append({
                "wall_s": wall, "cpu_s": cpu, "seeds": n_seeds, "nodes": n_nodes, "batches": n_batches,
                "seeds_per_s": n_seeds / wall, "nodes_per_s": n_nodes / wall,
                "ms_per_batch": wall / n_batches * 1e3, "cpu_ms_per_batch": cpu / n_batches * 1e3,
                "load_1min": [load0, os.getloadavg()[0]],
            })
    # VmHWM is this process image's peak RSS (ru_maxrss would include the parent's,
    # which built the graph before starting this child); workers are still alive here.
    peak = _status_mb("self", "VmHWM")
    worker_peak = max((_status_mb(p, "VmHWM") for p in _children(os.getpid())), default=None)
    out = {
        "config": {"pattern": pattern, "num_neighbors": fan, "temporal_strategy": strategy,
                   "num_threads": threads, "num_workers": workers,
                   "batch_size": 512 if pattern == "dnf" else 64, "seed": SEED},
        "runs": runs,
        "rss_mb_before_loop": round(rss_before, 1),
        "peak_rss_mb": round(peak, 1),
        "peak_rss_mb_workers": round(worker_peak, 1) if workers and worker_peak else None,
    }
    return out


# -- driver --------------------------------------------------------------------------------


def parallel_headroom() -> float:
    """Speed-up of 2 threads over 1 on a compute-only, GIL-free loop, right now.

    About 2 on an idle 2-core machine; about 1 when other jobs already use a core, in
    which case no 2-thread or 2-worker configuration can be faster than 1 thread."""
    import threading

    from numba import njit

    @njit(nogil=True)
    def spin(n):
        s = 0.0
        for i in range(n):
            s += (i % 7) * 0.5
        return s

    spin(10)
    n = 100_000_000
    t0 = time.perf_counter()
    spin(n)
    spin(n)
    serial = time.perf_counter() - t0
    threads = [threading.Thread(target=spin, args=(n,)) for _ in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return round(serial / (time.perf_counter() - t0), 2)


def machine_info() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba
    import torch
    import torch_geometric

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numba": numba.__version__,
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "commit": commit,
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_at_start": list(os.getloadavg()),
        "two_thread_headroom_at_start": parallel_headroom(),
    }


def med(runs, key):
    return statistics.median(r[key] for r in runs) if runs else float("nan")


def best(runs):
    return max(r["seeds_per_s"] for r in runs)


def table(results: dict) -> str:
    head = ("| configuration | whole loader seeds/s (best) | nodes/s | ms/batch | CPU ms/batch "
            "| sampling alone seeds/s (best) | ms/batch | nodes/seed | peak RSS MB (before loop) | load |")
    lines = [head, "|" + "---|" * 10]
    for name, r in results.items():
        w, s = r["runs"]["whole"], r["runs"]["sampling"]
        loads = [x for run in w + s for x in run["load_1min"]]
        nodes_per_seed = med(w, "nodes") / med(w, "seeds")
        rss = f"{r['peak_rss_mb']:.0f} ({r['rss_mb_before_loop']:.0f})"
        if r["peak_rss_mb_workers"]:
            rss += f", workers {r['peak_rss_mb_workers']:.0f}"
        samp = (f"{med(s, 'seeds_per_s'):,.0f} ({best(s):,.0f}) | {med(s, 'ms_per_batch'):.2f}" if s else "— | —")
        lines.append(
            f"| {name} | {med(w, 'seeds_per_s'):,.0f} ({best(w):,.0f}) | {med(w, 'nodes_per_s') / 1e6:.2f}M "
            f"| {med(w, 'ms_per_batch'):.2f} | {med(w, 'cpu_ms_per_batch'):.2f} | {samp} "
            f"| {nodes_per_seed:.1f} | {rss} | {min(loads):.1f}–{max(loads):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=os.environ.get("RDLVIZ_F1_SOURCE", str(REPO.parent / "shared" / "data" / "f1db")))
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per child process")
    ap.add_argument("--rounds", type=int, default=3, help="fresh child processes per configuration")
    ap.add_argument("--only", nargs="*", help="configuration names to run (default: all)")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite sampler.md from an existing sampler.json, without measuring")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--graph", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(run_config(args.child, args.graph, args.repeats)))
        return

    if args.report_only:
        out = Path(args.out)
        payload = json.loads((out / "sampler.json").read_text())
        md = table(payload["results"])
        (out / "sampler.md").write_text(report(payload["machine"], payload["graph"], payload["repeats"], md,
                                               payload["results"]))
        print(md)
        return

    info = machine_info()
    print(f"machine: {info['cpu_model']}, {info['cpu_count']} cores; load {info['load_at_start']}")
    names = args.only or list(CONFIGS)
    with tempfile.TemporaryDirectory() as tmp:
        graph_path = Path(tmp) / "f1.pt"
        graph = build_graph(args.source, graph_path)
        print(f"graph: {graph}")
        results = {}
        # Each round runs every configuration in a fresh child process, in alternating
        # order: the same code path was measured 1.05-1.93 ms/batch in different processes
        # on this VM, so one process per configuration cannot rank configurations.
        for rnd in range(args.rounds):
            for name in (names if rnd % 2 == 0 else names[::-1]):
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", name, "--graph", str(graph_path),
                     "--repeats", str(args.repeats)],
                    capture_output=True, text=True, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"},
                )
                if proc.returncode != 0:
                    sys.stderr.write(proc.stderr)
                    raise SystemExit(f"configuration '{name}' failed")
                one = json.loads(proc.stdout.strip().splitlines()[-1])
                if name not in results:
                    results[name] = one
                else:
                    for kind, runs in one["runs"].items():
                        results[name]["runs"][kind] += runs
                    for key in ("peak_rss_mb", "rss_mb_before_loop"):
                        results[name][key] = max(results[name][key], one[key])
                w = one["runs"]["whole"]
                print(f"  round {rnd + 1} {name}: {med(w, 'seeds_per_s'):,.0f} seeds/s whole loader, "
                      f"{med(w, 'ms_per_batch'):.2f} ms/batch", flush=True)
        results = {name: results[name] for name in names}
    info["load_at_end"] = list(os.getloadavg())
    info["two_thread_headroom_at_end"] = parallel_headroom()
    md = table(results)
    print()
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "graph": graph, "repeats": args.repeats * args.rounds, "seed": SEED,
               "reference_pyg_lib_0.9.0_1_thread": PYG_LIB, "results": results}
    (out / "sampler.json").write_text(json.dumps(payload, indent=1))
    (out / "sampler.md").write_text(report(info, graph, args.repeats * args.rounds, md, results))
    print(f"\nwrote {out / 'sampler.json'} and {out / 'sampler.md'}")


def report(info, graph, repeats, md, results) -> str:
    def whole(name, key="seeds_per_s"):
        return med(results[name]["runs"]["whole"], key) if name in results else float("nan")

    def samp(name):
        return med(results[name]["runs"]["sampling"], "seeds_per_s") if name in results else float("nan")

    ref = PYG_LIB
    rows = [
        ("dnf [128, 64] uniform, whole loader (seeds/s)", ref["dnf [128, 64] uniform"]["whole_seeds_per_s"],
         whole("dnf [128, 64] uniform")),
        ("dnf [128, 64] uniform, sampling alone (seeds/s)", ref["dnf [128, 64] uniform"]["sampling_seeds_per_s"],
         samp("dnf [128, 64] uniform")),
        ("dnf [64, 32] uniform, whole loader (seeds/s)", ref["dnf [64, 32] uniform"]["whole_seeds_per_s"],
         whole("dnf [64, 32] uniform")),
        ("pretraining [8, 4, 2], whole loader (ms/batch)", ref["pretrain results [8, 4, 2]"]["ms_per_batch"],
         whole("pretrain results [8, 4, 2]", "ms_per_batch")),
    ]
    fmt = lambda x, a: f"{x:,.2f}" if "ms/batch" in a else f"{x:,.0f}"  # noqa: E731
    cmp = "\n".join(f"| {a} | {fmt(b, a)} | {fmt(c, a)} |" for a, b, c in rows)
    return f"""# Sampler benchmark (rel-f1)

Produced by `benchmarks/sampler.py` ({info['date_utc']}, commit `{info['commit']}`).

Machine: {info['cpu_model']}, {info['cpu_count']} cores ({info['platform']}); Python
{info['python']}, numba {info['numba']}, torch {info['torch']}, PyG {info['torch_geometric']}.
Load average (1 min) at start {info['load_at_start'][0]:.2f}, at end {info['load_at_end'][0]:.2f};
the machine is shared, so wall times carry other jobs' load (the *load* column gives the
range seen during each configuration, and *CPU ms/batch* is this process's CPU time).
Two-thread headroom (speed-up of 2 threads over 1 on a GIL-free compute loop) at start
{info['two_thread_headroom_at_start']}, at end {info['two_thread_headroom_at_end']}: near 1 means the second core was
busy with other jobs, so 2-thread and 2-worker rows cannot beat 1 thread here.

Graph: rel-f1 up to the test cutoff, {graph['nodes']:,} nodes, {graph['edges']:,} edges,
{graph['node_types']} node and {graph['edge_types']} edge types (relbench's
`make_pkey_fkey_graph`, text columns left out, times in unix seconds).

Patterns: *dnf* = one epoch over the driver-dnf train table ({graph['dnf_seeds']:,} driver
seeds, each at its own time), batch 512, shuffled; *pretrain* = {PRETRAIN_BATCHES} batches
of 64 `results` rows (at their own time; the pool is the {graph['pretrain_seed_pool']:,}
rows before the validation cutoff); *budget* = `BudgetLoader`, 64 `results` seeds, 64
nodes per node type per hop, 3 hops. Generator seed {SEED}; median of {repeats} runs (in
brackets the best run, the least disturbed by other jobs), taken in several fresh
processes per configuration run in alternating order (`--rounds`): one process of the
same code measured 1.05 and another 1.93 ms/batch here, so a single process per
configuration cannot rank them.
*Whole loader* includes gathering every node's TensorFrame row and time and building the
`HeteroData`; *sampling alone* is `loader.sample_ids` (ids and local edges only). Peak
RSS is the child process's maximum resident set (in brackets: before the timed loop).

{md}

Against pyg-lib 0.9.0 (PyG `NeighborLoader`, 1 thread, same machine; measured earlier):

| measurement | pyg-lib 0.9.0 | rdlviz |
|---|---|---|
{cmp}

Notes:
- Batches are identical for any number of threads and workers (tested); only speed
  differs. With 2 threads, the next batch is sampled on a background thread while the
  current batch's features are gathered (the kernels release the GIL), and with more a
  batch is also split across threads -- but only when the kernels' measured CPU time
  for such a batch is at least `sampler.PARALLEL_MIN_S` (1 ms): a hand-off to another
  thread costs ~0.1 ms idle and more under load, so small batches (the pretraining
  pattern: ~0.4 ms in the kernels) run inline, exactly as with 1 thread.
- With worker processes, workers sample the ids and write them into a slot of a
  shared-memory ring allocated once per set of workers; the message back holds only
  the block's length and two small count matrices, and this process copies the block
  out, frees the slot and gathers the features. (Before: a fresh shared-memory segment
  per batch, passed by file descriptor, which cost more than sampling a small batch.)
  Workers still cost a copy and two process hand-offs per batch, so, as for threads, an
  epoch whose batches are estimated below `PARALLEL_MIN_S` of kernel time is sampled in
  this process instead (the pretraining pattern's 2-worker row); a busy machine (headroom
  near 1) does not repay workers on big batches either.
- *nodes/seed* matches pyg-lib's (~143 for [128, 64]), as the semantics do: disjoint
  trees, per-tree deduplication, neighbours with time <= seed time.
"""


if __name__ == "__main__":
    main()
