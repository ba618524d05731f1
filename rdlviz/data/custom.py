"""Your own database: pandas tables, a CSV folder, a SQLite or a DuckDB file.

Every source ends in the same place as the built-in databases: the tables are read into
pandas, the relational declarations (primary keys, foreign keys, time columns) are
resolved, and :func:`rdlviz.data.manifest.write_dataset` validates, reindexes and writes
a RelBench manifest folder, which is loaded back with ``relbench.load_dataset``. So a
database of yours behaves exactly like ``rel-f1`` downstream.

Declarations come from the source where it has them -- SQLite's and DuckDB's declared
``PRIMARY KEY`` / ``FOREIGN KEY`` constraints, a CSV folder's ``schema.yaml`` -- and the
``pkeys`` / ``fkeys`` / ``time_cols`` arguments override them table by table. Time
columns are never inferred silently: they are declared, or guessed from DATE/TIMESTAMP
column types only when asked (``guess_time_cols=True``), with a warning that says what
was guessed.

Without ``out_dir`` the folder goes to ``$RDLVIZ_HOME/datasets/<name>-<fingerprint>``,
where the fingerprint hashes the table contents, the declarations, the tasks and the
options -- so loading the same data twice reuses the folder, and any change builds a new
one. Opt-in cleanups (``on_dangling``, ``on_missing_time``) are never silent: their
:class:`~rdlviz.data.validate.CleanupReport` is stored with the data, attached to the
returned dataset as ``dataset.cleanup_report`` and shown as a warning on every load.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import pandas as pd
import relbench
from relbench.base import Dataset
from relbench.manifest import TaskManifest

from rdlviz.data.cache import fingerprint
from rdlviz.data.load import cached_build
from rdlviz.data.manifest import read_cleanup_report, write_dataset
from rdlviz.data.tasks import entity_task, link_task
from rdlviz.errors import ConfigError, SchemaError, TaskError

__all__ = ["from_tables", "from_sqlite", "from_duckdb", "from_csv"]

# Bump when the conversion changes what it writes, so cached folders are rebuilt.
_BUILDER_VERSION = 1

Timestamp = Union[str, pd.Timestamp]
TaskSpec = Union[TaskManifest, Mapping[str, Any]]


# --------------------------------------------------------------------------- tasks


_ENTITY_KEYS = {"name", "task_type", "entity_table", "entity_col", "target_col", "sql",
                "timedelta", "time_col", "num_eval_timestamps", "description",
                "remove_columns"}
_LINK_KEYS = {"name", "task_type", "src_entity_table", "src_entity_col", "dst_entity_table",
              "dst_entity_col", "sql", "timedelta", "eval_k", "time_col",
              "num_eval_timestamps", "description"}


def _task_from_dict(spec: Mapping[str, Any]) -> TaskManifest:
    """A task declared as a dict (the ``schema.yaml`` form): the keyword arguments of
    :func:`~rdlviz.data.tasks.entity_task`, or of :func:`~rdlviz.data.tasks.link_task`
    when ``task_type`` is ``"recommendation"``, plus ``name``."""
    spec = dict(spec)
    name = spec.get("name")
    if not name:
        raise TaskError("a task declaration has no name", fix="add name: <task-name>")
    task_type = spec.get("task_type")
    if task_type is None:
        raise TaskError("has no task_type", task=name,
                        fix="add task_type: binary_classification, regression, "
                        "multiclass_classification or recommendation")
    allowed = _LINK_KEYS if task_type == "recommendation" else _ENTITY_KEYS
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise TaskError(f"unknown keys {unknown} for a {task_type} task",
                        task=name, fix=f"use only {sorted(allowed)}")
    if spec.get("timedelta") is not None:
        spec["timedelta"] = str(spec["timedelta"])
    required = ({"src_entity_table", "src_entity_col", "dst_entity_table", "dst_entity_col",
                 "eval_k"} if task_type == "recommendation"
                else {"entity_table", "entity_col", "target_col"}) | {"sql", "timedelta"}
    missing = sorted(k for k in required if spec.get(k) is None)
    if missing:
        raise TaskError(f"is missing {missing}", task=name,
                        fix=f"declare {missing} (a {task_type} task needs {sorted(required)})")
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    if task_type == "recommendation":
        return link_task(name, **kwargs)
    return entity_task(name, **kwargs)


def _as_tasks(tasks: Union[Iterable[TaskSpec], Mapping[str, Mapping[str, Any]]]) -> List[TaskManifest]:
    if isinstance(tasks, (TaskManifest, str)):
        raise ConfigError("tasks must be a list of tasks (or a {name: spec} mapping), "
                          f"got a single {type(tasks).__name__}")
    if isinstance(tasks, Mapping):
        tasks = [{"name": n, **dict(spec or {})} for n, spec in tasks.items()]
    out = []
    for tm in tasks:
        if isinstance(tm, TaskManifest):
            out.append(tm)
        elif isinstance(tm, Mapping):
            out.append(_task_from_dict(tm))
        else:
            raise ConfigError(f"a task must be a TaskManifest (rdlviz.entity_task / "
                              f"rdlviz.link_task) or a dict, got {type(tm).__name__}")
    return out


# --------------------------------------------------------------------------- pandas


def _frame_digest(df: pd.DataFrame) -> str:
    h = hashlib.sha1()
    h.update(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode())
    try:
        values = pd.util.hash_pandas_object(df, index=False).to_numpy()
    except TypeError:  # unhashable cells (lists): hash their text instead
        values = pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy()
    h.update(values.tobytes())
    return h.hexdigest()


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name).strip("-.") or "custom"


def from_tables(
    tables: Mapping[str, pd.DataFrame],
    *,
    pkeys: Optional[Mapping[str, Optional[str]]] = None,
    fkeys: Optional[Mapping[str, Mapping[str, str]]] = None,
    time_cols: Optional[Mapping[str, Optional[str]]] = None,
    val_timestamp: Timestamp,
    test_timestamp: Timestamp,
    tasks: Union[Iterable[TaskSpec], Mapping[str, Mapping[str, Any]]] = (),
    name: str = "custom",
    description: Optional[str] = None,
    out_dir: Optional[Union[str, Path]] = None,
    overwrite: bool = False,
    on_dangling: str = "error",
    on_missing_time: str = "error",
    keep_original_keys: bool = False,
) -> Dataset:
    """A RelBench dataset from pandas DataFrames.

    Args:
        tables: ``{table: DataFrame}``, one row per entity or event.
        pkeys: ``{table: primary-key column}``; tables left out have no primary key.
        fkeys: ``{table: {column: referenced table}}`` -- each reference is to the
            referenced table's primary key.
        time_cols: ``{table: time column}`` (anything ``pd.to_datetime`` parses; numbers
            are refused). Tables left out are static (no time).
        val_timestamp, test_timestamp: the split cutoffs; rows up to ``val_timestamp``
            are training input, labels after it are validation, after
            ``test_timestamp`` test.
        tasks: :func:`rdlviz.entity_task` / :func:`rdlviz.link_task` manifests, or dicts
            of their keyword arguments plus ``name`` (a list, or a ``{name: spec}``
            mapping). Each task's SQL is run and checked before anything is written.
        name: the dataset's name (also the cache folder's prefix).
        description: free text stored in the manifest.
        out_dir: write the dataset folder here instead of the cache. An existing dataset
            folder there is replaced only with ``overwrite=True``.
        on_dangling: foreign keys referencing no row: ``"error"`` (default), ``"null"``
            (set them missing) or ``"drop"`` (drop their rows, cascading).
        on_missing_time: rows with no time: ``"error"`` (default) or ``"drop"``.
        keep_original_keys: keep each table's source key as ``<pkey>_orig``.

    Returns:
        A RelBench ``Dataset`` (``get_db()``, ``load_task(name)``), with keys reindexed to
        ``0..n-1`` in time order, and ``dataset.cleanup_report`` (a
        :class:`~rdlviz.data.validate.CleanupReport`, empty unless a cleanup changed
        something -- in which case its text is also issued as a warning).

    Raises:
        SchemaError / TaskError: for any bad input, naming the table and column and
        saying how to fix it.

    Example:
        >>> ds = rdlviz.from_tables(
        ...     {"customers": customers, "orders": orders},
        ...     pkeys={"customers": "customer_id", "orders": "order_id"},
        ...     fkeys={"orders": {"customer_id": "customers"}},
        ...     time_cols={"orders": "ordered_at"},
        ...     val_timestamp="2021-01-01", test_timestamp="2021-07-01")
    """
    if not isinstance(tables, Mapping):
        raise SchemaError(f"tables must be a {{name: DataFrame}} mapping, got {type(tables).__name__}",
                          fix="pass a dict such as {'orders': orders_df}")
    pkeys, fkeys, time_cols = dict(pkeys or {}), dict(fkeys or {}), dict(time_cols or {})
    task_list = _as_tasks(tasks)
    val_ts, test_ts = pd.Timestamp(val_timestamp), pd.Timestamp(test_timestamp)
    options = dict(on_dangling=on_dangling, on_missing_time=on_missing_time,
                   keep_original_keys=keep_original_keys)

    def build(target: Path) -> None:
        write_dataset(name, tables, pkeys=pkeys, fkeys=fkeys, time_cols=time_cols,
                      val_timestamp=val_ts, test_timestamp=test_ts, out_dir=target,
                      tasks=task_list, description=description, **options)

    if out_dir is not None:
        path = Path(out_dir).expanduser()
        if path.exists():
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()  # an empty folder is fine to write into
            elif not (path / "manifest.yaml").exists():
                raise ConfigError(f"{path} exists and is not a dataset folder; "
                                  "pass a new folder (it will be created)")
            elif overwrite:
                shutil.rmtree(path)
            else:
                raise ConfigError(f"{path} already holds a dataset; pass overwrite=True to "
                                  "replace it, or another out_dir")
        build(path)
    else:
        key = fingerprint(
            _BUILDER_VERSION, name, description, str(val_ts), str(test_ts),
            {t: _frame_digest(df) if isinstance(df, pd.DataFrame) else repr(df)
             for t, df in tables.items()},
            list(tables), pkeys, fkeys, time_cols, [tm.to_dict() for tm in task_list], options,
        )
        path = cached_build(_safe_name(name), key, build)

    dataset = relbench.load_dataset(path)
    dataset.cleanup_report = read_cleanup_report(path)
    if dataset.cleanup_report:
        warnings.warn(f"'{name}' was cleaned as asked:\n{dataset.cleanup_report}",
                      UserWarning, stacklevel=2)
    return dataset


# --------------------------------------------------------------------------- SQL files


@dataclass
class _Introspected:
    """What a database file declares: per table, columns and their declared types,
    primary-key columns, and foreign keys ``(columns, referenced table, referenced
    columns)`` (an empty referenced list means the referenced table's primary key)."""

    types: Dict[str, Dict[str, str]] = field(default_factory=dict)
    pkeys: Dict[str, List[str]] = field(default_factory=dict)
    fkeys: Dict[str, List[Tuple[List[str], str, List[str]]]] = field(default_factory=dict)


def _is_date_type(declared: str) -> bool:
    t = (declared or "").upper()
    return "DATE" in t or "TIMESTAMP" in t


def _resolve(
    schema: _Introspected,
    source: str,
    pkeys: Optional[Mapping[str, Any]],
    fkeys: Optional[Mapping[str, Mapping[str, Optional[str]]]],
    time_cols: Optional[Mapping[str, Optional[str]]],
    guess_time_cols: bool,
) -> Tuple[Dict[str, Any], Dict[str, Dict[str, str]], Dict[str, Optional[str]]]:
    """Merge declared constraints with the caller's overrides (the overrides win)."""
    pkeys, fkeys, time_cols = dict(pkeys or {}), dict(fkeys or {}), dict(time_cols or {})
    tables = list(schema.types)
    for kind, decl in (("pkeys", pkeys), ("fkeys", fkeys), ("time_cols", time_cols)):
        for t in decl:
            if t not in schema.types:
                raise SchemaError(f"is named in {kind} but {source} has no such table "
                                  f"(loaded: {', '.join(tables)})", table=t,
                                  fix="fix the table name (or add it to tables=)")

    pk: Dict[str, Any] = {}
    for t in tables:
        if t in pkeys:
            pk[t] = pkeys[t]
            continue
        declared = schema.pkeys.get(t, [])
        if len(declared) > 1:
            raise SchemaError(
                f"{source} declares a composite PRIMARY KEY ({', '.join(declared)}); "
                "RelBench keys are single columns",
                table=t, column=", ".join(declared),
                fix=f"if no table references '{t}', pass pkeys={{'{t}': None}} (it becomes "
                "a plain event table); otherwise add a single-column surrogate key "
                "(e.g. INTEGER PRIMARY KEY) and point the foreign keys at it",
            )
        pk[t] = declared[0] if declared else None

    fk: Dict[str, Dict[str, str]] = {}
    for t in tables:
        over = dict(fkeys.get(t) or {})
        resolved: Dict[str, str] = {}
        for cols, target, target_cols in schema.fkeys.get(t, []):
            if any(c in over for c in cols):
                continue  # the caller re-declared (or removed) this reference
            if len(cols) > 1:
                raise SchemaError(
                    f"{source} declares a composite FOREIGN KEY ({', '.join(cols)}) -> "
                    f"{target}; RelBench references are single columns",
                    table=t, column=", ".join(cols),
                    fix=f"give '{target}' a single-column key and reference it, or pass "
                    f"fkeys={{'{t}': {{'{cols[0]}': None}}}} to ignore this reference",
                )
            col = cols[0]
            if target not in schema.types:
                raise SchemaError(
                    f"foreign key references table '{target}', which is not loaded "
                    f"(loaded: {', '.join(tables)})",
                    table=t, column=col,
                    fix=f"load '{target}' too, or pass fkeys={{'{t}': {{'{col}': None}}}}",
                )
            target_pk = pk.get(target)
            if target_cols and target_cols[0] != target_pk:
                raise SchemaError(
                    f"foreign key references '{target}.{target_cols[0]}', which is not "
                    f"the primary key of '{target}' ({target_pk})",
                    table=t, column=col,
                    fix=f"declare it with pkeys={{'{target}': '{target_cols[0]}'}} if that "
                    f"column is unique, or pass fkeys={{'{t}': {{'{col}': None}}}} to ignore it",
                )
            resolved[col] = target
        for col, target in over.items():
            if target is None:
                resolved.pop(col, None)
            else:
                resolved[col] = target
        if resolved:
            fk[t] = resolved

    candidates = {t: [c for c, ty in cols.items() if _is_date_type(ty)]
                  for t, cols in schema.types.items()}
    tc: Dict[str, Optional[str]] = {}
    guessed = []
    for t in tables:
        if t in time_cols:
            tc[t] = time_cols[t]
        elif guess_time_cols and candidates[t]:
            if len(candidates[t]) > 1:
                raise SchemaError(
                    "has several DATE/TIMESTAMP columns, so its time column is ambiguous",
                    table=t, column=", ".join(candidates[t]),
                    fix=f"declare it, e.g. time_cols={{'{t}': '{candidates[t][0]}'}}, or "
                    f"time_cols={{'{t}': None}} for a static table",
                )
            tc[t] = candidates[t][0]
            guessed.append(f"{t}.{candidates[t][0]}")
    if guessed:
        warnings.warn(
            "time columns guessed from declared DATE/TIMESTAMP types: " + ", ".join(guessed)
            + ". Pass time_cols={table: column or None} to change them.",
            UserWarning, stacklevel=3,
        )
    if not any(tc.values()):
        found = [f"{t}.{c}" for t, cs in candidates.items() for c in cs]
        raise SchemaError(
            "no time column is declared, so there is no temporal split",
            fix="pass time_cols={table: column} for the event tables"
            + (f" (DATE/TIMESTAMP columns: {', '.join(found)}), or guess_time_cols=True"
               if found else ""),
        )
    return pk, fk, tc


def _pick_tables(available: Sequence[str], wanted: Optional[Sequence[str]], source: str) -> List[str]:
    if not available:
        raise SchemaError(f"{source} has no tables", fix="check the file path")
    if wanted is None:
        return list(available)
    missing = [t for t in wanted if t not in available]
    if missing:
        raise SchemaError(f"is not a table of {source} (tables: {', '.join(available)})",
                          table=missing[0], fix="fix the name in tables=")
    return list(wanted)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select(table: str, pk: Any) -> str:
    # Read in primary-key order: tables without time keep their source order when
    # reindexed, so the order must not depend on the engine's scan order.
    order = f" ORDER BY {_quote(pk)}" if isinstance(pk, str) else ""
    return f"SELECT * FROM {_quote(table)}{order}"


def _load_options(options: Mapping[str, Any]) -> Dict[str, Any]:
    allowed = {"tasks", "name", "description", "out_dir",
               "overwrite", "on_dangling", "on_missing_time", "keep_original_keys"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"unknown arguments {unknown}; from_tables takes {sorted(allowed)}")
    return dict(options)


def from_sqlite(
    path: Union[str, Path],
    *,
    tables: Optional[Sequence[str]] = None,
    pkeys: Optional[Mapping[str, Optional[str]]] = None,
    fkeys: Optional[Mapping[str, Mapping[str, Optional[str]]]] = None,
    time_cols: Optional[Mapping[str, Optional[str]]] = None,
    guess_time_cols: bool = False,
    val_timestamp: Timestamp,
    test_timestamp: Timestamp,
    **options: Any,
) -> Dataset:
    """A RelBench dataset from a SQLite file, keys read from its declared constraints.

    Primary keys come from ``PRIMARY KEY`` declarations (``PRAGMA table_info``), foreign
    keys from ``FOREIGN KEY ... REFERENCES`` (``PRAGMA foreign_key_list``). Overrides win,
    table by table: ``pkeys={'t': 'col'}`` (or ``None`` for no key), ``fkeys={'t':
    {'col': 'target'}}`` (``{'col': None}`` removes a declared reference),
    ``time_cols={'t': 'col'}``. Columns declared ``DATE``/``DATETIME``/``TIMESTAMP`` are
    parsed to datetimes (SQLite stores them as text) and columns declared ``BOOLEAN`` as
    0/1 become booleans.

    Args:
        path: the ``.sqlite`` / ``.db`` file (opened read-only).
        tables: load only these tables (default: all).
        pkeys, fkeys, time_cols: overrides, as above.
        guess_time_cols: use each table's single DATE/TIMESTAMP column as its time
            column when ``time_cols`` does not say (a warning lists the guesses).
        val_timestamp, test_timestamp: the split cutoffs.
        **options: the remaining arguments of :func:`from_tables` (``tasks``, ``name``
            -- default the file's stem --, ``out_dir``, ``on_dangling``, ...).

    Raises:
        SchemaError: composite declared keys, references to non-key columns, and every
            check of :func:`from_tables`, naming table and column and the fix.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no SQLite file at {path}")
    options = _load_options(options)
    source = f"SQLite file {path.name}"
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        try:
            names = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        except sqlite3.DatabaseError as e:
            raise SchemaError(f"{path} is not a SQLite database ({e})",
                              fix="pass a SQLite file, or use from_duckdb / from_csv") from None
        names = _pick_tables(names, tables, source)
        schema = _Introspected()
        for t in names:
            info = con.execute(f"PRAGMA table_info({_quote(t)})").fetchall()
            # (cid, name, type, notnull, default, pk) -- pk is the 1-based position in the key
            schema.types[t] = {r[1]: r[2] for r in info}
            schema.pkeys[t] = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
            groups: Dict[int, list] = {}
            for r in con.execute(f"PRAGMA foreign_key_list({_quote(t)})").fetchall():
                # (id, seq, table, from, to, on_update, on_delete, match)
                groups.setdefault(r[0], []).append(r)
            schema.fkeys[t] = [
                ([r[3] for r in sorted(g, key=lambda r: r[1])], g[0][2],
                 [r[4] for r in sorted(g, key=lambda r: r[1]) if r[4] is not None])
                for g in groups.values()
            ]
        pk, fk, tc = _resolve(schema, source, pkeys, fkeys, time_cols, guess_time_cols)
        frames = {}
        for t in names:
            df = pd.read_sql_query(_select(t, pk[t]), con)
            for col, declared in schema.types[t].items():
                df[col] = _sqlite_column(df[col], declared, is_time=col == tc.get(t))
            frames[t] = df
    finally:
        con.close()
    options.setdefault("name", path.stem)
    return from_tables(frames, pkeys=pk, fkeys=fk, time_cols=tc, val_timestamp=val_timestamp,
                       test_timestamp=test_timestamp, **options)


def _sqlite_column(s: pd.Series, declared: str, is_time: bool) -> pd.Series:
    """Apply a column's declared type where SQLite's storage loses it (dates, booleans)."""
    declared = (declared or "").upper()
    values = s.dropna()
    if _is_date_type(declared) and not pd.api.types.is_datetime64_any_dtype(s):
        if is_time:
            return s  # validation parses it, and names any value it cannot parse
        if pd.api.types.is_string_dtype(values):
            parsed = pd.to_datetime(s, errors="coerce", format="ISO8601")
            if not (parsed.isna() & s.notna()).any():
                return parsed
        return s  # not all dates: keep the text rather than lose values
    if "BOOL" in declared and len(values) and values.isin([0, 1]).all():
        if len(values) == len(s):
            return s.astype(bool)
        return s.map(lambda v: None if pd.isna(v) else bool(v)).astype(object)
    return s


def from_duckdb(
    path: Union[str, Path],
    *,
    tables: Optional[Sequence[str]] = None,
    pkeys: Optional[Mapping[str, Optional[str]]] = None,
    fkeys: Optional[Mapping[str, Mapping[str, Optional[str]]]] = None,
    time_cols: Optional[Mapping[str, Optional[str]]] = None,
    guess_time_cols: bool = False,
    val_timestamp: Timestamp,
    test_timestamp: Timestamp,
    **options: Any,
) -> Dataset:
    """A RelBench dataset from a DuckDB file, keys read from its declared constraints.

    Tables are those of the file's default schema (``duckdb_tables()``); primary and
    foreign keys come from ``duckdb_constraints()``, column types from
    ``duckdb_columns()``. Overrides and arguments work as in :func:`from_sqlite`.
    DuckDB's nullable integer/boolean columns are stored as plain numpy dtypes (an
    integer column with missing values becomes ``float64``, as in pandas).

    Args:
        path: the ``.duckdb`` file (opened read-only).
        tables, pkeys, fkeys, time_cols, guess_time_cols, val_timestamp,
        test_timestamp, **options: as for :func:`from_sqlite`.
    """
    import duckdb

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no DuckDB file at {path}")
    options = _load_options(options)
    source = f"DuckDB file {path.name}"
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as e:
        raise SchemaError(f"{path} cannot be opened as a DuckDB database ({str(e).splitlines()[0]})",
                          fix="pass a DuckDB file, or use from_sqlite / from_csv") from None
    try:
        here = "database_name = current_database() AND schema_name = current_schema()"
        names = [r[0] for r in con.execute(
            f"SELECT table_name FROM duckdb_tables() WHERE {here} ORDER BY table_name").fetchall()]
        names = _pick_tables(names, tables, source)
        schema = _Introspected()
        for t in names:
            schema.types[t] = dict(con.execute(
                f"SELECT column_name, data_type FROM duckdb_columns() WHERE {here} "
                "AND table_name = ? ORDER BY column_index", [t]).fetchall())
            schema.pkeys[t], schema.fkeys[t] = [], []
        rows = con.execute(
            "SELECT table_name, constraint_type, constraint_column_names, referenced_table, "
            f"referenced_column_names FROM duckdb_constraints() WHERE {here} "
            "AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') ORDER BY constraint_index"
        ).fetchall()
        for t, kind, cols, target, target_cols in rows:
            if t not in schema.types:
                continue
            if kind == "PRIMARY KEY":
                schema.pkeys[t] = list(cols)
            else:
                schema.fkeys[t].append((list(cols), target, list(target_cols or [])))
        pk, fk, tc = _resolve(schema, source, pkeys, fkeys, time_cols, guess_time_cols)
        frames = {t: con.execute(_select(t, pk[t])).df() for t in names}
    finally:
        con.close()
    options.setdefault("name", path.stem)
    return from_tables(frames, pkeys=pk, fkeys=fk, time_cols=tc, val_timestamp=val_timestamp,
                       test_timestamp=test_timestamp, **options)


# --------------------------------------------------------------------------- CSV folder


_SCHEMA_KEYS = {"name", "description", "val_timestamp", "test_timestamp", "tables", "tasks"}
_TABLE_KEYS = {"pkey", "fkeys", "time_col", "read_csv"}


def from_csv(
    folder: Union[str, Path],
    *,
    schema: Union[str, Path, None] = None,
    val_timestamp: Optional[Timestamp] = None,
    test_timestamp: Optional[Timestamp] = None,
    **options: Any,
) -> Dataset:
    """A RelBench dataset from a folder of CSV files and a ``schema.yaml``.

    Every ``<table>.csv`` in the folder is a table. The schema file (default
    ``<folder>/schema.yaml``) declares the keys, times, cutoffs and tasks::

        name: shop                       # optional; default: the folder's name
        description: A small web shop.   # optional
        val_timestamp: 2021-01-01
        test_timestamp: 2021-07-01
        tables:                          # tables not listed: no keys, no time
          customers:
            pkey: customer_id
          products:
            pkey: product_id
            read_csv: {sep: ";"}         # optional keyword arguments of pandas.read_csv
          orders:
            pkey: order_id
            time_col: ordered_at
            fkeys: {customer_id: customers, product_id: products}
        tasks:                           # optional; {name: spec}
          customer-order:
            task_type: binary_classification
            entity_table: customers
            entity_col: customer_id
            target_col: will_order
            timedelta: 30 days
            sql: |
              SELECT t.timestamp, c.customer_id, ... AS will_order
              FROM timestamps t, customers c ...

    A task spec takes the keyword arguments of :func:`rdlviz.entity_task`, or of
    :func:`rdlviz.link_task` when ``task_type: recommendation``. Its SQL sees
    ``timestamps(timestamp)``, every table by name, and ``{timedelta}``.

    Args:
        folder: the folder holding the CSV files.
        schema: the schema file, if not ``<folder>/schema.yaml``.
        val_timestamp, test_timestamp: override the schema's cutoffs.
        **options: the remaining arguments of :func:`from_tables` (``out_dir``,
            ``on_dangling``, ``on_missing_time``, ``name``, ...); they override the
            schema's.
    """
    import yaml

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder at {folder}")
    schema_path = Path(schema).expanduser() if schema is not None else folder / "schema.yaml"
    if not schema_path.is_file():
        raise ConfigError(f"no schema file at {schema_path}; write one (see "
                          "help(rdlviz.from_csv) for the format) or pass schema=")
    try:
        spec = yaml.safe_load(schema_path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{schema_path} is not valid YAML: {e}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{schema_path} must hold a mapping (name:, tables:, tasks:, ...)")
    unknown = sorted(set(spec) - _SCHEMA_KEYS)
    if unknown:
        raise ConfigError(f"{schema_path.name}: unknown keys {unknown}; the keys are "
                          f"{sorted(_SCHEMA_KEYS)}")
    options = _load_options(options)

    files = {p.stem: p for p in sorted(folder.glob("*.csv"))}
    if not files:
        raise SchemaError(f"{folder} holds no .csv files", fix="put one <table>.csv per table there")
    decl = spec.get("tables") or {}
    if not isinstance(decl, dict):
        raise ConfigError(f"{schema_path.name}: 'tables' must map table names to "
                          "{pkey:, fkeys:, time_col:}")
    pkeys: Dict[str, Any] = {}
    fkeys: Dict[str, Dict[str, str]] = {}
    time_cols: Dict[str, Optional[str]] = {}
    read_opts: Dict[str, Dict[str, Any]] = {}
    for t, tspec in decl.items():
        tspec = tspec or {}
        if t not in files:
            raise SchemaError(f"is declared in {schema_path.name} but {folder} has no {t}.csv",
                              table=t, fix=f"add {t}.csv, or remove '{t}' from tables:")
        if not isinstance(tspec, dict) or set(tspec) - _TABLE_KEYS:
            bad = sorted(set(tspec) - _TABLE_KEYS) if isinstance(tspec, dict) else tspec
            raise SchemaError(f"unknown table settings {bad} in {schema_path.name}", table=t,
                              fix=f"use only {sorted(_TABLE_KEYS)}")
        if tspec.get("pkey") is not None:
            pkeys[t] = tspec["pkey"]
        if tspec.get("fkeys"):
            fkeys[t] = dict(tspec["fkeys"])
        if tspec.get("time_col") is not None:
            time_cols[t] = tspec["time_col"]
        read_opts[t] = dict(tspec.get("read_csv") or {})

    frames = {}
    for t, p in files.items():
        try:
            frames[t] = pd.read_csv(p, **read_opts.get(t, {}))
        except pd.errors.EmptyDataError:
            raise SchemaError(f"{p.name} is empty (not even a header)", table=t,
                              fix="write the header and rows, or remove the file") from None
        except (pd.errors.ParserError, UnicodeDecodeError, TypeError, ValueError) as e:
            raise SchemaError(f"{p.name} cannot be read: {str(e).splitlines()[0]}", table=t,
                              fix="fix the file, or pass pandas.read_csv options under "
                              f"tables: {t}: read_csv:") from None

    val_timestamp = val_timestamp if val_timestamp is not None else spec.get("val_timestamp")
    test_timestamp = test_timestamp if test_timestamp is not None else spec.get("test_timestamp")
    if val_timestamp is None or test_timestamp is None:
        raise ConfigError(f"{schema_path.name} must set val_timestamp and test_timestamp "
                          "(or pass them to from_csv)")
    options.setdefault("name", spec.get("name") or folder.name)
    options.setdefault("description", spec.get("description"))
    options.setdefault("tasks", spec.get("tasks") or {})
    return from_tables(frames, pkeys=pkeys, fkeys=fkeys, time_cols=time_cols,
                       val_timestamp=val_timestamp, test_timestamp=test_timestamp, **options)
