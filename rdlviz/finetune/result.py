"""What :func:`rdlviz.finetune` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np
import pandas as pd
import torch

__all__ = ["FinetuneResult"]


@dataclass
class FinetuneResult:
    """One fine-tuning run.

    Attributes:
        task: task name. mode: ``"scratch"``, ``"probe"`` or ``"full"``.
        metric: the model-selection metric (``"roc_auc"``, ``"mae"``, ``"map"``, ...);
            ``higher_is_better`` says its direction.
        history: one row per epoch: ``epoch``, ``train_loss``, ``val_<metric>``, ``time``.
        val: metrics of the selected epoch on the validation split.
        test: metrics of the selected model on the test split (``task.evaluate``).
        predictions: ``{"val": array, "test": array}`` of the selected model.
        seconds: wall time (``total``, ``train``, ``eval``).
        best_epoch: the epoch selected on validation.
        model: the trained model (backbone + head).
        wise_alpha: the WiSE-FT α of the returned weights (``None`` without WiSE-FT).
        wise_val: with several WiSE-FT candidates, each α's validation metric
            (``{alpha: score}``); empty otherwise.
    """

    task: str
    mode: str
    metric: str
    higher_is_better: bool
    history: pd.DataFrame
    val: Dict[str, float]
    test: Dict[str, float]
    predictions: Dict[str, np.ndarray] = field(repr=False)
    seconds: Dict[str, float]
    best_epoch: int
    config: Dict[str, Any] = field(default_factory=dict, repr=False)
    model: Optional[torch.nn.Module] = field(default=None, repr=False)
    wise_alpha: Optional[float] = None
    wise_val: Dict[float, float] = field(default_factory=dict, repr=False)

    @property
    def test_score(self) -> float:
        """The selection metric on test."""
        return float(self.test[self.metric])

    def __repr__(self) -> str:
        return (f"FinetuneResult(task={self.task!r}, mode={self.mode!r}, "
                f"val {self.metric}={self.val.get(self.metric, float('nan')):.4f}, "
                f"test {self.metric}={self.test.get(self.metric, float('nan')):.4f}, "
                f"best_epoch={self.best_epoch}, {self.seconds.get('total', 0):.1f}s)")
