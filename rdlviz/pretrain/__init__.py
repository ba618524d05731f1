"""Task-agnostic contrastive pretraining (Peleška & Šír 2025), done robustly and visibly.

* :mod:`~rdlviz.pretrain.corruption` -- the second view: per-cell resampling.
* :mod:`~rdlviz.pretrain.losses` -- row, link and context contrast (one module each), and
  an optional masked-cell reconstruction objective.
* :mod:`~rdlviz.pretrain.seeds` -- leak-free seed rows and times.
* :mod:`~rdlviz.pretrain.loop` -- :func:`pretrain`, the loop.
* :mod:`~rdlviz.pretrain.run`, :mod:`~rdlviz.pretrain.checkpoint` -- results, saving,
  restoring, resuming.
* :mod:`~rdlviz.pretrain.health` -- is the representation collapsing?
"""

from rdlviz.pretrain.checkpoint import load_backbone, schema_diff, schema_of
from rdlviz.pretrain.loop import OBJECTIVES, pretrain
from rdlviz.pretrain.run import PretrainRun

__all__ = ["pretrain", "PretrainRun", "load_backbone", "schema_of", "schema_diff", "OBJECTIVES"]
