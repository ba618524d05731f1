"""Views of every step of the pipeline, one call each.

Each view is a function returning a :class:`View`, which renders as a live widget in
JupyterLab, as a static Plotly figure where no widget frontend exists (nbconvert, a
terminal), and exports to a standalone offline page with ``.to_html(path)``::

    rdlviz.viz.schema(db)                      # tables and foreign keys
    picker = rdlviz.viz.table_picker(db)       # choose tables, columns, semantic types
    graph = rdlviz.build_graph(db, **picker.value)
    mon = rdlviz.viz.LossMonitor()             # live losses during pretraining
    rdlviz.viz.losses(run)                     # the same plot after the run
    rdlviz.viz.compare(results)                # scratch vs probe vs fine-tuned
    rdlviz.viz.subgraph(graph, "drivers", 12)  # one row's temporal subgraph, with a time slider
    rdlviz.viz.embeddings(run)                 # UMAP projector of the row embeddings
    rdlviz.viz.dashboard(db)                   # all of the above as one pretraining widget
    rdlviz.viz.write_report("report.html", dataset=db, run=run)   # one offline HTML file

Colours are shared: a table has one colour in every view
(:func:`~rdlviz.viz.palette.table_colors`), an objective one colour in every loss plot.

Adding a view: write ``rdlviz/viz/<name>.py`` with a function that returns a
:class:`View` (subclass it, overriding ``_build_figure`` and, if the live form is not a
single figure, ``_build_widget``), take colours from :mod:`rdlviz.viz.palette`, and
import its public names below. The imports are eager on purpose: several views share
their module's name (``rdlviz.viz.schema`` the module, ``rdlviz.viz.schema`` the
function), and importing the function here, after its module, is what makes the
package attribute the function. ``import rdlviz`` itself stays light: it loads this
package only on first use of ``rdlviz.viz``.
"""

from rdlviz.viz._view import View, set_static_plotlyjs
from rdlviz.viz.palette import table_colors
from rdlviz.viz.schema import SchemaView, schema, table_info
from rdlviz.viz.picker import TablePicker, table_picker
from rdlviz.viz.losses import LossesView, LossMonitor, losses
from rdlviz.viz.compare import CompareView, compare
from rdlviz.viz.subgraph import SubgraphView, subgraph
from rdlviz.viz.embeddings import EmbeddingView, embeddings
from rdlviz.viz.dashboard import DashboardView, dashboard
from rdlviz.viz.report import write_report

__all__ = [
    "View", "set_static_plotlyjs", "table_colors",
    "schema", "SchemaView", "table_info",
    "table_picker", "TablePicker",
    "losses", "LossesView", "LossMonitor",
    "compare", "CompareView",
    "subgraph", "SubgraphView",
    "embeddings", "EmbeddingView",
    "dashboard", "DashboardView",
    "write_report",
]
