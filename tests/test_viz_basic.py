"""The visual layer without a browser: what each view draws, and how it renders.

Views are built on a small database written with ``write_dataset`` (5 tables, 5 foreign
keys, see ``browser_utils.make_toy_database``) and on synthetic loss histories and
results, and checked through their Plotly figures and widgets.
"""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import plotly.graph_objects as go
import pytest

import browser_utils as bu
from rdlviz.errors import ConfigError

FKEYS = {("races", "circuitId", "circuits"), ("results", "raceId", "races"),
         ("results", "driverId", "drivers"), ("qualifying", "raceId", "races"),
         ("qualifying", "driverId", "drivers")}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    import rdlviz

    return rdlviz.load(bu.make_toy_database(tmp_path_factory.mktemp("viz-db") / "toy-f1"))


@pytest.fixture(scope="module")
def schema_view(db):
    from rdlviz.viz import schema

    return schema(db)


def _trace(fig, name_start: str):
    return next(t for t in fig.data if (t.name or "").startswith(name_start))


# -- palette ---------------------------------------------------------------------------
def test_table_colors_are_stable_distinct_and_colour_blind_palette():
    from rdlviz.viz import table_colors
    from rdlviz.viz.palette import OKABE_ITO

    a = table_colors(["results", "races", "drivers"])
    b = table_colors(["drivers", "results", "races"])
    assert a == b  # order of the names does not matter
    assert a["drivers"] == OKABE_ITO[0]  # sorted by name: Okabe-Ito first
    assert len(set(a.values())) == 3
    many = table_colors([f"t{i:02d}" for i in range(25)])
    assert len(set(many.values())) == 24 and many["t24"] == many["t00"]  # 24 colours, then repeat
    assert all(re.fullmatch(r"#[0-9A-F]{6}", c) for c in many.values())


def test_table_colors_accept_the_dataset(db, schema_view):
    from rdlviz.viz import table_colors

    colors = table_colors(db)
    assert set(colors) == {"circuits", "drivers", "races", "results", "qualifying"}
    assert colors == schema_view.colors


# -- schema ----------------------------------------------------------------------------
def test_schema_nodes_colours_and_sizes(schema_view, db):
    from rdlviz.viz import table_colors

    fig = schema_view.figure
    nodes = _trace(fig, "table")
    tables = list(nodes.customdata)
    assert sorted(tables) == sorted(["circuits", "drivers", "races", "results", "qualifying"])
    colors = table_colors(db)
    assert list(nodes.marker.color) == [colors[t] for t in tables]
    size = dict(zip(tables, nodes.marker.size))
    assert size["results"] > size["qualifying"] > size["races"] > size["circuits"]  # 300 > 100 > 40 > 6 rows
    assert "300 rows" in nodes.text[tables.index("results")]


def test_schema_hover_lists_columns_stypes_and_counts(schema_view):
    nodes = _trace(schema_view.figure, "table")
    hover = dict(zip(nodes.customdata, nodes.hovertext))
    results = hover["results"]
    assert "300 rows" in results
    for col, st in [("points", "numerical"), ("grid", "categorical"), ("status", "categorical")]:
        assert f"{col}: {st}" in results
    assert "time column: date" in results and "foreign key: driverId → drivers" in results
    assert "rows before val cutoff" in results
    drivers = hover["drivers"]
    assert "no time column" in drivers and "code: identifier-like" in drivers  # left out, with reason


def test_schema_edges_are_the_foreign_keys(schema_view):
    fig = schema_view.figure
    fk = _trace(fig, "foreign key")
    assert {tuple(c) for c in fk.customdata} == FKEYS
    assert len(fk.customdata) == len(FKEYS)
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(arrows) == len(FKEYS)
    pos = schema_view.positions
    for child, _, parent in FKEYS:  # arrows point child -> parent, parents to the right
        assert pos[parent][0] > pos[child][0]
    badge = _trace(fig, "has a time column")
    assert sorted(badge.customdata) == ["qualifying", "races", "results"]


def test_schema_layout_is_deterministic(db, schema_view):
    from rdlviz.viz import schema
    from rdlviz.viz.schema import layered_layout

    again = schema(db)
    assert again.positions == schema_view.positions
    # Cycles and self-references do not break the layering.
    pos = layered_layout(["a", "b", "c"], {"a": {"b_id": "b", "self": "a"}, "b": {"a_id": "a"}, "c": {"a_id": "a"}})
    assert set(pos) == {"a", "b", "c"} and pos["c"][0] < pos["a"][0]


# -- picker ----------------------------------------------------------------------------
@pytest.fixture()
def picker(db):
    from rdlviz.viz import table_picker

    return table_picker(db)


def test_picker_default_value(picker):
    v = picker.value
    assert v["tables"] == ["circuits", "drivers", "races", "results", "qualifying"]
    assert v["columns"]["results"] == ["points", "grid", "status"]  # keys and time column excluded
    assert "code" not in v["columns"]["drivers"]  # identifier-like: unchecked by default
    assert v["stypes"] == {}
    assert picker.problems() == ([], [])


def test_picker_value_follows_widget_changes(picker):
    picker.table_checkbox("circuits").value = False
    picker.column_checkbox("results", "points").value = False
    picker.stype_dropdown("results", "grid").value = "numerical"
    picker.column_checkbox("drivers", "code").value = True  # bring back a left-out column
    v = picker.value
    assert v["tables"] == ["drivers", "races", "results", "qualifying"]
    assert v["columns"]["results"] == ["grid", "status"]
    assert v["columns"]["drivers"] == ["code", "surname", "nationality", "dob"]
    # The override, and the brought-back column with the stype its menu shows.
    assert v["stypes"] == {"results": {"grid": "numerical"},
                           "drivers": {"code": picker.stype_dropdown("drivers", "code").value}}
    errors, warnings = picker.problems()
    assert not errors
    assert any("races.circuitId → circuits" in w for w in warnings)
    # Counts shown as you choose.
    assert "4</b> of 5 tables" in picker._summary_html.value
    assert "2 semantic-type changes" in picker._summary_html.value.replace("<b>", "").replace("</b>", "")
    assert picker.table_checkbox("results").description.endswith("3/4 columns")  # + time column
    # The static form shows the same choice.
    cells = picker.figure.data[0].cells.values
    assert "no" == cells[2][list(picker.info).index("circuits")]


def test_picker_errors_for_impossible_choices(picker):
    picker.stype_dropdown("results", "status").value = "numerical"
    with pytest.raises(ConfigError, match=r"table 'results', column 'status' as numerical: .*not numbers"):
        picker.value
    assert "status" in picker._status_html.value and "✖" in picker._status_html.value
    picker.stype_dropdown("results", "status").value = "categorical"
    picker.stype_dropdown("results", "points").value = "text_embedded"
    with pytest.raises(ConfigError, match="text_embedded needs strings"):
        picker.value
    picker.stype_dropdown("results", "points").value = "numerical"
    picker.stype_dropdown("results", "status").value = "multicategorical"
    with pytest.raises(ConfigError, match="multicategorical needs list values"):
        picker.value
    picker.stype_dropdown("results", "status").value = "categorical"
    assert picker.value["tables"]
    picker._set_all(False)
    with pytest.raises(ConfigError, match="no table is selected"):
        picker.value
    with pytest.raises(ConfigError, match="unknown table"):
        picker.select(tables=["nope"])
    with pytest.raises(ConfigError, match="is a key"):
        picker.select(columns={"results": ["driverId"]})
    with pytest.raises(ConfigError, match="not a semantic type"):
        picker.select(stypes={"results": {"status": "colour"}})


def test_picker_select_and_warnings(picker):
    picker.select(tables=["results", "circuits"], columns={"results": ["status"]},
                  stypes={"results": {"status": "text_embedded"}})
    assert picker.table_checkbox("races").value is False
    v = picker.value
    assert v == {"tables": ["circuits", "results"], "columns": {"circuits": ["name", "country", "alt"],
                 "results": ["status"]}, "stypes": {"results": {"status": "text_embedded"}}}
    warnings = picker.problems()[1]
    assert any("'circuits' is linked to no other selected table" in w for w in warnings)


def test_picker_value_builds_a_graph(db, picker, tmp_path, monkeypatch):
    import rdlviz

    monkeypatch.setenv("RDLVIZ_HOME", str(tmp_path))
    picker.table_checkbox("drivers").value = False
    picker.stype_dropdown("results", "grid").value = "numerical"
    graph = rdlviz.build_graph(db, **picker.value, text="hash")
    assert set(graph.data.node_types) == {"circuits", "races", "results", "qualifying"}
    assert graph.data["results"].tf.num_cols == 4  # points, grid, status + the time column


# -- losses ----------------------------------------------------------------------------
def _logs(s: int) -> dict:
    d = {k: math.exp(-s / 50) + 0.1 * i for i, k in enumerate(("row", "link", "context"))}
    return {**d, "total": sum(d.values()), "time": 0.01 * s, "lr": 1e-3}


def test_loss_monitor_throttles_redraws_and_keeps_every_point():
    from rdlviz.viz import LossMonitor

    mon = LossMonitor(every_ms=100, auto_display=False)
    now = [0.0]
    mon._clock = lambda: now[0]
    live = mon.widget
    for s in range(1, 1001):
        now[0] += 0.001  # a 1 ms training step
        mon.on_step(s, _logs(s))
        if s == 500:
            # Points are buffered between redraws: the live figure lags behind.
            assert len(_trace(live, "row (train)").x) < 500
    assert 8 <= mon.redraws <= 12, mon.redraws  # ~1 redraw per 100 ms of a 1 s run
    mon.on_eval(1000, _logs(1000))  # validation redraws at once
    assert len(_trace(live, "row (validation)").x) == 1
    mon.on_end(None)
    for obj in ("row", "link", "context", "total"):
        assert len(_trace(live, f"{obj} (train)").x) == 1000
    assert "lr (train)" not in [t.name for t in live.data]  # log fields are not losses
    static = mon.figure
    assert isinstance(static, go.Figure) and not isinstance(static, go.FigureWidget)
    assert len(_trace(static, "row (train)").y) == 1000


def test_loss_monitor_step_cost_is_small():
    import time

    from rdlviz.viz import LossMonitor

    mon = LossMonitor(every_ms=20, auto_display=False)
    t0 = time.perf_counter()
    for s in range(1, 1501):
        mon.on_step(s, _logs(s))
    per_step = (time.perf_counter() - t0) / 1500
    assert mon.redraws >= 1
    assert per_step < 0.05, f"{per_step * 1000:.1f} ms per step"
    assert mon.plot_seconds / 1500 < 0.05


def test_loss_monitor_displays_itself_once_in_a_notebook(monkeypatch):
    import IPython.display

    import importlib

    from rdlviz.viz import LossMonitor

    losses_module = importlib.import_module("rdlviz.viz.losses")  # the module, not the function
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    monkeypatch.setattr(losses_module, "widgets_usable", lambda: True)
    mon = LossMonitor()
    for s in range(1, 4):
        mon.on_step(s, _logs(s))
    assert shown == [mon]
    shown.clear()
    already = LossMonitor()
    already._repr_mimebundle_()  # displayed by the user before training
    already.on_step(1, _logs(1))
    assert shown == []


def test_loss_monitor_on_end_takes_the_run_history():
    from rdlviz.viz import LossMonitor

    class Run:
        best_step = 30
        history = pd.DataFrame([{"step": s, "split": "train", **_logs(s)} for s in range(1, 41)]
                               + [{"step": 40, "split": "val", **_logs(40)}])

    mon = LossMonitor(auto_display=False)
    for s in range(21, 41):  # a resumed run: the monitor saw only the second half
        mon.on_step(s, _logs(s))
    mon.on_end(Run())
    assert len(_trace(mon.widget, "row (train)").x) == 40
    assert any(a.text == "best validation" for a in mon.figure.layout.annotations)


def _history(steps: int = 100) -> pd.DataFrame:
    rows = [{"step": s, "split": "train", **_logs(s)} for s in range(1, steps + 1)]
    rows += [{"step": s, "split": "val", **_logs(s)} for s in range(25, steps + 1, 25)]
    return pd.DataFrame(rows)


def test_losses_view_from_history(tmp_path):
    from rdlviz.viz import losses
    from rdlviz.viz.palette import OBJECTIVE_COLORS

    fig = losses(_history()).figure
    names = [t.name for t in fig.data]
    assert names == [f"{o} ({s})" for o in ("row", "link", "context", "total") for s in ("train", "validation")]
    for obj in ("row", "link", "context", "total"):
        train, val = _trace(fig, f"{obj} (train)"), _trace(fig, f"{obj} (validation)")
        assert train.line.color == val.line.color == OBJECTIVE_COLORS[obj]  # one colour per objective
        assert train.line.dash == "solid" and val.line.dash == "dash"
        assert len(train.x) == 100 and list(val.x) == [25, 50, 75, 100]
    chance = [s for s in fig.layout.shapes if s.y0 == 1.0 and s.y1 == 1.0]
    assert len(chance) == 1
    assert any(a.text == "chance level" for a in fig.layout.annotations)
    assert fig.layout.yaxis.type == "linear" and fig.layout.xaxis.title.text == "training step"
    assert losses(_history(), log_y=True).figure.layout.yaxis.type == "log"
    # Subset of objectives, a run object, and files.
    assert [t.name for t in losses(_history(), objectives=["link"]).figure.data] == ["link (train)", "link (validation)"]

    class Run:
        history = _history(10)

    assert len(_trace(losses(Run()).figure, "row (train)").x) == 10
    _history(10).to_csv(tmp_path / "h.csv", index=False)
    assert len(_trace(losses(tmp_path / "h.csv").figure, "row (train)").x) == 10


def test_losses_rejects_bad_input():
    from rdlviz.viz import LossMonitor, losses

    with pytest.raises(ConfigError, match="'step' column"):
        losses(pd.DataFrame({"row": [1.0]}))
    with pytest.raises(ConfigError, match="no loss values"):
        losses(pd.DataFrame({"step": [1], "split": ["train"], "time": [0.1]}))
    with pytest.raises(ConfigError, match="'train' or 'val'"):
        losses(pd.DataFrame({"step": [1], "split": ["test"], "row": [1.0]}))
    with pytest.raises(ConfigError, match="expected a pretraining run"):
        losses(42)
    with pytest.raises(ConfigError, match="every_ms"):
        LossMonitor(every_ms=-1)


# -- compare ---------------------------------------------------------------------------
RESULTS = {
    "database": "toy-f1", "seeds": [0, 1, 2], "machine": "test machine",
    "tasks": {
        "driver-dnf": {"metric": "roc_auc", "higher_is_better": True, "variants": {
            "finetune": {"mean": 0.76, "std": 0.015, "per_seed": [0.745, 0.76, 0.775], "seconds": 12.0},
            "scratch": {"mean": 0.74, "std": 0.02, "per_seed": [0.72, 0.74, 0.76], "seconds": 10.0},
            "random_probe": {"mean": 0.6, "std": 0.05, "per_seed": [0.55, 0.6, 0.65]},
            "probe": {"mean": 0.70, "std": 0.01, "per_seed": [0.69, 0.70, 0.71]}}},
        "driver-position": {"metric": "mae", "higher_is_better": False, "variants": {
            "scratch": {"mean": 4.0, "per_seed": [3.9, 4.0, 4.2]},
            "finetune": {"mean": 3.6, "std": 0.2, "per_seed": [3.4, 3.6, 3.8]}}},
    },
}


def test_compare_error_bars_are_std(tmp_path):
    from rdlviz.viz import compare
    from rdlviz.viz.palette import VARIANT_COLORS

    view = compare(RESULTS)
    fig = view.figure
    means = [t for t in fig.data if t.error_y.array is not None]
    assert len(means) == 6
    got = {tuple(t.customdata[0]): (t.y[0], t.error_y.array[0], t.marker.color) for t in means}
    assert got[("driver-dnf", "scratch")] == (0.74, 0.02, VARIANT_COLORS["scratch"])
    assert got[("driver-dnf", "finetune")][1] == 0.015
    # std missing: the sample std of the seeds.
    assert got[("driver-position", "scratch")][1] == pytest.approx(pd.Series([3.9, 4.0, 4.2]).std())
    # Variants in a fixed order, whatever the input order; seeds drawn beside the mean.
    dnf = [t.customdata[0][1] for t in means if t.customdata[0][0] == "driver-dnf"]
    assert dnf == ["random_probe", "scratch", "probe", "finetune"]
    seeds = [t for t in fig.data if t.name == "scratch (B): seeds"]
    assert [list(t.y) for t in seeds] == [[0.72, 0.74, 0.76], [3.9, 4.0, 4.2]]
    # One subplot per task, y axes say the metric and its direction.
    assert fig.layout.yaxis.title.text.startswith("ROC-AUC") and "higher is better" in fig.layout.yaxis.title.text
    assert fig.layout.yaxis2.title.text.startswith("MAE") and "lower is better" in fig.layout.yaxis2.title.text
    assert [a.text for a in fig.layout.annotations[:2]] == ["<b>driver-dnf</b>", "<b>driver-position</b>"]
    assert sum(1 for t in means if t.showlegend) == 4  # one legend entry per variant
    table = view.table()
    assert len(table) == 6 and set(table.columns) >= {"task", "variant", "mean", "std", "seeds"}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    assert len(compare(path).figure.data) == len(fig.data)


def test_compare_rejects_malformed_results():
    from rdlviz.viz import compare

    with pytest.raises(ConfigError, match="'tasks'"):
        compare({"database": "x"})
    with pytest.raises(ConfigError, match="no 'variants'"):
        compare({"tasks": {"t": {"metric": "mae"}}})
    with pytest.raises(ConfigError, match="needs at least a 'mean'"):
        compare({"tasks": {"t": {"variants": {"scratch": {"std": 1}}}}})
    with pytest.raises(ConfigError, match="must be a number"):
        compare({"tasks": {"t": {"variants": {"scratch": {"mean": "high"}}}}})
    with pytest.raises(ConfigError, match="does not exist"):
        compare("/nonexistent/results.json")


# -- View: three ways to render ----------------------------------------------------------
def _all_views(db):
    from rdlviz.viz import compare, losses, schema, table_picker

    return {"schema": schema(db), "losses": losses(_history()), "compare": compare(RESULTS),
            "picker": table_picker(db)}


def test_to_html_embeds_plotlyjs_without_cdn(db, tmp_path):
    for name, view in _all_views(db).items():
        path = view.to_html(tmp_path / f"{name}.html")
        text = path.read_text(encoding="utf-8")
        assert len(text) > 3_000_000, name  # plotly.js (~4.8 MB) is inline
        assert "window.Plotly = Plotly" in text
        assert not re.search(r"<script[^>]+src=[\"']https?:", text), name
        assert "<title>" in text and "Plotly.newPlot" in text
    assert "<html" in _all_views(db)["compare"].to_html()  # no path: the text


def test_mimebundle_outside_a_kernel_is_static(schema_view):
    from rdlviz.viz import _view

    _view.set_static_plotlyjs("once")
    first = schema_view._repr_mimebundle_()
    second = schema_view._repr_mimebundle_()
    assert set(first) == {"text/plain", "text/html"}  # no widget frontend outside a kernel
    assert first["text/plain"].startswith("<rdlviz SchemaView: toy-f1: 5 tables")
    assert "window.Plotly = Plotly" in first["text/html"]  # plotly.js once per session...
    assert "window.Plotly = Plotly" not in second["text/html"] and "window.Plotly" in second["text/html"]
    assert len(second["text/html"]) < 200_000
    _view.set_static_plotlyjs("always")
    try:
        assert "window.Plotly = Plotly" in schema_view._repr_mimebundle_()["text/html"]
    finally:
        _view.set_static_plotlyjs("once")
    with pytest.raises(ConfigError):
        _view.set_static_plotlyjs("sometimes")
    assert set(schema_view._repr_mimebundle_(include=["text/plain"])) == {"text/plain"}


def test_mimebundle_in_a_kernel_offers_the_widget(db, schema_view, monkeypatch):
    import ipywidgets

    from rdlviz.viz import LossMonitor, _view, table_picker

    monkeypatch.setattr(_view, "widgets_usable", lambda: True)
    bundle = schema_view._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html", _view.WIDGET_MIMETYPE}
    assert isinstance(schema_view.widget, go.FigureWidget)
    assert bundle[_view.WIDGET_MIMETYPE]["model_id"] == schema_view.widget.model_id
    assert len(schema_view.widget.data) == len(schema_view.figure.data)
    picker = table_picker(db)
    assert isinstance(picker.widget, ipywidgets.VBox)
    assert picker._repr_mimebundle_()[_view.WIDGET_MIMETYPE]["model_id"] == picker.widget.model_id
    mon = LossMonitor(auto_display=False)
    assert mon._repr_mimebundle_()[_view.WIDGET_MIMETYPE]["model_id"] == mon.widget.model_id


def test_show_outside_a_notebook_opens_a_file(schema_view, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url))
    path = schema_view.show()
    assert path.exists() and opened == [path.as_uri()]


def test_view_wraps_any_figure():
    from rdlviz.viz import View

    v = View(go.Figure(go.Bar(x=[1], y=[2]), layout=dict(title="bars")))
    assert v.title == "bars" and repr(v) == "<rdlviz View: bars>"
    assert isinstance(v.figure, go.Figure)
