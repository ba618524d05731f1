"""``table_picker(dataset)``: choose what goes into the graph, with the counts in view.

Building a graph from a database means deciding which tables become node types, which
columns become node features, and how each feature is read (its semantic type, the
torch_frame ``stype``). The picker makes those decisions visible and editable:

* a checkbox per table (with its colour from :func:`~rdlviz.viz.palette.table_colors`
  and its row count), buttons to select all / none;
* for one table at a time (the "columns of" menu), a checkbox per feature column and a
  menu of its stype, pre-set to what :func:`rdlviz.build_graph` would propose; columns
  the proposal leaves out (identifier-like, all missing) start unchecked with the reason
  shown; the time column is always kept;
* a summary line (tables, rows up to the test cutoff, feature columns, edge types,
  overrides) and a status line with what is wrong (errors) or worth knowing (warnings),
  both updated on every change.

``picker.value`` is ``{"tables": [...], "columns": {table: [cols]}, "stypes": {table:
{col: stype}}}`` and feeds :func:`rdlviz.build_graph` directly::

    picker = rdlviz.viz.table_picker(db)
    graph = rdlviz.build_graph(db, **picker.value)

``stypes`` holds only the choices that differ from the proposal (overrides, and
left-out columns brought back), so the value reads as "what I changed". A choice that
cannot work -- no table, or an stype the sampled values cannot take (``numerical`` on
words, ``text_embedded`` on numbers, ``multicategorical`` on plain strings) -- makes
``.value`` raise :class:`~rdlviz.errors.ConfigError` naming table and column.

State lives in plain Python dicts; widgets only edit it. Column widgets are built
lazily, one table at a time, so a database with many wide tables stays light in the
browser.
"""

from __future__ import annotations

import html
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from rdlviz.errors import ConfigError
from rdlviz.viz._view import View
from rdlviz.viz.palette import table_colors
from rdlviz.viz.schema import SAMPLE_ROWS, STYPES, TableInfo, _dtype_stype, table_info

__all__ = ["table_picker", "TablePicker", "stype_problem"]


def _examples(s: pd.Series, k: int = 3) -> str:
    """A few distinct sample values, short (numbers to 4 significant digits)."""
    v = s.dropna()
    if pd.api.types.is_float_dtype(v):
        vals = pd.unique(v.map(lambda x: f"{x:.4g}"))[:k]
    else:
        vals = pd.unique(v.astype(str))[:k]
    text = ", ".join(v if len(v) <= 24 else v[:23] + "…" for v in vals)
    return text or "all missing"


def stype_problem(values: pd.Series, st: str) -> Optional[str]:
    """Why the sampled ``values`` cannot be read as stype ``st`` (``None`` if they can).

    The rules follow what the graph builder and torch_frame accept: numbers for
    ``numerical``, dates for ``timestamp``, strings for ``text_embedded``, lists for
    ``multicategorical``, equal-length numeric vectors for ``embedding``; anything can
    be ``categorical``.
    """
    if st not in STYPES:
        return f"'{st}' is not a semantic type (choose one of {', '.join(STYPES)})"
    v = values.dropna()
    if len(v) == 0:
        return "every sampled value is missing"
    if st == "categorical":
        return None
    first = v.iloc[0]
    is_list = isinstance(first, (list, tuple, np.ndarray))
    if st == "numerical":
        if pd.api.types.is_numeric_dtype(v) or pd.api.types.is_bool_dtype(v):
            return None
        if is_list:
            return "holds lists, not numbers (try embedding or multicategorical)"
        bad = v[pd.to_numeric(v, errors="coerce").isna()]
        if len(bad):
            return (f"{len(bad)} of {len(v)} sampled values are not numbers "
                    f"(e.g. {str(bad.iloc[0])[:30]!r}); try categorical or text_embedded")
        return None
    if st == "timestamp":
        if pd.api.types.is_datetime64_any_dtype(v):
            return None
        if pd.api.types.is_numeric_dtype(v) or is_list:
            return "holds numbers, not dates (try numerical)" if not is_list else "holds lists, not dates"
        parsed = pd.to_datetime(v.astype(str), errors="coerce", format="mixed")
        bad = v[parsed.isna().to_numpy()]
        if len(bad):
            return (f"{len(bad)} of {len(v)} sampled values are not dates "
                    f"(e.g. {str(bad.iloc[0])[:30]!r}); try categorical")
        return None
    if st == "text_embedded":
        if not all(isinstance(x, str) for x in v):
            return f"text_embedded needs strings, but this column holds {values.dtype} values (try numerical or categorical)"
        return None
    if st == "multicategorical":
        if not is_list:
            hint = " (split them first, e.g. df[col].str.split(','))" if isinstance(first, str) else ""
            return f"multicategorical needs list values, got {type(first).__name__}{hint}"
        return None
    if st == "embedding":
        if not is_list:
            return f"embedding needs numeric vectors, got {type(first).__name__}"
        lengths = {len(x) for x in v}
        if len(lengths) > 1:
            return f"embedding vectors must have one length, got lengths {sorted(lengths)[:5]}"
        if not all(isinstance(y, (int, float, np.number)) and not isinstance(y, bool) for y in first):
            return "embedding vectors must hold numbers"
        return None
    return None  # pragma: no cover - every stype is handled above


class TablePicker(View):
    """Interactive choice of tables, feature columns and semantic types (see :func:`table_picker`).

    Attributes:
        info: ``{table: TableInfo}`` for every table of the database.
        colors: ``{table: hex colour}``.
    """

    def __init__(self, dataset, *, sample_rows: int = SAMPLE_ROWS) -> None:
        import ipywidgets as w

        from rdlviz.data.load import load

        self._w = w
        dataset = load(dataset)
        self.name = getattr(getattr(dataset, "manifest", None), "name", None) or type(dataset).__name__
        self.info: Dict[str, TableInfo] = table_info(dataset, sample_rows=sample_rows)
        self.colors = table_colors(list(self.info))
        self._selected: Dict[str, bool] = {t: True for t in self.info}
        self._cols: Dict[str, Dict[str, bool]] = {}
        self._stypes: Dict[str, Dict[str, str]] = {}
        self._default: Dict[str, Dict[str, str]] = {}
        for t, ti in self.info.items():
            self._cols[t] = {c: (c in ti.stypes or c == ti.time_col) for c in ti.features}
            self._default[t] = {c: ti.stypes.get(c) or _dtype_stype(ti.sample[c]) for c in ti.features}
            if ti.time_col in self._default[t]:
                self._default[t][ti.time_col] = "timestamp"
            self._stypes[t] = dict(self._default[t])

        # -- widgets -------------------------------------------------------------------
        self._table_boxes: Dict[str, Any] = {}
        rows = []
        for t in self.info:
            cb = w.Checkbox(value=True, description=self._table_label(t), indent=False,
                            layout=w.Layout(width="auto"))
            cb.observe(lambda ch, t=t: self._on_table(t, ch["new"]), names="value")
            self._table_boxes[t] = cb
            swatch = w.HTML(f'<span style="display:inline-block;width:12px;height:12px;margin-top:9px;'
                            f'border:1px solid #333;background:{self.colors[t]}"></span>',
                            layout=w.Layout(width="18px"))
            rows.append(w.HBox([swatch, cb]))
        all_btn = w.Button(description="all tables", layout=w.Layout(width="100px"))
        none_btn = w.Button(description="no tables", layout=w.Layout(width="100px"))
        all_btn.on_click(lambda _: self._set_all(True))
        none_btn.on_click(lambda _: self._set_all(False))
        left = w.VBox([w.HTML("<b>Tables</b> (node types)"), w.HBox([all_btn, none_btn]), *rows],
                      layout=w.Layout(min_width="300px", margin="0 24px 0 0"))

        self._column_widgets: Dict[str, Dict[str, Tuple[Any, Any]]] = {}
        self._focus = w.Dropdown(options=list(self.info), value=next(iter(self.info)),
                                 description="columns of", layout=w.Layout(width="320px"))
        self._focus.observe(lambda ch: self._show_columns(ch["new"]), names="value")
        self._columns_box = w.VBox()
        right = w.VBox([w.HTML("<b>Feature columns</b> and their semantic types"), self._focus,
                        self._columns_box])

        self._summary_html = w.HTML()
        self._status_html = w.HTML()
        self._container = w.VBox([
            w.HTML(f"<h3 style='margin:4px 0'>Graph contents for {html.escape(self.name)}</h3>"),
            self._summary_html, w.HBox([left, right]), self._status_html,
        ])
        self._show_columns(self._focus.value)
        self._refresh()
        super().__init__(None, title=f"{self.name}: tables and columns for the graph")

    # -- programmatic access -----------------------------------------------------------
    def table_checkbox(self, table: str):
        """The checkbox that selects ``table``."""
        self._check_table(table)
        return self._table_boxes[table]

    def column_checkbox(self, table: str, column: str):
        """The checkbox that selects feature ``column`` of ``table``."""
        return self._column(table, column)[0]

    def stype_dropdown(self, table: str, column: str):
        """The menu that sets the semantic type of ``column`` of ``table``."""
        return self._column(table, column)[1]

    def select(self, tables: Optional[Iterable[str]] = None,
               columns: Optional[Mapping[str, Iterable[str]]] = None,
               stypes: Optional[Mapping[str, Mapping[str, str]]] = None) -> "TablePicker":
        """Set the choice from code (the widgets follow).

        Args:
            tables: the tables to select (others are deselected).
            columns: ``{table: [feature columns]}`` to select in those tables.
            stypes: ``{table: {column: stype name}}``.

        Raises:
            ConfigError: an unknown table, column or stype, or a key given as a column.
        """
        if tables is not None:
            tables = list(tables)
            for t in tables:
                self._check_table(t)
            for t, cb in self._table_boxes.items():
                cb.value = t in tables
        for t, cols in (columns or {}).items():
            cols = [cols] if isinstance(cols, str) else list(cols)
            for c in cols:
                self._check_column(t, c)
            for c in self.info[t].features:
                if c != self.info[t].time_col:
                    self.column_checkbox(t, c).value = c in cols
        for t, cs in (stypes or {}).items():
            for c, st in cs.items():
                self._check_column(t, c)
                if st not in STYPES:
                    raise ConfigError(f"table '{t}', column '{c}': {st!r} is not a semantic type; "
                                      f"choose one of {', '.join(STYPES)}")
                self.stype_dropdown(t, c).value = st
        return self

    @property
    def value(self) -> Dict[str, Any]:
        """``{"tables", "columns", "stypes"}`` for :func:`rdlviz.build_graph`.

        Raises:
            ConfigError: the current choice cannot build a graph (the message lists why).
        """
        errors, _ = self.problems()
        if errors:
            raise ConfigError("the table picker's choice cannot build a graph:\n  - " + "\n  - ".join(errors))
        tables = [t for t in self.info if self._selected[t]]
        columns = {t: [c for c in self.info[t].features if self._cols[t][c] and c != self.info[t].time_col]
                   for t in tables}
        stypes: Dict[str, Dict[str, str]] = {}
        for t in tables:
            changed = {c: self._stypes[t][c] for c in columns[t]
                       if self._stypes[t][c] != self.info[t].stypes.get(c)}
            if changed:
                stypes[t] = changed
        return {"tables": tables, "columns": columns, "stypes": stypes}

    def problems(self) -> Tuple[List[str], List[str]]:
        """``(errors, warnings)`` about the current choice, as sentences."""
        errors: List[str] = []
        warnings: List[str] = []
        chosen = [t for t in self.info if self._selected[t]]
        if not chosen:
            errors.append("no table is selected: select at least one table")
            return errors, warnings
        for t in chosen:
            ti = self.info[t]
            for c in ti.features:
                if not self._cols[t][c] or c == ti.time_col:
                    continue
                st = self._stypes[t][c]
                if st == ti.stypes.get(c):
                    continue  # the proposal's own choice was inferred from these values
                why = stype_problem(ti.sample[c], st)
                if why:
                    errors.append(f"table '{t}', column '{c}' as {st}: {why}")
        links = {t: set() for t in chosen}
        for t in chosen:
            for col, parent in self.info[t].fkeys.items():
                if parent in links:
                    if parent != t:
                        links[t].add(parent)
                        links[parent].add(t)
                else:
                    warnings.append(f"{t}.{col} → {parent}: '{parent}' is not selected, so these edges are dropped")
        if len(chosen) > 1:
            for t in chosen:
                if not links[t]:
                    warnings.append(f"'{t}' is linked to no other selected table: its nodes receive no messages")
        if not any(self.info[t].time_col for t in chosen):
            warnings.append("no selected table has a time column: the graph has no time, "
                            "so sampling cannot keep the future out")
        for t in chosen:
            ti = self.info[t]
            if not any(self._cols[t][c] for c in ti.features if c != ti.time_col):
                warnings.append(f"'{t}' has no feature column selected: its nodes get a constant feature")
        return errors, warnings

    # -- internals -----------------------------------------------------------------------
    def _check_table(self, table: str) -> None:
        if table not in self.info:
            raise ConfigError(f"unknown table {table!r}; tables: {', '.join(self.info)}")

    def _check_column(self, table: str, column: str) -> None:
        self._check_table(table)
        ti = self.info[table]
        if column == ti.pkey or column in ti.fkeys:
            raise ConfigError(f"table '{table}', column '{column}' is a key: keys become edges, "
                              "not features, so they cannot be chosen or typed")
        if column not in ti.features:
            raise ConfigError(f"table '{table}' has no column {column!r}; feature columns: "
                              + ", ".join(ti.features))

    def _column(self, table: str, column: str):
        self._check_column(table, column)
        return self._build_columns(table)[column]

    def _table_label(self, t: str) -> str:
        ti = self.info[t]
        n = sum(1 for c in ti.features if self._cols[t][c])
        return f"{t}: {ti.rows_before_test:,} rows, {n}/{len(ti.features)} columns"

    def _build_columns(self, t: str) -> Dict[str, Tuple[Any, Any]]:
        if t in self._column_widgets:
            return self._column_widgets[t]
        w, ti = self._w, self.info[t]
        out = {}
        for c in ti.features:
            st = self._stypes[t][c]
            options = list(STYPES) if st in STYPES else list(STYPES) + [st]
            is_time = c == ti.time_col
            # Fixed, unshrinkable widths keep the menus of all rows in one column.
            cb = w.Checkbox(value=self._cols[t][c], description=c, indent=False, disabled=is_time,
                            layout=w.Layout(width="210px", min_width="210px", flex="0 0 210px"))
            dd = w.Dropdown(options=options, value=st, disabled=is_time,
                            layout=w.Layout(width="150px", min_width="150px", flex="0 0 150px"))
            cb.observe(lambda ch, c=c: self._on_column(t, c, ch["new"]), names="value")
            dd.observe(lambda ch, c=c: self._on_stype(t, c, ch["new"]), names="value")
            out[c] = (cb, dd)
        self._column_widgets[t] = out
        self._sync_disabled(t)
        return out

    def _column_rows(self, t: str) -> List[Any]:
        w, ti = self._w, self.info[t]
        rows = []
        for c, (cb, dd) in self._build_columns(t).items():
            note = f"{ti.dtypes.get(c, '?')}; e.g. {html.escape(_examples(ti.sample[c]))}"
            if c == ti.time_col:
                note = "time column: always kept; " + note
            elif c in ti.dropped:
                note = f"<i>left out by default: {html.escape(ti.dropped[c])}</i>; " + note
            rows.append(w.HBox([cb, dd, w.HTML(f"<span style='color:#555;font-size:12px'>{note}</span>")]))
        keys = ([f"{ti.pkey} (primary key)"] if ti.pkey else []) + [f"{c} → {p}" for c, p in ti.fkeys.items()]
        if keys:
            rows.append(w.HTML("<span style='color:#555;font-size:12px'>keys (become edges, not features): "
                               + html.escape(", ".join(keys)) + "</span>"))
        return rows

    def _show_columns(self, t: str) -> None:
        self._columns_box.children = tuple(self._column_rows(t))

    def _sync_disabled(self, t: str) -> None:
        ti = self.info[t]
        for c, (cb, dd) in self._column_widgets.get(t, {}).items():
            is_time = c == ti.time_col
            cb.disabled = is_time or not self._selected[t]
            dd.disabled = is_time or not self._selected[t] or not self._cols[t][c]

    def _set_all(self, value: bool) -> None:
        for cb in self._table_boxes.values():
            cb.value = value

    def _on_table(self, t: str, value: bool) -> None:
        self._selected[t] = bool(value)
        self._sync_disabled(t)
        self._refresh()

    def _on_column(self, t: str, c: str, value: bool) -> None:
        self._cols[t][c] = bool(value)
        self._sync_disabled(t)
        self._table_boxes[t].description = self._table_label(t)
        self._refresh()

    def _on_stype(self, t: str, c: str, value: str) -> None:
        self._stypes[t][c] = value
        self._refresh()

    def _refresh(self) -> None:
        chosen = [t for t in self.info if self._selected[t]]
        rows = sum(self.info[t].rows_before_test for t in chosen)
        n_cols = sum(sum(1 for c in self.info[t].features if self._cols[t][c]) for t in chosen)
        all_cols = sum(len(ti.features) for ti in self.info.values())
        edges = sum(1 for t in chosen for p in self.info[t].fkeys.values() if p in chosen)
        overrides = sum(1 for t in chosen for c in self.info[t].features
                        if self._cols[t][c] and self._stypes[t][c] != self.info[t].stypes.get(c))
        self._summary_html.value = (
            f"<b>{len(chosen)}</b> of {len(self.info)} tables · <b>{rows:,}</b> rows up to the test cutoff · "
            f"<b>{n_cols}</b> of {all_cols} feature columns · <b>{edges}</b> foreign-key edge types · "
            f"<b>{overrides}</b> semantic-type changes")
        errors, warnings = self.problems()
        parts = [f"<div style='color:#b00020'>✖ {html.escape(e)}</div>" for e in errors]
        parts += [f"<div style='color:#8a5a00'>⚠ {html.escape(m)}</div>" for m in warnings]
        if not errors:
            parts.append("<div style='color:#1b5e20'>✔ ready: <code>rdlviz.build_graph(db, **picker.value)</code></div>")
        self._status_html.value = "".join(parts)

    # -- View ------------------------------------------------------------------------------
    def _build_widget(self):
        return self._container

    def _build_figure(self) -> go.Figure:
        """A table of the current choice: the picker's static form."""
        names, sel, rows, cols = [], [], [], []
        for t, ti in self.info.items():
            names.append(f"<b>{t}</b>")
            sel.append("yes" if self._selected[t] else "no")
            rows.append(f"{ti.rows_before_test:,}")
            chosen = [f"{c} ({self._stypes[t][c]})" for c in ti.features if self._cols[t][c]]
            lines = [", ".join(chosen[i:i + 4]) for i in range(0, len(chosen), 4)] or ["(no features)"]
            cols.append("<br>".join(lines))
        heights = [max(1, c.count("<br>") + 1) for c in cols]
        grey = ["white" if s == "yes" else "#f1f1f1" for s in sel]
        fig = go.Figure(go.Table(
            columnwidth=[14, 150, 70, 110, 520],
            header=dict(values=["", "<b>table</b>", "<b>in graph</b>", "<b>rows ≤ test cutoff</b>",
                                "<b>feature columns (semantic type)</b>"],
                        fill_color="#eeeeee", align="left", font=dict(size=12), height=28),
            cells=dict(values=[[""] * len(names), names, sel, rows, cols], align="left", font=dict(size=11),
                       fill_color=[[self.colors[t] for t in self.info], grey, grey, grey, grey], height=24),
        ))
        fig.update_layout(title=dict(text=self.title, x=0.01, xanchor="left"),
                          height=int(60 + 28 + sum(24 + 15 * (h - 1) for h in heights) + 40),
                          margin=dict(l=20, r=20, t=60, b=10))
        return fig

    def _summary(self) -> str:
        n = sum(self._selected.values())
        return f"{self.title}: {n} of {len(self.info)} tables selected"


def table_picker(dataset, *, sample_rows: int = SAMPLE_ROWS) -> TablePicker:
    """Choose the tables, feature columns and semantic types that go into the graph.

    Args:
        dataset: a RelBench ``Dataset`` (``rdlviz.load(...)``) or a name/path for
            :func:`rdlviz.load`.
        sample_rows: rows per table sampled to check stype choices.

    Returns:
        A :class:`TablePicker`; display it, make choices, then
        ``rdlviz.build_graph(db, **picker.value)``.
    """
    return TablePicker(dataset, sample_rows=sample_rows)
