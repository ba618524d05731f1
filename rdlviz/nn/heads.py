"""Prediction heads on top of a backbone's seed embeddings."""

from __future__ import annotations

import torch
from torch_geometric.nn import MLP

from rdlviz.errors import ConfigError

__all__ = ["MLPHead"]


class MLPHead(torch.nn.Module):
    r"""An MLP from a seed row's embedding to the task's output.

    Args:
        channels: input width (the backbone's ``channels``).
        out_channels: 1 for binary classification and regression, the number of
            classes for multiclass.
        num_layers: layers of the MLP (1 = linear probe).
        dropout: dropout between layers.

    Shapes: ``[B, channels] -> [B, out_channels]``.
    """

    def __init__(self, channels: int, out_channels: int = 1, num_layers: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"head num_layers must be >= 1, got {num_layers}")
        if out_channels < 1:
            raise ConfigError(f"out_channels must be >= 1, got {out_channels}")
        self.mlp = MLP(in_channels=channels, hidden_channels=channels, out_channels=out_channels,
                       num_layers=num_layers, dropout=dropout, norm="layer_norm",
                       # Per row: PyG's LayerNorm defaults to mode="graph", which without a
                       # batch vector normalises over the whole mini-batch, so a row's
                       # prediction would depend on the other rows it is batched with.
                       norm_kwargs={"mode": "node"})

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
