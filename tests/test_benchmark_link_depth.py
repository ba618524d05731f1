"""benchmarks/link_depth.py: the chance level its report reads MAP@k against."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from relbench.metrics import map as relbench_map

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
link_depth = importlib.import_module("link_depth")


@pytest.mark.parametrize("n, k", [(30, 3), (6, 3), (10, 1)])
def test_random_map_is_relbench_map_averaged_over_every_rank(n, k):
    # One relevant item, equally likely at each of the n ranks: a hit at rank r <= k
    # is a one-hot row of the top-k, a rank past k an empty one.
    pred_isin = np.zeros((n, k), dtype=int)
    pred_isin[np.arange(k), np.arange(k)] = 1
    assert link_depth.random_map(n, k) == pytest.approx(relbench_map(pred_isin, np.ones(n, dtype=int)))

