"""The row-level views: temporal subgraph, embedding projector, dashboard, HTML report.

Built on the small ``shop`` database (customers, products, orders; orders carry time).
Backbones are randomly initialised (seeded) unless a test needs a pretraining run; the
only run is a few steps long and shared by the dashboard and report tests. The last test
opens the exported pages in headless Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rdlviz.errors import ConfigError, SchemaError

RESULTS = {
    "database": "shop", "seeds": [0, 1], "machine": "test",
    "tasks": {"customer-order": {"metric": "roc_auc", "higher_is_better": True, "variants": {
        "scratch": {"mean": 0.70, "std": 0.02, "per_seed": [0.68, 0.72], "seconds": 3.0},
        "probe": {"mean": 0.66, "std": 0.01, "per_seed": [0.65, 0.67], "seconds": 1.0},
        "finetune": {"mean": 0.75, "std": 0.01, "per_seed": [0.74, 0.76], "seconds": 4.0}}}},
}


#: Fewer UMAP epochs: these tests check what is drawn, not how well UMAP converged.
FAST = dict(n_epochs=60)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tiny models on a shared 2-core machine: extra torch threads only wait on each other.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def graph(shop):
    import rdlviz

    return rdlviz.build_graph(shop, text="drop")


@pytest.fixture(scope="module")
def backbone(graph):
    from rdlviz.nn import Backbone

    torch.manual_seed(123)  # not the seed the random-backbone comparison uses (0)
    return Backbone(graph.data, graph.col_stats, channels=16, encoder_layers=1)


def _early_order(graph, frac: float = 0.3) -> int:
    """An order row from the early part of the history (it has a future)."""
    return int(frac * graph.num_nodes["orders"])


# -- subgraph ----------------------------------------------------------------------------------
def test_subgraph_shows_no_future_row_as_visible(graph):
    from rdlviz.sampling import sample
    from rdlviz.viz import subgraph

    cases = [("customers", 3, "2020-06-01"), ("orders", _early_order(graph), None),
             ("products", 5, "2019-09-01")]
    saw_future = 0
    for table, row, when in cases:
        v = subgraph(graph, table, row, time=when)
        t = v.time
        nodes = v.sample.nodes
        # the seed row is drawn, first, at hop 0
        assert (nodes.iloc[0]["table"], nodes.iloc[0]["node"], nodes.iloc[0]["hop"]) == (table, row, 0)
        # every visible row's true time (looked up in the graph, not the view) is <= t
        for tab, part in nodes[nodes["visible"]].groupby("table"):
            if "time" in graph.data[tab]:
                assert (graph.data[tab].time[torch.tensor(part["node"].tolist())] <= t).all(), (table, tab)
        fut = nodes[~nodes["visible"]]
        for tab, part in fut.groupby("table"):
            assert (graph.data[tab].time[torch.tensor(part["node"].tolist())] > t).all()
        saw_future += len(fut)
        # visible rows are exactly what the sampler returns for this seed and time
        b = sample(graph.data, (table, torch.tensor([row])), torch.tensor([t]), num_neighbors=[8, 4], seed=0)
        expect = {(tt, int(i)) for tt in b.node_types for i in b[tt].n_id.tolist()}
        assert set(zip(nodes[nodes["visible"]]["table"], nodes[nodes["visible"]]["node"])) == expect
        # the figure draws the same split: table traces hold visible rows, the grey trace the future
        fig = v.figure
        future_tr = next(tr for tr in fig.data if tr.name == "future: not visible at t")
        assert len(future_tr.x) == len(fut)
        drawn = sum(len(tr.x) for tr in fig.data if tr.name in graph.node_types)
        assert drawn == int(nodes["visible"].sum())
    assert saw_future > 0  # the cases do exercise the future


def test_subgraph_colours_hover_and_hop_layout(graph, shop):
    from rdlviz.viz import subgraph, table_colors

    v = subgraph(graph, "customers", 3, time="2020-06-01")
    colors = table_colors(shop)
    fig = v.figure
    for t in graph.node_types:
        tr = next(tr for tr in fig.data if tr.name == t)
        assert tr.marker.color == colors[t]
    nodes = v.sample.nodes
    assert (nodes["x"] == nodes["hop"]).all() and nodes["hop"].max() <= 2
    # hover text carries the row's values and time
    orders = next(tr for tr in fig.data if tr.name == "orders")
    i = 0
    row = graph.rows("orders", [orders.customdata[i]]).iloc[0]
    text = orders.hovertext[i]
    assert f"amount: {row['amount']:.4g}" in text and f"channel: {row['channel']}" in text
    assert row["ordered_at"].strftime("%Y-%m-%d") in text
    # every future row hangs from a drawn row one hop closer to the seed
    for i, r in nodes[~nodes["visible"]].iterrows():
        assert nodes.loc[r["parent"], "hop"] == r["hop"] - 1
    assert "customers row 3" in v.title and "2020-06-01" in v.title


def test_subgraph_slider_resamples_the_live_figure_in_place(graph):
    from rdlviz.viz import subgraph

    v = subgraph(graph, "customers", 3, time="2020-06-01")
    fw = v.figure_widget
    before = len(v.sample.visible)
    assert len(fw.data[-1].x) == len(v.sample.future) > 0
    latest = v.slider.options[-1][1]
    v.slider.value = latest  # what dragging the slider does
    assert v.time == latest and v.figure_widget is fw
    assert len(v.sample.future) == 0  # nothing in the graph is newer than its latest time
    assert len(fw.data[-1].x) == 0
    visible_points = sum(len(tr.x) for tr in fw.data if tr.name in graph.node_types)
    assert visible_points == len(v.sample.visible) >= before
    assert "2022-01-01" in fw.layout.title.text
    v.set_time("2020-06-01")  # from code: the slider follows
    assert v.slider.value == v.time


def test_subgraph_rejects_bad_input(graph):
    from rdlviz.viz import subgraph

    row = _early_order(graph)
    own = int(graph.data["orders"].time[row])
    with pytest.raises(ConfigError, match="does not exist before then"):
        subgraph(graph, "orders", row, time=own - 86400)
    with pytest.raises(SchemaError, match="unknown table"):
        subgraph(graph, "invoices", 0)
    with pytest.raises(ConfigError, match="row must be"):
        subgraph(graph, "customers", 80)


# -- embeddings --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def proj(graph, backbone):
    from rdlviz.viz import embeddings

    return embeddings(backbone, graph, max_points=400, seed=0, **FAST)


def test_embeddings_one_point_per_row_coloured_by_table(proj, graph, shop):
    from rdlviz.viz import table_colors

    pts = proj.points
    assert len(pts) == 400 and not pts.duplicated(["table", "node"]).any()
    assert proj.embedding.shape == (400, 16)
    assert set(pts["table"]) == set(graph.node_types)
    colors = table_colors(shop)
    fig = proj.figure
    point_traces = [tr for tr in fig.data if tr.name in graph.node_types]
    assert sum(len(tr.x) for tr in point_traces) == 400
    assert all(type(tr).__name__ == "Scattergl" for tr in point_traces)  # WebGL
    for tr in point_traces:
        assert tr.marker.color == colors[tr.name]
        assert len(tr.x) == int((pts["table"] == tr.name).sum())
    # hover names the row and shows its values
    cust = pts[pts["table"] == "customers"].iloc[0]
    tr = next(tr for tr in point_traces if tr.name == "customers")
    row = graph.rows("customers", [int(cust["node"])]).iloc[0]
    fields = list(tr.customdata[0])
    assert fields[0] == f"customers row {int(cust['node'])} · no time column"
    assert f"segment: {row['segment']}" in fields and f"age: {row['age']:.4g}" in fields
    assert tr.hovertemplate.startswith("<b>%{customdata[0]}</b><br>%{customdata[1]}")
    assert fig.layout.xaxis.title.text == "UMAP 1" and "coloured by table" in fig.layout.title.text


def test_embeddings_are_embed_rows_at_each_rows_time(graph, backbone):
    from rdlviz.nn import embed_rows
    from rdlviz.viz import embeddings

    v = embeddings(backbone, graph, table="customers", seed=0, **FAST)
    assert torch.get_num_threads() == 1  # UMAP (numba) must not change torch's thread setting
    assert len(v.points) == graph.num_nodes["customers"]  # every row, no sampling
    ref = embed_rows(backbone, graph, "customers").numpy()
    assert np.allclose(v.embedding, ref, atol=1e-5)
    assert v.points["time"].isna().all()  # customers have no time column


def test_selection_handler_fills_selected(proj, graph):
    fw = proj.figure_widget
    # the live form says what selecting and clicking do; the static page cannot do either
    assert "box/lasso: select rows" in fw.layout.title.text
    assert "box/lasso" not in proj.figure.layout.title.text
    names = [tr.name for tr in fw.data]
    ti_orders, ti_cust = names.index("orders"), names.index("customers")
    # a box selection as the frontend reports it: point indices per trace
    fw._js2py_pointsCallback = {
        "event_type": "plotly_selected",
        "points": {"xs": [0.0] * 5, "ys": [0.0] * 5, "point_indexes": [0, 2, 4, 0, 1],
                   "trace_indexes": [ti_orders, ti_orders, ti_orders, ti_cust, ti_cust]},
        "selector": {"type": "box", "selector_state": {"xrange": [0, 1], "yrange": [0, 1]}},
    }
    sel = proj.selected
    pts = proj.points
    exp_orders = pts[pts["table"] == "orders"].iloc[[0, 2, 4]]
    exp_cust = pts[pts["table"] == "customers"].iloc[[0, 1]]
    expect = set(zip(exp_orders["table"], exp_orders["node"])) | set(zip(exp_cust["table"], exp_cust["node"]))
    assert len(sel) == 5 and set(zip(sel["table"], sel["node"])) == expect
    o = sel[sel["table"] == "orders"].iloc[0]
    assert o["amount"] == graph.rows("orders", [int(o["node"])]).iloc[0]["amount"]  # the row's values
    assert proj.selection().equals(sel)
    assert "5 rows" in proj._sel_html.value
    fw._js2py_pointsCallback = {"event_type": "plotly_deselect", "points": {
        "xs": [], "ys": [], "point_indexes": [], "trace_indexes": []}}
    assert proj.selected.empty


def _brute_knn(z: np.ndarray, i: int, k: int) -> list:
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = zn @ zn[i]
    s[i] = -np.inf
    return list(np.argsort(-s, kind="stable")[:k]), s


def test_neighbors_are_the_cosine_nearest_in_embedding_space(proj):
    pts = proj.points
    for p in (0, 57, 399):
        t, row = pts["table"].iat[p], int(pts["node"].iat[p])
        got = proj.neighbors(t, row, k=10)
        want, sims = _brute_knn(proj.embedding, p, 10)
        assert list(got["rank"]) == list(range(1, 11))
        assert np.allclose(got["cosine"].to_numpy(), sims[want], atol=1e-5)
        # same rows up to ties in similarity
        assert set(zip(got["table"], got["node"])) == set(zip(pts["table"].iloc[want], pts["node"].iloc[want])) \
            or np.allclose(np.sort(sims[want]), np.sort(got["cosine"].to_numpy()), atol=1e-6)
        assert (t, row) not in set(zip(got["table"], got["node"]))
    # a click lists the same neighbours and rings them in the plot
    fw = proj.figure_widget
    ti = [tr.name for tr in fw.data].index("products")
    fw._js2py_pointsCallback = {"event_type": "plotly_click", "points": {
        "xs": [0.0], "ys": [0.0], "point_indexes": [1], "trace_indexes": [ti]}}
    p = int(np.flatnonzero((pts["table"] == "products").to_numpy())[1])
    clicked = proj.clicked
    assert clicked is not None and len(clicked) == 10
    assert clicked[["table", "node", "cosine"]].equals(
        proj.neighbors("products", int(pts["node"].iat[p]), k=10)[["table", "node", "cosine"]])
    ring = fw.data[-1]
    assert len(ring.x) == 11 and ring.x[0] == pytest.approx(pts["x"].iat[p])
    assert f"products row {int(pts['node'].iat[p])}" in proj._panel.value


def test_neighbors_of_a_row_outside_the_sample(proj, graph, backbone):
    from rdlviz.nn import embed_rows

    drawn = set(proj.points.loc[proj.points["table"] == "orders", "node"])
    row = next(i for i in range(graph.num_nodes["orders"]) if i not in drawn)
    got = proj.neighbors("orders", row, k=5)  # embedded on the fly, searched among the drawn points
    q = embed_rows(backbone, graph, "orders", nodes=torch.tensor([row])).numpy()[0]
    zn = proj.embedding / np.linalg.norm(proj.embedding, axis=1, keepdims=True)
    sims = zn @ (q / np.linalg.norm(q))
    assert np.allclose(np.sort(got["cosine"].to_numpy())[::-1], np.sort(sims)[::-1][:5], atol=1e-4)
    with pytest.raises(ConfigError, match="compare_random=True"):
        proj.neighbors("orders", row, space="random")


def test_three_dimensional_projection(graph, backbone):
    from rdlviz.viz import embeddings

    v = embeddings(backbone, graph, table="customers", dim=3, **FAST)
    assert list(v.points.columns[-3:]) == ["x", "y", "z"] and v.points[["x", "y", "z"]].notna().all().all()
    fig = v.figure
    tr = next(t for t in fig.data if t.name == "customers")
    assert type(tr).__name__ == "Scatter3d" and len(tr.z) == graph.num_nodes["customers"]
    assert fig.layout.scene.zaxis.title.text == "UMAP 3"


def test_compare_random_draws_two_panels_in_the_same_colours(graph, backbone):
    from rdlviz.nn import Backbone, embed_rows
    from rdlviz.viz import embeddings

    v = embeddings(backbone, graph, table=["customers", "products"], compare_random=True, seed=0, **FAST)
    fig = v.figure
    assert fig.layout.xaxis2 is not None and fig.layout.xaxis2.domain[0] > fig.layout.xaxis.domain[1]
    left = [tr for tr in fig.data if tr.xaxis in (None, "x") and tr.name in graph.node_types]
    right = [tr for tr in fig.data if tr.xaxis == "x2" and tr.name in graph.node_types]
    assert [t.name for t in left] == [t.name for t in right] == ["customers", "products"]
    assert [t.marker.color for t in left] == [t.marker.color for t in right]
    assert all(len(a.x) == len(b.x) for a, b in zip(left, right))
    assert "randomly initialised" in fig.layout.annotations[1].text
    # the right panel is a fresh backbone of the same architecture, seeded with `seed`
    torch.manual_seed(0)
    rand = Backbone(graph.data, graph.col_stats, **backbone.config())
    ref = embed_rows(rand, graph, "customers").numpy()
    assert np.allclose(v.random_embedding[:80], ref, atol=1e-5)
    assert not np.allclose(v.random_embedding, v.embedding)
    got = v.neighbors("customers", 5, k=3, space="random")
    want, _ = _brute_knn(v.random_embedding, 5, 3)
    assert list(got["node"]) == list(v.points["node"].iloc[want])


def test_colour_by_label_time_and_column(graph, backbone, shop):
    from rdlviz.viz import embeddings

    v = embeddings(backbone, graph, color_by="label", task="customer-order", seed=0, **FAST)
    assert set(v.points["table"]) == {"customers"}  # labels belong to the entity rows
    train = shop.load_task("customer-order").get_table("train").df.sort_values("timestamp", kind="stable")
    latest = train.groupby("customer_id")["label"].last()
    expect = v.points["node"].map(latest)
    assert (v.points["color"].astype(float) == expect.astype(float)).all()
    fig = v.figure
    for cls in ("0", "1"):
        tr = next(tr for tr in fig.data if tr.name == cls)
        assert len(tr.x) == int((expect.astype(int).astype(str) == cls).sum())

    vt = embeddings(backbone, graph, color_by="time", table=["orders", "products"], max_points=200, seed=0,
                    **FAST)
    cont = next(tr for tr in vt.figure.data if tr.marker.colorscale is not None and tr.name == "time")
    orders = vt.points[vt.points["table"] == "orders"]
    assert np.allclose(np.asarray(cont.marker.color, float), orders["time"].to_numpy(float))
    grey = next(tr for tr in vt.figure.data if tr.name.startswith("no time column"))
    assert len(grey.x) == int((vt.points["table"] == "products").sum())

    vc = embeddings(backbone, graph, color_by="segment", table="customers", seed=0, **FAST)
    segs = graph.rows("customers", vc.points["node"].to_numpy())["segment"]
    for s in segs.unique():
        assert len(next(tr for tr in vc.figure.data if tr.name == s).x) == int((segs == s).sum())
    with pytest.raises(ConfigError, match="needs task"):
        embeddings(backbone, graph, color_by="label")
    with pytest.raises(ConfigError, match="not 'table', 'time', 'label' or a column"):
        embeddings(backbone, graph, color_by="colour", table="customers")


def test_cosine_knn_exact_and_inverted_file():
    from rdlviz.viz.embeddings import cosine_knn

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 16))
    z = (centers[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 16))).astype(np.float32)
    idx, dist = cosine_knn(z, 10)
    assert (idx[:, 0] == np.arange(3000)).all() and (dist[:, 0] == 0).all()
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    s = zn @ zn.T
    np.fill_diagonal(s, 2.0)
    exact = np.argsort(-s, axis=1)[:, :10]
    assert (np.sort(idx, 1) == np.sort(exact, 1)).mean() > 0.999
    assert np.allclose(dist, 1 - np.take_along_axis(s, idx, 1).clip(max=1.0), atol=1e-5)
    # the approximate (inverted-file) search, forced on by a low exact limit
    aidx, adist = cosine_knn(z, 10, exact_max=100)
    assert (aidx[:, 0] == np.arange(3000)).all()
    recall = np.mean([len(set(aidx[i]) & set(exact[i])) / 10 for i in range(3000)])
    assert recall > 0.9, recall


# -- dashboard and report ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dash(shop):
    """The dashboard after a user's clicks: build the graph, preview rows, pretrain 4 steps."""
    from rdlviz.viz import dashboard

    d = dashboard(shop, steps=3, channels=16, num_neighbors=(4, 2), batch_size=32, eval_every=4, max_points=300,
                  pretrain_kwargs=dict(encoder_layers=1, eval_batches=2))
    d.widget  # noqa: B018 - the live form, as a notebook would show it
    d.build_button.click()
    d.table_dropdown.value = "customers"
    d.steps.value = 4
    d.pretrain_button.click()
    return d


def test_dashboard_buttons_drive_the_pipeline(dash):
    import ipywidgets as w

    from rdlviz.pretrain.run import PretrainRun

    assert dash.errors == []
    assert dash.graph is not None and set(dash.graph.node_types) == {"customers", "products", "orders"}
    assert dash.preview is not None and dash.preview.table == "customers"
    assert dash.preview.row == dash.row_dropdown.value
    assert dash._preview_box.children[0] is dash.preview.widget
    assert dash.pretrain_button.description == "Pretrain 4 steps"
    assert isinstance(dash.run, PretrainRun) and dash.run.step == 4
    assert dash.monitor.run is dash.run and dash.monitor.redraws >= 1  # losses drawn live, then final
    assert {k for k, _ in dash.monitor.points} >= {"row", "link", "context", "total"}
    assert dash.projector is not None and len(dash.projector.points) == 300
    assert dash._proj_box.children[0] is dash.projector.widget
    assert dash.tabs.selected_index == 4 and isinstance(dash.tabs, w.Tab) and len(dash.tabs.children) == 5
    # picking another row re-draws the preview
    other = dash.row_dropdown.options[0][1]
    dash.row_dropdown.value = other
    assert dash.preview.row == other
    # static form: schema, subgraph, losses and projector figures
    assert len(dash.figures()) == 4
    text = dash.to_html()
    assert text.count("Plotly.newPlot") == 4 and "Pretraining losses" in text


def test_dashboard_shows_errors_instead_of_failing_silently(shop):
    from rdlviz.viz import dashboard

    d = dashboard(shop)
    assert d.pretrain_button.disabled  # nothing to pretrain before a graph exists
    d.picker.select(tables=[])
    d.build_button.click()
    assert d.graph is None and len(d.errors) == 1
    assert "no table is selected" in d._graph_status.value


def _plotlyjs_marker() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()[:400]


def test_report_is_one_offline_file_with_every_section(dash, shop, tmp_path):
    from rdlviz.viz.report import write_report

    path = write_report(tmp_path / "out" / "report.html", dataset=shop, graph=dash.graph, run=dash.run,
                        results=RESULTS, max_points=300)
    text = path.read_text(encoding="utf-8")
    assert text.count(_plotlyjs_marker()) == 1  # plotly.js inline, exactly once
    assert not re.search(r"<script[^>]+src=", text)  # nothing fetched
    for anchor in ("schema", "losses", "embeddings", "comparison"):
        assert f'<section id="{anchor}">' in text
    assert text.count("Plotly.newPlot") == 4
    assert "Not available" not in text
    assert "rdlviz report: shop" in text and "3,649" in text  # header: database and its rows
    assert "steps taken" in text and "[4, 2]" in text  # the run's configuration
    assert "link_holdout" in text and "corruption_p" in text  # the pretraining levers too
    assert "pretrained vs scratch" in text and "0.7500" in text  # comparison figure and table


def test_report_from_a_checkpoint(dash, shop, tmp_path):
    import rdlviz
    from rdlviz.viz.report import write_report

    ckpt = dash.run.save(tmp_path / "ckpt")
    bb = rdlviz.load_backbone(ckpt, dash.graph)
    path = write_report(tmp_path / "r.html", dataset=shop, graph=dash.graph, run=bb, checkpoint=ckpt, max_points=200)
    text = path.read_text(encoding="utf-8")
    assert text.count("Plotly.newPlot") == 3  # schema, losses (from the checkpoint), projector
    assert "Not available: no downstream results" in text
    assert str(Path(ckpt).resolve()) in text
    with pytest.raises(ConfigError, match="should end in .html"):
        write_report(tmp_path / "r.txt", dataset=shop)


# -- browser -------------------------------------------------------------------------------------
def _hover_first_point(page, trace_name: str) -> str:
    """Move the mouse onto the first point of the first trace called ``trace_name`` and
    return the hover box's text."""
    xy = page.evaluate(
        """(name) => { const gd = document.querySelector('.js-plotly-plot'); const fl = gd._fullLayout;
          const tr = gd._fullData.find(t => t.name === name);
          const xa = fl[(tr.xaxis || 'x').replace('x', 'xaxis')], ya = fl[(tr.yaxis || 'y').replace('y', 'yaxis')];
          const r = gd.getBoundingClientRect();
          return [r.left + xa._offset + xa.l2p(tr.x[0]), r.top + ya._offset + ya.l2p(tr.y[0])]; }""", trace_name)
    page.mouse.move(xy[0], xy[1])
    try:
        page.wait_for_selector(".hoverlayer .hovertext", timeout=5_000)
    except Exception:
        return ""
    return page.evaluate("() => Array.from(document.querySelectorAll('.hoverlayer .hovertext'))"
                         ".map(e => e.textContent).join(' | ')")


@pytest.mark.browser
def test_exports_render_in_chromium(dash, shop, graph, backbone, tmp_path):
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    import browser_utils as bu
    from rdlviz.viz import embeddings, subgraph
    from rdlviz.viz.report import write_report

    bu.SHOT_DIR.mkdir(parents=True, exist_ok=True)
    pages = {
        "report": (write_report(tmp_path / "report.html", dataset=shop, graph=dash.graph, run=dash.run,
                                results=RESULTS, max_points=300), 4),
        "subgraph": (subgraph(graph, "customers", 3, time="2020-06-01").to_html(tmp_path / "subgraph.html"), 1),
        "embeddings": (embeddings(backbone, graph, max_points=300, compare_random=True, seed=0, **FAST)
                       .to_html(tmp_path / "embeddings.html"), 1),
    }
    hover_trace = {"subgraph": "orders", "embeddings": "orders"}
    with sync_playwright() as p:
        browser = bu.launch(p)
        try:
            for name, (path, n_plots) in pages.items():
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                log = bu.ErrorLog(page)
                page.goto(Path(path).as_uri(), wait_until="load", timeout=60_000)
                page.wait_for_function(
                    f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n_plots}", timeout=60_000)
                page.wait_for_timeout(800)
                n_markers = page.locator(".js-plotly-plot .scatterlayer .point").count()
                hover = _hover_first_point(page, hover_trace[name]) if name in hover_trace else None
                n_gl = page.locator(".js-plotly-plot canvas").count()
                shot = bu.SHOT_DIR / f"views-{name}.png"
                page.screenshot(path=str(shot), full_page=True)
                errors, blocked = log.errors(), list(log.blocked)
                page.close()
                assert not errors, f"{name}: JS errors {errors}"
                assert not blocked, f"{name} tried to fetch {blocked}"
                if name == "subgraph":
                    assert n_markers > 5  # SVG markers: one per drawn row
                else:
                    assert n_gl > 0  # WebGL scatter canvases
                if name in hover_trace:  # the hover box names the row and shows its values
                    assert hover and f"{hover_trace[name]} row" in hover and ": " in hover, hover
                bu.assert_not_blank(shot)
        finally:
            browser.close()
