"""rel-f1 rebuilt offline from the raw Ergast CSVs: RelBench's numbers, keys, times,
task labels (recomputed independently), leakage, caching and the error paths."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from relbench.manifest import TaskManifest

import rdlviz
from rdlviz.data import f1 as f1mod
from rdlviz.data.tasks import check_task
from rdlviz.errors import OfflineError, SchemaError

pytestmark = pytest.mark.f1

TABLES = {"races", "circuits", "drivers", "results", "standings", "constructors",
          "constructor_results", "constructor_standings", "qualifying"}
SPLITS = {  # RelBench's published split sizes
    "driver-dnf": (11_411, 566, 702),
    "driver-top3": (1_353, 588, 726),
    "driver-position": (7_453, 499, 760),
}
# (source table, window) of each entity task
SOURCE = {"driver-dnf": ("results", "30D"), "driver-top3": ("qualifying", "30D"),
          "driver-position": ("results", "60D")}


@pytest.fixture(scope="module")
def full_db(f1):
    return f1.get_db(upto_test_timestamp=False)


@pytest.fixture(scope="module")
def tasks(f1):
    return {name: f1.load_task(name) for name in f1.get_task_names()}


@pytest.fixture(scope="module")
def raw(f1_source):
    return {t: pd.read_csv(f1_source / f, na_values=[r"\N"], keep_default_na=False)
            for t, f in f1mod.CSV_FILES.items()}


def _copy_source(src: Path, dst: Path, skip: tuple = ()) -> Path:
    dst.mkdir(parents=True)
    for f in f1mod.CSV_FILES.values():
        if f not in skip:
            shutil.copy(src / f, dst / f)
    return dst


# --------------------------------------------------------------------------- database


def test_tables_and_row_counts(f1, full_db):
    assert set(full_db.table_dict) == TABLES
    assert sum(len(t) for t in full_db.table_dict.values()) == 100_407
    assert full_db.max_timestamp.normalize() == pd.Timestamp("2024-12-08")
    assert f1.val_timestamp == pd.Timestamp("2005-01-01")
    assert f1.test_timestamp == pd.Timestamp("2010-01-01")
    # "Rows before the test cutoff" = what a model may see at test time: rows with
    # time <= 2010-01-01 (inclusive, as Table.upto keeps them) plus every row of the
    # three tables without time (circuits, drivers, constructors).
    upto = f1.get_db()
    assert sum(len(t) for t in upto.table_dict.values()) == 74_063
    by_hand = sum(
        int((t.df[t.time_col] <= f1.test_timestamp).sum()) if t.time_col else len(t)
        for t in full_db.table_dict.values()
    )
    assert by_hand == 74_063


def test_time_columns_as_relbench(full_db):
    timed = {n for n, t in full_db.table_dict.items() if t.time_col}
    assert timed == TABLES - {"circuits", "drivers", "constructors"}
    for t in timed:
        assert full_db.table_dict[t].time_col == "date"


def test_columns_dropped_and_typed(full_db):
    cols = {n: set(t.df.columns) for n, t in full_db.table_dict.items()}
    for table, dropped in f1mod._DROP.items():
        assert not cols[table] & set(dropped), table
    # statusId stays a feature of past results, as in RelBench (labels read only the
    # window after the seed time, so its past values are no leak).
    assert "statusId" in cols["results"]
    assert "time" in cols["races"]
    res = full_db.table_dict["results"].df
    for c in f1mod._NUMERIC["results"]:
        assert pd.api.types.is_numeric_dtype(res[c]), c
    assert res["position"].isna().any()  # \N became missing, not a string
    assert full_db.table_dict["circuits"].df["alt"].dtype == np.float64
    assert pd.api.types.is_datetime64_any_dtype(full_db.table_dict["drivers"].df["dob"])


def test_race_date_is_date_plus_time(full_db, raw):
    races = full_db.table_dict["races"].df.set_index(["year", "round"])
    src = raw["races"].set_index(["year", "round"])
    assert races.index.is_unique and len(races) == len(src)
    src = src.loc[races.index]
    want = pd.to_datetime(src["date"] + " " + src["time"].fillna("00:00:00"))
    assert (races["date"].to_numpy() == want.to_numpy()).all()
    missing_time = src["time"].isna().to_numpy()
    assert missing_time.any() and (~missing_time).any()
    assert (races.loc[missing_time, "date"] == races.loc[missing_time, "date"].dt.normalize()).all()
    # the time column itself stays, with RelBench's midnight default for unknown times
    assert (races.loc[missing_time, "time"] == "00:00:00").all()
    assert (races.loc[~missing_time, "time"].to_numpy() == src.loc[~missing_time, "time"].to_numpy()).all()


def test_keys_are_positions_and_fkeys_valid(full_db):
    for name, table in full_db.table_dict.items():
        df = table.df
        if table.pkey_col:
            assert (df[table.pkey_col].to_numpy() == np.arange(len(df))).all(), name
        for col, target in table.fkey_col_to_pkey_table.items():
            s = df[col]
            assert s.notna().all(), (name, col)
            assert s.between(0, len(full_db.table_dict[target]) - 1).all(), (name, col)
        if table.time_col:
            assert df[table.time_col].is_monotonic_increasing, name
            assert df[table.time_col].notna().all(), name


def test_fact_tables_carry_their_race_date(full_db, raw):
    race_date = full_db.table_dict["races"].df["date"].to_numpy()
    for t in ("results", "standings", "constructor_results", "constructor_standings"):
        df = full_db.table_dict[t].df
        assert (df["date"].to_numpy() == race_date[df["raceId"].to_numpy()]).all(), t
    q = full_db.table_dict["qualifying"].df
    assert (q["date"].to_numpy() == race_date[q["raceId"].to_numpy()] - np.timedelta64(1, "D")).all()
    # reindexing kept every row's race: the per-race row counts match the raw files
    races = full_db.table_dict["races"].df
    for t in ("results", "qualifying"):
        new = full_db.table_dict[t].df["raceId"].map(races["year"]).value_counts().sort_index()
        old = raw[t]["raceId"].map(raw["races"].set_index("raceId")["year"]).value_counts().sort_index()
        assert new.equals(old), t


# --------------------------------------------------------------------------- tasks


def test_task_names(f1):
    assert f1.get_task_names() == sorted(
        ["driver-dnf", "driver-top3", "driver-position", "driver-circuit-compete"])


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_split_sizes_match_relbench(tasks, name):
    sizes = tuple(len(tasks[name].get_table(s).df) for s in ("train", "val", "test"))
    assert sizes == SPLITS[name]


def test_position_target_std(tasks):
    train = tasks["driver-position"].get_table("train").df["position"]
    assert train.std(ddof=1) == pytest.approx(7.026, abs=5e-4)
    assert tasks["driver-position"].nmae_std == pytest.approx(train.std(ddof=1))


def test_binary_labels_are_both_classes(tasks):
    for name in ("driver-dnf", "driver-top3"):
        task = tasks[name]
        y = task.get_table("train").df[task.target_col]
        assert y.dtype == np.int64 and set(y.unique()) == {0, 1}, name


def _window_rows(db, table, t, delta):
    df = db.table_dict[table].df
    return df[(df["date"] > t) & (df["date"] <= t + pd.Timedelta(delta))]


@pytest.mark.parametrize("name", sorted(SOURCE))
@pytest.mark.parametrize("split", ["val", "test"])
def test_labels_match_independent_recomputation(tasks, full_db, name, split):
    # Recompute every label of the split with pandas, straight from the definitions.
    task = tasks[name]
    table, delta = SOURCE[name]
    labels = task.get_table(split, mask_input_cols=False).df
    for t, got in labels.groupby("date"):
        rows = _window_rows(full_db, table, t, delta)
        g = rows.groupby("driverId")
        if name == "driver-dnf":
            want = g["statusId"].apply(lambda s: int((s != 1).any()))
        elif name == "driver-top3":
            want = g["position"].min().le(3).astype(int)
        else:
            want = g["positionOrder"].mean()
        got = got.set_index("driverId")[task.target_col].sort_index()
        # entities at t: exactly the drivers with a source row in the window (which is
        # RelBench's condition "a row after t - 1 year"; see rdlviz.data.f1)
        assert list(got.index) == list(want.index), (name, t)
        np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float))
        recent = full_db.table_dict[table].df
        recent = recent.loc[recent["date"] > t - pd.DateOffset(years=1), "driverId"]
        assert set(got.index) <= set(recent)


def test_circuit_labels_match_independent_recomputation(tasks, full_db):
    task = tasks["driver-circuit-compete"]
    circuit_of_race = full_db.table_dict["races"].df["circuitId"].to_numpy()
    for split in ("val", "test"):
        labels = task.get_table(split, mask_input_cols=False).df
        (t,) = labels["date"].unique()
        rows = _window_rows(full_db, "results", pd.Timestamp(t), "365D")
        want = (rows.assign(c=circuit_of_race[rows["raceId"].to_numpy()])
                .groupby("driverId")["c"].apply(lambda s: sorted(set(s))))
        got = labels.set_index("driverId")["circuitId"].map(list).sort_index()
        assert list(got.index) == list(want.index)
        assert got.tolist() == want.tolist()


def _tables(db):
    return {n: t.df for n, t in db.table_dict.items()}


@pytest.mark.parametrize("name", ["driver-dnf", "driver-top3", "driver-position",
                                  "driver-circuit-compete"])
def test_labels_read_only_the_window(f1, full_db, name):
    # Keep only the rows in (t, t + timedelta] of every timed table: the labels at t must
    # not change, i.e. the SQL reads nothing from the past or beyond the window.
    tm = TaskManifest.load(f1.dataset_dir / "tasks" / name / "manifest.yaml")
    delta = pd.Timedelta(tm.timedelta)
    # mid-season seed times (a cutoff on 1 January has no race in a 30-day window)
    for t in map(pd.Timestamp, ("2003-06-01", "2006-04-01", "2011-03-20")):
        full = check_task(tm, _tables(full_db), t)
        window = {n: (df[(df["date"] > t) & (df["date"] <= t + delta)]
                      if full_db.table_dict[n].time_col else df)
                  for n, df in _tables(full_db).items()}
        only = check_task(tm, window, t)
        key = [tm.time_col, tm.entity_col or tm.src_entity_col]
        a = full.sort_values(key).reset_index(drop=True)
        b = only.sort_values(key).reset_index(drop=True)
        assert len(a) > 0
        if tm.task_type == "recommendation":
            a[tm.dst_entity_col] = a[tm.dst_entity_col].map(list)
            b[tm.dst_entity_col] = b[tm.dst_entity_col].map(list)
        pd.testing.assert_frame_equal(a, b)


def test_task_descriptions_state_the_definition(f1):
    for name in f1.get_task_names():
        tm = TaskManifest.load(f1.dataset_dir / "tasks" / name / "manifest.yaml")
        assert tm.description and "(t, t + " in tm.description, name
    dnf = TaskManifest.load(f1.dataset_dir / "tasks" / "driver-dnf" / "manifest.yaml")
    assert "statusId != 1" in dnf.description
    assert dnf.num_eval_timestamps == 40


def test_evaluate_every_task(tasks, full_db):
    rng = np.random.default_rng(0)
    for name, task in tasks.items():
        val = task.get_table("val", mask_input_cols=False)
        n = len(val.df)
        if name == "driver-circuit-compete":
            n_circuits = len(full_db.table_dict["circuits"])
            pred = np.stack([rng.permutation(n_circuits)[: task.eval_k] for _ in range(n)])
            random_map = task.evaluate(pred, target_table=val)["map"]
            # the true circuits first, padded with others: a perfect ranking
            perfect = np.stack([
                np.concatenate([c, np.setdiff1d(np.arange(n_circuits), c)])[: task.eval_k]
                for c in val.df["circuitId"]
            ])
            assert task.evaluate(perfect, target_table=val)["map"] == pytest.approx(1.0)
            assert 0.0 <= random_map < 0.5
        elif task.task_type.value == "binary_classification":
            y = val.df[task.target_col].to_numpy()
            auc = task.evaluate(rng.random(n), target_table=val)["roc_auc"]
            assert 0.0 <= auc <= 1.0
            assert task.evaluate(y.astype(float), target_table=val)["roc_auc"] == 1.0
        else:
            y = val.df[task.target_col].to_numpy()
            nmae = task.evaluate(rng.uniform(1, 20, n), target_table=val)["nmae"]
            assert np.isfinite(nmae) and nmae > 0
            assert task.evaluate(y, target_table=val)["nmae"] == 0.0


# --------------------------------------------------------------------------- caching


def test_second_load_reads_the_cache(f1, f1_source):
    manifest = f1.dataset_dir / "manifest.yaml"
    before = manifest.stat().st_mtime_ns
    start = time.perf_counter()
    again = rdlviz.load("rel-f1", source=f1_source)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert again.dataset_dir == f1.dataset_dir
    assert manifest.stat().st_mtime_ns == before


def test_changed_source_builds_a_new_folder(tmp_path, monkeypatch, f1, f1_source):
    monkeypatch.setenv("RDLVIZ_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(f1mod.SOURCE_ENV, raising=False)
    src = _copy_source(f1_source, tmp_path / "src")
    same = f1mod.prepare(source=src)
    # the key depends on the files' contents (and builder version), not their location
    assert same.name == f1.dataset_dir.name
    drivers = src / "drivers.csv"
    lines = drivers.read_text().splitlines(keepends=True)
    assert '"British"' in lines[1]
    lines[1] = lines[1].replace('"British"', '"Scottish"')
    drivers.write_text("".join(lines))
    changed = f1mod.prepare(source=src)
    assert changed != same and (changed / "manifest.yaml").exists()
    nat = pd.read_parquet(changed / "db" / "drivers.parquet")["nationality"]
    assert (nat == "Scottish").sum() == 1
    # with no source at all, the newest cached build is used
    assert f1mod.prepare() == changed


def test_refresh_rebuilds(tmp_path, monkeypatch, f1_source):
    monkeypatch.setenv("RDLVIZ_HOME", str(tmp_path / "home"))
    first = f1mod.prepare(source=f1_source)
    marker = first / "db" / "marker"
    marker.write_text("x")
    again = f1mod.prepare(source=f1_source, refresh=True)
    assert again == first and not marker.exists()


# --------------------------------------------------------------------------- errors


def test_no_source_raises_offline_error_naming_the_ways_in(tmp_path, monkeypatch):
    monkeypatch.setenv("RDLVIZ_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv(f1mod.SOURCE_ENV, raising=False)
    with pytest.raises(OfflineError) as e:
        rdlviz.load("rel-f1")
    msg = str(e.value)
    for way in ("source=", "RDLVIZ_F1_SOURCE", "rel-lahman", "from_tables"):
        assert way in msg, way


def test_missing_csv_is_named(tmp_path, f1_source):
    src = _copy_source(f1_source, tmp_path / "src", skip=("qualifying.csv",))
    with pytest.raises(SchemaError, match="qualifying.csv") as e:
        f1mod.prepare(source=src)
    assert e.value.table == "qualifying"


def test_missing_folder_is_a_schema_error(tmp_path):
    with pytest.raises(SchemaError, match="does not exist"):
        f1mod.prepare(source=tmp_path / "nowhere")


def test_bad_values_name_table_and_column(tmp_path, f1_source):
    src = _copy_source(f1_source, tmp_path / "src")
    results = src / "results.csv"
    lines = results.read_text().splitlines(keepends=True)
    header = lines[0].strip().split(",")
    row = lines[1].split(",")
    row[header.index("grid")] = '"pole"'
    lines[1] = ",".join(row)
    results.write_text("".join(lines))
    with pytest.raises(SchemaError, match="not numbers") as e:
        f1mod.build(tmp_path / "out", src)
    assert (e.value.table, e.value.column) == ("results", "grid")
    assert not (tmp_path / "out").exists()


def test_dangling_race_is_named(tmp_path, f1_source):
    src = _copy_source(f1_source, tmp_path / "src")
    q = src / "qualifying.csv"
    lines = q.read_text().splitlines(keepends=True)
    row = lines[1].split(",")
    row[1] = "999999"  # raceId
    lines[1] = ",".join(row)
    q.write_text("".join(lines))
    with pytest.raises(SchemaError, match="raceId") as e:
        f1mod.build(tmp_path / "out", src)
    assert (e.value.table, e.value.column) == ("qualifying", "raceId")
