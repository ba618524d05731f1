"""The backbone's savings change no output: each distinct row is encoded once, layer
trimming (``seeds_only``) leaves the seeds' embeddings exact, and two views stacked in
one pass equal two passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rdlviz
from rdlviz.graph.time import to_unix_seconds
from rdlviz.nn import Backbone
from rdlviz.sampling import NeighborLoader


@pytest.fixture(scope="module")
def f1_graph(f1):
    return rdlviz.build_graph(f1, text="hash")


@pytest.fixture(scope="module")
def dnf_batch(f1, f1_graph):
    df = f1.load_task("driver-dnf").get_table("train").df.iloc[:96]
    nodes = torch.from_numpy(df["driverId"].to_numpy().astype(np.int64))
    times = torch.from_numpy(to_unix_seconds(df["date"]))
    loader = NeighborLoader(f1_graph.data, [16, 8, 4], ("drivers", nodes), input_time=times,
                            batch_size=96, seed=0)
    return next(iter(loader))


def _backbone(graph, layers):
    torch.manual_seed(0)
    net = Backbone(graph.data, graph.col_stats, channels=16, num_layers=layers, encoder_layers=2)
    return net.eval()


def _frames(batch):
    return {t: batch[t].tf for t in batch.node_types if "tf" in batch[t]}


def test_each_distinct_row_is_encoded_once_with_identical_output_and_gradients(f1_graph, dnf_batch):
    b = dnf_batch
    dup = {t: b[t].n_id.numel() - torch.unique(b[t].n_id).numel() for t in b.node_types}
    assert dup["races"] > 0  # the batch really repeats rows, so the saving is exercised
    net = _backbone(f1_graph, 2)
    calls = []
    hook = net.encoder.register_forward_hook(
        lambda m, args, out: calls.append({t: v.size(0) for t, v in out.items()}))
    deduped = net(b)
    per_copy = net(b, tf_dict=_frames(b))  # explicit frames: every copy encoded
    hook.remove()
    assert calls[0]["races"] == torch.unique(b["races"].n_id).numel() < calls[1]["races"]
    for t in per_copy:
        torch.testing.assert_close(deduped[t], per_copy[t])
    grads = []
    for kwargs in ({}, {"tf_dict": _frames(b)}):
        net.zero_grad()
        sum(v.sum() for v in net(b, **kwargs).values()).backward()
        grads.append([p.grad.clone() for p in net.encoder.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for g1, g2 in zip(*grads):  # sums over thousands of copies in another order: float32 rounding
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_seeds_only_trims_layers_and_keeps_the_seed_embeddings_exact(f1_graph, dnf_batch, layers):
    b = dnf_batch
    net = _backbone(f1_graph, layers)
    full = net(b)["drivers"][: b["drivers"].batch_size]
    trimmed_all = net(b, seeds_only=True)
    torch.testing.assert_close(trimmed_all["drivers"][: b["drivers"].batch_size], full)
    if layers > 1:  # the outermost hops were dropped before the last layer
        kept = sum(v.size(0) for v in trimmed_all.values())
        assert kept < sum(b[t].num_nodes for t in b.node_types)


def test_two_views_in_one_stacked_pass_equal_two_separate_passes(f1_graph, dnf_batch):
    from rdlviz.pretrain.corruption import Corruption

    b = dnf_batch
    net = _backbone(f1_graph, 2)
    corrupt = Corruption({t: f1_graph.data[t].tf for t in f1_graph.data.node_types}, p=0.5)
    view = corrupt(_frames(b), generator=torch.Generator().manual_seed(0))
    h, h_view = net.forward_views(b, view)
    sep, sep_view = net(b, tf_dict=_frames(b)), net(b, tf_dict=view)
    assert set(h) == set(sep) and set(h_view) == set(sep_view)
    for t in sep:
        torch.testing.assert_close(h[t], sep[t], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(h_view[t], sep_view[t], rtol=1e-4, atol=1e-5)
    # The views really differ, so the halves were not mixed up.
    assert not torch.allclose(h["drivers"], h_view["drivers"])
