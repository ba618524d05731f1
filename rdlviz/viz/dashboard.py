"""``dashboard(dataset)``: the whole pretraining workflow in one notebook widget.

Five tabs, in pipeline order, each enabled by the step before it:

1. **Tables** -- the :func:`~rdlviz.viz.table_picker` (tables, feature columns, semantic
   types), a text-encoding menu and a *Build graph* button that calls
   ``rdlviz.build_graph(db, text=..., **picker.value)``;
2. **Schema** -- :func:`~rdlviz.viz.schema` of the database;
3. **Subgraph** -- table and row menus and the :func:`~rdlviz.viz.subgraph` preview of
   the chosen row (with its time slider);
4. **Pretrain** -- a steps box and a *Pretrain N steps* button that runs
   :func:`rdlviz.pretrain` on the built graph with a :class:`~rdlviz.viz.LossMonitor`
   attached, so the losses draw live while it trains;
5. **Embeddings** -- the :func:`~rdlviz.viz.embeddings` projector of the finished run.

Everything a button does is also a method (:meth:`DashboardView.build_graph`,
:meth:`DashboardView.pretrain`), and the results stay on the object (``.graph``,
``.run``, ``.monitor``, ``.preview``, ``.projector``), so a notebook can carry on from
them in code. A failing step shows its error in the tab's status line (and keeps it in
``.errors``) instead of vanishing into the widget log.

Buttons run in the kernel: while pretraining runs the kernel is busy, but the loss plot
still updates, because widget messages are sent as the callbacks emit them.

The static form (no widget frontend, or ``.to_html``) is the schema, then -- once they
exist -- the subgraph preview, the loss curves and the projector, one after the other.
"""

from __future__ import annotations

import html
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import plotly.graph_objects as go

from rdlviz.errors import ConfigError
from rdlviz.viz._view import View, static_html_fragment, _ship_plotlyjs_now
from rdlviz.viz.subgraph import format_time

__all__ = ["dashboard", "DashboardView"]

_TAB_TITLES = ("1 · Tables", "2 · Schema", "3 · Subgraph", "4 · Pretrain", "5 · Embeddings")
#: Rows offered in the subgraph preview's row menu (evenly spaced over the table).
ROW_CHOICES = 200


def _status(kind: str, text: str) -> str:
    color = {"ok": "#1b5e20", "error": "#b00020", "info": "#444444", "busy": "#8a5a00"}[kind]
    mark = {"ok": "✔ ", "error": "✖ ", "info": "", "busy": "… "}[kind]
    return f"<div style='color:{color};font-size:13px;margin:4px 0'>{mark}{text}</div>"


class DashboardView(View):
    """The pretraining dashboard (see :func:`dashboard`).

    Attributes:
        dataset: the RelBench dataset.
        picker / schema_view: the table picker and schema views.
        graph: the built :class:`rdlviz.Graph` (``None`` before *Build graph*).
        preview: the current :class:`~rdlviz.viz.subgraph.SubgraphView`.
        monitor: the :class:`~rdlviz.viz.LossMonitor` of the last pretraining.
        run: the last :class:`~rdlviz.pretrain.run.PretrainRun`.
        projector: the :class:`~rdlviz.viz.embeddings.EmbeddingView` of ``run``.
        errors: messages of the steps that failed.
        build_button / pretrain_button / steps / text / table_dropdown / row_dropdown /
        tabs: the controls (click or set them from code).
    """

    def __init__(self, dataset, graph=None, *, text: str = "hash", steps: int = 200, channels: int = 64,
                 num_neighbors: Sequence[int] = (16, 8), batch_size: int = 64, eval_every: int = 25,
                 max_points: Optional[int] = 3_000, fanouts: Sequence[int] = (8, 4),
                 pretrain_kwargs: Optional[Dict[str, Any]] = None) -> None:
        import ipywidgets as w

        from rdlviz.data.load import load
        from rdlviz.viz.picker import table_picker
        from rdlviz.viz.schema import schema

        if steps < 1:
            raise ConfigError(f"dashboard: steps must be >= 1, got {steps}")
        self.dataset = load(dataset)
        self.picker = table_picker(self.dataset)
        self.schema_view = schema(self.dataset)
        self.name = self.schema_view.name
        self.graph = None
        self.preview = None
        self.monitor = None
        self.run = None
        self.projector = None
        self.errors: List[str] = []
        self._settings = dict(channels=int(channels), num_neighbors=tuple(int(k) for k in num_neighbors),
                              batch_size=int(batch_size), eval_every=int(eval_every))
        self._pretrain_kwargs = dict(pretrain_kwargs or {})
        self._max_points = max_points
        self._fanouts = tuple(int(k) for k in fanouts)

        # 1 · tables
        self.text = w.Dropdown(options=[("hashed n-grams (fast)", "hash"), ("MiniLM sentence embeddings", "minilm"),
                                        ("leave text out", "drop")], value=text, description="text columns",
                               style={"description_width": "90px"}, layout=w.Layout(width="330px"))
        self.build_button = w.Button(description="Build graph", button_style="primary", icon="sitemap",
                                     layout=w.Layout(width="160px"))
        self.build_button.on_click(lambda _: self.build_graph())
        self._graph_status = w.HTML(_status("info", "Choose tables and columns, then build the graph."))
        tab_tables = w.VBox([self.picker.widget, w.HBox([self.text, self.build_button]), self._graph_status])

        # 3 · subgraph
        self.table_dropdown = w.Dropdown(options=[], description="table", layout=w.Layout(width="280px"))
        self.row_dropdown = w.Dropdown(options=[], description="row", layout=w.Layout(width="420px"))
        self.table_dropdown.observe(lambda ch: self._on_table(ch["new"]), names="value")
        self.row_dropdown.observe(lambda ch: self._on_row(ch["new"]), names="value")
        self._preview_box = w.VBox([w.HTML(_status("info", "Build the graph first (tab 1)."))])
        tab_subgraph = w.VBox([w.HBox([self.table_dropdown, self.row_dropdown]), self._preview_box])

        # 4 · pretrain
        self.steps = w.BoundedIntText(value=int(steps), min=1, max=1_000_000, description="steps",
                                      layout=w.Layout(width="200px"))
        self.pretrain_button = w.Button(description=f"Pretrain {int(steps)} steps", button_style="success",
                                        icon="play", disabled=True, layout=w.Layout(width="200px"))
        self.steps.observe(lambda ch: setattr(self.pretrain_button, "description", f"Pretrain {ch['new']} steps"),
                           names="value")
        self.pretrain_button.on_click(lambda _: self.pretrain())
        self._pretrain_status = w.HTML(_status("info", "Build the graph first (tab 1)."))
        self._loss_box = w.VBox()
        tab_pretrain = w.VBox([w.HBox([self.steps, self.pretrain_button]), self._pretrain_status, self._loss_box])

        # 5 · embeddings
        self._proj_status = w.HTML(_status("info", "Pretrain first (tab 4); the projector of the run appears here."))
        self._proj_box = w.VBox()
        tab_proj = w.VBox([self._proj_status, self._proj_box])

        self.tabs = w.Tab(children=[tab_tables, self.schema_view.widget, tab_subgraph, tab_pretrain, tab_proj],
                          titles=list(_TAB_TITLES))
        self._container = w.VBox([
            w.HTML(f"<h3 style='margin:4px 0'>Pretraining dashboard: {html.escape(self.name)}</h3>"
                   "<div style='color:#555;font-size:13px'>tables → graph → subgraph preview → contrastive "
                   "pretraining → embedding projector</div>"),
            self.tabs])
        super().__init__(None, title=f"{self.name}: pretraining dashboard")
        if graph is not None:
            self._graph_ready(graph)

    # -- steps -----------------------------------------------------------------------------
    def _fail(self, where, step: str, exc: BaseException) -> None:
        msg = f"{step} failed: {type(exc).__name__}: {exc}"
        self.errors.append(msg + "\n" + "".join(traceback.format_exception(exc)[-3:]))
        where.value = _status("error", html.escape(msg).replace("\n", "<br>"))

    def build_graph(self):
        """Build the graph from the picker's choice (what *Build graph* does).

        Returns:
            The :class:`rdlviz.Graph`, or ``None`` if the choice cannot build one (the
            reason is shown in the status line and kept in ``.errors``).
        """
        from rdlviz.graph.build import build_graph

        self._graph_status.value = _status("busy", "building the graph …")
        self.build_button.disabled = True
        try:
            graph = build_graph(self.dataset, text=self.text.value, **self.picker.value)
        except Exception as e:  # shown to the user, not swallowed by the widget's event loop
            self._fail(self._graph_status, "building the graph", e)
            return None
        finally:
            self.build_button.disabled = False
        self._graph_ready(graph)
        self.tabs.selected_index = 2
        return graph

    def _graph_ready(self, graph) -> None:
        self.graph = graph
        n_nodes, n_edges = sum(graph.num_nodes.values()), sum(graph.num_edges.values())
        self._graph_status.value = _status(
            "ok", f"graph built: {len(graph.node_types)} node types, {n_nodes:,} nodes, {n_edges:,} edges "
                  f"({graph.build_seconds:.1f} s{', from cache' if graph.from_cache else ''}). "
                  "Preview a row's subgraph in tab 3, pretrain in tab 4.")
        self.pretrain_button.disabled = False
        self._pretrain_status.value = _status(
            "info", f"Pretrains on rows up to the validation cutoff; {self._settings['channels']} channels, "
                    f"fan-outs {list(self._settings['num_neighbors'])}.")
        # a table with time first: its rows have a past and a future to show
        timed = [t for t in graph.node_types if "time" in graph.data[t]]
        order = timed + [t for t in graph.node_types if t not in timed]
        self.table_dropdown.options = order
        if self.table_dropdown.value != order[0]:
            self.table_dropdown.value = order[0]  # fires _on_table
        else:
            self._on_table(order[0])

    def _on_table(self, table: Optional[str]) -> None:
        if table is None or self.graph is None:
            return
        n = self.graph.num_nodes[table]
        rows = np.unique(np.linspace(0, n - 1, min(n, ROW_CHOICES)).round().astype(int)) if n else []
        timed = "time" in self.graph.data[table]
        times = self.graph.data[table].time if timed else None
        opts = [(f"row {r}" + (f" · {format_time(int(times[r]))}" if timed else ""), int(r)) for r in rows]
        # the middle row: early rows have little past, late ones little future
        choice = opts[len(opts) // 2][1] if opts else None
        self.row_dropdown.options = opts
        if choice is not None:
            if self.row_dropdown.value != choice:
                self.row_dropdown.value = choice  # fires _on_row
            else:
                self._on_row(choice)

    def _on_row(self, row: Optional[int]) -> None:
        if row is None or self.graph is None or self.table_dropdown.value is None:
            return
        self.show_subgraph(self.table_dropdown.value, int(row))

    def show_subgraph(self, table: str, row: int, time=None):
        """Preview ``row`` of ``table`` (what the table and row menus do)."""
        from rdlviz.viz.subgraph import subgraph

        import ipywidgets as w

        if self.graph is None:
            raise ConfigError("build the graph first (dashboard.build_graph())")
        try:
            self.preview = subgraph(self.graph, table, row, time=time, fanouts=self._fanouts)
            self._preview_box.children = (self.preview.widget,)
        except Exception as e:
            status = w.HTML()
            self._fail(status, "the subgraph preview", e)
            self._preview_box.children = (status,)
            return None
        return self.preview

    def pretrain(self, steps: Optional[int] = None):
        """Pretrain on the built graph with live losses, then project the embeddings
        (what *Pretrain N steps* does).

        Args:
            steps: optimisation steps (default: the steps box).

        Returns:
            The :class:`~rdlviz.pretrain.run.PretrainRun`, or ``None`` if it failed.
        """
        import rdlviz
        from rdlviz.viz.embeddings import embeddings
        from rdlviz.viz.losses import LossMonitor

        if self.graph is None:
            self._pretrain_status.value = _status("error", "build the graph first (tab 1)")
            return None
        if steps is not None:
            self.steps.value = int(steps)
        n = int(self.steps.value)
        self.monitor = LossMonitor(auto_display=False, title=f"Pretraining losses on {self.name}")
        self._loss_box.children = (self.monitor.widget,)
        self.tabs.selected_index = 3
        self.pretrain_button.disabled = True
        self._pretrain_status.value = _status("busy", f"pretraining {n} steps …")
        kw = dict(self._settings)
        kw["eval_every"] = max(1, min(kw["eval_every"], n))
        kw.update(self._pretrain_kwargs)
        try:
            run = rdlviz.pretrain(self.graph, steps=n, progress=False, callbacks=[self.monitor], **kw)
        except Exception as e:
            self._fail(self._pretrain_status, "pretraining", e)
            return None
        finally:
            self.pretrain_button.disabled = False
        self.run = run
        self._pretrain_status.value = _status(
            "ok", f"{run.step} steps in {run.seconds.get('total', 0):.1f} s, best validation loss "
                  f"{run.best_val:.3f} at step {run.best_step} (stopped by {run.stopped}).")
        self._proj_status.value = _status("busy", "embedding rows and projecting them with UMAP …")
        try:
            self.projector = embeddings(run, self.graph, max_points=self._max_points, seed=0)
            self._proj_box.children = (self.projector.widget,)
            self._proj_status.value = _status("ok", html.escape(self.projector.title))
        except Exception as e:
            self._fail(self._proj_status, "the projector", e)
        else:
            self.tabs.selected_index = 4
        return run

    # -- View ------------------------------------------------------------------------------
    def figures(self) -> List[go.Figure]:
        """The static figures: schema, then the subgraph preview, losses and projector
        that exist so far."""
        figs = [self.schema_view.figure]
        for v in (self.preview, self.monitor, self.projector):
            if v is not None:
                figs.append(v.figure)
        return figs

    def _build_figure(self) -> go.Figure:
        return self.schema_view.figure

    def _build_widget(self):
        return self._container

    def _static_html(self) -> str:
        figs = self.figures()
        first = _ship_plotlyjs_now()
        return "".join(static_html_fragment(f, include_plotlyjs=first and i == 0) for i, f in enumerate(figs))

    def to_html(self, path: Optional[Union[str, Path]] = None, *, include_plotlyjs: bool = True):
        """Export the dashboard's figures (schema, subgraph, losses, projector) as one
        standalone page, plotly.js inline once.

        Returns:
            The path written, or the HTML text when ``path`` is ``None``.
        """
        from rdlviz.viz.report import figure_html, html_page

        names = ["Schema", "Subgraph preview", "Pretraining losses", "Embedding projector"]
        present = [True, self.preview is not None, self.monitor is not None, self.projector is not None]
        sections = [(f"s{i}", n, figure_html(f)) for i, (n, f) in
                    enumerate(zip([n for n, p in zip(names, present) if p], self.figures()))]
        text = html_page(self.title, "", sections)
        if not include_plotlyjs:
            from plotly.offline import get_plotlyjs

            text = text.replace(f"<script>{get_plotlyjs()}</script>", "", 1)
        if path is None:
            return text
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def _summary(self) -> str:
        state = ("graph not built" if self.graph is None else
                 "graph built" if self.run is None else f"pretrained {self.run.step} steps")
        return f"{self.title} ({state})"


def dashboard(dataset, graph=None, *, text: str = "hash", steps: int = 200, channels: int = 64,
              num_neighbors: Sequence[int] = (16, 8), batch_size: int = 64, eval_every: int = 25,
              max_points: Optional[int] = 3_000, fanouts: Sequence[int] = (8, 4),
              pretrain_kwargs: Optional[Dict[str, Any]] = None) -> DashboardView:
    """One widget for the pretraining workflow: tables → graph → subgraph → pretrain → projector.

    Args:
        dataset: the database (``rdlviz.load(...)`` or a name / path for it).
        graph: an already built graph (skips *Build graph*; the picker still works).
        text: the initial text-encoding choice (``"hash"``, ``"minilm"``, ``"drop"``).
        steps: the initial pretraining budget (the steps box).
        channels / num_neighbors / batch_size / eval_every: passed to :func:`rdlviz.pretrain`.
        max_points: rows drawn in the projector.
        fanouts: fan-outs of the subgraph preview.
        pretrain_kwargs: any other :func:`rdlviz.pretrain` arguments.

    Returns:
        A :class:`DashboardView`.

    Example:
        >>> rdlviz.viz.dashboard("rel-lahman", steps=rdlviz.budget(500, 20))
    """
    return DashboardView(dataset, graph, text=text, steps=steps, channels=channels, num_neighbors=num_neighbors,
                         batch_size=batch_size, eval_every=eval_every, max_points=max_points, fanouts=fanouts,
                         pretrain_kwargs=pretrain_kwargs)
