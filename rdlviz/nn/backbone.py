"""The relational backbone: rows -> row embeddings -> message passing over foreign keys.

A :class:`Backbone` is relbench.modeling's three pieces, wrapped (not copied):

1. :class:`~relbench.modeling.nn.HeteroEncoder` -- one torch_frame model per table turns
   each sampled row's cells into a vector (ResNet by default, or a linear encoder);
2. optionally :class:`~relbench.modeling.nn.HeteroTemporalEncoder` -- adds an encoding of
   each row's age relative to its seed, ``(seed_time - time) / 86400`` days;
3. :class:`~relbench.modeling.nn.HeteroGraphSAGE` -- ``num_layers`` rounds of SAGE
   message passing along ``f2p_*`` / ``rev_f2p_*`` edges.

Batch in (a :class:`~torch_geometric.data.HeteroData` from :mod:`rdlviz.sampling`),
``{table: Tensor[num_sampled_rows, channels]}`` out. The same module is pretrained and
fine-tuned, so its constructor arguments are exactly what a checkpoint records
(:meth:`Backbone.config`) to rebuild it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from relbench.modeling.nn import HeteroEncoder, HeteroGraphSAGE, HeteroTemporalEncoder
from torch import Tensor
from torch_geometric.data import HeteroData

from rdlviz.errors import ConfigError
from rdlviz.nn.encoders import ROW_ENCODERS, stype_encoders

__all__ = ["Backbone", "seed_time_of"]

EdgeType = Tuple[str, str, str]


def seed_time_of(batch: HeteroData) -> Optional[Tensor]:
    """The ``seed_time`` tensor of a sampled batch (stored on its input node type)."""
    for store in batch.node_stores:
        if "seed_time" in store:
            return store["seed_time"]
    return None


class Backbone(torch.nn.Module):
    r"""Row encoder + (optional) temporal encoder + heterogeneous GraphSAGE.

    Args:
        data: the full graph's :class:`HeteroData` (``data[table].tf`` TensorFrames give
            the column layout; node types with a ``time`` attribute get a temporal
            encoding).
        col_stats: ``{table: {column: stats}}`` from graph building.
        channels: embedding width (128 in the paper).
        num_layers: message-passing layers (2--3 in the paper).
        aggr: neighbourhood aggregation of each SAGE layer (``"mean"``, ``"sum"``,
            ``"max"``).
        encoder: ``"resnet"`` (torch_frame ResNet) or ``"linear"``.
        encoder_layers: depth of the ResNet row encoder.
        temporal: add relative-time encodings (needs batches carrying ``seed_time``).

    Shapes:
        ``forward(batch)`` returns ``{table: [batch[table].num_nodes, channels]}``.

    Example:
        >>> backbone = Backbone(graph.data, graph.col_stats, channels=64)
        >>> h = backbone(batch)          # batch from rdlviz.sampling.NeighborLoader
        >>> h["drivers"].shape
        torch.Size([512, 64])
    """

    def __init__(
        self,
        data: HeteroData,
        col_stats: Dict[str, Dict[str, Any]],
        channels: int = 128,
        num_layers: int = 2,
        aggr: str = "mean",
        encoder: str = "resnet",
        encoder_layers: int = 4,
        temporal: bool = True,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ConfigError(f"channels must be >= 1, got {channels}")
        if num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
        if encoder not in ROW_ENCODERS:
            raise ConfigError(f"encoder must be one of {sorted(ROW_ENCODERS)}, got {encoder!r}")
        if aggr not in ("mean", "sum", "max", "min"):
            raise ConfigError(f"aggr must be 'mean', 'sum', 'max' or 'min', got {aggr!r}")
        self.node_types: List[str] = list(data.node_types)
        self.edge_types: List[EdgeType] = [tuple(e) for e in data.edge_types]
        self.time_types: List[str] = [t for t in self.node_types if "time" in data[t]]
        self._config = dict(channels=channels, num_layers=num_layers, aggr=aggr,
                            encoder=encoder, encoder_layers=encoder_layers, temporal=temporal)
        model_cls, kwargs = ROW_ENCODERS[encoder]
        kwargs = dict(kwargs, channels=channels)
        if encoder == "resnet":
            kwargs["num_layers"] = encoder_layers
        self.encoder = HeteroEncoder(
            channels=channels,
            node_to_col_names_dict={t: data[t].tf.col_names_dict for t in self.node_types},
            node_to_col_stats=col_stats,
            torch_frame_model_cls=model_cls,
            torch_frame_model_kwargs=kwargs,
            default_stype_encoder_cls_kwargs=stype_encoders(),
        )
        self.temporal = (
            HeteroTemporalEncoder(self.time_types, channels) if temporal and self.time_types else None
        )
        self.gnn = HeteroGraphSAGE(self.node_types, self.edge_types, channels,
                                   aggr=aggr, num_layers=num_layers)
        self.channels = channels

    def config(self) -> Dict[str, Any]:
        """The constructor arguments (besides the graph) that rebuild this backbone."""
        return dict(self._config)

    def encode_rows(self, batch: HeteroData, tf_dict=None) -> Dict[str, Tensor]:
        """Row (+ temporal) encodings before message passing: ``{table: [n, channels]}``."""
        tf_dict = tf_dict if tf_dict is not None else {t: batch[t].tf for t in batch.node_types if "tf" in batch[t]}
        x = self.encoder(tf_dict)
        if self.temporal is not None:
            seed_time = seed_time_of(batch)
            if seed_time is not None:
                time_dict = {t: batch[t].time for t in self.time_types if t in x and "time" in batch[t]}
                batch_dict = {t: batch[t].batch for t in time_dict}
                rel = self.temporal(seed_time, time_dict, batch_dict)
                x = {t: (v + rel[t]) if t in rel else v for t, v in x.items()}
        return x

    def forward(self, batch: HeteroData, tf_dict=None) -> Dict[str, Tensor]:
        """Embed every sampled row of ``batch``.

        Args:
            batch: a sampled subgraph (``tf``, ``time``, ``batch`` per node type,
                ``edge_index`` per edge type, ``seed_time`` on the input type).
            tf_dict: replacement TensorFrames (e.g. a corrupted view) sharing the
                batch's subgraph; defaults to ``batch[t].tf``.
        """
        x = self.encode_rows(batch, tf_dict)
        edge_index_dict = {e: batch[e].edge_index for e in batch.edge_types
                           if e[0] in x and e[2] in x}
        return self.gnn(x, edge_index_dict)
