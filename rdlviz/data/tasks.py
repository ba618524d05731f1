"""Declaring predictive tasks as SQL, the way RelBench forecast tasks are declared.

A task is a :class:`relbench.manifest.TaskManifest` of ``kind="forecast"``: a duckdb query
that sees a ``timestamps(timestamp)`` relation (the seed times of a split), every table
of the database as a view, and ``{timedelta}`` replaced by the label window. For each
seed time t the query must compute the label from rows in ``(t, t + timedelta]`` only;
an activity filter on rows before t (who is an entity at t) is fine.

:func:`check_task` runs the query on the real tables before anything is written, so a
bad declaration fails at once and in words rather than deep inside RelBench later: duckdb's
errors become :class:`~rdlviz.errors.TaskError` messages that name the task, the table or
column, and the fix; the output's columns, keys and labels are checked; the labels are
recomputed without the rows after the window to prove the SQL does not read the future;
and the train/val/test windows RelBench will build are checked against the data.
"""

from __future__ import annotations

import re
from typing import Dict, Mapping, Optional

import numpy as np
import pandas as pd
from relbench.manifest import TaskManifest

from rdlviz.errors import TaskError

__all__ = ["entity_task", "link_task", "check_task"]


def entity_task(
    name: str,
    *,
    entity_table: str,
    entity_col: str,
    target_col: str,
    sql: str,
    timedelta: str,
    task_type: str,
    time_col: str = "timestamp",
    num_eval_timestamps: int = 1,
    description: Optional[str] = None,
    remove_columns: Optional[list] = None,
) -> TaskManifest:
    """A forecast entity task (binary classification, regression, multiclass).

    ``sql`` must output ``time_col``, ``entity_col`` and ``target_col``.
    """
    tm = TaskManifest(
        name=name, kind="forecast", task_type=task_type, description=description,
        entity_table=entity_table, entity_col=entity_col, target_col=target_col,
        time_col=time_col, timedelta=timedelta, num_eval_timestamps=num_eval_timestamps,
        sql=sql, remove_columns=list(remove_columns or []),
    )
    _validate_manifest(tm)
    return tm


def link_task(
    name: str,
    *,
    src_entity_table: str,
    src_entity_col: str,
    dst_entity_table: str,
    dst_entity_col: str,
    sql: str,
    timedelta: str,
    eval_k: int,
    time_col: str = "timestamp",
    num_eval_timestamps: int = 1,
    description: Optional[str] = None,
) -> TaskManifest:
    """A forecast link (recommendation) task, scored with MAP@``eval_k``.

    ``sql`` must output ``time_col``, ``src_entity_col`` and ``dst_entity_col`` (a list of
    destination keys per source row, e.g. ``LIST(DISTINCT ...)``).
    """
    tm = TaskManifest(
        name=name, kind="forecast", task_type="recommendation", description=description,
        src_entity_table=src_entity_table, src_entity_col=src_entity_col,
        dst_entity_table=dst_entity_table, dst_entity_col=dst_entity_col,
        time_col=time_col, timedelta=timedelta, eval_k=eval_k,
        num_eval_timestamps=num_eval_timestamps, sql=sql,
    )
    _validate_manifest(tm)
    return tm


def _validate_manifest(tm: TaskManifest) -> None:
    try:
        tm.validate()
    except ValueError as e:
        raise TaskError(str(e), task=tm.name) from None
    try:
        pd.Timedelta(tm.timedelta)
    except (ValueError, TypeError):
        raise TaskError(
            f"timedelta {tm.timedelta!r} is not a duration",
            task=tm.name, fix="use a pandas duration such as '30 days' or '365 days'",
        ) from None


def _expected_columns(tm: TaskManifest) -> list:
    if tm.task_type == "recommendation":
        return [tm.time_col, tm.src_entity_col, tm.dst_entity_col]
    return [tm.time_col, tm.entity_col, tm.target_col]


def _tables_in_sql(sql: str, tables: Mapping[str, pd.DataFrame]) -> Dict[str, str]:
    """``{alias or name: table}`` for every database table after FROM/JOIN in ``sql``."""
    found: Dict[str, str] = {}
    for m in re.finditer(
        r'(?:\bFROM|\bJOIN|,)\s*"?(\w+)"?(?:\s+(?:AS\s+)?"?(\w+)"?)?', sql, flags=re.I
    ):
        table, alias = m.group(1), m.group(2)
        if table in tables:
            found[table] = table
            if alias and alias.upper() not in _SQL_WORDS:
                found[alias] = table
    return found


_SQL_WORDS = {
    "WHERE", "ON", "USING", "JOIN", "LEFT", "RIGHT", "INNER", "OUTER", "FULL", "CROSS",
    "GROUP", "ORDER", "HAVING", "LIMIT", "UNION", "NATURAL", "WINDOW", "QUALIFY", "AS",
    "SEMI", "ANTI", "POSITIONAL", "ASOF", "LATERAL", "FROM", "SELECT", "AND", "OR",
}


def _run_sql(tm: TaskManifest, tables: Mapping[str, pd.DataFrame], timestamp) -> pd.DataFrame:
    """Run ``tm.sql`` the way ``relbench.load`` does, with duckdb errors as TaskErrors."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("timestamps", pd.DataFrame({"timestamp": [pd.Timestamp(timestamp)]}))
        for name, df in tables.items():
            con.register(name, df)
        try:
            return con.sql(tm.sql.replace("{timedelta}", str(pd.Timedelta(tm.timedelta)))).df()
        except duckdb.Error as e:
            _raise_sql_error(tm, tables, str(e))
    finally:
        con.close()


def _raise_sql_error(tm: TaskManifest, tables: Mapping[str, pd.DataFrame], text: str) -> None:
    msg = " ".join(text.split("\n")[:2])
    m = re.search(r"Table with name (\w+) does not exist", msg)
    if m:
        raise TaskError(f"SQL references unknown table '{m.group(1)}' "
                        f"(tables: {', '.join(tables)})", task=tm.name,
                        table=m.group(1), fix="fix the table name in the SQL") from None
    used = _tables_in_sql(tm.sql, tables)
    # "o.price" where o has no such column: duckdb names the alias, we name the table.
    m = re.search(r'(?:Table|Values list) "(\w+)" does not have a column named "(\w+)"', msg)
    if m:
        alias, col = m.groups()
        table = used.get(alias, alias)
        have = list(tables[table].columns) if table in tables else []
        raise TaskError(f"SQL references unknown column '{col}' of '{table}'"
                        + (f" (columns: {have})" if have else ""),
                        task=tm.name, table=table, column=col,
                        fix="fix the column name in the SQL") from None
    m = re.search(r'Referenced column "(\w+)" not found', msg) or re.search(
        r'column "?(\w+)"? not found', msg, flags=re.I)
    if m:
        col = m.group(1)
        # An unqualified name: it belongs to none of the tables the query reads.
        read = sorted(set(used.values())) or None
        raise TaskError(f"SQL references unknown column '{col}': {msg}",
                        task=tm.name, table=", ".join(read) if read else None, column=col,
                        fix="fix the column name in the SQL (qualify it, e.g. o.price, to "
                        "make the error name its table)") from None
    raise TaskError(f"SQL failed: {msg}", task=tm.name,
                    fix="run the query in duckdb against the tables to debug it") from None


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    # Row order and the order inside list cells (LIST(DISTINCT ...)) are not meaningful.
    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].map(
                lambda v: tuple(sorted(v)) if isinstance(v, (list, np.ndarray, tuple)) else v)
    key = df.astype(str)  # sortable whatever the cells hold (None next to tuples)
    return df.loc[key.sort_values(list(key.columns), kind="stable").index].reset_index(drop=True)


def _same_labels(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        # Not exact: duckdb may sum the same floats in another order.
        pd.testing.assert_frame_equal(_canonical(a), _canonical(b), check_dtype=False,
                                      check_exact=False, rtol=1e-9, atol=1e-12)
    except AssertionError:
        return False
    return True


def _check_output(tm: TaskManifest, out: pd.DataFrame, tables, timestamp) -> None:
    expected = _expected_columns(tm)
    missing = [c for c in expected if c not in out.columns]
    if missing:
        raise TaskError(
            f"SQL outputs columns {list(out.columns)} but must output {expected} "
            f"(missing {missing})", task=tm.name, column=missing[0],
            fix="alias the SELECT's outputs to the declared names "
            f"(e.g. ... AS {missing[0]})",
        )
    if len(out) == 0:
        return
    t = pd.to_datetime(out[tm.time_col], errors="coerce")
    if not (t == pd.Timestamp(timestamp)).all():
        raise TaskError(
            f"output column '{tm.time_col}' must be the seed time of each row, but holds "
            f"e.g. {out[tm.time_col].iloc[0]!r} for seed time {pd.Timestamp(timestamp)}",
            task=tm.name, column=tm.time_col,
            fix=f"select timestamps.timestamp AS {tm.time_col}",
        )
    is_link = tm.task_type == "recommendation"
    keys = ([(tm.src_entity_col, tm.src_entity_table)] if is_link
            else [(tm.entity_col, tm.entity_table)])
    for col, table in keys:
        s = out[col]
        if s.isna().any() or not pd.api.types.is_integer_dtype(s):
            raise TaskError(
                f"output column '{col}' must hold row keys of '{table}' (integers, none "
                f"missing), got {s.dtype} with {int(s.isna().sum())} missing",
                task=tm.name, table=table, column=col,
                fix=f"select the primary key of '{table}' and filter out missing entities",
            )
    if is_link:
        dst = out[tm.dst_entity_col]
        if not dst.map(lambda v: isinstance(v, (list, np.ndarray, tuple))).all():
            raise TaskError(
                f"output column '{tm.dst_entity_col}' must hold a list of "
                f"'{tm.dst_entity_table}' keys per row",
                task=tm.name, table=tm.dst_entity_table, column=tm.dst_entity_col,
                fix=f"aggregate it, e.g. LIST(DISTINCT ...) AS {tm.dst_entity_col}",
            )
        return
    y = out[tm.target_col]
    if y.isna().any():
        raise TaskError(
            f"target column '{tm.target_col}' has {int(y.isna().sum())} missing labels",
            task=tm.name, column=tm.target_col,
            fix="COALESCE the label (e.g. COALESCE(..., 0)) or filter those entities out",
        )
    if tm.task_type == "binary_classification" and not y.isin([0, 1]).all():
        raise TaskError(
            f"binary target '{tm.target_col}' must be 0/1, got values "
            f"{sorted(y.unique().tolist())[:5]}",
            task=tm.name, column=tm.target_col,
            fix="cast the condition, e.g. CAST(COUNT(*) > 0 AS INTEGER)",
        )
    if tm.task_type == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise TaskError(f"regression target '{tm.target_col}' must be numeric, got {y.dtype}",
                        task=tm.name, column=tm.target_col, fix="cast it to DOUBLE in the SQL")


def _check_timeline(tm, tables, time_cols, val_ts, test_ts) -> None:
    """The split windows RelBench will build must exist (else it fails at load time)."""
    delta = pd.Timedelta(tm.timedelta)
    if test_ts - val_ts < delta:
        raise TaskError(
            f"timedelta {tm.timedelta} is longer than the gap between val_timestamp "
            f"({val_ts.date()}) and test_timestamp ({test_ts.date()})",
            task=tm.name, fix="shorten the timedelta or move the cutoffs apart",
        )
    times = [tables[t][c] for t, c in time_cols.items() if c is not None and t in tables]
    if not times:
        return
    t_all = pd.concat(times, ignore_index=True)
    t_input = t_all[t_all <= test_ts]  # train/val labels only see rows up to the test cutoff
    n_train = len(pd.date_range(val_ts - delta, t_input.min(), freq=-delta))
    if n_train < 3:
        raise TaskError(
            f"only {n_train} training windows of {tm.timedelta} fit between the first row "
            f"({t_input.min()}) and val_timestamp ({val_ts.date()}); RelBench needs at least 3",
            task=tm.name, fix="shorten the timedelta or move val_timestamp later",
        )
    if val_ts + delta > t_input.max():
        raise TaskError(
            f"the validation window ends at {val_ts + delta}, after the last row before the "
            f"test cutoff ({t_input.max()})",
            task=tm.name, fix="move val_timestamp earlier or shorten the timedelta",
        )
    if test_ts + delta > t_all.max():
        raise TaskError(
            f"the test window ends at {test_ts + delta}, after the last row of the database "
            f"({t_all.max()}), so test labels would be incomplete",
            task=tm.name, fix=f"move test_timestamp to {t_all.max() - delta} or earlier, "
            "or shorten the timedelta",
        )


def check_task(
    tm: TaskManifest,
    tables: Mapping[str, pd.DataFrame],
    timestamp: pd.Timestamp,
    *,
    time_cols: Optional[Mapping[str, Optional[str]]] = None,
    test_timestamp: Optional[pd.Timestamp] = None,
) -> pd.DataFrame:
    """Run ``tm``'s SQL at one seed time ``timestamp`` and check it.

    Always checked: the declared tables exist; ``remove_columns`` name real columns; the
    SQL runs (unknown tables/columns are named in the error); it outputs the declared
    columns; the time column is the seed time; entity keys are non-missing integers;
    labels are non-missing (0/1 for binary, numeric for regression, lists for links).

    With ``time_cols`` (``{table: time column}``) also checked: the labels stay inside
    the window -- they are recomputed with every row after ``timestamp + timedelta``
    removed and must not change (a label that reads later rows is a silent leak of the
    future into the training labels); and, with ``test_timestamp`` as well, that the
    train / val / test windows RelBench will build fit the data (``timestamp`` is then
    the val cutoff).

    Raises:
        TaskError: naming the task, the table and column, and the fix.

    Returns:
        The label frame at ``timestamp``.
    """
    _validate_manifest(tm)
    tables_needed = (
        [tm.src_entity_table, tm.dst_entity_table]
        if tm.task_type == "recommendation" else [tm.entity_table]
    )
    for t in tables_needed:
        if t not in tables:
            raise TaskError(f"names table '{t}', which is not in the database "
                            f"({', '.join(tables)})", task=tm.name, table=t,
                            fix="fix the table name in the task declaration")
    for pair in tm.remove_columns:
        if len(pair) != 2 or pair[0] not in tables or pair[1] not in tables[pair[0]].columns:
            raise TaskError(f"remove_columns names {list(pair)}, which is not a column of the "
                            "database", task=tm.name, table=str(pair[0]),
                            column=str(pair[-1]), fix="list [table, column] pairs that exist")
    timestamp = pd.Timestamp(timestamp)
    out = _run_sql(tm, tables, timestamp)
    _check_output(tm, out, tables, timestamp)
    if time_cols is None:
        return out

    end = timestamp + pd.Timedelta(tm.timedelta)
    cut = {
        t: (df[df[time_cols[t]] <= end] if time_cols.get(t) else df) for t, df in tables.items()
    }
    if any(len(cut[t]) < len(tables[t]) for t in tables):
        inside = _run_sql(tm, cut, timestamp)
        if not _same_labels(out, inside):
            raise TaskError(
                f"its labels at {timestamp} change when the rows after {end} (the end of "
                f"the label window) are removed: the SQL reads beyond the window "
                f"(t, t + {tm.timedelta}]",
                task=tm.name,
                fix="bound every time filter on both sides, e.g. o.time > t.timestamp AND "
                "o.time <= t.timestamp + INTERVAL '{timedelta}'",
            )
    if test_timestamp is not None:
        _check_timeline(tm, tables, time_cols, timestamp, pd.Timestamp(test_timestamp))
    return out
