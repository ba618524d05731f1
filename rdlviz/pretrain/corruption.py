"""The second view for row-level contrast: per-cell resampling from each column's values.

Reference: Peleška & Šír, *Task-Agnostic Contrastive Pretraining for Relational Deep
Learning*, arXiv 2506.22530 (2025) -- each cell is replaced, with probability ``p``
(0.2-0.6 in their experiments), by a value drawn from that column's values.

For a batch table with ``n`` rows and ``c`` columns of some semantic type, one call draws

.. math::

    M_{ij} \\sim \\mathrm{Bernoulli}(p), \\qquad D_{ij} \\sim \\mathrm{Uniform}\\{0, \\dots, N-1\\}

and sets cell ``(i, j)`` to ``x_{D_{ij}, j}`` of the *full* table (``N`` rows) where
``M_{ij}``, keeping ``x_{ij}`` elsewhere. Drawing a random row and taking its value is
sampling from the column's empirical marginal, missing values included (a column that is
30 % missing stays 30 % missing in expectation), and it keeps the value's type exact: a
categorical index stays a valid index, a timestamp stays a real ``[7]`` calendar vector, a
text embedding stays a real sentence's embedding.

Every torch_frame storage is handled without a Python loop over rows:

* dense ``Tensor`` ``[n, c]`` or ``[n, c, d]`` (numerical, categorical, timestamp):
  ``torch.where`` between the batch and a gather ``pool[D, j]``;
* :class:`~torch_frame.data.MultiEmbeddingTensor` (embedding / text_embedded, values
  ``[n, Σ d_j]``): the same, with the column mask expanded to each column's dims;
* :class:`~torch_frame.data.MultiNestedTensor` (multicategorical, sequence_numerical,
  variable-length cells): new offsets from the chosen cell lengths, values gathered with a
  batched arange from batch or pool;
* ``dict`` of MultiNestedTensor (text_tokenized): one mask and donor draw shared by all
  keys, so token ids and attention masks stay consistent.

The result is a new TensorFrame per table (new tensors, new column-name lists; ``y`` is
cloned) and, on request, the mask ``{table: {stype: bool [n, c]}}`` of replaced cells
(the reconstruction objective predicts their original values).

"The full table" is the table as pretraining may see it: :func:`donor_tables` keeps the
rows up to the pretraining cutoff, so a corrupted cell never takes a value from the
validation or test period, although the graph holds those rows.
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_frame import TensorFrame
from torch_frame.data import MultiEmbeddingTensor, MultiNestedTensor

from rdlviz.errors import ConfigError

__all__ = ["Corruption", "donor_tables"]

MaskDict = Dict[str, Dict[object, Tensor]]


def donor_tables(data, cutoff: int) -> Dict[str, TensorFrame]:
    """``{table: TensorFrame}`` of the rows of ``data`` (a graph's ``HeteroData``) whose
    time is at most ``cutoff`` (UNIX seconds); tables without a time column whole.

    These are the pools :class:`Corruption` draws from during pretraining: the graph
    holds rows up to the test cutoff (or all of them), and pretraining may see only the
    past of the val cutoff. A table with no row by then is never in a pretraining batch
    (the temporal sampler admits no later row), so it keeps its rows rather than an empty
    pool no draw could use.

    Example:
        >>> pools = donor_tables(graph.data, int(graph.val_time))
        >>> corrupt = Corruption(pools, p=0.3)
    """
    out = {}
    for t in data.node_types:
        tf = data[t].tf
        time = data[t].get("time")
        if time is not None:
            keep = torch.nonzero(time <= cutoff).view(-1)
            if keep.numel():
                tf = tf[keep]
        out[t] = tf
    return out


def _resample_dense(x: Tensor, pool: Tensor, mask: Tensor, donor: Tensor) -> Tensor:
    """``x``: ``[n, c, *]``; ``pool``: ``[N, c, *]``; ``mask``/``donor``: ``[n, c]``."""
    c = x.size(1)
    repl = pool[donor, torch.arange(c, device=x.device)]  # [n, c, *]
    m = mask.view(mask.shape + (1,) * (x.dim() - 2))
    return torch.where(m, repl, x)


def _resample_embedding(
    x: MultiEmbeddingTensor, pool: MultiEmbeddingTensor, mask: Tensor, donor: Tensor
) -> MultiEmbeddingTensor:
    """Values ``[n, D]`` with ``D = Σ_j d_j``; each dim follows the mask of its column."""
    widths = x.offset[1:] - x.offset[:-1]
    dim_col = torch.repeat_interleave(torch.arange(x.num_cols, device=x.device), widths)  # [D]
    D = dim_col.numel()
    repl = pool.values[donor[:, dim_col], torch.arange(D, device=x.device)]  # [n, D]
    values = torch.where(mask[:, dim_col], repl, x.values)
    return MultiEmbeddingTensor(x.num_rows, x.num_cols, values, x.offset.clone())


def _resample_nested(
    x: MultiNestedTensor, pool: MultiNestedTensor, mask: Tensor, donor: Tensor
) -> MultiNestedTensor:
    """Cells of varying length; cell ``(i, j)`` is ``values[offset[i*c+j]:offset[i*c+j+1]]``."""
    n, c = x.num_rows, x.num_cols
    dev = x.device
    j = torch.arange(c, device=dev).repeat(n)  # [n*c] column of each cell, row-major
    m = mask.reshape(-1)
    pcell = donor.reshape(-1) * c + j  # the donor cell in the pool
    b_start, b_len = x.offset[:-1], x.offset[1:] - x.offset[:-1]
    p_start = pool.offset[pcell]
    p_len = pool.offset[pcell + 1] - p_start
    start = torch.where(m, p_start, b_start)  # in the chosen source's own values
    length = torch.where(m, p_len, b_len)
    offset = torch.zeros(n * c + 1, dtype=x.offset.dtype, device=dev)
    torch.cumsum(length, dim=0, out=offset[1:])
    total = int(offset[-1])
    # element e of cell k sits at start[k] + (e - offset[k]) in its source
    src_idx = torch.repeat_interleave(start - offset[:-1], length, output_size=total) + torch.arange(
        total, device=dev
    )
    from_pool = torch.repeat_interleave(m, length, output_size=total)
    values = torch.empty(total, dtype=x.values.dtype, device=dev)
    values[from_pool] = pool.values[src_idx[from_pool]]
    values[~from_pool] = x.values[src_idx[~from_pool]]
    return MultiNestedTensor(n, c, values, offset)


def _resample(x, pool, mask: Tensor, donor: Tensor):
    if isinstance(x, dict):
        return {k: _resample(v, pool[k], mask, donor) for k, v in x.items()}
    if isinstance(x, MultiEmbeddingTensor):
        return _resample_embedding(x, pool, mask, donor)
    if isinstance(x, MultiNestedTensor):
        return _resample_nested(x, pool, mask, donor)
    if isinstance(x, Tensor):
        return _resample_dense(x, pool, mask, donor)
    raise ConfigError(f"cannot corrupt a column block of type {type(x).__name__}")


def _to(x, device):
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x.to(device)


def _clone(x):
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    return x.clone()


class Corruption:
    """Per-cell resampling corruption of a batch's TensorFrames.

    Args:
        tables: ``{table: TensorFrame}`` of the *full* tables: each column's pool of
            empirical values (e.g. ``{t: data[t].tf for t in data.node_types}``).
        p: probability ``0 < p < 1`` that a cell is replaced.

    Example:
        >>> corrupt = Corruption({t: data[t].tf for t in data.node_types}, p=0.3)
        >>> view = corrupt({t: batch[t].tf for t in batch.node_types})
        >>> view, mask = corrupt(tfs, generator=torch.Generator().manual_seed(0), return_mask=True)
        >>> mask["drivers"][torch_frame.numerical].float().mean()   # about 0.3
    """

    def __init__(self, tables: Mapping[str, TensorFrame], p: float = 0.3) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 < float(p) < 1.0) or math.isnan(p):
            raise ConfigError(
                f"corruption probability p must be in the open interval (0, 1), got {p!r}; "
                "the paper uses 0.2-0.6 (p=0 gives an identical view, p=1 a view unrelated to the row)"
            )
        if not isinstance(tables, Mapping) or not tables:
            raise ConfigError("tables must be a non-empty {table: TensorFrame} mapping of the full tables")
        for name, tf in tables.items():
            if not isinstance(tf, TensorFrame):
                raise ConfigError(f"table '{name}': expected a TensorFrame, got {type(tf).__name__}")
        self.p = float(p)
        self.tables: Dict[str, TensorFrame] = dict(tables)
        # Pools moved to another device are cached, so a GPU run copies each table once.
        self._on_device: Dict[Tuple[str, str], Dict] = {}

    def __repr__(self) -> str:
        return f"Corruption(p={self.p}, tables={len(self.tables)})"

    def _pool(self, name: str, device: torch.device) -> Dict:
        tf = self.tables[name]
        if tf.device is None or tf.device == device:
            return tf.feat_dict
        key = (name, str(device))
        if key not in self._on_device:
            self._on_device[key] = {s: _to(v, device) for s, v in tf.feat_dict.items()}
        return self._on_device[key]

    def _check(self, name: str, tf: TensorFrame) -> None:
        if name not in self.tables:
            raise ConfigError(
                f"table '{name}' has no pool of values; Corruption was built from "
                f"{sorted(self.tables)}. Build it from the same graph that produced the batch."
            )
        full = self.tables[name]
        for st, cols in tf.col_names_dict.items():
            if full.col_names_dict.get(st) != cols:
                raise ConfigError(
                    f"table '{name}': the batch's {st} columns {cols} differ from the full table's "
                    f"{full.col_names_dict.get(st)}; the batch must be rows of the same TensorFrame"
                )
        if tf.num_rows > 0 and full.num_rows == 0 and tf.col_names_dict:
            raise ConfigError(f"table '{name}': the full table is empty, so there are no values to draw")

    def __call__(
        self,
        tf_dict: Mapping[str, TensorFrame],
        generator: Optional[torch.Generator] = None,
        return_mask: bool = False,
    ) -> Union[Dict[str, TensorFrame], Tuple[Dict[str, TensorFrame], MaskDict]]:
        """Corrupt a batch.

        Args:
            tf_dict: ``{table: TensorFrame}`` the batch's rows (columns as in the full tables).
            generator: a ``torch.Generator`` on the batch's device for a reproducible view;
                ``None`` uses torch's global RNG.
            return_mask: also return ``{table: {stype: bool [n, c]}}``, ``True`` where a cell
                was replaced (the replacement may equal the original value by chance).

        Returns:
            ``{table: TensorFrame}`` with the same columns and shapes, sharing no tensor with
            the input; and the mask when ``return_mask``.
        """
        out: Dict[str, TensorFrame] = {}
        masks: MaskDict = {}
        for name, tf in tf_dict.items():
            self._check(name, tf)
            n = tf.num_rows
            dev = tf.device if tf.device is not None else torch.device("cpu")
            pool = self._pool(name, dev)
            N = self.tables[name].num_rows
            feats, masks[name] = {}, {}
            for st in tf.stypes:  # canonical stype order, so a generator gives one answer
                x = tf.feat_dict[st]
                c = len(tf.col_names_dict[st])
                mask = torch.rand(n, c, generator=generator, device=dev) < self.p
                donor = torch.randint(max(N, 1), (n, c), generator=generator, device=dev)
                feats[st] = _resample(x, pool[st], mask, donor) if n else _clone(x)
                masks[name][st] = mask
            out[name] = TensorFrame(
                feat_dict=feats,
                col_names_dict={st: list(cols) for st, cols in tf.col_names_dict.items()},
                y=None if tf.y is None else tf.y.clone(),
                num_rows=n,
            )
        return (out, masks) if return_mask else out
