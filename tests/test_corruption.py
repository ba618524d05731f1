"""Per-cell resampling corruption on real torch_frame TensorFrames of every storage kind."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch_frame
from torch_frame.config.text_embedder import TextEmbedderConfig
from torch_frame.data import MultiEmbeddingTensor, MultiNestedTensor

from rdlviz.errors import ConfigError
from rdlviz.pretrain.corruption import Corruption

S = torch_frame.stype
P = 0.3
N_FULL = 600
EMB_DIM = 3


def _tiny_embedder(texts):
    """Deterministic 3-d 'sentence embedding': length, vowel count, first character code."""
    rows = [[len(t), sum(ch in "aeiou" for ch in t), ord(t[0]) if t else 0] for t in texts]
    return torch.tensor(rows, dtype=torch.float32)


@pytest.fixture(scope="module")
def full_tf():
    rng = np.random.default_rng(0)
    n = N_FULL
    words = ["red", "green", "blue", "amber", "violet", "teal"]
    df = pd.DataFrame(
        {
            # continuous: distinct values, so a replaced cell almost surely differs
            "x": rng.normal(size=n),
            "y": rng.uniform(10, 20, size=n),
            "c1": rng.choice(["a", "b", "c", "d", "e", "f", "g", "h"], size=n),
            "c2": rng.choice(["u", "v", "w"], size=n),
            # object dtype: torch_frame's multicategorical mapper rejects pandas' str dtype
            "tags": pd.Series(["|".join(sorted(set(rng.choice(words, size=rng.integers(1, 4)))))
                               for _ in range(n)], dtype=object),
            "when": pd.to_datetime("2000-01-01")
            + pd.to_timedelta(rng.integers(0, 20 * 365, size=n), unit="D"),
            "note": ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=rng.integers(2, 12))) for _ in range(n)],
        }
    )
    ds = torch_frame.data.Dataset(
        df,
        {"x": S.numerical, "y": S.numerical, "c1": S.categorical, "c2": S.categorical,
         "tags": S.multicategorical, "when": S.timestamp, "note": S.text_embedded},
        col_to_sep={"tags": "|"},
        col_to_text_embedder_cfg=TextEmbedderConfig(text_embedder=_tiny_embedder),
    )
    return ds.materialize().tensor_frame


@pytest.fixture(scope="module")
def batch(full_tf):
    # a batch is rows of the full table, as the sampler makes it (with a repeated row)
    idx = torch.cat([torch.arange(0, 400, 2), torch.tensor([5, 5, 5])])
    return full_tf[idx]


def _raw(feat) -> torch.Tensor:
    return feat.values if isinstance(feat, (MultiNestedTensor, MultiEmbeddingTensor)) else feat


def _cells(feat, i, j):
    """Value of cell (i, j) as a tuple, for any storage."""
    if isinstance(feat, (MultiNestedTensor, MultiEmbeddingTensor)):
        return tuple(feat[i, j].tolist())
    v = feat[i, j]
    return tuple(v.reshape(-1).tolist())


def test_storage_kinds_present(full_tf):
    assert isinstance(full_tf.feat_dict[S.multicategorical], MultiNestedTensor)
    assert isinstance(full_tf.feat_dict[S.embedding], MultiEmbeddingTensor)
    assert full_tf.feat_dict[S.timestamp].dim() == 3


def test_shapes_columns_and_no_sharing(full_tf, batch):
    corrupt = Corruption({"t": full_tf}, p=P)
    before = {st: _raw(v).clone() for st, v in batch.feat_dict.items()}
    out = corrupt({"t": batch}, generator=torch.Generator().manual_seed(1))["t"]
    assert out.num_rows == batch.num_rows
    assert out.col_names_dict == batch.col_names_dict
    assert out.col_names_dict is not batch.col_names_dict
    for st in batch.stypes:
        a, b = batch.feat_dict[st], out.feat_dict[st]
        assert type(a) is type(b)
        assert a.shape[:2] == b.shape[:2]
        if isinstance(b, torch.Tensor):
            assert b.dtype == a.dtype and b.shape == a.shape
            assert b.data_ptr() != a.data_ptr()
        else:
            assert b.values.data_ptr() != a.values.data_ptr()
            assert b.offset.data_ptr() != a.offset.data_ptr()
        # the input is untouched
        ref = before[st]
        now = _raw(a)
        assert torch.equal(torch.nan_to_num(now.float(), 123.0), torch.nan_to_num(ref.float(), 123.0))
    # mutating the output leaves the input alone
    out.feat_dict[S.numerical].fill_(0)
    out.feat_dict[S.embedding].values.fill_(0)
    assert not torch.equal(batch.feat_dict[S.numerical], out.feat_dict[S.numerical])
    assert batch.feat_dict[S.embedding].values.abs().sum() > 0


def test_mask_rate_and_replacements_per_stype(full_tf, batch):
    corrupt = Corruption({"t": full_tf}, p=P)
    view, mask = corrupt({"t": batch}, generator=torch.Generator().manual_seed(7), return_mask=True)
    view, mask = view["t"], mask["t"]
    n = batch.num_rows
    for st in batch.stypes:
        m = mask[st]
        assert m.dtype == torch.bool and m.shape == (n, len(batch.col_names_dict[st]))
        # Binomial(n*c, p): 5 standard deviations
        cells = m.numel()
        sd = math.sqrt(cells * P * (1 - P))
        assert abs(int(m.sum()) - cells * P) < 5 * sd, (st, float(m.float().mean()))
        a, b = batch.feat_dict[st], view.feat_dict[st]
        c = m.size(1)
        for j in range(c):
            pool = {_cells(full_tf.feat_dict[st], i, j) for i in range(full_tf.num_rows)}
            for i in range(n):
                va, vb = _cells(a, i, j), _cells(b, i, j)
                if not m[i, j]:
                    # unchanged cells are identical (NaN-aware)
                    assert np.array_equal(np.array(va, dtype=float), np.array(vb, dtype=float), equal_nan=True)
                else:
                    assert vb in pool, (st, i, j, vb)


def test_numerical_cells_differ_at_rate_p(full_tf, batch):
    view = Corruption({"t": full_tf}, p=P)({"t": batch}, generator=torch.Generator().manual_seed(3))["t"]
    diff = batch.feat_dict[S.numerical] != view.feat_dict[S.numerical]
    cells = diff.numel()
    # a replacement equals the original only when the donor is the same row (prob 1/600)
    assert abs(int(diff.sum()) - cells * P) < 5 * math.sqrt(cells * P * (1 - P))


def test_multicategorical_lengths_follow_donors(full_tf, batch):
    view, mask = Corruption({"t": full_tf}, p=0.5)(
        {"t": batch}, generator=torch.Generator().manual_seed(11), return_mask=True)
    mnt = view["t"].feat_dict[S.multicategorical]
    assert mnt.offset[0] == 0 and mnt.offset[-1] == mnt.values.numel()
    lengths = mnt.offset[1:] - mnt.offset[:-1]
    assert lengths.min() >= 1 and lengths.max() <= 3  # 1-3 tags per row in the pool
    assert mask["t"][S.multicategorical].any() and (~mask["t"][S.multicategorical]).any()


def test_deterministic_under_generator(full_tf, batch):
    corrupt = Corruption({"t": full_tf}, p=P)
    a, ma = corrupt({"t": batch}, generator=torch.Generator().manual_seed(5), return_mask=True)
    b, mb = corrupt({"t": batch}, generator=torch.Generator().manual_seed(5), return_mask=True)
    c, mc = corrupt({"t": batch}, generator=torch.Generator().manual_seed(6), return_mask=True)
    assert a["t"] == b["t"]
    assert all(torch.equal(ma["t"][s], mb["t"][s]) for s in ma["t"])
    assert not all(torch.equal(ma["t"][s], mc["t"][s]) for s in ma["t"])
    torch.manual_seed(0)
    d = corrupt({"t": batch})
    torch.manual_seed(0)
    e = corrupt({"t": batch})
    assert d["t"] == e["t"]


def test_every_cell_can_change_and_y_is_kept(full_tf):
    tf = full_tf[torch.arange(50)]
    tf.y = torch.arange(50).float()
    out, mask = Corruption({"t": full_tf}, p=0.9)({"t": tf}, generator=torch.Generator().manual_seed(0),
                                                  return_mask=True)
    assert torch.equal(out["t"].y, tf.y) and out["t"].y.data_ptr() != tf.y.data_ptr()
    assert mask["t"][S.numerical].float().mean() > 0.8


def test_empty_batch_table(full_tf):
    empty = full_tf[torch.tensor([], dtype=torch.long)]
    out, mask = Corruption({"t": full_tf}, p=P)({"t": empty}, return_mask=True)
    assert out["t"].num_rows == 0
    assert mask["t"][S.numerical].shape == (0, 2)


@pytest.mark.parametrize("p", [0, 1, -0.1, 1.5, float("nan"), True, "0.3"])
def test_p_out_of_range(full_tf, p):
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        Corruption({"t": full_tf}, p=p)


def test_unknown_table_and_mismatched_columns(full_tf, batch):
    corrupt = Corruption({"t": full_tf}, p=P)
    with pytest.raises(ConfigError, match="'other'.*no pool"):
        corrupt({"other": batch})
    narrow = torch_frame.TensorFrame(
        {S.numerical: batch.feat_dict[S.numerical][:, :1]}, {S.numerical: ["x"]})
    with pytest.raises(ConfigError, match="numerical columns"):
        corrupt({"t": narrow})
    with pytest.raises(ConfigError, match="non-empty"):
        Corruption({}, p=P)


def test_tokenized_dict_and_sequence_numerical_share_one_draw():
    # text_tokenized is a dict of MultiNestedTensors: ids and attention mask must move together
    g = torch.Generator().manual_seed(0)
    n_full, c = 40, 2
    lens = torch.randint(1, 5, (n_full * c,), generator=g)
    offset = torch.cat([torch.zeros(1, dtype=torch.long), lens.cumsum(0)])
    ids = MultiNestedTensor(n_full, c, torch.arange(int(offset[-1])), offset)
    att = MultiNestedTensor(n_full, c, torch.arange(int(offset[-1])) * 10, offset.clone())
    seq = MultiNestedTensor(n_full, 1, torch.randn(int(lens[:n_full].sum())), torch.cat(
        [torch.zeros(1, dtype=torch.long), lens[:n_full].cumsum(0)]))
    full = torch_frame.TensorFrame(
        {S.text_tokenized: {"input_ids": ids, "attention_mask": att}, S.sequence_numerical: seq},
        {S.text_tokenized: ["a", "b"], S.sequence_numerical: ["s"]})
    batch = full[torch.arange(0, 40, 3)]
    out, mask = Corruption({"t": full}, p=0.5)({"t": batch}, generator=torch.Generator().manual_seed(1),
                                               return_mask=True)
    tok = out["t"].feat_dict[S.text_tokenized]
    m = mask["t"][S.text_tokenized]
    assert m.any() and (~m).any()
    for i in range(batch.num_rows):
        for j in range(c):
            a, b = tok["input_ids"][i, j], tok["attention_mask"][i, j]
            assert torch.equal(b, a * 10)  # the same donor cell for both keys
            if not m[i, j]:
                assert torch.equal(a, batch.feat_dict[S.text_tokenized]["input_ids"][i, j])
    s_out, s_in = out["t"].feat_dict[S.sequence_numerical], batch.feat_dict[S.sequence_numerical]
    pool = {tuple(full.feat_dict[S.sequence_numerical][r, 0].tolist()) for r in range(n_full)}
    sm = mask["t"][S.sequence_numerical]
    for i in range(batch.num_rows):
        v = tuple(s_out[i, 0].tolist())
        assert v in pool
        if not sm[i, 0]:
            assert v == tuple(s_in[i, 0].tolist())


def test_pretraining_draws_donor_values_only_from_rows_before_its_cutoff(shop, monkeypatch):
    import importlib

    import rdlviz
    from rdlviz.pretrain.corruption import donor_tables

    loop = importlib.import_module("rdlviz.pretrain.loop")  # rdlviz.pretrain is also the function

    graph = rdlviz.build_graph(shop, text="drop")  # holds the orders up to the test cutoff
    time = graph.data["orders"].time
    before = int((time <= graph.val_time).sum())
    assert 0 < before < len(time)
    pools = donor_tables(graph.data, int(graph.val_time))
    assert len(pools["orders"]) == before and len(pools["customers"]) == graph.data["customers"].num_nodes
    # the kept rows are the early ones, values intact
    first = int(torch.nonzero(time <= graph.val_time)[0])
    for st, x in pools["orders"].feat_dict.items():
        assert torch.equal(x[0], graph.data["orders"].tf.feat_dict[st][first])
    seen = {}

    class Recording(loop.Corruption):
        def __init__(self, tables, p):
            seen.update({t: len(tf) for t, tf in tables.items()})
            super().__init__(tables, p)

    monkeypatch.setattr(loop, "Corruption", Recording)
    rdlviz.pretrain(graph, steps=1, batch_size=8, num_neighbors=(4,), channels=8, encoder_layers=1,
                    eval_every=1, eval_batches=1, progress=False)
    assert seen["orders"] == before
