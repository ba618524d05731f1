"""Every kind of bad input raises an error that names the table and column and a fix;
every opt-in cleanup reports exact counts and touches nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rdlviz.data.manifest import write_dataset
from rdlviz.data.tasks import check_task, entity_task, link_task
from rdlviz.data.validate import CleanupReport, validate_tables
from rdlviz.errors import SchemaError, TaskError


def assert_names(err: SchemaError, table, column=None) -> None:
    """The error names the table (and column) in its attributes and its text, and says
    what to do."""
    text = str(err)
    assert err.table == table, text
    assert f"'{table}'" in text, text
    if column is not None:
        assert err.column == column, text
        assert f"'{column}'" in text, text
    assert "fix:" in text, text


def shop():
    """A tiny valid database: customers <- orders -> products, items -> orders."""
    customers = pd.DataFrame({"cid": [10, 11, 12], "name": ["ann", "bob", "cy"]})
    products = pd.DataFrame({"pid": ["p1", "p2"], "price": [3.5, 9.0]})
    orders = pd.DataFrame({
        "oid": [100, 101, 102, 103],
        "cid": [10, 11, 12, 10],
        "pid": ["p1", "p2", "p1", "p2"],
        "at": ["2020-01-02", "2020-03-01", "2020-02-01", "2020-04-01"],
    })
    items = pd.DataFrame({"iid": [1, 2, 3, 4, 5], "oid": [100, 100, 101, 102, 103],
                          "qty": [1, 2, 1, 5, 1]})
    tables = {"customers": customers, "products": products, "orders": orders, "items": items}
    pkeys = {"customers": "cid", "products": "pid", "orders": "oid", "items": "iid"}
    fkeys = {"orders": {"cid": "customers", "pid": "products"}, "items": {"oid": "orders"}}
    time_cols = {"orders": "at"}
    return tables, pkeys, fkeys, time_cols


def run(tables, pkeys, fkeys, time_cols, **kw):
    return validate_tables(tables, pkeys, fkeys, time_cols, **kw)


def test_valid_database_passes_unchanged():
    tables, pkeys, fkeys, time_cols = shop()
    out, report = run(tables, pkeys, fkeys, time_cols)
    assert not report and str(report) == "no cleanup needed"
    assert {t: len(df) for t, df in out.items()} == {t: len(df) for t, df in tables.items()}
    assert out["orders"]["at"].dtype == "datetime64[ns]"
    assert tables["orders"]["at"].dtype != "datetime64[ns]"  # the caller's frame is untouched


# --------------------------------------------------------------------- primary keys


def test_duplicate_primary_key():
    tables, pkeys, fkeys, time_cols = shop()
    tables["customers"].loc[2, "cid"] = 10
    with pytest.raises(SchemaError, match="duplicate primary key") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "customers", "cid")
    assert "[10]" in str(e.value)  # shows the offending value


def test_missing_primary_key():
    tables, pkeys, fkeys, time_cols = shop()
    tables["products"].loc[1, "pid"] = None
    with pytest.raises(SchemaError, match="missing primary key") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "products", "pid")


def test_primary_key_column_not_found():
    tables, pkeys, fkeys, time_cols = shop()
    pkeys["customers"] = "customer_id"
    with pytest.raises(SchemaError, match="not found") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "customers", "customer_id")


def test_composite_primary_key():
    tables, pkeys, fkeys, time_cols = shop()
    pkeys["items"] = ["oid", "iid"]
    with pytest.raises(SchemaError, match="composite") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert e.value.table == "items" and "oid" in e.value.column and "iid" in e.value.column
    assert "surrogate key" in str(e.value)


def test_single_column_key_written_as_list_is_accepted():
    tables, pkeys, fkeys, time_cols = shop()
    pkeys["customers"] = ["cid"]
    out, _ = run(tables, pkeys, fkeys, time_cols)
    assert len(out["customers"]) == 3


def test_primary_key_that_is_also_a_foreign_key():
    tables, pkeys, fkeys, time_cols = shop()
    fkeys["items"] = {"iid": "orders"}
    with pytest.raises(SchemaError, match="both the primary key and a foreign key") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "items", "iid")


# --------------------------------------------------------------------- foreign keys


def test_dangling_foreign_key():
    tables, pkeys, fkeys, time_cols = shop()
    tables["orders"].loc[1, "cid"] = 99
    with pytest.raises(SchemaError, match=r"1 values reference no row of 'customers.cid'") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "orders", "cid")
    assert "on_dangling='null'" in str(e.value)


def test_foreign_key_to_unknown_table():
    tables, pkeys, fkeys, time_cols = shop()
    fkeys["orders"]["pid"] = "product"
    with pytest.raises(SchemaError, match="unknown table 'product'") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "orders", "pid")


def test_foreign_key_to_table_without_primary_key():
    tables, pkeys, fkeys, time_cols = shop()
    del pkeys["products"]
    with pytest.raises(SchemaError, match="has no primary key") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "orders", "pid")


def test_foreign_key_column_not_found():
    tables, pkeys, fkeys, time_cols = shop()
    fkeys["items"] = {"order_id": "orders"}
    with pytest.raises(SchemaError, match="not found") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "items", "order_id")


def test_foreign_key_type_mismatch_is_explained():
    # "100" never equals 100: without this check it would read as 5 dangling keys.
    tables, pkeys, fkeys, time_cols = shop()
    tables["items"]["oid"] = tables["items"]["oid"].astype(str)
    with pytest.raises(SchemaError, match="holds strings") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "items", "oid")


def test_declarations_naming_unknown_tables():
    tables, pkeys, fkeys, time_cols = shop()
    for decl in ("pkeys", "fkeys", "time_cols"):
        args = dict(pkeys=dict(pkeys), fkeys=dict(fkeys), time_cols=dict(time_cols))
        args[decl]["orderz"] = {} if decl == "fkeys" else "x"
        with pytest.raises(SchemaError, match=f"named in {decl}") as e:
            validate_tables(tables, **args)
        assert_names(e.value, "orderz")


def test_write_dataset_does_not_ignore_a_misspelt_table(tmp_path):
    # write_dataset completes the declarations per table; a typo must still fail.
    tables, pkeys, fkeys, time_cols = shop()
    time_cols["order"] = "at"
    with pytest.raises(SchemaError, match="named in time_cols") as e:
        write_dataset("x", tables, pkeys=pkeys, fkeys=fkeys, time_cols=time_cols,
                      val_timestamp="2020-02-01", test_timestamp="2020-03-01",
                      out_dir=tmp_path / "ds")
    assert_names(e.value, "order")
    assert not (tmp_path / "ds").exists()


# --------------------------------------------------------------------- times


def test_unparseable_time():
    tables, pkeys, fkeys, time_cols = shop()
    tables["orders"].loc[2, "at"] = "last tuesday"
    with pytest.raises(SchemaError, match="cannot be parsed as dates") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "orders", "at")
    assert "last tuesday" in str(e.value)


def test_iso_times_of_different_precision_parse():
    tables, pkeys, fkeys, time_cols = shop()
    tables["orders"].loc[2, "at"] = "2020-02-01 10:30:00"
    out, _ = run(tables, pkeys, fkeys, time_cols)
    assert out["orders"]["at"][2] == pd.Timestamp("2020-02-01 10:30")


def test_missing_time():
    tables, pkeys, fkeys, time_cols = shop()
    tables["orders"].loc[[1, 3], "at"] = None
    with pytest.raises(SchemaError, match="2 rows have a missing time") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "orders", "at")
    assert "on_missing_time='drop'" in str(e.value)


def test_numeric_time_is_refused_not_read_as_nanoseconds():
    tables, pkeys, fkeys, time_cols = shop()
    tables["orders"]["at"] = [2019, 2020, 2020, 2021]
    with pytest.raises(SchemaError, match="holds numbers") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "orders", "at")


def test_time_column_not_found():
    tables, pkeys, fkeys, time_cols = shop()
    time_cols["orders"] = "date"
    with pytest.raises(SchemaError, match="time column not found") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "orders", "date")


def test_time_column_declared_as_key():
    tables, pkeys, fkeys, time_cols = shop()
    time_cols["orders"] = "cid"
    with pytest.raises(SchemaError, match="both as a key and as the time column") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "orders", "cid")


def test_tz_aware_times_become_naive_utc():
    tables, pkeys, fkeys, time_cols = shop()
    tables["orders"]["at"] = pd.to_datetime(tables["orders"]["at"]).dt.tz_localize("Europe/Oslo")
    out, _ = run(tables, pkeys, fkeys, time_cols)
    assert out["orders"]["at"][0] == pd.Timestamp("2020-01-01 23:00")


# --------------------------------------------------------------------- tables and types


def test_empty_table():
    tables, pkeys, fkeys, time_cols = shop()
    tables["products"] = tables["products"].iloc[:0]
    with pytest.raises(SchemaError, match="is empty") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "products")


def test_duplicate_column_names():
    tables, pkeys, fkeys, time_cols = shop()
    tables["customers"] = pd.concat([tables["customers"], tables["customers"][["name"]]], axis=1)
    with pytest.raises(SchemaError, match="duplicate column names") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "customers", "name")


@pytest.mark.parametrize("values, kinds", [
    (["a", 1, "b"], ("strings", "numbers")),
    ([1.5, True, 2.0], ("numbers", "booleans")),
    (["a", pd.Timestamp("2020-01-01"), "b"], ("strings", "dates")),
])
def test_mixed_type_column(values, kinds):
    tables, pkeys, fkeys, time_cols = shop()
    tables["customers"]["note"] = pd.Series(values, dtype=object)
    with pytest.raises(SchemaError, match="mixed types") as e:
        run(tables, pkeys, fkeys, time_cols)
    assert_names(e.value, "customers", "note")
    for k in kinds:
        assert k in str(e.value)


def test_mixed_type_found_beyond_any_sample():
    # One number after 20,000 strings: a check that samples the head would miss it.
    n = 20_001
    df = pd.DataFrame({"k": np.arange(n), "t": pd.Timestamp("2020-01-01"),
                       "code": pd.Series(["x"] * (n - 1) + [7], dtype=object)})
    with pytest.raises(SchemaError, match=r"numbers \(1 rows") as e:
        validate_tables({"big": df}, {"big": "k"}, {}, {"big": "t"})
    assert_names(e.value, "big", "code")


def test_uniform_object_columns_are_not_mixed():
    tables, pkeys, fkeys, time_cols = shop()
    tables["customers"]["ints_and_floats"] = pd.Series([1, 2.5, None], dtype=object)
    tables["customers"]["vectors"] = pd.Series([[1.0, 2.0], [0.0, 1.0], [3.0, 3.0]])
    tables["customers"]["words"] = pd.Series(["a", None, "c"], dtype=object)
    out, _ = run(tables, pkeys, fkeys, time_cols)
    assert list(out["customers"]["vectors"][0]) == [1.0, 2.0]


# --------------------------------------------------------------------- opt-in cleanups


def test_null_cleanup_counts_exactly_and_keeps_every_row():
    tables, pkeys, fkeys, time_cols = shop()
    big = 2**62 + 1  # would be rounded if the column went through float64
    tables["customers"].loc[0, "cid"] = big
    tables["orders"]["cid"] = [big, 11, 99, 98]  # two dangling
    tables["orders"].loc[1, "pid"] = "p9"  # one dangling
    out, report = run(tables, pkeys, fkeys, time_cols, on_dangling="null")
    assert report.nulled == {("orders", "cid"): 2, ("orders", "pid"): 1}
    assert not report.dropped and not report.missing_time
    assert {t: len(df) for t, df in out.items()} == {t: len(df) for t, df in tables.items()}
    cid = out["orders"]["cid"]
    assert str(cid.dtype) == "Int64"  # nullable integer, not float
    assert cid[0] == big and cid[1] == 11 and cid.isna().tolist() == [False, False, True, True]
    assert out["orders"]["pid"].isna().tolist() == [False, True, False, False]
    assert "orders.cid: 2 dangling foreign keys set missing" in str(report)


def test_drop_cleanup_cascades_and_counts_exactly():
    tables, pkeys, fkeys, time_cols = shop()
    tables["orders"].loc[0, "cid"] = 99  # order 100 dangles -> items 1 and 2 lose their order
    out, report = run(tables, pkeys, fkeys, time_cols, on_dangling="drop")
    assert report.dropped == {("orders", "cid"): 1, ("items", "oid"): 2}
    assert report.rows_dropped("items") == 2
    assert out["orders"]["oid"].tolist() == [101, 102, 103]
    assert out["items"]["iid"].tolist() == [3, 4, 5]
    assert len(out["customers"]) == 3 and len(out["products"]) == 2  # untouched


def test_drop_cleanup_cascades_through_a_self_reference():
    staff = pd.DataFrame({"sid": [1, 2, 3, 4, 5], "boss": [None, 1, 2, 3, 42],
                          "hired": pd.date_range("2020-01-01", periods=5)})
    staff.loc[1, "boss"] = 77  # 2 -> nobody: drops 2, then 3 (boss 2), then 4 (boss 3)
    out, report = validate_tables({"staff": staff}, {"staff": "sid"}, {"staff": {"boss": "staff"}},
                                  {"staff": "hired"}, on_dangling="drop")
    assert out["staff"]["sid"].tolist() == [1]
    assert report.dropped == {("staff", "boss"): 4}


def test_missing_time_drop_then_dangling_references_are_reported():
    tables, pkeys, fkeys, time_cols = shop()
    tables["orders"].loc[1, "at"] = None  # order 101, referenced by item 3
    with pytest.raises(SchemaError, match="dropped by the missing-time cleanup") as e:
        run(tables, pkeys, fkeys, time_cols, on_missing_time="drop")
    assert_names(e.value, "items", "oid")
    out, report = run(tables, pkeys, fkeys, time_cols, on_missing_time="drop", on_dangling="null")
    assert report.missing_time == {("orders", "at"): 1}
    assert report.nulled == {("items", "oid"): 1}
    assert out["orders"]["oid"].tolist() == [100, 102, 103]
    assert out["items"]["oid"].isna().tolist() == [False, False, True, False, False]


def test_cleanup_with_a_repeated_index_drops_only_the_bad_row():
    # pd.concat keeps index labels, so 0 and 1 each name two rows here.
    tables, pkeys, fkeys, time_cols = shop()
    tables["orders"] = pd.concat([tables["orders"].iloc[:2], tables["orders"].iloc[2:]])
    tables["orders"].index = [0, 1, 0, 1]
    tables["orders"].iloc[2, tables["orders"].columns.get_loc("cid")] = 99
    out, report = run(tables, pkeys, fkeys, time_cols, on_dangling="drop")
    assert out["orders"]["oid"].tolist() == [100, 101, 103]
    assert report.dropped[("orders", "cid")] == 1


def test_cleanup_that_empties_a_table_says_so():
    tables, pkeys, fkeys, time_cols = shop()
    tables["items"]["oid"] = 999
    with pytest.raises(SchemaError, match="no rows left") as e:
        run(tables, pkeys, fkeys, time_cols, on_dangling="drop")
    assert_names(e.value, "items")


def test_cleanup_report_round_trips_through_json():
    report = CleanupReport(nulled={("a", "b"): 2}, dropped={("c", "d"): 3},
                           missing_time={("e", "f"): 1})
    assert CleanupReport.from_dict(report.to_dict()) == report


def test_unknown_cleanup_option():
    tables, pkeys, fkeys, time_cols = shop()
    with pytest.raises(SchemaError, match="on_dangling must be one of"):
        run(tables, pkeys, fkeys, time_cols, on_dangling="ignore")


# --------------------------------------------------------------------- task SQL


def task_db():
    """Reindexed-style tables for task checks: 6 customers, monthly orders over 2 years."""
    n = 24
    customers = pd.DataFrame({"cid": np.arange(6), "joined": pd.Timestamp("2019-12-01")})
    orders = pd.DataFrame({
        "oid": np.arange(n), "cid": np.arange(n) % 6,
        "at": pd.date_range("2020-01-15", periods=n, freq="30D"), "amount": np.arange(n) * 1.5,
    })
    return {"customers": customers, "orders": orders}, {"customers": "joined", "orders": "at"}


GOOD_SQL = """
SELECT t.timestamp AS timestamp, c.cid AS cid,
       CAST(COUNT(o.oid) > 0 AS INTEGER) AS bought
FROM timestamps t CROSS JOIN customers c
LEFT JOIN orders o ON o.cid = c.cid AND o.at > t.timestamp
                  AND o.at <= t.timestamp + INTERVAL '{timedelta}'
GROUP BY t.timestamp, c.cid
"""


def task(sql=GOOD_SQL, **kw):
    args = dict(entity_table="customers", entity_col="cid", target_col="bought",
                sql=sql, timedelta="60 days", task_type="binary_classification")
    args.update(kw)
    return entity_task("buy", **args)


VAL, TEST = pd.Timestamp("2021-01-01"), pd.Timestamp("2021-06-01")


def check(tm, **kw):
    tables, time_cols = task_db()
    return check_task(tm, tables, VAL, time_cols=time_cols, test_timestamp=TEST, **kw)


def test_good_task_passes():
    out = check(task())
    assert list(out.columns) == ["timestamp", "cid", "bought"]
    assert len(out) == 6 and set(out["bought"]) <= {0, 1}


@pytest.mark.parametrize("sql, table, column", [
    (GOOD_SQL.replace("JOIN orders o", "JOIN ordrs o"), "ordrs", None),
    (GOOD_SQL.replace("o.at >", "o.ordered_at >"), "orders", "ordered_at"),
    (GOOD_SQL.replace("c.cid AS cid", "c.customer_id AS cid"), "customers", "customer_id"),
])
def test_task_sql_with_unknown_table_or_column(sql, table, column):
    with pytest.raises(TaskError, match="unknown") as e:
        check(task(sql))
    assert e.value.task == "buy" and "task 'buy'" in str(e.value)
    assert_names(e.value, table, column)


def test_task_sql_with_unqualified_unknown_column_names_the_tables_read():
    sql = GOOD_SQL.replace("COUNT(o.oid)", "COUNT(order_no)")
    with pytest.raises(TaskError, match="unknown column 'order_no'") as e:
        check(task(sql))
    assert e.value.column == "order_no" and "orders" in e.value.table


def test_task_sql_with_wrong_output_columns():
    with pytest.raises(TaskError, match=r"must output \['timestamp', 'cid', 'bought'\]") as e:
        check(task(GOOD_SQL.replace("AS bought", "AS label")))
    assert e.value.column == "bought" and "AS bought" in str(e.value)


def test_task_entity_table_unknown():
    with pytest.raises(TaskError, match="not in the database") as e:
        check(task(entity_table="clients"))
    assert_names(e.value, "clients")


def test_task_time_column_must_be_the_seed_time():
    sql = GOOD_SQL.replace("SELECT t.timestamp AS timestamp",
                           "SELECT t.timestamp + INTERVAL '1 day' AS timestamp")
    with pytest.raises(TaskError, match="must be the seed time") as e:
        check(task(sql))
    assert e.value.column == "timestamp"


def test_binary_task_target_must_be_0_1():
    with pytest.raises(TaskError, match="must be 0/1") as e:
        check(task(GOOD_SQL.replace("CAST(COUNT(o.oid) > 0 AS INTEGER)", "2 * COUNT(o.oid)")))
    assert e.value.column == "bought"


def test_task_labels_must_not_be_missing():
    sql = GOOD_SQL.replace("CAST(COUNT(o.oid) > 0 AS INTEGER)", "MAX(o.amount)")
    with pytest.raises(TaskError, match="missing labels") as e:
        check(task(sql, task_type="regression"))
    assert e.value.column == "bought"


def test_task_sql_that_reads_beyond_the_window_is_caught():
    leaky = GOOD_SQL.replace("AND o.at <= t.timestamp + INTERVAL '{timedelta}'", "")
    with pytest.raises(TaskError, match="reads beyond the window") as e:
        check(task(leaky))
    assert e.value.task == "buy"


def test_task_window_must_fit_the_cutoffs():
    with pytest.raises(TaskError, match="longer than the gap"):
        check(task(timedelta="200 days"))
    tables, time_cols = task_db()
    last = tables["orders"]["at"].max()
    late = last - pd.Timedelta("30 days")  # a 60-day test window from here overruns the data
    with pytest.raises(TaskError, match="test window ends") as e:
        check_task(task(), tables, VAL, time_cols=time_cols, test_timestamp=late)
    assert "move test_timestamp" in str(e.value)
    # from 2020-03-01 back to the first row (2019-12-01) only 1 window of 60 days fits
    with pytest.raises(TaskError, match="training windows"):
        check_task(task(), tables, pd.Timestamp("2020-03-01"), time_cols=time_cols,
                   test_timestamp="2020-06-01")


def test_link_task_destinations_must_be_lists():
    sql = """SELECT t.timestamp AS timestamp, o.cid AS cid, o.oid AS oid
             FROM timestamps t JOIN orders o ON o.at > t.timestamp
             AND o.at <= t.timestamp + INTERVAL '{timedelta}'"""
    tm = link_task("next", src_entity_table="customers", src_entity_col="cid",
                   dst_entity_table="orders", dst_entity_col="oid", sql=sql,
                   timedelta="60 days", eval_k=3)
    with pytest.raises(TaskError, match="list") as e:
        check(tm)
    assert_names(e.value, "orders", "oid")
    ok = link_task("next", src_entity_table="customers", src_entity_col="cid",
                   dst_entity_table="orders", dst_entity_col="oid",
                   sql=sql.replace("o.oid AS oid", "LIST(o.oid) AS oid") + " GROUP BY ALL",
                   timedelta="60 days", eval_k=3)
    assert len(check(ok)) > 0


def test_task_remove_columns_must_exist():
    with pytest.raises(TaskError, match="remove_columns") as e:
        check(task(remove_columns=[["orders", "price"]]))
    assert_names(e.value, "orders", "price")


def test_task_declaration_errors():
    with pytest.raises(TaskError, match="task_type"):
        task(task_type="classification")
    with pytest.raises(TaskError, match="not a duration"):
        task(timedelta="a month")
