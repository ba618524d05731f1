"""benchmarks/link_ranking.py: the report behind a link task's MAP@k."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rdlviz

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
link_ranking = importlib.import_module("link_ranking")


@pytest.fixture(scope="module")
def graph(shop_links):
    return rdlviz.build_graph(shop_links, text="drop")


def test_average_precision_is_relbenchs_map(shop_links):
    task = shop_links.load_task("customer-product")
    val = task.get_table("val")
    pred = np.random.default_rng(0).integers(0, 30, (len(val.df), task.eval_k))
    ours = np.mean([link_ranking.average_precision(list(p), t, task.eval_k)
                    for p, t in zip(pred, val.df[task.dst_entity_col])])
    assert ours == pytest.approx(task.evaluate(pred, val)["map"])


def test_one_list_for_every_source_is_reported_as_one(shop_links, graph):
    task = shop_links.load_task("customer-product")
    test = task.get_table("test", mask_input_cols=False).df
    pred = np.tile(np.arange(task.eval_k), (len(test), 1))
    rep = link_ranking.lists(shop_links, graph, task, "test", pred)
    assert rep["distinct_lists"] == rep["distinct_sets"] == 1
    assert rep["common_list_sources"] == rep["sources"] == len(test)
    assert [d["id"] for d in rep["common_list"]] == list(range(task.eval_k))
    assert rep["map"] == pytest.approx(rep["task_map"])
    # The latest linked row is read up to the seed time only: nothing after it.
    seed_time = test[task.time_col].iloc[0]
    orders = shop_links.get_db().table_dict["orders"].df
    for d in rep["common_list"]:
        before = orders[(orders.product_id == d["id"]) & (orders.ordered_at <= seed_time)].ordered_at
        assert d["latest_row"] == str(before.max().date())
        assert pd.Timestamp(d["latest_row"]) <= seed_time
    # Shares of sources whose truth holds each destination.
    holds = test[task.dst_entity_col].map(lambda t: 0 in t).mean()
    assert rep["common_list"][0]["share_in_truth"] == pytest.approx(holds)
