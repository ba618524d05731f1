"""The rules the protocol's numbers are read against read nothing after a row's time."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
rule = importlib.import_module("f1_recent_form_rule")


def test_recent_form_is_the_mean_of_the_last_k_rows_up_to_each_time():
    rows = pd.DataFrame({"driverId": [1, 1, 1, 1, 2],
                         "date": pd.to_datetime(["2009-01-01", "2009-02-01", "2009-03-01", "2010-06-01",
                                                 "2011-01-01"]),
                         "value": [1.0, 2.0, 4.0, 100.0, 7.0]})
    until = pd.to_datetime(["2009-03-01", "2009-02-15", "2010-06-01", "2010-01-01", "2008-01-01"]).to_numpy()
    form, seen = rule.recent_form(rows, np.array([1, 1, 1, 2, 3]), until, k=2, fill=-1.0)
    # a row on the seed's own date counts; a later one never does; no history -> fill
    np.testing.assert_allclose(form, [3.0, 1.5, 52.0, -1.0, -1.0])
    assert seen.tolist() == [True, True, True, False, False]
