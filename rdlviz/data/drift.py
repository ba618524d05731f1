"""``rdlviz.drift``: which numerical columns change scale between training and test.

A model reads a numerical cell through statistics of the training period (the rows up to
the val cutoff). If the same column means something bigger later -- rel-f1 scores a race
win 25 points from 2010, where it scored 10 before -- a test seed that sees the later
rows reads them on the old scale, and nothing in training or validation warns of it. This
report puts each time-stamped table's numerical columns side by side per period, so such
a column is found before a test number is trusted, and can be left out of the features
(``build_graph(columns=...)``, the protocol's ``--drop``).

Periods: ``train`` (time <= val cutoff), ``val`` (up to the test cutoff), ``test``
(after it). The shift is the test period's mean in units of the training period's
standard deviation,

.. math::

    \\text{shift} = \\frac{\\bar x_\\text{test} - \\bar x_\\text{train}}{s_\\text{train}},

and ``above_train_max`` is the share of test-period values larger than any training
value. The report reads rows after the test cutoff to describe them; nothing here feeds a
model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["drift"]


def drift(dataset) -> pd.DataFrame:
    """Per numerical feature column of every time-stamped table (the columns
    :func:`~rdlviz.build_graph` would encode as numerical), how its values move from the
    training period to the test period, largest shift first.

    Args:
        dataset: a RelBench ``Dataset``, or anything :func:`rdlviz.load` accepts.

    Returns:
        One row per (table, column): ``train_mean``, ``val_mean``, ``test_mean``,
        ``train_std``, ``shift`` (see the module docstring), ``above_train_max`` (share of
        test-period values), ``test_rows``. Columns with no test-period value are left
        out; keys, time columns and categorical codes are not numerical features and are
        not listed.

    Example:
        >>> rdlviz.drift("rel-f1").head(3)   # results.points, standings.points, ...
    """
    from torch_frame import stype

    from rdlviz.data.load import load
    from rdlviz.graph.stypes import propose_stypes

    dataset = load(dataset)
    db = dataset.get_db(upto_test_timestamp=False)
    val_ts, test_ts = pd.Timestamp(dataset.val_timestamp), pd.Timestamp(dataset.test_timestamp)
    # The stypes a graph would give, proposed from the training period as build_graph does.
    stypes, _ = propose_stypes(db.upto(val_ts))
    rows = []
    for name, table in db.table_dict.items():
        if table.time_col is None:
            continue
        df = table.df
        t = df[table.time_col]
        period = {"train": t <= val_ts, "val": (t > val_ts) & (t <= test_ts), "test": t > test_ts}
        for col, st in stypes.get(name, {}).items():
            if st != stype.numerical:
                continue
            x = pd.to_numeric(df[col], errors="coerce").astype(float)
            train, test = x[period["train"]].dropna(), x[period["test"]].dropna()
            if test.empty or train.empty:
                continue
            std = float(train.std(ddof=1)) if len(train) > 1 else float("nan")
            rows.append(dict(
                table=name, column=col,
                train_mean=float(train.mean()), val_mean=float(x[period["val"]].mean()),
                test_mean=float(test.mean()), train_std=std,
                shift=(float(test.mean()) - float(train.mean())) / std if std > 0 else float("nan"),
                above_train_max=float((test > train.max()).mean()), test_rows=int(len(test))))
    out = pd.DataFrame(rows, columns=["table", "column", "train_mean", "val_mean", "test_mean", "train_std",
                                      "shift", "above_train_max", "test_rows"])
    order = np.argsort(-out["shift"].abs().fillna(-1).to_numpy(), kind="stable")
    return out.iloc[order].reset_index(drop=True)
