"""Is the representation collapsing? Cheap diagnostics of embedding geometry.

Contrastive pretraining can succeed on its loss while the embeddings degenerate: all rows
of a table squeezed onto a few directions (*dimensional collapse*) or onto one point
(*complete collapse*). A too-easy corruption (small ``p``) or a too-high temperature are
the usual causes. Three numbers catch it, each computed per table:

* :func:`effective_rank` (Roy & Vetterli, 2007) -- how many directions carry the spread;
  dimensional collapse drives it toward 1.
* :func:`uniformity` (Wang & Isola, ICML 2020) -- how evenly the normalised embeddings
  cover the hypersphere; complete collapse drives it to 0, well-spread high-dimensional
  embeddings approach ``-2t`` (``-4`` for ``t = 2``).
* :func:`alignment` (Wang & Isola, ICML 2020) -- how close the two views of the same row
  are; 0 = identical, 4 = antipodal (``α = 2``).

:func:`health_report` bundles them per table for logging or a notebook table. All of it is
diagnostic: computed without gradients, on at most ``max_rows`` rows per table (drawn
with a fixed generator, so reports of successive checkpoints are comparable).
"""

from __future__ import annotations

import math
from typing import Dict, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from rdlviz.errors import ConfigError

__all__ = ["effective_rank", "alignment", "uniformity", "health_report"]


def _as_2d(z: Tensor, name: str = "z") -> Tensor:
    if not isinstance(z, Tensor) or z.dim() != 2:
        raise ConfigError(f"{name} must be a 2-D tensor [n, d], got {getattr(z, 'shape', type(z))}")
    return z.detach().double()


@torch.no_grad()
def effective_rank(z: Tensor, center: bool = False) -> float:
    """Effective rank of an embedding matrix.

    Reference: Roy & Vetterli, *The effective rank: a measure of effective dimensionality*,
    EUSIPCO 2007.

    .. math::

        \\operatorname{erank}(Z) = \\exp\\Bigl(-\\sum_k p_k \\log p_k\\Bigr),
        \\qquad p_k = \\sigma_k / \\sum_l \\sigma_l

    with ``σ_k`` the singular values of ``Z``. It lies in ``[1, min(n, d)]``: 1 when all
    rows lie on one line, ``min(n, d)`` when all singular values are equal.

    Args:
        z: ``[n, d]`` embeddings.
        center: subtract the column mean first, so that an offset shared by every row
            does not count as a direction. Off by default: the textbook definition (and
            RankMe, Garrido et al., ICML 2023, which uses it on embeddings) does not center.

    Returns:
        The effective rank; ``0.0`` for an all-zero (or empty) matrix.
    """
    x = _as_2d(z)
    if x.numel() == 0:
        return 0.0
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(x)
    total = s.sum()
    if not total > 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def alignment(z1: Tensor, z2: Tensor, alpha: float = 2) -> float:
    """Alignment of positive pairs on the unit hypersphere.

    Reference: Wang & Isola, *Understanding Contrastive Representation Learning through
    Alignment and Uniformity on the Hypersphere*, ICML 2020.

    .. math::

        \\mathcal{L}_{align} = \\mathbb{E}_i \\, \\lVert f(x_i) - f(y_i) \\rVert_2^{\\alpha},
        \\qquad f(x) = x / \\lVert x \\rVert

    Args:
        z1: ``[n, d]`` embeddings of the first view.
        z2: ``[n, d]`` embeddings of the second view (row ``i`` pairs with row ``i``).
        alpha: ``α > 0``.

    Returns:
        In ``[0, 2^α]``; 0 = both views identical in direction. Lower is better.
    """
    a, b = _as_2d(z1, "z1"), _as_2d(z2, "z2")
    if a.shape != b.shape:
        raise ConfigError(f"alignment needs two views of the same rows, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not alpha > 0:
        raise ConfigError(f"alpha must be > 0, got {alpha!r}")
    if a.size(0) == 0:
        return float("nan")
    d = (F.normalize(a, dim=1) - F.normalize(b, dim=1)).norm(dim=1)
    return float(d.pow(alpha).mean())


@torch.no_grad()
def uniformity(z: Tensor, t: float = 2) -> float:
    """Uniformity of the normalised embeddings on the hypersphere.

    Reference: Wang & Isola, ICML 2020 (as :func:`alignment`).

    .. math::

        \\mathcal{L}_{uniform} = \\log \\mathbb{E}_{i \\ne j} \\,
            e^{-t \\lVert f(x_i) - f(x_j) \\rVert_2^2}

    computed as a log-sum-exp over the ``n(n-1)/2`` pairs (``torch.pdist``), so it costs
    ``O(n²)``: pass a subsample for large ``n`` (:func:`health_report` does).

    Args:
        z: ``[n, d]`` embeddings, ``n >= 2``.
        t: ``t > 0``.

    Returns:
        In ``[-4t, 0]``; 0 = every row in one direction (collapse). Lower is better.
    """
    x = _as_2d(z)
    if not t > 0:
        raise ConfigError(f"t must be > 0, got {t!r}")
    n = x.size(0)
    if n < 2:
        return float("nan")
    sq = torch.pdist(F.normalize(x, dim=1)).pow(2)
    return float(torch.logsumexp(-t * sq, dim=0) - math.log(sq.numel()))


@torch.no_grad()
def health_report(
    h_dict: Mapping[str, Tensor],
    h_view_dict: Optional[Mapping[str, Tensor]] = None,
    max_rows: int = 2048,
    seed: int = 0,
) -> Dict[str, Dict[str, float]]:
    """Collapse diagnostics per table.

    Args:
        h_dict: ``{table: [N_t, C]}`` embeddings (e.g. the GNN output of a batch, or the
            embeddings of a whole table).
        h_view_dict: optional second view ``{table: [N_t, C]}`` (e.g. the corrupted
            view's output) for :func:`alignment`.
        max_rows: at most this many rows per table are used (uniformly subsampled with a
            generator seeded by ``seed``; uniformity is quadratic in rows).
        seed: seed of the subsampling.

    Returns:
        ``{table: {"rows", "dim", "effective_rank", "effective_rank_ratio", "uniformity",
        "mean_norm", "mean_dim_std", ["alignment"]}}`` where ``effective_rank_ratio`` is the
        effective rank divided by ``min(rows, dim)`` (near 0 = collapsed, 1 = isotropic)
        and ``mean_dim_std`` is the mean over dimensions of the standard deviation of the
        normalised embeddings (``≈ 1/sqrt(dim)`` when spread, 0 when collapsed; the
        SimSiam collapse monitor, Chen & He, CVPR 2021).
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 2:
        raise ConfigError(f"max_rows must be an integer >= 2, got {max_rows!r}")
    gen = torch.Generator().manual_seed(int(seed))
    report: Dict[str, Dict[str, float]] = {}
    for name, h in h_dict.items():
        x = _as_2d(h, f"h_dict['{name}']").cpu()
        n, d = x.shape
        idx = torch.randperm(n, generator=gen)[:max_rows] if n > max_rows else torch.arange(n)
        xs = x[idx]
        er = effective_rank(xs) if n else 0.0
        row: Dict[str, float] = {
            "rows": n,
            "dim": d,
            "effective_rank": er,
            "effective_rank_ratio": er / min(xs.shape) if min(xs.shape) > 0 else float("nan"),
            "uniformity": uniformity(xs) if xs.size(0) >= 2 else float("nan"),
            "mean_norm": float(xs.norm(dim=1).mean()) if n else float("nan"),
            "mean_dim_std": float(F.normalize(xs, dim=1).std(dim=0).mean()) if xs.size(0) >= 2 else float("nan"),
        }
        if h_view_dict is not None and name in h_view_dict:
            v = _as_2d(h_view_dict[name], f"h_view_dict['{name}']").cpu()
            if v.shape != x.shape:
                raise ConfigError(f"table '{name}': the two views differ in shape, {tuple(x.shape)} vs {tuple(v.shape)}")
            row["alignment"] = alignment(xs, v[idx])
        report[name] = row
    return report
