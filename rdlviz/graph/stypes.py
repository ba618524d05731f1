"""Which columns become node features, and as which semantic type (``torch_frame.stype``).

The proposal is RelBench's own (``relbench.modeling.utils.get_stype_proposal``, i.e.
``torch_frame``'s type inference), made deterministic and cleaned up:

* RelBench infers from 1,000 randomly sampled rows with an unseeded sampler, so two builds
  of one database can disagree. Here the 1,000 rows are drawn with a fixed seed first, and
  the proposal then sees exactly those rows.
* Keys are edges, not features: primary and foreign keys are never features.
* Identifier-like columns are dropped: a column whose values are (almost) all distinct
  *codes* (``"hamilton"``, ``"aaronha01"``, ``42`` in a column named ``...Id``) or URLs
  carries no information a model can generalise from -- each value is seen once -- but
  lets it memorise rows. Distinct free text (names with spaces, descriptions) stays text.
* Numeric columns torch_frame calls categorical but that have more than
  :data:`MAX_NUMERIC_CATEGORIES` distinct values, or that track the row's time (a season
  number: |Spearman rho| >= 0.9 with the time column), are numerical: under a temporal
  split their later values would all be unknown categories.
* Text-like string columns that torch_frame calls multi-categorical (values separated by
  ``,`` or ``|``) are embedded as text: materialising them as multi-categorical would need
  list values, and a sentence encoder reads ``"a, b"`` well.
* Clock times without a date (``"14:00:00"``), which torch_frame reads as timestamps on
  the day of the build, are categorical.
* Stypes without an encoder in the relational models (``text_tokenized``,
  ``image_embedded``, ``sequence_numerical``) are dropped, and said so.

Every drop is recorded with its reason (``Graph.dropped``), and user overrides win.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, Mapping, Optional, Tuple, Union

import numpy as np
import pandas as pd
from relbench.base import Database, Table
from relbench.modeling.utils import get_stype_proposal
from torch_frame import stype

from rdlviz.errors import ConfigError, SchemaError

__all__ = ["SUPPORTED_STYPES", "parse_stype", "propose_stypes", "select_features"]

#: Stypes the relational row encoders can read (relbench ``HeteroEncoder`` defaults).
SUPPORTED_STYPES = (stype.numerical, stype.categorical, stype.multicategorical,
                    stype.text_embedded, stype.embedding, stype.timestamp)

StypeLike = Union[stype, str]
Stypes = Dict[str, Dict[str, stype]]
Dropped = Dict[str, Dict[str, str]]

# How many rows the proposal looks at per table (RelBench's number), and its fixed seed.
SAMPLE_ROWS = 1_000
SAMPLE_SEED = 0
# A column is identifier-like when at least this share of its non-missing values are
# distinct and at least this share look like codes.
_UNIQUE_SHARE = 0.95
_CODE_SHARE = 0.95
_MIN_ROWS = 20
#: A numeric column with more distinct values than this is numerical, not categorical.
MAX_NUMERIC_CATEGORIES = 32
# |Spearman correlation| with the row time above which a number is a time proxy.
_TIME_RHO = 0.9
_ID_NAME = re.compile(r"(id|_orig|key|ref|code|uuid|guid)$", re.IGNORECASE)
_URL = re.compile(r"^(https?|ftp)://|^www\.", re.IGNORECASE)
_WS = re.compile(r"\s")
_CLOCK = re.compile(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?")


def parse_stype(value: StypeLike, *, table: str = None, column: str = None) -> stype:
    """``stype`` or its name (``"numerical"``, ``"text_embedded"``, ...) -> ``stype``.

    Raises:
        ConfigError: not a stype the relational encoders support; lists the valid ones.
    """
    valid = ", ".join(s.value for s in SUPPORTED_STYPES)
    where = f" for table '{table}', column '{column}'" if table is not None else ""
    try:
        st = value if isinstance(value, stype) else stype(str(value))
    except ValueError:
        raise ConfigError(f"{value!r}{where} is not a stype; valid stypes: {valid}") from None
    if st not in SUPPORTED_STYPES:
        raise ConfigError(f"stype {st.value!r}{where} has no encoder in the relational "
                          f"models; valid stypes: {valid}")
    return st


def _is_code(value: object) -> bool:
    """A short machine code rather than words: no whitespace, and digits, ``_`` or a
    single case (``"hamilton"``, ``"aaronha01"``, ``"max_verstappen"``, ``"HAM"``);
    capitalised words (``"McLaren"``) are names and stay text."""
    s = str(value)
    if _URL.search(s):
        return True
    if not s or _WS.search(s):
        return False
    return any(c.isdigit() for c in s) or "_" in s or s == s.lower() or s == s.upper()


def _is_plain_number(ser: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(ser.dtype) and not pd.api.types.is_bool_dtype(ser.dtype)


def _tracks_time(ser: pd.Series, time: Optional[pd.Series]) -> bool:
    """A number that rises or falls with the row's time (a season, a year): its values
    after the cutoff are new, so as categories they would all be unknown."""
    if time is None or ser.nunique() < 3:
        return False
    both = pd.DataFrame({"x": ser.astype(float), "t": time}).dropna()
    if len(both) < _MIN_ROWS:
        return False
    rho = both["x"].corr(both["t"].astype("int64").astype(float), method="spearman")
    return bool(np.isfinite(rho) and abs(rho) >= _TIME_RHO)


def _is_time_of_day(ser: pd.Series) -> bool:
    """String clock times without a date (``"14:00"``, ``"06:00:00"``)."""
    if pd.api.types.is_datetime64_any_dtype(ser.dtype):
        return False
    values = ser.dropna()
    if values.empty or not isinstance(values.iloc[0], str):
        return False
    return values.astype(str).str.fullmatch(_CLOCK).mean() >= _CODE_SHARE


def _identifier_reason(name: str, ser: pd.Series, st: stype) -> Optional[str]:
    """Why ``ser`` is an identifier (or ``None`` if it is a usable feature)."""
    values = ser.dropna()
    n = len(values)
    if n < _MIN_ROWS or st not in (stype.text_embedded, stype.numerical,
                                   stype.categorical):
        return None
    if isinstance(values.iloc[0], (list, tuple, np.ndarray)):
        return None
    distinct = values.nunique()
    if distinct < _UNIQUE_SHARE * n:
        return None
    if pd.api.types.is_integer_dtype(values.dtype) or (
            pd.api.types.is_float_dtype(values.dtype) and (values % 1 == 0).all()):
        if _ID_NAME.search(name):
            return "identifier-like: a distinct integer id in every row"
        return None
    if pd.api.types.is_numeric_dtype(values.dtype):
        return None
    strings = values.astype(str)
    if strings.map(lambda s: bool(_URL.search(s))).mean() >= _CODE_SHARE:
        return "identifier-like: a distinct URL in every row"
    if strings.map(_is_code).mean() >= _CODE_SHARE:
        return "identifier-like: a distinct code in every row"
    return None


def propose_stypes(db: Database) -> Tuple[Stypes, Dropped]:
    """Propose the feature columns of every table and their stypes, deterministically.

    Args:
        db: the rows the proposal may look at (``build_graph`` passes the rows up to
            the val cutoff, so every graph of a dataset gets the same proposal).

    Returns:
        ``(stypes, dropped)``: ``{table: {column: stype}}`` for the feature columns (keys
        excluded), and ``{table: {column: reason}}`` for every non-key column left out.
    """
    sampled = Database({
        name: Table(
            df=t.df.sample(n=min(SAMPLE_ROWS, len(t.df)), random_state=SAMPLE_SEED),
            fkey_col_to_pkey_table=t.fkey_col_to_pkey_table,
            pkey_col=t.pkey_col, time_col=t.time_col,
        )
        for name, t in db.table_dict.items()
    })
    # On <= 1,000 rows RelBench's own sampling is a permutation of ours, and the
    # inference does not depend on row order, so the proposal is now reproducible.
    proposal = get_stype_proposal(sampled)

    stypes: Stypes = {}
    dropped: Dropped = {}
    for name, table in db.table_dict.items():
        keys = {table.pkey_col, *table.fkey_col_to_pkey_table}
        prop = proposal.get(name, {})
        feats: Dict[str, stype] = {}
        gone: Dict[str, str] = {}
        for col in table.df.columns:
            if col in keys:
                continue
            st = prop.get(col)
            ser = table.df[col]
            if st is None:
                gone[col] = ("all values missing" if ser.isna().all()
                             else "type could not be inferred")
                continue
            first = ser.dropna().iloc[0] if ser.notna().any() else None
            if st == stype.multicategorical and isinstance(first, str):
                st = stype.text_embedded
            if st == stype.categorical and _is_plain_number(ser) and (
                    ser.nunique() > MAX_NUMERIC_CATEGORIES
                    or _tracks_time(ser, table.df[table.time_col] if table.time_col else None)):
                # Years, game counts, ...: ordered quantities whose later values (the
                # next season) would all be unknown categories at prediction time.
                st = stype.numerical
            if st == stype.timestamp and _is_time_of_day(ser):
                # "14:00:00" parses as *today* at 14:00: the features would depend on
                # the day of the build. A clock time is a category (few distinct values).
                st = stype.categorical
            if st not in SUPPORTED_STYPES:
                gone[col] = f"stype '{st.value}' has no encoder"
                continue
            if col != table.time_col:
                reason = _identifier_reason(col, ser, st)
                if reason is not None:
                    gone[col] = reason
                    continue
            feats[col] = st
        stypes[name], dropped[name] = feats, gone
    return stypes, dropped


def _check_columns(db: Database, table: str, cols: Iterable[str], what: str) -> None:
    df_cols = list(db.table_dict[table].df.columns)
    unknown = [c for c in cols if c not in df_cols]
    if unknown:
        raise SchemaError(
            f"{what}: no column(s) {', '.join(repr(c) for c in unknown)}",
            table=table, fix="valid columns: " + ", ".join(df_cols),
        )


def select_features(
    db: Database,
    proposal: Stypes,
    dropped: Dropped,
    *,
    columns: Optional[Mapping[str, Iterable[str]]] = None,
    overrides: Optional[Mapping[str, Mapping[str, StypeLike]]] = None,
    text: str = "minilm",
    time_features: bool = True,
) -> Tuple[Stypes, Dropped]:
    """Apply the user's column selection, stype overrides and text mode to a proposal.

    Args:
        db: the database the graph is built from (after table selection).
        proposal, dropped: from :func:`propose_stypes`.
        columns: ``{table: [feature columns to keep]}``; keys and the time column are
            always kept. Tables not named keep every proposed feature.
        overrides: ``{table: {column: stype or name}}``; wins over the proposal and
            the identifier heuristic.
        text: ``"drop"`` removes text columns that are not overridden.
        time_features: ``False`` removes every timestamp column, the time column
            included, from the features (see :func:`~rdlviz.graph.build_graph`).

    Returns:
        The final ``(stypes, dropped)``.

    Raises:
        SchemaError: an unknown table or column (the valid ones are listed), or a key
            given a stype.
        ConfigError: an invalid stype name, a text stype with ``text="drop"``, or a
            timestamp stype with ``time_features=False``.
    """
    tables = list(db.table_dict)
    stypes = {t: dict(proposal.get(t, {})) for t in tables}
    dropped = {t: dict(dropped.get(t, {})) for t in tables}
    for arg, mapping in (("columns", columns), ("stypes", overrides)):
        unknown = [t for t in (mapping or {}) if t not in db.table_dict]
        if unknown:
            raise SchemaError(
                f"{arg}= names unknown or excluded table(s) "
                + ", ".join(repr(t) for t in unknown),
                fix="valid tables: " + ", ".join(tables),
            )

    for t, keep in (columns or {}).items():
        if isinstance(keep, str):
            keep = [keep]
        keep = list(keep)
        _check_columns(db, t, keep, "columns=")
        table = db.table_dict[t]
        keep_set = set(keep) | {table.time_col}
        for col in list(stypes[t]):
            if col not in keep_set:
                del stypes[t][col]
                dropped[t][col] = "not selected (columns=)"
        for col in keep:
            if col in stypes[t] or col in (table.pkey_col, *table.fkey_col_to_pkey_table):
                continue
            if col not in dropped[t] or dropped[t][col].startswith("not selected"):
                continue
            if col in (overrides or {}).get(t, {}):
                continue  # the override below decides its stype
            # Asked for, but the proposal left it out: say why instead of guessing a type.
            raise SchemaError(
                f"column '{col}' was asked for but is not a usable feature "
                f"({dropped[t][col]})", table=t, column=col,
                fix=f"give it a stype explicitly: stypes={{'{t}': {{'{col}': 'categorical'}}}}",
            )

    if text == "drop":
        for t in tables:
            for col, st in list(stypes[t].items()):
                if st == stype.text_embedded:
                    del stypes[t][col]
                    dropped[t][col] = "text column (text='drop')"

    for t, cols in (overrides or {}).items():
        table = db.table_dict[t]
        _check_columns(db, t, cols, "stypes=")
        keys = {table.pkey_col, *table.fkey_col_to_pkey_table}
        for col, value in cols.items():
            if col in keys:
                raise SchemaError("is a key: keys become edges, not features",
                                  table=t, column=col, fix="remove it from stypes=")
            st = parse_stype(value, table=t, column=col)
            if columns and t in columns and col not in set(columns[t]) | {table.time_col}:
                raise SchemaError(
                    "has a stype override but is not among the selected columns",
                    table=t, column=col, fix=f"add '{col}' to columns['{t}']",
                )
            if st == stype.timestamp and not time_features:
                raise ConfigError(
                    f"table '{t}', column '{col}': stype timestamp, but time_features=False "
                    "leaves absolute time out; drop the override or use time_features=True")
            if st == stype.text_embedded and text == "drop":
                raise ConfigError(
                    f"table '{t}', column '{col}': stype text_embedded needs a text "
                    "encoder, but text='drop'; use text='minilm' or text='hash'")
            values = table.df[col].dropna()
            if st == stype.multicategorical and len(values) and isinstance(values.iloc[0], str):
                raise ConfigError(
                    f"table '{t}', column '{col}': multicategorical needs list values, "
                    f"got strings; split them first, e.g. df['{col}'].str.split(',')")
            stypes[t][col] = st
            dropped[t].pop(col, None)

    if not time_features:
        for t in tables:
            for col, st in list(stypes[t].items()):
                if st == stype.timestamp:
                    del stypes[t][col]
                    dropped[t][col] = "absolute time (time_features=False)"
    return stypes, dropped
