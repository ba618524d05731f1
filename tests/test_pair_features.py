"""Pair features of a link task (:mod:`rdlviz.finetune.pair_features`): with every neighbour
taken they are exactly the counts and latest times of the source's past rows that reach the
destination, computed here with pandas; nothing after the seed time counts; a task whose
destination the graph cannot reach gets none; and the option is refused where it means
nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import rdlviz
from rdlviz.errors import ConfigError
from rdlviz.finetune.pair_features import meta_path_fanouts, pair_features
from rdlviz.graph.time import to_unix_seconds


@pytest.fixture(scope="module")
def graph(shop_links):
    return rdlviz.build_graph(shop_links, text="drop")


def _rows(shop_links, split="val"):
    df = shop_links.load_task("customer-product").get_table(split).df
    return (torch.from_numpy(to_unix_seconds(df["timestamp"])),
            torch.from_numpy(df["customer_id"].to_numpy().astype(np.int64)))


def test_with_every_neighbour_the_features_are_the_sources_past_orders(shop_links, graph):
    times, src = _rows(shop_links)
    f = pair_features(graph.data, "customers", "products", src, times, [-1, -1], "uniform", seed=0,
                      batch_size=7)  # several batches
    orders = shop_links.get_db().table_dict["orders"].df
    orders = orders.assign(t=to_unix_seconds(orders["ordered_at"]))
    expected = []
    for i, (t, c) in enumerate(zip(times.tolist(), src.tolist())):
        past = orders[(orders["customer_id"] == c) & (orders["t"] <= t)]
        g = past.groupby("product_id")["t"].agg(["count", "max"])
        for p, (n, latest) in g.iterrows():
            expected.append((i, int(p), n, n / len(past), 1 / (1 + (t - latest) / (365.25 * 86400))))
    exp = pd.DataFrame(expected, columns=["row", "dst", "count", "share", "recency"]).sort_values(["row", "dst"])
    got = pd.DataFrame({"row": f.row.numpy(), "dst": f.dst.numpy()}).sort_values(["row", "dst"])
    assert len(exp) > 100  # the check has something to compare
    np.testing.assert_array_equal(got.to_numpy(), exp[["row", "dst"]].to_numpy())
    z = f.z[torch.from_numpy(got.index.to_numpy())].numpy()
    np.testing.assert_array_equal(z[:, 0], 1.0)
    np.testing.assert_allclose(z[:, 1], np.log1p(exp["count"].to_numpy()), rtol=1e-6)
    np.testing.assert_allclose(z[:, 2], exp["share"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(z[:, 3], exp["recency"].to_numpy(), rtol=1e-6)


def test_nothing_after_the_seed_time_counts(shop_links, graph):
    times, src = _rows(shop_links)
    first = to_unix_seconds(shop_links.get_db().table_dict["orders"].df["ordered_at"]).min()
    before = torch.full_like(times, int(first) - 1)
    f = pair_features(graph.data, "customers", "products", src, before, [-1, -1], "uniform", seed=0)
    assert len(f.row) == 0
    # Moving the seed time later only adds past: counts never shrink.
    early = pair_features(graph.data, "customers", "products", src, times - 30 * 86400, [-1, -1], "uniform", seed=0)
    late = pair_features(graph.data, "customers", "products", src, times, [-1, -1], "uniform", seed=0)
    count = lambda f: pd.Series(f.z[:, 1].numpy(), index=pd.MultiIndex.from_arrays([f.row.numpy(), f.dst.numpy()]))
    a, b = count(early), count(late)
    assert set(a.index) <= set(b.index) and (b[a.index] >= a).all() and len(b) > len(a)


def test_only_the_shortest_meta_paths_are_sampled(graph):
    fan = meta_path_fanouts(list(graph.data.edge_types), "customers", "products", [8, 4])
    assert {e: f for e, f in fan.items() if any(f)} == {
        ("orders", "f2p_customer_id", "customers"): [8, 0], ("products", "rev_f2p_product_id", "orders"): [0, 4]}
    # Past the end of num_neighbors, its last value; a table is not its own destination.
    one = meta_path_fanouts(list(graph.data.edge_types), "customers", "products", [5])
    assert sorted(f for f in one.values() if any(f)) == [[0, 5], [5, 0]]
    assert meta_path_fanouts(list(graph.data.edge_types), "customers", "customers", [8, 4]) == {}
    with pytest.raises(ValueError, match="num_neighbors"):
        meta_path_fanouts(list(graph.data.edge_types), "customers", "products", [])


def test_the_model_has_a_pair_term_only_when_asked(shop_links, graph):
    kw = dict(mode="scratch", graph=graph, epochs=1, batch_size=128, num_neighbors=(8, 4), progress=False,
              backbone_kwargs=dict(channels=16, encoder_layers=1))
    on = rdlviz.finetune(shop_links, "customer-product", **kw)
    off = rdlviz.finetune(shop_links, "customer-product", pair_features=False, **kw)
    assert "pair" in on.model and "pair" not in off.model
    assert on.config["pair_features"] and not off.config["pair_features"]


def test_pair_features_are_refused_for_an_entity_task(shop):
    with pytest.raises(ConfigError, match="pair_features is for link tasks"):
        rdlviz.finetune(shop, "customer-order", mode="scratch", epochs=1, pair_features=True, progress=False)
