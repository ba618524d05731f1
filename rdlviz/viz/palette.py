"""Colours shared by every view: one colour per table, per objective, per variant.

A reader should be able to follow a table from the schema view to a sampled subgraph to
an embedding plot by its colour alone, so the colour of a table is a function of the
database, never of the view: :func:`table_colors` takes *all* table names of a database
and assigns colours by sorted name. Views call it with the full table list (or the
dataset / graph itself) even when they show only some tables.

The palettes are colour-blind safe: Okabe & Ito's eight colours ("Color Universal
Design", 2008) first, then Paul Tol's *muted* and *light* qualitative schemes
(https://personal.sron.nl/~pault/). Beyond 24 tables colours repeat -- no palette keeps
that many categories apart for every reader, so views also label tables by name.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping

__all__ = [
    "OKABE_ITO",
    "TOL_MUTED",
    "TOL_LIGHT",
    "TABLE_PALETTE",
    "OBJECTIVE_COLORS",
    "VARIANT_COLORS",
    "VARIANT_LABELS",
    "table_colors",
    "objective_color",
    "variant_color",
]

#: Okabe-Ito without black (black is kept for totals and text).
OKABE_ITO = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#F0E442",  # yellow (last: weakest contrast on white)
)

#: Paul Tol's muted qualitative scheme.
TOL_MUTED = (
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933",
    "#DDCC77", "#CC6677", "#882255", "#AA4499",
)

#: Paul Tol's light qualitative scheme (pale grey dropped: it reads as "missing").
TOL_LIGHT = (
    "#77AADD", "#EE8866", "#EEDD88", "#FFAABB", "#99DDFF",
    "#44BB99", "#BBCC33", "#AAAA00",
)

#: Table colours in assignment order: the most distinct colours go to small databases.
TABLE_PALETTE = OKABE_ITO + TOL_MUTED + TOL_LIGHT

#: One fixed colour per pretraining objective, the same in every loss plot.
OBJECTIVE_COLORS: Dict[str, str] = {
    "row": "#0072B2",
    "link": "#D55E00",
    "context": "#009E73",
    "reconstruction": "#CC79A7",
    "total": "#000000",
}
_EXTRA_OBJECTIVE_COLORS = ("#E69F00", "#56B4E9", "#882255", "#999933", "#332288")

#: One fixed colour per downstream variant (scratch, probe, fine-tuned, random probe).
VARIANT_COLORS: Dict[str, str] = {
    "random_probe": "#999999",
    "scratch": "#E69F00",
    "probe": "#56B4E9",
    "finetune": "#0072B2",
}

#: What each variant is, in words (and in the paper's letters: B, P, P&F).
VARIANT_LABELS: Dict[str, str] = {
    "random_probe": "probe on random-init backbone",
    "scratch": "scratch (B)",
    "probe": "pretrained + probe (P)",
    "finetune": "pretrained + fine-tuned (P&F)",
}


def _names(tables) -> list:
    """Table names from a list of names, a RelBench Dataset / Database, or a Graph."""
    manifest = getattr(tables, "manifest", None)
    if manifest is not None and hasattr(manifest, "tables"):
        return list(manifest.tables)
    if hasattr(tables, "table_dict"):
        return list(tables.table_dict)
    if hasattr(tables, "node_types") and not isinstance(tables, (str, bytes)):
        return list(tables.node_types)
    if isinstance(tables, Mapping):
        return list(tables)
    return list(tables)


def table_colors(table_names: Iterable[str]) -> Dict[str, str]:
    """Map every table of a database to its colour (``"#RRGGBB"``).

    Colours are assigned by sorted table name, so the same database gives the same
    colours in every view and every session, whatever order the names come in.

    Args:
        table_names: *all* table names of the database -- or the database itself (a
            RelBench ``Dataset``/``Database``, or anything with ``node_types``). Passing
            a subset would recolour the tables; pass the full list and look up the
            subset.

    Returns:
        ``{table: hex colour}``. Colours repeat after ``len(TABLE_PALETTE)`` (24) tables.
    """
    names = sorted(set(_names(table_names)))
    return {t: TABLE_PALETTE[i % len(TABLE_PALETTE)] for i, t in enumerate(names)}


def objective_color(name: str, others: Iterable[str] = ()) -> str:
    """Colour of a pretraining objective; unknown objectives get the next free colour.

    Args:
        name: objective name, e.g. ``"row"``.
        others: the unknown objectives already shown, in order of appearance, so each
            new one gets a colour of its own.
    """
    if name in OBJECTIVE_COLORS:
        return OBJECTIVE_COLORS[name]
    extra = [o for o in others if o not in OBJECTIVE_COLORS]
    i = extra.index(name) if name in extra else len(extra)
    return _EXTRA_OBJECTIVE_COLORS[i % len(_EXTRA_OBJECTIVE_COLORS)]


def variant_color(name: str) -> str:
    """Colour of a downstream variant (``scratch``, ``probe``, ``finetune``, ...)."""
    return VARIANT_COLORS.get(name, "#332288")
