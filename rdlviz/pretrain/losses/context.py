"""Context-level contrast: a node must recognise its own 1-hop neighbourhood.

Reference: Peleška & Šír, *Task-Agnostic Contrastive Pretraining for Relational Deep
Learning*, arXiv 2506.22530 (2025), "context-level" objective.

The context of node ``v`` is the mean over the edge types ``e = (s, rel, t)`` that point
into ``v`` (and have at least one edge into it in the batch) of the mean of its projected
in-neighbours:

.. math::

    m_e(v) = P_e \\Bigl(\\frac{1}{|N_e(v)|}\\sum_{u \\in N_e(v)} h_u\\Bigr), \\qquad
    c_v = \\frac{1}{|E(v)|} \\sum_{e \\in E(v)} m_e(v)

(``P_e`` is bias-free and linear, so projecting the mean equals the mean of the
projections; self-loops are dropped, so ``v`` itself is never in its own context). Then

.. math::

    s^+_v = h_v^\\top c_v, \\qquad s^-_{v,w} = h_v^\\top c_w

with ``w`` ranging over at most ``K`` other nodes of ``v``'s type that have a context in the
batch and a different global id. Nodes without any in-neighbour in the batch have no
context and are skipped, as anchors and as negatives.

Differences from the authors' code, on purpose: the projection is per *edge type*
(theirs is one ``Linear`` with bias per neighbour *node type*, of which this is the
bias-free generalisation -- a bias adds ``h_v·b`` to every candidate of ``v`` alike and
cancels in the softmax); the anchor is the node and the candidates are contexts (theirs
scores ``context @ x.T``, the same similarity with roles swapped); negatives are one
random draw of at most ``K`` contexts per table and batch, shared by its anchors, instead
of the dense ``[N, N]`` similarity matrix; and copies of the anchor row are never its
negatives.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from rdlviz.errors import ConfigError
from rdlviz.pretrain.losses._nce import (
    check_channels,
    check_edge_types,
    check_names,
    check_positive_int,
    check_temperature,
    module_key,
    normalized_info_nce,
    score_negatives,
    zero_loss,
)

__all__ = ["ContextContrastiveLoss"]

EdgeType = Tuple[str, str, str]


class ContextContrastiveLoss(nn.Module):
    """Contrast each node with its own neighbourhood context against other nodes' contexts.

    Args:
        node_types: the tables whose nodes are anchors.
        edge_types: the edge types that build contexts (all of the graph's, both
            ``f2p_*`` and ``rev_f2p_*``: a parent's context is its children, a child's its
            parents).
        channels: width ``C`` of the GNN output.
        temperature: ``τ > 0`` (1.0 in the paper).
        max_negatives: ``K >= 1``, the most negatives per anchor (255 in the paper).

    Attributes:
        proj: one bias-free ``Linear(C, C)`` per edge type (``P_e``).
        last_breakdown: ``{table: (mean loss, number of anchors)}`` of the last forward.

    Example:
        >>> et = ("results", "f2p_driverId", "drivers")
        >>> rt = ("drivers", "rev_f2p_driverId", "results")
        >>> loss_fn = ContextContrastiveLoss(["results", "drivers"], [et, rt], channels=16)
        >>> h = {"results": torch.randn(40, 16), "drivers": torch.randn(10, 16)}
        >>> ei = torch.stack([torch.arange(40), torch.arange(40) % 10])
        >>> loss = loss_fn(h, {et: ei, rt: ei.flip(0)})   # scalar; 1 = chance
    """

    def __init__(
        self,
        node_types: Iterable[str],
        edge_types: Iterable[Sequence[str]],
        channels: int,
        temperature: float = 1.0,
        max_negatives: int = 255,
    ) -> None:
        super().__init__()
        self.node_types = check_names(node_types)
        self.edge_types = check_edge_types(edge_types)
        self.channels = check_channels(channels)
        self.temperature = check_temperature(temperature)
        self.max_negatives = check_positive_int("max_negatives", max_negatives, "the paper uses 255")
        self.proj = nn.ModuleDict(
            {module_key(*et): nn.Linear(self.channels, self.channels, bias=False) for et in self.edge_types}
        )
        self.last_breakdown: Dict[str, tuple] = {}

    def extra_repr(self) -> str:
        return (f"tables={len(self.node_types)}, edge_types={len(self.edge_types)}, channels={self.channels}, "
                f"temperature={self.temperature}, max_negatives={self.max_negatives}")

    def contexts(
        self, h_dict: Mapping[str, Tensor], edge_index_dict: Mapping[EdgeType, Tensor]
    ) -> Dict[str, Tuple[Tensor, Tensor]]:
        """The context of every node that has one.

        Returns:
            ``{table: (index [M], context [M, C])}`` -- the local indices of the ``M`` nodes
            with at least one in-neighbour in the batch, and their ``c_v``.
        """
        acc: Dict[str, Tensor] = {}  # table -> [N, C] sum over edge types of m_e(v)
        cnt: Dict[str, Tensor] = {}  # table -> [N] number of edge types with a neighbour
        for et in self.edge_types:
            src, _, dst = et
            if et not in edge_index_dict or src not in h_dict or dst not in h_dict:
                continue
            if dst not in self.node_types:
                continue
            ei = edge_index_dict[et].long()
            hs, hd = h_dict[src], h_dict[dst]
            if ei.dim() != 2 or ei.size(0) != 2:
                raise ConfigError(f"edge type {et}: edge_index must be [2, E], got {tuple(ei.shape)}")
            if src == dst:  # a node is not its own context
                ei = ei[:, ei[0] != ei[1]]
            if ei.size(1) == 0:
                continue
            Nd = hd.size(0)
            deg = torch.bincount(ei[1], minlength=Nd)  # [Nd]
            agg = hs.new_zeros(Nd, hs.size(1)).index_add(0, ei[1], hs[ei[0]])  # [Nd, C] neighbour sum
            has = deg > 0
            mean = agg / deg.clamp(min=1).unsqueeze(1).to(agg.dtype)
            m = self.proj[module_key(*et)](mean) * has.unsqueeze(1).to(agg.dtype)  # zero where none
            acc[dst] = acc[dst] + m if dst in acc else m
            cnt[dst] = cnt[dst] + has.long() if dst in cnt else has.long()
        out = {}
        for t, total in acc.items():
            idx = (cnt[t] > 0).nonzero().squeeze(1)
            out[t] = (idx, total[idx] / cnt[t][idx].unsqueeze(1).to(total.dtype))
        return out

    def forward(
        self,
        h_dict: Mapping[str, Tensor],
        edge_index_dict: Mapping[EdgeType, Tensor],
        n_id_dict: Optional[Mapping[str, Tensor]] = None,
    ) -> Tensor:
        """Context contrast of one batch.

        Args:
            h_dict: ``{table: [N_t, C]}`` GNN output.
            edge_index_dict: ``{edge_type: [2, E]}`` local indices (PyG convention).
            n_id_dict: ``{table: [N_t]}`` global row ids; nodes sharing an id are never
                each other's negatives. ``None``: every node is distinct.

        Returns:
            Scalar loss, mean over all scored anchors of all tables.
        """
        for t, h in h_dict.items():
            if t in self.node_types and (h.dim() != 2 or h.size(1) != self.channels):
                raise ConfigError(f"table '{t}': h must be [N, {self.channels}], got {tuple(h.shape)}")
        parts, self.last_breakdown = [], {}
        for t, (idx, c) in self.contexts(h_dict, edge_index_dict).items():
            M = idx.numel()
            if M < 2:
                continue
            h = h_dict[t][idx]  # [M, C] anchors
            own = torch.arange(M, device=h.device)
            pos = (h * c).sum(dim=1)
            cand, neg, mask = score_negatives(h, c, self.max_negatives, self_index=own)  # [S], [M, S]
            if n_id_dict is not None and t in n_id_dict:
                n_id = n_id_dict[t].to(h.device)[idx]
                mask = mask & (n_id[cand].unsqueeze(0) != n_id.unsqueeze(1))
            per_anchor = normalized_info_nce(pos, neg, mask, self.temperature, reduction="none")
            if per_anchor.numel():
                parts.append(per_anchor)
                self.last_breakdown[t] = (per_anchor.detach().mean(), per_anchor.numel())
        if not parts:
            return zero_loss(*h_dict.values(), *self.parameters())
        return torch.cat(parts).mean()
