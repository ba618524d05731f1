"""``compare(results)``: does pretraining pay off? Scratch vs probe vs fine-tuned, per task.

One subplot per task. For each variant -- ``random_probe`` (a head on a frozen,
*untrained* backbone: the floor any pretraining must beat), ``scratch`` (B),
``probe`` (P: frozen pretrained backbone + head), ``finetune`` (P&F: pretrained, then
everything trained) -- a large marker at the mean over seeds with an error bar of one
standard deviation, and the individual seeds as small open circles beside it, so a
difference can be judged against the spread. The y axis names the metric and its
direction ("higher is better" / "lower is better"), because AUROC and MAE point opposite
ways. Variant colours are fixed (:data:`rdlviz.viz.palette.VARIANT_COLORS`).

The input is the comparison the fine-tuning benchmarks write (a dict, or a path to its
JSON)::

    {"database": "rel-f1", "seeds": [0, 1, 2], "machine": "...",
     "tasks": {"driver-dnf": {"metric": "roc_auc", "higher_is_better": true,
                              "variants": {"scratch": {"mean": .., "std": .., "per_seed": [..],
                                                        "seconds": ..}, ...}}}}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Mapping, Union

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rdlviz.errors import ConfigError
from rdlviz.viz._view import View
from rdlviz.viz.palette import VARIANT_LABELS, variant_color

__all__ = ["compare", "CompareView", "VARIANT_ORDER", "METRIC_NAMES"]

#: Display order of the variants: the floor first, then B, P, P&F.
VARIANT_ORDER = ("random_probe", "scratch", "probe", "finetune")

#: How metric keys are written on axes.
METRIC_NAMES = {
    "roc_auc": "ROC-AUC", "auroc": "ROC-AUC", "average_precision": "average precision",
    "accuracy": "accuracy", "f1": "F1", "mae": "MAE", "nmae": "normalised MAE", "rmse": "RMSE",
    "mse": "MSE", "r2": "R²", "map": "MAP@k", "link_prediction_map": "MAP@k",
}

_SHORT = {"random_probe": "random-init<br>probe", "scratch": "scratch<br>(B)",
          "probe": "probe<br>(P)", "finetune": "fine-tuned<br>(P&F)"}


def _is_runs(results: Any) -> bool:
    """A list of ``FinetuneResult`` objects, or ``{variant: result(s)}``, rather than a table."""
    from rdlviz.finetune.result import FinetuneResult

    if isinstance(results, (list, tuple)):
        return bool(results) and all(isinstance(r, FinetuneResult) for r in results)
    if isinstance(results, Mapping) and "tasks" not in results and results:
        return all(isinstance(v, FinetuneResult) or (isinstance(v, (list, tuple)) and v
                   and all(isinstance(r, FinetuneResult) for r in v)) for v in results.values())
    return False


def _num(v: Any, what: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"compare: {what} must be a number, got {v!r}") from None
    return f


def _load(results: Union[Mapping, str, Path]) -> Dict[str, Any]:
    if _is_runs(results):
        from rdlviz.finetune.comparison import comparison

        results = comparison(results)
    if isinstance(results, (str, Path)):
        path = Path(results)
        if not path.exists():
            raise ConfigError(f"compare: results file {path} does not exist")
        try:
            results = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"compare: {path} is not valid JSON ({e})") from None
    if not isinstance(results, Mapping):
        raise ConfigError(f"compare: expected a results dict or a JSON path, got {type(results).__name__}")
    tasks = results.get("tasks")
    if not isinstance(tasks, Mapping) or not tasks:
        raise ConfigError("compare: results need a non-empty 'tasks' mapping "
                          "{task: {'metric', 'higher_is_better', 'variants'}}")
    clean: Dict[str, Any] = {}
    for task, spec in tasks.items():
        variants = spec.get("variants") if isinstance(spec, Mapping) else None
        if not isinstance(variants, Mapping) or not variants:
            raise ConfigError(f"compare: task '{task}' has no 'variants' "
                              f"(expected some of {list(VARIANT_ORDER)})")
        vs = {}
        for name, v in variants.items():
            if not isinstance(v, Mapping) or "mean" not in v:
                raise ConfigError(f"compare: task '{task}', variant '{name}' needs at least a 'mean'")
            per_seed = [_num(x, f"task '{task}', variant '{name}', per_seed value") for x in v.get("per_seed") or []]
            if v.get("std") is not None:
                std = _num(v["std"], f"task '{task}', variant '{name}', std")
            elif len(per_seed) > 1:
                std = float(pd.Series(per_seed).std(ddof=1))
            else:
                std = 0.0
            if std < 0 or math.isnan(std):
                raise ConfigError(f"compare: task '{task}', variant '{name}': std must be >= 0, got {std}")
            seconds = v.get("seconds")
            vs[name] = dict(mean=_num(v["mean"], f"task '{task}', variant '{name}', mean"), std=std,
                            per_seed=per_seed,
                            seconds=None if seconds is None else _num(seconds, f"task '{task}', variant '{name}', seconds"))
        order = [n for n in VARIANT_ORDER if n in vs] + sorted(n for n in vs if n not in VARIANT_ORDER)
        clean[task] = dict(metric=str(spec.get("metric", "score")),
                           higher_is_better=bool(spec.get("higher_is_better", True)),
                           variants={n: vs[n] for n in order})
    return dict(database=results.get("database"), seeds=list(results.get("seeds") or []),
                machine=results.get("machine"), tasks=clean)


def _axis_title(metric: str, higher: bool) -> str:
    name = METRIC_NAMES.get(metric.lower(), metric)
    return f"{name} {'↑' if higher else '↓'} ({'higher' if higher else 'lower'} is better)"


class CompareView(View):
    """Downstream results per task and variant (see :func:`compare`).

    Attributes:
        results: the validated results (variants in display order).
    """

    def __init__(self, results: Union[Mapping, str, Path], *, cols: int = 3, height_per_row: int = 380) -> None:
        self.results = _load(results)
        db = self.results["database"] or "downstream tasks"
        title = f"{db}: pretrained vs scratch, per task"
        self._cols, self._row_h = max(1, int(cols)), int(height_per_row)
        super().__init__(None, title=title)
        self._figure = self._draw()

    def table(self) -> pd.DataFrame:
        """The results as a tidy table: one row per (task, variant)."""
        rows = []
        for task, spec in self.results["tasks"].items():
            for name, v in spec["variants"].items():
                rows.append(dict(task=task, variant=name, metric=spec["metric"],
                                 higher_is_better=spec["higher_is_better"], mean=v["mean"], std=v["std"],
                                 seeds=len(v["per_seed"]), seconds=v["seconds"]))
        return pd.DataFrame(rows)

    def _summary(self) -> str:
        return f"{self.title}: {len(self.results['tasks'])} tasks"

    def _draw(self) -> go.Figure:
        tasks = self.results["tasks"]
        n = len(tasks)
        cols = min(self._cols, n)
        rows = math.ceil(n / cols)
        fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"<b>{t}</b>" for t in tasks],
                            horizontal_spacing=0.09 if cols > 1 else 0.0, vertical_spacing=0.18 if rows > 1 else 0.0)
        shown = set()
        n_seeds = sorted({len(v["per_seed"]) for s in tasks.values() for v in s["variants"].values()} - {0})
        for i, (task, spec) in enumerate(tasks.items()):
            r, c = i // cols + 1, i % cols + 1
            names = list(spec["variants"])
            metric = METRIC_NAMES.get(spec["metric"].lower(), spec["metric"])
            for j, name in enumerate(names):
                v = spec["variants"][name]
                color = variant_color(name)
                label = VARIANT_LABELS.get(name, name)
                secs = f"<br>{v['seconds']:,.1f} s per run" if v["seconds"] is not None else ""
                fig.add_trace(go.Scatter(
                    x=[j], y=[v["mean"]], mode="markers", name=label, legendgroup=name,
                    showlegend=name not in shown,
                    marker=dict(size=13, color=color, symbol="diamond", line=dict(width=1, color="#333333")),
                    error_y=dict(type="data", array=[v["std"]], visible=True, thickness=2, width=9,
                                 color=color),
                    hovertemplate=(f"<b>{label}</b> on {task}<br>{metric} %{{y:.4f}} ± {v['std']:.4f}"
                                   f" (mean ± std over {max(len(v['per_seed']), 1)} seed(s)){secs}<extra></extra>"),
                    customdata=[[task, name]],
                ), row=r, col=c)
                shown.add(name)
                if v["per_seed"]:
                    m = len(v["per_seed"])
                    seeds = self.results["seeds"] if len(self.results["seeds"]) == m else list(range(m))
                    fig.add_trace(go.Scatter(
                        x=[j + 0.22 + 0.05 * (k - (m - 1) / 2) for k in range(m)], y=v["per_seed"],
                        mode="markers", name=f"{label}: seeds", legendgroup=name, showlegend=False,
                        marker=dict(size=6, color="rgba(0,0,0,0)", line=dict(width=1.3, color=color)),
                        customdata=seeds,
                        hovertemplate=f"{label}<br>seed %{{customdata}}: {metric} %{{y:.4f}}<extra></extra>",
                    ), row=r, col=c)
            fig.update_xaxes(tickvals=list(range(len(names))), ticktext=[_SHORT.get(nm, nm) for nm in names],
                             range=[-0.6, len(names) - 0.3], showgrid=False, row=r, col=c)
            fig.update_yaxes(title_text=_axis_title(spec["metric"], spec["higher_is_better"]),
                             showgrid=True, gridcolor="#eeeeee", zeroline=False, row=r, col=c)
        sub = "mean ± 1 std over " + (f"{'/'.join(map(str, n_seeds))} seeds" if n_seeds else "seeds")
        sub += "; open circles: individual seeds"
        if self.results["machine"]:
            sub += f"; {self.results['machine']}"
        fig.update_layout(
            title=dict(text=f"{self.title}<br><sup>{sub}</sup>", x=0.01, xanchor="left"),
            height=self._row_h * rows + 150, margin=dict(l=70, r=30, t=110, b=50),
            plot_bgcolor="white", paper_bgcolor="white", hovermode="closest",
            legend=dict(orientation="h", x=0.0, y=-0.12 if rows == 1 else -0.06, yanchor="top", font_size=11),
        )
        return fig


def compare(results: Union[Mapping, str, Path], *, cols: int = 3, height_per_row: int = 380) -> CompareView:
    """Plot downstream results: each variant's mean ± std over seeds, one subplot per task.

    Args:
        results: the comparison dict (or a path to its JSON): ``{"database", "seeds",
            "machine", "tasks": {task: {"metric", "higher_is_better", "variants":
            {variant: {"mean", "std", "per_seed", "seconds"}}}}}``. Variants are any of
            ``random_probe``, ``scratch``, ``probe``, ``finetune`` (others are drawn
            after them). ``std`` defaults to the sample std of ``per_seed``. A list of
            :class:`~rdlviz.finetune.FinetuneResult` (or ``{variant: results}``) is
            summarised with :func:`rdlviz.finetune.comparison` first.
        cols: subplots per row.
        height_per_row: pixels per row of subplots.

    Returns:
        A :class:`CompareView` (``.table()`` gives the numbers as a DataFrame).

    Raises:
        ConfigError: the results are missing tasks, variants or means, or hold
            non-numbers.
    """
    return CompareView(results, cols=cols, height_per_row=height_per_row)
