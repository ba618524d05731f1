"""Which rows pretraining starts its subgraphs from, and at what time.

Pretraining may only see the past of the validation cutoff. Each seed is a row with
its own time ``t <= val cutoff`` (a fact row seeds at its own time); the temporal sampler
then admits only neighbours with time ``<= t``, so no row from the validation or test
period can reach a pretraining batch.

Rows of tables without a time column (entities such as drivers or players) can seed too
-- fine-tuning seeds at exactly those tables -- at times drawn from the empirical
distribution of pre-cutoff fact times, so the backbone meets the input distribution it
will see downstream.

Validation seeds are a temporal hold-out: the latest ``val_fraction`` of each table's
pre-cutoff rows (by time). Early stopping on them asks whether the representation
generalises forward in time, which is what the downstream tasks ask too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch_geometric.data import HeteroData

from rdlviz.errors import ConfigError

__all__ = ["SeedPool"]


@dataclass
class _Pool:
    nodes: np.ndarray  # int64 global row ids
    times: Optional[np.ndarray]  # int64 unix seconds, None = draw from fact times


class SeedPool:
    """Seed rows for pretraining, split into a train part and a temporal val hold-out.

    Args:
        data: the graph (``time`` attributes in unix seconds).
        cutoff: latest admissible seed time (unix seconds), normally the val cutoff.
        tables: seed tables; default all tables with a time column.
        val_fraction: share of each table's latest pre-cutoff rows held out.
        weighting: ``"size"`` (a table is drawn with probability proportional to its
            number of seed rows) or ``"uniform"`` (each table equally often).
    """

    def __init__(
        self,
        data: HeteroData,
        cutoff: int,
        tables: Optional[Sequence[str]] = None,
        val_fraction: float = 0.1,
        weighting: str = "size",
    ) -> None:
        if not 0.0 < val_fraction < 0.5:
            raise ConfigError(f"val_fraction must be in (0, 0.5), got {val_fraction}")
        if weighting not in ("size", "uniform"):
            raise ConfigError(f"weighting must be 'size' or 'uniform', got {weighting!r}")
        temporal = [t for t in data.node_types if "time" in data[t]]
        if tables is None:
            tables = temporal
        unknown = [t for t in tables if t not in data.node_types]
        if unknown:
            raise ConfigError(f"unknown seed tables {unknown}; tables: {list(data.node_types)}")
        if not temporal:
            raise ConfigError("the graph has no table with a time column to anchor seed times")
        self.cutoff = int(cutoff)
        # Empirical distribution of pre-cutoff fact times: seed times for entity tables.
        all_times = np.concatenate([data[t].time.numpy() for t in temporal])
        all_times = np.sort(all_times[all_times <= self.cutoff])
        if len(all_times) == 0:
            raise ConfigError("no row has a time before the cutoff; nothing to pretrain on")
        split_time = all_times[int(len(all_times) * (1 - val_fraction))]
        self._fact_times = {"train": all_times[all_times < split_time],
                            "val": all_times[all_times >= split_time]}
        self.train: Dict[str, _Pool] = {}
        self.val: Dict[str, _Pool] = {}
        for t in tables:
            n = data[t].num_nodes
            if "time" in data[t]:
                time = data[t].time.numpy()
                ok = np.flatnonzero(time <= self.cutoff)
                order = ok[np.argsort(time[ok], kind="stable")]
                k = max(1, int(round(len(order) * val_fraction))) if len(order) > 1 else 0
                tr, va = order[: len(order) - k], order[len(order) - k:]
                if len(tr):
                    self.train[t] = _Pool(tr.astype(np.int64), time[tr].astype(np.int64))
                if len(va):
                    self.val[t] = _Pool(va.astype(np.int64), time[va].astype(np.int64))
            else:
                ids = np.arange(n, dtype=np.int64)
                self.train[t] = _Pool(ids, None)
                self.val[t] = _Pool(ids, None)
        if not self.train:
            raise ConfigError("no seed rows before the cutoff in tables " + ", ".join(tables))
        self.tables = list(self.train)
        self.weighting = weighting

    def _weights(self, pools: Dict[str, _Pool]) -> Tuple[List[str], np.ndarray]:
        names = list(pools)
        w = np.array([len(pools[t].nodes) for t in names], dtype=float)
        if self.weighting == "uniform":
            w = np.ones_like(w)
        return names, w / w.sum()

    def draw(self, split: str, batch_size: int, rng: np.random.Generator):
        """Draw one batch of seeds: ``(table, nodes [B] int64, times [B] int64)``."""
        pools = self.train if split == "train" else self.val
        names, p = self._weights(pools)
        table = names[rng.choice(len(names), p=p)]
        pool = pools[table]
        b = min(batch_size, len(pool.nodes))
        idx = rng.choice(len(pool.nodes), size=b, replace=False)
        nodes = pool.nodes[idx]
        if pool.times is not None:
            times = pool.times[idx]
        else:
            ft = self._fact_times[split] if len(self._fact_times[split]) else self._fact_times["train"]
            times = ft[rng.integers(0, len(ft), size=b)]
        return table, torch.from_numpy(nodes), torch.from_numpy(times.astype(np.int64))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{t}={len(p.nodes)}" for t, p in self.train.items())
        return f"SeedPool(train: {sizes}; cutoff={self.cutoff})"
