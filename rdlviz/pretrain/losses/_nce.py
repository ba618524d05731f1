"""Shared machinery of the contrastive losses: the normalised InfoNCE, negative sampling,
and a memory-lean gathered dot product.

All three contrastive objectives of Peleška & Šír (2025, arXiv 2506.22530) reduce to the
same computation: for each anchor ``a`` one positive score ``s⁺_a`` and up to ``K``
negative scores ``s⁻_{a,1..K}``, and the loss

.. math::

    \\ell_a = \\frac{-\\log \\dfrac{e^{s^+_a/\\tau}}{e^{s^+_a/\\tau}
              + \\sum_{k \\,\\text{valid}} e^{s^-_{a,k}/\\tau}}}{\\log(K_a + 1)},
    \\qquad L = \\operatorname{mean}_{a:\\,K_a > 0} \\ell_a

where ``K_a`` is the number of valid negatives of anchor ``a``. Dividing by
``log(K_a + 1)`` -- the cross-entropy of a uniform guess -- puts every objective on the
same scale: chance level is exactly 1, a perfect model gives 0, whatever the batch size.

Three things are done here more carefully than in the authors' code:

* **No raw exp.** The cross-entropy is ``logsumexp(logits) - logit⁺``, so a small
  temperature (``τ = 1e-3``) with large similarities cannot overflow.
* **No quadratic memory.** Negatives are drawn per anchor as an index tensor
  ``[A, K]`` (:func:`sample_candidates`) and scored by :func:`gather_dot`, whose forward
  and backward work chunk by chunk, so the largest buffer is ``O(A·K)`` scores plus one
  chunk of ``[c, K, C]`` features -- never ``A × N`` or ``A × K × C`` at once.
* **Invalid negatives are masked, not dropped.** A candidate that is the anchor's own row
  under another local index (the same global ``n_id`` in another seed tree), or a pair
  that is actually linked, is removed through ``neg_mask``; the normaliser ``log(K_a + 1)``
  counts only the negatives that remain.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence, Tuple

import torch
from torch import Tensor

from rdlviz.errors import ConfigError

__all__ = [
    "normalized_info_nce",
    "sample_candidates",
    "gather_dot",
    "module_key",
    "check_temperature",
    "check_positive_int",
    "check_channels",
    "check_names",
    "check_edge_types",
    "zero_loss",
    "dense_rank",
]

# Elements of the [chunk, K, C] feature buffer gather_dot materialises at a time (4 Mi
# floats = 16 MiB in float32): large enough to keep the batched matmul efficient, small
# enough that a 20k-anchor batch never holds its whole [A, K, C] gather.
_CHUNK_ELEMENTS = 1 << 22


# ---------------------------------------------------------------------------------------
# argument checks (shared so that every loss words its errors the same way)
# ---------------------------------------------------------------------------------------


def check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float, or raise :class:`ConfigError` unless ``0 < τ < ∞``."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ConfigError(f"temperature must be a positive number, got {temperature!r}")
    t = float(temperature)
    if not (t > 0 and math.isfinite(t)):
        raise ConfigError(
            f"temperature must be > 0 and finite, got {temperature!r}; the paper uses 1.0 "
            "(smaller values sharpen the softmax over the negatives)"
        )
    return t


def check_positive_int(name: str, value: int, hint: str = "") -> int:
    """Return ``value`` as an int, or raise :class:`ConfigError` unless it is an int ``>= 1``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}" + (f"; {hint}" if hint else ""))
    return int(value)


def check_channels(channels: int) -> int:
    return check_positive_int("channels", channels, "pass the width of the GNN output h")


def check_names(node_types: Iterable[str], what: str = "node_types") -> list:
    """A non-empty list of distinct table names."""
    if isinstance(node_types, str):
        raise ConfigError(f"{what} must be a list of table names, got the single string {node_types!r}; "
                          f"wrap it in a list: [{node_types!r}]")
    names = list(node_types)
    if not names:
        raise ConfigError(f"{what} is empty; pass the graph's node types, e.g. list(data.node_types)")
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise ConfigError(f"{what} must be non-empty strings, got {bad!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{what} repeats a name: {names!r}")
    return names


def check_edge_types(edge_types: Iterable[Sequence[str]], what: str = "edge_types") -> list:
    """A non-empty list of distinct ``(src, relation, dst)`` string triples."""
    ets = []
    for et in edge_types:
        if isinstance(et, str) or len(et) != 3 or not all(isinstance(x, str) and x for x in et):
            raise ConfigError(
                f"{what} must hold (src, relation, dst) triples of strings, got {et!r}; "
                "take them from data.edge_types"
            )
        ets.append(tuple(et))
    if not ets:
        raise ConfigError(f"{what} is empty; pass the graph's edge types, e.g. list(data.edge_types)")
    if len(set(ets)) != len(ets):
        raise ConfigError(f"{what} repeats an edge type: {ets!r}")
    return ets


def module_key(*parts: str) -> str:
    """A ``ModuleDict``/``ParameterDict`` key for a table (one part) or an edge type (three).

    Table names are user data: they may contain ``.`` (forbidden in module names) or equal
    a ``ModuleDict`` method name (``items``, ``keys``, ``values``... -- a table called
    ``items`` is common). A fixed prefix and percent-escaping keep every key legal and the
    mapping injective: ``%`` is escaped first, then ``.`` and the separator ``|``, so
    ``a.b`` / ``a%2Eb`` and ``("a|b", "c", "d")`` / ``("a", "b|c", "d")`` stay distinct.
    """
    esc = [p.replace("%", "%25").replace(".", "%2E").replace("|", "%7C") for p in parts]
    return ("t:" if len(parts) == 1 else "e:") + "|".join(esc)


def zero_loss(*tensors: Tensor) -> Tensor:
    """A zero scalar attached to the autograd graph of ``tensors`` (so that a summed total
    of objectives can still call ``backward()`` when this objective had nothing to score)."""
    ts = [t for t in tensors if isinstance(t, Tensor)]
    if not ts:
        return torch.zeros(())
    out = ts[0].sum() * 0.0
    for t in ts[1:]:
        out = out + t.sum() * 0.0
    return out


# ---------------------------------------------------------------------------------------
# the loss
# ---------------------------------------------------------------------------------------


def normalized_info_nce(
    pos: Tensor,
    neg: Tensor,
    neg_mask: Optional[Tensor] = None,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """InfoNCE over (positive, valid negatives), divided by ``log(K_a + 1)``.

    Reference: Peleška & Šír, *Task-Agnostic Contrastive Pretraining for Relational Deep
    Learning*, arXiv 2506.22530 (2025) -- the normalisation that puts chance level at 1;
    InfoNCE itself: van den Oord et al., arXiv 1807.03748 (2018).

    .. math::

        \\ell_a = \\bigl(\\operatorname{logsumexp}_{j \\in \\{+\\} \\cup V_a}(s_{a,j}/\\tau)
                 - s^+_a/\\tau\\bigr) \\,/\\, \\log(|V_a| + 1)

    with ``V_a`` the valid negatives of anchor ``a``. Anchors with ``|V_a| = 0`` are skipped
    (their cross-entropy is identically 0 and carries no signal).

    Args:
        pos: ``[A]`` positive score of each anchor.
        neg: ``[A, K]`` negative scores.
        neg_mask: ``[A, K]`` bool, ``True`` where ``neg`` is a valid negative; ``None`` = all.
        temperature: ``τ > 0``.
        reduction: ``"mean"`` (scalar, mean over scored anchors), ``"sum"`` (scalar), or
            ``"none"`` (``[A']``, the losses of the ``A'`` scored anchors, in order).

    Returns:
        The loss; exactly 1 when every valid score of an anchor is equal. With no anchor
        to score, ``"mean"``/``"sum"`` give a zero that is still attached to the graph.

    Example:
        >>> pos, neg = torch.zeros(4), torch.zeros(4, 7)
        >>> float(normalized_info_nce(pos, neg))
        1.0
    """
    tau = check_temperature(temperature)
    if reduction not in ("mean", "sum", "none"):
        raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if pos.dim() != 1 or neg.dim() != 2 or neg.size(0) != pos.size(0):
        raise ConfigError(
            f"expected pos [A] and neg [A, K], got pos {tuple(pos.shape)} and neg {tuple(neg.shape)}"
        )
    if neg_mask is not None and (neg_mask.shape != neg.shape or neg_mask.dtype != torch.bool):
        raise ConfigError(
            f"neg_mask must be a bool tensor shaped like neg {tuple(neg.shape)}, "
            f"got {neg_mask.dtype} {tuple(neg_mask.shape)}"
        )
    A, K = neg.shape
    logits = torch.cat([pos.unsqueeze(1), neg], dim=1) / tau
    if neg_mask is not None:
        keep = torch.cat([neg_mask.new_ones(A, 1), neg_mask], dim=1)
        # -inf drops an entry from the logsumexp exactly; its softmax gradient is exactly 0.
        logits = logits.masked_fill(~keep, float("-inf"))
        k_valid = neg_mask.sum(dim=1)
    else:
        k_valid = torch.full((A,), K, dtype=torch.long, device=neg.device)
    ce = torch.logsumexp(logits, dim=1) - logits[:, 0]  # = -log_softmax(logits)[:, 0]
    scored = k_valid > 0
    # where() keeps 0/0 out of the graph: a NaN there would poison the backward pass even
    # for anchors that are filtered out afterwards.
    denom = torch.where(scored, torch.log1p(k_valid.to(ce.dtype)), torch.ones_like(ce))
    per_anchor = ce / denom
    if reduction == "none":
        return per_anchor[scored]
    total = (per_anchor * scored.to(per_anchor.dtype)).sum()
    if reduction == "sum":
        return total
    return total / scored.sum().clamp(min=1).to(total.dtype)


# ---------------------------------------------------------------------------------------
# negatives
# ---------------------------------------------------------------------------------------


def sample_candidates(
    num_candidates: int,
    k: int,
    *,
    self_index: Optional[Tensor] = None,
    num_anchors: Optional[int] = None,
    device: Optional[torch.device] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """For each anchor, ``min(k, available)`` distinct candidate indices in ``[0, N)``.

    Sampling without replacement, vectorised, in ``O(A·K + N)`` time and memory (no
    ``[A, N]`` random matrix): the candidates are laid out in a random cyclic order ``π``;
    one random set of distinct offsets ``d_1..d_K`` is drawn per call, and anchor ``a``
    takes ``π[(start_a + d_k) mod N]``. Distinct offsets give distinct candidates; since
    ``d`` is a uniform random subset and ``π`` a uniform permutation, each anchor's
    candidate set is a uniform random subset of the admissible candidates.

    Args:
        num_candidates: ``N``, the size of the candidate set.
        k: the most negatives per anchor.
        self_index: ``[A]`` long, the anchor's own index among the candidates (row and
            context contrast: anchors and candidates are the same rows); it is never drawn,
            so ``K = min(k, N - 1)``. ``start_a`` is then the anchor's place in ``π`` and
            the offsets are drawn from ``1..N-1``.
        num_anchors: ``A`` when the anchors are not candidates (link contrast);
            ``K = min(k, N)``, ``start_a`` uniform.
        device, generator: where to draw.

    Returns:
        ``[A, K]`` long tensor of candidate indices.
    """
    if (self_index is None) == (num_anchors is None):
        raise ConfigError("pass exactly one of self_index and num_anchors")
    if self_index is not None:
        device = self_index.device
        A = self_index.numel()
    else:
        A = int(num_anchors)
    N = int(num_candidates)
    pool = N - 1 if self_index is not None else N
    K = max(0, min(int(k), pool))
    if A == 0 or K == 0:
        return torch.empty(A, K, dtype=torch.long, device=device)
    perm = torch.randperm(N, device=device, generator=generator)
    if self_index is not None:
        where = torch.empty_like(perm)
        where[perm] = torch.arange(N, device=device)
        start = where[self_index]
        offsets = torch.randperm(N - 1, device=device, generator=generator)[:K] + 1
    else:
        start = torch.randint(N, (A,), device=device, generator=generator)
        offsets = torch.randperm(N, device=device, generator=generator)[:K]
    return perm[(start.unsqueeze(1) + offsets.unsqueeze(0)) % N]


# ---------------------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------------------


class _GatherDot(torch.autograd.Function):
    """``out[a, k] = <query[a], keys[index[a, k]]>`` without holding ``keys[index]``."""

    @staticmethod
    def forward(ctx, query: Tensor, keys: Tensor, index: Tensor, chunk: int) -> Tensor:  # type: ignore[override]
        A, K = index.shape
        out = query.new_empty(A, K)
        for s in range(0, A, chunk):
            e = min(A, s + chunk)
            # [c, K, C] @ [c, C, 1] -> [c, K]; the [c, K, C] buffer is freed each chunk.
            out[s:e] = torch.bmm(keys[index[s:e]], query[s:e].unsqueeze(2)).squeeze(2)
        ctx.save_for_backward(query, keys, index)
        ctx.chunk = chunk
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        query, keys, index = ctx.saved_tensors
        chunk = ctx.chunk
        A, K = index.shape
        gq = torch.empty_like(query) if ctx.needs_input_grad[0] else None
        gk = torch.zeros_like(keys) if ctx.needs_input_grad[1] else None
        for s in range(0, A, chunk):
            e = min(A, s + chunk)
            g = grad[s:e]  # [c, K]
            if gq is not None:
                # d out[a,k] / d query[a] = keys[index[a,k]]
                gq[s:e] = torch.bmm(g.unsqueeze(1), keys[index[s:e]]).squeeze(1)
            if gk is not None:
                # d out[a,k] / d keys[index[a,k]] = query[a]; repeated indices accumulate
                contrib = g.unsqueeze(2) * query[s:e].unsqueeze(1)  # [c, K, C]
                gk.index_add_(0, index[s:e].reshape(-1), contrib.reshape(-1, query.size(1)))
        return gq, gk, None, None


def gather_dot(query: Tensor, keys: Tensor, index: Tensor) -> Tensor:
    """Scores of sampled pairs: ``out[a, k] = query[a] · keys[index[a, k]]``.

    The obvious ``(query[:, None] * keys[index]).sum(-1)`` keeps the ``[A, K, C]`` gather
    alive for backward (134 MB for 1024 anchors x 255 negatives x 128 channels, per
    relation); the dense ``query @ keys.T`` costs ``[A, N]``. This custom autograd function
    saves only its inputs and recomputes the gather chunk by chunk in backward.

    Args:
        query: ``[A, C]``.
        keys: ``[N, C]``.
        index: ``[A, K]`` long, entries in ``[0, N)``.

    Returns:
        ``[A, K]`` scores, differentiable w.r.t. ``query`` and ``keys``.
    """
    if query.dim() != 2 or keys.dim() != 2 or query.size(1) != keys.size(1):
        raise ConfigError(f"gather_dot needs query [A, C] and keys [N, C], got {tuple(query.shape)} "
                          f"and {tuple(keys.shape)}")
    if index.dim() != 2 or index.size(0) != query.size(0):
        raise ConfigError(f"gather_dot needs index [A, K] with A = {query.size(0)}, got {tuple(index.shape)}")
    A, K = index.shape
    if A == 0 or K == 0:
        # Nothing to score; keep the result attached so that callers can still sum it.
        return query.new_zeros(A, K) + 0.0 * (query.sum() + keys.sum())
    chunk = max(1, _CHUNK_ELEMENTS // max(1, K * query.size(1)))
    return _GatherDot.apply(query, keys, index, chunk)


def dense_rank(ids: Tensor) -> Tuple[Tensor, int]:
    """Map arbitrary (possibly huge) global ids to ``0..U-1`` ranks within the batch, so
    that pair keys ``rank_a * U_b + rank_b`` stay far below int64 overflow."""
    uniq, inv = torch.unique(ids, return_inverse=True)
    return inv, int(uniq.numel())
