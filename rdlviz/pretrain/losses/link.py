"""Link-level contrast: a foreign-key edge must score higher than unconnected pairs.

Reference: Peleška & Šír, *Task-Agnostic Contrastive Pretraining for Relational Deep
Learning*, arXiv 2506.22530 (2025), "link-level" objective.

For each foreign-key relation ``r`` (edge type ``(child, f2p_<col>, parent)``) a bilinear
form scores a (child ``u``, parent ``v``) pair:

.. math::

    s_r(u, v) = h_v^\\top W_r\\, h_u .

The batch's fkey pairs of ``r`` -- its ``f2p_<col>`` edges and its ``rev_f2p_<col>`` edges
flipped, deduplicated -- are the positives, contrasted in both directions:

* **child anchor** ``u``: the true parent ``v`` against up to ``K`` other parents ``v'`` of
  the batch, with query ``W_r h_u``;
* **parent anchor** ``v``: the child ``u`` against up to ``K`` other children ``u'``, with
  query ``W_r^\\top h_v`` (the reverse edge uses the transposed parameter, so both directions
  score the same pair identically).

A candidate is a negative only if it is not linked to the anchor anywhere in the batch
(checked on global ids, through sorted pair keys and ``searchsorted``) and is not a copy of
the true partner (same global id). The candidates are one random draw of ``K`` rows per
relation, direction and batch, shared by the anchors and scored with one matrix product
(:func:`~rdlviz.pretrain.losses._nce.score_negatives`). Each direction is capped at ``max_anchors`` positive
edges per relation (uniformly subsampled), so memory is
``O(E + max_anchors · K)`` per relation -- linear in edges and negatives. No ``|dst| × |src|``
score or adjacency matrix is ever built (the authors' code builds both, densely).
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from rdlviz.errors import ConfigError
from rdlviz.pretrain.losses._nce import (
    check_channels,
    check_edge_types,
    check_positive_int,
    check_temperature,
    dense_rank,
    module_key,
    normalized_info_nce,
    score_negatives,
    zero_loss,
)

__all__ = ["LinkContrastiveLoss"]

EdgeType = Tuple[str, str, str]


def _subsample(n: int, k: int, device) -> Tensor:
    if n <= k:
        return torch.arange(n, device=device)
    return torch.randperm(n, device=device)[:k]


def _is_member(sorted_keys: Tensor, query: Tensor) -> Tensor:
    """``query[i] in sorted_keys`` for every element, by binary search (``O(q log E)``)."""
    if sorted_keys.numel() == 0:
        return torch.zeros_like(query, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, query).clamp(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == query


class LinkContrastiveLoss(nn.Module):
    """Contrast foreign-key edges with unconnected pairs, per relation, in both directions.

    Args:
        edge_types: the graph's foreign-key edge types ``(child, "f2p_<col>", parent)``;
            the matching ``(parent, "rev_f2p_<col>", child)`` edges are used automatically.
        channels: width ``C`` of the GNN output.
        temperature: ``τ > 0`` (1.0 in the paper).
        max_negatives: ``K >= 1``, the most negatives per anchor (255 in the paper).
        max_anchors: the most positive edges scored per relation and direction.

    Attributes:
        weight: one ``[C, C]`` matrix ``W_r`` per relation (``nn.Linear``'s initialisation).
        last_breakdown: ``{"child-rel-parent": (mean loss, number of anchors)}`` of the last
            forward, detached.

    Example:
        >>> et = ("results", "f2p_driverId", "drivers")
        >>> loss_fn = LinkContrastiveLoss([et], channels=16)
        >>> h = {"results": torch.randn(40, 16), "drivers": torch.randn(10, 16)}
        >>> ei = {et: torch.stack([torch.arange(40), torch.arange(40) % 10])}
        >>> loss = loss_fn(h, ei)            # scalar; 1 = chance (exactly 1 when h = 0)
    """

    def __init__(
        self,
        edge_types: Iterable[Sequence[str]],
        channels: int,
        temperature: float = 1.0,
        max_negatives: int = 255,
        max_anchors: int = 1024,
    ) -> None:
        super().__init__()
        ets = check_edge_types(edge_types)
        rev = [et for et in ets if et[1].startswith("rev_")]
        if rev:
            raise ConfigError(
                f"LinkContrastiveLoss takes the child -> parent (f2p_*) edge types; got reverse "
                f"edge types {rev}. Their direction is scored automatically with W_r^T; pass e.g. "
                "[e for e in data.edge_types if e[1].startswith('f2p_')]"
            )
        self.edge_types = ets
        self.channels = check_channels(channels)
        self.temperature = check_temperature(temperature)
        self.max_negatives = check_positive_int("max_negatives", max_negatives, "the paper uses 255")
        self.max_anchors = check_positive_int("max_anchors", max_anchors)
        self.weight = nn.ParameterDict()
        for et in ets:
            w = torch.empty(self.channels, self.channels)
            # nn.Linear's default: U(-1/sqrt(C), 1/sqrt(C)), so s(u, v) ~ h_v . h_u / sqrt(3C).
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            self.weight[module_key(*et)] = nn.Parameter(w)
        self.last_breakdown: Dict[str, tuple] = {}

    def extra_repr(self) -> str:
        return (f"relations={len(self.edge_types)}, channels={self.channels}, temperature={self.temperature}, "
                f"max_negatives={self.max_negatives}, max_anchors={self.max_anchors}")

    @staticmethod
    def _pairs(et: EdgeType, edge_index_dict: Mapping, n_child: int, n_parent: int) -> Optional[Tensor]:
        """The batch's deduplicated (child, parent) pairs of relation ``et``, ``[2, E]``."""
        child, rel, parent = et
        parts = []
        if et in edge_index_dict:
            parts.append(edge_index_dict[et])
        rev = (parent, "rev_" + rel, child)
        if rev in edge_index_dict:
            parts.append(edge_index_dict[rev].flip(0))
        parts = [p for p in parts if p.numel()]
        if not parts:
            return None
        ei = torch.cat(parts, dim=1).long()
        if ei.dim() != 2 or ei.size(0) != 2:
            raise ConfigError(f"edge type {et}: edge_index must be [2, E], got {tuple(ei.shape)}")
        if int(ei[0].max()) >= n_child or int(ei[1].max()) >= n_parent or int(ei.min()) < 0:
            raise ConfigError(
                f"edge type {et}: edge_index points outside h ({n_child} '{child}' rows, "
                f"{n_parent} '{parent}' rows); is edge_index[0] the child?"
            )
        # A pair sampled both as f2p (child -> parent) and rev_f2p (parent -> child) is one positive.
        key = torch.unique(ei[0] * n_parent + ei[1])
        return torch.stack([key // n_parent, key % n_parent])

    def forward(
        self,
        h_dict: Mapping[str, Tensor],
        edge_index_dict: Mapping[EdgeType, Tensor],
        n_id_dict: Optional[Mapping[str, Tensor]] = None,
        linked_index_dict: Optional[Mapping[EdgeType, Tensor]] = None,
    ) -> Tensor:
        """Link contrast of one batch.

        Args:
            h_dict: ``{table: [N_t, C]}`` GNN output.
            edge_index_dict: ``{edge_type: [2, E]}`` local indices, ``edge_index[0]`` in the
                source type, ``edge_index[1]`` in the destination type (PyG convention).
            n_id_dict: ``{table: [N_t]}`` global row ids (copies of a row are one node for
                linkage and partner checks). ``None``: every local node is distinct.
            linked_index_dict: ``{f2p edge_type: [2, P]}`` (child, parent) pairs that count
                as linked when negatives are chosen, when they are more than the positives
                (held-out links, :func:`~rdlviz.pretrain.holdout.hold_out_links`: the
                positives are the held-out pairs, and the pairs left in message passing are
                still no negatives). ``None``: the positives are all the linked pairs.

        Returns:
            Scalar loss, mean over all scored anchors of both directions of all relations.
        """
        parts, self.last_breakdown = [], {}
        K = self.max_negatives
        for et in self.edge_types:
            child, rel, parent = et
            if child not in h_dict or parent not in h_dict:
                continue
            hc, hp = h_dict[child], h_dict[parent]
            Nc, Np = hc.size(0), hp.size(0)
            if Nc == 0 or Np == 0:
                continue
            ei = self._pairs(et, edge_index_dict, Nc, Np)
            if ei is None:
                continue
            dev = hc.device
            # Global identity, compressed to batch-local ranks: rank * Up + rank cannot overflow.
            if n_id_dict is not None and child in n_id_dict and parent in n_id_dict:
                gc, _ = dense_rank(n_id_dict[child].to(dev))
                gp, Up = dense_rank(n_id_dict[parent].to(dev))
            else:
                gc = torch.arange(Nc, device=dev)
                gp, Up = torch.arange(Np, device=dev), Np
            known = ei
            if linked_index_dict is not None and et in linked_index_dict:
                known = torch.cat([ei, linked_index_dict[et].to(dev).long()], dim=1)
            linked = torch.unique(gc[known[0]] * Up + gp[known[1]])  # sorted
            W = self.weight[module_key(*et)]
            E = ei.size(1)

            # child anchors: true parent vs. other parents, query W h_u
            sel = _subsample(E, self.max_anchors, dev)
            u, v = ei[0, sel], ei[1, sel]
            q = hc[u] @ W.t()  # [A, C] rows = (W h_u)^T
            pos = (q * hp[v]).sum(dim=1)
            cand, neg, _ = score_negatives(q, hp, K)  # [S] parents, [A, S]
            ok = ~_is_member(linked, gc[u].unsqueeze(1) * Up + gp[cand].unsqueeze(0)) & (
                gp[cand].unsqueeze(0) != gp[v].unsqueeze(1))
            down = normalized_info_nce(pos, neg, ok, self.temperature, reduction="none")

            # parent anchors: child vs. other children, query W^T h_v
            sel = _subsample(E, self.max_anchors, dev)
            u, v = ei[0, sel], ei[1, sel]
            q = hp[v] @ W  # [A, C] rows = (W^T h_v)^T
            pos = (q * hc[u]).sum(dim=1)
            cand, neg, _ = score_negatives(q, hc, K)  # [S] children, [A, S]
            ok = ~_is_member(linked, gc[cand].unsqueeze(0) * Up + gp[v].unsqueeze(1)) & (
                gc[cand].unsqueeze(0) != gc[u].unsqueeze(1))
            up = normalized_info_nce(pos, neg, ok, self.temperature, reduction="none")

            both = torch.cat([down, up])
            if both.numel():
                parts.append(both)
                self.last_breakdown[f"{child}-{rel}-{parent}"] = (both.detach().mean(), both.numel())
        if not parts:
            return zero_loss(*h_dict.values(), *self.parameters())
        return torch.cat(parts).mean()
