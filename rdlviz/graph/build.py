"""Database -> temporal heterogeneous graph: one node type per table, one edge type per
foreign key (and its reverse), one TensorFrame of features per table.

The heavy lifting is RelBench's ``make_pkey_fkey_graph`` (rows -> ``torch_frame``
TensorFrames, fkeys -> ``(child, f2p_<fkey>, parent)`` edges and their ``rev_f2p_``
reverses); this module decides *what* goes in and fixes what comes out:

* **Cutoff.** A graph holds only rows a model may see: by default rows up to the test
  timestamp (what predicting the test period may use), ``"val"`` for pretraining. Rows
  after the cutoff are removed before anything is materialised, so no statistic,
  vocabulary or text embedding is computed from the future; references into removed rows
  become missing and make no edge.
* **Features.** :mod:`rdlviz.graph.stypes` proposes stypes deterministically, drops keys
  and identifier-like columns, and applies the user's selection and overrides. Stypes
  and column statistics (category vocabularies, means, year ranges) are computed from
  the rows up to the val cutoff whatever the graph's cutoff, so the val-cutoff graph a
  backbone is pretrained on and the test-cutoff graph it is fine-tuned on encode every
  value identically, and no statistic comes from the validation or test period.
* **Time.** Node ``time`` is UNIX seconds from :func:`rdlviz.graph.time.to_unix_seconds`,
  replacing relbench 3.0.2's conversion (off by 1,000x under pandas 3).
* **Cache.** TensorFrames and the chosen stypes are stored under
  ``<home>/graphs/<dataset>-<fingerprint of the dataset files and every option>/``, written
  atomically, so a second build of the same graph only reads them back; text vectors are
  cached per string (:mod:`rdlviz.graph.text`) and shared across graphs.

:class:`Graph` keeps the PyG ``HeteroData`` together with what the rest of the pipeline
needs: the database at the cutoff (to show a node's row), stypes and column statistics
(to build encoders), and a schema fingerprint (so a checkpoint refuses a graph whose
tables, features or stypes differ, and says how).
"""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
import time as _time
import warnings
from collections import deque
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch
from relbench.base import Database, Dataset, Table
from torch_frame import stype
from torch_frame.config import TextEmbedderConfig
from torch_geometric.data import HeteroData

from rdlviz.data.cache import atomic_dir, file_fingerprint, fingerprint, home
from rdlviz.errors import ConfigError, SchemaError
from rdlviz.graph.stypes import (Dropped, StypeLike, Stypes, parse_stype, propose_stypes,
                                 select_features)
from rdlviz.graph.text import TEXT_MODES, TextEncoder, make_text_encoder
from rdlviz.graph.time import to_unix_seconds

__all__ = ["build_graph", "Graph", "schema_diff"]

# Bump when the way a graph is built changes, so old cache entries are not reused.
_BUILDER_VERSION = 3

EdgeType = Tuple[str, str, str]
CutoffLike = Union[str, pd.Timestamp, None]


def meta_distances(edge_types: Sequence[EdgeType], start: str, forward: bool = True) -> Dict[str, int]:
    """Hops from ``start`` to every table it reaches in the meta-graph (``start``: 0).
    Sampling walks an edge type ``(child, rel, parent)`` from parent to child, so
    ``forward`` goes parent -> child and the reverse child -> parent."""
    dist, todo = {start: 0}, deque([start])
    while todo:
        t = todo.popleft()
        for c, _, p in edge_types:
            a, b = (p, c) if forward else (c, p)
            if a == t and b not in dist:
                dist[b] = dist[t] + 1
                todo.append(b)
    return dist


# --------------------------------------------------------------------------------------
# The Graph
# --------------------------------------------------------------------------------------


class Graph:
    """A relational database as a temporal heterogeneous graph.

    Attributes:
        data: PyG ``HeteroData``. Per table ``t``: ``data[t].tf`` (TensorFrame, one row per
            table row, node index = row position = reindexed primary key),
            ``data[t].num_nodes``, and ``data[t].time`` (``int64[num_nodes]``, UNIX
            seconds) where the table has a time column. Per foreign key ``fk`` of ``t``
            to ``p``: ``data[t, "f2p_<fk>", p].edge_index`` and
            ``data[p, "rev_f2p_<fk>", t].edge_index`` (``int64[2, E]``).
        col_stats: ``{table: {column: {StatType: value}}}`` (torch_frame statistics).
        stypes: ``{table: {column: stype}}`` of the feature columns (keys excluded).
        dropped: ``{table: {column: reason}}`` for every non-key column left out.
        dataset: the RelBench ``Dataset`` it was built from.
        db: the RelBench ``Database`` at the cutoff (rows the graph holds).
        cutoff: the last timestamp included (``pd.Timestamp``), or ``None`` for all rows.
        stats_cutoff: the rows stypes and column statistics were computed from (up to
            the val cutoff, or ``cutoff`` if earlier).
        time_cols: ``{table: time column or None}``.
        text: the text mode (``"minilm"``, ``"hash"`` or ``"drop"``).
        val_time / test_time: the dataset's cutoffs in UNIX seconds.
        options: the :func:`build_graph` arguments other than the dataset and the
            cutoff, so :meth:`with_cutoff` can build the same graph at another cutoff.
    """

    def __init__(self, data: HeteroData, col_stats: dict, stypes: Stypes, dropped: Dropped,
                 dataset: Dataset, db: Database, cutoff: Optional[pd.Timestamp],
                 stats_cutoff: pd.Timestamp, text: str, text_dim: Optional[int],
                 build_seconds: float = 0.0, from_cache: bool = False,
                 options: Optional[dict] = None) -> None:
        self.data = data
        self.col_stats = col_stats
        self.stypes = stypes
        self.dropped = dropped
        self.dataset = dataset
        self.db = db
        self.cutoff = cutoff
        self.stats_cutoff = stats_cutoff
        self.text = text
        self._text_dim = text_dim
        self.time_cols = {t: tab.time_col for t, tab in db.table_dict.items()}
        self.val_time = to_unix_seconds(pd.Timestamp(dataset.val_timestamp))
        self.test_time = to_unix_seconds(pd.Timestamp(dataset.test_timestamp))
        #: wall-clock seconds the build took, and whether TensorFrames came from the cache
        self.build_seconds = build_seconds
        self.from_cache = from_cache
        self.options = dict(options or {})

    def with_cutoff(self, cutoff: CutoffLike) -> "Graph":
        """The same graph (tables, features, stypes, text mode) holding the rows up to
        another ``cutoff`` (see :func:`build_graph`); ``self`` if the cutoff is its own.
        Stypes and column statistics come from the rows up to the val cutoff either way,
        so a backbone built for one reads the other.

        Example:
            >>> graph = rdlviz.build_graph("rel-f1", text="hash")   # rows up to the test cutoff
            >>> graph.with_cutoff(None).cutoff is None               # every row
            True
        """
        if _resolve_cutoff(self.dataset, cutoff) == self.cutoff:
            return self
        return build_graph(self.dataset, cutoff=cutoff, **self.options)

    # -- structure ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        manifest = getattr(self.dataset, "manifest", None)
        return getattr(manifest, "name", None) or type(self.dataset).__name__

    @property
    def node_types(self) -> List[str]:
        return list(self.data.node_types)

    @property
    def edge_types(self) -> List[EdgeType]:
        return list(self.data.edge_types)

    @property
    def fkey_edge_types(self) -> List[EdgeType]:
        """The child -> parent edge types ``(table, "f2p_<fkey>", parent)``."""
        return [e for e in self.data.edge_types if e[1].startswith("f2p_")]

    @property
    def num_nodes(self) -> Dict[str, int]:
        return {t: int(self.data[t].num_nodes) for t in self.data.node_types}

    @property
    def num_edges(self) -> Dict[EdgeType, int]:
        return {e: int(self.data[e].edge_index.size(1)) for e in self.data.edge_types}

    def diameter(self) -> int:
        """The schema diameter: the longest shortest path, in hops, between two tables
        connected through foreign keys (0 for a single table)."""
        # Every foreign key has its reverse edge type, so hops along edge types are hops
        # through foreign keys in either direction.
        best = 0
        for start in self.node_types:
            best = max(best, max(meta_distances(self.edge_types, start).values()))
        return best

    # -- rows ---------------------------------------------------------------------------
    def rows(self, table: str, index) -> pd.DataFrame:
        """The original rows behind node indices of ``table``.

        Args:
            table: a node type.
            index: one node index or a sequence / array / tensor of them (shape ``[k]``).

        Returns:
            ``DataFrame`` with the table's columns (values as stored, not encoded), one
            row per index, indexed by node index (``"node"``).
        """
        if table not in self.db.table_dict:
            raise SchemaError(f"no table '{table}' in this graph",
                              fix="valid tables: " + ", ".join(self.node_types))
        if isinstance(index, torch.Tensor):
            index = index.detach().cpu().numpy()
        idx = np.asarray(index).reshape(-1)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ConfigError(f"node indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        n = self.num_nodes[table]
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise ConfigError(f"table '{table}' has {n} nodes (0..{n - 1}); "
                              f"index {int(bad[0])} is out of range")
        out = self.db.table_dict[table].df.iloc[idx].copy()
        out.index = pd.Index(idx, name="node")
        return out

    # -- schema -------------------------------------------------------------------------
    @property
    def text_dim(self) -> Optional[int]:
        """Dimension of the text vectors, or ``None`` if the graph has no text feature."""
        return self._text_dim

    def schema(self) -> dict:
        """What a model trained on this graph depends on (JSON-serialisable).

        ``{"tables": {table: {"pkey", "time_col", "fkeys": {col: parent},
        "features": {col: stype name}}}, "edge_types": [[src, rel, dst], ...],
        "text": {"encoder", "dim"} or None}``. Row counts and the cutoff are not part
        of it: a backbone pretrained at the val cutoff serves the test-cutoff graph.
        """
        tables = {}
        for t, tab in self.db.table_dict.items():
            tables[t] = {
                "pkey": tab.pkey_col,
                "time_col": tab.time_col,
                "fkeys": dict(sorted(tab.fkey_col_to_pkey_table.items())),
                "features": {c: s.value for c, s in sorted(self.stypes[t].items())},
            }
        has_text = any(s == stype.text_embedded for st in self.stypes.values()
                       for s in st.values())
        return {
            "tables": dict(sorted(tables.items())),
            "edge_types": sorted([list(e) for e in self.edge_types]),
            "text": {"encoder": self.text, "dim": self._text_dim} if has_text else None,
        }

    def fingerprint(self) -> str:
        """A short hash of :meth:`schema` (equal schemas, equal fingerprints)."""
        return fingerprint(self.schema())

    # -- display ------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """One row per table: nodes, time column, features per stype, fkeys."""
        rows = []
        for t in self.node_types:
            counts: Dict[str, int] = {}
            for s in self.stypes.get(t, {}).values():
                counts[s.value] = counts.get(s.value, 0) + 1
            rows.append({
                "table": t,
                "nodes": self.num_nodes[t],
                "time": self.time_cols.get(t) or "",
                "features": len(self.stypes.get(t, {})),
                "stypes": ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
                "fkeys -> parent": ", ".join(
                    f"{c}->{p}" for c, p in
                    self.db.table_dict[t].fkey_col_to_pkey_table.items()),
            })
        return pd.DataFrame(rows).set_index("table")

    def _header(self) -> List[str]:
        if self.cutoff is None:
            cut = "all rows"
        else:
            which = {self.dataset.test_timestamp: " (test)",
                     self.dataset.val_timestamp: " (val)"}.get(self.cutoff, "")
            when = self.cutoff.date() if self.cutoff == self.cutoff.normalize() else self.cutoff
            cut = f"rows up to {when}{which}"
        text = self.text if self._text_dim is None else f"{self.text}, {self._text_dim}-dim"
        n_edges = sum(self.num_edges.values())
        dropped = [f"{t}.{c}" for t, cols in self.dropped.items() for c in cols]
        lines = [
            f"Graph '{self.name}': {cut}; text: {text}",
            f"{len(self.node_types)} node types, {sum(self.num_nodes.values()):,} nodes; "
            f"{len(self.fkey_edge_types)} foreign keys -> {len(self.edge_types)} edge types, "
            f"{n_edges:,} edges; schema diameter {self.diameter()}; "
            f"fingerprint {self.fingerprint()}",
        ]
        if dropped:
            shown = ", ".join(dropped[:8]) + (f", ... ({len(dropped)} in all)"
                                                if len(dropped) > 8 else "")
            lines.append(f"not features: {shown} (see .dropped)")
        return lines

    def __repr__(self) -> str:
        with pd.option_context("display.width", 120, "display.max_colwidth", 48):
            return "\n".join(self._header()) + "\n" + self.summary().to_string()

    def _repr_html_(self) -> str:
        import html

        head = "<br>".join(html.escape(line) for line in self._header())
        return f"<div><p>{head}</p>{self.summary().to_html()}</div>"


def schema_diff(expected: Union[dict, Graph], actual: Union[dict, Graph]) -> List[str]:
    """Human-readable differences between two graph schemas (empty if they match).

    Args:
        expected: e.g. the schema stored with a checkpoint (or a :class:`Graph`).
        actual: the graph it is being used with (or its schema).
    """
    a = expected.schema() if isinstance(expected, Graph) else expected
    b = actual.schema() if isinstance(actual, Graph) else actual
    out: List[str] = []
    ta, tb = a.get("tables", {}), b.get("tables", {})
    for t in sorted(set(ta) - set(tb)):
        out.append(f"table '{t}' is missing")
    for t in sorted(set(tb) - set(ta)):
        out.append(f"table '{t}' is new")
    for t in sorted(set(ta) & set(tb)):
        for key in ("pkey", "time_col"):
            if ta[t].get(key) != tb[t].get(key):
                out.append(f"table '{t}': {key} {ta[t].get(key)!r} -> {tb[t].get(key)!r}")
        fa, fb = ta[t].get("fkeys", {}), tb[t].get("fkeys", {})
        for c in sorted(set(fa) | set(fb)):
            if fa.get(c) != fb.get(c):
                out.append(f"table '{t}': foreign key '{c}' {fa.get(c)!r} -> {fb.get(c)!r}")
        ca, cb = ta[t].get("features", {}), tb[t].get("features", {})
        for c in sorted(set(ca) - set(cb)):
            out.append(f"table '{t}': feature '{c}' ({ca[c]}) is missing")
        for c in sorted(set(cb) - set(ca)):
            out.append(f"table '{t}': feature '{c}' ({cb[c]}) is new")
        for c in sorted(set(ca) & set(cb)):
            if ca[c] != cb[c]:
                out.append(f"table '{t}': feature '{c}' stype {ca[c]} -> {cb[c]}")
    if a.get("text") != b.get("text"):
        out.append(f"text encoder {a.get('text')} -> {b.get('text')}")
    ea = {tuple(e) for e in a.get("edge_types", [])}
    eb = {tuple(e) for e in b.get("edge_types", [])}
    for e in sorted(ea - eb):
        out.append(f"edge type {e} is missing")
    for e in sorted(eb - ea):
        out.append(f"edge type {e} is new")
    return out


# --------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------


def _resolve_cutoff(dataset: Dataset, cutoff: CutoffLike) -> Optional[pd.Timestamp]:
    if cutoff is None:
        return None
    if isinstance(cutoff, str) and cutoff in ("test", "val"):
        return pd.Timestamp(dataset.test_timestamp if cutoff == "test"
                            else dataset.val_timestamp)
    try:
        ts = pd.Timestamp(cutoff)
    except (ValueError, TypeError):
        raise ConfigError(f"cutoff={cutoff!r} is not 'test', 'val', None or a timestamp") \
            from None
    if ts is pd.NaT:
        raise ConfigError("cutoff is NaT; pass 'test', 'val', None or a timestamp")
    if ts.tzinfo is not None:  # tables hold naive times, read as UTC
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _select_tables(db: Database, tables: Optional[Sequence[str]]) -> Database:
    """Keep ``tables``; foreign keys into the other tables are dropped with them (the
    column stays in the rows for display, but is neither an edge nor a feature)."""
    if tables is None:
        return db
    if isinstance(tables, str):
        tables = [tables]
    tables = list(dict.fromkeys(tables))
    unknown = [t for t in tables if t not in db.table_dict]
    if unknown:
        raise SchemaError("tables= names unknown table(s) "
                          + ", ".join(repr(t) for t in unknown),
                          fix="valid tables: " + ", ".join(db.table_dict))
    if not tables:
        raise SchemaError("tables= is empty", fix="name at least one table, or pass None")
    keep = set(tables)
    return Database({
        t: Table(
            df=db.table_dict[t].df,
            fkey_col_to_pkey_table={c: p for c, p in
                                    db.table_dict[t].fkey_col_to_pkey_table.items()
                                    if p in keep},
            pkey_col=db.table_dict[t].pkey_col,
            time_col=db.table_dict[t].time_col,
        )
        for t in db.table_dict if t in keep
    })


def _dataset_fingerprint(dataset: Dataset, db: Database) -> Optional[str]:
    """A hash of the dataset's content: its files when it is a manifest folder,
    otherwise its tables. ``None`` when neither can be hashed (then nothing is cached)."""
    folder = getattr(dataset, "dataset_dir", None)
    if folder is not None and (Path(folder) / "manifest.yaml").exists():
        folder = Path(folder)
        files = [folder / "manifest.yaml", *sorted((folder / "db").glob("*.parquet"))]
        return file_fingerprint(files)
    try:
        parts = []
        for t, tab in sorted(db.table_dict.items()):
            h = pd.util.hash_pandas_object(tab.df, index=False).to_numpy()
            parts.append([t, tab.pkey_col, tab.time_col,
                          sorted(tab.fkey_col_to_pkey_table.items()),
                          list(map(str, tab.df.columns)), fingerprint(h.tobytes().hex())])
        return fingerprint(parts, str(dataset.val_timestamp), str(dataset.test_timestamp))
    except TypeError:  # unhashable cells (lists): build without a cache
        return None


def _stypes_to_json(stypes: Stypes) -> dict:
    return {t: {c: s.value for c, s in cols.items()} for t, cols in stypes.items()}


def _stypes_from_json(d: dict) -> Stypes:
    return {t: {c: stype(s) for c, s in cols.items()} for t, cols in d.items()}


def column_stats(ser: pd.Series, st: stype) -> dict:
    """torch_frame's ``compute_col_stats``, with a vectorised path for plain numerical
    columns (torch_frame flattens every cell one by one, ~50x slower; same numbers)."""
    from torch_frame.data.stats import StatType, compute_col_stats

    if st == stype.numerical and pd.api.types.is_numeric_dtype(ser.dtype) \
            and not pd.api.types.is_bool_dtype(ser.dtype):
        values = ser.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = values[np.isfinite(values)]
        if finite.size:
            return {
                StatType.MEAN: float(np.mean(finite)),
                StatType.STD: float(np.std(finite)),
                StatType.QUANTILES: np.quantile(finite, q=[0, 0.25, 0.5, 0.75, 1]).tolist(),
            }
    return compute_col_stats(ser, st)


def _materialise(db: Database, stats_db: Database, stypes: Stypes,
                 encoder: Optional[TextEncoder], cache_dir: Optional[Path]
                 ) -> Tuple[HeteroData, dict]:
    """TensorFrames (statistics from ``stats_db``) + edges + times for ``db``.

    Each table's TensorFrame is materialised here with column statistics computed on
    ``stats_db`` and written as ``<cache_dir>/<table>.pt`` -- the file
    ``make_pkey_fkey_graph`` reads back from its ``cache_dir`` -- so RelBench builds the
    edges and checks the keys, while the encoding of every value is ours to fix.
    """
    from relbench.modeling.graph import make_pkey_fkey_graph
    from torch_frame.data import Dataset as FrameDataset

    cfg = None
    if encoder is not None and any(s == stype.text_embedded
                                   for cols in stypes.values() for s in cols.values()):
        # batch_size=None: the encoder sees a whole column at once, dedupes it and
        # batches the distinct strings itself.
        cfg = TextEmbedderConfig(text_embedder=encoder, batch_size=None)
    with contextlib.ExitStack() as stack:
        if cache_dir is None:
            cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rdlviz-")))
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Our own cache files hold numpy scalars in col_stats, so torch_frame falls back
        # from weights-only loading, and says so once per table; the files are ours.
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message="Weights only load failed")
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for t, tab in db.table_dict.items():
            cols = stypes[t]
            path = cache_dir / f"{t}.pt"
            if not cols or path.exists():  # feature-less: RelBench adds a constant
                continue
            stats_df = stats_db.table_dict[t].df
            stats = {c: column_stats(stats_df[c], st) for c, st in cols.items()}
            FrameDataset(df=tab.df, col_to_stype=dict(cols),
                         col_to_text_embedder_cfg=cfg).materialize(path=str(path),
                                                                   col_stats=stats)
        # make_pkey_fkey_graph edits the stype dicts in place; give it copies.
        return make_pkey_fkey_graph(db, copy.deepcopy(stypes), text_embedder_cfg=cfg,
                                    cache_dir=str(cache_dir))


def build_graph(
    dataset,
    tables: Optional[Sequence[str]] = None,
    columns: Optional[Mapping[str, Iterable[str]]] = None,
    stypes: Optional[Mapping[str, Mapping[str, StypeLike]]] = None,
    text: str = "minilm",
    cutoff: CutoffLike = "test",
    time_features: bool = True,
    cache: bool = True,
) -> Graph:
    """Turn a relational database into a temporal heterogeneous graph.

    Args:
        dataset: a RelBench ``Dataset``, or anything :func:`rdlviz.load` accepts
            (``"rel-f1"``, ``"rel-lahman"``, a manifest folder).
        tables: the tables to keep (default all). Foreign keys into tables left out are
            dropped with them.
        columns: ``{table: [feature columns to keep]}``; keys and the time column are
            always kept, tables not named keep all their features.
        stypes: ``{table: {column: stype or its name}}`` overrides of the proposed
            stypes (``"numerical"``, ``"categorical"``, ``"multicategorical"``,
            ``"text_embedded"``, ``"embedding"``, ``"timestamp"``). An override also
            brings back a column the proposal left out as identifier-like.
        text: how text columns become vectors: ``"minilm"`` (all-MiniLM-L6-v2, 384-dim,
            from the packaged weights, offline), ``"hash"`` (character n-gram hashing,
            64-dim, no model) or ``"drop"`` (no text features).
        cutoff: the last moment whose rows the graph holds (inclusive).
            ``"test"`` (default): rows up to the dataset's ``test_timestamp`` -- what a
            model may see when it predicts the test period. ``"val"``: rows up to
            ``val_timestamp`` -- what pretraining may see (use it for pretraining, so the
            validation and test periods stay unseen). ``None``: every row, including
            those after the test cutoff: for inspection, and for
            ``finetune(test_history="seed")``, where the temporal sampler still shows
            each seed only the rows up to its own time (pretraining reads only rows up
            to the val cutoff, whatever graph it is given).
            A timestamp: rows up to it. Tables without a time column are kept whole.
            Whatever the cutoff, stypes and column statistics come from the rows up to
            the val cutoff (or the cutoff, if earlier), so graphs of one dataset share
            their encoding.
        time_features: ``False`` leaves every timestamp column out of the features, the
            time columns included. The sampler still uses the times, and a fine-tuned
            model still sees each row's age relative to the seed time (its temporal
            encoder); what goes is the calendar date itself, whose validation and test
            values lie past anything seen in training. Year-like numbers (rel-f1's
            ``races.year``) are plain numerical columns: leave them out with
            ``columns=``.
        cache: reuse / store TensorFrames and text vectors under
            ``rdlviz.data.cache.home() / "graphs"``.

    Returns:
        A :class:`Graph`; ``graph.data`` is the PyG ``HeteroData``.

    Raises:
        SchemaError: unknown table or column names (the valid ones are listed).
        ConfigError: an invalid stype name, text mode or cutoff.

    Example:
        >>> graph = rdlviz.build_graph("rel-f1", text="hash", cutoff="val")
        >>> graph.data["results"].tf, graph.data["results"].time
    """
    from rdlviz.data.load import load

    start = _time.perf_counter()
    if text not in TEXT_MODES:
        raise ConfigError(f"text={text!r} is not a text mode; choose one of "
                          + ", ".join(repr(m) for m in TEXT_MODES))
    ds = load(dataset)
    cut = _resolve_cutoff(ds, cutoff)
    db = ds.make_db()
    if cut is not None:
        db = db.upto(cut)
    # References to rows past the cutoff become missing: they make no edge.
    ds.validate_and_correct_db(db)
    db = _select_tables(db, tables)
    # Check names and stype values before any expensive work.
    _validate_names(db, columns, stypes)
    # Node times first: a missing time fails here, before anything expensive.
    times = {}
    for t, tab in db.table_dict.items():
        if tab.time_col is not None:
            try:
                times[t] = to_unix_seconds(tab.df[tab.time_col])
            except SchemaError as e:
                raise SchemaError(str(e).split("\n")[0], table=t, column=tab.time_col,
                                  fix=e.fix) from None
    # Stypes and statistics come from the rows up to the val cutoff (or the graph's own,
    # if earlier): every graph of a dataset then encodes a value the same way, so an
    # encoder pretrained at the val cutoff reads the test-cutoff graph, and nothing is
    # learnt about values from the validation or test period.
    val_ts = pd.Timestamp(ds.val_timestamp)
    stats_cut = val_ts if cut is None else min(cut, val_ts)
    stats_db = db.upto(stats_cut)

    target = None
    if cache:
        ds_fp = _dataset_fingerprint(ds, db)
        if ds_fp is not None:
            key = fingerprint(
                _BUILDER_VERSION, ds_fp, None if cut is None else str(cut),
                sorted(db.table_dict),
                {t: sorted([c] if isinstance(c, str) else c)
                 for t, c in (columns or {}).items()},
                {t: {c: parse_stype(v, table=t, column=c).value for c, v in cols.items()}
                 for t, cols in (stypes or {}).items()},
                text, time_features,
            )
            target = home() / "graphs" / f"{_safe(getattr(ds, 'manifest', None))}-{key}"
    encoder = make_text_encoder(text, home() / "graphs" if cache else None)

    meta_path = None if target is None else target / "meta.json"
    if meta_path is not None and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        final, dropped = _stypes_from_json(meta["stypes"]), meta["dropped"]
        data, col_stats = _materialise(db, stats_db, final, encoder, target / "tf")
        from_cache = True
    else:
        proposal, dropped0 = propose_stypes(stats_db)
        final, dropped = select_features(db, proposal, dropped0, columns=columns,
                                         overrides=stypes, text=text, time_features=time_features)
        if target is None:
            data, col_stats = _materialise(db, stats_db, final, encoder, None)
        else:
            with atomic_dir(target) as tmp:
                data, col_stats = _materialise(db, stats_db, final, encoder, tmp / "tf")
                (tmp / "meta.json").write_text(json.dumps(
                    {"stypes": _stypes_to_json(final), "dropped": dropped,
                     "text_dim": None if encoder is None else encoder.dim}, indent=1))
        from_cache = False

    for t, tab in db.table_dict.items():
        data[t].num_nodes = len(tab.df)
        if t in times:  # relbench's conversion is off by 1000x under pandas 3
            data[t].time = torch.from_numpy(times[t])
    has_text = any(s == stype.text_embedded for cols in final.values() for s in cols.values())
    return Graph(data, col_stats, final, dropped, ds, db, cut, stats_cut, text,
                 text_dim=encoder.dim if (has_text and encoder is not None) else None,
                 build_seconds=_time.perf_counter() - start, from_cache=from_cache,
                 options=dict(tables=tables, columns=columns, stypes=stypes, text=text,
                              time_features=time_features, cache=cache))


def _safe(manifest) -> str:
    name = getattr(manifest, "name", None) or "dataset"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _validate_names(db: Database, columns, stypes) -> None:
    """Fail fast (before the stype proposal) on unknown tables/columns/stype names."""
    for arg, mapping in (("columns", columns), ("stypes", stypes)):
        if mapping is None:
            continue
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{arg}= must be a dict keyed by table name, "
                              f"got {type(mapping).__name__}")
        for t, cols in mapping.items():
            if t not in db.table_dict:
                raise SchemaError(f"{arg}= names unknown or excluded table '{t}'",
                                  fix="valid tables: " + ", ".join(db.table_dict))
            names = [cols] if isinstance(cols, str) else list(cols)
            df_cols = list(db.table_dict[t].df.columns)
            unknown = [c for c in names if c not in df_cols]
            if unknown:
                raise SchemaError(f"{arg}=: no column(s) "
                                  + ", ".join(repr(c) for c in unknown), table=t,
                                  fix="valid columns: " + ", ".join(map(str, df_cols)))
            if arg == "stypes":
                if not isinstance(cols, Mapping):
                    raise ConfigError(f"stypes['{t}'] must be a dict {{column: stype}}")
                for c, v in cols.items():
                    parse_stype(v, table=t, column=c)
