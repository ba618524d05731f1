"""History frozen at a cutoff: a view of a graph in which rows after the cutoff cannot be
sampled.

RelBench predicts its whole test period from the database as it stood at the test
cutoff: a test seed two years after the cutoff sees nothing of those two years. Its
validation seeds, sampled from the same graph, see every row up to their own time. The
two splits then measure different things (a one-step forecast on validation, a forecast
up to several windows ahead on test), and a model chosen on validation need not be the
best on test. :func:`freeze_history` builds the validation counterpart of the test
situation: the same graph, whose rows after the validation cutoff get a time later than
any seed, so the temporal samplers never reach them. Node indices, features and edges are
untouched, so a model runs on the view unchanged. :func:`stale_seed_times` does the same
for training: it samples each training seed from history up to a test period's length
old, so a model learns to forecast from stale history, as test asks of it.
"""

from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch_geometric.data import HeteroData

__all__ = ["freeze_history", "stale_seed_times", "NEVER"]

#: The time given to rows after the cutoff: later than any seed time, with room to spare
#: so differences of times cannot overflow.
NEVER = torch.iinfo(torch.int64).max // 4


def freeze_history(data: HeteroData, cutoff: int, keep: Iterable[str] = ()) -> HeteroData:
    """A shallow copy of ``data`` whose rows after ``cutoff`` are never sampled.

    Args:
        data: a temporal ``HeteroData`` (``time`` in unix seconds on the timed types).
        cutoff: unix seconds; rows with ``time > cutoff`` get time :data:`NEVER`.
        keep: node types left as they are (the seeds' own type: a seed must keep its
            time, which the relative-time encoder reads).

    Returns:
        ``HeteroData`` sharing every tensor with ``data`` except the changed ``time``
        tensors. Samplers build their adjacency for it anew (it is a different graph).

    Example:
        >>> val_view = freeze_history(graph.data, to_unix_seconds(ds.val_timestamp))
        >>> NeighborLoader(val_view, [128, 64], input_nodes=("drivers", nodes), input_time=times)
    """
    keep = set(keep)
    out = copy.copy(data)
    for t in data.node_types:
        if t in keep or "time" not in data[t]:
            continue
        time = data[t].time
        out[t].time = torch.where(time > int(cutoff), torch.full_like(time, NEVER), time)
    return out


def stale_seed_times(times: torch.Tensor, horizon: int, seed: int) -> torch.Tensor:
    """Sampling times for training seeds whose history is up to ``horizon`` seconds stale.

    A test seed ``k`` windows after the test cutoff sees history that is ``k`` windows old.
    Training on the same situation means sampling each training seed's neighbourhood at
    ``t - u`` with ``u ~ Uniform[0, horizon]`` while the model still reads ``t`` as the
    seed time (so a row's age is measured from ``t``, as on test). Nothing later than
    ``t`` is seen, so labels stay leak-free.

    Args:
        times: ``int64 [num_seeds]`` seed times, unix seconds.
        horizon: the largest staleness in seconds (RelBench: ``num_eval_timestamps *
            timedelta``, the span of the test period); must be >= 0.
        seed: generator seed (one draw per epoch: pass a different seed each epoch).

    Returns:
        ``int64 [num_seeds]``, each in ``[t - horizon, t]``.

    Example:
        >>> capped = stale_seed_times(times, horizon=40 * 30 * 86400, seed=epoch)
    """
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0 seconds, got {horizon}")
    g = torch.Generator().manual_seed(int(seed))
    u = (torch.rand(len(times), generator=g, dtype=torch.float64) * horizon).long()
    return times - u
