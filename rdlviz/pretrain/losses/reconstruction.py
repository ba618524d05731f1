"""Masked-cell reconstruction: recover the original value of every corrupted cell.

Beyond the paper (Peleška & Šír 2025 use contrast only). The Relational Transformer
(Ranjan et al., *Relational Transformer*, 2025) pretrains by predicting masked cells; here the
same idea rides on the corruption the row objective already makes: the GNN sees the
corrupted view, and small per-table heads must predict, from ``h̃_i``, the *original* value
of each cell ``(i, j)`` that :class:`~rdlviz.pretrain.corruption.Corruption` replaced.

Per corrupted, non-missing cell:

* numerical column ``j``: ``(ŷ_ij - (x_ij - μ_j) / σ_j)²`` -- squared error on the value
  standardised with the full table's mean and standard deviation;
* categorical column ``j`` with ``C_j >= 2`` classes: ``CE(logits_ij, x_ij) / log C_j``.

Both are about 1 for an uninformed predictor (predicting the mean gives an expected
squared error of 1 on a standardised value; uniform logits give ``log C_j``), so the
loss sits on the same scale as the normalised contrastive losses. The result is the mean
over all scored cells of the batch. Other column types (timestamps, text embeddings,
multicategorical) are corrupted but not reconstructed.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
import torch_frame
from torch import Tensor, nn
from torch_frame import TensorFrame

from rdlviz.errors import ConfigError
from rdlviz.pretrain.losses._nce import check_channels, module_key, zero_loss

__all__ = ["MaskedCellReconstructionLoss"]

_NUM, _CAT = torch_frame.stype.numerical, torch_frame.stype.categorical


class _TableHeads(nn.Module):
    """Prediction heads of one table: ``Linear(C, n_num)`` and ``Linear(C, Σ C_j)``."""

    def __init__(self, tf: TensorFrame, channels: int) -> None:
        super().__init__()
        self.num_head: Optional[nn.Linear] = None
        self.cat_head: Optional[nn.Linear] = None
        self.cat_classes: list = []
        num = tf.feat_dict.get(_NUM)
        if isinstance(num, Tensor) and num.size(1) > 0:
            x = num.double()
            mean = torch.nanmean(x, dim=0)
            std = torch.nanmean((x - mean) ** 2, dim=0).sqrt()
            # all-missing or constant columns: any finite prediction is as good as another
            self.register_buffer("num_mean", torch.nan_to_num(mean, nan=0.0).float())
            self.register_buffer("num_std", torch.where(std.isfinite() & (std > 0), std, 1.0).float())
            self.num_head = nn.Linear(channels, num.size(1))
        cat = tf.feat_dict.get(_CAT)
        if isinstance(cat, Tensor) and cat.size(1) > 0 and cat.size(0) > 0:
            classes = (cat.max(dim=0).values + 1).clamp(min=0)
            cols = (classes >= 2).nonzero().squeeze(1)
            if cols.numel():
                self.register_buffer("cat_cols", cols)
                self.cat_classes = [int(c) for c in classes[cols]]
                self.cat_head = nn.Linear(channels, sum(self.cat_classes))

    def cell_losses(self, h: Tensor, tf: TensorFrame, mask: Mapping) -> list:
        out = []
        if self.num_head is not None and _NUM in mask and _NUM in tf.feat_dict:
            x = tf.feat_dict[_NUM].to(h.dtype)
            sel = mask[_NUM] & x.isfinite()  # [n, n_num]
            if bool(sel.any()):
                target = (x - self.num_mean) / self.num_std
                out.append((self.num_head(h) - target)[sel].pow(2))
        if self.cat_head is not None and _CAT in mask and _CAT in tf.feat_dict:
            x = tf.feat_dict[_CAT]
            m = mask[_CAT]
            logits = self.cat_head(h).split(self.cat_classes, dim=1)
            for i, (j, c) in enumerate(zip(self.cat_cols.tolist(), self.cat_classes)):
                y = x[:, j]
                rows = m[:, j] & (y >= 0) & (y < c)  # -1 = missing; unseen classes are skipped
                if bool(rows.any()):
                    ce = F.cross_entropy(logits[i][rows], y[rows].long(), reduction="none")
                    out.append(ce / math.log(c))
        return out


class MaskedCellReconstructionLoss(nn.Module):
    """Predict the original value of corrupted cells from the corrupted view's embeddings.

    Args:
        tables: ``{table: TensorFrame}`` of the *full* tables (column statistics and the
            number of categories come from them).
        channels: width ``C`` of the GNN output.

    Example:
        >>> corrupt = Corruption(full_tfs, p=0.3)
        >>> view, mask = corrupt(batch_tfs, return_mask=True)
        >>> loss_fn = MaskedCellReconstructionLoss(full_tfs, channels=128)
        >>> loss = loss_fn(gnn(batch, view), batch_tfs, mask)   # about 1 = uninformed
    """

    def __init__(self, tables: Mapping[str, TensorFrame], channels: int) -> None:
        super().__init__()
        if not isinstance(tables, Mapping) or not tables:
            raise ConfigError("tables must be a non-empty {table: TensorFrame} mapping of the full tables")
        self.channels = check_channels(channels)
        self.heads = nn.ModuleDict()
        self.tables = []
        for name, tf in tables.items():
            if not isinstance(tf, TensorFrame):
                raise ConfigError(f"table '{name}': expected a TensorFrame, got {type(tf).__name__}")
            head = _TableHeads(tf, self.channels)
            if head.num_head is not None or head.cat_head is not None:
                self.heads[module_key(name)] = head
                self.tables.append(name)

    @classmethod
    def from_graph(cls, data, channels: int) -> "MaskedCellReconstructionLoss":
        """Build from a graph ``HeteroData`` whose node stores hold ``tf`` (as relbench's
        ``make_pkey_fkey_graph`` makes them)."""
        tables = {t: data[t].tf for t in data.node_types if "tf" in data[t]}
        return cls(tables, channels)

    def extra_repr(self) -> str:
        return f"tables={len(self.tables)}, channels={self.channels}"

    def forward(
        self,
        h_dict: Mapping[str, Tensor],
        tf_dict: Mapping[str, TensorFrame],
        mask_dict: Mapping[str, Mapping],
    ) -> Tensor:
        """Reconstruction loss of one batch.

        Args:
            h_dict: ``{table: [N_t, C]}`` GNN output on the *corrupted* view.
            tf_dict: ``{table: TensorFrame}`` the batch's *original* cells (``N_t`` rows).
            mask_dict: ``{table: {stype: bool [N_t, n_cols]}}`` which cells were replaced
                (``Corruption(..., return_mask=True)``).

        Returns:
            Scalar, mean over corrupted non-missing cells (about 1 = uninformed).
        """
        if h_dict is None or mask_dict is None:
            raise ConfigError("MaskedCellReconstructionLoss needs the corrupted view's h_dict and "
                              "the corruption mask (Corruption(..., return_mask=True))")
        cells = []
        for name in self.tables:
            if name not in h_dict or name not in tf_dict or name not in mask_dict:
                continue
            h, tf = h_dict[name], tf_dict[name]
            if h.size(0) != tf.num_rows:
                raise ConfigError(f"table '{name}': h has {h.size(0)} rows but the TensorFrame {tf.num_rows}")
            cells.extend(self.heads[module_key(name)].cell_losses(h, tf, mask_dict[name]))
        if not cells:
            return zero_loss(*h_dict.values(), *self.parameters())
        return torch.cat(cells).mean()
