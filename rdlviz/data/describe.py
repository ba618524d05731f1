"""``rdlviz.describe``: one tidy row per table -- the first thing to look at.

Counts come from parquet metadata and time spans from the time column alone, so
describing a database does not materialise it.
"""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
from relbench.base import Dataset

__all__ = ["describe"]


def describe(dataset: Dataset) -> pd.DataFrame:
    """Summarise a database: one row per table.

    Columns: ``table``, ``rows``, ``columns`` (feature columns, i.e. not keys or time),
    ``pkey``, ``fkeys`` (``"col->table"`` strings), ``time_col``, ``time_min``,
    ``time_max``, and ``rows_before_val`` / ``rows_before_test`` (rows a model may see
    when predicting at each cutoff; all rows for tables without time).
    """
    from rdlviz.data.load import load

    dataset = load(dataset)
    manifest = getattr(dataset, "manifest", None)
    rows = []
    if manifest is not None:
        for name, spec in manifest.tables.items():
            path = dataset.db_dir / f"{name}.parquet"
            schema = pq.read_schema(path)
            n = pq.read_metadata(path).num_rows
            keys = {spec.pkey, spec.time_col, *spec.fkeys}
            feats = [c for c in schema.names if c not in keys]
            row = dict(table=name, rows=n, columns=len(feats), pkey=spec.pkey,
                       fkeys=", ".join(f"{c}->{t}" for c, t in spec.fkeys.items()),
                       time_col=spec.time_col, time_min=pd.NaT, time_max=pd.NaT,
                       rows_before_val=n, rows_before_test=n)
            if spec.time_col:
                t = pd.to_datetime(pd.read_parquet(path, columns=[spec.time_col])[spec.time_col])
                row.update(time_min=t.min(), time_max=t.max(),
                           rows_before_val=int((t <= dataset.val_timestamp).sum()),
                           rows_before_test=int((t <= dataset.test_timestamp).sum()))
            rows.append(row)
    else:  # any other relbench Dataset: materialise it
        db = dataset.get_db(upto_test_timestamp=False)
        for name, table in db.table_dict.items():
            keys = {table.pkey_col, table.time_col, *table.fkey_col_to_pkey_table}
            n = len(table.df)
            row = dict(table=name, rows=n, columns=len([c for c in table.df.columns if c not in keys]),
                       pkey=table.pkey_col,
                       fkeys=", ".join(f"{c}->{t}" for c, t in table.fkey_col_to_pkey_table.items()),
                       time_col=table.time_col, time_min=pd.NaT, time_max=pd.NaT,
                       rows_before_val=n, rows_before_test=n)
            if table.time_col:
                t = table.df[table.time_col]
                row.update(time_min=t.min(), time_max=t.max(),
                           rows_before_val=int((t <= dataset.val_timestamp).sum()),
                           rows_before_test=int((t <= dataset.test_timestamp).sum()))
            rows.append(row)
    return pd.DataFrame(rows)
