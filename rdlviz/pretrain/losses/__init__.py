"""Pretraining objectives, one per module.

* :class:`RowContrastiveLoss` (:mod:`.row`) -- a row vs. its corrupted view.
* :class:`LinkContrastiveLoss` (:mod:`.link`) -- fkey edges vs. unconnected pairs.
* :class:`ContextContrastiveLoss` (:mod:`.context`) -- a node vs. its neighbourhood.
* :class:`MaskedCellReconstructionLoss` (:mod:`.reconstruction`) -- recover corrupted
  cells (beyond the paper, optional).

All act on the final GNN output ``h_dict`` of one sampled batch and are scaled so that
chance level is about 1 (see :func:`normalized_info_nce`), so they can be summed with
weight 1 as in Peleška & Šír (2025).
"""

from rdlviz.pretrain.losses._nce import normalized_info_nce, score_negatives
from rdlviz.pretrain.losses.context import ContextContrastiveLoss
from rdlviz.pretrain.losses.link import LinkContrastiveLoss
from rdlviz.pretrain.losses.reconstruction import MaskedCellReconstructionLoss
from rdlviz.pretrain.losses.row import RowContrastiveLoss

LOSSES = {
    "row": RowContrastiveLoss,
    "link": LinkContrastiveLoss,
    "context": ContextContrastiveLoss,
    "reconstruction": MaskedCellReconstructionLoss,
}

__all__ = [
    "RowContrastiveLoss",
    "LinkContrastiveLoss",
    "ContextContrastiveLoss",
    "MaskedCellReconstructionLoss",
    "LOSSES",
    "normalized_info_nce",
    "score_negatives",
]
