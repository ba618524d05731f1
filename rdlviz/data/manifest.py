"""Writing a database as a RelBench 3.x manifest folder -- the one path every source takes.

rel-f1, rel-lahman and your own tables all end here: validate the tables
(:mod:`rdlviz.data.validate`), reindex keys the way RelBench does, check every task's
SQL against the real tables (:mod:`rdlviz.data.tasks`), and write::

    <dir>/manifest.yaml            tables, keys, time columns, val/test cutoffs
    <dir>/db/<table>.parquet
    <dir>/tasks/<task>/manifest.yaml

The folder then loads with ``relbench.load_dataset(dir)``, so everything downstream
speaks RelBench. The manifest is the single source of truth for keys and times.

Reindexing (RelBench's contract, required by relbench 3.x): each table with a time
column is ordered by time (stable, so ties keep their source order), every primary key
becomes the row position ``0..n-1``, and foreign keys are mapped to match. The original
key is kept in a column ``<pkey>_orig`` only when asked (``keep_original_keys``), since
an identifier is not a feature.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Union

import numpy as np
import pandas as pd
from relbench.manifest import DatasetManifest, TableSpec, TaskManifest

from rdlviz.data.cache import atomic_dir
from rdlviz.data.tasks import check_task
from rdlviz.data.validate import CleanupReport, validate_tables
from rdlviz.errors import SchemaError

__all__ = ["reindex", "write_dataset"]


def reindex(
    tables: Mapping[str, pd.DataFrame],
    pkeys: Mapping[str, Optional[str]],
    fkeys: Mapping[str, Mapping[str, str]],
    time_cols: Mapping[str, Optional[str]],
    keep_original_keys: bool = False,
) -> Dict[str, pd.DataFrame]:
    """Reindex keys as RelBench does: time order, pkeys ``0..n-1``, fkeys mapped.

    A foreign key that is missing stays missing (nullable ``Int64``); validation has
    already rejected (or, opt-in, cleaned) dangling references.
    """
    out: Dict[str, pd.DataFrame] = {}
    mapping: Dict[str, pd.Series] = {}
    for name, df in tables.items():
        tc = time_cols.get(name)
        if tc is not None:
            df = df.sort_values(tc, kind="stable")
        df = df.reset_index(drop=True)
        pk = pkeys.get(name)
        if pk is not None:
            mapping[name] = pd.Series(np.arange(len(df), dtype=np.int64), index=df[pk].to_numpy())
            if keep_original_keys:
                df.insert(1, f"{pk}_orig", df[pk])
            df[pk] = np.arange(len(df), dtype=np.int64)
        out[name] = df
    for name, fk in fkeys.items():
        df = out[name]
        for col, target in fk.items():
            mapped = df[col].map(mapping[target])
            if mapped.isna().any():
                df[col] = mapped.astype("Int64")
            else:
                df[col] = mapped.astype(np.int64)
    return out


def _normalise_frame(df: pd.DataFrame) -> pd.DataFrame:
    # Parquet + duckdb + torch_frame agree best on plain numpy dtypes and object strings.
    for col in df.columns:
        if isinstance(df[col].dtype, pd.StringDtype):
            df[col] = df[col].astype(object)
    return df


def write_dataset(
    name: str,
    tables: Mapping[str, pd.DataFrame],
    *,
    pkeys: Mapping[str, Optional[str]],
    fkeys: Mapping[str, Mapping[str, str]],
    time_cols: Mapping[str, Optional[str]],
    val_timestamp: Union[str, pd.Timestamp],
    test_timestamp: Union[str, pd.Timestamp],
    out_dir: Union[str, Path],
    tasks: Iterable[TaskManifest] = (),
    description: Optional[str] = None,
    on_dangling: str = "error",
    on_missing_time: str = "error",
    keep_original_keys: bool = False,
    check_tasks: bool = True,
) -> CleanupReport:
    """Validate, reindex and write a database (and its tasks) as a manifest folder.

    Args:
        name: dataset name written into the manifest.
        tables: ``{table: DataFrame}``.
        pkeys / fkeys / time_cols: the relational declarations (see
            :func:`rdlviz.data.validate.validate_tables`). Tables missing from
            ``pkeys``/``time_cols`` have no key/time column.
        val_timestamp / test_timestamp: the temporal split cutoffs.
        out_dir: the folder to create (written atomically; must not exist).
        tasks: task manifests (:func:`rdlviz.data.tasks.entity_task` / ``link_task``).
        on_dangling / on_missing_time: opt-in cleanups, reported in the return value.
        keep_original_keys: keep each table's source key as ``<pkey>_orig``.
        check_tasks: run each task's SQL once at ``val_timestamp`` to check it.

    Returns:
        The :class:`~rdlviz.data.validate.CleanupReport` (empty without cleanups).
    """
    out_dir = Path(out_dir)
    val_ts, test_ts = pd.Timestamp(val_timestamp), pd.Timestamp(test_timestamp)
    if not val_ts < test_ts:
        raise SchemaError(
            f"val_timestamp ({val_ts}) must be before test_timestamp ({test_ts})",
            fix="swap or correct the cutoffs",
        )
    pkeys = {t: pkeys.get(t) for t in tables}
    fkeys = {t: dict(fkeys.get(t, {})) for t in tables}
    time_cols = {t: time_cols.get(t) for t in tables}
    for t, tc in time_cols.items():
        if tc is not None and (tc == pkeys[t] or tc in fkeys[t]):
            raise SchemaError("is declared both as a key and as the time column",
                              table=t, column=tc, fix="declare a separate time column")
    if not any(tc for tc in time_cols.values()):
        raise SchemaError(
            "no table has a time column, so there is no temporal split",
            fix="declare a time column (time_cols={table: column}) for the fact tables",
        )
    clean, report = validate_tables(tables, pkeys, fkeys, time_cols,
                                    on_dangling=on_dangling, on_missing_time=on_missing_time)
    clean = reindex(clean, pkeys, fkeys, time_cols, keep_original_keys=keep_original_keys)
    clean = {t: _normalise_frame(df) for t, df in clean.items()}
    tasks = list(tasks)
    names = [tm.name for tm in tasks]
    if len(set(names)) != len(names):
        raise SchemaError(f"task names must be unique, got {names}")
    if check_tasks:
        for tm in tasks:
            check_task(tm, clean, val_ts)

    manifest = DatasetManifest(
        name=name,
        val_timestamp=str(val_ts.date()) if val_ts == val_ts.normalize() else str(val_ts),
        test_timestamp=str(test_ts.date()) if test_ts == test_ts.normalize() else str(test_ts),
        description=description,
        tables={t: TableSpec(pkey=pkeys[t], time_col=time_cols[t], fkeys=fkeys[t]) for t in clean},
    )
    with atomic_dir(out_dir) as tmp:
        (tmp / "db").mkdir()
        for t, df in clean.items():
            df.to_parquet(tmp / "db" / f"{t}.parquet", index=False)
        manifest.save(tmp / "manifest.yaml")
        for tm in tasks:
            tm.save(tmp / "tasks" / tm.name / "manifest.yaml")
    return report
