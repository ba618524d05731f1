"""Timestamps -> UNIX seconds, correct for every datetime unit and time zone.

Temporal sampling compares a neighbour's time with its seed's time, so the graph's node
times and the task tables' seed times must be in the same unit. relbench 3.0.2's
``modeling.utils.to_unix_time`` assumes ``datetime64[ns]`` and divides by 1e9; pandas 3
stores parsed dates as ``datetime64[us]`` (or ``[s]``/``[ms]``), which makes its times
1,000x too small (2009-03-29 06:00 -> 1238306 instead of 1238306400). Here the unit is
read from the dtype itself, so the answer does not depend on how the column was parsed.

Conventions: time-zone-naive values are taken as UTC (as ``pd.Timestamp.timestamp()``
does); times before 1970 are negative and are floored, not truncated, so ordering is
preserved; a missing time is an error, because a row whose time is unknown cannot be
placed before or after a seed without risking leakage.
"""

from __future__ import annotations

import datetime as _dt
from typing import Union

import numpy as np
import pandas as pd

from rdlviz.errors import SchemaError

__all__ = ["to_unix_seconds"]

_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

TimeLike = Union[pd.Series, pd.Index, np.ndarray, list, pd.Timestamp, _dt.datetime,
                 np.datetime64, str, int, float]


def _datetime_to_seconds(arr: np.ndarray) -> np.ndarray:
    """``datetime64[unit]`` array (no NaT) -> int64 seconds, floored."""
    unit, count = np.datetime_data(arr.dtype)
    ticks = arr.view(np.int64)
    if unit in _PER_SECOND:
        per_second = _PER_SECOND[unit]
        if count == 1:
            return ticks // per_second
        # e.g. datetime64[10ms]: exact in the base unit first
        return (ticks * count) // per_second
    # units coarser than a second (D, h, m, W, ...) are exact in seconds
    return arr.astype("datetime64[s]").view(np.int64)


def to_unix_seconds(values: TimeLike, *, name: str = None) -> Union[np.ndarray, int]:
    """Convert timestamps to UNIX time in whole seconds.

    Args:
        values: a Series / Index / array / list of datetimes (any ``datetime64`` unit,
            tz-naive or tz-aware, or strings pandas can parse), or one scalar timestamp.
            Integers are taken to be UNIX seconds already; floats are floored.
        name: what to call the values in an error message (default: the Series name).

    Returns:
        ``np.ndarray`` of ``int64`` seconds since 1970-01-01 UTC, shape ``[len(values)]``;
        a Python ``int`` for a scalar input.

    Raises:
        SchemaError: a value is missing (NaT/NaN) or cannot be parsed as a time.

    Example:
        >>> to_unix_seconds(pd.Series(pd.to_datetime(["2009-03-29 06:00"])))
        array([1238306400])
    """
    scalar = isinstance(values, (pd.Timestamp, _dt.datetime, _dt.date, np.datetime64,
                                 str, int, float, np.integer, np.floating))
    ser = pd.Series([values]) if scalar else pd.Series(values, copy=False)
    label = name or getattr(values, "name", None) or "time"
    if ser.isna().any():
        n = int(ser.isna().sum())
        raise SchemaError(
            f"{n} missing value(s) in '{label}' cannot be converted to a time",
            column=str(label),
            fix="drop or fill the rows with a missing time (write_dataset(..., "
            "on_missing_time='drop') does this and reports it)",
        )
    dtype = ser.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise SchemaError(f"'{label}' is boolean, not a time", column=str(label),
                          fix="pass datetimes or UNIX seconds")
    if pd.api.types.is_integer_dtype(dtype):
        out = ser.to_numpy(dtype=np.int64)
    elif pd.api.types.is_float_dtype(dtype):
        out = np.floor(ser.to_numpy(dtype=np.float64)).astype(np.int64)
    else:
        if not pd.api.types.is_datetime64_any_dtype(dtype):
            try:
                try:
                    ser = pd.to_datetime(ser, utc=True)
                except ValueError:  # pandas infers one format from the first value
                    ser = pd.to_datetime(ser, utc=True, format="mixed")
            except (ValueError, TypeError) as e:
                raise SchemaError(
                    f"'{label}' cannot be parsed as a time ({e})", column=str(label),
                    fix="convert it with pd.to_datetime(..., format=...) first",
                ) from None
        if isinstance(ser.dtype, pd.DatetimeTZDtype):
            ser = ser.dt.tz_convert("UTC").dt.tz_localize(None)
        out = _datetime_to_seconds(ser.to_numpy())
    out = np.ascontiguousarray(out, dtype=np.int64)
    return int(out[0]) if scalar else out
