"""Turning fine-tuning results into the comparison table ``rdlviz.viz.compare`` draws.

The table is the shape ``benchmarks/`` writes (``{"tasks": {task: {"metric",
"higher_is_better", "variants": {variant: {"mean", "std", "per_seed", "seconds"}}}}}``),
so a notebook's handful of runs and a benchmark's results file are read the same way.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

import numpy as np

from rdlviz.errors import ConfigError
from rdlviz.finetune.result import FinetuneResult

__all__ = ["comparison"]

#: ``FinetuneResult.mode`` -> variant name in the comparison table.
VARIANT_OF_MODE = {"scratch": "scratch", "probe": "probe", "full": "finetune"}

Results = Union[Iterable[FinetuneResult], Mapping[str, Union[FinetuneResult, Iterable[FinetuneResult]]]]


def comparison(results: Results, database: Optional[str] = None) -> Dict[str, Any]:
    """Summarise runs as ``{task: variant: mean ± std over runs}`` (test metric).

    Args:
        results: ``FinetuneResult`` objects (the variant is named after each run's mode:
            ``scratch``, ``probe``, ``finetune``), or ``{variant: result or [results]}`` to
            name variants yourself (e.g. ``"random_probe"``). Several runs of one
            task and variant (different seeds) give the mean and std (ddof=1).
        database: written into the table.

    Example:
        >>> runs = [rdlviz.finetune(db, "player-allstar", backbone=run, mode=m) for m in ("scratch", "full")]
        >>> rdlviz.viz.compare(rdlviz.finetune.comparison(runs))
    """
    pairs: List[tuple] = []
    if isinstance(results, Mapping):
        for variant, rs in results.items():
            for r in ([rs] if isinstance(rs, FinetuneResult) else list(rs)):
                pairs.append((str(variant), r))
    else:
        for r in results:
            if not isinstance(r, FinetuneResult):
                raise ConfigError(f"comparison: expected FinetuneResult objects, got {type(r).__name__}")
            pairs.append((VARIANT_OF_MODE.get(r.mode, r.mode), r))
    if not pairs:
        raise ConfigError("comparison: no results given")
    tasks: Dict[str, Any] = {}
    for variant, r in pairs:
        if not isinstance(r, FinetuneResult):
            raise ConfigError(f"comparison: variant '{variant}' holds a {type(r).__name__}, not a FinetuneResult")
        t = tasks.setdefault(r.task, {"metric": r.metric, "higher_is_better": r.higher_is_better, "runs": {}})
        if t["metric"] != r.metric:
            raise ConfigError(f"comparison: task '{r.task}' mixes metrics {t['metric']!r} and {r.metric!r}")
        t["runs"].setdefault(variant, []).append(r)
    out: Dict[str, Any] = {"database": database, "seeds": sorted({r.config.get("seed") for _, r in pairs
                                                                   if r.config.get("seed") is not None}),
                           "tasks": {}}
    for task, t in tasks.items():
        variants = {}
        for variant, rs in t["runs"].items():
            xs = [r.test_score for r in rs]
            variants[variant] = {"mean": float(np.mean(xs)),
                                 "std": float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0,
                                 "per_seed": xs,
                                 "seconds": float(np.mean([r.seconds.get("total", np.nan) for r in rs]))}
        out["tasks"][task] = {"metric": t["metric"], "higher_is_better": t["higher_is_better"],
                              "variants": variants}
    return out
