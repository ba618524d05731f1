"""Loss curves of contrastive pretraining: live while training, static afterwards.

``LossMonitor`` is a pretraining callback *and* a view. Give it to
:func:`rdlviz.pretrain` (``callbacks=[mon]``); the loop calls

* ``on_step(step, logs)`` after every optimiser step,
* ``on_eval(step, logs)`` after every validation pass,
* ``on_end(run)`` once, with the finished run,

where ``logs`` holds one float per objective (``row``, ``link``, ``context``,
``reconstruction``) plus ``total``, ``time`` (seconds since start) and ``lr``.

Drawing must not slow training down. A step only appends numbers to Python lists; the
figure -- a Plotly ``FigureWidget`` updated in place -- is redrawn at most every
``every_ms`` milliseconds (and at every validation pass and at the end), all traces in
one ``batch_update`` message. If a redraw itself gets slow (tens of thousands of points)
the interval stretches to ten times the redraw's cost, so plotting stays under ~10% of
the loop's time.

:func:`losses` draws the same figure from a finished run's ``history`` (or a DataFrame /
CSV / JSON of it) -- the static form, also what ``LossMonitor.figure`` returns.

Conventions of the plot: one colour per objective in every loss plot
(:data:`rdlviz.viz.palette.OBJECTIVE_COLORS`), solid for training, dashed for
validation, a dotted line at 1.0 labelled "chance level" -- each contrastive loss is
divided by log(K+1), so a model that ranks the positive at random scores about 1
(Peleska & Sir, 2025) -- and buttons to switch the y axis between linear and log.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import pandas as pd
import plotly.graph_objects as go

from rdlviz.errors import ConfigError
from rdlviz.viz._view import View, figure_widget, widgets_usable
from rdlviz.viz.palette import objective_color

__all__ = ["losses", "LossesView", "LossMonitor", "OBJECTIVE_ORDER", "META_KEYS"]

#: Objectives in display order; others follow in order of appearance.
OBJECTIVE_ORDER = ("row", "link", "context", "reconstruction", "total")
#: Log keys that are not losses.
META_KEYS = frozenset({"step", "split", "time", "lr", "epoch", "seconds"})
_SPLITS = ("train", "val")
_SPLIT_NAME = {"train": "train", "val": "validation"}


def _ordered(names: Iterable[str]) -> List[str]:
    names = list(dict.fromkeys(names))
    known = [o for o in OBJECTIVE_ORDER if o in names]
    return known + [n for n in names if n not in OBJECTIVE_ORDER]


def _is_number(v: Any) -> bool:
    try:
        return not isinstance(v, (bool, str)) and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


class LossesView(View):
    """Loss curves per objective and split (see :func:`losses` and :class:`LossMonitor`).

    Args:
        objectives: objectives to draw, in order (default: every numeric log key except
            ``step``/``split``/``time``/``lr``, as they appear).
        log_y: start with a log-scale y axis (a button switches it either way).
        chance_level: draw the dotted line at 1.0.
        title: figure title.
        height: figure height in pixels.

    Attributes:
        points: ``{(objective, split): (steps, values, seconds)}``, every point recorded.
    """

    def __init__(self, objectives: Optional[Sequence[str]] = None, *, log_y: bool = False,
                 chance_level: bool = True, title: str = "Pretraining losses", height: int = 440,
                 live: bool = False) -> None:
        self._objectives: Optional[List[str]] = list(objectives) if objectives is not None else None
        if self._objectives is not None:
            bad = [o for o in self._objectives if o in META_KEYS]
            if bad:
                raise ConfigError(f"objectives: {bad} are log fields, not losses; "
                                  f"objectives look like {list(OBJECTIVE_ORDER)}")
        self.points: Dict[Tuple[str, str], Tuple[List[float], List[float], List[float]]] = {}
        self._order: List[str] = []  # objectives seen, in display order
        self._base_title = title
        self._log_y = bool(log_y)
        self._chance = bool(chance_level)
        self._height = int(height)
        self._traces: Dict[Tuple[str, str], Any] = {}
        self._dirty: set = set()
        self._last_step: Optional[int] = None
        self._last_time: Optional[float] = None
        self._best_step: Optional[int] = None
        fig = self._empty_figure()
        self._live_fig = fig
        if live:
            try:
                self._live_fig = figure_widget(fig)
            except ImportError:
                self._live_fig = fig  # no anywidget: keep a static figure, still complete
        super().__init__(None, title=title)

    # -- data ----------------------------------------------------------------------------
    def _record(self, step: int, logs: Mapping[str, Any], split: str) -> None:
        t = logs.get("time")
        t = float(t) if _is_number(t) else float("nan")
        keys = self._objectives if self._objectives is not None else [
            k for k, v in logs.items() if k not in META_KEYS and _is_number(v)]
        for k in keys:
            v = logs.get(k)
            if not _is_number(v):
                continue
            key = (k, split)
            xs, ys, ts = self.points.setdefault(key, ([], [], []))
            xs.append(int(step))
            ys.append(float(v))
            ts.append(t)
            self._dirty.add(key)
            if k not in self._order:
                self._order = _ordered(self._order + [k])
        self._last_step = int(step)
        if t == t:
            self._last_time = t

    def _load_history(self, history: pd.DataFrame) -> None:
        """Replace all points with those of a ``history`` DataFrame."""
        if "step" not in history.columns:
            raise ConfigError(f"a loss history needs a 'step' column; got columns {list(history.columns)}")
        self.points.clear()
        self._order = []
        split = history["split"] if "split" in history.columns else pd.Series("train", index=history.index)
        for sp in _SPLITS:
            part = history[split == sp]
            for rec in part.to_dict(orient="records"):
                self._record(int(rec["step"]), rec, sp)
        unknown = sorted(set(split.unique()) - set(_SPLITS))
        if unknown:
            raise ConfigError(f"history 'split' values must be 'train' or 'val'; got also {unknown}")

    # -- drawing -------------------------------------------------------------------------
    def _empty_figure(self) -> go.Figure:
        fig = go.Figure()
        fig.update_layout(
            title=dict(text=self._title_text(), x=0.01, xanchor="left"),
            height=self._height, margin=dict(l=70, r=30, t=90, b=60),
            plot_bgcolor="white", paper_bgcolor="white", hovermode="closest",
            xaxis=dict(title="training step", showgrid=True, gridcolor="#eeeeee", zeroline=False,
                       rangemode="tozero"),
            yaxis=dict(title="loss (contrastive: 1.0 = chance)", showgrid=True, gridcolor="#eeeeee",
                       type="log" if self._log_y else "linear", zeroline=False),
            legend=dict(title="objective (split)", font_size=11),
            updatemenus=[dict(
                type="buttons", direction="left", x=1.0, xanchor="right", y=1.02, yanchor="bottom",
                showactive=True, active=1 if self._log_y else 0, pad=dict(r=2, t=2),
                buttons=[dict(label="linear y", method="relayout", args=[{"yaxis.type": "linear"}]),
                         dict(label="log y", method="relayout", args=[{"yaxis.type": "log"}])],
            )],
        )
        if self._chance:
            fig.add_hline(y=1.0, line=dict(color="#555555", width=1.2, dash="dot"),
                          annotation_text="chance level", annotation_position="top right",
                          annotation_font=dict(size=11, color="#555555"))
        return fig

    def _title_text(self) -> str:
        sub = "solid: training batches; dashed: validation"
        if self._last_step is not None:
            sub += f" · step {self._last_step:,}"
            if self._last_time is not None:
                sub += f" · {self._last_time:,.0f} s"
        if self._best_step:
            sub += f" · best validation at step {self._best_step:,}"
        return f"{self._base_title}<br><sup>{sub}</sup>"

    def _trace_for(self, fig, key: Tuple[str, str]):
        """The trace drawing ``key``, added to ``fig`` on first use."""
        if key in self._traces:
            return self._traces[key]
        obj, split = key
        extra = [o for o in self._order if o not in OBJECTIVE_ORDER]
        color = objective_color(obj, extra)
        fig.add_trace(go.Scatter(
            x=[], y=[], customdata=[], mode="lines" if split == "train" else "lines+markers",
            name=f"{obj} ({_SPLIT_NAME[split]})", legendgroup=obj,
            line=dict(color=color, width=2.2 if obj == "total" else 1.6,
                      dash="solid" if split == "train" else "dash"),
            marker=dict(size=6, color=color),
            opacity=0.9 if split == "train" else 1.0,
            hovertemplate=(f"<b>{obj}</b> ({_SPLIT_NAME[split]})<br>step %{{x}}<br>loss %{{y:.4f}}"
                           "<br>%{customdata:.1f} s since start<extra></extra>"),
        ))
        self._traces[key] = fig.data[-1]
        return self._traces[key]

    def _sorted_keys(self) -> List[Tuple[str, str]]:
        return [(o, s) for o in self._order for s in _SPLITS if (o, s) in self.points]

    def _sync(self, fig, keys: Iterable[Tuple[str, str]]) -> None:
        """Copy the recorded points of ``keys`` into ``fig`` in one batched update."""
        wanted = set(keys)
        keys = [k for k in self._sorted_keys() if k in wanted]
        for k in keys:  # adding traces cannot happen inside batch_update
            self._trace_for(fig, k)
        with fig.batch_update():
            for k in keys:
                xs, ys, ts = self.points[k]
                tr = self._traces[k]
                tr.x, tr.y, tr.customdata = list(xs), list(ys), list(ts)
            fig.layout.title.text = self._title_text()

    def _build_figure(self) -> go.Figure:
        # A fresh static copy holding every point.
        saved, self._traces = self._traces, {}
        try:
            fig = self._empty_figure()
            self._sync(fig, self.points.keys())
            if self._best_step:
                fig.add_vline(x=self._best_step, line=dict(color="#999999", width=1, dash="dash"),
                              annotation_text="best validation", annotation_position="top right",
                              annotation_font=dict(size=10, color="#777777"))
        finally:
            self._traces = saved
        return fig

    def _summary(self) -> str:
        n = sum(len(v[0]) for v in self.points.values())
        objs = ", ".join(self._order) or "no objectives yet"
        last = f", last step {self._last_step}" if self._last_step is not None else ""
        return f"{self._base_title}: {objs}; {n} points{last}"


class LossMonitor(LossesView):
    """Live loss curves during pretraining; a callback for :func:`rdlviz.pretrain`.

    Example:
        >>> mon = rdlviz.viz.LossMonitor()
        >>> run = rdlviz.pretrain(graph, steps=500, callbacks=[mon])   # plot updates live
        >>> mon.to_html("losses.html")                                 # the final figure

    Args:
        objectives: objectives to draw (default: every loss in the logs).
        every_ms: least time between two redraws, in milliseconds. Steps in between only
            record their numbers; validation passes and the end of the run always redraw.
        log_y: start with a log-scale y axis.
        chance_level: draw the dotted line at 1.0.
        auto_display: display the monitor on the first step if it has not been displayed
            yet (in a notebook), so ``callbacks=[LossMonitor()]`` is enough.
        title: figure title.
        height: figure height in pixels.

    Attributes:
        redraws: how many times the live figure was redrawn.
        plot_seconds: total seconds spent redrawing (the cost to the training loop).
        run: the finished run, after ``on_end``.
    """

    def __init__(self, objectives: Optional[Sequence[str]] = None, every_ms: float = 300.0, *,
                 log_y: bool = False, chance_level: bool = True, auto_display: bool = True,
                 title: str = "Pretraining losses", height: int = 440) -> None:
        if not every_ms >= 0:
            raise ConfigError(f"LossMonitor: every_ms must be >= 0 milliseconds, got {every_ms!r}")
        super().__init__(objectives, log_y=log_y, chance_level=chance_level, title=title,
                         height=height, live=True)
        self.every_ms = float(every_ms)
        self.auto_display = auto_display
        self.redraws = 0
        self.plot_seconds = 0.0
        self.run = None
        self._last_flush = -math.inf
        self._last_cost = 0.0
        self._clock: Callable[[], float] = time.perf_counter

    # -- callbacks -----------------------------------------------------------------------
    def on_step(self, step: int, logs: Mapping[str, Any]) -> None:
        """Record a training step; redraw if ``every_ms`` has passed since the last redraw."""
        self._maybe_display()
        self._record(step, logs, "train")
        now = self._clock()
        # Never spend more than ~10% of the wall time redrawing.
        interval = max(self.every_ms / 1000.0, 10.0 * self._last_cost)
        if now - self._last_flush >= interval:
            self.flush()

    def on_eval(self, step: int, logs: Mapping[str, Any]) -> None:
        """Record a validation pass and redraw."""
        self._maybe_display()
        self._record(step, logs, "val")
        self.flush()

    def on_end(self, run: Any = None) -> None:
        """Take the run's full history (authoritative, includes resumed steps) and redraw."""
        self.run = run
        history = getattr(run, "history", None)
        if isinstance(history, pd.DataFrame) and len(history):
            self._load_history(history)
            self._dirty = set(self.points)
        best = getattr(run, "best_step", None)
        self._best_step = int(best) if _is_number(best) and best > 0 else None
        self.flush()

    # -- drawing -------------------------------------------------------------------------
    def flush(self) -> None:
        """Redraw the live figure now with every point recorded so far."""
        t0 = self._clock()
        if self._dirty:
            self._sync(self._live_fig, self._dirty)
            self._dirty = set()
            self.redraws += 1
        t1 = self._clock()
        self._last_cost = t1 - t0
        self.plot_seconds += t1 - t0
        self._last_flush = t1

    def _maybe_display(self) -> None:
        if self.auto_display and not self._displayed and widgets_usable():
            from IPython.display import display

            self._displayed = True  # once, whatever the frontend does with it
            display(self)

    def _build_widget(self):
        if isinstance(self._live_fig, go.FigureWidget):
            return self._live_fig
        return figure_widget(self._live_fig)


def _history_of(obj: Any) -> pd.DataFrame:
    if isinstance(obj, pd.DataFrame):
        return obj
    history = getattr(obj, "history", None)
    if isinstance(history, pd.DataFrame):
        return history
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        if not path.exists():
            raise ConfigError(f"losses: {path} does not exist")
        if path.suffix == ".csv":
            return pd.read_csv(path)
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".json":
            return pd.read_json(path)
        raise ConfigError(f"losses: cannot read {path.name}; give a .csv, .parquet or .json history")
    if isinstance(obj, Mapping) or isinstance(obj, list):
        return pd.DataFrame(obj)
    raise ConfigError(
        f"losses: expected a pretraining run (with .history), a DataFrame or a file, got "
        f"{type(obj).__name__}")


def losses(run_or_history: Union[Any, pd.DataFrame, str, Path], objectives: Optional[Sequence[str]] = None,
           *, log_y: bool = False, chance_level: bool = True, title: str = "Pretraining losses",
           height: int = 440) -> LossesView:
    """Plot the loss curves of a finished pretraining run.

    Args:
        run_or_history: a run (anything with a ``history`` DataFrame, e.g. from
            :func:`rdlviz.pretrain`), the DataFrame itself (columns ``step``, ``split``
            in {"train", "val"}, ``time`` and one column per objective and ``total``), a
            list of such records, or a ``.csv`` / ``.parquet`` / ``.json`` file of it.
        objectives: objectives to draw (default: all loss columns).
        log_y: start with a log-scale y axis.
        chance_level: draw the dotted line at 1.0.
        title: figure title.
        height: figure height in pixels.

    Returns:
        A :class:`LossesView`.
    """
    if isinstance(run_or_history, LossesView):
        return run_or_history
    history = _history_of(run_or_history)
    view = LossesView(objectives, log_y=log_y, chance_level=chance_level, title=title, height=height)
    view._load_history(history)
    best = getattr(run_or_history, "best_step", None)
    view._best_step = int(best) if _is_number(best) and best > 0 else None
    if not view.points:
        raise ConfigError("losses: the history has no loss values to plot "
                          f"(columns: {list(history.columns)})")
    return view
