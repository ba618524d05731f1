"""Link (recommendation) tasks, e.g. rel-f1 ``driver-circuit-compete``: a two-tower model
with pair features.

Both towers are the same backbone. A source entity is embedded from its temporal subgraph
at the seed time; a destination entity likewise at the same time; the score is
``s(u, v) = MLP(h_u) · h_v + φ(z(u, v, t))``, where ``z`` says whether, how often and how
recently the source's past reaches the destination (:mod:`rdlviz.finetune.pair_features`)
and ``φ`` is a small MLP; ``pair_features=False`` leaves the two-tower term alone.
Evaluation ranks every destination for every source at each seed time and keeps the top
``eval_k``, which is what RelBench's MAP@k scores.

Training mirrors evaluation. A step takes whole training rows ``(time, source, [dst, …])``
of a few seed times and scores each source against a candidate set of destinations embedded
once per seed time: every destination when the destination table has at most
``MAX_CANDIDATES`` rows (rel-f1: 77 circuits), otherwise the step's positives plus that many
drawn uniformly. The loss is the softmax cross-entropy of each positive pair against the
candidates (the full-catalogue form of the sampled softmax of Covington et al., RecSys 2016)::

    loss(u, t, v⁺) = -log( exp s(u, v⁺) / Σ_{v ∈ C_t, v ∉ P(u, t) \\ {v⁺}} exp s(u, v) )

where ``P(u, t)`` are the source's destinations in its window: its other positives are left
out of the denominator, so a driver racing at 20 circuits is not taught to rank one below
another. (No log-Q correction for the drawn candidates: they are drawn uniformly.)

Why steps of whole seed times rather than shuffled pairs: a destination's subgraph is the
same for every source at one time, so one embedding serves them all. One pair per
destination draw embedded a destination twice per pair (positive and negative); on rel-f1
that was ~1,000 circuit subgraphs per 512-pair step, now ~120 (77 circuits × ~1.5 times).
"""

from __future__ import annotations

import copy
import time
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rdlviz.errors import TaskError
from rdlviz.finetune.pair_features import NUM_PAIR_FEATURES, pair_features as compute_pair_features
from rdlviz.finetune.result import FinetuneResult
from rdlviz.graph.time import to_unix_seconds
from rdlviz.nn.heads import MLPHead
from rdlviz.sampling import NeighborLoader

__all__ = ["finetune_link", "MAX_CANDIDATES"]

# Destinations a source is scored against in training (all of them up to this many).
MAX_CANDIDATES = 1024


def _embed(backbone, graph, table: str, nodes: torch.Tensor, times: torch.Tensor, num_neighbors,
           temporal_strategy: str, seed: int, device="cpu", batch_size: int = 1024) -> torch.Tensor:
    """``[len(nodes), channels]``: each node embedded from its subgraph at its time."""
    out = []
    loader = NeighborLoader(graph.data, num_neighbors=list(num_neighbors), input_nodes=(table, nodes),
                            input_time=times, batch_size=batch_size, shuffle=False,
                            temporal_strategy=temporal_strategy, seed=seed,
                            transform=lambda b: b.to(device))
    for batch in loader:
        out.append(backbone(batch, seeds_only=True)[table][: batch[table].batch_size])
    return torch.cat(out) if out else torch.zeros(0, backbone.channels, device=device)


def _rows(df: pd.DataFrame, task, graph):
    """The table's rows as tensors: ``(time [R], src [R], pair_row [P], pair_dst [P])``, one
    pair per (row, destination). A row with no destination has no positive to rank: it is
    dropped here and adds no pair. Keys outside the graph's tables raise ``TaskError``
    (a negative key would otherwise index from the end, silently)."""
    cols = [task.time_col, task.src_entity_col, task.dst_entity_col]
    pairs = df[cols].reset_index(drop=True).explode(task.dst_entity_col).dropna(subset=[task.dst_entity_col])
    kept, pair_row = np.unique(pairs.index.to_numpy(), return_inverse=True)
    rows = df.iloc[kept]
    src = rows[task.src_entity_col].to_numpy().astype(np.int64)
    dst = pairs[task.dst_entity_col].to_numpy().astype(np.int64)
    for table, col, keys in ((task.src_entity_table, task.src_entity_col, src),
                             (task.dst_entity_table, task.dst_entity_col, dst)):
        n = graph.data[table].num_nodes
        bad = (keys < 0) | (keys >= n)
        if bad.any():
            raise TaskError(f"training column '{col}' holds {int(bad.sum())} keys outside '{table}' "
                            f"(rows 0..{n - 1}), e.g. {int(keys[bad][0])}", task=task.name, table=table,
                            column=col, fix="build the task and the graph from the same database "
                            "(keys are the row positions relbench gives each table)")
    return (torch.from_numpy(to_unix_seconds(rows[task.time_col])), torch.from_numpy(src),
            torch.from_numpy(pair_row.astype(np.int64)), torch.from_numpy(dst))


def _steps(row_time: torch.Tensor, row_pairs: torch.Tensor, batch_size: int, n_candidates: int,
           gen: torch.Generator) -> List[torch.Tensor]:
    """Shuffled training rows grouped into steps (lists of row indices). Seed times come in
    random order and rows in random order within a time; a step takes rows while it holds
    at most ``batch_size`` pairs (at least one row) and its seed times need at most
    ``max(4 · batch_size, n_candidates)`` destination embeddings."""
    times, inverse, counts = torch.unique(row_time, return_inverse=True, return_counts=True)
    # Each seed time's rows, found with one sort rather than one scan per time.
    by_time = torch.sort(inverse, stable=True).indices.split(counts.tolist())
    max_times = max(1, max(4 * batch_size, n_candidates) // n_candidates)
    steps, cur, cur_pairs, cur_times = [], [], 0, 0
    for t in torch.randperm(len(times), generator=gen).tolist():
        rows = by_time[t]
        rows = rows[torch.randperm(len(rows), generator=gen)].tolist()
        new_time = True
        for r in rows:
            n = int(row_pairs[r])
            if cur and (cur_pairs + n > batch_size or (new_time and cur_times + 1 > max_times)):
                steps.append(torch.tensor(cur))
                cur, cur_pairs, cur_times, new_time = [], 0, 0, True
            cur.append(r)
            cur_pairs += n
            cur_times += new_time
            new_time = False
    if cur:
        steps.append(torch.tensor(cur))
    return steps


def finetune_link(dataset, task, backbone, *, mode: str, graph, epochs: int, batch_size: int,
                  num_neighbors: Sequence[int], temporal_strategy: str, lr: float,
                  backbone_lr: Optional[float], probe_epochs: int, head_layers: int,
                  wise_alpha: Union[float, Sequence[float], None], patience: int,
                  max_steps_per_epoch: Optional[int], backbone_kwargs: Optional[Dict[str, Any]], seed: int,
                  progress: bool, pair_features: bool = True, device="cpu") -> FinetuneResult:
    """Train and evaluate a two-tower model on a link task (see the module docstring).

    The schedule is the entity tasks': ``mode="probe"`` trains the head alone,
    ``mode="full"`` (and ``"scratch"``) first trains the head alone for ``probe_epochs``
    epochs (LP-FT), then both, with the backbone at ``backbone_lr``; ``wise_alpha`` interpolates the selected
    model towards the state after the head-only epochs (WiSE-FT; several candidates: the
    best on validation MAP)."""
    from rdlviz.finetune.loop import _resolve_backbone, _wise_ft

    t_start = time.perf_counter()
    torch.manual_seed(seed)
    defaults = dict(channels=128, num_layers=len(num_neighbors))
    defaults.update(backbone_kwargs or {})
    net = _resolve_backbone(backbone, graph, mode, defaults)
    head = MLPHead(net.channels, net.channels, num_layers=head_layers)
    parts = {"backbone": net, "head": head}
    if pair_features:
        # φ: a head of its own, trained (and selected) with the two-tower head.
        parts["pair"] = torch.nn.Sequential(torch.nn.Linear(NUM_PAIR_FEATURES, 16), torch.nn.ReLU(),
                                            torch.nn.Linear(16, 1))
    model = torch.nn.ModuleDict(parts).to(device)
    heads = torch.nn.ModuleList([m for k, m in parts.items() if k != "backbone"])
    n_dst = graph.data[task.dst_entity_table].num_nodes
    src_t, dst_t = task.src_entity_table, task.dst_entity_table
    all_dst = torch.arange(n_dst)

    row_time, row_src, pair_row, pair_dst = _rows(task.get_table("train").df, task, graph)
    row_pairs = torch.bincount(pair_row, minlength=len(row_time))
    gen = torch.Generator().manual_seed(seed)
    kw = dict(num_neighbors=num_neighbors, temporal_strategy=temporal_strategy, device=device)

    def embed_dst(cand: torch.Tensor, times: torch.Tensor, key: int, batch_size: int) -> torch.Tensor:
        """``[len(times), len(cand), channels]``: every candidate at every seed time."""
        m = len(cand)
        return _embed(net, graph, dst_t, cand.repeat(len(times)), times.repeat_interleave(m),
                      seed=key + 1, batch_size=batch_size, **kw).view(len(times), m, -1)

    def embed_src(src: torch.Tensor, src_time: torch.Tensor, key: int, batch_size: int) -> torch.Tensor:
        return head(_embed(net, graph, src_t, src, src_time, seed=key, batch_size=batch_size, **kw))

    def features(times: torch.Tensor, src: torch.Tensor):
        """The rows' pair features (fixed trees: keyed by ``seed`` alone), or ``None``."""
        if not pair_features:
            return None
        return compute_pair_features(graph.data, src_t, dst_t, src, times, num_neighbors,
                                     temporal_strategy, seed=seed)

    def add_pair_term(logits: torch.Tensor, feats, rows: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """``logits [R, C]`` plus ``φ(z)`` of each (row, candidate): ``φ(0)`` where the
        row's past does not reach the candidate, a constant shift that ranks nothing."""
        if feats is None:
            return logits
        phi = parts["pair"]
        i, j, z = feats.select(rows, slot)
        term = phi(logits.new_zeros(1, NUM_PAIR_FEATURES)).expand_as(logits).clone()
        term[i, j] = phi(z.to(logits.device)).squeeze(1)
        return logits + term

    def table_rows(table_df: pd.DataFrame):
        """``(times, src, pair features)`` of an evaluation table's rows."""
        times = torch.from_numpy(to_unix_seconds(table_df[task.time_col]))
        src = torch.from_numpy(table_df[task.src_entity_col].to_numpy().astype(np.int64))
        return times, src, features(times, src)

    @torch.no_grad()
    def rank(rows_of_table) -> np.ndarray:
        """``[rows, eval_k]`` destinations, best first, for ``table_rows``'s output."""
        model.eval()
        times, src, feats = rows_of_table
        pred = np.zeros((len(times), task.eval_k), dtype=np.int64)
        k = min(task.eval_k, n_dst)
        for t in torch.unique(times):
            rows = torch.nonzero(times == t).flatten()
            h_dst = embed_dst(all_dst, t.view(1), key=seed, batch_size=1024)[0]
            h_src = embed_src(src[rows], times[rows], key=seed, batch_size=1024)
            logits = add_pair_term(h_src @ h_dst.T, feats, rows, all_dst)
            pred[rows.numpy(), :k] = logits.topk(k, dim=1).indices.cpu().numpy()
        return pred

    def step_loss(rows: torch.Tensor, key: int) -> torch.Tensor:
        """Mean softmax cross-entropy of the rows' positive pairs (module docstring)."""
        local = torch.full((len(row_time),), -1, dtype=torch.long)  # row -> its place in the step
        local[rows] = torch.arange(len(rows))
        sel = local[pair_row] >= 0
        p_row, p_dst = pair_row[sel], pair_dst[sel]
        if n_dst <= MAX_CANDIDATES:
            cand = all_dst
        else:
            cand = torch.unique(torch.cat([p_dst, torch.randint(0, n_dst, (MAX_CANDIDATES,), generator=gen)]))
        slot = torch.full((n_dst,), -1, dtype=torch.long)
        slot[cand] = torch.arange(len(cand))
        r, c = local[p_row], slot[p_dst]
        times, t_of = torch.unique(row_time[rows], return_inverse=True)
        # One loader batch per tower, so rows shared by the subgraphs of the step's seed
        # times are encoded once (Backbone.encode_rows).
        h_dst = embed_dst(cand, times, key, batch_size=len(cand) * len(times))
        h_src = embed_src(row_src[rows], row_time[rows], key, batch_size=len(rows))
        logits = (h_src @ h_dst.flatten(0, 1).T).view(len(rows), len(times), -1)[torch.arange(len(rows)), t_of]
        logits = add_pair_term(logits, train_feats, rows, slot)
        positive = torch.zeros_like(logits, dtype=torch.bool)
        positive[r, c] = True
        target = F.one_hot(c, len(cand)).bool()
        # Each pair against the candidates that are not the source's other positives.
        pair_logits = logits[r].masked_fill(positive[r] & ~target, float("-inf"))
        return F.cross_entropy(pair_logits, c)

    def train_epoch(opt, epoch: int, train_backbone: bool, desc: str) -> float:
        """One pass over the training rows; the backbone is fixed unless ``train_backbone``.
        ``epoch`` keys the step order, the candidates and the sampled subgraphs."""
        net.train(train_backbone), heads.train()
        for p in net.parameters():
            p.requires_grad_(train_backbone)
        steps = _steps(row_time, row_pairs, batch_size, min(n_dst, MAX_CANDIDATES), gen)
        if max_steps_per_epoch is not None:
            steps = steps[:max_steps_per_epoch]
        total = 0.0
        for i, rows in enumerate(tqdm(steps, desc=desc, disable=not progress, leave=False)):
            loss = step_loss(rows, key=seed * 100_003 + epoch * 1009 + 2 * i)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        for p in net.parameters():
            p.requires_grad_(True)
        return total / max(len(steps), 1)

    train_feats = features(row_time, row_src)
    val_table = task.get_table("val")
    val_rows = table_rows(val_table.df)
    history, best, best_state, best_epoch, bad = [], None, None, 0, 0
    t_train = t_eval = 0.0
    lp_state = None
    if mode != "probe" and probe_epochs > 0:
        # LP-FT: fit the head on the backbone's features first; these epochs select nothing.
        opt = torch.optim.Adam(heads.parameters(), lr=lr)
        for epoch in range(1, probe_epochs + 1):
            t0 = time.perf_counter()
            train_epoch(opt, 100_000 + epoch, train_backbone=False,  # keys apart from the full epochs'
                        desc=f"{task.name} head-only epoch {epoch}")
            t_train += time.perf_counter() - t0
        if wise_alpha is not None:  # WiSE-FT's first end
            lp_state = copy.deepcopy(model.state_dict())
    params = [{"params": heads.parameters(), "lr": lr}]
    if mode != "probe":
        params.append({"params": net.parameters(), "lr": backbone_lr if backbone_lr is not None else lr})
    opt = torch.optim.Adam(params)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        train_loss = train_epoch(opt, epoch, train_backbone=mode != "probe", desc=f"{task.name} {mode} epoch {epoch}")
        t_train += time.perf_counter() - t0
        t0 = time.perf_counter()
        score = float(task.evaluate(rank(val_rows), val_table)["map"])
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
    alpha, wise_val, val_pred = None, {}, None
    if lp_state is not None:
        def val_evaluate(state):
            model.load_state_dict(state)
            ranked = rank(val_rows)
            return task.evaluate(ranked, val_table)["map"], ranked

        t0 = time.perf_counter()
        best_state, alpha, wise_val, val_pred = _wise_ft(lp_state, best_state, wise_alpha, val_evaluate, True)
        t_eval += time.perf_counter() - t0
    model.load_state_dict(best_state)
    t0 = time.perf_counter()
    preds = {"val": rank(val_rows) if val_pred is None else val_pred,
             "test": rank(table_rows(task.get_table("test").df))}
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
                                           pair_features=pair_features, seed=seed, backbone=net.config()),
        model=model, wise_alpha=alpha, wise_val=wise_val,
    )
