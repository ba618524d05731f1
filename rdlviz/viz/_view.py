"""``View``: one object per view that renders the right way wherever it is shown.

Every rdlviz view is one call returning a :class:`View`. A view must work three ways:

1. **live widget** in JupyterLab (or any frontend with the Jupyter widget manager):
   a Plotly ``FigureWidget`` (an anywidget) or an ipywidgets container;
2. **static figure** where no widget frontend exists (``jupyter nbconvert`` of a saved
   notebook, nbviewer, a terminal);
3. **standalone HTML** via :meth:`View.to_html`, with plotly.js embedded inline so the
   file opens offline.

The mechanism is the IPython rich-display protocol. :meth:`View._repr_mimebundle_`
returns, side by side,

* ``application/vnd.jupyter.widget-view+json`` -- only inside a kernel, where a widget
  frontend may be listening; JupyterLab prefers it and renders the live widget;
* ``text/html`` -- a static Plotly rendering; nbconvert falls back to it when the
  notebook carries no widget state (its ``WidgetsDataTypeFilter`` skips widget outputs
  without state), and so do other HTML-only frontends;
* ``text/plain`` -- a one-line summary for terminals.

plotly.js (4.8 MB) is embedded in the static fallback only once per kernel session --
in the first view displayed, as Plotly's own notebook renderer does -- so a notebook
with ten views does not weigh 50 MB. Later fallbacks wait for ``window.Plotly`` instead
of assuming it, so cells run out of order still render in a static export; when the
cell that carried plotly.js is run again its new output carries it again. Use
:func:`set_static_plotlyjs` (``"always"`` / ``"never"``) to change the policy.

Subclasses override :meth:`View._build_figure` (the static ``go.Figure``) and, for
views that are not a single figure (e.g. the table picker), :meth:`View._build_widget`.
"""

from __future__ import annotations

import html
import json
import tempfile
import uuid
import webbrowser
from pathlib import Path
from typing import Any, Dict, Optional, Union

import plotly.graph_objects as go
import plotly.io as pio

from rdlviz.errors import ConfigError

__all__ = ["View", "widgets_usable", "figure_widget", "set_static_plotlyjs", "PLOT_CONFIG"]

WIDGET_MIMETYPE = "application/vnd.jupyter.widget-view+json"

#: plotly.js config used by every view (static and live): resize with the page, keep
#: the mode bar free of vendor links.
PLOT_CONFIG: Dict[str, Any] = {"responsive": True, "displaylogo": False}

_STATIC_PLOTLYJS = "once"
# (cell id, execution count) of the output that carries plotly.js in this kernel session.
_carrier: Optional[tuple] = None
_current_cell: Dict[str, Any] = {"id": None}
_hook_installed = False


def set_static_plotlyjs(mode: str) -> None:
    """How the static (non-widget) fallback of a displayed view ships plotly.js.

    Args:
        mode: ``"once"`` (default): inline in the first view displayed in the kernel
            session (and again when that cell is re-run); ``"always"``: inline in every
            view (robust, but each output weighs ~4.8 MB); ``"never"``: rely on a page
            that already loads plotly.js.
    """
    global _STATIC_PLOTLYJS, _carrier
    if mode not in ("once", "always", "never"):
        raise ConfigError(f"set_static_plotlyjs: mode must be 'once', 'always' or 'never', got {mode!r}")
    _STATIC_PLOTLYJS = mode
    _carrier = None


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return None
    return get_ipython()


def widgets_usable() -> bool:
    """True inside a Jupyter kernel with ipywidgets importable.

    Outside a kernel (plain Python, terminal IPython) nothing could render a widget, so
    views skip creating one and show their static form.
    """
    ip = _ipython()
    if ip is None or getattr(ip, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def figure_widget(fig: go.Figure) -> go.FigureWidget:
    """A live ``FigureWidget`` copy of ``fig``.

    Raises:
        ImportError: plotly >= 6 renders ``FigureWidget`` through the ``anywidget``
            package; the message says how to install it.
    """
    try:
        return go.FigureWidget(fig)
    except ImportError as e:
        raise ImportError(
            "live plotly views need the 'anywidget' package (plotly >= 6 renders "
            "FigureWidget through it): pip install anywidget"
        ) from e


def _track_cells(ip) -> None:
    """Remember the id of the cell being run (JupyterLab sends it with each request)."""
    global _hook_installed
    if _hook_installed or ip is None or not hasattr(ip, "events"):
        return

    def pre_run_cell(info=None):
        _current_cell["id"] = getattr(info, "cell_id", None)

    ip.events.register("pre_run_cell", pre_run_cell)
    _hook_installed = True


def _ship_plotlyjs_now() -> bool:
    """Whether this static fallback should carry plotly.js (see the module docstring)."""
    global _carrier
    if _STATIC_PLOTLYJS == "always":
        return True
    if _STATIC_PLOTLYJS == "never":
        return False
    ip = _ipython()
    _track_cells(ip)
    here = (_current_cell["id"], getattr(ip, "execution_count", None))
    if _carrier is None:
        _carrier = here
        return True
    # The carrying cell re-run: its old output (and plotly.js with it) is being replaced.
    if here[0] is not None and here[0] == _carrier[0] and here[1] != _carrier[1]:
        _carrier = here
        return True
    return False


def _figure_json(fig: go.Figure) -> str:
    # "</" must not appear inside an inline <script>; "<\/" is the same JS string.
    return pio.to_json(fig, validate=False).replace("</", "<\\/")


def static_html_fragment(fig: go.Figure, include_plotlyjs: bool) -> str:
    """An HTML fragment that draws ``fig`` with plotly.js once ``window.Plotly`` exists.

    The drawing script polls for ``window.Plotly`` (for up to 20 s) rather than assuming
    it, so a fragment may come before the fragment that loads plotly.js.
    """
    div_id = "rdlviz-" + uuid.uuid4().hex
    height = fig.layout.height or 450
    parts = ['<div class="rdlviz-view">']
    if include_plotlyjs:
        from plotly.offline import get_plotlyjs

        parts.append("<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>")
        parts.append(f"<script>{get_plotlyjs()}</script>")
    parts.append(f'<div id="{div_id}" class="plotly-graph-div" style="height:{int(height)}px; width:100%;"></div>')
    parts.append(
        "<script>(function(){"
        f"var fig = {_figure_json(fig)}; var id = '{div_id}'; var tries = 0;"
        "function draw(){ var el = document.getElementById(id); if (!el) return;"
        f" if (window.Plotly) {{ window.Plotly.newPlot(el, fig.data, fig.layout, {json.dumps(PLOT_CONFIG)}); }}"
        " else if (tries++ < 400) { setTimeout(draw, 50); }"
        " else { el.textContent = 'plotly.js is not loaded on this page: run the notebook from"
        " the top, or export this view with View.to_html(path).'; } }"
        " draw(); })();</script>"
    )
    parts.append("</div>")
    return "".join(parts)


class View:
    """A view: a static Plotly figure, a live widget, and an HTML export of the same thing.

    Build one from a figure (``View(fig, title=...)``) or subclass it and override
    :meth:`_build_figure` / :meth:`_build_widget`.

    Attributes:
        title: what the view shows, in words (used in ``repr`` and the HTML ``<title>``).
    """

    def __init__(self, figure: Optional[go.Figure] = None, *, title: str = "") -> None:
        self._figure = figure
        self._widget = None
        self._displayed = False
        self.title = title or (figure.layout.title.text if figure is not None and figure.layout.title.text else "")

    # -- what subclasses provide -------------------------------------------------------
    def _build_figure(self) -> go.Figure:
        """The static figure. The default returns the figure the view was built with."""
        if self._figure is None:
            raise NotImplementedError(f"{type(self).__name__} has no figure")
        return self._figure

    def _build_widget(self):
        """The live widget. The default is a ``FigureWidget`` copy of :attr:`figure`."""
        return figure_widget(self.figure)

    def _summary(self) -> str:
        """One line saying what the view shows (``text/plain``)."""
        return self.title or type(self).__name__

    # -- public ------------------------------------------------------------------------
    @property
    def figure(self) -> go.Figure:
        """The static ``plotly.graph_objects.Figure`` (edit it to restyle the view)."""
        return self._build_figure()

    @property
    def widget(self):
        """The live ipywidgets widget (created on first access)."""
        if self._widget is None:
            self._widget = self._build_widget()
        return self._widget

    def to_html(self, path: Optional[Union[str, Path]] = None, *, include_plotlyjs: bool = True) -> Union[Path, str]:
        """Export the view as a standalone HTML page.

        Args:
            path: file to write; ``None`` returns the HTML text instead.
            include_plotlyjs: embed plotly.js inline (default), so the page works
                offline and without a CDN. ``False`` gives a small page that needs
                ``Plotly`` from elsewhere.

        Returns:
            The path written, or the HTML text when ``path`` is ``None``.
        """
        text = pio.to_html(self.figure, include_plotlyjs=bool(include_plotlyjs), full_html=True,
                           config=PLOT_CONFIG, validate=False)
        title = html.escape(self.title or "rdlviz view")
        text = text.replace("<head>", f'<head><meta charset="utf-8"><title>{title}</title>', 1)
        if path is None:
            return text
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def show(self) -> Optional[Path]:
        """Display the view: inline in a notebook, else in the default web browser.

        Returns:
            ``None`` in a notebook; outside one, the temporary HTML file opened.
        """
        ip = _ipython()
        if ip is not None and getattr(ip, "kernel", None) is not None:
            from IPython.display import display

            display(self)
            return None
        out = Path(tempfile.mkdtemp(prefix="rdlviz-")) / "view.html"
        self.to_html(out)
        webbrowser.open(out.as_uri())
        return out

    # -- rich display ------------------------------------------------------------------
    def _static_html(self) -> str:
        """The ``text/html`` fallback shown where widgets cannot render."""
        return static_html_fragment(self.figure, _ship_plotlyjs_now())

    def _repr_mimebundle_(self, include=None, exclude=None) -> Dict[str, Any]:
        data: Dict[str, Any] = {"text/plain": repr(self)}
        if widgets_usable():
            try:
                data.update({k: v for k, v in self.widget._repr_mimebundle_().items() if k == WIDGET_MIMETYPE})
            except ImportError:
                pass  # no anywidget: the static figure below still renders
        data["text/html"] = self._static_html()
        self._displayed = True
        if include:
            data = {k: v for k, v in data.items() if k in include}
        if exclude:
            data = {k: v for k, v in data.items() if k not in exclude}
        return data

    def __repr__(self) -> str:
        return f"<rdlviz {type(self).__name__}: {self._summary()}>"
