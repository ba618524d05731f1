"""Embedding every row of a table with a backbone: what the projector and ``rdlviz embed``
show.

Each row is embedded from its own temporal subgraph: a row of a table with a time column
at its own time (it sees only its past), a row of a table without one at the graph's
cutoff (everything the graph holds). The backbone runs in eval mode without gradients.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from tqdm.auto import tqdm

from rdlviz.errors import SchemaError

__all__ = ["embed_rows", "default_times"]


def default_times(graph, table: str, nodes: torch.Tensor) -> torch.Tensor:
    """Seed times for ``nodes`` of ``table``: own time, or the latest time in the graph."""
    data = graph.data
    if "time" in data[table]:
        return data[table].time[nodes]
    latest = max(int(data[t].time.max()) for t in data.node_types if "time" in data[t] and data[t].num_nodes)
    return torch.full((len(nodes),), latest, dtype=torch.long)


@torch.no_grad()
def embed_rows(
    backbone,
    graph,
    table: str,
    nodes: Optional[torch.Tensor] = None,
    times: Optional[torch.Tensor] = None,
    num_neighbors: Sequence[int] = (16, 8),
    batch_size: int = 1024,
    seed: int = 0,
    progress: bool = False,
    device=None,
) -> torch.Tensor:
    """Embed rows of ``table``.

    Args:
        backbone: a :class:`~rdlviz.nn.Backbone` or a :class:`~rdlviz.pretrain.PretrainRun`.
        graph: the :class:`rdlviz.Graph` to sample from.
        table: node type.
        nodes: row indices (default: all rows).
        times: seed times in unix seconds (default: :func:`default_times`).
        num_neighbors: temporal fan-out per hop.
        device: where to run (default: the backbone's device). The result is on the CPU.

    Returns:
        ``Tensor[len(nodes), channels]``.
    """
    from rdlviz.sampling import NeighborLoader

    backbone = getattr(backbone, "backbone", backbone)
    data = graph.data
    if table not in data.node_types:
        raise SchemaError(f"unknown table; tables: {list(data.node_types)}", table=table)
    if nodes is None:
        nodes = torch.arange(data[table].num_nodes)
    nodes = torch.as_tensor(nodes, dtype=torch.long)
    if times is None:
        times = default_times(graph, table, nodes)
    if device is None:
        device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    out = []
    loader = NeighborLoader(data, num_neighbors=list(num_neighbors), input_nodes=(table, nodes),
                            input_time=torch.as_tensor(times, dtype=torch.long),
                            batch_size=batch_size, shuffle=False, seed=seed,
                            transform=lambda b: b.to(device))
    for batch in tqdm(loader, desc=f"embed {table}", disable=not progress, leave=False):
        out.append(backbone(batch, seeds_only=True)[table][: batch[table].batch_size].cpu())
    backbone.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, backbone.channels)
