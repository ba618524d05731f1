"""Pair features of a link task: where a destination already sits in the source's past.

A two-tower score ``MLP(h_u) · h_v`` embeds the source and the destination apart, so it
cannot see that the destination is *in* the source's history -- the franchise a player
played for last season, the circuit a driver raced at last year -- the signal that
repeat-behaviour baselines live on and that ID-GNN (You et al., AAAI 2021) and ContextGNN
(Yuan et al., 2024) give a link model by scoring destinations inside the source's
subgraph. Here that signal is a handful of features per pair, read from a disjoint
temporal tree sampled at the source along the shortest meta-paths from the source table
to the destination table (every other edge type has fan-out 0)::

    z(u, v, t) = [1, log(1 + c), c / n, 1 / (1 + a)]    if the tree reaches v (c > 0)
    z(u, v, t) = 0                                      otherwise

with ``c`` the number of rows in u's tree at time t that link to v (the sampler keeps
each row once per tree, so on rel-lahman's player-team, c counts the player's
team-seasons with franchise v), ``n`` the sum of ``c`` over the destinations, and ``a``
the age in years of the most recent timed row on a path to v (``t`` minus the largest
time on the path; ``1 / (1 + a) = 0`` when no row on the path is timed). The tree admits
no row newer than t, so no feature comes from after the seed time. The link model adds
``φ(z)``, a small MLP, to the two-tower score
(:mod:`rdlviz.finetune.link`). The features do not depend on the model, so they are
computed once per table of (source, time) rows.

A destination table equal to the source table, or one the graph does not connect to it,
has no meta-path: every pair then gets ``z = 0`` and the model is the two-tower alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from rdlviz.graph.build import meta_distances
from rdlviz.sampling.csr import TemporalCSR
from rdlviz.sampling.sampler import sample_ids

__all__ = ["PairFeatures", "NUM_PAIR_FEATURES", "meta_path_fanouts", "pair_features"]

NUM_PAIR_FEATURES = 4
_YEAR = 365.25 * 86400.0
_NO_TIME = torch.iinfo(torch.int64).min


@dataclass
class PairFeatures:
    """``z`` of the pairs some source trees reach, sorted by row: entry ``k`` is the pair
    (row ``row[k]``'s source at its time, destination ``dst[k]``) with features
    ``z[k]`` (``float32 [K, NUM_PAIR_FEATURES]``); pairs not listed have ``z = 0``."""

    row: Tensor
    dst: Tensor
    z: Tensor

    def select(self, rows: Tensor, slot: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The entries of ``rows`` whose destination has a slot: ``(i, j, z)`` with ``i`` the
        position in ``rows`` and ``j = slot[dst]`` (``slot`` is ``-1`` for no slot)."""
        local = torch.full((int(self.row.max()) + 1 if len(self.row) else 0,), -1, dtype=torch.long)
        inside = rows < len(local)
        local[rows[inside]] = torch.arange(len(rows))[inside]
        i = local[self.row] if len(local) else self.row
        j = slot[self.dst]
        keep = (i >= 0) & (j >= 0)
        return i[keep], j[keep], self.z[keep]


def meta_path_fanouts(edge_types: Sequence[Tuple[str, str, str]], src: str, dst: str,
                      num_neighbors: Sequence[int]) -> Dict[Tuple[str, str, str], List[int]]:
    """Fan-outs per edge type that sample only the shortest meta-paths from ``src`` to
    ``dst``: hop ``h`` of an edge type ``(child, rel, parent)`` on such a path takes
    ``num_neighbors[h - 1]`` (its last value past its end), every other entry 0. Empty
    when ``dst`` is ``src`` or unreachable.

    Example:
        >>> meta_path_fanouts([("orders", "f2p_customer_id", "customers"),
        ...                    ("customers", "rev_f2p_customer_id", "orders"),
        ...                    ("orders", "f2p_product_id", "products"),
        ...                    ("products", "rev_f2p_product_id", "orders")],
        ...                   "customers", "products", [8, 4])
        {('orders', 'f2p_customer_id', 'customers'): [8, 0], ('customers', 'rev_f2p_customer_id', 'orders'): [0, 0], \
('orders', 'f2p_product_id', 'products'): [0, 0], ('products', 'rev_f2p_product_id', 'orders'): [0, 4]}

    (An edge type's messages flow from its first type to its last, so a customer takes
    its orders at hop 1 through ``(orders, f2p_customer_id, customers)`` and each order
    its product at hop 2 through ``(products, rev_f2p_product_id, orders)``.)
    """
    if not num_neighbors:
        raise ValueError("num_neighbors needs at least one hop")
    from_src = meta_distances(edge_types, src, forward=True)
    to_dst = meta_distances(edge_types, dst, forward=False)
    d = from_src.get(dst, 0)
    out = {}
    for e in edge_types:
        child, _, parent = e
        fan = [0] * d
        h = from_src.get(child, -1)
        if d and 1 <= h <= d and from_src.get(parent) == h - 1 and to_dst.get(child) == d - h:
            fan[h - 1] = int(num_neighbors[min(h, len(num_neighbors)) - 1])
        out[e] = fan
    return out if d else {}


def pair_features(data, src_table: str, dst_table: str, src: Tensor, times: Tensor,
                  num_neighbors: Sequence[int], temporal_strategy: str, seed: int,
                  batch_size: int = 4096) -> PairFeatures:
    """:class:`PairFeatures` of the rows ``(src[i], times[i])`` (module docstring).

    Args:
        data: the graph's ``HeteroData`` (``time`` in unix seconds on timed types).
        src_table / dst_table: the link task's source and destination tables.
        src: ``int64 [R]`` source rows; times: ``int64 [R]`` seed times (unix seconds).
        num_neighbors: fan-out per hop of the trees (see :func:`meta_path_fanouts`).
        temporal_strategy / seed: as for the sampler.
    """
    fan = meta_path_fanouts(list(data.edge_types), src_table, dst_table, num_neighbors)
    empty = PairFeatures(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                         torch.zeros(0, NUM_PAIR_FEATURES))
    if not fan or len(src) == 0:
        return empty
    csr = TemporalCSR.from_data(data)
    n_dst = data[dst_table].num_nodes
    depth = len(next(iter(fan.values())))
    node_time = {t: data[t].time for t in data.node_types if "time" in data[t]}
    rows, dsts, zs = [], [], []
    for start in range(0, len(src), batch_size):
        sub = sample_ids(csr, (src_table, src[start:start + batch_size]), times[start:start + batch_size],
                         fan, temporal_strategy=temporal_strategy, seed=seed + start)
        # The sampler keeps one node per row and tree, reached by one edge per parent: the
        # latest time of a node's paths from its seed (the seed itself excluded) is a
        # max over its parents, settled one hop per pass.
        path = {t: torch.full((len(ids),), _NO_TIME, dtype=torch.long) for t, ids in sub.n_id.items()}
        edges = [(e, ei) for e, ei in sub.edge_index.items() if ei.numel()]
        for _ in range(depth):
            for (child, _, parent), ei in edges:
                own = (node_time[child][sub.n_id[child][ei[0]]] if child in node_time
                       else torch.full((ei.size(1),), _NO_TIME, dtype=torch.long))
                path[child] = path[child].scatter_reduce(0, ei[0], torch.maximum(own, path[parent][ei[1]]),
                                                         reduce="amax")
        # c: the edges into each destination node (one per distinct parent row).
        hits = torch.zeros(len(sub.n_id[dst_table]), dtype=torch.long)
        for (child, _, _), ei in edges:
            if child == dst_table:
                hits += torch.bincount(ei[0], minlength=len(hits))
        node = torch.nonzero(hits).flatten()
        b = sub.batch[dst_table][node]
        pairs, inv = torch.unique(b * n_dst + sub.n_id[dst_table][node], return_inverse=True)
        count = torch.zeros(len(pairs), dtype=torch.long).index_add_(0, inv, hits[node])
        latest = torch.full((len(pairs),), _NO_TIME, dtype=torch.long).scatter_reduce(
            0, inv, path[dst_table][node], reduce="amax")
        pb = pairs // n_dst
        reached = torch.zeros(int(pb.max()) + 1 if len(pb) else 0, dtype=torch.long).index_add_(0, pb, count)[pb]
        age = (sub.seed_time[pb] - latest).double() / _YEAR
        recency = torch.where(latest == _NO_TIME, torch.zeros_like(age), 1.0 / (1.0 + age))
        c = count.double()
        zs.append(torch.stack([torch.ones_like(c), torch.log1p(c), c / reached, recency], dim=1).float())
        rows.append(pb + start)
        dsts.append(pairs % n_dst)
    if not rows:
        return empty
    return PairFeatures(torch.cat(rows), torch.cat(dsts), torch.cat(zs))
