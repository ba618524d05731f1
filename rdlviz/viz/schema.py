"""``schema(dataset)``: the database as a graph of tables joined by foreign keys.

This is the first picture of relational deep learning: every table becomes a node type
and every foreign key a typed edge. The view draws

* one node per table, coloured by :func:`~rdlviz.viz.palette.table_colors`, its size
  growing with the log of the row count, labelled with name and rows;
* an hourglass badge above each table that has a time column (its rows appear over
  time, so the graph is temporal there);
* one arrow per (child table, parent table) pair, from the table holding the foreign
  key to the table it references, with one labelled point per foreign-key column;
* hover text with every column, its semantic type (what the row encoder will do with
  it) and the row counts before the validation and test cutoffs.

Layout is deterministic: a layered drawing (Sugiyama style) where a table's layer is the
length of the longest foreign-key path out of it. Entity tables, which reference
nothing, sit in the rightmost layer; fact tables that reference them sit to their left.
Within a layer, tables are ordered by the barycentre of their neighbours (a few sweeps
reduce crossings), ties broken by name.

:func:`table_info` -- columns, dtypes and proposed semantic types of every table, from a
sample of rows -- is shared with :mod:`rdlviz.viz.picker`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rdlviz.viz._view import View
from rdlviz.viz.palette import table_colors

__all__ = ["schema", "SchemaView", "table_info", "TableInfo", "layered_layout", "STYPES"]

#: Semantic types a column can be given (torch_frame ``stype`` names).
STYPES = ("numerical", "categorical", "multicategorical", "text_embedded", "timestamp", "embedding")

#: Rows sampled per table to propose semantic types (RelBench samples 1,000 too).
SAMPLE_ROWS = 1000


@dataclass
class TableInfo:
    """What the views need to know about one table.

    Attributes:
        name: table name.
        rows: number of rows (whole table).
        pkey: primary-key column, or ``None``.
        fkeys: ``{fkey column: referenced table}``.
        time_col: time column, or ``None``.
        time_min / time_max: time span of the table (``NaT`` without a time column).
        rows_before_val / rows_before_test: rows up to each cutoff (all rows without time).
        features: candidate feature columns -- every column except the primary and
            foreign keys (keys become edges, not features), in table order; the time
            column is one (the graph always keeps it).
        dtypes: ``{column: pandas dtype name}`` for every column.
        stypes: ``{feature column: proposed stype name}`` for the columns the graph
            will use by default.
        dropped: ``{feature column: reason}`` for the columns it leaves out by default
            (identifier-like, all missing, ...).
        sample: up to :data:`SAMPLE_ROWS` rows, evenly spaced over the rows before the
            test cutoff.
    """

    name: str
    rows: int
    pkey: Optional[str]
    fkeys: Dict[str, str]
    time_col: Optional[str]
    time_min: pd.Timestamp = pd.NaT
    time_max: pd.Timestamp = pd.NaT
    rows_before_val: int = 0
    rows_before_test: int = 0
    features: List[str] = field(default_factory=list)
    dtypes: Dict[str, str] = field(default_factory=dict)
    stypes: Dict[str, str] = field(default_factory=dict)
    dropped: Dict[str, str] = field(default_factory=dict)
    sample: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)


_INFO_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _dtype_stype(s: pd.Series) -> str:
    """A semantic type from the dtype alone: the default offered for a column the
    proposal left out, should the user bring it back."""
    if pd.api.types.is_bool_dtype(s):
        return "categorical"
    if pd.api.types.is_numeric_dtype(s):
        return "numerical"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "timestamp"
    nonnull = s.dropna()
    if len(nonnull) and isinstance(nonnull.iloc[0], (list, tuple, np.ndarray)):
        return "embedding" if all(isinstance(v, (int, float, np.number)) for v in nonnull.iloc[0]) else "multicategorical"
    if nonnull.nunique() <= max(20, len(nonnull) // 10):
        return "categorical"
    return "text_embedded"


def _propose(db) -> Tuple[Dict[str, Dict[str, str]], Dict[str, Dict[str, str]]]:
    """``(stypes, dropped)`` as :func:`rdlviz.build_graph` will propose them.

    Uses the graph layer's own proposal (:func:`rdlviz.graph.stypes.propose_stypes`), so
    what a view shows is what the graph gets. If that layer cannot be imported, falls
    back to RelBench's ``get_stype_proposal`` without the identifier rule.
    """
    try:
        from rdlviz.graph.stypes import propose_stypes
    except ImportError:
        propose_stypes = None
    if propose_stypes is not None:
        stypes, dropped = propose_stypes(db)
        return ({t: {c: getattr(s, "value", str(s)) for c, s in cols.items()} for t, cols in stypes.items()},
                {t: dict(d) for t, d in dropped.items()})
    from relbench.modeling.utils import get_stype_proposal

    out: Dict[str, Dict[str, str]] = {}
    gone: Dict[str, Dict[str, str]] = {}
    for name, table in db.table_dict.items():
        keys = {table.pkey_col, *table.fkey_col_to_pkey_table}
        prop = get_stype_proposal(type(db)({name: table}))[name] if len(table.df) else {}
        out[name], gone[name] = {}, {}
        for col in table.df.columns:
            if col in keys:
                continue
            st = getattr(prop.get(col), "value", None)
            if st in STYPES:
                out[name][col] = st
            else:
                gone[name][col] = "type could not be inferred" if st is None else f"stype '{st}' has no encoder"
    return out, gone


def _even_sample_positions(n: int, k: int) -> np.ndarray:
    # Evenly spaced rows, not the head: time-ordered tables would otherwise show only
    # their oldest rows.
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def table_info(dataset, sample_rows: int = SAMPLE_ROWS) -> Dict[str, TableInfo]:
    """Columns, dtypes, proposed semantic types and counts of every table.

    Semantic types are those :func:`rdlviz.build_graph` proposes by default (RelBench's
    inference on 1,000 rows of the database cut at the test cutoff, keys excluded,
    identifier-like columns dropped with a reason). Results are cached per dataset.

    Args:
        dataset: a RelBench ``Dataset`` (e.g. from :func:`rdlviz.load`) or a name/path
            :func:`rdlviz.load` accepts.
        sample_rows: rows kept per table in ``TableInfo.sample`` (evenly spaced over the
            rows before the test cutoff) for checking stype choices.

    Returns:
        ``{table: TableInfo}`` in the dataset's table order.
    """
    from rdlviz.data.load import load

    dataset = load(dataset)
    try:
        cached = _INFO_CACHE.get(dataset)
    except TypeError:
        cached = None
    if cached is not None and cached[0] == sample_rows:
        return cached[1]

    val_ts = getattr(dataset, "val_timestamp", None)
    test_ts = getattr(dataset, "test_timestamp", None)
    db = dataset.get_db(upto_test_timestamp=False)
    cut = db.upto(test_ts) if test_ts is not None else db
    stypes, dropped = _propose(cut)
    infos: Dict[str, TableInfo] = {}
    for name, table in db.table_dict.items():
        df, pkey, fkeys, time_col = table.df, table.pkey_col, dict(table.fkey_col_to_pkey_table), table.time_col
        cdf = cut.table_dict[name].df
        info = TableInfo(name=name, rows=len(df), pkey=pkey, fkeys=fkeys, time_col=time_col,
                         rows_before_val=len(df), rows_before_test=len(df),
                         sample=cdf.iloc[_even_sample_positions(len(cdf), sample_rows)].reset_index(drop=True))
        info.features = [c for c in df.columns if c != pkey and c not in fkeys]
        info.dtypes = {c: str(df[c].dtype) for c in df.columns}
        info.stypes = dict(stypes.get(name, {}))
        info.dropped = dict(dropped.get(name, {}))
        if time_col is not None and len(df):
            t = pd.to_datetime(df[time_col])
            info.time_min, info.time_max = t.min(), t.max()
            if val_ts is not None:
                info.rows_before_val = int((t <= val_ts).sum())
            if test_ts is not None:
                info.rows_before_test = int((t <= test_ts).sum())
        infos[name] = info
    try:
        _INFO_CACHE[dataset] = (sample_rows, infos)
    except TypeError:
        pass
    return infos


# -- layout --------------------------------------------------------------------------------
def layered_layout(tables: List[str], fkeys: Dict[str, Dict[str, str]], sweeps: int = 4
                   ) -> Dict[str, Tuple[float, float]]:
    """Deterministic layered positions ``{table: (x, y)}`` for a schema graph.

    ``x = -layer`` where a table's layer is the longest foreign-key path out of it
    (entity tables: 0, at the right). Within a layer, ``y`` orders tables by the
    barycentre of their neighbours in adjacent layers, ties by name; layers are centred
    on ``y = 0`` with unit spacing. Self-references and cycles are ignored for layering.
    """
    parents = {t: sorted({p for p in fkeys.get(t, {}).values() if p != t and p in tables}) for t in tables}
    level: Dict[str, int] = {}

    def depth(t: str, stack: frozenset) -> int:
        if t in level:
            return level[t]
        ps = [p for p in parents[t] if p not in stack]  # a cycle edge does not add depth
        d = 0 if not ps else 1 + max(depth(p, stack | {t}) for p in ps)
        level[t] = d
        return d

    for t in sorted(tables):
        depth(t, frozenset())
    n_layers = max(level.values(), default=0) + 1
    layers: List[List[str]] = [sorted(t for t in tables if level[t] == k) for k in range(n_layers)]
    neighbours = {t: set(parents[t]) for t in tables}
    for t in tables:
        for p in parents[t]:
            neighbours[p].add(t)

    def positions() -> Dict[str, float]:
        pos = {}
        for layer in layers:
            for i, t in enumerate(layer):
                pos[t] = (len(layer) - 1) / 2.0 - i
        return pos

    for sweep in range(sweeps):
        pos = positions()
        order = range(n_layers) if sweep % 2 == 0 else range(n_layers - 1, -1, -1)
        for k in order:
            def key(t: str):
                ys = [pos[u] for u in neighbours[t] if level[u] != k]
                return (-(sum(ys) / len(ys)) if ys else -pos[t], t)

            layers[k] = sorted(layers[k], key=key)
            pos = positions()
    pos = positions()
    return {t: (-float(level[t]), pos[t]) for t in tables}


# -- the view ------------------------------------------------------------------------------
def _fmt_time(t) -> str:
    if t is None or pd.isna(t):
        return "?"
    t = pd.Timestamp(t)
    return str(t.date()) if t == t.normalize() else str(t)


def _hover(info: TableInfo, max_cols: int = 30) -> str:
    lines = [f"<b>{info.name}</b>: {info.rows:,} rows"]
    if info.time_col:
        lines.append(f"time column: {info.time_col} ({_fmt_time(info.time_min)} to {_fmt_time(info.time_max)})")
        lines.append(f"rows before val cutoff: {info.rows_before_val:,}; before test cutoff: {info.rows_before_test:,}")
    else:
        lines.append("no time column (static: every row is visible at every time)")
    if info.pkey:
        lines.append(f"primary key: {info.pkey}")
    for col, parent in info.fkeys.items():
        lines.append(f"foreign key: {col} → {parent}")
    used = [c for c in info.features if c in info.stypes]
    lines.append(f"feature columns ({len(used)}), semantic type [dtype]:")
    for col in used[:max_cols]:
        lines.append(f"  {col}: {info.stypes[col]} [{info.dtypes.get(col, '?')}]")
    if len(used) > max_cols:
        lines.append(f"  … and {len(used) - max_cols} more")
    if info.dropped:
        lines.append(f"left out by default ({len(info.dropped)}):")
        for col, why in list(info.dropped.items())[:10]:
            lines.append(f"  {col}: {why}")
        if len(info.dropped) > 10:
            lines.append(f"  … and {len(info.dropped) - 10} more")
    return "<br>".join(lines)


class SchemaView(View):
    """The schema graph of a database (see :func:`schema`).

    Attributes:
        info: ``{table: TableInfo}`` the view was drawn from.
        positions: ``{table: (x, y)}`` node positions.
        colors: ``{table: hex colour}``.
    """

    def __init__(self, dataset, *, height: Optional[int] = None, sample_rows: int = SAMPLE_ROWS) -> None:
        from rdlviz.data.load import load

        dataset = load(dataset)
        self.info = table_info(dataset, sample_rows=sample_rows)
        tables = list(self.info)
        self.colors = table_colors(tables)
        self.positions = layered_layout(tables, {t: i.fkeys for t, i in self.info.items()})
        name = getattr(getattr(dataset, "manifest", None), "name", None) or type(dataset).__name__
        self.name = name
        n_fk = sum(len(i.fkeys) for i in self.info.values())
        rows = sum(i.rows for i in self.info.values())
        title = f"{name}: {len(tables)} tables, {rows:,} rows, {n_fk} foreign keys"
        super().__init__(self._draw(title, height), title=title)

    def _summary(self) -> str:
        return self.title

    def _draw(self, title: str, height: Optional[int]) -> go.Figure:
        info, pos, colors = self.info, self.positions, self.colors
        tables = list(info)
        xs = [pos[t][0] for t in tables]
        ys = [pos[t][1] for t in tables]
        n_layers = int(round(-min(xs))) + 1
        layer_size = max(sum(1 for u in tables if pos[u][0] == pos[t][0]) for t in tables)
        height = int(height or max(460, 112 * layer_size + 180))
        margin = dict(l=30, r=30, t=120, b=30)
        y_lo, y_hi = min(ys) - 0.8, max(ys) + 0.8
        x_lo, x_hi = -(n_layers - 1) - 0.6, 0.6
        # Pixel scale, to keep badges and arrowheads a fixed number of pixels from a
        # node: the height is fixed; the width follows the page, so assume a typical one.
        sy = (height - margin["t"] - margin["b"]) / (y_hi - y_lo)
        sx = _ASSUMED_WIDTH_PX / (x_hi - x_lo)

        logs = np.log10(np.array([info[t].rows for t in tables], dtype=float) + 1.0)
        lo, hi = float(logs.min()), float(logs.max())
        frac = (logs - lo) / (hi - lo) if hi > lo else np.full(len(tables), 0.5)
        sizes = (18 + 32 * frac).round(1)  # marker diameter in px
        radius = {t: float(s) / 2 for t, s in zip(tables, sizes)}

        fig = go.Figure()
        edges = _route_edges(info, pos, radius, sx, sy)

        # Edge curves under everything else.
        ex, ey = [], []
        for e in edges:
            ex.extend(list(e["curve_x"]) + [None])
            ey.extend(list(e["curve_y"]) + [None])
        fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="#8a8a8a", width=1.4),
                                 hoverinfo="skip", showlegend=False, name="foreign-key edges"))
        annotations = [dict(
            x=e["head"][0], y=e["head"][1], ax=e["tail"][0], ay=e["tail"][1],
            xref="x", yref="y", axref="x", ayref="y", text="", showarrow=True,
            arrowhead=2, arrowsize=1.2, arrowwidth=1.4, arrowcolor="#8a8a8a",
        ) for e in edges if e["head"] is not None]

        # One hoverable, labelled point per foreign-key column, halfway along its edge.
        fig.add_trace(go.Scatter(
            x=[e["label"][0] for e in edges], y=[e["label"][1] for e in edges],
            mode="markers+text", name="foreign key (hover: child → parent)",
            text=[e["col"] if e["child"] != e["parent"] else f"↺ {e['col']}" for e in edges],
            textposition="top center", textfont=dict(size=10, color="#555555"),
            marker=dict(size=7, color="#8a8a8a", symbol="diamond"),
            hovertext=[_fkey_hover(info, e["child"], e["col"], e["parent"]) for e in edges],
            hoverinfo="text", customdata=[[e["child"], e["col"], e["parent"]] for e in edges],
        ))

        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers+text", name="table (area grows with log rows)",
            text=[f"<b>{t}</b><br>{info[t].rows:,} rows" for t in tables],
            textposition="bottom center", textfont=dict(size=11, color="#222222"),
            marker=dict(size=list(sizes), color=[colors[t] for t in tables], opacity=1.0,
                        line=dict(width=1.5, color="#333333")),
            hovertext=[_hover(info[t]) for t in tables], hoverinfo="text",
            customdata=tables,
        ))

        timed = [t for t in tables if info[t].time_col]
        fig.add_trace(go.Scatter(
            x=[pos[t][0] for t in timed],
            y=[pos[t][1] + (radius[t] + 9) / sy for t in timed],
            mode="markers", name="has a time column (temporal table)",
            marker=dict(symbol="hourglass", size=12, color="#222222"),
            hovertext=[f"<b>{t}</b> has time column <i>{info[t].time_col}</i>: its rows appear over time"
                       for t in timed],
            hoverinfo="text", customdata=timed,
        ))

        subtitle = ("arrows run from the table holding a foreign key to the table it references; "
                    "hover a table for its columns and semantic types")
        fig.update_layout(
            title=dict(text=f"{title}<br><sup>{subtitle}</sup>", x=0.01, xanchor="left"),
            annotations=annotations,
            height=height, margin=margin, plot_bgcolor="white", paper_bgcolor="white",
            hovermode="closest", hoverlabel=dict(align="left", bgcolor="white", font_size=12),
            legend=dict(orientation="h", x=0.0, y=1.0, xanchor="left", yanchor="bottom", font_size=11),
            xaxis=dict(visible=False, range=[x_lo, x_hi]),
            yaxis=dict(visible=False, range=[y_lo, y_hi]),
            dragmode="pan",
        )
        return fig


#: Width assumed when converting pixel offsets to x data units (a notebook cell).
_ASSUMED_WIDTH_PX = 1000.0


def _fkey_hover(info: Dict[str, TableInfo], child: str, col: str, parent: str) -> str:
    if parent not in info:
        return f"<b>foreign key</b> {child}.{col} → {parent} (not in this database)"
    pk = info[parent].pkey
    return (f"<b>foreign key</b> {child}.{col} → {parent}" + (f".{pk}" if pk else "")
            + f"<br>each of {info[child].rows:,} {child} rows points to one of "
            f"{info[parent].rows:,} {parent} rows")


def _bezier(p0, p1, p2, n: int = 25):
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t ** 2 * np.asarray(p2)


def _table_boxes(info, pos, radius, sx: float, sy: float) -> Dict[str, Tuple[float, float, float, float]]:
    """Pixel bounding box ``(x0, y0, x1, y1)`` of each table: node, badge and label."""
    boxes = {}
    for t, (x, y) in pos.items():
        cx, cy, r = x * sx, y * sy, radius[t]
        half = max(r, 3.4 * max(len(t), len(f"{info[t].rows:,} rows")))  # ~6.8 px per char
        top = r + (18 if info[t].time_col else 2)
        boxes[t] = (cx - half, cy - r - 30, cx + half, cy + top)
    return boxes


def _box_dist(px: np.ndarray, py: np.ndarray, box) -> np.ndarray:
    dx = np.maximum(np.maximum(box[0] - px, 0.0), px - box[2])
    dy = np.maximum(np.maximum(box[1] - py, 0.0), py - box[3])
    return np.hypot(dx, dy)


def _route_edges(info, pos, radius, sx: float, sy: float) -> List[dict]:
    """One quadratic Bezier curve per foreign key, bent to miss other tables.

    Parallel foreign keys between the same two tables fan out; an edge that would cross
    another table (its node, badge or label) bends up or down, whichever clears it with
    the smallest bend. Each edge's label goes at the first point along it that overlaps
    no table and no earlier label. Geometry is judged in pixels (``sx``, ``sy``: pixels
    per data unit).
    """
    boxes = _table_boxes(info, pos, radius, sx, sy)
    pairs: Dict[Tuple[str, str], List[str]] = {}
    for child, ti in info.items():
        for col, parent in ti.fkeys.items():
            pairs.setdefault((child, parent), []).append(col)
    edges: List[dict] = []
    for (child, parent), cols in pairs.items():
        p0 = np.array(pos[child])
        if child == parent or parent not in pos:  # self-reference: a label above the node
            for k, col in enumerate(cols):
                y = p0[1] + (radius[child] + 28 + 14 * k) / sy
                edges.append(dict(child=child, parent=parent, col=col, label=(p0[0], y), curve=None,
                                  curve_x=[], curve_y=[], head=None, tail=None))
            continue
        p2 = np.array(pos[parent])
        others = [boxes[t] for t in pos if t not in (child, parent)]
        m = len(cols)
        for k, col in enumerate(cols):
            fan = (k - (m - 1) / 2) * 34 / sy  # parallel edges 34 px apart at the middle
            best = None
            for bend in (0, 30, -30, 60, -60, 100, -100, 150, -150, 210, -210):
                p1 = (p0 + p2) / 2 + np.array([0.0, fan + 2 * bend / sy])
                curve = _bezier(p0, p1, p2, n=40)
                gap = min((float(_box_dist(curve[:, 0] * sx, curve[:, 1] * sy, b).min()) for b in others),
                          default=np.inf)
                if best is None or gap > best[2]:
                    best = (p1, curve, gap)
                if gap >= 4:
                    best = (p1, curve, gap)
                    break
            p1, curve = best[0], best[1]
            # The arrowhead sits on the parent's rim, pointing along the curve's end tangent.
            d = (p2 - p1) * np.array([sx, sy])
            d = d / (np.hypot(*d) or 1.0)
            head = p2 - d * (radius[parent] + 1) / np.array([sx, sy])
            tail = head - d * 14 / np.array([sx, sy])
            edges.append(dict(child=child, parent=parent, col=col, curve=curve,
                              curve_x=curve[:, 0].tolist(), curve_y=curve[:, 1].tolist(),
                              head=(float(head[0]), float(head[1])), tail=(float(tail[0]), float(tail[1]))))

    # Labels: greedy, in a fixed order, at the first free spot along the edge.
    placed: List[Tuple[float, float, float, float]] = list(boxes.values())
    for e in edges:
        if e["curve"] is None:
            continue
        curve = e["curve"]
        n = len(curve) - 1
        w = 3.3 * len(e["col"]) + 4
        choice = None
        for t in (0.5, 0.42, 0.58, 0.34, 0.66, 0.27, 0.73, 0.2, 0.8):
            x, y = curve[int(round(t * n))]
            lab = (x * sx - w, y * sy - 4, x * sx + w, y * sy + 18)  # diamond + text above it
            if all(lab[2] < b[0] - 2 or lab[0] > b[2] + 2 or lab[3] < b[1] - 2 or lab[1] > b[3] + 2
                   for b in placed):
                choice = (x, y, lab)
                break
        if choice is None:
            x, y = curve[n // 2]
            choice = (x, y, (x * sx - w, y * sy - 4, x * sx + w, y * sy + 18))
        e["label"] = (float(choice[0]), float(choice[1]))
        placed.append(choice[2])
    return edges


def schema(dataset, *, height: Optional[int] = None, sample_rows: int = SAMPLE_ROWS) -> SchemaView:
    """Draw a database's tables and foreign keys as an interactive graph.

    Args:
        dataset: a RelBench ``Dataset`` (``rdlviz.load(...)``) or a name/path for
            :func:`rdlviz.load`.
        height: figure height in pixels (default: grows with the widest layer).
        sample_rows: rows per table sampled to propose semantic types.

    Returns:
        A :class:`SchemaView`; display it in a notebook, or ``.to_html(path)``.

    Example:
        >>> rdlviz.viz.schema(rdlviz.load("rel-f1"))
    """
    return SchemaView(dataset, height=height, sample_rows=sample_rows)
