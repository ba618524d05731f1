"""``rdlviz.drift`` finds the column whose scale changes at the test cutoff: rel-f1's
points (a win scores 25 from 2010, 10 before)."""

import numpy as np
import pandas as pd

import rdlviz


def test_drift_ranks_rel_f1_points_above_scale_free_columns(f1):
    report = rdlviz.drift(f1)
    shift = report.set_index(["table", "column"])["shift"]
    assert np.all(np.diff(report["shift"].abs().to_numpy()) <= 0)  # largest shift first
    # every points column moves by more than a training standard deviation...
    for table in ("results", "standings", "constructor_results", "constructor_standings"):
        assert shift[(table, "points")] > 1.0
    # ...while the starting grid, which has the same scale every season, barely moves
    assert abs(shift[("results", "grid")]) < 0.2
    # the numbers are the periods' own: results.points after the test cutoff, by pandas
    db = f1.get_db(upto_test_timestamp=False)
    res = db.table_dict["results"].df
    row = report[(report.table == "results") & (report.column == "points")].iloc[0]
    after = res.points[res.date > pd.Timestamp(f1.test_timestamp)].dropna()
    assert row.test_mean == after.mean() and row.test_rows == len(after)
    # keys and time columns are not features; tables without time have no periods
    assert not report.column.isin(["resultId", "driverId", "date"]).any()
    assert "drivers" not in set(report.table)
