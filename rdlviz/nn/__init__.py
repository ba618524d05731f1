"""Neural building blocks: row encoders, the relational backbone, prediction heads."""

from rdlviz.nn.backbone import Backbone, seed_time_of
from rdlviz.nn.embed import embed_rows
from rdlviz.nn.encoders import ROW_ENCODERS, LinearRowEncoder

__all__ = ["Backbone", "LinearRowEncoder", "ROW_ENCODERS", "seed_time_of", "embed_rows"]
