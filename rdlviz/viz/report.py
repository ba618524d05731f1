"""``write_report(path, dataset=..., run=...)``: one standalone HTML file of a whole run.

The report is what ``rdlviz demo`` and ``rdlviz report`` leave behind: a single file
that opens offline in any browser and can be mailed or archived with the checkpoint. It
holds, in order,

1. a header: database, tables and rows, the graph, the run's configuration, the
   checkpoint, the date;
2. the schema (:func:`rdlviz.viz.schema`);
3. the pretraining losses (:func:`rdlviz.viz.losses`), from the run's history -- or, for
   a backbone loaded from a checkpoint, from the history saved in the checkpoint;
4. the embedding projector (:func:`rdlviz.viz.embeddings`) on a seeded random sample of
   rows (``max_points``, 5,000 by default, keeps the file small and the page fast);
5. the downstream comparison (:func:`rdlviz.viz.compare`) and its numbers as a table.

A section whose input is missing says so instead of disappearing. plotly.js (~4.8 MB) is
embedded once, in the page head; every figure is a small script that draws into its own
``div`` (the same fragment the views' static fallback uses), so the file weighs about
plotly.js plus the figures' data, and no script is fetched from a CDN.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import pandas as pd
import plotly.graph_objects as go

from rdlviz.errors import ConfigError
from rdlviz.viz._view import static_html_fragment

__all__ = ["write_report", "html_page", "REPORT_MAX_POINTS"]

#: Rows drawn in the report's projector.
REPORT_MAX_POINTS = 5_000

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
header { background: #ffffff; border-bottom: 1px solid #ddd; padding: 18px 32px 10px; }
header h1 { margin: 0 0 6px; font-size: 24px; }
header .meta { color: #555; font-size: 13px; }
nav { font-size: 13px; margin-top: 8px; }
nav a { margin-right: 14px; color: #0072B2; text-decoration: none; }
main { padding: 8px 32px 40px; }
section { background: #ffffff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 12px 18px;
          margin: 18px 0; }
section h2 { font-size: 18px; margin: 4px 0 8px; }
section p.note { color: #666; font-size: 13px; margin: 4px 0 10px; }
table.kv, table.rdlviz-table { border-collapse: collapse; font-size: 12px; margin: 6px 0; }
table.kv td, table.kv th, table.rdlviz-table td, table.rdlviz-table th {
  border-bottom: 1px solid #eee; padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
table.kv th { color: #555; font-weight: 600; white-space: nowrap; }
.cols { display: flex; flex-wrap: wrap; gap: 28px; }
"""


def html_page(title: str, header: str, sections: Sequence[Tuple[str, str, str]]) -> str:
    """A standalone page: ``title``, a ``header`` block (HTML) and ``(anchor, heading,
    body HTML)`` sections, with plotly.js inline once in the head."""
    from plotly.offline import get_plotlyjs

    nav = " ".join(f'<a href="#{a}">{html.escape(h)}</a>' for a, h, _ in sections)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_CSS}</style>",
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>",
        f"<script>{get_plotlyjs()}</script>",
        "</head><body>",
        f"<header><h1>{html.escape(title)}</h1>{header}<nav>{nav}</nav></header><main>",
    ]
    for anchor, heading, body in sections:
        parts.append(f'<section id="{anchor}"><h2>{html.escape(heading)}</h2>{body}</section>')
    parts.append("</main></body></html>")
    return "\n".join(parts)


def figure_html(fig: go.Figure) -> str:
    """One figure as a fragment for :func:`html_page` (plotly.js comes from the head)."""
    return static_html_fragment(fig, include_plotlyjs=False)


def _kv_table(items: Mapping[str, Any]) -> str:
    rows = []
    for k, v in items.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, (list, tuple, dict)):
            v = json.dumps(v, default=str)
        rows.append(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>")
    return f'<table class="kv">{"".join(rows)}</table>'


def _date(ts) -> str:
    if ts is None:
        return "none"
    ts = pd.Timestamp(ts)
    return str(ts.date()) if ts == ts.normalize() else str(ts)


def _history_of(run, checkpoint) -> Optional[pd.DataFrame]:
    """The loss history: the run's own, else the one saved in the checkpoint."""
    hist = getattr(run, "history", None)
    if isinstance(hist, pd.DataFrame) and len(hist):
        return hist
    if checkpoint is not None:
        from rdlviz.pretrain.checkpoint import read_checkpoint

        saved = read_checkpoint(checkpoint).get("history")
        if saved:
            df = pd.DataFrame(saved)
            if len(df) and "step" in df.columns:
                return df
    return None


def _run_facts(run, checkpoint) -> Dict[str, Any]:
    facts: Dict[str, Any] = {}
    cfg = getattr(run, "config", None)
    if isinstance(cfg, dict):  # a PretrainRun
        facts.update({"steps taken": run.step, "best step": run.best_step,
                      "best validation loss": run.best_val, "stopped by": run.stopped,
                      "seconds": round(float(run.seconds.get("total", 0.0)), 1)})
        keep = ("objectives", "steps", "batch_size", "num_neighbors", "channels", "num_layers", "encoder",
                "temporal", "lr", "weights", "corruption_p", "link_holdout", "seed_tables", "temperature",
                "max_negatives", "seed")
        facts.update({k: cfg[k] for k in keep if k in cfg})
    elif run is not None and hasattr(run, "config"):  # a Backbone
        facts.update({f"backbone {k}": v for k, v in run.config().items()})
    if checkpoint is not None:
        facts["checkpoint"] = str(Path(checkpoint).resolve())
        if not isinstance(cfg, dict):
            from rdlviz.pretrain.checkpoint import read_checkpoint

            ck = read_checkpoint(checkpoint)
            prog = ck.get("progress") or {}
            pre = ck.get("pretrain") or {}
            facts.update({k: v for k, v in (("steps taken", prog.get("step")), ("best step", prog.get("best_step")),
                                            ("objectives", pre.get("objectives")),
                                            ("num_neighbors", pre.get("num_neighbors"))) if v is not None})
    return facts


def write_report(path: Union[str, Path], *, dataset, graph=None, run=None, checkpoint=None,
                 results: Optional[Union[Mapping, str, Path]] = None, title: Optional[str] = None,
                 max_points: int = REPORT_MAX_POINTS, color_by: str = "table") -> Path:
    """Write one standalone offline HTML report of a database, a pretraining run and its
    downstream results.

    Args:
        path: the ``.html`` file to write (folders are created).
        dataset: the database (``rdlviz.load(...)`` or a name / path for it).
        graph: the :class:`rdlviz.Graph` the backbone reads (default: the run's graph).
        run: a :class:`~rdlviz.pretrain.run.PretrainRun`, or a
            :class:`~rdlviz.nn.Backbone` (e.g. from :func:`rdlviz.load_backbone`).
        checkpoint: the checkpoint folder the backbone came from (its saved loss history
            and configuration are shown when ``run`` carries none).
        results: downstream comparison, in :func:`rdlviz.viz.compare`'s format (a dict
            or a JSON path).
        title: page title (default: ``"rdlviz report: <database>"``).
        max_points: rows drawn in the projector (a seeded random sample).
        color_by: the projector's colouring (see :func:`rdlviz.viz.embeddings`).

    Returns:
        The path written.
    """
    import rdlviz
    from rdlviz.data.load import load
    from rdlviz.viz.compare import compare
    from rdlviz.viz.embeddings import embeddings
    from rdlviz.viz.losses import losses
    from rdlviz.viz.schema import schema

    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"write_report: {path} should end in .html")
    ds = load(dataset)
    sv = schema(ds)
    name = sv.name
    graph = graph if graph is not None else getattr(run, "graph", None)
    title = title or f"rdlviz report: {name}"
    sections: List[Tuple[str, str, str]] = []

    # -- header ----------------------------------------------------------------------------
    info = sv.info
    db_facts = {"database": name, "tables": len(info), "rows": f"{sum(i.rows for i in info.values()):,}",
                "foreign keys": sum(len(i.fkeys) for i in info.values()),
                "validation cutoff": _date(getattr(ds, "val_timestamp", None)),
                "test cutoff": _date(getattr(ds, "test_timestamp", None))}
    if graph is not None:
        db_facts["graph"] = (f"{len(graph.node_types)} node types, {sum(graph.num_nodes.values()):,} nodes, "
                             f"{sum(graph.num_edges.values()):,} edges, text: {graph.text}")
    run_facts = _run_facts(run, checkpoint)
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    header = (f'<div class="meta">written {html.escape(when)} by rdlviz {html.escape(rdlviz.__version__)}</div>'
              f'<div class="cols"><div>{_kv_table(db_facts)}</div>'
              + (f"<div>{_kv_table(run_facts)}</div>" if run_facts else "") + "</div>")

    # -- schema ----------------------------------------------------------------------------
    sections.append(("schema", "Schema: tables and foreign keys",
                     '<p class="note">Each table becomes a node type, each foreign key a typed edge; '
                     "hover a table for its columns and semantic types.</p>" + figure_html(sv.figure)))

    # -- losses ----------------------------------------------------------------------------
    hist = _history_of(run, checkpoint)
    if hist is not None:
        lv = losses(run if hist is getattr(run, "history", None) else hist)  # a run also marks its best step
        body = ('<p class="note">Contrastive losses per objective (each divided by log(K+1): 1.0 is chance).'
                "</p>" + figure_html(lv.figure))
    else:
        body = '<p class="note">Not available: no pretraining history was given (pass a run or a checkpoint).</p>'
    sections.append(("losses", "Pretraining losses", body))

    # -- projector -------------------------------------------------------------------------
    if run is not None and graph is not None:
        ev = embeddings(run, graph, color_by=color_by, max_points=max_points, seed=0)
        shown = (f"all {ev.total_rows:,} rows" if len(ev.points) == ev.total_rows else
                 f"{len(ev.points):,} of {ev.total_rows:,} rows (a seeded random sample)")
        body = (f'<p class="note">{shown}, each '
                "embedded from its temporal subgraph at its own time and projected with cosine UMAP. "
                "Hover a point for its row.</p>" + figure_html(ev.figure))
    elif run is not None:
        body = '<p class="note">Not available: the backbone was given without the graph it reads.</p>'
    else:
        body = '<p class="note">Not available: no backbone was given.</p>'
    sections.append(("embeddings", "Embedding projector", body))

    # -- comparison ------------------------------------------------------------------------
    if results is not None:
        cv = compare(results)
        table = cv.table()
        num = table.copy()
        for c in ("mean", "std", "seconds"):
            if c in num:
                num[c] = num[c].map(lambda v: "" if v is None or v != v else f"{v:.4f}" if c != "seconds" else f"{v:,.1f}")
        body = ('<p class="note">Scratch (B) vs pretrained + probe (P) vs pretrained + fine-tuned (P&amp;F): '
                "mean ± std over seeds, on each task's test split.</p>" + figure_html(cv.figure)
                + num.to_html(index=False, border=0, classes="rdlviz-table", escape=True))
    else:
        body = '<p class="note">Not available: no downstream results were given.</p>'
    sections.append(("comparison", "Does pretraining pay off? Downstream comparison", body))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(title, header, sections), encoding="utf-8")
    return path
