"""Database -> graph: rows become TensorFrames, foreign keys become typed edges, time
columns become node times in UNIX seconds.

``rdlviz.build_graph(db)`` is the one call; :class:`Graph` holds the PyG ``HeteroData``
with the database, stypes and column statistics behind it. :func:`to_unix_seconds` is the
one time conversion every step (graph, sampler, task tables) uses.
"""

from rdlviz.graph.build import Graph, build_graph, schema_diff
from rdlviz.graph.time import to_unix_seconds

__all__ = ["build_graph", "Graph", "schema_diff", "to_unix_seconds"]
