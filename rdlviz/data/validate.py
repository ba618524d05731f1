"""Checks that a set of tables satisfies the relational contract before it is written.

A real database is messy: duplicate or missing keys, dangling foreign keys, composite
keys, unparseable dates, empty tables, mixed-type columns. Each problem raises a
:class:`~rdlviz.errors.SchemaError` naming the table and column and saying what to do.

Where a cleanup exists it is opt-in, and what it did is returned in a
:class:`CleanupReport` -- nothing is dropped silently:

* ``on_missing_time="drop"`` drops rows whose time is missing;
* ``on_dangling="null"`` sets a foreign key that references no row to missing;
* ``on_dangling="drop"`` drops the row holding it. Dropping rows can leave *other*
  rows pointing at rows that no longer exist (an order item whose order was dropped), so
  the foreign-key check runs to a fixed point and every cascaded drop is counted under
  the foreign key that caused it.

The order of the checks is the order of the dependencies: table shapes, then
declarations, then column types, then primary keys, then times (dropping rows), then
foreign keys (which must see the final set of rows of every table).
"""

from __future__ import annotations

import datetime as _dt
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

import numpy as np
import pandas as pd

from rdlviz.errors import SchemaError

__all__ = ["validate_tables", "CleanupReport", "ON_DANGLING", "ON_MISSING_TIME"]

#: What to do with a foreign key that points at no row: raise, set it missing, or drop
#: the row that holds it.
ON_DANGLING = ("error", "null", "drop")
#: What to do with a row whose time is missing: raise, or drop the row.
ON_MISSING_TIME = ("error", "drop")


@dataclass
class CleanupReport:
    """What an opt-in cleanup changed, as exact counts per ``(table, column)``.

    Attributes:
        nulled: dangling foreign-key values set to missing (``on_dangling="null"``).
        dropped: rows dropped because the foreign key in ``column`` referenced no row,
            including rows whose referenced row was itself dropped
            (``on_dangling="drop"``).
        missing_time: rows dropped because their time ``column`` was missing
            (``on_missing_time="drop"``).
    """

    nulled: Dict[tuple, int] = field(default_factory=dict)
    dropped: Dict[tuple, int] = field(default_factory=dict)
    missing_time: Dict[tuple, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.nulled or self.dropped or self.missing_time)

    def rows_dropped(self, table: str) -> int:
        """Total rows dropped from ``table`` by any cleanup."""
        return (sum(n for (t, _), n in self.dropped.items() if t == table)
                + sum(n for (t, _), n in self.missing_time.items() if t == table))

    def __str__(self) -> str:
        lines = [f"{t}.{c}: {n} rows dropped (missing time)" for (t, c), n in self.missing_time.items()]
        lines += [f"{t}.{c}: {n} dangling foreign keys set missing" for (t, c), n in self.nulled.items()]
        lines += [f"{t}.{c}: {n} rows dropped (foreign key referenced no row)"
                  for (t, c), n in self.dropped.items()]
        return "\n".join(lines) or "no cleanup needed"

    def to_dict(self) -> dict:
        """A JSON-serialisable form (``{kind: [[table, column, count], ...]}``)."""
        return {k: [[t, c, n] for (t, c), n in getattr(self, k).items()]
                for k in ("nulled", "dropped", "missing_time")}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CleanupReport":
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: {(t, c): int(n) for t, c, n in d.get(k, [])}
                      for k in ("nulled", "dropped", "missing_time")})


# --------------------------------------------------------------------------- checks


def _value_kind(v: object) -> str:
    # bool before numbers: bool is an int subclass, but a column holding True and 3 is
    # ambiguous (flag or count?).
    if isinstance(v, (bool, np.bool_)):
        return "booleans"
    if isinstance(v, numbers.Number):
        return "numbers"
    if isinstance(v, str):
        return "strings"
    if isinstance(v, (bytes, bytearray)):
        return "bytes"
    if isinstance(v, (_dt.date, _dt.time, np.datetime64)):
        return "dates"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "lists"
    return type(v).__name__


# pandas' own inference: anything but these names means one column holds values of
# more than one kind (ints with floats is one kind, "mixed-integer-float").
_UNMIXED = {
    "empty", "string", "bytes", "integer", "floating", "mixed-integer-float", "decimal",
    "complex", "boolean", "datetime64", "datetime", "date", "timedelta64", "timedelta",
    "time", "period", "interval", "categorical",
}


def _check_mixed_types(name: str, col: str, s: pd.Series) -> None:
    """Reject an object column whose non-missing values are of more than one kind.

    Such a column cannot be given one semantic type; torch_frame would mis-encode it
    silently. Every value is looked at (a sample could miss the one odd row); the fast
    path is pandas' C-level ``infer_dtype``.
    """
    if s.dtype != object or pd.api.types.infer_dtype(s, skipna=True) in _UNMIXED:
        return
    values = s.dropna()
    kinds = values.map(_value_kind)
    counts = kinds.value_counts()
    if len(counts) <= 1:  # e.g. all lists (an embedding column), which pandas calls "mixed"
        return
    parts = [f"{k} ({n} rows, e.g. {values[kinds == k].iloc[0]!r})" for k, n in counts.items()]
    raise SchemaError(
        "holds values of mixed types: " + ", ".join(parts),
        table=name, column=col,
        fix="convert the column to one type first, e.g. "
        f"df['{col}'] = pd.to_numeric(df['{col}'], errors='coerce') (non-numbers become "
        f"missing) or df['{col}'] = df['{col}'].astype(str)",
    )


def _key_kind(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "other"
    if pd.api.types.is_numeric_dtype(s):
        return "number"
    if pd.api.types.is_string_dtype(s):
        return "string"
    return "other"


def _parse_time(name: str, col: str, s: pd.Series) -> pd.Series:
    """Parse a time column to naive ``datetime64[ns]`` (UTC for tz-aware input).

    Nanoseconds because that is the unit RelBench's ``to_unix_time`` assumes. Numbers are
    refused rather than read as nanoseconds since 1970 (``pd.to_datetime(2005)`` is
    1970-01-01 00:00:00.000002005, a silent disaster for a year column).
    """
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s
    elif (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)) and s.notna().any():
        raise SchemaError(
            f"holds numbers ({s.dtype}, e.g. {s.dropna().iloc[0]!r}), not dates",
            table=name, column=col,
            fix=f"convert it first, e.g. pd.to_datetime(df['{col}'], unit='s') for Unix "
            f"seconds or pd.to_datetime(df['{col}'].astype(str), format='%Y') for years",
        )
    else:
        out = pd.to_datetime(s, errors="coerce")
        bad = out.isna() & s.notna()
        if bad.any():
            # pandas infers one format from the first value; ISO 8601 strings that differ
            # only in precision ("2020-01-05" vs "2020-01-05 10:00") are still unambiguous.
            out = pd.to_datetime(s, errors="coerce", format="ISO8601")
            bad = out.isna() & s.notna()
        if bad.any():
            examples = ", ".join(repr(v) for v in s[bad].head(3).tolist())
            raise SchemaError(
                f"{int(bad.sum())} values cannot be parsed as dates (e.g. {examples})",
                table=name, column=col,
                fix="fix or remove those values, or pass the column already parsed "
                "with pd.to_datetime(..., format=...)",
            )
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    try:
        return out.astype("datetime64[ns]")
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        raise SchemaError(
            f"holds dates outside 1677-09-21..2262-04-11 (range {out.min()} .. {out.max()}), "
            "which nanosecond timestamps cannot represent",
            table=name, column=col,
            fix="fix the out-of-range values (often typos or sentinel dates like 0001-01-01)",
        ) from None


def _check_declarations(
    out: Mapping[str, pd.DataFrame],
    pkeys: Mapping[str, Any],
    fkeys: Mapping[str, Any],
    time_cols: Mapping[str, Optional[str]],
) -> None:
    for kind, decl in (("pkeys", pkeys), ("fkeys", fkeys), ("time_cols", time_cols)):
        for name in decl:
            if name not in out:
                raise SchemaError(
                    f"is named in {kind} but is not among the tables ({', '.join(out)})",
                    table=name, fix="fix the table name, or pass that table",
                )
    for name, fk in fkeys.items():
        if not isinstance(fk, Mapping):
            raise SchemaError(
                f"fkeys must map each foreign key column to the table it references, got {fk!r}",
                table=name, fix=f"e.g. fkeys={{'{name}': {{'customer_id': 'customers'}}}}",
            )
    for name, tc in time_cols.items():
        if tc is None:
            continue
        pk = pkeys.get(name)
        if tc == pk or tc in (fkeys.get(name) or {}):
            raise SchemaError("is declared both as a key and as the time column",
                              table=name, column=tc, fix="declare a separate time column")
    for name, fk in fkeys.items():
        pk = pkeys.get(name)
        if isinstance(pk, str) and pk in fk:
            raise SchemaError(
                f"is both the primary key and a foreign key (to '{fk[pk]}'); reindexing "
                "renumbers a primary key, which would break the reference",
                table=name, column=pk,
                fix=f"add a surrogate key (df['{name}_id'] = range(len(df))) as the primary "
                f"key and keep '{pk}' as the foreign key",
            )


def _check_pkey(name: str, df: pd.DataFrame, pk: Any) -> None:
    if isinstance(pk, (list, tuple)):
        if len(pk) == 1:
            return _check_pkey(name, df, pk[0])
        raise SchemaError(
            f"has a composite primary key {list(pk)}; rdlviz (like RelBench) needs "
            "a single-column key",
            table=name, column=", ".join(map(str, pk)),
            fix="add a surrogate key, e.g. df['id'] = range(len(df)), declare it as "
            "the primary key, and point foreign keys at it; or declare no primary key "
            "if no table references this one",
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


def _set_missing(s: pd.Series, bad: np.ndarray) -> pd.Series:
    # A numpy int column cannot hold a missing value; going through float would round
    # keys above 2**53, so use the nullable integer type (reindex keeps it as Int64).
    if pd.api.types.is_integer_dtype(s) and not isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
        s = s.astype("Int64")
    return s.mask(bad)


def validate_tables(
    tables: Mapping[str, pd.DataFrame],
    pkeys: Mapping[str, Any],
    fkeys: Mapping[str, Mapping[str, str]],
    time_cols: Mapping[str, Optional[str]],
    *,
    on_dangling: str = "error",
    on_missing_time: str = "error",
) -> tuple[Dict[str, pd.DataFrame], CleanupReport]:
    """Validate (and, where asked, clean) a set of tables.

    Args:
        tables: ``{table: DataFrame}``.
        pkeys: ``{table: primary-key column or None}``. A list/tuple of several columns
            is a composite key and is rejected with a fix (add a surrogate key).
        fkeys: ``{table: {fkey column: referenced table}}``; the reference is to that
            table's primary key.
        time_cols: ``{table: time column or None}``.
        on_dangling: ``"error"`` (default), ``"null"`` or ``"drop"`` for foreign keys that
            reference no row.
        on_missing_time: ``"error"`` (default) or ``"drop"`` for rows whose time is
            missing.

    Returns:
        The validated tables (copies with a fresh ``0..n-1`` index; time columns parsed
        to ``datetime64[ns]``) and a :class:`CleanupReport` of what an opt-in cleanup
        changed. Tables a cleanup did not touch keep every row.
    """
    if on_dangling not in ON_DANGLING:
        raise SchemaError(f"on_dangling must be one of {ON_DANGLING}, got {on_dangling!r}")
    if on_missing_time not in ON_MISSING_TIME:
        raise SchemaError(f"on_missing_time must be one of {ON_MISSING_TIME}, got {on_missing_time!r}")
    if not tables:
        raise SchemaError("the database has no tables", fix="pass at least one table")

    report = CleanupReport()
    out: Dict[str, pd.DataFrame] = {}
    for name, df in tables.items():
        if not isinstance(name, str) or not name:
            raise SchemaError(f"table name {name!r} must be a non-empty string",
                              fix="name every table with a string")
        if not isinstance(df, pd.DataFrame):
            raise SchemaError(f"expected a pandas DataFrame, got {type(df).__name__}", table=name,
                              fix="pass a pandas DataFrame per table")
        if len(df) == 0:
            raise SchemaError("is empty", table=name, fix="remove the table, or load its rows")
        bad_cols = [c for c in df.columns if not isinstance(c, str) or not c]
        if bad_cols:
            raise SchemaError(f"column names must be non-empty strings, got {bad_cols}",
                              table=name, column=str(bad_cols[0]),
                              fix="rename them, e.g. df.columns = df.columns.map(str)")
        if df.columns.duplicated().any():
            dup = df.columns[df.columns.duplicated()].tolist()
            raise SchemaError(f"has duplicate column names {dup}", table=name, column=dup[0],
                              fix="rename the columns so each name is unique")
        # A fresh positional index: a user's index may repeat labels, and every drop or
        # assignment below must touch exactly the rows it means.
        out[name] = df.reset_index(drop=True)

    _check_declarations(out, pkeys, fkeys, time_cols)

    for name, df in out.items():
        tc = time_cols.get(name)
        for col in df.columns:
            if col != tc:  # a time column may mix strings and datetimes; it is parsed below
                _check_mixed_types(name, col, df[col])

    for name, df in out.items():
        if pkeys.get(name) is not None:
            _check_pkey(name, df, pkeys[name])
    pk_of = {t: (pk[0] if isinstance(pk, (list, tuple)) else pk) for t, pk in pkeys.items()}

    # Time columns: present, parseable, non-missing.
    for name, tc in time_cols.items():
        if tc is None:
            continue
        df = out[name]
        if tc not in df.columns:
            raise SchemaError(f"time column not found (columns: {list(df.columns)})",
                              table=name, column=tc, fix="fix the declared time column name")
        parsed = _parse_time(name, tc, df[tc])
        missing = parsed.isna().to_numpy()
        if missing.any():
            if on_missing_time == "error":
                raise SchemaError(
                    f"{int(missing.sum())} rows have a missing time",
                    table=name, column=tc,
                    fix="fill the missing times, declare no time column for this table, "
                    "or pass on_missing_time='drop' to drop those rows (reported)",
                )
            report.missing_time[(name, tc)] = int(missing.sum())
            df = df.loc[~missing].reset_index(drop=True)
            parsed = parsed[~missing].reset_index(drop=True)
        df[tc] = parsed
        out[name] = df

    # Foreign keys: column present, target table known and keyed, types comparable.
    edges = []
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
            tpk = pk_of.get(target)
            if tpk is None:
                raise SchemaError(
                    f"foreign key references table '{target}', which has no primary key",
                    table=name, column=col, fix=f"declare a primary key for '{target}'",
                )
            kf, kp = _key_kind(df[col].dropna()), _key_kind(out[target][tpk])
            if {kf, kp} == {"number", "string"}:
                raise SchemaError(
                    f"foreign key holds {kf}s ({df[col].dtype}) but '{target}.{tpk}' holds "
                    f"{kp}s ({out[target][tpk].dtype}), so no value can match",
                    table=name, column=col,
                    fix=f"cast one side, e.g. df['{col}'] = pd.to_numeric(df['{col}']) or "
                    f"{target}['{tpk}'] = {target}['{tpk}'].astype(str)",
                )
            edges.append((name, col, target, tpk))

    # Dangling references, to a fixed point: a dropped row can orphan rows that
    # reference it (in any table, including its own through a self-reference).
    changed = True
    while changed:
        changed = False
        for name, col, target, tpk in edges:
            df = out[name]
            s = df[col]
            bad = (s.notna() & ~s.isin(out[target][tpk])).to_numpy()
            n_bad = int(bad.sum())
            if not n_bad:
                continue
            if on_dangling == "error":
                examples = s[bad].drop_duplicates().head(3).tolist()
                lost = report.rows_dropped(target)
                why = (f"; {lost} rows of '{target}' were dropped by the missing-time "
                       "cleanup" if lost else "")
                raise SchemaError(
                    f"{n_bad} values reference no row of '{target}.{tpk}' (e.g. {examples}){why}",
                    table=name, column=col,
                    fix="fix the references, or pass on_dangling='null' (set them "
                    "missing) or on_dangling='drop' (drop those rows); both are reported",
                )
            if on_dangling == "null":
                df[col] = _set_missing(s, bad)
                report.nulled[(name, col)] = report.nulled.get((name, col), 0) + n_bad
            else:
                out[name] = df.loc[~bad].reset_index(drop=True)
                report.dropped[(name, col)] = report.dropped.get((name, col), 0) + n_bad
                changed = True

    for name, df in out.items():
        if len(df) == 0:
            raise SchemaError(
                "has no rows left after the cleanup", table=name,
                fix="check the keys and times of this table; the cleanup report was:\n"
                + str(report),
            )
    return out, report
