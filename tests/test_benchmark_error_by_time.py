"""benchmarks/error_by_time.py: which seeds have any history to be predicted from."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import rdlviz
from rdlviz.graph.time import to_unix_seconds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
error_by_time = importlib.import_module("error_by_time")


@pytest.fixture(scope="module")
def graph(shop):
    return rdlviz.build_graph(shop, text="drop")


def test_first_row_time_is_each_entitys_earliest_linked_row(shop, graph):
    first = error_by_time.first_row_time(graph, "customers")
    orders = graph.db.table_dict["orders"].df
    orders = orders[orders.ordered_at <= graph.cutoff]
    expected = to_unix_seconds(orders.groupby("customer_id").ordered_at.min())
    got = first[orders.groupby("customer_id").ordered_at.min().index.to_numpy()]
    np.testing.assert_array_equal(got, expected.astype(float))
    without = np.setdiff1d(np.arange(len(first)), orders.customer_id.unique())
    assert np.isinf(first[without]).all()


def test_test_seeds_count_history_only_up_to_the_cutoff(shop, graph):
    task = shop.load_task("customer-order")
    first = error_by_time.first_row_time(graph, "customers")
    test = task.get_table("test", mask_input_cols=False).df
    # A customer whose first order came after the cutoff has no history at any test time.
    late = np.full_like(first, float(graph.test_time) + 1.0)
    pred = np.zeros(len(test))
    rows = error_by_time.per_time(task, "test", pred, "binary", 0.0, late, float(graph.test_time))
    assert all(r["with_history"] == 0.0 for r in rows)
    rows = error_by_time.per_time(task, "test", pred, "binary", 0.0, first, float(graph.test_time))
    assert all(0.0 <= r["with_history"] <= 1.0 for r in rows)
