"""``subgraph(graph, table, row)``: the temporal subgraph a model sees for one row.

Relational deep learning never looks at a whole database at once: to embed (or predict
for) a row at time ``t``, the sampler grows a tree of neighbours from that row -- fan-out
``k1`` at hop 1, ``k2`` at hop 2 -- and admits only rows whose time is ``<= t``. This view
draws exactly that tree, sampled by the same sampler training uses
(:func:`rdlviz.sampling.sample`), so what you see is what the model gets:

* nodes coloured by table (:func:`~rdlviz.viz.palette.table_colors`), laid out by hop:
  the seed row in the left column, hop 1 next, hop 2 after; the drawing is a tidy tree
  (each row sits beside the rows it led the sampler to), so a neighbourhood reads left
  to right;
* the foreign-key edges between sampled rows;
* hover text with each row's original values (:meth:`rdlviz.Graph.rows`) and its time;
* **the future, greyed out**: the same seed is sampled a second time with the same
  fan-outs and no time constraint (``time_attr=None``); the rows of that sample newer
  than ``t`` are drawn as hollow grey circles ("future: not visible at t") hanging from
  the row that would have led to them. They are what a sampler without the time
  constraint would leak into the example.

The live form adds a date slider under the plot: moving it re-samples at the new ``t``
and updates the Plotly ``FigureWidget`` in place (one batched message). The static
form and the HTML export show the subgraph at the time given.

Times are UNIX seconds throughout (``graph.data[t].time``); a table without a time
column is timeless (always visible), and a row of such a table is seeded at the graph's
latest time by default, as :func:`rdlviz.nn.embed_rows` does.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from rdlviz.errors import ConfigError, SchemaError
from rdlviz.viz._view import View, figure_widget
from rdlviz.viz.palette import table_colors

__all__ = ["subgraph", "SubgraphView", "SubgraphSample", "graph_table_colors", "format_time",
           "row_hover_text", "format_values", "FUTURE_COLOR"]

#: Colour of rows that exist but are newer than the seed time.
FUTURE_COLOR = "#9E9E9E"
_EDGE_COLOR = "#8C8C8C"
_FUTURE_NAME = "future: not visible at t"
#: Columns shown in a hover box (the rest are left out, with a count).
HOVER_COLUMNS = 10


# -- helpers shared by the views of rows ---------------------------------------------------
def graph_table_colors(graph) -> Dict[str, str]:
    """``{table: colour}`` for every table of ``graph``, from the *database's* table list.

    A graph may hold a subset of the database's tables; colours come from the full list
    (the dataset's manifest) so a table has the same colour here as in the schema view.
    """
    names: List[str] = []
    manifest = getattr(getattr(graph, "dataset", None), "manifest", None)
    if manifest is not None and hasattr(manifest, "tables"):
        names = list(manifest.tables)
    if not set(graph.node_types) <= set(names):
        names = list(graph.node_types)
    return table_colors(names)


def format_time(seconds: Optional[int]) -> str:
    """UNIX seconds as a date (``2021-07-01``), with the time of day only when it is not
    midnight; ``"no time"`` for ``None``."""
    if seconds is None:
        return "no time"
    s = int(seconds)
    ts = pd.Timestamp(s, unit="s")
    return ts.strftime("%Y-%m-%d") if s % 86400 == 0 else ts.strftime("%Y-%m-%d %H:%M")


def format_values(s: pd.Series, width: int = 36) -> pd.Series:
    """Cell values as short, HTML-safe strings (vectorised: hover text for 10^5 rows)."""
    if pd.api.types.is_bool_dtype(s):
        out = s.map({True: "true", False: "false"})
    elif pd.api.types.is_float_dtype(s):
        out = s.map(lambda v: f"{v:.4g}" if v == v else "")
    elif pd.api.types.is_datetime64_any_dtype(s):
        d = pd.to_datetime(s)
        midnight = bool(((d.dt.hour == 0) & (d.dt.minute == 0) & (d.dt.second == 0)).all())
        out = d.dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M")
    else:
        # missing first: the string dtype of pandas >= 3 keeps NaN through astype(str)
        out = s.astype(object).where(s.notna(), "").map(str).astype(object)
        long = out.str.len() > width
        if long.any():
            out = out.where(~long, out.str.slice(0, width - 1) + "…")
        out = out.map(html.escape)
    return out.where(s.notna(), "—").astype(str)


def row_hover_text(rows: pd.DataFrame, max_columns: int = HOVER_COLUMNS) -> pd.Series:
    """One ``"col: value<br>col: value"`` string per row (first ``max_columns`` columns)."""
    if rows.empty:
        return pd.Series([], dtype=object, index=rows.index)
    cols = list(rows.columns)[:max_columns]
    parts = [f"{html.escape(str(c))}: " + format_values(rows[c]) for c in cols]
    text = parts[0]
    for p in parts[1:]:
        text = text + "<br>" + p
    if len(rows.columns) > max_columns:
        text = text + f"<br><i>… {len(rows.columns) - max_columns} more columns</i>"
    return text


def _latest_time(graph) -> int:
    data = graph.data
    times = [int(data[t].time.max()) for t in data.node_types if "time" in data[t] and data[t].num_nodes]
    if not times:
        raise ConfigError("the graph has no time column at all: give time=... explicitly")
    return max(times)


def _timed(graph, table: str) -> bool:
    return "time" in graph.data[table]


# -- sampling ------------------------------------------------------------------------------
@dataclass
class SubgraphSample:
    """One drawing of a row's temporal subgraph.

    Attributes:
        time: the seed time ``t`` (UNIX seconds).
        nodes: one row per drawn node: ``table``, ``node`` (row index), ``hop``,
            ``time`` (UNIX seconds, ``<NA>`` for tables without time), ``visible``
            (``False``: newer than ``t``), ``parent`` (position in ``nodes`` of the row
            it was sampled from, -1 for the seed), ``x`` (= hop), ``y``.
        edges: ``(i, j, visible)`` position pairs in ``nodes`` (undirected, one per pair).
        fanouts: the fan-outs sampled with.
    """

    time: int
    nodes: pd.DataFrame
    edges: List[Tuple[int, int, bool]] = field(default_factory=list)
    fanouts: Tuple[int, ...] = ()

    @property
    def visible(self) -> pd.DataFrame:
        """The nodes the model may see at ``t``."""
        return self.nodes[self.nodes["visible"]]

    @property
    def future(self) -> pd.DataFrame:
        """The drawn nodes newer than ``t`` (excluded from the model's input)."""
        return self.nodes[~self.nodes["visible"]]


def _tree(batch, node_types: Sequence[str]) -> Tuple[List[Tuple[str, int, int, Optional[int]]], Dict[tuple, set]]:
    """Nodes ``(table, id, hop, time)`` and undirected adjacency of one sampled batch.

    Hops come from ``num_sampled_nodes`` (``n_id`` holds the seeds first, then hop 1,
    hop 2, ...). Within one seed's disjoint tree a row appears once, so ``(table, id)``
    identifies a node.
    """
    nodes = []
    for t in node_types:
        if t not in batch.node_types or "n_id" not in batch[t]:
            continue
        n_id = batch[t].n_id.tolist()
        counts = list(batch[t].num_sampled_nodes)
        hops = np.repeat(np.arange(len(counts)), counts).tolist()
        times = batch[t].time.tolist() if "time" in batch[t] else [None] * len(n_id)
        nodes.extend((t, i, h, tm) for i, h, tm in zip(n_id, hops, times))
    adj: Dict[tuple, set] = {}
    for et in batch.edge_types:
        src, _, dst = et
        ei = batch[et].edge_index
        if ei.numel() == 0:
            continue
        s_ids = batch[src].n_id[ei[0]].tolist()
        d_ids = batch[dst].n_id[ei[1]].tolist()
        for a, b in zip(s_ids, d_ids):
            u, v = (src, a), (dst, b)
            if u == v:
                continue
            adj.setdefault(u, set()).add(v)
            adj.setdefault(v, set()).add(u)
    return nodes, adj


def sample_subgraph(graph, table: str, row: int, time: int, fanouts: Sequence[int] = (8, 4),
                    seed: int = 0, temporal_strategy: str = "uniform") -> SubgraphSample:
    """Sample ``row``'s subgraph at ``time`` and the future rows it would have reached.

    Two calls of :func:`rdlviz.sampling.sample` with the same fan-outs and generator
    seed: one with the time constraint (what the model sees), one without
    (``time_attr=None``); rows of the second newer than ``time`` are the future. A future
    row is kept when the row it was sampled from is drawn (a visible row, or a future
    row kept before it), so every hollow node hangs from the row that would leak it.

    Returns:
        A :class:`SubgraphSample` with the tidy-tree layout computed.
    """
    from rdlviz.sampling import sample

    data = graph.data
    ids = torch.tensor([int(row)], dtype=torch.long)
    when = torch.tensor([int(time)], dtype=torch.long)
    fan = [int(k) for k in fanouts]
    kw = dict(num_neighbors=fan, temporal_strategy=temporal_strategy, seed=int(seed))
    seen_b = sample(data, (table, ids), when, **kw)
    all_b = sample(data, (table, ids), when, time_attr=None, **kw)
    order = list(data.node_types)
    vis_nodes, vis_adj = _tree(seen_b, order)
    all_nodes, all_adj = _tree(all_b, order)

    rows: List[dict] = []
    pos: Dict[tuple, int] = {}
    for t, i, h, tm in sorted(vis_nodes, key=lambda n: n[2]):
        pos[(t, i)] = len(rows)
        rows.append(dict(table=t, node=i, hop=h, time=tm, visible=True, parent=-1))
    # parents of visible rows: a neighbour one hop closer to the seed
    for r in rows:
        if r["hop"] == 0:
            continue
        cands = [pos[u] for u in vis_adj.get((r["table"], r["node"]), ()) if u in pos
                 and rows[pos[u]]["hop"] == r["hop"] - 1]
        r["parent"] = min(cands) if cands else 0
    edges = {}
    for u, nbrs in vis_adj.items():
        for v in nbrs:
            if u in pos and v in pos:
                a, b = sorted((pos[u], pos[v]))
                edges[(a, b)] = True
    # future rows, hop by hop so a future row can hang from a future row of the hop before
    t_bound = int(time)
    for t, i, h, tm in sorted(all_nodes, key=lambda n: n[2]):
        if h == 0 or tm is None or tm <= t_bound or (t, i) in pos:
            continue
        parents = [pos[u] for u in all_adj.get((t, i), ()) if u in pos and rows[pos[u]]["hop"] == h - 1]
        if not parents:
            continue
        pos[(t, i)] = len(rows)
        rows.append(dict(table=t, node=i, hop=h, time=tm, visible=False, parent=min(parents)))
        for p in parents:
            edges.setdefault(tuple(sorted((p, pos[(t, i)]))), False)
    nodes = pd.DataFrame(rows, columns=["table", "node", "hop", "time", "visible", "parent"])
    nodes["time"] = nodes["time"].astype("Int64")
    _tidy_layout(nodes)
    edge_list = [(a, b, vis) for (a, b), vis in sorted(edges.items())]
    return SubgraphSample(time=t_bound, nodes=nodes, edges=edge_list, fanouts=tuple(fan))


def _tidy_layout(nodes: pd.DataFrame) -> None:
    """Set ``x`` (= hop) and ``y`` in place: a tidy tree drawn left to right.

    Leaves (rows that led to no drawn row) take consecutive slots in depth-first order;
    a row with children sits at the mean height of its children. Children are ordered by
    table, then visible before future, then time, so rows of one table form a block.
    """
    n = len(nodes)
    children: List[List[int]] = [[] for _ in range(n)]
    for i, p in enumerate(nodes["parent"].tolist()):
        if i != 0 and p >= 0:
            children[p].append(i)
    tables, vis = nodes["table"].tolist(), nodes["visible"].tolist()
    times = [(-1 if pd.isna(x) else int(x)) for x in nodes["time"].tolist()]
    for c in children:
        c.sort(key=lambda j: (tables[j], not vis[j], times[j], j))
    y = np.zeros(n)
    slot = 0
    stack: List[Tuple[int, bool]] = [(0, False)] if n else []
    while stack:  # iterative post-order: no recursion limit on wide trees
        i, done = stack.pop()
        if done or not children[i]:
            if children[i]:
                y[i] = float(np.mean([y[j] for j in children[i]]))
            else:
                y[i] = -slot
                slot += 1
            continue
        stack.append((i, True))
        stack.extend((j, False) for j in reversed(children[i]))
    nodes["x"] = nodes["hop"].astype(float)
    nodes["y"] = y + (slot - 1) / 2.0 if n else y  # centre the drawing on y = 0


# -- the view --------------------------------------------------------------------------------
class SubgraphView(View):
    """A row's temporal subgraph at a seed time (see :func:`subgraph`).

    Attributes:
        graph: the :class:`rdlviz.Graph`.
        table / row: the seed row.
        time: the current seed time (UNIX seconds); change it with :meth:`set_time`.
        sample: the current :class:`SubgraphSample`.
        colors: ``{table: colour}``.
    """

    def __init__(self, graph, table: str, row: int, time: Optional[Any] = None,
                 fanouts: Sequence[int] = (8, 4), seed: int = 0, temporal_strategy: str = "uniform",
                 height: Optional[int] = None) -> None:
        if table not in graph.node_types:
            raise SchemaError("unknown table", table=table, fix="tables: " + ", ".join(graph.node_types))
        n = graph.num_nodes[table]
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= int(row) < n:
            raise ConfigError(f"row must be a row index of '{table}' in 0..{n - 1}, got {row!r}")
        fan = tuple(int(k) for k in fanouts)
        if not fan or any(k < 1 and k != -1 for k in fan):
            raise ConfigError(f"fanouts must be positive neighbour counts per hop (or -1: all), got {fanouts!r}")
        self.graph, self.table, self.row = graph, table, int(row)
        self.fanouts, self.seed, self.temporal_strategy = fan, int(seed), temporal_strategy
        self.colors = graph_table_colors(graph)
        self._types = sorted(graph.node_types)
        self._height = height
        self._row_time = int(graph.data[table].time[self.row]) if _timed(graph, table) else None
        self._latest = _latest_time(graph) if any(_timed(graph, t) for t in graph.node_types) else 0
        self._hover_cache: Dict[Tuple[str, int], str] = {}
        self._slider = None
        self.time = self._resolve_time(time)
        self.sample = sample_subgraph(graph, table, self.row, self.time, fan, self.seed, temporal_strategy)
        super().__init__(None, title=self._title())

    # -- time ------------------------------------------------------------------------------
    def _resolve_time(self, time: Optional[Any]) -> int:
        if time is None:
            return self._row_time if self._row_time is not None else self._latest
        if isinstance(time, (int, np.integer)) and not isinstance(time, bool):
            t = int(time)
        else:
            try:
                t = int(pd.Timestamp(time).timestamp())
            except (TypeError, ValueError):
                raise ConfigError(f"time must be UNIX seconds, a date string or a Timestamp, got {time!r}") from None
        if self._row_time is not None and t < self._row_time:
            raise ConfigError(
                f"row {self.row} of '{self.table}' has time {format_time(self._row_time)}; it does not exist "
                f"before then, so it has no subgraph at {format_time(t)}: choose a time >= its own")
        return t

    def set_time(self, time: Any) -> "SubgraphView":
        """Re-sample at seed time ``time`` (UNIX seconds, date string or Timestamp); the
        live figure updates in place."""
        self.time = self._resolve_time(time)
        self.sample = sample_subgraph(self.graph, self.table, self.row, self.time, self.fanouts,
                                      self.seed, self.temporal_strategy)
        self.title = self._title()
        if self._widget is not None:
            self._update_live()
        return self

    def slider_times(self, max_options: int = 300) -> List[int]:
        """The times the slider offers: distinct row times of the graph from the seed
        row's own time (or the earliest time) to the latest, at most ``max_options``
        (evenly spaced quantiles), always including the current time."""
        data = self.graph.data
        parts = [data[t].time.numpy() for t in self.graph.node_types if _timed(self.graph, t)]
        if not parts:
            return [self.time]
        times = np.unique(np.concatenate(parts))
        lo = self._row_time if self._row_time is not None else int(times.min())
        times = times[times >= lo]
        if times.size > max_options:
            times = np.unique(times[np.linspace(0, times.size - 1, max_options).round().astype(int)])
        return sorted(set(int(x) for x in times) | {self.time})

    # -- drawing ---------------------------------------------------------------------------
    def _title(self) -> str:
        return f"Temporal subgraph of {self.table} row {self.row} at t = {format_time(self.time)}"

    def _subtitle(self) -> str:
        s = self.sample
        n_vis, n_fut = len(s.visible), len(s.future)
        fut = (f"{n_fut} sampled neighbours newer than t shown hollow (excluded as future)"
               if n_fut else "no sampled neighbour is newer than t")
        return f"{n_vis} rows visible to the model (time ≤ t) · {fut} · fan-outs {list(self.fanouts)}"

    def _hover(self, nodes: pd.DataFrame) -> List[str]:
        """Hover text per node: table, row, time, hop and the row's values (cached)."""
        need: Dict[str, List[int]] = {}
        for t, i in zip(nodes["table"], nodes["node"]):
            if (t, i) not in self._hover_cache:
                need.setdefault(t, []).append(int(i))
        for t, ids in need.items():
            ids = sorted(set(ids))
            text = row_hover_text(self.graph.rows(t, ids))
            self._hover_cache.update({(t, i): s for i, s in zip(ids, text.tolist())})
        out = []
        for r in nodes.itertuples(index=False):
            when = format_time(None if pd.isna(r.time) else int(r.time))
            head = f"<b>{html.escape(r.table)}</b> row {r.node}"
            if r.hop == 0:
                head += " (seed)"
            state = ("" if r.visible else
                     "<br><b>newer than t: not visible to the model</b>")
            out.append(f"{head}<br>time: {when} · hop {r.hop}{state}<br>{self._hover_cache[(r.table, r.node)]}")
        return out

    def _trace_values(self) -> List[Dict[str, Any]]:
        """Per trace, the properties that change with ``t`` (same traces at every ``t``)."""
        s = self.sample
        nodes = s.nodes
        hover = self._hover(nodes) if len(nodes) else []
        xs, ys = nodes["x"].to_numpy(), nodes["y"].to_numpy()
        out: List[Dict[str, Any]] = []
        for want in (True, False):
            ex, ey = [], []
            for a, b, vis in s.edges:
                if vis == want:
                    ex += [xs[a], xs[b], None]
                    ey += [ys[a], ys[b], None]
            out.append(dict(x=ex, y=ey))
        for t in self._types:
            m = ((nodes["table"] == t) & nodes["visible"]).to_numpy()
            idx = np.flatnonzero(m)
            seed = idx == 0
            out.append(dict(
                x=xs[idx].tolist(), y=ys[idx].tolist(), hovertext=[hover[i] for i in idx],
                customdata=nodes["node"].to_numpy()[idx].tolist(), showlegend=bool(idx.size),
                marker=dict(size=np.where(seed, 22, 11).tolist(),
                            line=dict(width=np.where(seed, 3, 1).tolist(),
                                      color=np.where(seed, "#000000", "#FFFFFF").tolist()))))
        idx = np.flatnonzero(~nodes["visible"].to_numpy())
        out.append(dict(x=xs[idx].tolist(), y=ys[idx].tolist(), hovertext=[hover[i] for i in idx],
                        customdata=nodes["node"].to_numpy()[idx].tolist(), showlegend=True))
        return out

    def _layout_values(self) -> Dict[str, Any]:
        s = self.sample
        leaves = max(1, int(round(s.nodes["y"].max() - s.nodes["y"].min())) + 1) if len(s.nodes) else 1
        height = self._height or int(min(1600, max(460, 170 + 16 * leaves)))
        L = len(self.fanouts)
        ticks = ["seed row"] + [f"hop {h}<br>(≤ {k if k != -1 else 'all'} per row and link)"
                                for h, k in zip(range(1, L + 1), self.fanouts)]
        seed_y = float(s.nodes["y"].iat[0]) if len(s.nodes) else 0.0
        return dict(
            title=dict(text=f"{self._title()}<br><sup>{self._subtitle()}</sup>", x=0.01, xanchor="left"),
            height=height,
            annotations=[dict(x=0, y=seed_y, text=f"<b>{html.escape(self.table)}</b><br>row {self.row}",
                              showarrow=False, yshift=-30, font=dict(size=11, color="#333333"))],
            xaxis=dict(tickvals=list(range(L + 1)), ticktext=ticks, range=[-0.35, L + 0.35],
                       title="hops from the seed row (left) along foreign keys", showgrid=False, zeroline=False),
        )

    def _build_figure(self) -> go.Figure:
        fig = go.Figure()
        vals = self._trace_values()
        fig.add_trace(go.Scatter(mode="lines", name="foreign-key link", hoverinfo="skip",
                                 line=dict(color=_EDGE_COLOR, width=1.1), **vals[0]))
        fig.add_trace(go.Scatter(mode="lines", name="link to a future row", hoverinfo="skip", showlegend=False,
                                 line=dict(color="#C8C8C8", width=1, dash="dot"), **vals[1]))
        for k, t in enumerate(self._types):
            v = vals[2 + k]
            marker = dict(v.pop("marker"), color=self.colors[t], opacity=1.0)
            fig.add_trace(go.Scatter(mode="markers", name=t, legendgroup=t, marker=marker,
                                     hovertemplate="%{hovertext}<extra></extra>", **v))
        v = vals[-1]
        fig.add_trace(go.Scatter(mode="markers", name=_FUTURE_NAME, legendgroup="future",
                                 marker=dict(symbol="circle-open", size=11, color=FUTURE_COLOR,
                                             line=dict(width=1.6, color=FUTURE_COLOR)),
                                 hovertemplate="%{hovertext}<extra></extra>", **v))
        fig.update_layout(
            plot_bgcolor="white", paper_bgcolor="white", hovermode="closest",
            margin=dict(l=30, r=30, t=90, b=80),
            yaxis=dict(visible=False, zeroline=False, showgrid=False),
            legend=dict(title="table (rows visible at t)", font_size=11, itemsizing="constant"),
            hoverlabel=dict(align="left", font_size=11),
            **self._layout_values(),
        )
        return fig

    def _update_live(self) -> None:
        fw = self._figure_widget
        vals = self._trace_values()
        with fw.batch_update():
            for k, v in enumerate(vals):
                tr = fw.data[k]
                marker = v.pop("marker", None)
                for key, value in v.items():
                    setattr(tr, key, value)
                if marker is not None:
                    tr.marker.size = marker["size"]
                    tr.marker.line.width = marker["line"]["width"]
                    tr.marker.line.color = marker["line"]["color"]
            fw.update_layout(**self._layout_values())
        if self._slider is not None and self._slider.value != self.time:
            opts = [o[1] for o in self._slider.options]
            if self.time not in opts:
                self._slider.options = [(format_time(x), x) for x in sorted(set(opts) | {self.time})]
            self._slider.value = self.time

    def _build_widget(self):
        import ipywidgets as w

        self._figure_widget = figure_widget(self.figure)
        opts = [(format_time(x), x) for x in self.slider_times()]
        self._slider = w.SelectionSlider(options=opts, value=self.time, description="seed time t",
                                         continuous_update=False, readout=True,
                                         style={"description_width": "90px"},
                                         layout=w.Layout(width="95%"))

        def on_change(change):
            if change["new"] != self.time:
                self.set_time(change["new"])

        self._slider.observe(on_change, names="value")
        note = w.HTML("<span style='color:#555;font-size:12px'>Move t: rows newer than t leave the "
                      "model's input (hollow grey); the subgraph is re-sampled with the same fan-outs.</span>")
        return w.VBox([self._figure_widget, self._slider, note])

    @property
    def figure_widget(self):
        """The live form's ``FigureWidget`` (updated in place when ``t`` changes)."""
        _ = self.widget
        return self._figure_widget

    @property
    def slider(self):
        """The live form's time slider (``ipywidgets.SelectionSlider``)."""
        _ = self.widget
        return self._slider

    def _summary(self) -> str:
        return f"{self.title}: {len(self.sample.visible)} visible rows, {len(self.sample.future)} future rows"


def subgraph(graph, table: str, row: int, time: Optional[Union[int, str, pd.Timestamp]] = None,
             fanouts: Sequence[int] = (8, 4), seed: int = 0, *, temporal_strategy: str = "uniform",
             height: Optional[int] = None) -> SubgraphView:
    """Draw the temporal subgraph the sampler gives ``row`` of ``table`` at time ``time``.

    Args:
        graph: a :class:`rdlviz.Graph` (``rdlviz.build_graph(db)``).
        table: the seed row's table.
        row: the seed row's index (node index, ``0 .. graph.num_nodes[table] - 1``).
        time: the seed time: UNIX seconds, a date string or a ``pd.Timestamp``. Default:
            the row's own time, or the graph's latest time for a table without time. A
            row cannot be seeded before its own time.
        fanouts: neighbours sampled per row and link type at each hop (``-1``: all).
        seed: the sampler's generator seed (the same seed gives the same subgraph).
        temporal_strategy: ``"uniform"`` or ``"last"`` (most recent neighbours).
        height: figure height in pixels (default: grows with the number of rows).

    Returns:
        A :class:`SubgraphView`: ``.sample.nodes`` lists the drawn rows, ``.set_time(t)``
        re-samples; in JupyterLab a date slider does the same live.

    Example:
        >>> rdlviz.viz.subgraph(graph, "drivers", 12, time="2005-06-01")
    """
    return SubgraphView(graph, table, row, time=time, fanouts=fanouts, seed=seed,
                        temporal_strategy=temporal_strategy, height=height)
