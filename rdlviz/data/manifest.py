"""Writing a database as a RelBench 3.x manifest folder -- the one path every source takes.

rel-f1, rel-lahman and your own tables all end here: validate the tables
(:mod:`rdlviz.data.validate`), reindex keys the way RelBench does, check every task's
SQL against the real tables (:mod:`rdlviz.data.tasks`), and write::

    <dir>/manifest.yaml            tables, keys, time columns, val/test cutoffs
    <dir>/db/<table>.parquet
    <dir>/tasks/<task>/manifest.yaml
    <dir>/cleanup.json             what an opt-in cleanup changed (CleanupReport)

The folder then loads with ``relbench.load_dataset(dir)``, so everything downstream
speaks RelBench. The manifest is the single source of truth for keys and times.

Reindexing (RelBench's contract, required by relbench 3.x): each table with a time
column is ordered by time (stable, so ties keep their source order), every primary key
becomes the row position ``0..n-1``, and foreign keys are mapped to match. The original
key is kept in a column ``<pkey>_orig`` only when asked (``keep_original_keys``), since
an identifier is not a feature.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Union

import numpy as np
import pandas as pd
from relbench.manifest import DatasetManifest, TableSpec, TaskManifest

from rdlviz.data.cache import atomic_dir
from rdlviz.data.tasks import check_task
from rdlviz.data.validate import CleanupReport, validate_tables
from rdlviz.errors import SchemaError

__all__ = ["reindex", "write_dataset", "read_cleanup_report", "CLEANUP_FILE"]

#: The file in a dataset folder that records what an opt-in cleanup changed.
CLEANUP_FILE = "cleanup.json"


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


def _single(pk):
    # A one-element list is a single key written as a list.
    return pk[0] if isinstance(pk, (list, tuple)) and len(pk) == 1 else pk


def _normalise_frame(name: str, df: pd.DataFrame, keys: set) -> pd.DataFrame:
    """Plain numpy dtypes and object strings: what parquet, duckdb and torch_frame agree on.

    * pandas string dtypes -> ``object``;
    * every datetime column -> ``datetime64[ns]`` (the unit RelBench's ``to_unix_time``
      assumes; pandas 3 defaults to microseconds);
    * nullable extension numbers/booleans (what DuckDB and ``convert_dtypes`` return) ->
      numpy: integers without missing values stay integers, with missing values become
      ``float64``; booleans with missing values become ``object`` -- the same dtypes
      pandas itself gives such columns. Key columns keep their nullable ``Int64``.
    """
    for col in df.columns:
        s = df[col]
        dtype = s.dtype
        if isinstance(dtype, pd.StringDtype):
            df[col] = s.astype(object)
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            try:
                df[col] = s.dt.as_unit("ns")
            except (pd.errors.OutOfBoundsDatetime, OverflowError):
                raise SchemaError(
                    f"holds dates outside 1677-09-21..2262-04-11 ({s.min()} .. {s.max()})",
                    table=name, column=col,
                    fix="fix the out-of-range values (often sentinel dates like 0001-01-01), "
                    "or store the column as text",
                ) from None
        elif col not in keys and isinstance(dtype, pd.api.extensions.ExtensionDtype) and (
            pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
        ):
            has_na = bool(s.isna().any())
            if pd.api.types.is_bool_dtype(dtype):
                df[col] = s.astype(object).where(s.notna(), None) if has_na else s.astype(bool)
            elif pd.api.types.is_integer_dtype(dtype) and not has_na:
                df[col] = s.astype(dtype.numpy_dtype)
            else:
                df[col] = s.astype("float64")
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
        check_tasks: check each task against the data (SQL runs and outputs the
            declared columns, labels stay inside the window, the window fits the
            cutoffs); see :func:`rdlviz.data.tasks.check_task`.

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
    if not any(tc for tc in time_cols.values()):
        raise SchemaError(
            "no table has a time column, so there is no temporal split",
            fix="declare a time column (time_cols={table: column}) for the fact tables",
        )
    tasks = list(tasks)
    names = [tm.name for tm in tasks]
    if len(set(names)) != len(names):
        raise SchemaError(f"task names must be unique, got {names}",
                          fix="rename the duplicate tasks")
    # Validate the declarations as given (a typo in a table name must fail, not vanish
    # when the declarations are completed below).
    clean, report = validate_tables(tables, pkeys, fkeys, time_cols,
                                    on_dangling=on_dangling, on_missing_time=on_missing_time)
    pkeys = {t: _single(pkeys.get(t)) for t in tables}
    fkeys = {t: dict(fkeys.get(t) or {}) for t in tables}
    time_cols = {t: time_cols.get(t) for t in tables}
    clean = reindex(clean, pkeys, fkeys, time_cols, keep_original_keys=keep_original_keys)
    for t, df in clean.items():
        keys = {pkeys[t], *fkeys[t]} - {None}
        clean[t] = _normalise_frame(t, df, keys)
    if check_tasks:
        for tm in tasks:
            check_task(tm, clean, val_ts, time_cols=time_cols, test_timestamp=test_ts)

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
        # Provenance: what an opt-in cleanup changed travels with the data.
        (tmp / CLEANUP_FILE).write_text(json.dumps(report.to_dict(), indent=1))
        for tm in tasks:
            tm.save(tmp / "tasks" / tm.name / "manifest.yaml")
    return report


def read_cleanup_report(dataset_dir: Union[str, Path]) -> CleanupReport:
    """The :class:`~rdlviz.data.validate.CleanupReport` stored with a dataset folder
    (empty for folders written without one, e.g. by RelBench)."""
    path = Path(dataset_dir) / CLEANUP_FILE
    if not path.exists():
        return CleanupReport()
    return CleanupReport.from_dict(json.loads(path.read_text()))
