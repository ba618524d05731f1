"""``embeddings(run)``: the embedding projector -- every row, embedded and drawn with UMAP.

What a pretrained backbone has learnt is easiest to judge by looking at where it puts the
rows: this view embeds rows with :func:`rdlviz.nn.embed_rows` (each row from its own
temporal subgraph, at its own time; rows of tables without time at the graph's latest
time), projects the vectors to 2-D or 3-D with UMAP (McInnes et al., 2018) under the
cosine metric, and draws them as a WebGL scatter (``Scattergl`` / ``Scatter3d``) that
stays smooth with tens of thousands of points.

* **Colour** by table (the palette shared by all views), by time (continuous), by any
  column of the shown tables, or by a task's label (``task=...``: the task's training
  table joined to its entity rows by entity id, the latest label of each entity).
* **Hover** shows the row: table, row index, time and a few of its values.
* **Select** with the box or lasso tool (live form): ``view.selected`` /
  ``view.selection()`` hold the selected rows as a DataFrame, and a panel beside the
  plot summarises them.
* **Click** a point: its k nearest neighbours *in the embedding space* (cosine, on the
  original vectors -- not distances in the UMAP picture, which distort them) are listed
  in the panel and ringed in the plot; :meth:`EmbeddingView.neighbors` does the same from
  code for any row.
* ``compare_random=True`` draws the same rows embedded by a randomly initialised backbone
  of the same architecture beside the pretrained one, in the same colours: structure
  that is already there without training comes from the graph and the features, not
  from pretraining.

Speed. UMAP's own nearest-neighbour search is the slow part on a small machine: below
4,096 points it computes all pairwise distances through a Python callable, and above it
NN-descent spends ~30 s compiling on first use. :func:`cosine_knn` replaces both: an exact
blocked matrix product up to :data:`EXACT_KNN_MAX` points, and above that an inverted-file
search (spherical k-means cells; each cell's rows are compared with the rows of the cells
nearest to it), whose recall is measured in ``benchmarks/viz.py``. The neighbour graph is
handed to UMAP as ``precomputed_knn``. With ``seed`` set, UMAP runs single-threaded and
reproducibly (``random_state``); with ``seed=None`` it uses two threads.
"""

from __future__ import annotations

import html
import math
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from rdlviz.errors import ConfigError, SchemaError
from rdlviz.viz._view import View, figure_widget
from rdlviz.viz.palette import OKABE_ITO, TOL_MUTED
from rdlviz.viz.subgraph import format_time, format_values, graph_table_colors

__all__ = ["embeddings", "EmbeddingView", "cosine_knn", "project", "task_labels", "EXACT_KNN_MAX"]

#: Up to this many points the neighbour graph is exact; above, an inverted-file search.
EXACT_KNN_MAX = 12_000
#: Colour of points with no value for the chosen colouring (no label, no time, ...).
MISSING_COLOR = "#C4C4C4"
_CATEGORY_COLORS = OKABE_ITO + TOL_MUTED
_MAX_CATEGORIES = 10
_PANEL_TITLES = ("pretrained backbone", "randomly initialised backbone (same architecture)")


# -- nearest neighbours and projection -------------------------------------------------------
def _normalize(z) -> torch.Tensor:
    z = torch.as_tensor(np.asarray(z, dtype=np.float32))
    return torch.nn.functional.normalize(z, dim=1)


def _knn_block(q: torch.Tensor, c: torch.Tensor, k: int, self_pos: Optional[torch.Tensor]):
    """Top-``k`` cosine similarities of queries ``q`` among candidates ``c``; the query
    itself (at candidate position ``self_pos``) is forced first, as UMAP expects."""
    s = q @ c.T
    if self_pos is not None:
        s[torch.arange(len(q)), self_pos] = 2.0  # above any cosine: self first, even with duplicates
    v, i = s.topk(min(k, c.shape[0]), dim=1)
    return v, i


def cosine_knn(z, k: int, seed: Optional[int] = 0, exact_max: int = EXACT_KNN_MAX,
               n_probe: int = 12) -> Tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of every row of ``z`` under cosine distance, self included.

    Args:
        z: ``[n, C]`` vectors.
        k: neighbours per row, the row itself first (UMAP's ``precomputed_knn`` format).
        seed: seeds the k-means of the approximate search (``None``: 0).
        exact_max: largest ``n`` searched exactly (a blocked ``n x n`` matrix product).
        n_probe: above ``exact_max``, how many cells (the row's own and the nearest
            others, by centroid) each row is compared with.

    Returns:
        ``(indices int32 [n, k], distances float32 [n, k])``; distance = 1 - cosine.
    """
    zn = _normalize(z)
    n = zn.shape[0]
    k = int(min(k, n))
    idx = np.empty((n, k), np.int32)
    dist = np.empty((n, k), np.float32)
    if n <= exact_max:
        for a in range(0, n, 2048):
            b = min(n, a + 2048)
            v, i = _knn_block(zn[a:b], zn, k, torch.arange(a, b))
            idx[a:b], dist[a:b] = i.numpy(), (1.0 - v).clamp_min(0).numpy()
    else:
        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        cells = int(min(1024, max(16, round(math.sqrt(n)))))
        assign, cent = _spherical_kmeans(zn, cells, gen)
        cc = cent @ cent.T
        cc.fill_diagonal_(3.0)  # a cell's own rows always come first among its candidates
        probe = cc.topk(min(n_probe, cells), dim=1).indices
        order = torch.argsort(assign, stable=True)
        counts = torch.bincount(assign, minlength=cells)
        starts = torch.cumsum(counts, 0) - counts
        members = [order[starts[c]:starts[c] + counts[c]] for c in range(cells)]
        for c in range(cells):
            q_ids = members[c]
            if q_ids.numel() == 0:
                continue
            cand = torch.cat([members[int(p)] for p in probe[c]])
            # the cell's own rows come first in `cand`, so row j of the block is at j
            for a in range(0, q_ids.numel(), 2048):
                qb = q_ids[a:a + 2048]
                v, i = _knn_block(zn[qb], zn[cand], k, torch.arange(a, a + qb.numel()))
                dd = (1.0 - v).clamp_min(0)
                got = cand[i]
                if got.shape[1] < k:  # fewer candidates than k (tiny cells): pad with self
                    pad = k - got.shape[1]
                    got = torch.cat([got, qb[:, None].expand(-1, pad)], 1)
                    dd = torch.cat([dd, torch.full((len(qb), pad), 1.0)], 1)
                idx[qb.numpy()] = got.numpy()
                dist[qb.numpy()] = dd.numpy()
    dist[:, 0] = 0.0
    return idx, dist


def _spherical_kmeans(zn: torch.Tensor, cells: int, gen: torch.Generator, iters: int = 6):
    """Cells for the inverted-file search: k-means on the unit sphere (cosine)."""
    n = zn.shape[0]
    cent = zn[torch.randperm(n, generator=gen)[:cells]].clone()
    assign = torch.zeros(n, dtype=torch.long)
    for _ in range(iters):
        for a in range(0, n, 8192):
            assign[a:a + 8192] = (zn[a:a + 8192] @ cent.T).argmax(1)
        sums = torch.zeros_like(cent).index_add_(0, assign, zn)
        counts = torch.bincount(assign, minlength=cells)
        empty = counts == 0
        if empty.any():  # re-seed empty cells on random rows
            sums[empty] = zn[torch.randint(0, n, (int(empty.sum()),), generator=gen)]
        cent = torch.nn.functional.normalize(sums, dim=1)
    for a in range(0, n, 8192):
        assign[a:a + 8192] = (zn[a:a + 8192] @ cent.T).argmax(1)
    return assign, cent


def project(z, dim: int = 2, n_neighbors: int = 15, seed: Optional[int] = 0,
            n_epochs: Optional[int] = None, knn: Optional[Tuple[np.ndarray, np.ndarray]] = None,
            n_jobs: Optional[int] = None) -> np.ndarray:
    """Cosine UMAP of ``z`` to ``dim`` dimensions.

    Args:
        z: ``[n, C]`` vectors.
        dim: 2 or 3.
        n_neighbors: UMAP's neighbourhood size (capped at ``n - 1``).
        seed: ``random_state`` (reproducible, single thread); ``None``: two threads.
        n_epochs: optimisation epochs (default 200 up to 10,000 points, else 120 --
            enough for a stable picture; UMAP's own defaults are 500 / 200).
        knn: a precomputed :func:`cosine_knn` result to reuse.
        n_jobs: UMAP's threads when ``seed`` is ``None`` (default 2; with a seed UMAP
            always runs on one). On a machine whose cores are busy, 1 can be faster.

    Returns:
        ``float32 [n, dim]`` coordinates.
    """
    z = np.asarray(z, dtype=np.float32)
    n = z.shape[0]
    if n == 0:
        return np.zeros((0, dim), np.float32)
    if n < 5:  # too few points for a neighbour graph: principal axes
        zc = z - z.mean(0)
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        out = np.zeros((n, dim), np.float32)
        p = zc @ vt[:dim].T
        out[:, :p.shape[1]] = p
        return out
    k = int(max(2, min(n_neighbors, n - 1)))
    if knn is None or knn[0].shape[1] < k:
        knn = cosine_knn(z, k, seed)
    ind, dst = knn[0][:, :k], knn[1][:, :k]
    import umap

    if n_epochs is None:
        n_epochs = 200 if n <= 10_000 else 120
    reducer = umap.UMAP(
        n_components=dim, n_neighbors=k, metric="cosine", min_dist=0.1, n_epochs=int(n_epochs),
        precomputed_knn=(ind, dst, None), init="spectral" if n <= 20_000 else "pca",
        random_state=seed, n_jobs=1 if seed is not None else int(n_jobs or 2), low_memory=True, verbose=False)
    # numba's OpenMP layer shares the thread pool setting with torch: UMAP leaves torch at
    # numba's default thread count, which would silently change the caller's setting.
    torch_threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            # "n_jobs overridden by random_state", "transform unavailable without a search
            # index": both expected here.
            warnings.simplefilter("ignore")
            return reducer.fit_transform(z).astype(np.float32)
    finally:
        torch.set_num_threads(torch_threads)


def _category_name(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


# -- labels ------------------------------------------------------------------------------------
def task_labels(graph, task) -> Tuple[str, pd.Series]:
    """The latest training label of every entity of ``task``.

    Args:
        graph: the :class:`rdlviz.Graph` (its ``dataset`` holds the task).
        task: a task name or a loaded RelBench task.

    Returns:
        ``(entity table, Series indexed by entity row index)``.
    """
    ds = graph.dataset
    if isinstance(task, str):
        names = list(ds.get_task_names())
        if task not in names:
            raise ConfigError(f"task {task!r} is not a task of {graph.name}; tasks: {', '.join(names) or '(none)'}")
        task = ds.load_task(task)
    for attr in ("entity_table", "entity_col", "target_col"):
        if not hasattr(task, attr):
            raise ConfigError(f"task {getattr(task, 'name', task)!r} has no {attr}: colouring by label "
                              "needs an entity task (one label per entity row and time)")
    df = task.get_table("train").df
    tcol = getattr(task, "time_col", None) or "timestamp"
    if tcol in df.columns:
        df = df.sort_values(tcol, kind="stable")
    labels = df.groupby(task.entity_col, sort=True)[task.target_col].last()
    if len(labels) and isinstance(labels.iloc[0], (list, tuple, np.ndarray)):
        raise ConfigError(f"task {task.name!r} predicts lists of rows (a link task): its labels cannot colour points")
    labels.index = labels.index.astype(np.int64)
    return task.entity_table, labels


# -- the view ----------------------------------------------------------------------------------
class EmbeddingView(View):
    """Row embeddings projected with UMAP (see :func:`embeddings`).

    Attributes:
        points: one row per point: ``table``, ``node`` (row index), ``time`` (UNIX
            seconds, ``<NA>`` without a time column), ``color`` (the colouring value),
            ``x``, ``y`` (, ``z``) the pretrained panel's coordinates.
        embedding: ``float32 [n, C]`` the pretrained vectors, in ``points`` order.
        random_embedding / random_xy: the random backbone's vectors and coordinates
            (``compare_random=True``), else ``None``.
        timings: seconds spent on ``embed`` (the backbone), ``knn`` (the neighbour
            graph) and ``umap`` (the layout), for both panels together.
        selected: the rows selected in the live plot (DataFrame; empty before any).
        clicked: the neighbours listed for the last clicked point (DataFrame or ``None``).
        colors: ``{table: colour}``.
    """

    def __init__(self, run_or_backbone, graph=None, table=None, color_by: str = "table", dim: int = 2,
                 compare_random: bool = False, task=None, max_points: Optional[int] = None,
                 n_neighbors: int = 15, seed: Optional[int] = 0, *,
                 num_neighbors: Optional[Sequence[int]] = None, n_epochs: Optional[int] = None,
                 hover_columns: int = 4, height: Optional[int] = None, title: Optional[str] = None,
                 num_threads: Optional[int] = None, progress: Optional[bool] = None) -> None:
        from rdlviz.nn import embed_rows

        backbone = getattr(run_or_backbone, "backbone", run_or_backbone)
        if not isinstance(backbone, torch.nn.Module) or not hasattr(backbone, "config"):
            raise ConfigError("embeddings: expected a pretraining run (rdlviz.pretrain) or a Backbone, got "
                              f"{type(run_or_backbone).__name__}")
        graph = graph if graph is not None else getattr(run_or_backbone, "graph", None)
        if graph is None:
            raise ConfigError("embeddings: give the graph the backbone reads: embeddings(backbone, graph)")
        if dim not in (2, 3):
            raise ConfigError(f"dim must be 2 or 3, got {dim!r}")
        self.graph, self.dim, self.seed = graph, int(dim), seed
        self.colors = graph_table_colors(graph)
        self.color_by, self.task = color_by, task
        self._labels = None
        if color_by == "label":
            if task is None:
                names = list(graph.dataset.get_task_names())
                raise ConfigError("color_by='label' needs task=<task name>; tasks of "
                                  f"{graph.name}: {', '.join(names) or '(none)'}")
            self._labels = task_labels(graph, task)
            if table is None:
                table = self._labels[0]  # labels belong to the task's entity rows
        self.tables = self._tables(table)
        self.hover_columns = int(hover_columns)
        self._height = height
        cfg = getattr(run_or_backbone, "config", None)
        if num_neighbors is None:
            num_neighbors = (cfg.get("num_neighbors") if isinstance(cfg, dict) else None) or (16, 8)
        self.num_neighbors = tuple(int(k) for k in num_neighbors)
        self._step = getattr(run_or_backbone, "best_step", None)

        # which rows: all of the chosen tables, or a seeded uniform sample of max_points of them
        per_table = {t: np.arange(graph.num_nodes[t]) for t in self.tables}
        total = sum(len(v) for v in per_table.values())
        if max_points is not None:
            if int(max_points) < 1:
                raise ConfigError(f"max_points must be >= 1, got {max_points}")
            if total > max_points:
                rng = np.random.default_rng(0 if seed is None else seed)
                keep = np.sort(rng.choice(total, int(max_points), replace=False))
                offsets = np.cumsum([0] + [len(v) for v in per_table.values()])
                per_table = {t: keep[(keep >= offsets[i]) & (keep < offsets[i + 1])] - offsets[i]
                             for i, t in enumerate(per_table)}
        self.total_rows = total
        tabs, nodes = [], []
        for t, ids in per_table.items():
            tabs.append(np.full(len(ids), t, dtype=object))
            nodes.append(ids.astype(np.int64))
        tab_arr = np.concatenate(tabs) if tabs else np.array([], dtype=object)
        node_arr = np.concatenate(nodes) if nodes else np.array([], dtype=np.int64)
        if node_arr.size == 0:
            raise ConfigError("embeddings: the chosen tables have no rows")

        # a progress bar per table when embedding takes a while (tens of seconds at 10^4 rows)
        show = bool(progress) if progress is not None else len(node_arr) > 20_000

        def embed_all(bb) -> np.ndarray:
            before = torch.get_num_threads()
            if num_threads is not None:
                torch.set_num_threads(int(num_threads))
            try:
                parts = [embed_rows(bb, graph, t, nodes=torch.from_numpy(ids), num_neighbors=self.num_neighbors,
                                    progress=show)
                         for t, ids in per_table.items() if len(ids)]
            finally:
                torch.set_num_threads(before)
            return torch.cat(parts).numpy().astype(np.float32)

        clock = time.perf_counter
        self.timings: Dict[str, float] = {}
        t0 = clock()
        self.embedding = embed_all(backbone)
        self.random_embedding = None
        if compare_random:
            self.random_embedding = embed_all(self._random_backbone(backbone))
        self._backbone = backbone
        self.timings["embed"] = clock() - t0

        times = pd.array([pd.NA] * len(node_arr), dtype="Int64")
        pts = pd.DataFrame({"table": tab_arr, "node": node_arr, "time": times})
        for t, ids in per_table.items():
            if "time" in graph.data[t] and len(ids):
                m = (pts["table"] == t).to_numpy()
                pts.loc[m, "time"] = graph.data[t].time[torch.from_numpy(ids)].numpy()
        self._color_kind, pts["color"], self._color_label = self._colouring(pts)
        k = int(max(2, min(n_neighbors, len(pts) - 1)))
        spaces = [self.embedding] + ([self.random_embedding] if compare_random else [])
        t0 = clock()
        knns = [cosine_knn(z, k, seed) if len(z) >= 5 else None for z in spaces]
        self.timings["knn"] = clock() - t0
        t0 = clock()
        coords = [project(z, self.dim, n_neighbors, seed, n_epochs, knn=kn, n_jobs=num_threads)
                  for z, kn in zip(spaces, knns)]
        self.timings["umap"] = clock() - t0
        for j, c in enumerate("xyz"[: self.dim]):
            pts[c] = coords[0][:, j]
        self.random_xy = coords[1] if compare_random else None
        self.points = pts
        self._zn = _normalize(self.embedding)
        self._zn_random = _normalize(self.random_embedding) if compare_random else None
        self._pos = {(t, int(i)): k for k, (t, i) in enumerate(zip(pts["table"], pts["node"]))}
        self._hover = self._hover_fields()
        self._sel_parts: Dict[int, np.ndarray] = {}
        self._trace_points: Dict[int, Tuple[int, np.ndarray]] = {}
        self.clicked: Optional[pd.DataFrame] = None
        self._custom_title = title
        super().__init__(None, title=title or self._title())

    # -- set-up ------------------------------------------------------------------------------
    def _random_backbone(self, like):
        """A randomly initialised backbone of ``like``'s architecture, seeded with
        ``torch.manual_seed(seed)`` inside a forked RNG (the caller's RNG is untouched)."""
        from rdlviz.nn import Backbone

        with torch.random.fork_rng():
            torch.manual_seed(0 if self.seed is None else self.seed)
            return Backbone(self.graph.data, self.graph.col_stats, **like.config())

    def _tables(self, table) -> List[str]:
        if table is None:
            return list(self.graph.node_types)
        tables = [table] if isinstance(table, str) else list(table)
        for t in tables:
            if t not in self.graph.node_types:
                raise SchemaError("unknown table", table=t, fix="tables: " + ", ".join(self.graph.node_types))
        if not tables:
            raise ConfigError("embeddings: table=[] selects no rows")
        return tables

    def _colouring(self, pts: pd.DataFrame) -> Tuple[str, pd.Series, str]:
        """``(kind, value per point, legend title)``; kind is ``"table"``,
        ``"categorical"`` or ``"continuous"``; missing values are ``NaN``/``None``."""
        cb = self.color_by
        if cb == "table":
            return "table", pts["table"].copy(), "table"
        if cb == "time":
            return "continuous", pts["time"].astype("float64"), "time"
        if cb == "label":
            entity, labels = self._labels
            vals = pd.Series([None] * len(pts), dtype=object)
            m = (pts["table"] == entity).to_numpy()
            vals[m] = pts.loc[m, "node"].map(labels).to_numpy()
            name = self.task if isinstance(self.task, str) else getattr(self.task, "name", "task")
            return self._kind_of(vals, labels), vals, f"{name} label"
        # a column of the shown tables
        have = [t for t in self.tables if cb in self.graph.db.table_dict[t].df.columns]
        if not have:
            raise ConfigError(
                f"color_by={cb!r}: not 'table', 'time', 'label' or a column of the shown tables "
                f"({', '.join(self.tables)})")
        vals = pd.Series([None] * len(pts), dtype=object)
        ref = []
        for t in have:
            m = (pts["table"] == t).to_numpy()
            col = self.graph.rows(t, pts.loc[m, "node"].to_numpy())[cb]
            vals[m] = col.to_numpy()
            ref.append(col)
        return self._kind_of(vals, pd.concat(ref)), vals, cb

    @staticmethod
    def _kind_of(vals: pd.Series, ref: pd.Series) -> str:
        ref = ref.dropna()
        if pd.api.types.is_bool_dtype(ref) or not pd.api.types.is_numeric_dtype(ref):
            return "categorical"
        if ref.nunique() <= _MAX_CATEGORIES and np.all(np.equal(np.mod(ref.to_numpy(dtype=float), 1), 0)):
            return "categorical"  # a few whole numbers: classes (binary labels, counts)
        return "continuous"

    def _hover_fields(self) -> np.ndarray:
        """``object [n, 1 + hover_columns]``: a header (table, row, time) and
        ``"column: value"`` strings per point, ``""`` where a table has fewer columns.

        The hover box is assembled by a ``hovertemplate`` from these plain strings: the
        HTML tags live once in the template instead of once per point, which keeps a
        page of 10^5 points several MB smaller (Plotly's JSON escapes every ``<``).
        """
        pts = self.points
        out = np.full((len(pts), 1 + self.hover_columns), "", dtype=object)
        for t in self.tables:
            m = (pts["table"] == t).to_numpy()
            if not m.any():
                continue
            rows = self.graph.rows(t, pts.loc[m, "node"].to_numpy())
            keys = {self.graph.db.table_dict[t].pkey_col, self.graph.time_cols.get(t)}
            cols = [c for c in rows.columns if c not in keys][: self.hover_columns]
            when = ["no time column" if pd.isna(x) else format_time(int(x)) for x in pts.loc[m, "time"]]
            out[m, 0] = [f"{html.escape(t)} row {i} · {w}" for i, w in zip(pts.loc[m, "node"], when)]
            for j, c in enumerate(cols):
                out[m, 1 + j] = (f"{html.escape(str(c))}: " + format_values(rows[c])).to_numpy()
        return out

    def _hovertemplate(self, idx: np.ndarray) -> str:
        """Bold header, then as many value lines as the points of ``idx`` have."""
        filled = (self._hover[idx] != "").any(axis=0) if idx.size else np.zeros(1, bool)
        n = int(np.flatnonzero(filled).max()) + 1 if filled.any() else 1
        return "<b>%{customdata[0]}</b>" + "".join(f"<br>%{{customdata[{j}]}}" for j in range(1, n)) + \
            "<extra></extra>"

    # -- titles ------------------------------------------------------------------------------
    def _title(self) -> str:
        n = len(self.points)
        what = (f"{n:,} rows" if n == self.total_rows else f"a random {n:,} of {self.total_rows:,} rows")
        tabs = self.tables[0] if len(self.tables) == 1 else f"{len(self.tables)} tables"
        return f"{self.graph.name}: row embeddings of {tabs} ({what}), UMAP {self.dim}-D, coloured by {self._color_label}"

    def _subtitle(self, live: bool = False) -> str:
        """What the axes mean; the live form adds what selecting and clicking do (the
        static page only hovers)."""
        C = self.embedding.shape[1]
        step = f" (best step {self._step})" if self._step else ""
        s = (f"cosine UMAP of {C}-dim embeddings{step}; each row embedded from its temporal subgraph "
             f"(fan-outs {list(self.num_neighbors)}) at its own time")
        if not live:
            return s + " · hover: the row"
        return s + (" · box/lasso: select rows" if self.dim == 2 else "") + " · click: nearest neighbours"

    # -- drawing -----------------------------------------------------------------------------
    def _groups(self) -> List[Tuple[str, np.ndarray, Dict[str, Any]]]:
        """``(trace name, point positions, marker properties)`` per point trace."""
        pts, kind, vals = self.points, self._color_kind, self.points["color"]
        groups = []
        if kind == "table":
            for t in self.tables:
                idx = np.flatnonzero((pts["table"] == t).to_numpy())
                if idx.size:
                    groups.append((t, idx, dict(color=self.colors[t])))
            return groups
        missing = vals.isna().to_numpy()
        if kind == "categorical":
            # whole numbers read as classes: 1, not 1.0 (a missing label makes pandas use floats)
            as_str = np.array([_category_name(v) for v in vals], dtype=object)
            counts = pd.Series(as_str[~missing]).value_counts()
            cats = list(counts.index[:_MAX_CATEGORIES])
            try:  # numbers in numeric order (labels 0, 1, ...), names by frequency
                cats = sorted(cats, key=float)
            except ValueError:
                pass
            for j, c in enumerate(cats):
                idx = np.flatnonzero(~missing & (as_str == c))
                groups.append((f"{c}", idx, dict(color=_CATEGORY_COLORS[j % len(_CATEGORY_COLORS)])))
            rest = np.flatnonzero(~missing & ~np.isin(as_str, cats))
            if rest.size:
                groups.append((f"{self._color_label}: {len(counts) - len(cats)} other values", rest,
                               dict(color="#7F7F7F")))
        else:
            idx = np.flatnonzero(~missing)
            v = vals.to_numpy()[idx].astype(float)
            marker = dict(color=v, colorscale="Viridis", showscale=True,
                          colorbar=dict(title=dict(text=self._color_label, side="right"), thickness=14, len=0.75))
            if self.color_by == "time" and v.size:
                ticks = np.linspace(v.min(), v.max(), 5)
                marker["colorbar"].update(tickvals=ticks, ticktext=[
                    pd.Timestamp(int(x), unit="s").strftime("%Y-%m-%d") for x in ticks])
            groups.append((self._color_label, idx, marker))
        if missing.any():
            what = {"time": "no time column (embedded at the latest time)"}.get(
                self.color_by, f"no {self._color_label}")
            groups.append((what, np.flatnonzero(missing), dict(color=MISSING_COLOR)))
        return groups

    def _coords(self, panel: int) -> np.ndarray:
        if panel == 0:
            return self.points[list("xyz"[: self.dim])].to_numpy(dtype=np.float32)
        return self.random_xy

    def _marker_size(self) -> float:
        n = len(self.points)
        return 7 if n <= 2_000 else 5 if n <= 10_000 else 3.5 if n <= 40_000 else 2.5

    def _build_figure(self) -> go.Figure:
        panels = 2 if self.random_xy is not None else 1
        scene = self.dim == 3
        specs = [[{"type": "scene" if scene else "xy"}] * panels]
        titles = list(_PANEL_TITLES[:panels]) if panels == 2 else None
        fig = make_subplots(rows=1, cols=panels, specs=specs, subplot_titles=titles, horizontal_spacing=0.06)
        size = self._marker_size()
        self._trace_points = {}
        for panel in range(panels):
            xy = self._coords(panel)
            for name, idx, marker in self._groups():
                m = dict(marker, size=size, opacity=0.8 if len(self.points) > 5_000 else 0.9)
                if panel == 1 and "colorbar" in m:
                    m["showscale"] = False
                if scene:
                    m["size"] = max(2.0, size - 1)
                    tr = go.Scatter3d(x=xy[idx, 0], y=xy[idx, 1], z=xy[idx, 2], mode="markers")
                else:
                    tr = go.Scattergl(x=xy[idx, 0], y=xy[idx, 1], mode="markers")
                # a continuous colouring is explained by its colour bar, not a legend entry
                tr.update(name=name, legendgroup=name, showlegend=panel == 0 and "colorbar" not in m, marker=m,
                          customdata=self._hover[idx], hovertemplate=self._hovertemplate(idx))
                fig.add_trace(tr, row=1, col=panel + 1)
                self._trace_points[len(fig.data) - 1] = (panel, idx)
        # ring around a clicked point and its neighbours (filled in by clicks)
        for panel in range(panels):
            ring = dict(mode="markers", name="clicked row and its nearest neighbours", legendgroup="ring",
                        showlegend=False, hoverinfo="skip",
                        marker=dict(size=14 if not scene else 8, color="rgba(0,0,0,0)",
                                    line=dict(width=2.2, color="#000000"), symbol="circle"))
            tr = (go.Scatter3d(x=[], y=[], z=[], **ring) if scene else go.Scattergl(x=[], y=[], **ring))
            fig.add_trace(tr, row=1, col=panel + 1)
        height = self._height or (640 if panels == 1 else 600)
        fig.update_layout(
            title=dict(text=f"{self.title}<br><sup>{self._subtitle()}</sup>", x=0.01, xanchor="left"),
            height=height, margin=dict(l=60, r=30, t=100, b=60), plot_bgcolor="white", paper_bgcolor="white",
            hovermode="closest", dragmode="lasso" if not scene else "orbit",
            legend=(dict(title=self._color_label, itemsizing="constant", font_size=11)
                    if self._color_kind != "continuous" else
                    dict(orientation="h", x=0.0, y=-0.12, yanchor="top", itemsizing="constant", font_size=11)),
            hoverlabel=dict(align="left", font_size=11),
        )
        if scene:
            for i in range(panels):
                key = "scene" if i == 0 else f"scene{i + 1}"
                fig.layout[key].update(xaxis_title="UMAP 1", yaxis_title="UMAP 2", zaxis_title="UMAP 3",
                                       camera=dict(eye=dict(x=1.7, y=1.7, z=1.2)))
        else:
            fig.update_xaxes(title_text="UMAP 1", showgrid=True, gridcolor="#f0f0f0", zeroline=False)
            fig.update_yaxes(title_text="UMAP 2", showgrid=True, gridcolor="#f0f0f0", zeroline=False)
        return fig

    # -- neighbours --------------------------------------------------------------------------
    def _rows_frame(self, positions: np.ndarray, extra: Optional[Dict[str, np.ndarray]] = None) -> pd.DataFrame:
        """Points at ``positions`` with their original row values (columns: ``table``,
        ``node``, ``time``, extras, then the union of the tables' columns)."""
        pts = self.points.iloc[positions]
        head = pd.DataFrame({"table": pts["table"].to_numpy(), "node": pts["node"].to_numpy(),
                             "time": pd.to_datetime(pts["time"].astype("float64"), unit="s").to_numpy()})
        for k, v in (extra or {}).items():
            head[k] = v
        for c in "xyz"[: self.dim]:
            head[f"umap_{c}"] = pts[c].to_numpy()
        parts = []
        for t in dict.fromkeys(head["table"]):
            m = (head["table"] == t).to_numpy()
            rows = self.graph.rows(t, head.loc[m, "node"].to_numpy()).reset_index(drop=True)
            rows.index = np.flatnonzero(m)
            parts.append(rows)
        values = pd.concat(parts).sort_index() if parts else pd.DataFrame(index=head.index)
        values = values.drop(columns=[c for c in values.columns if c in head.columns])
        return pd.concat([head, values], axis=1)

    def _query(self, table: str, row: int, space: str) -> Tuple[torch.Tensor, Optional[int]]:
        zn = self._zn if space == "pretrained" else self._zn_random
        pos = self._pos.get((table, int(row)))
        if pos is not None:
            return zn[pos], pos
        # not among the drawn points (max_points): embed it now, the same way
        from rdlviz.nn import embed_rows

        bb = self._random_backbone(self._backbone) if space == "random" else self._backbone
        z = embed_rows(bb, self.graph, table, nodes=torch.tensor([int(row)]), num_neighbors=self.num_neighbors)
        return _normalize(z.numpy())[0], None

    def neighbors(self, table: str, row: int, k: int = 10, *, space: str = "pretrained",
                  same_table: bool = False) -> pd.DataFrame:
        """The ``k`` rows nearest to ``row`` of ``table`` in the embedding space.

        Cosine similarity between the backbone's vectors (not distances in the UMAP
        picture), searched exactly among the drawn points; the row itself is left out.

        Args:
            table / row: the query row (need not be among the drawn points).
            k: how many neighbours.
            space: ``"pretrained"`` or ``"random"`` (needs ``compare_random=True``).
            same_table: only rows of the query's table.

        Returns:
            DataFrame, nearest first: ``rank``, ``table``, ``node``, ``cosine``, ``time``,
            UMAP coordinates, then the rows' values.
        """
        if space not in ("pretrained", "random"):
            raise ConfigError(f"space must be 'pretrained' or 'random', got {space!r}")
        if space == "random" and self._zn_random is None:
            raise ConfigError("space='random' needs embeddings(..., compare_random=True)")
        if table not in self.graph.node_types:
            raise SchemaError("unknown table", table=table, fix="tables: " + ", ".join(self.graph.node_types))
        n = self.graph.num_nodes[table]
        if not 0 <= int(row) < n:
            raise ConfigError(f"row must be in 0..{n - 1} for table '{table}', got {row}")
        q, pos = self._query(table, row, space)
        zn = self._zn if space == "pretrained" else self._zn_random
        sims = (zn @ q).numpy().astype(np.float64)
        if pos is not None:
            sims[pos] = -np.inf
        if same_table:
            sims[(self.points["table"] != table).to_numpy()] = -np.inf
        k = int(min(k, np.isfinite(sims).sum()))
        top = np.argsort(-sims, kind="stable")[:k]
        return self._rows_frame(top, {"rank": np.arange(1, k + 1), "cosine": sims[top]}).loc[
            :, lambda d: ["rank"] + [c for c in d.columns if c != "rank"]]

    # -- selection ---------------------------------------------------------------------------
    @property
    def selected(self) -> pd.DataFrame:
        """The rows selected in the live plot (box or lasso), with their values."""
        return self.selection()

    def selection(self) -> pd.DataFrame:
        """The selected rows as a DataFrame (``table``, ``node``, ``time``, UMAP
        coordinates, row values); empty before any selection."""
        parts = [v for v in self._sel_parts.values() if v.size]
        if not parts:
            return self._rows_frame(np.array([], dtype=np.int64))
        pos = np.unique(np.concatenate(parts))
        return self._rows_frame(pos)

    def _on_selection(self, trace, points, selector=None) -> None:
        """Plotly's selection callback, called once per trace for each selection."""
        ti = points.trace_index
        if ti not in self._trace_points:
            return
        panel, idx = self._trace_points[ti]
        self._sel_parts[ti] = idx[np.asarray(points.point_inds, dtype=np.int64)] if len(points.point_inds) else \
            np.array([], dtype=np.int64)
        if ti == max(self._trace_points):  # the last trace of this event: refresh the panel once
            self._show_selection()

    def _on_deselect(self, trace, points) -> None:
        self._sel_parts.clear()
        self._show_selection()

    def _on_click(self, trace, points, state=None) -> None:
        """Plotly's click callback: list and ring the clicked row's nearest neighbours."""
        ti = points.trace_index
        if ti not in self._trace_points or not points.point_inds:
            return
        panel, idx = self._trace_points[ti]
        p = int(idx[points.point_inds[0]])
        t, row = self.points["table"].iat[p], int(self.points["node"].iat[p])
        space = "pretrained" if panel == 0 else "random"
        self.clicked = self.neighbors(t, row, k=self._k, space=space)
        self._show_neighbors(t, row, space, p, panel)

    _k = 10

    # -- live form ---------------------------------------------------------------------------
    def _build_widget(self):
        import ipywidgets as w

        fig = self.figure
        fig.layout.title.text = f"{self.title}<br><sup>{self._subtitle(live=True)}</sup>"
        fw = figure_widget(fig)
        for ti in self._trace_points:
            fw.data[ti].on_selection(self._on_selection)
            fw.data[ti].on_deselect(self._on_deselect)
            fw.data[ti].on_click(self._on_click)
        self._fw = fw
        self._panel = w.HTML(self._help_html(), layout=w.Layout(width="100%"))
        self._sel_html = w.HTML("", layout=w.Layout(width="100%"))
        side = w.VBox([self._panel, self._sel_html],
                      layout=w.Layout(width="380px", min_width="320px", max_height=f"{fig.layout.height}px",
                                      overflow="auto", padding="6px"))
        return w.HBox([fw, side], layout=w.Layout(width="100%", align_items="flex-start"))

    @property
    def figure_widget(self):
        """The live ``FigureWidget`` (created with the widget)."""
        _ = self.widget
        return self._fw

    def _help_html(self) -> str:
        return ("<div style='font-size:12px;color:#444'><b>Nearest neighbours</b><br>"
                "Click a point to list the rows closest to it in the embedding space "
                "(cosine similarity of the backbone's vectors).</div>")

    def _table_html(self, df: pd.DataFrame, cols: List[str], limit: int) -> str:
        shown = df[cols].head(limit).copy()
        if "time" in shown:
            shown["time"] = [("" if pd.isna(x) else format_time(int(pd.Timestamp(x).timestamp())))
                             for x in shown["time"]]
        if "cosine" in shown:
            shown["cosine"] = shown["cosine"].map(lambda v: f"{v:.3f}")
        return shown.to_html(index=False, border=0, escape=True, classes="rdlviz-table")

    def _show_neighbors(self, table: str, row: int, space: str, p: int, panel: int) -> None:
        df = self.clicked
        value_cols = [c for c in df.columns if c not in ("rank", "table", "node", "cosine", "time")
                      and not c.startswith("umap_")][:2]
        body = self._table_html(df, ["rank", "table", "node", "cosine", "time"] + value_cols, self._k)
        self._panel.value = (
            f"<div style='font-size:12px'><b>{html.escape(table)} row {row}</b>: {len(df)} nearest rows in the "
            f"{space} embedding (cosine)<br>{body}</div>")
        # ring the clicked point and its neighbours in the panel clicked
        pos = [p] + [self._pos[(t, int(i))] for t, i in zip(df["table"], df["node"]) if (t, int(i)) in self._pos]
        xy = self._coords(panel)[pos]
        ring = self._fw.data[len(self._trace_points) + panel]
        with self._fw.batch_update():
            ring.x, ring.y = xy[:, 0], xy[:, 1]
            if self.dim == 3:
                ring.z = xy[:, 2]

    def _show_selection(self) -> None:
        if not hasattr(self, "_sel_html"):
            return
        parts = [v for v in self._sel_parts.values() if v.size]
        if not parts:
            self._sel_html.value = ""
            return
        pos = np.unique(np.concatenate(parts))
        counts = self.points["table"].iloc[pos].value_counts()
        summary = ", ".join(f"{html.escape(t)} {c:,}" for t, c in counts.items())
        df = self._rows_frame(pos[:8])
        body = self._table_html(df, ["table", "node", "time"], 8)
        self._sel_html.value = (f"<div style='font-size:12px'><b>Selection</b>: {len(pos):,} rows ({summary})"
                                f"<br>first rows (all in <code>view.selected</code>):{body}</div>")

    def _summary(self) -> str:
        return self.title


def embeddings(run_or_backbone, graph=None, table: Union[str, Sequence[str], None] = None,
               color_by: str = "table", dim: int = 2, compare_random: bool = False, task=None,
               max_points: Optional[int] = None, n_neighbors: int = 15, seed: Optional[int] = 0, *,
               num_neighbors: Optional[Sequence[int]] = None, n_epochs: Optional[int] = None,
               hover_columns: int = 4, height: Optional[int] = None, title: Optional[str] = None,
               num_threads: Optional[int] = None, progress: Optional[bool] = None) -> EmbeddingView:
    """Project row embeddings with UMAP and draw them (the embedding projector).

    Args:
        run_or_backbone: a :class:`~rdlviz.pretrain.run.PretrainRun` (``rdlviz.pretrain``)
            or a :class:`~rdlviz.nn.Backbone` (e.g. ``rdlviz.load_backbone``).
        graph: the graph to embed (default: the run's own graph).
        table: a table, a list of tables, or ``None`` for all.
        color_by: ``"table"``, ``"time"``, ``"label"`` (needs ``task``) or a column name.
        dim: 2 or 3.
        compare_random: also embed with a randomly initialised backbone of the same
            architecture, drawn beside the pretrained one.
        task: a task name (or loaded task) for ``color_by="label"``.
        max_points: embed and draw at most this many rows (a seeded random sample).
        n_neighbors: UMAP's neighbourhood size.
        seed: makes the sample, the random backbone and UMAP reproducible (UMAP then runs
            on one thread); ``None``: faster, two threads, not reproducible.
        num_neighbors: sampler fan-outs for embedding (default: the run's, else (16, 8)).
        n_epochs: UMAP epochs (default: 200 up to 10,000 points, else 120).
        hover_columns: row values shown on hover.
        height: figure height in pixels.
        title: figure title (default: says what is shown).
        num_threads: threads for this view: torch's while embedding, and UMAP's when
            ``seed`` is ``None`` (default: torch's setting, and 2 for UMAP). On a machine
            whose cores are busy with other work, 1 can be several times faster than more
            (see ``benchmarks/results/viz.md``).
        progress: show a progress bar while embedding (default: above 20,000 rows).

    Returns:
        An :class:`EmbeddingView` (``.points``, ``.neighbors(table, row)``, ``.selected``).

    Example:
        >>> rdlviz.viz.embeddings(run, color_by="label", task="driver-dnf", compare_random=True)
    """
    return EmbeddingView(run_or_backbone, graph, table, color_by, dim, compare_random, task, max_points,
                         n_neighbors, seed, num_neighbors=num_neighbors, n_epochs=n_epochs,
                         hover_columns=hover_columns, height=height, title=title, num_threads=num_threads,
                         progress=progress)
