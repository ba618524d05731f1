"""Fine-tuning and evaluation: scratch (B), probe (P) and pretrained-and-fine-tuned (P&F)."""

from rdlviz.finetune.comparison import comparison
from rdlviz.finetune.loop import MODES, finetune
from rdlviz.finetune.result import FinetuneResult

__all__ = ["finetune", "FinetuneResult", "MODES", "comparison"]
