"""Held-out links: score foreign-key pairs that message passing did not carry.

In the paper's link objective the positive pair ``(u, v)`` is also an edge of the sampled
subgraph, so the GNN passes ``h_u`` into ``h_v`` (and back) before the pair is scored. The
objective can then be met by copying neighbours into each other, which pulls linked rows
together whatever their content; on rel-f1 the link objective alone collapses the drivers'
embeddings to effective rank 15 (``benchmarks/results/ablation-rel-f1.md``).

:func:`hold_out_links` splits each foreign-key relation of a batch the way link prediction
is usually trained (message-passing edges vs. supervision edges, as in PyG's
``RandomLinkSplit(disjoint_train_ratio=...)``): a share ``fraction`` of the batch's distinct
(child, parent) pairs is removed from message passing, in both directions, and only those
pairs are the link objective's positives. Every pair of the batch, held out or not, still
counts as *linked* when negatives are chosen, so a true partner is never a negative.

The split is per batch and drawn from the caller's generator, so it is reproducible, and
validation batches keep the same split at every evaluation.

Example:
    >>> mp_batch, held, linked = hold_out_links(batch, 0.5, torch.Generator().manual_seed(0))
    >>> h = backbone(mp_batch)                        # the held-out pairs are not edges here
    >>> loss = link_loss(h, held, n_id, linked_index_dict=linked)
"""

from __future__ import annotations

import copy
from typing import Dict, Tuple

import torch
from torch import Tensor

from rdlviz.errors import ConfigError

__all__ = ["hold_out_links"]

EdgeType = Tuple[str, str, str]


def hold_out_links(
    batch, fraction: float, generator: torch.Generator,
) -> Tuple[object, Dict[EdgeType, Tensor], Dict[EdgeType, Tensor]]:
    """Hide a share of each foreign-key relation's pairs from message passing.

    Args:
        batch: a sampled ``HeteroData`` with ``(child, "f2p_<col>", parent)`` edges and, where
            present, their ``(parent, "rev_f2p_<col>", child)`` reverses.
        fraction: share ``q`` in ``(0, 1)`` of each relation's distinct pairs to hold out;
            a relation with ``P`` pairs holds out ``floor(q * P)`` of them.
        generator: the source of randomness (a CPU ``torch.Generator``).

    Returns:
        ``(mp_batch, held, linked)``: ``mp_batch`` is a shallow copy of ``batch`` whose f2p and
        rev_f2p edges no longer contain the held-out pairs (node features are shared, not
        copied); ``held[et]`` is ``[2, H]`` (child, parent) local indices of the held-out
        pairs; ``linked[et]`` is ``[2, P]``, every distinct pair of the relation in
        ``batch``. Both are keyed by the f2p edge type.
    """
    if not 0 < float(fraction) < 1:
        raise ConfigError(f"link_holdout must be in (0, 1) to hold links out (0 turns it off), got {fraction}")
    out = copy.copy(batch)
    held: Dict[EdgeType, Tensor] = {}
    linked: Dict[EdgeType, Tensor] = {}
    for et in batch.edge_types:
        child, rel, parent = et
        if not rel.startswith("f2p_"):
            continue
        rev = (parent, "rev_" + rel, child)
        n_parent = batch[parent].num_nodes
        fwd = batch[et].edge_index
        bwd = batch[rev].edge_index if rev in batch.edge_types else fwd.new_empty(2, 0)
        key_f = fwd[0] * n_parent + fwd[1]
        key_b = bwd[1] * n_parent + bwd[0]
        pairs = torch.unique(torch.cat([key_f, key_b]))
        if pairs.numel() == 0:
            continue
        linked[et] = torch.stack([pairs // n_parent, pairs % n_parent])
        n_hold = int(float(fraction) * pairs.numel())
        if n_hold == 0:
            continue
        hold = pairs[torch.randperm(pairs.numel(), generator=generator)[:n_hold]].sort().values
        held[et] = torch.stack([hold // n_parent, hold % n_parent])
        out[et].edge_index = fwd[:, ~torch.isin(key_f, hold)]
        if rev in batch.edge_types:
            out[rev].edge_index = bwd[:, ~torch.isin(key_b, hold)]
        # Per-hop edge counts no longer describe the edge lists; nothing downstream may trim by them.
        for e in (et, rev):
            if e in batch.edge_types and "num_sampled_edges" in out[e]:
                del out[e].num_sampled_edges
    return out, held, linked
