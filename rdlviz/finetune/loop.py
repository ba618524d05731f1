"""``rdlviz.finetune``: a backbone + head trained on one RelBench task, three ways.

* ``mode="scratch"`` (**B**): the backbone architecture from random initialisation.
* ``mode="probe"`` (**P**): the pretrained backbone frozen, only the head trains. Its
  seed embeddings are computed once (the backbone is fixed), which makes probing fast.
* ``mode="full"`` (**P&F**): pretrained backbone and head both train; the backbone may
  get a smaller learning rate (``backbone_lr``), and ``probe_epochs > 0`` first fits the
  head on the frozen backbone (LP-FT, Kumar et al., ICLR 2022) so the random head does
  not distort the pretrained features. ``wise_alpha`` then returns a weight-space
  ensemble of the two ends, ``(1 - α)·θ_LP + α·θ_FT`` (WiSE-FT, Wortsman et al.,
  CVPR 2022): the fine-tuned fit, with part of the pretrained features' robustness to a
  shifted test period.

Seeds are the task table's ``(entity, time)`` rows; each is embedded from its temporal
subgraph sampled with :class:`rdlviz.sampling.NeighborLoader` (default fan-out
``[128, 64]``), so nothing newer than the seed time is seen. Losses: binary
cross-entropy for binary tasks; L1 for regression, because the reported metric is MAE
and L1 is its direct surrogate (the conditional median minimises it), as in RelBench's
reference GNN; cross-entropy for multiclass. The epoch with the best *validation* metric
is selected; test labels are read once, after selection, by ``task.evaluate``.
"""

from __future__ import annotations

import copy
import math
import numbers
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from relbench.base import TaskType
from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score
from tqdm.auto import tqdm

from rdlviz.errors import ConfigError, TaskError
from rdlviz.finetune.result import FinetuneResult
from rdlviz.graph.time import to_unix_seconds
from rdlviz.nn import Backbone
from rdlviz.nn.heads import MLPHead
from rdlviz.sampling import NeighborLoader
from rdlviz.sampling.history import freeze_history, stale_seed_times
from rdlviz.sampling.sampler import check_strategy

__all__ = ["finetune", "MODES"]

MODES = ("scratch", "probe", "full")
VAL_HISTORIES = ("seed", "cutoff")
TEST_HISTORIES = ("cutoff", "seed")
TRAIN_HISTORIES = ("seed", "stale")
REFERENCE_TIMES = ("seed", "history")


def _kind(task) -> str:
    tt = task.task_type
    if tt == TaskType.BINARY_CLASSIFICATION:
        return "binary"
    if tt == TaskType.REGRESSION:
        return "regression"
    if tt == TaskType.MULTICLASS_CLASSIFICATION:
        return "multiclass"
    if tt == TaskType.RECOMMENDATION:
        return "link"
    raise TaskError(f"task type {tt.value} is not supported", task=getattr(task, "name", None),
                    fix="use a binary, regression, multiclass or link task")


def _resolve_backbone(backbone, graph, mode: str, default_kwargs: Dict[str, Any]) -> Backbone:
    from rdlviz.pretrain.checkpoint import load_backbone
    from rdlviz.pretrain.run import PretrainRun

    if isinstance(backbone, PretrainRun):
        net = copy.deepcopy(backbone.backbone)
    elif isinstance(backbone, (str, Path)):
        net = load_backbone(backbone, graph)
    elif isinstance(backbone, Backbone):
        net = copy.deepcopy(backbone)
    elif backbone is None:
        if mode != "scratch":
            raise ConfigError(f"mode={mode!r} needs a backbone (a PretrainRun, a checkpoint folder "
                              "or a Backbone); use mode='scratch' to train from random initialisation")
        net = Backbone(graph.data, graph.col_stats, **default_kwargs)
    else:
        raise ConfigError(f"backbone must be a PretrainRun, a checkpoint path or a Backbone, got {type(backbone).__name__}")
    if mode == "scratch" and backbone is not None:
        # Same architecture, fresh weights: the fair baseline for a pretrained backbone.
        net = Backbone(graph.data, graph.col_stats, **net.config())
    return net


class _EntityModel(torch.nn.Module):
    def __init__(self, backbone: Backbone, head: MLPHead, entity: str) -> None:
        super().__init__()
        self.backbone, self.head, self.entity = backbone, head, entity

    def embed(self, batch) -> torch.Tensor:
        h = self.backbone(batch, seeds_only=True)[self.entity]
        return h[: batch[self.entity].batch_size]

    def forward(self, batch) -> torch.Tensor:
        return self.head(self.embed(batch))


def _graph_for(dataset, task, backbone, graph, test_history: str):
    """The graph to fine-tune on: ``graph``, else the backbone's, else the dataset's, holding
    what ``test_history`` lets test seeds see: rows up to the test cutoff (``"cutoff"``)
    or every row (``"seed"``). A graph the caller passed is checked, not rebuilt."""
    test_cut = pd.Timestamp(dataset.test_timestamp)
    if graph is None:
        graph = getattr(backbone, "graph", None)
        if graph is None:
            from rdlviz.graph.build import build_graph

            graph = build_graph(dataset)
        graph = graph.with_cutoff(None if test_history == "seed" else "test")
    if test_history == "cutoff" and (graph.cutoff is None or graph.cutoff > test_cut):
        raise ConfigError(
            f"this graph holds rows after the test cutoff ({test_cut}), which test_history='cutoff' "
            f"(RelBench's protocol) keeps from test seeds; pass graph.with_cutoff('test'), or "
            f"test_history='seed' to let each test seed see the rows up to its own time")
    if test_history == "seed" and graph.cutoff is not None:
        last = pd.Timestamp(task.get_table("test").df[task.time_col].max())
        if graph.cutoff < last:
            raise ConfigError(
                f"test_history='seed' lets each test seed see the rows up to its own time, but this graph "
                f"holds rows up to {graph.cutoff} and the last test seed of '{task.name}' is at {last}; "
                f"pass graph.with_cutoff(None) (or build_graph(..., cutoff=None))")
    return graph


def _split(task, split: str, graph) -> Tuple[torch.Tensor, torch.Tensor, Optional[np.ndarray], Any]:
    table = task.get_table(split, mask_input_cols=False) if split != "test" else task.get_table("test")
    df = table.df
    nodes = torch.from_numpy(df[task.entity_col].to_numpy().astype(np.int64))
    times = torch.from_numpy(to_unix_seconds(df[task.time_col]))
    y = df[task.target_col].to_numpy() if task.target_col in df.columns else None
    return nodes, times, y, table


def _metrics(kind: str, y: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    if kind == "binary":
        return {"roc_auc": float(roc_auc_score(y, pred))}
    if kind == "regression":
        return {"mae": float(mean_absolute_error(y, pred))}
    return {"accuracy": float(accuracy_score(y, pred.argmax(-1)))}


def _loss(kind: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if kind == "binary":
        return F.binary_cross_entropy_with_logits(out.view(-1), y.float())
    if kind == "regression":
        return F.l1_loss(out.view(-1), y.float())
    return F.cross_entropy(out, y.long())


def _to_pred(kind: str, out: torch.Tensor) -> np.ndarray:
    if kind == "binary":
        return torch.sigmoid(out.view(-1)).numpy()
    if kind == "regression":
        return out.view(-1).numpy()
    return torch.softmax(out, -1).numpy()


def _interpolate(start: Dict[str, torch.Tensor], end: Dict[str, torch.Tensor],
                 alpha: float) -> Dict[str, torch.Tensor]:
    """``(1 - alpha) * start + alpha * end`` for every floating-point entry of two state
    dicts of one model; counters and other integer buffers are taken from ``end``."""
    return {k: torch.lerp(start[k], v, alpha) if v.is_floating_point() else v for k, v in end.items()}


def _alphas(wise_alpha: Union[float, Sequence[float]]) -> Tuple[float, ...]:
    """``wise_alpha`` as a tuple of candidates (one number: one candidate)."""
    if isinstance(wise_alpha, numbers.Real):  # numpy scalars too
        return (float(wise_alpha),)
    if isinstance(wise_alpha, str):  # iterable, but its characters are no candidates
        raise TypeError(wise_alpha)
    return tuple(float(a) for a in wise_alpha)


def _wise_ft(lp_state: Dict[str, torch.Tensor], ft_state: Dict[str, torch.Tensor],
             wise_alpha: Union[float, Sequence[float]], val_evaluate, higher_is_better: bool):
    """WiSE-FT's returned weights: ``(state, alpha, {alpha: validation score}, val_predictions)``.

    One ``alpha`` is applied as given (the score dict is empty, the predictions ``None``).
    With several, each interpolated model is scored on validation by
    ``val_evaluate(state) -> (score, predictions)`` and the best is kept (ties: the first
    listed), as the paper tunes its mixing coefficient on held-out data; the test split
    plays no part in the choice. The chosen model's validation predictions come back so
    that the caller need not predict validation again.
    """
    alphas = _alphas(wise_alpha)
    if len(alphas) == 1:
        return _interpolate(lp_state, ft_state, alphas[0]), alphas[0], {}, None
    scored = {a: val_evaluate(_interpolate(lp_state, ft_state, a)) for a in alphas}
    scores = {a: float(score) for a, (score, _) in scored.items()}
    pick = (max if higher_is_better else min)(alphas, key=lambda a: scores[a])
    return _interpolate(lp_state, ft_state, pick), pick, scores, scored[pick][1]


def check_args(*, mode: str = "full", epochs: int = 20, batch_size: int = 512, head_layers: int = 2,
               patience: int = 5, lr: float = 5e-3, backbone_lr: Optional[float] = None,
               probe_epochs: int = 0, val_history: str = "seed", train_history: str = "seed",
               reference_time: str = "seed", test_history: str = "cutoff",
               wise_alpha: Union[float, Sequence[float], None] = None, temporal_strategy: str = "uniform",
               max_steps_per_epoch: Optional[int] = None, min_steps_per_epoch: Optional[int] = None) -> None:
    """Raise :class:`~rdlviz.errors.ConfigError` for a :func:`finetune` configuration that
    cannot run, before any data is loaded (defaults are :func:`finetune`'s).

    Separate from :func:`finetune` so that a script which pretrains first (the benchmark
    protocol) can refuse a bad configuration at once rather than after pretraining.

    Example:
        >>> check_args(mode="full", probe_epochs=3, wise_alpha=0.5)  # runs: returns None
        >>> check_args(reference_time="history", train_history="stale")
        Traceback (most recent call last):
        ...
        rdlviz.errors.ConfigError: reference_time='history' and train_history='stale' pull ...
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    for name, v in dict(epochs=epochs, batch_size=batch_size, head_layers=head_layers, patience=patience).items():
        if v < 1:
            raise ConfigError(f"{name} must be >= 1, got {v}")
    if min_steps_per_epoch is not None and min_steps_per_epoch < 1:
        raise ConfigError(f"min_steps_per_epoch must be >= 1 or None, got {min_steps_per_epoch}")
    if None not in (min_steps_per_epoch, max_steps_per_epoch) and min_steps_per_epoch > max_steps_per_epoch:
        raise ConfigError(f"min_steps_per_epoch={min_steps_per_epoch} exceeds max_steps_per_epoch="
                          f"{max_steps_per_epoch}: the smaller batches would leave rows out of every "
                          f"epoch; lower min_steps_per_epoch or raise max_steps_per_epoch")
    if lr <= 0 or (backbone_lr is not None and backbone_lr <= 0):
        raise ConfigError(f"learning rates must be > 0, got lr={lr}, backbone_lr={backbone_lr}")
    if probe_epochs < 0:
        raise ConfigError(f"probe_epochs must be >= 0, got {probe_epochs}")
    if val_history not in VAL_HISTORIES:
        raise ConfigError(f"val_history must be one of {VAL_HISTORIES}, got {val_history!r}")
    if train_history not in TRAIN_HISTORIES:
        raise ConfigError(f"train_history must be one of {TRAIN_HISTORIES}, got {train_history!r}")
    if wise_alpha is not None:
        try:
            alphas = _alphas(wise_alpha)
        except (TypeError, ValueError):
            raise ConfigError(f"wise_alpha must be a number in [0, 1] or a sequence of them (candidates "
                              f"chosen on validation), got {wise_alpha!r}") from None
        if not alphas:
            raise ConfigError("wise_alpha is an empty sequence; give at least one number in [0, 1], or "
                              "None for the fine-tuned weights")
        if not all(0.0 <= a <= 1.0 for a in alphas):
            raise ConfigError(f"wise_alpha must lie in [0, 1] (0: the linear probe, 1: the fine-tuned "
                              f"model), got {wise_alpha}")
        if mode != "full" or probe_epochs < 1:
            raise ConfigError(f"wise_alpha interpolates from the linear probe to the fine-tuned model, so it "
                              f"needs mode='full' and probe_epochs >= 1 (got mode={mode!r}, "
                              f"probe_epochs={probe_epochs}); without head-only epochs one end would "
                              f"have a random head")
    check_strategy(temporal_strategy)
    if reference_time not in REFERENCE_TIMES:
        raise ConfigError(f"reference_time must be one of {REFERENCE_TIMES}, got {reference_time!r}")
    if reference_time == "history" and train_history == "stale":
        raise ConfigError("reference_time='history' and train_history='stale' pull opposite ways "
                          "(one removes the age of stale rows at evaluation, the other trains on it); "
                          "choose one")
    if test_history not in TEST_HISTORIES:
        raise ConfigError(f"test_history must be one of {TEST_HISTORIES}, got {test_history!r}")
    if test_history == "seed":
        # Each of these corrects for test seeds that forecast from history frozen at the
        # test cutoff; with test_history="seed" there is no such seed.
        for name, value, default in (("val_history", val_history, "seed"),
                                     ("train_history", train_history, "seed"),
                                     ("reference_time", reference_time, "seed")):
            if value != default:
                raise ConfigError(f"{name}={value!r} prepares for test seeds that see history frozen at the "
                                  f"test cutoff; with test_history='seed' every test seed sees its own "
                                  f"history, so use {name}={default!r}")


def check_task_args(task, *, train_history: str = "seed", reference_time: str = "seed",
                    test_history: str = "cutoff", min_steps_per_epoch: Optional[int] = None,
                    pair_features: Optional[bool] = None, clamp_predictions: bool = False) -> str:
    """The kind of ``task`` (``"binary"``, ``"regression"``, ``"multiclass"`` or ``"link"``);
    raise :class:`~rdlviz.errors.ConfigError` for an option that does not apply to it.

    ``train_history``, ``reference_time`` and ``test_history`` concern test seeds
    forecasting several windows ahead from frozen history; a link task has one
    evaluation window, so they would change nothing and are refused rather than
    silently ignored.

    Example:
        >>> check_task_args(db.load_task("driver-circuit-compete"), train_history="stale")
        Traceback (most recent call last):
        ...
        rdlviz.errors.ConfigError: train_history='stale' is for entity tasks; link task ...
    """
    kind = _kind(task)
    for name, value, default in (("train_history", train_history, "seed"),
                                 ("reference_time", reference_time, "seed"),
                                 ("test_history", test_history, "cutoff")):
        if kind == "link" and value != default:
            raise ConfigError(f"{name}={value!r} is for entity tasks; link task '{task.name}' has one "
                              f"evaluation window, so use {name}={default!r}")
    if kind == "link" and min_steps_per_epoch is not None:
        raise ConfigError(f"min_steps_per_epoch is for entity tasks; link task '{task.name}' groups its "
                          f"steps by seed time (set batch_size instead), so use min_steps_per_epoch=None")
    if kind != "link" and pair_features is not None:
        raise ConfigError(f"pair_features is for link tasks; '{task.name}' is a {kind} task, so leave "
                          f"pair_features=None")
    if clamp_predictions and kind != "regression":
        raise ConfigError(f"clamp_predictions clips regression predictions to the training targets' "
                          f"2nd-98th percentiles; '{task.name}' is a {kind} task, so use "
                          f"clamp_predictions=False")
    return kind


# Below this many Adam steps an epoch, the epoch budget starves the model: on rel-lahman
# team-win-ratio (1 step an epoch) and rel-f1 driver-top3 (3), 20 steps an epoch improved
# scratch's validation metric on 5 of 5 and 4 of 5 seeds, while rel-lahman player-hits, at
# 15, lost on test with 20 (docs/protocol.md, point 8 and "Enough steps for a small table").
FEW_STEPS_PER_EPOCH = 10


def _warn_few_steps(task_name: str, n_train: int, batch_size: int, epochs: int,
                    max_steps_per_epoch: Optional[int]) -> None:
    steps = math.ceil(n_train / batch_size)
    if max_steps_per_epoch is not None:
        steps = min(steps, max_steps_per_epoch)
    if steps < FEW_STEPS_PER_EPOCH:
        # The fix must also fit under a cap: min_steps_per_epoch > max_steps_per_epoch is refused.
        cap = ("" if max_steps_per_epoch is None or max_steps_per_epoch >= 20
               else f" and max_steps_per_epoch>=20 (now {max_steps_per_epoch})")
        warnings.warn(
            f"task '{task_name}': {n_train:,} training rows at batch_size={batch_size} give {steps} "
            f"optimisation step(s) an epoch, {steps * epochs} in {epochs} epochs; pass "
            f"min_steps_per_epoch=20{cap} (or a smaller batch_size) to give the model enough steps",
            UserWarning, stacklevel=3)


def finetune(
    dataset,
    task,
    backbone=None,
    *,
    mode: str = "full",
    graph=None,
    epochs: int = 20,
    batch_size: int = 512,
    num_neighbors: Sequence[int] = (128, 64),
    temporal_strategy: str = "uniform",
    lr: float = 5e-3,
    backbone_lr: Optional[float] = None,
    probe_epochs: int = 0,
    head_layers: int = 2,
    patience: int = 5,
    max_steps_per_epoch: Optional[int] = None,
    min_steps_per_epoch: Optional[int] = None,
    val_history: str = "seed",
    train_history: str = "seed",
    reference_time: str = "seed",
    test_history: str = "cutoff",
    wise_alpha: Union[float, Sequence[float], None] = None,
    pair_features: Optional[bool] = None,
    clamp_predictions: bool = False,
    backbone_kwargs: Optional[Dict[str, Any]] = None,
    seed: int = 0,
    progress: bool = True,
    device: Union[str, torch.device] = "cpu",
) -> FinetuneResult:
    """Fine-tune (or probe, or train from scratch) a backbone on a RelBench task.

    Args:
        dataset: a RelBench ``Dataset`` (``rdlviz.load(...)``).
        task: a task name or a loaded task.
        backbone: a :class:`~rdlviz.pretrain.run.PretrainRun`, a checkpoint folder, a
            :class:`~rdlviz.nn.Backbone`, or ``None`` (only for ``mode="scratch"``).
        mode: ``"scratch"``, ``"probe"`` or ``"full"``.
        graph: the graph to sample from. Default: the pretraining run's graph (else
            ``rdlviz.build_graph(dataset)``) at the test cutoff, or holding every row
            with ``test_history="seed"``, rebuilt with the same options if it was built
            at another cutoff (a backbone pretrained on ``cutoff="val"`` included). A
            graph passed here must hold what ``test_history`` asks for, or a
            ``ConfigError`` says which ``graph.with_cutoff(...)`` to pass.
        epochs / batch_size / num_neighbors: training budget and temporal fan-out
            (the pretraining method's downstream protocol: up to 20 epochs, 512,
            ``[128, 64]``; RelBench's example script ``gnn_entity.py`` trains 10 epochs
            with the same batch and fan-out).
        temporal_strategy: which earlier neighbours each hop takes: ``"uniform"``
            (RelBench's default) draws from the whole past, ``"last"`` takes the most
            recent ones. SAGE averages what it is given, so with a small fan-out
            ``"last"`` shows a seed its recent rows rather than an average over its
            whole history (on rel-f1, ``[16, 8]`` with ``"last"`` improved validation
            for every variant, task and seed, and the test means of scratch, probe and
            fine-tuned on every task; ``docs/protocol.md``). Neither sees past the seed
            time.
        lr: Adam learning rate of the head (and of the backbone unless ``backbone_lr``).
        backbone_lr: learning rate of the backbone in ``mode="full"``.
        probe_epochs: LP-FT: epochs of head-only training before full fine-tuning.
        head_layers: MLP head depth (1 = linear).
        patience: stop after this many epochs without a better validation metric.
        max_steps_per_epoch: cap on optimisation steps per epoch (None: a full pass).
        min_steps_per_epoch: entity tasks: train on batches of
            ``min(batch_size, ceil(n_train / min_steps_per_epoch))`` rows, so that an
            epoch takes at least this many optimisation steps (None: ``batch_size``).
            An epoch is a poor unit of budget for a small training table: at 512 rows
            a batch, rel-f1's driver-top3 (1,353 rows) gets 3 steps an epoch and
            rel-lahman's team-win-ratio (510 rows) one, so 10 epochs are 30 and 10
            Adam steps. Only training batches shrink: the seeds a frozen backbone
            embeds, and validation and test, go in batches of ``batch_size``. Left at
            None, a task whose epoch has fewer than ``FEW_STEPS_PER_EPOCH`` (10) steps
            (after ``max_steps_per_epoch``'s cap)
            gets a ``UserWarning`` that says so.
        val_history: what a validation seed may see. ``"seed"`` (RelBench's protocol):
            every row up to the seed's own time. ``"cutoff"``: rows up to the val cutoff
            only (:func:`~rdlviz.sampling.history.freeze_history`), the way every test
            seed sees rows up to the test cutoff only. A task with several evaluation
            windows then asks the same of validation as of test: a forecast up to
            several windows ahead from frozen history. Training seeds are unchanged.
            (Link tasks have one window, where the two coincide.)
        train_history: ``"seed"``: each training seed sees every row up to its time.
            ``"stale"``: every epoch, each training seed is sampled from history up to
            the test period's length old (``num_eval_timestamps * timedelta``;
            :func:`~rdlviz.sampling.history.stale_seed_times`), while the model still
            reads the seed's own time: training for the forecast test asks for.
        reference_time: the time an evaluation seed is encoded at. ``"seed"``
            (RelBench's protocol): its own time, so a test seed years after the test
            cutoff sees its neighbours years older than any training seed ever did, and
            its prediction drifts with that age. ``"history"``: the end of the history
            it can see, ``min(seed time, cutoff)`` (the graph's cutoff for test seeds,
            the val cutoff for validation seeds under ``val_history="cutoff"``): every
            evaluation seed is predicted as a one-window forecast from the newest rows
            it has, the situation training seeds are in. Labels keep their own time and
            the sampled rows are the same (none lie between the cutoff and the seed),
            so nothing new is seen. Training seeds are unchanged; not with
            ``train_history="stale"``, which trains for aged rows instead.
        test_history: what a test seed may see. ``"cutoff"`` (RelBench's protocol):
            rows up to the test cutoff only, however far past it the seed lies; the
            graph holds nothing later. ``"seed"``: every row up to the seed's own time,
            as training and validation seeds see, from a graph holding every row
            (``build_graph(dataset, cutoff=None)``); the sampler still shows no seed a
            row after its time, and stypes and column statistics still come from the
            rows up to the val cutoff. Each test seed is then a one-window forecast,
            the question validation asks, instead of one up to ``num_eval_timestamps``
            windows ahead; its numbers are not comparable with RelBench's, which use
            ``"cutoff"``. Training and validation are unchanged (their seeds lie
            before the test cutoff). Test seeds then read values training never saw:
            every timestamp feature, and columns whose scale moved (``rdlviz.drift``);
            on rel-f1, leaving the timestamp columns out
            (``build_graph(time_features=False)``) helped the pretrained backbones
            most (docs/protocol.md). Not with the options that correct for frozen test
            history (``val_history="cutoff"``, ``train_history="stale"``,
            ``reference_time="history"``), nor for link tasks (one window).
        wise_alpha: WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models",
            CVPR 2022), for ``mode="full"`` with ``probe_epochs >= 1``. The returned
            model's weights are ``θ(α) = (1 - α)·θ_LP + α·θ_FT``, where ``θ_LP`` is the
            pretrained backbone with the head after the head-only epochs and ``θ_FT`` the
            selected fine-tuned model. Fine-tuning starts from ``θ_LP``, so the two ends
            share a starting point, which is why the paper finds the straight line between
            them free of loss barriers. ``None`` (default) returns ``θ_FT``, as ``1.0``
            does. A sequence of candidates, e.g. ``(0, 0.25, 0.5, 0.75, 1)``, keeps the
            one whose model scores best on validation (one validation pass each), as the
            paper tunes α on held-out data; ``result.wise_alpha`` is the α returned and
            ``result.wise_val`` each candidate's validation metric. The result's
            validation and test metrics are the interpolated model's; the epoch is still
            selected on the fine-tuned one.
        pair_features: link tasks only (``None`` = ``True``): add to the two-tower score a
            learned term of whether, how often and how recently the source's past reaches
            the destination (:mod:`rdlviz.finetune.pair_features`); ``False`` scores with
            the two towers alone.
        clamp_predictions: regression tasks only: clip every validation and test
            prediction to ``[q_2, q_98]``, the 2nd and 98th percentiles of the training
            targets, as RelBench's example script ``gnn_entity.py`` does. Model selection
            then sees the clipped validation predictions too. Training is unchanged.
            A clipped prediction moves nearer every target inside the range and away
            from every target outside it, so it helps where the model overshoots rows
            whose targets stay inside. Default ``False``: the raw predictions.
        backbone_kwargs: architecture for ``mode="scratch"`` without a backbone
            (see :class:`~rdlviz.nn.Backbone`; default 128 channels,
            ``len(num_neighbors)`` layers).
        seed: makes the run reproducible.
        progress: show progress bars.
        device: where the model runs (``"cpu"``, ``"cuda"``); sampling stays on the CPU.

    Returns:
        :class:`~rdlviz.finetune.result.FinetuneResult`.

    Example:
        >>> res = rdlviz.finetune(db, "driver-dnf", backbone=run, mode="full")
        >>> res.test
        {'roc_auc': ...}
    """
    from rdlviz.data.load import load

    check_args(mode=mode, epochs=epochs, batch_size=batch_size, head_layers=head_layers, patience=patience,
               lr=lr, backbone_lr=backbone_lr, probe_epochs=probe_epochs, val_history=val_history,
               train_history=train_history, reference_time=reference_time, test_history=test_history,
               wise_alpha=wise_alpha,
               temporal_strategy=temporal_strategy, max_steps_per_epoch=max_steps_per_epoch,
               min_steps_per_epoch=min_steps_per_epoch)
    dataset = load(dataset)
    if isinstance(task, str):
        if task not in dataset.get_task_names():
            raise TaskError(f"not a task of this database; tasks: {dataset.get_task_names()}", task=task)
        task = dataset.load_task(task)
    kind = check_task_args(task, train_history=train_history, reference_time=reference_time,
                           test_history=test_history, min_steps_per_epoch=min_steps_per_epoch,
                           pair_features=pair_features, clamp_predictions=clamp_predictions)
    graph = _graph_for(dataset, task, backbone, graph, test_history)
    hidden = [c for t, c in task.hidden_columns() if t in graph.data.node_types
              and c in sum(graph.data[t].tf.col_names_dict.values(), [])]
    if hidden:
        raise TaskError(f"the graph still contains columns this task must not see: {hidden}",
                        task=task.name, fix="build the graph without them (build_graph(..., columns=...))")
    if kind == "link":
        from rdlviz.finetune.link import finetune_link

        return finetune_link(dataset, task, backbone, mode=mode, graph=graph, epochs=epochs,
                             batch_size=batch_size, num_neighbors=num_neighbors,
                             temporal_strategy=temporal_strategy, lr=lr, backbone_lr=backbone_lr,
                             probe_epochs=probe_epochs, head_layers=head_layers, wise_alpha=wise_alpha,
                             patience=patience, max_steps_per_epoch=max_steps_per_epoch,
                             backbone_kwargs=backbone_kwargs, seed=seed, progress=progress,
                             pair_features=pair_features is not False, device=device)

    t_start = time.perf_counter()
    torch.manual_seed(seed)
    np.random.seed(seed)
    defaults = dict(channels=128, num_layers=len(num_neighbors))
    defaults.update(backbone_kwargs or {})
    net = _resolve_backbone(backbone, graph, mode, defaults)
    splits = {s: _split(task, s, graph) for s in ("train", "val", "test")}
    y_train = splits["train"][2]
    train_batch_size = batch_size
    if min_steps_per_epoch is not None:
        train_batch_size = min(batch_size, max(1, math.ceil(len(y_train) / min_steps_per_epoch)))
    else:
        _warn_few_steps(task.name, len(y_train), batch_size, epochs, max_steps_per_epoch)
    if kind == "multiclass":
        out_channels = int(max(splits["train"][2].max(), splits["val"][2].max())) + 1
    else:
        out_channels = 1
    head = MLPHead(net.channels, out_channels, num_layers=head_layers)
    if kind == "regression":
        # Start the head at the training median (L1's best constant): it converges faster from there.
        with torch.no_grad():
            head.mlp.lins[-1].bias.fill_(float(np.median(y_train)))
    model = _EntityModel(net, head, task.entity_table).to(device)
    # RelBench's clamp: evaluation predictions stay inside the bulk of the training targets.
    clamp = tuple(float(q) for q in np.percentile(y_train, [2, 98])) if clamp_predictions else None
    metric = {"binary": "roc_auc", "regression": "mae", "multiclass": "accuracy"}[kind]
    higher = kind != "regression"

    data = {s: graph.data for s in ("train", "val", "test")}
    # The last moment each evaluation split's history covers (None: up to the seed's time).
    history_end: Dict[str, Optional[int]] = {"val": None, "test": None}
    if getattr(graph, "cutoff", None) is not None:
        history_end["test"] = to_unix_seconds(graph.cutoff)
    if val_history == "cutoff":
        cut = to_unix_seconds(dataset.val_timestamp)
        data["val"] = freeze_history(graph.data, cut, keep=[task.entity_table])
        history_end["val"] = cut

    horizon = int(pd.Timedelta(task.timedelta).total_seconds()) * int(getattr(task, "num_eval_timestamps", 1))

    def loader(split: str, shuffle: bool, epoch: int = 0, rows: int = batch_size) -> NeighborLoader:
        nodes, times, _, _ = splits[split]

        def to_device(b):
            return b.to(device)

        def with_true_seed_time(b):  # the model reads the true seed time: ages count from it
            store = b[task.entity_table]
            store.seed_time = times[store.input_id]
            return b.to(device)

        sample_times, transform = times, to_device
        if reference_time == "history" and history_end.get(split) is not None:
            # Encoded at the end of its history: a one-window forecast, as in training.
            sample_times = torch.clamp(times, max=history_end[split])
        if split == "train" and train_history == "stale":
            sample_times = stale_seed_times(times, horizon, seed=seed * 1000 + epoch)
            transform = with_true_seed_time
        return NeighborLoader(data[split], num_neighbors=list(num_neighbors),
                              input_nodes=(task.entity_table, nodes), input_time=sample_times,
                              batch_size=rows, shuffle=shuffle,
                              temporal_strategy=temporal_strategy, seed=seed * 1000 + epoch,
                              transform=transform)

    @torch.no_grad()
    def embed(split: str) -> torch.Tensor:
        model.eval()
        parts = []
        for batch in loader(split, shuffle=False):
            parts.append(model.embed(batch))
        return torch.cat(parts)

    @torch.no_grad()
    def predict(split: str, frozen: Optional[torch.Tensor] = None) -> np.ndarray:
        model.eval()
        if frozen is not None:
            pred = _to_pred(kind, head(frozen).cpu())
        else:
            pred = np.concatenate([_to_pred(kind, model(b).cpu()) for b in loader(split, shuffle=False)])
        return pred if clamp is None else np.clip(pred, *clamp)

    history, best, best_state, best_epoch, bad = [], None, None, 0, 0
    t_train = t_eval = 0.0

    def select(epoch: int, train_loss: float, frozen_val=None) -> bool:
        nonlocal best, best_state, best_epoch, bad, t_eval
        t0 = time.perf_counter()
        pv = predict("val", frozen_val)
        score = _metrics(kind, splits["val"][2], pv)[metric]
        t_eval += time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": train_loss, f"val_{metric}": score,
                        "time": time.perf_counter() - t_start})
        if best is None or (score > best if higher else score < best):
            best, best_epoch, bad = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        return bad >= patience

    y_t = {s: torch.from_numpy(np.asarray(splits[s][2], dtype=np.float64)).to(device) for s in ("train", "val")}
    frozen = None
    if mode == "probe" or probe_epochs > 0:
        # The backbone is fixed while only the head trains: embed every seed once.
        for p in net.parameters():
            p.requires_grad_(False)
        t0 = time.perf_counter()
        frozen = {s: embed(s) for s in ("train", "val", "test")}
        t_train += time.perf_counter() - t0
        opt = torch.optim.Adam(head.parameters(), lr=lr)
        n_probe = epochs if mode == "probe" else probe_epochs
        gen = torch.Generator().manual_seed(seed)
        for epoch in range(1, n_probe + 1):
            t0 = time.perf_counter()
            head.train()
            perm = torch.randperm(len(frozen["train"]), generator=gen).to(device)
            total = 0.0
            for i in range(0, len(perm), train_batch_size):
                idx = perm[i:i + train_batch_size]
                loss = _loss(kind, head(frozen["train"][idx]), y_t["train"][idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            t_train += time.perf_counter() - t0
            if mode == "probe" and select(epoch, total / len(perm), frozen["val"]):
                break
        for p in net.parameters():
            p.requires_grad_(True)
    # WiSE-FT's first end: the pretrained backbone with the head fitted on its features.
    lp_state = copy.deepcopy(model.state_dict()) if wise_alpha is not None else None

    if mode != "probe":
        groups = [{"params": head.parameters(), "lr": lr},
                  {"params": net.parameters(), "lr": backbone_lr if backbone_lr is not None else lr}]
        opt = torch.optim.Adam(groups)
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            model.train()
            total, count = 0.0, 0
            batches = loader("train", shuffle=True, epoch=epoch, rows=train_batch_size)
            n_steps = len(batches) if max_steps_per_epoch is None else min(len(batches), max_steps_per_epoch)
            bar = tqdm(batches, total=n_steps, desc=f"{task.name} {mode} epoch {epoch}",
                       disable=not progress, leave=False)
            for i, batch in enumerate(bar):
                if i >= n_steps:
                    break
                y = y_t["train"][batch[task.entity_table].input_id.to(device)]
                loss = _loss(kind, model(batch), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(y)
                count += len(y)
            bar.close()
            t_train += time.perf_counter() - t0
            if select(epoch, total / max(count, 1)):
                break

    alpha, wise_val, val_pred = None, {}, None
    if lp_state is not None:
        def val_evaluate(state):
            model.load_state_dict(state)
            pv = predict("val")
            return _metrics(kind, splits["val"][2], pv)[metric], pv

        t0 = time.perf_counter()
        best_state, alpha, wise_val, val_pred = _wise_ft(lp_state, best_state, wise_alpha, val_evaluate, higher)
        t_eval += time.perf_counter() - t0
    model.load_state_dict(best_state)
    t0 = time.perf_counter()
    if mode == "probe":
        preds = {"val": predict("val", frozen["val"]), "test": predict("test", frozen["test"])}
    else:
        preds = {"val": predict("val") if val_pred is None else val_pred, "test": predict("test")}
    val = _metrics(kind, splits["val"][2], preds["val"])
    # Test labels are read here, once, after model selection.
    test_pred = preds["test"] if kind != "multiclass" else preds["test"].argmax(-1)
    test = {k: float(v) for k, v in task.evaluate(test_pred).items()}
    if kind == "regression":
        test["mae"] = float(test["nmae"] * task.nmae_std) if "nmae" in test else float("nan")
    elif kind == "multiclass" and not test:
        test_table = task.get_table("test", mask_input_cols=False)
        test = _metrics(kind, test_table.df[task.target_col].to_numpy(), preds["test"])
    t_eval += time.perf_counter() - t0
    cfg = dict(mode=mode, epochs=epochs, batch_size=batch_size, num_neighbors=list(num_neighbors),
               temporal_strategy=temporal_strategy, lr=lr, backbone_lr=backbone_lr,
               probe_epochs=probe_epochs, head_layers=head_layers, patience=patience,
               max_steps_per_epoch=max_steps_per_epoch, min_steps_per_epoch=min_steps_per_epoch,
               train_batch_size=train_batch_size, val_history=val_history, train_history=train_history,
               reference_time=reference_time, test_history=test_history, wise_alpha=wise_alpha,
               clamp=list(clamp) if clamp is not None else None, seed=seed, backbone=net.config())
    return FinetuneResult(
        task=task.name, mode=mode, metric=metric, higher_is_better=higher,
        history=pd.DataFrame(history), val=val, test=test, predictions=preds,
        seconds={"total": time.perf_counter() - t_start, "train": t_train, "eval": t_eval},
        best_epoch=best_epoch, config=cfg, model=model, wise_alpha=alpha, wise_val=wise_val,
    )
