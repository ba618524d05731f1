"""Declaring predictive tasks as SQL, the way RelBench forecast tasks are declared.

A task is a :class:`relbench.manifest.TaskManifest` of ``kind="forecast"``: a duckdb query
that sees a ``timestamps(timestamp)`` relation (the seed times of a split), every table
of the database as a view, and ``{timedelta}`` replaced by the label window. For each
seed time t the query must compute the label from rows in ``(t, t + timedelta]`` only;
an activity filter on rows before t (who is an entity at t) is fine.

:func:`check_task` runs the query once on the real tables and turns duckdb's errors into
:class:`~rdlviz.errors.TaskError` messages that name the task, the table or column, and
the fix.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional

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


def check_task(
    tm: TaskManifest,
    tables: Mapping[str, pd.DataFrame],
    timestamp: pd.Timestamp,
) -> pd.DataFrame:
    """Run ``tm``'s SQL at one seed time and check its output.

    Raises :class:`TaskError` when the SQL references an unknown table or column, fails
    to run, or does not produce the declared columns. Returns the label frame.
    """
    import duckdb

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
    con = duckdb.connect()
    try:
        con.register("timestamps", pd.DataFrame({"timestamp": [pd.Timestamp(timestamp)]}))
        for name, df in tables.items():
            con.register(name, df)
        try:
            out = con.sql(tm.sql.replace("{timedelta}", str(pd.Timedelta(tm.timedelta)))).df()
        except duckdb.Error as e:
            msg = str(e).splitlines()[0]
            m = re.search(r"Table with name (\w+) does not exist", msg)
            if m:
                raise TaskError(f"SQL references unknown table '{m.group(1)}' "
                                f"(tables: {', '.join(tables)})", task=tm.name,
                                table=m.group(1), fix="fix the table name in the SQL") from None
            m = re.search(r'column "?(\w+)"? not found', msg, flags=re.I) or re.search(
                r'Referenced column "(\w+)" not found', msg)
            if m:
                raise TaskError(f"SQL references unknown column '{m.group(1)}': {msg}",
                                task=tm.name, column=m.group(1),
                                fix="fix the column name in the SQL") from None
            raise TaskError(f"SQL failed: {msg}", task=tm.name,
                            fix="run the query in duckdb against the tables to debug it") from None
    finally:
        con.close()
    expected = _expected_columns(tm)
    missing = [c for c in expected if c not in out.columns]
    if missing:
        raise TaskError(
            f"SQL outputs columns {list(out.columns)} but must output {expected} "
            f"(missing {missing})", task=tm.name,
            fix="alias the SELECT's outputs to the declared names "
            f"(e.g. ... AS {missing[0]})",
        )
    return out
