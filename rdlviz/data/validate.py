"""Checks that a set of tables satisfies the relational contract before it is written.

A real database is messy: duplicate or missing keys, dangling foreign keys, composite
keys, unparseable dates, empty tables, mixed-type columns. Each problem raises a
:class:`~rdlviz.errors.SchemaError` naming the table and column and saying what to do.
Where a cleanup exists (nulling or dropping rows with dangling foreign keys, dropping
rows with a missing time) it is opt-in, and what it did is returned in a
:class:`CleanupReport` -- nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from rdlviz.errors import SchemaError

__all__ = ["validate_tables", "CleanupReport", "ON_DANGLING"]

#: What to do with a foreign key that points at no row: raise, set it missing, or drop
#: the row that holds it.
ON_DANGLING = ("error", "null", "drop")


@dataclass
class CleanupReport:
    """What an opt-in cleanup changed, per ``(table, column)``."""

    nulled: Dict[tuple, int] = field(default_factory=dict)
    dropped: Dict[tuple, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.nulled or self.dropped)

    def __str__(self) -> str:
        lines = [f"{t}.{c}: {n} dangling keys set missing" for (t, c), n in self.nulled.items()]
        lines += [f"{t}.{c}: {n} rows dropped" for (t, c), n in self.dropped.items()]
        return "\n".join(lines) or "no cleanup needed"


def _check_identifier(kind: str, name: str, table: Optional[str] = None) -> None:
    if not isinstance(name, str) or not name:
        raise SchemaError(f"{kind} name {name!r} must be a non-empty string", table=table)


def _check_mixed_types(name: str, df: pd.DataFrame) -> None:
    # An object column holding e.g. both numbers and strings cannot be given one
    # semantic type; torch_frame would mis-encode it silently.
    for col in df.columns:
        s = df[col]
        if s.dtype != object:
            continue
        kinds = {type(v).__name__ for v in s.dropna().head(10_000).to_numpy()}
        kinds -= {"str"} if kinds <= {"str"} else set()
        numeric = {"int", "float", "int64", "float64", "bool", "bool_"}
        if "str" in kinds and kinds & numeric:
            raise SchemaError(
                f"holds values of mixed types ({', '.join(sorted(kinds))})",
                table=name,
                column=col,
                fix="convert the column to one type first, e.g. "
                f"df['{col}'] = df['{col}'].astype(str) or pd.to_numeric(df['{col}'], errors='coerce')",
            )


def _parse_time(name: str, col: str, s: pd.Series, on_missing_time: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s
    else:
        out = pd.to_datetime(s, errors="coerce")
        bad = out.isna() & s.notna()
        if bad.any():
            examples = ", ".join(repr(v) for v in s[bad].head(3).tolist())
            raise SchemaError(
                f"{int(bad.sum())} values cannot be parsed as dates (e.g. {examples})",
                table=name,
                column=col,
                fix="fix or remove those values, or pass the column already parsed "
                "with pd.to_datetime(..., format=...)",
            )
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def validate_tables(
    tables: Mapping[str, pd.DataFrame],
    pkeys: Mapping[str, Optional[str]],
    fkeys: Mapping[str, Mapping[str, str]],
    time_cols: Mapping[str, Optional[str]],
    *,
    on_dangling: str = "error",
    on_missing_time: str = "error",
) -> tuple[Dict[str, pd.DataFrame], CleanupReport]:
    """Validate (and, where asked, clean) a set of tables.

    Args:
        tables: ``{table: DataFrame}``.
        pkeys: ``{table: primary-key column or None}``. A list/tuple is a composite key
            and is rejected with a fix (add a surrogate key).
        fkeys: ``{table: {fkey column: referenced table}}``.
        time_cols: ``{table: time column or None}``.
        on_dangling: ``"error"`` (default), ``"null"`` or ``"drop"`` for foreign keys that
            reference no row.
        on_missing_time: ``"error"`` (default) or ``"drop"`` for rows whose time is
            missing.

    Returns:
        The validated tables (copies; time columns parsed to ``datetime64``) and a
        :class:`CleanupReport` of what an opt-in cleanup changed.
    """
    if on_dangling not in ON_DANGLING:
        raise SchemaError(f"on_dangling must be one of {ON_DANGLING}, got {on_dangling!r}")
    if on_missing_time not in ("error", "drop"):
        raise SchemaError(f"on_missing_time must be 'error' or 'drop', got {on_missing_time!r}")
    if not tables:
        raise SchemaError("the database has no tables", fix="pass at least one table")

    report = CleanupReport()
    out: Dict[str, pd.DataFrame] = {}
    for name, df in tables.items():
        _check_identifier("table", name)
        if not isinstance(df, pd.DataFrame):
            raise SchemaError(f"expected a pandas DataFrame, got {type(df).__name__}", table=name)
        if len(df) == 0:
            raise SchemaError(
                "is empty", table=name, fix="remove the table, or load its rows"
            )
        if df.columns.duplicated().any():
            dup = df.columns[df.columns.duplicated()].tolist()
            raise SchemaError(f"has duplicate column names {dup}", table=name,
                              fix="rename the columns so each name is unique")
        out[name] = df.copy()

    for name in list(pkeys) + list(fkeys) + list(time_cols):
        if name not in out:
            raise SchemaError(
                "is named in the key/time declarations but is not among the tables "
                f"({', '.join(out)})",
                table=name,
                fix="fix the table name, or pass that table",
            )

    # Primary keys: single column, present, unique, non-missing.
    for name, df in out.items():
        pk = pkeys.get(name)
        if pk is None:
            continue
        if isinstance(pk, (list, tuple)):
            raise SchemaError(
                f"has a composite primary key {list(pk)}; rdlviz (like RelBench) needs "
                "a single-column key",
                table=name,
                fix="add a surrogate key, e.g. df['id'] = range(len(df)), declare it as "
                "the primary key, and point foreign keys at it",
            )
        if pk not in df.columns:
            raise SchemaError(f"primary key column not found (columns: {list(df.columns)})",
                              table=name, column=pk, fix="fix the declared key name")
        s = df[pk]
        if s.isna().any():
            raise SchemaError(f"{int(s.isna().sum())} rows have a missing primary key",
                              table=name, column=pk,
                              fix="give those rows a key, or drop them before loading")
        dup = s.duplicated(keep=False)
        if dup.any():
            examples = s[dup].drop_duplicates().head(3).tolist()
            raise SchemaError(
                f"{int(s.duplicated().sum())} duplicate primary key values (e.g. {examples})",
                table=name, column=pk,
                fix="deduplicate the rows, or declare a different (unique) key",
            )

    # Time columns: present, parseable, non-missing.
    for name, tc in time_cols.items():
        if tc is None:
            continue
        df = out[name]
        if tc not in df.columns:
            raise SchemaError(f"time column not found (columns: {list(df.columns)})",
                              table=name, column=tc, fix="fix the declared time column name")
        parsed = _parse_time(name, tc, df[tc], on_missing_time)
        missing = parsed.isna()
        if missing.any():
            if on_missing_time == "drop":
                report.dropped[(name, tc)] = int(missing.sum())
                df = df.loc[~missing.to_numpy()].copy()
                parsed = parsed[~missing]
            else:
                raise SchemaError(
                    f"{int(missing.sum())} rows have a missing time",
                    table=name, column=tc,
                    fix="fill the missing times, declare no time column for this table, "
                    "or pass on_missing_time='drop' to drop those rows (reported)",
                )
        df[tc] = parsed.astype("datetime64[ns]")
        out[name] = df

    # Foreign keys: column present, target table known and keyed, no dangling references.
    for name, fk in fkeys.items():
        for col, target in fk.items():
            df = out[name]
            if col not in df.columns:
                raise SchemaError(f"foreign key column not found (columns: {list(df.columns)})",
                                  table=name, column=col, fix="fix the declared foreign key")
            if target not in out:
                raise SchemaError(
                    f"foreign key references unknown table '{target}' (tables: {', '.join(out)})",
                    table=name, column=col,
                    fix="fix the referenced table name, or pass that table",
                )
            tpk = pkeys.get(target)
            if tpk is None:
                raise SchemaError(
                    f"foreign key references table '{target}', which has no primary key",
                    table=name, column=col, fix=f"declare a primary key for '{target}'",
                )
            s = df[col]
            present = s.notna()
            valid = s[present].isin(out[target][tpk])
            n_bad = int((~valid).sum())
            if n_bad:
                if on_dangling == "error":
                    examples = s[present][~valid].drop_duplicates().head(3).tolist()
                    raise SchemaError(
                        f"{n_bad} values reference no row of '{target}.{tpk}' (e.g. {examples})",
                        table=name, column=col,
                        fix="fix the references, or pass on_dangling='null' (set them "
                        "missing) or on_dangling='drop' (drop those rows); both are reported",
                    )
                bad_idx = s[present][~valid].index
                if on_dangling == "null":
                    df[col] = df[col].astype("object")
                    df.loc[bad_idx, col] = None
                    report.nulled[(name, col)] = n_bad
                else:
                    df = df.drop(index=bad_idx)
                    report.dropped[(name, col)] = report.dropped.get((name, col), 0) + n_bad
                out[name] = df

    for name, df in out.items():
        _check_mixed_types(name, df)
    return out, report
