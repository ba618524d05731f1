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
untouched, so a model runs on the view unchanged.
"""

from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch_geometric.data import HeteroData

__all__ = ["freeze_history", "NEVER"]

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
