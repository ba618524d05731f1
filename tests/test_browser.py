"""The views in a real browser: exported HTML, nbconvert's static fallback, live JupyterLab.

Headless system Chromium (never a downloaded build), offline: any request to a remote
host is aborted and would show up as an error. Each check asserts no page or console
errors, a rendered Plotly DOM, and a non-blank screenshot (saved under
``/tmp/rdlviz-browser`` for a person to look at).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from playwright.sync_api import sync_playwright

import browser_utils as bu

pytestmark = pytest.mark.browser

if not Path(bu.CHROMIUM).exists():  # pragma: no cover - the machine this runs on has it
    pytest.fail(f"system Chromium not found at {bu.CHROMIUM} (set RDLVIZ_CHROMIUM)", pytrace=False)

RESULTS = {
    "database": "toy-f1", "seeds": [0, 1, 2], "machine": "test",
    "tasks": {
        "driver-dnf": {"metric": "roc_auc", "higher_is_better": True, "variants": {
            "scratch": {"mean": 0.74, "std": 0.02, "per_seed": [0.72, 0.74, 0.76], "seconds": 10.0},
            "probe": {"mean": 0.70, "std": 0.01, "per_seed": [0.69, 0.70, 0.71], "seconds": 4.0},
            "finetune": {"mean": 0.76, "std": 0.015, "per_seed": [0.745, 0.76, 0.775], "seconds": 12.0}}},
        "driver-position": {"metric": "mae", "higher_is_better": False, "variants": {
            "scratch": {"mean": 4.0, "std": 0.1, "per_seed": [3.9, 4.0, 4.1]},
            "finetune": {"mean": 3.6, "std": 0.2, "per_seed": [3.4, 3.6, 3.8]}}},
    },
}


@pytest.fixture(scope="module")
def toy_db(tmp_path_factory):
    return bu.make_toy_database(tmp_path_factory.mktemp("browser-db") / "toy-f1")


@pytest.fixture(scope="module")
def shots():
    bu.SHOT_DIR.mkdir(parents=True, exist_ok=True)
    return bu.SHOT_DIR


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = bu.launch(p)
        yield b
        b.close()


def _history(steps: int = 60):
    import math

    import pandas as pd

    rows = []
    for s in range(1, steps + 1):
        d = {k: math.exp(-s / (30 + 10 * i)) + 0.3 for i, k in enumerate(("row", "link", "context"))}
        rows.append({"step": s, "split": "train", "time": 0.1 * s, **d, "total": sum(d.values())})
        if s % 20 == 0:
            rows.append({"step": s, "split": "val", "time": 0.1 * s, **{k: v * 1.05 for k, v in d.items()},
                         "total": 1.05 * sum(d.values())})
    return pd.DataFrame(rows)


def _open_and_check(browser, url: str, shot: Path, expect_plots: int, ignore: tuple = ()):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    log = bu.ErrorLog(page)
    page.goto(url, wait_until="load", timeout=60_000)
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot').length >= {expect_plots}", timeout=60_000)
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.js-plotly-plot')).every("
        " p => p.querySelector('.main-svg') !== null)", timeout=60_000)
    page.wait_for_timeout(500)
    n_plots = page.locator(".js-plotly-plot").count()
    n_traces = page.locator(".js-plotly-plot .trace").count() + page.locator(".js-plotly-plot .table").count()
    page.screenshot(path=str(shot), full_page=True)
    errors = log.errors(ignore)
    blocked = list(log.blocked)
    page.close()
    assert not errors, f"{url}: JS errors {errors}"
    assert n_plots >= expect_plots and n_traces > 0, (n_plots, n_traces)
    bu.assert_not_blank(shot)
    return blocked


def test_exported_html_views_render_offline(browser, toy_db, tmp_path, shots):
    import rdlviz
    from rdlviz import viz

    db = rdlviz.load(toy_db)
    views = {
        "schema": viz.schema(db),
        "losses": viz.losses(_history()),
        "compare": viz.compare(RESULTS),
        "picker": viz.table_picker(db),
    }
    for name, view in views.items():
        path = view.to_html(tmp_path / f"{name}.html")
        blocked = _open_and_check(browser, path.as_uri(), shots / f"export-{name}.png", 1)
        assert not blocked, f"{name}.html tried to fetch {blocked}"


def test_nbconvert_static_fallback_renders(browser, toy_db, tmp_path, shots):
    """A notebook without widget state, converted by nbconvert, shows the static figures
    (plotly.js travels once, in the first view's output)."""
    import nbformat
    from nbconvert import HTMLExporter

    import rdlviz
    from rdlviz import viz
    from rdlviz.viz import _view

    _view.set_static_plotlyjs("once")  # reset: the first output below carries plotly.js
    db = rdlviz.load(toy_db)
    nb = nbformat.v4.new_notebook()
    for i, (code, view) in enumerate([("viz.schema(db)", viz.schema(db)),
                                      ("viz.losses(history)", viz.losses(_history())),
                                      ("viz.compare(results)", viz.compare(RESULTS))]):
        cell = nbformat.v4.new_code_cell(code, execution_count=i + 1)
        cell.outputs = [nbformat.v4.new_output("execute_result", data=view._repr_mimebundle_(),
                                               execution_count=i + 1)]
        nb.cells.append(cell)
    sizes = [len(c.outputs[0]["data"]["text/html"]) for c in nb.cells]
    assert sizes[0] > 3_000_000 and max(sizes[1:]) < 500_000, sizes  # plotly.js only once
    body, _ = HTMLExporter().from_notebook_node(nb)
    out = tmp_path / "static.html"
    out.write_text(body, encoding="utf-8")
    # nbconvert's page template links require.js / MathJax from a CDN: those requests are
    # aborted here (offline), which must not stop the figures from drawing.
    _open_and_check(browser, out.as_uri(), shots / "nbconvert-static.png", 3,
                    ignore=("Failed to load resource",))


NOTEBOOK_CELLS = [
    "import rdlviz\nfrom rdlviz import viz\ndb = rdlviz.load({db!r})",
    "viz.schema(db)",
    "mon = viz.LossMonitor(every_ms=0)\nmon",
    ("import math\n"
     "for s in range(1, 41):\n"
     "    logs = {{k: math.exp(-s / (20 + 5 * i)) + 0.3 for i, k in enumerate(('row', 'link', 'context'))}}\n"
     "    logs.update(total=sum(logs.values()), time=0.05 * s, lr=1e-3)\n"
     "    mon.on_step(s, logs)\n"
     "    if s % 10 == 0:\n"
     "        mon.on_eval(s, {{k: v * 1.05 for k, v in logs.items()}})\n"
     "mon.on_end(None)\n"
     "print('monitor points', sum(len(v[0]) for v in mon.points.values()))"),
    "picker = viz.table_picker(db)\npicker",
    "picker.table_checkbox('drivers').value = False\nprint('picker ok', picker.value['tables'])",
]


def test_live_widgets_in_jupyterlab(browser, toy_db, tmp_path, shots):
    import nbformat

    root = tmp_path / "lab-root"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c.format(db=str(toy_db))) for c in NOTEBOOK_CELLS]
    nbformat.write(nb, root / "views.ipynb")

    env = {"HF_HUB_OFFLINE": "1", "RDLVIZ_HOME": os.environ.get("RDLVIZ_HOME", str(tmp_path / "home"))}
    with bu.JupyterLab(root, env=env) as lab:
        page = browser.new_page(viewport={"width": 1280, "height": 2200})
        log = bu.ErrorLog(page, allow_local=True)
        try:
            page.goto(lab.lab_url("views.ipynb"), wait_until="domcontentloaded", timeout=90_000)
            page.wait_for_function(
                "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                " const k = w && w.sessionContext && w.sessionContext.session"
                "   && w.sessionContext.session.kernel;"
                " return k && k.status === 'idle'; }", timeout=90_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(
                "() => document.querySelector('.jp-Notebook') &&"
                " document.querySelector('.jp-Notebook').innerText.includes('picker ok')",
                timeout=120_000)
            # JupyterLab's widget renderer leaves its output panel without a mime type;
            # a static fallback would be a data-mime-type='text/html' output instead.
            widget_outputs = ".jp-OutputArea-output:not([data-mime-type])"
            page.wait_for_function(
                f"document.querySelectorAll(\"{widget_outputs} .js-plotly-plot .main-svg\").length >= 2"
                " && document.querySelectorAll('.widget-checkbox').length >= 5", timeout=60_000)
            page.wait_for_timeout(1500)  # let the last restyle messages land
            text = page.locator(".jp-Notebook").inner_text()
            n_widgets = page.locator(widget_outputs).count()
            n_static = page.locator(".jp-OutputArea-output[data-mime-type='text/html']").count()
            n_plot_traces = page.locator(f"{widget_outputs} .js-plotly-plot .scatterlayer .trace").count()
            checkboxes = page.locator(".widget-checkbox").count()
            monitor_traces = page.evaluate(
                "() => { const plots = document.querySelectorAll('.js-plotly-plot');"
                " for (const p of plots) { if (p.data && p.data.some(t => (t.name || '').startsWith('row')))"
                "   return p.data.map(t => [t.name, (t.x || []).length]); } return null; }")
            page.locator(".jp-Notebook").screenshot(path=str(shots / "jupyterlab.png"))
            errors = log.errors(ignore=("Failed to load resource",))
        finally:
            page.close()
    assert "Traceback" not in text and "Error displaying widget" not in text, text[-3000:]
    assert "picker ok ['circuits', 'races', 'results', 'qualifying']" in text
    assert "monitor points 176" in text  # 40 steps x 4 losses + 4 evals x 4 losses
    assert n_static == 0, "JupyterLab showed the static fallback instead of the live widget"
    assert n_widgets >= 3 and checkboxes >= 5 and n_plot_traces >= 4, (n_widgets, checkboxes, n_plot_traces)
    # The live FigureWidget got every point: 40 training steps per objective.
    assert monitor_traces is not None, "the LossMonitor widget did not render"
    assert dict(monitor_traces).get("row (train)") == 40, monitor_traces
    assert not errors, errors
    bu.assert_not_blank(shots / "jupyterlab.png")
