"""Shared bits of the benchmark scripts: machine description, peak memory, result files."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
from pathlib import Path
from typing import Any, Dict

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> Dict[str, Any]:
    """CPU model, cores, torch threads, load average, date: what a number depends on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def add_run_args(parser) -> None:
    """The options every training benchmark shares: text handling, seed, threads, quiet."""
    parser.add_argument("--text", default="hash")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--quiet", action="store_true")


def parse_run_args(parser):
    """``parser.parse_args()``, with ``--threads`` applied to torch."""
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write(name: str, payload: Dict[str, Any], markdown: str) -> None:
    """Write ``results/<name>.json`` and ``results/<name>.md``."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(markdown)
    print(f"wrote {RESULTS / (name + '.json')} and {RESULTS / (name + '.md')}")
