"""Link (recommendation) tasks, e.g. rel-f1 ``driver-circuit-compete``: a two-tower model.

Both towers are the same backbone. A source entity is embedded from its temporal subgraph
at the seed time; a destination entity likewise at the same time; the score is
``MLP(h_src) · h_dst``. Training pairs are the task table's (source, time, destination)
triples, each against one destination drawn uniformly at random, with the BPR loss
(Rendle et al., UAI 2009): ``-log σ(s(u, v⁺) - s(u, v⁻))``. Evaluation ranks every
destination for every source at each seed time and keeps the top ``eval_k``, which is
what RelBench's MAP@k scores.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rdlviz.finetune.result import FinetuneResult
from rdlviz.graph.time import to_unix_seconds
from rdlviz.nn.heads import MLPHead
from rdlviz.sampling import NeighborLoader

__all__ = ["finetune_link"]


def _embed(backbone, graph, table: str, nodes: torch.Tensor, times: torch.Tensor, num_neighbors,
           temporal_strategy: str, seed: int, device="cpu", batch_size: int = 1024) -> torch.Tensor:
    out = []
    loader = NeighborLoader(graph.data, num_neighbors=list(num_neighbors), input_nodes=(table, nodes),
                            input_time=times, batch_size=batch_size, shuffle=False,
                            temporal_strategy=temporal_strategy, seed=seed,
                            transform=lambda b: b.to(device))
    for batch in loader:
        out.append(backbone(batch, seeds_only=True)[table][: batch[table].batch_size])
    return torch.cat(out) if out else torch.zeros(0, backbone.channels, device=device)


def finetune_link(dataset, task, backbone, *, mode: str, graph, epochs: int, batch_size: int,
                  num_neighbors: Sequence[int], temporal_strategy: str, lr: float,
                  backbone_lr: Optional[float], probe_epochs: int, head_layers: int,
                  wise_alpha: Optional[float], patience: int, max_steps_per_epoch: Optional[int],
                  backbone_kwargs: Optional[Dict[str, Any]], seed: int, progress: bool,
                  device="cpu") -> FinetuneResult:
    """Train and evaluate a two-tower model on a link task (see the module docstring).

    The schedule is the entity tasks': ``mode="probe"`` trains the head alone,
    ``mode="full"`` (and ``"scratch"``) first trains the head alone for ``probe_epochs``
    epochs (LP-FT), then both, with the backbone at ``backbone_lr``; ``wise_alpha`` interpolates the selected
    model towards the state after the head-only epochs (WiSE-FT)."""
    from rdlviz.finetune.loop import _interpolate, _resolve_backbone

    t_start = time.perf_counter()
    torch.manual_seed(seed)
    defaults = dict(channels=128, num_layers=len(num_neighbors))
    defaults.update(backbone_kwargs or {})
    net = _resolve_backbone(backbone, graph, mode, defaults)
    head = MLPHead(net.channels, net.channels, num_layers=head_layers)
    model = torch.nn.ModuleDict({"backbone": net, "head": head}).to(device)
    n_dst = graph.data[task.dst_entity_table].num_nodes
    src_t, dst_t = task.src_entity_table, task.dst_entity_table

    train = task.get_table("train").df
    # One training pair per (source, time, destination); a source with no destination in
    # its window has no positive to rank and adds no pair.
    pairs = train[[task.time_col, task.src_entity_col, task.dst_entity_col]].explode(task.dst_entity_col)
    pairs = pairs.dropna()
    p_src = torch.from_numpy(pairs[task.src_entity_col].to_numpy().astype(np.int64))
    p_dst = torch.from_numpy(pairs[task.dst_entity_col].to_numpy().astype(np.int64))
    p_time = torch.from_numpy(to_unix_seconds(pairs[task.time_col]))
    gen = torch.Generator().manual_seed(seed)
    kw = dict(num_neighbors=num_neighbors, temporal_strategy=temporal_strategy, device=device)

    @torch.no_grad()
    def rank(table_df: pd.DataFrame) -> np.ndarray:
        model.eval()
        pred = np.zeros((len(table_df), task.eval_k), dtype=np.int64)
        times = to_unix_seconds(table_df[task.time_col])
        all_dst = torch.arange(n_dst)
        for t in np.unique(times):
            rows = np.flatnonzero(times == t)
            tt = torch.full((n_dst,), int(t), dtype=torch.long)
            h_dst = _embed(net, graph, dst_t, all_dst, tt, seed=seed, **kw)
            src = torch.from_numpy(table_df[task.src_entity_col].to_numpy()[rows].astype(np.int64))
            h_src = head(_embed(net, graph, src_t, src, torch.full((len(rows),), int(t), dtype=torch.long),
                                seed=seed, **kw))
            k = min(task.eval_k, n_dst)
            top = (h_src @ h_dst.T).topk(k, dim=1).indices.cpu().numpy()
            pred[rows, :k] = top
        return pred

    def train_epoch(opt, epoch: int, train_backbone: bool, desc: str) -> float:
        """One pass over the training pairs; the backbone is fixed unless ``train_backbone``.
        ``epoch`` keys the negatives and the sampled subgraphs."""
        net.train(train_backbone), head.train()
        for p in net.parameters():
            p.requires_grad_(train_backbone)
        perm = torch.randperm(len(p_src), generator=gen)
        steps = (len(perm) + batch_size - 1) // batch_size
        if max_steps_per_epoch is not None:
            steps = min(steps, max_steps_per_epoch)
        total = 0.0
        for i in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            neg = torch.randint(0, n_dst, (len(idx),), generator=gen)
            key = seed * 100_003 + epoch * 1009 + i
            h_u = head(_embed(net, graph, src_t, p_src[idx], p_time[idx], seed=key, **kw))
            h_pos = _embed(net, graph, dst_t, p_dst[idx], p_time[idx], seed=key + 1, **kw)
            h_neg = _embed(net, graph, dst_t, neg, p_time[idx], seed=key + 2, **kw)
            loss = -F.logsigmoid((h_u * h_pos).sum(-1) - (h_u * h_neg).sum(-1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        for p in net.parameters():
            p.requires_grad_(True)
        return total / max(steps, 1)

    val_table = task.get_table("val")
    history, best, best_state, best_epoch, bad = [], None, None, 0, 0
    t_train = t_eval = 0.0
    lp_state = None
    if mode != "probe" and probe_epochs > 0:
        # LP-FT: fit the head on the backbone's features first; these epochs select nothing.
        opt = torch.optim.Adam(head.parameters(), lr=lr)
        for epoch in range(1, probe_epochs + 1):
            t0 = time.perf_counter()
            train_epoch(opt, 100_000 + epoch, train_backbone=False,  # keys apart from the full epochs'
                        desc=f"{task.name} head-only epoch {epoch}")
            t_train += time.perf_counter() - t0
        if wise_alpha is not None:  # WiSE-FT's first end
            lp_state = copy.deepcopy(model.state_dict())
    params = [{"params": head.parameters(), "lr": lr}]
    if mode != "probe":
        params.append({"params": net.parameters(), "lr": backbone_lr if backbone_lr is not None else lr})
    opt = torch.optim.Adam(params)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        train_loss = train_epoch(opt, epoch, train_backbone=mode != "probe", desc=f"{task.name} {mode} epoch {epoch}")
        t_train += time.perf_counter() - t0
        t0 = time.perf_counter()
        score = float(task.evaluate(rank(val_table.df), val_table)["map"])
        t_eval += time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": train_loss, "val_map": score,
                        "time": time.perf_counter() - t_start})
        if best is None or score > best:
            best, best_epoch, bad = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= patience:
                break
    if lp_state is not None:
        best_state = _interpolate(lp_state, best_state, wise_alpha)
    model.load_state_dict(best_state)
    t0 = time.perf_counter()
    preds = {"val": rank(val_table.df), "test": rank(task.get_table("test").df)}
    val = {"map": float(task.evaluate(preds["val"], val_table)["map"])}
    # Test targets are read here, once, after model selection.
    test = {"map": float(task.evaluate(preds["test"])["map"])}
    t_eval += time.perf_counter() - t0
    return FinetuneResult(
        task=task.name, mode=mode, metric="map", higher_is_better=True, history=pd.DataFrame(history),
        val=val, test=test, predictions=preds,
        seconds={"total": time.perf_counter() - t_start, "train": t_train, "eval": t_eval},
        best_epoch=best_epoch, config=dict(mode=mode, epochs=epochs, batch_size=batch_size,
                                           num_neighbors=list(num_neighbors), temporal_strategy=temporal_strategy,
                                           lr=lr, backbone_lr=backbone_lr, probe_epochs=probe_epochs,
                                           head_layers=head_layers, patience=patience,
                                           max_steps_per_epoch=max_steps_per_epoch, wise_alpha=wise_alpha,
                                           seed=seed, backbone=net.config()),
        model=model,
    )
