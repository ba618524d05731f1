"""Your own database: the same small shop loaded from pandas, SQLite, DuckDB and a CSV
folder comes out as the same RelBench database, reindexed in time order, with a working
declared task."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest
import yaml

import rdlviz
from rdlviz.errors import ConfigError, SchemaError, TaskError

VAL, TEST = "2021-01-01", "2021-07-01"
PKEYS = {"customers": "customer_id", "products": "product_id", "orders": "order_id"}
FKEYS = {"orders": {"customer_id": "customers", "product_id": "products"}}
TIME_COLS = {"customers": "signed_up", "orders": "ordered_at"}

WILL_ORDER_SQL = """
SELECT t.timestamp AS timestamp, c.customer_id AS customer_id,
       CAST(EXISTS (
           SELECT 1 FROM orders o
           WHERE o.customer_id = c.customer_id
             AND o.ordered_at > t.timestamp
             AND o.ordered_at <= t.timestamp + INTERVAL '{timedelta}'
       ) AS INTEGER) AS will_order
FROM timestamps t, customers c
WHERE c.signed_up <= t.timestamp
"""
TASK = dict(task_type="binary_classification", entity_table="customers",
            entity_col="customer_id", target_col="will_order", timedelta="30 days",
            sql=WILL_ORDER_SQL)


def make_shop(seed: int = 0):
    """customers (signed up over 2020) <- orders (2020-2021) -> products (static).

    Source keys are scattered, not 0..n-1, and orders are not in time order, so
    reindexing has real work to do. Times are distinct, so the time order is unique.
    """
    rng = np.random.default_rng(seed)
    nc, npr, no = 60, 12, 900
    start = pd.Timestamp("2020-01-01")
    year = 366 * 86400
    signed = start + pd.to_timedelta(np.sort(rng.choice(year, nc, replace=False)), unit="s")
    customers = pd.DataFrame({
        "customer_id": rng.permutation(np.arange(nc)) * 3 + 1000,
        "name": [f"customer {i}" for i in range(nc)],
        "city": rng.choice(["Oslo", "Lima", "Pune", "Kyiv"], nc),
        "age": np.where(rng.random(nc) < 0.15, np.nan, rng.integers(18, 80, nc)).astype(float),
        "birth_date": pd.Timestamp("1960-01-01")
        + pd.to_timedelta(rng.integers(0, 15000, nc), unit="D"),
        "signed_up": signed,
    })
    products = pd.DataFrame({
        "product_id": np.arange(npr) * 7 + 3,
        "name": [f"product {i}" for i in range(npr)],
        "category": rng.choice(["tea", "cups", "pots"], npr),
        "price": rng.uniform(2, 90, npr).round(2),
    })
    # Each order comes after its customer signed up.
    buyer = rng.integers(0, nc, no)
    first = signed.to_numpy()[buyer]
    end = pd.Timestamp("2021-12-31").to_datetime64()
    offs = rng.random(no) * (end - first).astype("timedelta64[s]").astype(np.int64)
    ordered = pd.Series(first + offs.astype("timedelta64[s]")).dt.floor("s")
    ordered = ordered + pd.to_timedelta(np.arange(no) % 7, unit="ms")  # distinct times
    orders = pd.DataFrame({
        "order_id": rng.permutation(no) + 50_000,
        "customer_id": customers["customer_id"].to_numpy()[buyer],
        "product_id": rng.choice(products["product_id"], no),
        "quantity": rng.integers(1, 6, no),
        "gift": rng.random(no) < 0.2,
        "ordered_at": ordered.to_numpy(),
    })
    assert orders["ordered_at"].is_unique
    # Static tables in primary-key order: the SQL readers read that order.
    customers = customers.sort_values("customer_id", ignore_index=True)
    return {"customers": customers, "products": products, "orders": orders}


@pytest.fixture(scope="module")
def shop():
    return make_shop()


@pytest.fixture(scope="module")
def from_pandas(shop):
    return rdlviz.from_tables(shop, pkeys=PKEYS, fkeys=FKEYS, time_cols=TIME_COLS,
                              val_timestamp=VAL, test_timestamp=TEST, name="shop",
                              tasks={"customer-order": TASK})


def write_sqlite(path, shop, *, composite=False):
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, city TEXT,
                                age INTEGER, birth_date DATE, signed_up TIMESTAMP);
        CREATE TABLE products (product_id INTEGER PRIMARY KEY, name TEXT, category TEXT,
                               price REAL);
        CREATE TABLE orders (order_id INTEGER PRIMARY KEY,
                             customer_id INTEGER REFERENCES customers (customer_id),
                             product_id INTEGER REFERENCES products,
                             quantity INTEGER, gift BOOLEAN, ordered_at TIMESTAMP);
    """)
    if composite:
        con.execute("CREATE TABLE ratings (customer_id INTEGER, product_id INTEGER, stars "
                    "INTEGER, PRIMARY KEY (customer_id, product_id))")
        c, p = shop["customers"]["customer_id"], shop["products"]["product_id"]
        con.executemany("INSERT INTO ratings VALUES (?, ?, ?)",
                        [(int(c[i]), int(p[i]), i % 5 + 1) for i in range(5)])
    for t, df in shop.items():
        rows = df.astype(object).where(df.notna(), None)
        for col in df.columns:
            if pd.api.types.is_datetime64_any_dtype(df[col]):
                rows[col] = df[col].map(lambda v: v.isoformat(sep=" "))
        con.executemany(f"INSERT INTO {t} VALUES ({', '.join('?' * df.shape[1])})",
                        [tuple(r) for r in rows.itertuples(index=False)])
    con.commit()
    con.close()


def write_duckdb(path, shop):
    import duckdb

    con = duckdb.connect(str(path))
    con.execute("""
        CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, name VARCHAR, city VARCHAR,
                                age BIGINT, birth_date DATE, signed_up TIMESTAMP);
        CREATE TABLE products (product_id BIGINT PRIMARY KEY, name VARCHAR,
                               category VARCHAR, price DOUBLE);
        CREATE TABLE orders (order_id BIGINT PRIMARY KEY,
                             customer_id BIGINT REFERENCES customers (customer_id),
                             product_id BIGINT REFERENCES products (product_id),
                             quantity BIGINT, gift BOOLEAN, ordered_at TIMESTAMP);
    """)
    for t in ("customers", "products", "orders"):  # parents first: the keys are enforced
        df = shop[t]  # noqa: F841 -- read by duckdb's replacement scan
        con.execute(f"INSERT INTO {t} SELECT * FROM df")
    con.close()


def assert_same_db(a, b):
    da, db_ = a.get_db(upto_test_timestamp=False), b.get_db(upto_test_timestamp=False)
    assert set(da.table_dict) == set(db_.table_dict)
    for name, ta in da.table_dict.items():
        tb = db_.table_dict[name]
        assert (ta.pkey_col, ta.time_col, ta.fkey_col_to_pkey_table) == (
            tb.pkey_col, tb.time_col, tb.fkey_col_to_pkey_table), name
        pd.testing.assert_frame_equal(ta.df, tb.df, obj=name)


# --------------------------------------------------------------------- pandas


def test_from_tables_reindexes_in_time_order(shop, from_pandas):
    db = from_pandas.get_db(upto_test_timestamp=False)
    customers, orders = db.table_dict["customers"].df, db.table_dict["orders"].df
    for name, table in db.table_dict.items():
        assert table.df[table.pkey_col].tolist() == list(range(len(shop[name])))
    assert customers["signed_up"].is_monotonic_increasing
    assert orders["ordered_at"].is_monotonic_increasing
    assert db.table_dict["products"].df["name"].tolist() == shop["products"]["name"].tolist()
    # Foreign keys follow their rows: each order still points at the same customer and
    # product (orders are identified by their distinct times).
    src = shop["orders"].merge(shop["customers"][["customer_id", "name"]], on="customer_id") \
        .merge(shop["products"][["product_id", "name"]], on="product_id",
               suffixes=("_customer", "_product")).set_index("ordered_at")
    got = orders.assign(
        name_customer=customers["name"].to_numpy()[orders["customer_id"]],
        name_product=db.table_dict["products"].df["name"].to_numpy()[orders["product_id"]],
    ).set_index("ordered_at")
    src = src.loc[got.index]
    assert (got["name_customer"] == src["name_customer"]).all()
    assert (got["name_product"] == src["name_product"]).all()
    assert (got["quantity"] == src["quantity"]).all()
    assert not from_pandas.cleanup_report


def test_declared_task_loads_with_correct_labels(shop, from_pandas):
    assert from_pandas.get_task_names() == ["customer-order"]
    task = from_pandas.load_task("customer-order")
    train = task.get_table("train").df
    assert list(train.columns) == ["timestamp", "customer_id", "will_order"]
    assert len(train) > 100 and 0 < train["will_order"].mean() < 1
    # No label window reaches past the validation cutoff.
    assert (train["timestamp"] + pd.Timedelta("30 days") <= pd.Timestamp(VAL)).all()
    # Recompute every label from the source tables with pandas.
    db = from_pandas.get_db(upto_test_timestamp=False)
    orders = db.table_dict["orders"].df
    signed = db.table_dict["customers"].df["signed_up"]
    for (t, c, y) in train.itertuples(index=False):
        assert signed[c] <= t
        mine = orders[orders["customer_id"] == c]["ordered_at"]
        assert y == int(((mine > t) & (mine <= t + pd.Timedelta("30 days"))).any())
    for split in ("val", "test"):
        assert len(task.get_table(split).df) > 0


def test_same_content_reuses_the_cache_and_a_change_rebuilds(shop, from_pandas):
    again = rdlviz.from_tables(shop, pkeys=PKEYS, fkeys=FKEYS, time_cols=TIME_COLS,
                               val_timestamp=VAL, test_timestamp=TEST, name="shop",
                               tasks={"customer-order": TASK})
    assert again.dataset_dir == from_pandas.dataset_dir
    changed = {**shop, "products": shop["products"].assign(price=shop["products"]["price"] + 1)}
    other = rdlviz.from_tables(changed, pkeys=PKEYS, fkeys=FKEYS, time_cols=TIME_COLS,
                               val_timestamp=VAL, test_timestamp=TEST, name="shop")
    assert other.dataset_dir != from_pandas.dataset_dir


def test_opt_in_cleanup_is_reported_and_warned(shop):
    dirty = dict(shop)
    orders = shop["orders"].copy()
    orders.loc[[3, 5, 8], "customer_id"] = -1
    dirty["orders"] = orders
    args = dict(pkeys=PKEYS, fkeys=FKEYS, time_cols=TIME_COLS, val_timestamp=VAL,
                test_timestamp=TEST)
    with pytest.raises(SchemaError, match="3 values reference no row") as e:
        rdlviz.from_tables(dirty, **args)
    assert (e.value.table, e.value.column) == ("orders", "customer_id")
    for _ in range(2):  # built, then from the cache: reported both times
        with pytest.warns(UserWarning, match="3 rows dropped"):
            ds = rdlviz.from_tables(dirty, on_dangling="drop", name="dirty", **args)
        assert ds.cleanup_report.dropped == {("orders", "customer_id"): 3}
        assert not ds.cleanup_report.nulled
        db = ds.get_db(upto_test_timestamp=False)
        assert len(db.table_dict["orders"].df) == len(orders) - 3
        assert len(db.table_dict["customers"].df) == len(shop["customers"])

    with pytest.warns(UserWarning, match="3 dangling foreign keys set missing"):
        ds = rdlviz.from_tables(dirty, on_dangling="null", name="dirty", **args)
    assert ds.cleanup_report.nulled == {("orders", "customer_id"): 3}
    db = ds.get_db(upto_test_timestamp=False)
    got = db.table_dict["orders"].df
    assert len(got) == len(orders)
    assert str(got["customer_id"].dtype) == "Int64" and got["customer_id"].isna().sum() == 3
    # The nulled orders are exactly the three dirty ones; the rest still reference rows.
    nulled_times = set(got.loc[got["customer_id"].isna(), "ordered_at"])
    assert nulled_times == set(orders.loc[[3, 5, 8], "ordered_at"])
    assert got["customer_id"].dropna().between(0, len(shop["customers"]) - 1).all()


def test_out_dir_is_never_overwritten_by_accident(shop, tmp_path):
    args = dict(pkeys=PKEYS, fkeys=FKEYS, time_cols=TIME_COLS, val_timestamp=VAL,
                test_timestamp=TEST)
    ds = rdlviz.from_tables(shop, out_dir=tmp_path / "mine", **args)
    assert (tmp_path / "mine" / "manifest.yaml").exists() and ds.dataset_dir == tmp_path / "mine"
    with pytest.raises(ConfigError, match="overwrite=True"):
        rdlviz.from_tables(shop, out_dir=tmp_path / "mine", **args)
    small = {**shop, "products": shop["products"].iloc[:12]}
    rdlviz.from_tables(small, out_dir=tmp_path / "mine", overwrite=True, **args)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a dataset folder"):
        rdlviz.from_tables(shop, out_dir=tmp_path / "other", overwrite=True, **args)
    assert (tmp_path / "other" / "notes.txt").exists()


def test_bad_task_fails_before_anything_is_written(shop, tmp_path):
    bad = dict(TASK, sql=WILL_ORDER_SQL.replace("c.signed_up", "c.joined"))
    with pytest.raises(TaskError, match="unknown column 'joined'") as e:
        rdlviz.from_tables(shop, pkeys=PKEYS, fkeys=FKEYS, time_cols=TIME_COLS,
                           val_timestamp=VAL, test_timestamp=TEST, out_dir=tmp_path / "x",
                           tasks={"customer-order": bad})
    assert (e.value.table, e.value.column) == ("customers", "joined")
    assert not (tmp_path / "x").exists()
    with pytest.raises(TaskError, match="missing \\['sql'\\]"):
        rdlviz.from_tables(shop, pkeys=PKEYS, fkeys=FKEYS, time_cols=TIME_COLS,
                           val_timestamp=VAL, test_timestamp=TEST,
                           tasks=[{k: v for k, v in TASK.items() if k != "sql"} | {"name": "t"}])


# --------------------------------------------------------------------- SQLite


def test_from_sqlite_matches_pandas(shop, from_pandas, tmp_path):
    path = tmp_path / "shop.sqlite"
    write_sqlite(path, shop)
    ds = rdlviz.from_sqlite(path, time_cols=TIME_COLS, val_timestamp=VAL,
                            test_timestamp=TEST, tasks={"customer-order": TASK})
    assert ds.manifest.name == "shop"
    assert_same_db(ds, from_pandas)
    train = ds.load_task("customer-order").get_table("train").df
    expected = from_pandas.load_task("customer-order").get_table("train").df
    pd.testing.assert_frame_equal(train, expected)


def test_from_sqlite_guesses_time_columns_only_when_asked(shop, tmp_path):
    path = tmp_path / "shop.sqlite"
    write_sqlite(path, shop)
    with pytest.raises(SchemaError, match="no time column is declared") as e:
        rdlviz.from_sqlite(path, val_timestamp=VAL, test_timestamp=TEST)
    assert "orders.ordered_at" in str(e.value) and "guess_time_cols=True" in str(e.value)
    # customers has two DATE-ish columns: ambiguous unless declared.
    with pytest.raises(SchemaError, match="ambiguous") as e:
        rdlviz.from_sqlite(path, guess_time_cols=True, val_timestamp=VAL, test_timestamp=TEST)
    assert e.value.table == "customers" and "birth_date" in e.value.column
    with pytest.warns(UserWarning, match="guessed .*orders.ordered_at"):
        ds = rdlviz.from_sqlite(path, guess_time_cols=True, time_cols={"customers": "signed_up"},
                                val_timestamp=VAL, test_timestamp=TEST)
    assert ds.manifest.tables["orders"].time_col == "ordered_at"


def test_from_sqlite_overrides_win(shop, tmp_path):
    path = tmp_path / "shop.sqlite"
    write_sqlite(path, shop)
    ds = rdlviz.from_sqlite(path, tables=["customers", "orders"],
                            fkeys={"orders": {"product_id": None}}, time_cols=TIME_COLS,
                            val_timestamp=VAL, test_timestamp=TEST, name="no-products")
    spec = ds.manifest.tables
    assert set(spec) == {"customers", "orders"}
    assert spec["orders"].fkeys == {"customer_id": "customers"}
    assert spec["orders"].pkey == "order_id"
    with pytest.raises(SchemaError, match="not loaded") as e:
        rdlviz.from_sqlite(path, tables=["customers", "orders"], time_cols=TIME_COLS,
                           val_timestamp=VAL, test_timestamp=TEST)
    assert (e.value.table, e.value.column) == ("orders", "product_id")


def test_from_sqlite_composite_and_non_key_references(shop, tmp_path):
    path = tmp_path / "shop.sqlite"
    write_sqlite(path, shop, composite=True)
    with pytest.raises(SchemaError, match="composite PRIMARY KEY") as e:
        rdlviz.from_sqlite(path, time_cols=TIME_COLS, val_timestamp=VAL, test_timestamp=TEST)
    assert e.value.table == "ratings" and e.value.column == "customer_id, product_id"
    assert "pkeys={'ratings': None}" in str(e.value)
    # The suggested fix works: ratings becomes a keyless table.
    ds = rdlviz.from_sqlite(path, pkeys={"ratings": None}, time_cols=TIME_COLS,
                            val_timestamp=VAL, test_timestamp=TEST, name="with-ratings")
    assert ds.manifest.tables["ratings"].pkey is None

    path2 = tmp_path / "bad.sqlite"
    con = sqlite3.connect(path2)
    con.executescript("""
        CREATE TABLE a (id INTEGER PRIMARY KEY, code TEXT UNIQUE, t TEXT);
        CREATE TABLE b (id INTEGER PRIMARY KEY, a_code TEXT REFERENCES a (code), t TEXT);
    """)
    con.close()
    with pytest.raises(SchemaError, match="not the primary key") as e:
        rdlviz.from_sqlite(path2, time_cols={"b": "t"}, val_timestamp=VAL, test_timestamp=TEST)
    assert (e.value.table, e.value.column) == ("b", "a_code")


def test_from_sqlite_mixed_storage_is_caught(shop, tmp_path):
    # SQLite stores whatever it is given: one text value in an INTEGER column.
    path = tmp_path / "shop.sqlite"
    write_sqlite(path, shop)
    con = sqlite3.connect(path)
    con.execute("UPDATE orders SET quantity = 'two' WHERE order_id = (SELECT MIN(order_id) FROM orders)")
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match="mixed types") as e:
        rdlviz.from_sqlite(path, time_cols=TIME_COLS, val_timestamp=VAL, test_timestamp=TEST)
    assert (e.value.table, e.value.column) == ("orders", "quantity")


# --------------------------------------------------------------------- DuckDB


def test_from_duckdb_matches_pandas(shop, from_pandas, tmp_path):
    path = tmp_path / "shop.duckdb"
    write_duckdb(path, shop)
    ds = rdlviz.from_duckdb(path, time_cols=TIME_COLS, val_timestamp=VAL,
                            test_timestamp=TEST, tasks={"customer-order": TASK})
    assert_same_db(ds, from_pandas)
    assert ds.manifest.tables["orders"].fkeys == FKEYS["orders"]


def test_from_duckdb_composite_key(tmp_path):
    import duckdb

    path = tmp_path / "c.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE visits (shop INT, day DATE, n INT, PRIMARY KEY (shop, day));"
                "INSERT INTO visits VALUES (1, '2020-01-01', 3)")
    con.close()
    with pytest.raises(SchemaError, match="composite PRIMARY KEY") as e:
        rdlviz.from_duckdb(path, guess_time_cols=True, val_timestamp=VAL, test_timestamp=TEST)
    assert e.value.table == "visits" and e.value.column == "shop, day"


# --------------------------------------------------------------------- CSV folder


def test_from_csv_with_schema_yaml(shop, from_pandas, tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    for t, df in shop.items():
        df.to_csv(folder / f"{t}.csv", index=False)
    schema = {
        "name": "shop",
        "val_timestamp": VAL,
        "test_timestamp": TEST,
        "tables": {
            "customers": {"pkey": "customer_id", "time_col": "signed_up",
                          "read_csv": {"parse_dates": ["birth_date"]}},
            "products": {"pkey": "product_id"},
            "orders": {"pkey": "order_id", "time_col": "ordered_at",
                       "fkeys": {"customer_id": "customers", "product_id": "products"}},
        },
        "tasks": {"customer-order": TASK},
    }
    (folder / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    ds = rdlviz.from_csv(folder)
    assert_same_db(ds, from_pandas)
    assert len(ds.load_task("customer-order").get_table("train").df) > 0

    schema["tables"]["reviews"] = {"pkey": "review_id"}
    (folder / "schema.yaml").write_text(yaml.safe_dump(schema))
    with pytest.raises(SchemaError, match="has no reviews.csv") as e:
        rdlviz.from_csv(folder)
    assert e.value.table == "reviews"
    del schema["tables"]["reviews"]
    schema["tables"]["orders"]["primary"] = "order_id"
    (folder / "schema.yaml").write_text(yaml.safe_dump(schema))
    with pytest.raises(SchemaError, match="unknown table settings") as e:
        rdlviz.from_csv(folder)
    assert e.value.table == "orders"


def test_from_csv_bad_files(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "events.csv").write_text("id,t\n")
    (folder / "schema.yaml").write_text(
        "val_timestamp: 2021-01-01\ntest_timestamp: 2021-07-01\n"
        "tables:\n  events: {pkey: id, time_col: t}\n")
    with pytest.raises(SchemaError, match="is empty") as e:
        rdlviz.from_csv(folder)
    assert e.value.table == "events"
    (folder / "schema.yaml").write_text("val_timestamp: 2021-01-01\nsplits: 3\n")
    with pytest.raises(ConfigError, match="unknown keys \\['splits'\\]"):
        rdlviz.from_csv(folder)
