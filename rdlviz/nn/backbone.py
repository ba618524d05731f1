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

Three savings that change no output:

* **Each distinct row is encoded once.** Disjoint sampling copies a row into every seed's
  tree that reaches it (a driver-dnf batch of 512 seeds with fan-out ``[128, 64]`` holds
  ~77k sampled rows but only ~23k distinct ones: 26k ``races`` copies of 727 races). The
  row encoder depends on the row alone, so it runs on the distinct rows (by ``n_id``) and
  the result is copied back; the temporal encoding, which depends on the seed, is added
  per copy (in training, copies of a row then share one dropout mask). Only the clean
  view is deduplicated: a corrupted view corrupts each copy on its own.
* **Layer trimming** (``seeds_only=True``, for fine-tuning): layer ``l = 0..L-1`` needs
  outputs only for nodes within ``L - 1 - l`` hops of a seed, and inputs only from nodes
  within ``L - l`` hops. Each SAGE layer therefore gets a shorter destination prefix
  than its source prefix (PyG's ``trim_to_layer`` trims both alike, so its first layer
  still computes every leaf and its last layer every 1-hop node). On a driver-dnf batch
  the last layer computes 512 seed rows instead of ~49k.
* **Two views, one pass** (:meth:`Backbone.forward_views`, for pretraining): the clean
  and the corrupted view run as one stacked graph, two disjoint copies of the subgraph.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch_frame
from relbench.modeling.nn import HeteroEncoder, HeteroGraphSAGE, HeteroTemporalEncoder
from torch import Tensor
from torch_geometric.data import HeteroData

from rdlviz.errors import ConfigError
from rdlviz.nn.encoders import ROW_ENCODERS, stype_encoders

__all__ = ["Backbone", "seed_time_of"]

EdgeType = Tuple[str, str, str]

# Encode distinct rows only when they are at most this share of the sampled copies.
_DEDUPE_BELOW = 0.75


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
        """Row (+ temporal) encodings before message passing: ``{table: [n, channels]}``.

        Without ``tf_dict`` the batch's own TensorFrames are encoded, each distinct row
        (``n_id``) once.
        """
        inverse: Dict[str, Tensor] = {}
        if tf_dict is None:
            tf_dict = {}
            for t in batch.node_types:
                if "tf" not in batch[t]:
                    continue
                tf = batch[t].tf
                if "n_id" in batch[t] and batch[t].n_id.numel() > 1:
                    first, inv = _distinct_rows(batch[t].n_id)
                    # Gathering the frame and scattering back cost more than they save
                    # when few rows repeat (pretraining batches: ~3 % copies on rel-f1).
                    if first.numel() <= _DEDUPE_BELOW * inv.numel():
                        tf, inverse[t] = tf[first], inv
                tf_dict[t] = tf
        x = self.encoder(tf_dict)
        x = {t: v[inverse[t]] if t in inverse else v for t, v in x.items()}
        return self._add_time(batch, x)

    def _add_time(self, batch: HeteroData, x: Dict[str, Tensor], copies: int = 1) -> Dict[str, Tensor]:
        """Add each row's relative-time encoding; ``copies`` stacked views share it."""
        if self.temporal is None:
            return x
        seed_time = seed_time_of(batch)
        if seed_time is None:
            return x
        time_dict = {t: batch[t].time for t in self.time_types if t in x and "time" in batch[t]}
        batch_dict = {t: batch[t].batch for t in time_dict}
        rel = self.temporal(seed_time, time_dict, batch_dict)
        return {t: (v + rel[t].repeat(copies, 1)) if t in rel else v for t, v in x.items()}

    def forward_views(self, batch: HeteroData, view: Dict[str, Any]) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """Embed the batch and a second view of its rows in one pass: ``(h, h_view)``.

        Equal to ``(self(batch), self(batch, view))`` (up to dropout masks in training),
        but the two views go through the row encoder and every SAGE layer as one
        stacked graph of ``2 n_t`` rows per table -- two disjoint copies of the
        subgraph -- so each layer runs one larger matrix product instead of two small
        ones (a rel-f1 pretraining step: 0.79 -> 0.63 s with one thread, 0.54 -> 0.51 s
        with two). Every normalisation in the backbone is per row, so stacking changes
        no output.

        Args:
            batch: a sampled subgraph, as for :meth:`forward`.
            view: ``{table: TensorFrame}`` replacement rows (e.g. a corrupted view);
                tables missing from it repeat the clean rows.
        """
        tf_dict, n = {}, {}
        for t in batch.node_types:
            if "tf" in batch[t]:
                tf = batch[t].tf
                n[t] = tf.num_rows
                tf_dict[t] = torch_frame.cat([tf, view.get(t, tf)], dim=0)
        x = self._add_time(batch, self.encoder(tf_dict), copies=2)
        edge_index_dict = {}
        for e in batch.edge_types:
            src, _, dst = e
            if src in x and dst in x:
                ei = batch[e].edge_index
                shift = torch.tensor([[n[src]], [n[dst]]], device=ei.device)
                edge_index_dict[e] = torch.cat([ei, ei + shift], dim=1)
        h = self.gnn(x, edge_index_dict)
        return {t: v[: n[t]] for t, v in h.items()}, {t: v[n[t]:] for t, v in h.items()}

    def forward(self, batch: HeteroData, tf_dict=None, seeds_only: bool = False) -> Dict[str, Tensor]:
        """Embed the sampled rows of ``batch``.

        Args:
            batch: a sampled subgraph (``tf``, ``time``, ``batch`` per node type,
                ``edge_index`` per edge type, ``seed_time`` on the input type).
            tf_dict: replacement TensorFrames (e.g. a corrupted view) sharing the
                batch's subgraph; defaults to ``batch[t].tf``.
            seeds_only: compute only what the seeds' embeddings need (layer trimming;
                needs the sampler's ``num_sampled_nodes``/``num_sampled_edges``). The
                output then holds the seed rows only (hop 0 of each type, e.g.
                ``[batch_size, channels]`` for the input type), equal to the first rows
                of the untrimmed output.
        """
        x = self.encode_rows(batch, tf_dict)
        edge_index_dict = {e: batch[e].edge_index for e in batch.edge_types
                           if e[0] in x and e[2] in x}
        trim = seeds_only and all("num_sampled_nodes" in batch[t] for t in x) and all(
            "num_sampled_edges" in batch[e] for e in edge_index_dict)
        if not trim:
            return self.gnn(x, edge_index_dict)
        # Sampled nodes and edges are ordered by hop: a hop range is a prefix.
        hops = {t: list(batch[t].num_sampled_nodes) for t in x}
        ehops = {e: list(batch[e].num_sampled_edges) for e in edge_index_dict}
        L = len(self.gnn.convs)
        # relbench's HeteroGraphSAGE.forward, one layer at a time, on hop prefixes.
        for layer, (conv, norms) in enumerate(zip(self.gnn.convs, self.gnn.norms)):
            n_src = {t: sum(h[: L - layer + 1]) for t, h in hops.items()}
            n_dst = {t: sum(h[: L - layer]) for t, h in hops.items()}
            pairs, edges = {}, {}
            for e, ei in edge_index_dict.items():
                src, _, dst = e
                if n_dst[dst] == 0:
                    continue
                # A type missing from x had no node within reach (an empty source), but
                # SAGE's lin_l bias still reaches dst through an edge type without edges.
                xs = x[src][: n_src[src]] if src in x else x[dst].new_zeros(0, self.channels)
                pairs[e] = (xs, x[dst][: n_dst[dst]])
                edges[e] = ei[:, : sum(ehops[e][: L - layer])]
            x = conv(pairs, edges)
            x = {t: norms[t](v).relu() for t, v in x.items()}
        return x


def _distinct_rows(n_id: Tensor) -> Tuple[Tensor, Tensor]:
    """``(first [U], inverse [N])``: one position per distinct id, and each position's
    distinct id, so that ``values[first][inverse]`` repeats a per-row value per copy."""
    uniq, inverse = torch.unique(n_id, return_inverse=True)
    positions = torch.arange(n_id.numel(), device=n_id.device)
    first = torch.full((uniq.numel(),), n_id.numel(), dtype=torch.long, device=n_id.device)
    first.scatter_reduce_(0, inverse, positions, reduce="amin")
    return first, inverse
