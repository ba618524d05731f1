"""Row-level contrast: a row's embedding must recognise its own corrupted view.

Reference: Peleška & Šír, *Task-Agnostic Contrastive Pretraining for Relational Deep
Learning*, arXiv 2506.22530 (2025), "row-level" objective.

The GNN runs twice on the same sampled subgraph: once on the real cells (``h``) and once
on a view in which each cell was resampled from its column with probability ``p``
(``h̃``, see :class:`rdlviz.pretrain.corruption.Corruption`). Per table ``t`` a bias-free
linear projection ``P_t`` maps both into the scoring space, and for anchor row ``i``

.. math::

    s^+_i = (P_t \\tilde h_i)^\\top (P_t h_i), \\qquad
    s^-_{i,j} = (P_t \\tilde h_i)^\\top (P_t h_j), \\; j \\ne i

with ``j`` ranging over at most ``K`` other rows of the same table in the batch: one
random draw per table and batch, shared by its anchors. A row that appears several times in the batch (the same global
``n_id`` in several seed trees) is never its own negative. The per-anchor InfoNCE is
divided by ``log(K_i + 1)`` and averaged over all anchors of all tables (see
:func:`~rdlviz.pretrain.losses._nce.normalized_info_nce`).

Memory is ``O(A·K)`` per table: the anchors are scored against the shared draw with one
matrix product (:func:`~rdlviz.pretrain.losses._nce.score_negatives`), never the
``[A, A]`` similarity matrix.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional

import torch
from torch import Tensor, nn

from rdlviz.errors import ConfigError
from rdlviz.pretrain.losses._nce import (
    check_channels,
    check_names,
    check_positive_int,
    check_temperature,
    module_key,
    normalized_info_nce,
    score_negatives,
    zero_loss,
)

__all__ = ["RowContrastiveLoss"]


class RowContrastiveLoss(nn.Module):
    """Contrast each row with its corrupted view against other rows of its table.

    Args:
        node_types: the tables to contrast (node types of the graph); node types of
            ``h_dict`` not listed here are ignored.
        channels: width ``C`` of the GNN output.
        temperature: ``τ > 0`` (1.0 in the paper).
        max_negatives: ``K >= 1``, the most negatives per anchor (255 in the paper).

    Attributes:
        proj: one bias-free ``Linear(C, C)`` per table (``P_t``).
        last_breakdown: ``{table: (mean loss, number of anchors)}`` of the last forward,
            detached, for monitoring.

    Example:
        >>> loss_fn = RowContrastiveLoss(["drivers", "races"], channels=16)
        >>> h = {"drivers": torch.randn(30, 16), "races": torch.randn(50, 16)}
        >>> h_view = {k: v + 0.1 * torch.randn_like(v) for k, v in h.items()}
        >>> loss = loss_fn(h, h_view)          # scalar; 1 = chance, 0 = every view recognised
        >>> loss.backward()
    """

    def __init__(
        self,
        node_types: Iterable[str],
        channels: int,
        temperature: float = 1.0,
        max_negatives: int = 255,
    ) -> None:
        super().__init__()
        self.node_types = check_names(node_types)
        self.channels = check_channels(channels)
        self.temperature = check_temperature(temperature)
        self.max_negatives = check_positive_int("max_negatives", max_negatives, "the paper uses 255")
        self.proj = nn.ModuleDict(
            {module_key(t): nn.Linear(self.channels, self.channels, bias=False) for t in self.node_types}
        )
        self.last_breakdown: Dict[str, tuple] = {}

    def extra_repr(self) -> str:
        return (f"tables={len(self.node_types)}, channels={self.channels}, "
                f"temperature={self.temperature}, max_negatives={self.max_negatives}")

    def forward(
        self,
        h_dict: Mapping[str, Tensor],
        h_corrupt_dict: Mapping[str, Tensor],
        n_id_dict: Optional[Mapping[str, Tensor]] = None,
    ) -> Tensor:
        """Row contrast of one batch.

        Args:
            h_dict: ``{table: [N_t, C]}`` GNN output on the real cells.
            h_corrupt_dict: ``{table: [N_t, C]}`` GNN output on the corrupted view of the
                same subgraph (row ``i`` of both is the same node).
            n_id_dict: ``{table: [N_t]}`` global row ids; rows sharing an id are never
                each other's negatives. ``None``: every row is distinct.

        Returns:
            Scalar loss, mean over all scored anchors (1 = chance, 0 = perfect).
        """
        if h_corrupt_dict is None:
            raise ConfigError("RowContrastiveLoss needs h_corrupt_dict, the GNN output on the corrupted view")
        parts, self.last_breakdown = [], {}
        for t in self.node_types:
            if t not in h_dict or t not in h_corrupt_dict:
                continue
            h, hc = h_dict[t], h_corrupt_dict[t]
            if h.shape != hc.shape or h.dim() != 2 or h.size(1) != self.channels:
                raise ConfigError(
                    f"table '{t}': h and h_corrupt must both be [N, {self.channels}], got "
                    f"{tuple(h.shape)} and {tuple(hc.shape)}"
                )
            N = h.size(0)
            if N < 2:
                continue
            P = self.proj[module_key(t)]
            z, zc = P(h), P(hc)  # [N, C]
            own = torch.arange(N, device=h.device)
            pos = (zc * z).sum(dim=1)  # [N]
            cand, neg, mask = score_negatives(zc, z, self.max_negatives, self_index=own)  # [S], [N, S]
            if n_id_dict is not None and t in n_id_dict:
                n_id = n_id_dict[t]
                if n_id.numel() != N:
                    raise ConfigError(f"table '{t}': n_id has {n_id.numel()} entries but h has {N} rows")
                mask = mask & (n_id[cand].unsqueeze(0) != n_id.unsqueeze(1))
            per_anchor = normalized_info_nce(pos, neg, mask, self.temperature, reduction="none")
            if per_anchor.numel():
                parts.append(per_anchor)
                self.last_breakdown[t] = (per_anchor.detach().mean(), per_anchor.numel())
        if not parts:
            return zero_loss(*h_dict.values(), *h_corrupt_dict.values(), *self.parameters())
        return torch.cat(parts).mean()
