"""Row encoders: one TensorFrame row -> one vector.

relbench's :class:`~relbench.modeling.nn.HeteroEncoder` takes any torch_frame model class
with ResNet's constructor signature. ResNet (torch_frame's) is the default, as in
RelBench and the pretraining paper; :class:`LinearRowEncoder` is the cheap alternative the
paper also uses: encode every cell with torch_frame's stype encoders, average the cells,
and apply one linear map. Both plug into ``HeteroEncoder(torch_frame_model_cls=...)``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch
import torch_frame
from torch import Tensor
from torch_frame import TensorFrame
from torch_frame import NAStrategy
from torch_frame.nn import (
    EmbeddingEncoder,
    LinearEmbeddingEncoder,
    LinearEncoder,
    MultiCategoricalEmbeddingEncoder,
    StypeWiseFeatureEncoder,
    TimestampEncoder,
)
from torch_frame.nn.models import ResNet

__all__ = ["LinearRowEncoder", "ROW_ENCODERS", "stype_encoders"]


def stype_encoders() -> Dict[torch_frame.stype, tuple]:
    """Per-semantic-type cell encoders, as relbench's defaults but with missing values
    imputed (mean for numbers, median for timestamps).

    Why: with torch_frame's default (no imputation) a missing number becomes NaN inside
    the encoder; the output is then zeroed by ``nan_to_num``, but the gradient of the
    encoder's weight is ``0 * NaN = NaN``, and one optimiser step turns the whole
    encoder into NaN (rel-f1's ``results`` table has tens of thousands of missing
    numbers). Missing categories already map to their own index.
    """
    return {
        torch_frame.categorical: (EmbeddingEncoder, {}),
        torch_frame.numerical: (LinearEncoder, {"na_strategy": NAStrategy.MEAN}),
        torch_frame.multicategorical: (MultiCategoricalEmbeddingEncoder, {}),
        torch_frame.embedding: (LinearEmbeddingEncoder, {}),
        torch_frame.timestamp: (TimestampEncoder, {"na_strategy": NAStrategy.MEDIAN_TIMESTAMP}),
    }


class LinearRowEncoder(torch.nn.Module):
    r"""Mean of per-cell embeddings followed by a linear map.

    .. math::
        \mathbf{x} = W \cdot \frac{1}{C} \sum_{c=1}^{C} \mathrm{enc}_{s(c)}(v_c) + b

    where :math:`\mathrm{enc}_{s(c)}` is torch_frame's encoder for the semantic type of
    column :math:`c`.

    Args:
        channels: width of the per-cell embeddings.
        out_channels: output width.
        col_stats / col_names_dict / stype_encoder_dict: as for torch_frame's ResNet.
        num_layers: accepted (and ignored) so the signature matches ResNet's.

    Shapes:
        input: a :class:`TensorFrame` with ``N`` rows; output: ``[N, out_channels]``.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int,
        col_stats: Dict[str, Dict[Any, Any]],
        col_names_dict: Dict[torch_frame.stype, List[str]],
        stype_encoder_dict: Optional[Dict[torch_frame.stype, Any]] = None,
        num_layers: int = 1,
    ) -> None:
        super().__init__()
        if stype_encoder_dict is None:
            stype_encoder_dict = {st: cls(**kw) for st, (cls, kw) in stype_encoders().items()
                                  if st in col_names_dict}
        self.encoder = StypeWiseFeatureEncoder(
            out_channels=channels,
            col_stats=col_stats,
            col_names_dict=col_names_dict,
            stype_encoder_dict=stype_encoder_dict,
        )
        self.lin = torch.nn.Linear(channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        self.lin.reset_parameters()

    def forward(self, tf: TensorFrame) -> Tensor:
        x, _ = self.encoder(tf)  # [N, num_cols, channels]
        return self.lin(x.mean(dim=1))


#: name -> (torch_frame model class, default kwargs)
ROW_ENCODERS = {
    "resnet": (ResNet, {"channels": 128, "num_layers": 4}),
    "linear": (LinearRowEncoder, {"channels": 128}),
}
