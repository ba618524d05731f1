"""The result of pretraining: a backbone plus everything needed to see, save and resume it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import pandas as pd
import torch

from rdlviz.pretrain.checkpoint import save_checkpoint

__all__ = ["PretrainRun"]


@dataclass
class PretrainRun:
    """What :func:`rdlviz.pretrain` returns.

    Attributes:
        backbone: the pretrained :class:`~rdlviz.nn.Backbone` (best validation state).
        objectives: the pretraining heads (projections, bilinear maps) by objective.
        history: one row per logged step: ``step``, ``split`` (``"train"``/``"val"``),
            ``time`` (s since start), one column per objective and ``total``.
        config: the pretraining configuration (JSON-serialisable).
        schema: the graph schema the backbone was trained on (see
            :func:`rdlviz.pretrain.checkpoint.schema_of`).
        seconds: wall time per phase (``total``, ``sample``, ``forward``, ``backward``,
            ``eval``).
        step: steps taken; ``best_step``/``best_val``: the last evaluation that improved
            the validation loss by more than ``min_delta`` (the state kept).
        stopped: ``"steps"``, ``"early_stop"`` or ``"interrupted"``.
    """

    backbone: torch.nn.Module
    objectives: torch.nn.ModuleDict
    history: pd.DataFrame
    config: Dict[str, Any]
    schema: Dict[str, Any]
    seconds: Dict[str, float] = field(default_factory=dict)
    step: int = 0
    best_step: int = 0
    best_val: float = float("nan")
    stopped: str = "steps"
    optimizer: Optional[torch.optim.Optimizer] = field(default=None, repr=False)
    graph: Any = field(default=None, repr=False)
    last_state: Optional[Dict[str, torch.Tensor]] = field(default=None, repr=False)

    def save(self, path: Union[str, Path]) -> Path:
        """Write a checkpoint folder; restore with :func:`rdlviz.load_backbone` or resume
        with ``rdlviz.pretrain(graph, resume_from=path)``."""
        path = save_checkpoint(
            path, backbone=self.backbone, objectives=self.objectives, optimizer=self.optimizer,
            config={
                "pretrain": self.config,
                "backbone": self.backbone.config(),
                "schema": self.schema,
                "progress": {"step": self.step, "best_step": self.best_step,
                             "best_val": self.best_val, "stopped": self.stopped,
                             "seconds": self.seconds},
                "history": self.history.to_dict(orient="list"),
            },
        )
        if self.last_state is not None:
            # The state at the last step (the backbone above is the best one): resuming
            # continues from here, so a resumed run follows the same curve.
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in self.last_state.items()},
                      str(path / "last.safetensors"))
        return path

    def final_losses(self, split: str = "val") -> Dict[str, float]:
        """The last logged loss per objective for ``split``."""
        h = self.history[self.history["split"] == split]
        if h.empty:
            return {}
        last = h.iloc[-1]
        return {k: float(last[k]) for k in h.columns if k not in ("step", "split", "time") and pd.notna(last[k])}

    def __repr__(self) -> str:
        losses = ", ".join(f"{k}={v:.3f}" for k, v in self.final_losses().items())
        return (f"PretrainRun(steps={self.step}, stopped={self.stopped!r}, best_step={self.best_step}, "
                f"val: {losses or 'n/a'}, {self.seconds.get('total', 0):.1f}s)")
