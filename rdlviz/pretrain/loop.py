"""``rdlviz.pretrain``: task-agnostic contrastive pretraining of a relational backbone.

One step:

1. draw seed rows (with their times, all before the val cutoff) from
   :class:`~rdlviz.pretrain.seeds.SeedPool`;
2. sample their temporal subgraphs with our sampler (:mod:`rdlviz.sampling`) -- the same
   sampler and fan-outs fine-tuning uses, so the backbone is pretrained on the input
   distribution it will meet downstream;
3. build a corrupted view of the sampled rows (:class:`~rdlviz.pretrain.corruption.Corruption`)
   that shares the clean view's subgraph;
4. embed both views with the backbone and sum the weighted objectives
   (row / link / context, optionally masked-cell reconstruction), each normalised so
   chance level is about 1;
5. Adam step.

Every ``eval_every`` steps the same objectives are measured on a fixed set of held-out
batches (a temporal hold-out of pre-cutoff seeds, with a fixed corruption); the best
state is kept and training stops early after ``patience`` evaluations without an
improvement of more than ``min_delta``. Ctrl-C stops cleanly and keeps the best state.
All randomness of step ``s`` is derived from ``(seed, s)``, so a run is reproducible on
CPU with one torch thread, and a resumed run continues exactly the curve it left. With
more threads some reductions run in another order and curves drift apart (two 2-thread
rel-f1 runs of seed 0 differed by 0.02 in validation loss at step 50).
"""

from __future__ import annotations

import copy
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from rdlviz.errors import ConfigError
from rdlviz.nn import Backbone
from rdlviz.pretrain.checkpoint import read_checkpoint, schema_diff, schema_of
from rdlviz.pretrain.corruption import Corruption, donor_tables
from rdlviz.pretrain.holdout import hold_out_links
from rdlviz.pretrain.losses import (
    ContextContrastiveLoss,
    LinkContrastiveLoss,
    MaskedCellReconstructionLoss,
    RowContrastiveLoss,
)
from rdlviz.pretrain.run import PretrainRun
from rdlviz.pretrain.seeds import SeedPool
from rdlviz.sampling import sample

__all__ = ["pretrain", "OBJECTIVES"]

OBJECTIVES = ("row", "link", "context", "reconstruction")

#: Bumped whenever one configuration starts to pretrain differently, so caches keyed by
#: configuration (the benchmark protocol's ``--pretrained-dir``) never serve a backbone
#: made by older code. 2: corruption donors only from rows before the val cutoff.
PRETRAINING_VERSION = 2


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _validate(cfg: Dict[str, Any], graph) -> None:
    objs = cfg["objectives"]
    _check(len(objs) > 0, "objectives must name at least one of " + ", ".join(OBJECTIVES))
    bad = [o for o in objs if o not in OBJECTIVES]
    _check(not bad, f"unknown objectives {bad}; choose from {OBJECTIVES}")
    _check(len(set(objs)) == len(objs), f"objectives repeat: {objs}")
    w = cfg["weights"]
    _check(set(w) <= set(objs), f"weights name objectives not in use: {sorted(set(w) - set(objs))}")
    _check(all(v >= 0 for v in w.values()), f"weights must be >= 0, got {w}")
    _check(cfg["steps"] >= 1, f"steps must be >= 1, got {cfg['steps']}")
    _check(cfg["batch_size"] >= 2, f"batch_size must be >= 2 (contrast needs negatives), got {cfg['batch_size']}")
    _check(cfg["lr"] > 0, f"lr must be > 0, got {cfg['lr']}")
    _check(0 < cfg["corruption_p"] < 1, f"corruption_p must be in (0, 1), got {cfg['corruption_p']}")
    _check(cfg["eval_every"] >= 1, f"eval_every must be >= 1, got {cfg['eval_every']}")
    _check(cfg["eval_batches"] >= 1, f"eval_batches must be >= 1, got {cfg['eval_batches']}")
    _check(cfg["patience"] >= 1, f"patience must be >= 1, got {cfg['patience']}")
    _check(cfg["min_delta"] >= 0, f"min_delta must be >= 0, got {cfg['min_delta']}")
    nn_ = cfg["num_neighbors"]
    _check(len(nn_) >= 1 and all(isinstance(k, int) and (k > 0 or k == -1) for k in nn_),
           f"num_neighbors must be a non-empty list of positive ints (or -1 = all), got {nn_}")
    _check(cfg["temporal_strategy"] in ("uniform", "last"),
           f"temporal_strategy must be 'uniform' or 'last', got {cfg['temporal_strategy']!r}")
    if "link" in objs:
        _check(len(_fkey_edge_types(graph.data)) > 0, "the link objective needs foreign keys; the graph has none")
    _check(0 <= cfg["link_holdout"] < 1, f"link_holdout must be in [0, 1) (0: off), got {cfg['link_holdout']}")
    _check(cfg["link_holdout"] == 0 or "link" in objs,
           "link_holdout hides links for the link objective; add 'link' to objectives or set link_holdout=0")


def _fkey_edge_types(data) -> List[tuple]:
    return [tuple(e) for e in data.edge_types if e[1].startswith("f2p_")]


def _build_objectives(cfg, data) -> torch.nn.ModuleDict:
    C, tau, K = cfg["channels"], cfg["temperature"], cfg["max_negatives"]
    node_types = list(data.node_types)
    edge_types = [tuple(e) for e in data.edge_types]
    make = {
        "row": lambda: RowContrastiveLoss(node_types, C, temperature=tau, max_negatives=K),
        "link": lambda: LinkContrastiveLoss(_fkey_edge_types(data), C, temperature=tau, max_negatives=K),
        "context": lambda: ContextContrastiveLoss(node_types, edge_types, C, temperature=tau, max_negatives=K),
        "reconstruction": lambda: MaskedCellReconstructionLoss.from_graph(data, C),
    }
    return torch.nn.ModuleDict({o: make[o]() for o in cfg["objectives"]})


class _Stepper:
    """Samples, corrupts and scores one batch; shared by training and evaluation."""

    def __init__(self, graph, cfg, pool: SeedPool, backbone, objectives, corruption):
        self.graph, self.cfg, self.pool = graph, cfg, pool
        self.backbone, self.objectives, self.corruption = backbone, objectives, corruption
        self.need_view = any(o in objectives for o in ("row", "reconstruction"))
        self.device = torch.device(cfg["device"])
        self.timer = {"sample": 0.0, "forward": 0.0, "backward": 0.0}

    def draw(self, split: str, key: int):
        """One batch: ``(batch, view, mask, links)``; ``links`` is ``(held, linked)`` or None."""
        rng = np.random.default_rng(key)
        table, nodes, times = self.pool.draw(split, self.cfg["batch_size"], rng)
        t0 = time.perf_counter()
        batch = sample(
            self.graph.data, (table, nodes), times, num_neighbors=self.cfg["num_neighbors"],
            temporal_strategy=self.cfg["temporal_strategy"], seed=key,
        ).to(self.device)
        view = mask = None
        if self.need_view:
            g = torch.Generator(device=self.device).manual_seed(key)
            view, mask = self.corruption(
                {t: batch[t].tf for t in batch.node_types if "tf" in batch[t]},
                generator=g, return_mask=True)
        links = None
        if self.cfg["link_holdout"] > 0:
            # Its own stream, so turning the hold-out on leaves the corruption draw unchanged.
            g = torch.Generator().manual_seed(key + 1)
            batch, held, linked = hold_out_links(batch, self.cfg["link_holdout"], g)
            links = (held, linked)
        self.timer["sample"] += time.perf_counter() - t0
        return batch, view, mask, links

    def losses(self, batch, view, mask, links=None) -> Dict[str, torch.Tensor]:
        t0 = time.perf_counter()
        if view is not None:
            h, h_view = self.backbone.forward_views(batch, view)
        else:
            h, h_view = self.backbone(batch), None
        n_id = {t: batch[t].n_id for t in batch.node_types}
        ei = {e: batch[e].edge_index for e in batch.edge_types}
        out: Dict[str, torch.Tensor] = {}
        for name, loss in self.objectives.items():
            if name == "row":
                out[name] = loss(h, h_view, n_id)
            elif name == "link" and links is not None:
                out[name] = loss(h, links[0], n_id, linked_index_dict=links[1])
            elif name in ("link", "context"):
                out[name] = loss(h, ei, n_id)
            elif name == "reconstruction":
                out[name] = loss(h_view, {t: batch[t].tf for t in h_view if "tf" in batch[t]}, mask)
        w = self.cfg["weights"]
        out["total"] = sum(w.get(k, 1.0) * v for k, v in out.items())
        self.timer["forward"] += time.perf_counter() - t0
        return out


def pretrain(
    graph,
    objectives: Sequence[str] = ("row", "link", "context"),
    *,
    steps: int = 2000,
    batch_size: int = 64,
    num_neighbors: Sequence[int] = (16, 8),
    temporal_strategy: str = "uniform",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    weights: Optional[Dict[str, float]] = None,
    corruption_p: float = 0.3,
    link_holdout: float = 0.0,
    temperature: float = 1.0,
    max_negatives: int = 255,
    channels: int = 128,
    num_layers: Optional[int] = None,
    aggr: str = "mean",
    encoder: str = "resnet",
    encoder_layers: int = 4,
    temporal: bool = True,
    seed_tables: Optional[Sequence[str]] = None,
    seed_weighting: str = "size",
    val_fraction: float = 0.1,
    eval_every: int = 50,
    eval_batches: int = 8,
    patience: int = 5,
    min_delta: float = 0.01,
    grad_clip: Optional[float] = 1.0,
    seed: int = 0,
    callbacks: Iterable[Any] = (),
    progress: bool = True,
    resume_from=None,
    device: Union[str, torch.device] = "cpu",
) -> PretrainRun:
    """Pretrain a backbone on ``graph`` with row / link / context contrast.

    Args:
        graph: a :class:`rdlviz.Graph` (``rdlviz.build_graph(db)``).
        objectives: any of ``"row"``, ``"link"``, ``"context"``, ``"reconstruction"``.
        steps: maximum optimisation steps (early stopping may end sooner).
        batch_size: seed rows per step (64 in the paper).
        num_neighbors: temporal fan-out per hop; its length is the number of GNN layers
            unless ``num_layers`` is given.
        temporal_strategy: ``"uniform"`` or ``"last"`` neighbour choice.
        lr / weight_decay: Adam's (1e-3 in the paper).
        weights: per-objective loss weights (default 1 each).
        corruption_p: probability that a cell of the second view is resampled.
        link_holdout: share of each batch's foreign-key pairs hidden from message passing
            and scored by the link objective (:mod:`~rdlviz.pretrain.holdout`); 0, the
            paper's setting, scores pairs that are also edges of the subgraph.
        temperature: τ of every contrastive objective (1.0 in the paper).
        max_negatives: K, negatives per anchor (255 in the paper).
        channels / num_layers / aggr / encoder / encoder_layers / temporal: the backbone
            (see :class:`rdlviz.nn.Backbone`). ``temporal=True`` pretrains the temporal
            encoder too, since every seed has a known time.
        seed_tables: tables whose rows seed subgraphs (default: all tables with a time
            column); tables without a time column seed at pre-cutoff fact times.
        seed_weighting: ``"size"`` or ``"uniform"`` choice among seed tables.
        val_fraction: latest share of pre-cutoff seed rows held out for validation.
        eval_every / eval_batches / patience: validation cadence, size, early stopping.
        min_delta: an evaluation counts as an improvement only when the total
            validation loss falls more than this below the best so far. Each objective
            is about 1 at chance, so 0.01 is 1 % of one objective's chance level. Why
            not ~0: late in a run the loss still drifts down (rel-f1: ~0.03 per 500
            steps) by less than its evaluation-to-evaluation noise (about ±0.03), while
            frozen-backbone probes on the downstream tasks stop improving after ~500
            steps (``benchmarks/pretrain_budget.py``); so a tiny threshold only buys
            steps that the tasks do not use.
        grad_clip: max gradient norm (None: no clipping).
        seed: makes the run reproducible.
        callbacks: objects with any of ``on_batch(step, batch)`` (the sampled subgraph,
            before the forward pass), ``on_step(step, logs)``, ``on_eval(step, logs)``,
            ``on_end(run)`` (e.g. :class:`rdlviz.viz.LossMonitor`).
        progress: show a ``tqdm`` progress bar.
        resume_from: a checkpoint folder written by ``run.save``; training continues
            from its step with its optimiser state, up to ``steps``.
        device: where the model runs (``"cpu"``, ``"cuda"``); sampling stays on the CPU.

    Returns:
        A :class:`~rdlviz.pretrain.run.PretrainRun`.

    Only rows up to the dataset's val cutoff are used: seeds are drawn before it, the
    sampler admits only neighbours no newer than their seed, and a corrupted cell takes
    its value from a row before it (:func:`~rdlviz.pretrain.corruption.donor_tables`),
    whatever cutoff ``graph`` was built at.

    Example:
        >>> graph = rdlviz.build_graph(rdlviz.load("rel-lahman"))
        >>> run = rdlviz.pretrain(graph, steps=200, callbacks=[rdlviz.viz.LossMonitor()])
    """
    objectives = tuple(objectives)
    cfg = dict(
        objectives=list(objectives), steps=int(steps), batch_size=int(batch_size),
        num_neighbors=[int(k) for k in num_neighbors], temporal_strategy=temporal_strategy,
        lr=float(lr), weight_decay=float(weight_decay),
        weights={k: float(v) for k, v in (weights or {}).items()},
        corruption_p=float(corruption_p), link_holdout=float(link_holdout), temperature=float(temperature),
        max_negatives=int(max_negatives), channels=int(channels),
        num_layers=int(num_layers) if num_layers is not None else len(num_neighbors),
        aggr=aggr, encoder=encoder, encoder_layers=int(encoder_layers), temporal=bool(temporal),
        seed_tables=list(seed_tables) if seed_tables is not None else None,
        seed_weighting=seed_weighting, val_fraction=float(val_fraction),
        eval_every=int(eval_every), eval_batches=int(eval_batches), patience=int(patience),
        min_delta=float(min_delta),
        grad_clip=grad_clip, seed=int(seed), device=str(device),
        # How the graph was built, so the same graph can be rebuilt for this backbone.
        graph_options={"text": getattr(graph, "text", None), "tables": list(graph.data.node_types),
                       "stypes": {t: {c: s.value for c, s in st.items()}
                                  for t, st in getattr(graph, "stypes", {}).items()}},
    )
    _validate(cfg, graph)
    data = graph.data
    cutoff = int(graph.val_time)

    torch.manual_seed(cfg["seed"])
    backbone = Backbone(data, graph.col_stats, channels=cfg["channels"], num_layers=cfg["num_layers"],
                        aggr=aggr, encoder=encoder, encoder_layers=cfg["encoder_layers"],
                        temporal=cfg["temporal"])
    heads = _build_objectives(cfg, data)
    backbone.to(device), heads.to(device)
    params = list(backbone.parameters()) + list(heads.parameters())
    optimizer = torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    history: List[Dict[str, Any]] = []
    start_step, best_val, best_step, elapsed0 = 0, float("inf"), 0, 0.0

    if resume_from is not None:
        from safetensors.torch import load_file

        ck = read_checkpoint(resume_from)
        diff = schema_diff(ck["schema"], schema_of(graph))
        if diff:
            raise ConfigError("cannot resume on a different schema:\n  - " + "\n  - ".join(diff))
        keep = {k: ck["pretrain"][k] for k in ("objectives", "channels", "num_layers", "encoder")}
        if any(keep[k] != cfg[k] for k in keep):
            raise ConfigError(f"resume_from was trained with {keep}; pass the same values")
        # The model continues from its *last* state; the best state so far stays the
        # early-stopping reference.
        last = load_file(str(resume_from) + "/last.safetensors", device=str(device))
        backbone.load_state_dict(load_file(str(resume_from) + "/backbone.safetensors", device=str(device)))
        heads.load_state_dict(load_file(str(resume_from) + "/objectives.safetensors", device=str(device)))
        resumed_best = (copy.deepcopy(backbone.state_dict()), copy.deepcopy(heads.state_dict()))
        backbone.load_state_dict({k[9:]: v for k, v in last.items() if k.startswith("backbone.")})
        heads.load_state_dict({k[11:]: v for k, v in last.items() if k.startswith("objectives.")})
        optimizer.load_state_dict(torch.load(str(resume_from) + "/optimizer.pt", weights_only=False,
                                             map_location=device))
        prog = ck["progress"]
        start_step, best_step = int(prog["step"]), int(prog["best_step"])
        best_val = float(prog["best_val"])
        elapsed0 = float(prog["seconds"].get("total", 0.0))
        history = pd.DataFrame(ck["history"]).to_dict(orient="records")

    pool = SeedPool(data, cutoff, tables=cfg["seed_tables"], val_fraction=cfg["val_fraction"],
                    weighting=cfg["seed_weighting"])
    # Donor values from the rows before the cutoff only: the graph holds later ones too.
    corruption = Corruption(donor_tables(data, cutoff), p=cfg["corruption_p"])
    stepper = _Stepper(graph, cfg, pool, backbone, heads, corruption)
    # Fixed validation batches: identical corruption and negatives at every evaluation.
    eval_keys = [cfg["seed"] * 7919 + 10_000_000 + i for i in range(cfg["eval_batches"])]
    eval_set = [stepper.draw("val", k) for k in eval_keys]

    best_state = (copy.deepcopy(backbone.state_dict()), copy.deepcopy(heads.state_dict()))
    if resume_from is not None:
        best_state = resumed_best
    callbacks = list(callbacks)
    t_start = time.perf_counter() - elapsed0
    t_eval = 0.0
    stopped, bad_evals, step = "steps", 0, start_step

    def emit(hook: str, *args) -> None:
        for cb in callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(*args)

    def evaluate(at_step: int) -> Dict[str, float]:
        backbone.eval(), heads.eval()
        sums: Dict[str, float] = {}
        with torch.no_grad():
            for i, (b, v, m, links) in enumerate(eval_set):
                torch.manual_seed(eval_keys[i])
                for k, x in stepper.losses(b, v, m, links).items():
                    sums[k] = sums.get(k, 0.0) + float(x)
        backbone.train(), heads.train()
        return {k: s / len(eval_set) for k, s in sums.items()}

    bar = tqdm(total=cfg["steps"], initial=start_step, desc="pretrain", disable=not progress,
               dynamic_ncols=True)
    try:
        backbone.train(), heads.train()
        for step in range(start_step + 1, cfg["steps"] + 1):
            key = cfg["seed"] * 1_000_003 + step
            torch.manual_seed(key)
            batch, view, mask, links = stepper.draw("train", key)
            emit("on_batch", step, batch)
            losses = stepper.losses(batch, view, mask, links)
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            if cfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
            optimizer.step()
            stepper.timer["backward"] += time.perf_counter() - t0
            logs = {k: float(v.detach()) for k, v in losses.items()}
            logs.update(time=time.perf_counter() - t_start, lr=cfg["lr"])
            history.append({"step": step, "split": "train", **logs})
            emit("on_step", step, logs)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in objectives or k == "total"},
                            refresh=False)
            if step % cfg["eval_every"] == 0 or step == cfg["steps"]:
                t0 = time.perf_counter()
                vlogs = evaluate(step)
                t_eval += time.perf_counter() - t0
                vlogs.update(time=time.perf_counter() - t_start)
                history.append({"step": step, "split": "val", **vlogs})
                emit("on_eval", step, vlogs)
                if vlogs["total"] < best_val - cfg["min_delta"]:
                    best_val, best_step, bad_evals = vlogs["total"], step, 0
                    best_state = (copy.deepcopy(backbone.state_dict()), copy.deepcopy(heads.state_dict()))
                else:
                    bad_evals += 1
                    if bad_evals >= cfg["patience"]:
                        stopped = "early_stop"
                        break
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        bar.close()

    last_state = {**{f"backbone.{k}": v.detach().cpu().clone() for k, v in backbone.state_dict().items()},
                  **{f"objectives.{k}": v.detach().cpu().clone() for k, v in heads.state_dict().items()}}
    if best_step > 0:
        backbone.load_state_dict(best_state[0])
        heads.load_state_dict(best_state[1])
    seconds = {"total": time.perf_counter() - t_start, "eval": t_eval, **stepper.timer}
    run = PretrainRun(
        backbone=backbone, objectives=heads, history=pd.DataFrame(history), config=cfg,
        schema=schema_of(graph), seconds=seconds, step=step, best_step=best_step,
        best_val=best_val, stopped=stopped, optimizer=optimizer, graph=graph,
        last_state=last_state,
    )
    emit("on_end", run)
    return run
