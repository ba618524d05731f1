"""Representation-collapse diagnostics: known values on constructed embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from rdlviz.errors import ConfigError
from rdlviz.pretrain.health import alignment, effective_rank, health_report, uniformity


def test_effective_rank_known_values():
    assert effective_rank(torch.eye(8)) == pytest.approx(8.0)
    assert effective_rank(5 * torch.eye(8)) == pytest.approx(8.0)  # scale-invariant
    assert effective_rank(torch.diag(torch.tensor([1.0, 1.0, 0.0, 0.0]))) == pytest.approx(2.0)
    # rank one: every row on one line
    u, v = torch.randn(50, 1), torch.randn(1, 16)
    assert effective_rank(u @ v) == pytest.approx(1.0, abs=1e-4)  # float32 SVD noise
    # two unequal singular values 3 and 1: exp(H(3/4, 1/4))
    expect = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(expect)
    assert effective_rank(torch.zeros(5, 3)) == 0.0
    # a shared offset is one direction uncentred, none once centred
    same = torch.ones(10, 4) * torch.randn(1, 4)
    assert effective_rank(same) == pytest.approx(1.0)
    assert effective_rank(same, center=True) == 0.0
    g = torch.Generator().manual_seed(0)
    iso = torch.randn(2000, 16, generator=g)
    assert 15.0 < effective_rank(iso) <= 16.0


def test_alignment_known_values():
    z = torch.randn(20, 8)
    assert alignment(z, z) == pytest.approx(0.0, abs=1e-12)
    assert alignment(z, 3 * z) == pytest.approx(0.0, abs=1e-12)  # on the sphere
    assert alignment(z, -z) == pytest.approx(4.0)  # antipodal, alpha = 2
    assert alignment(z, -z, alpha=1) == pytest.approx(2.0)
    e = torch.eye(2)
    assert alignment(e[:1], e[1:]) == pytest.approx(2.0)  # orthogonal: |a - b|^2 = 2
    with pytest.raises(ConfigError, match="same rows"):
        alignment(torch.randn(3, 2), torch.randn(4, 2))
    with pytest.raises(ConfigError, match="alpha"):
        alignment(z, z, alpha=0)


def test_uniformity_collapse_vs_spread():
    assert uniformity(torch.ones(30, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.0, abs=1e-12)
    # two antipodal points: |a - b|^2 = 4, log E exp(-2 * 4) = -8 = -4t, the minimum
    assert uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)
    g = torch.Generator().manual_seed(0)
    spread = uniformity(torch.randn(500, 64, generator=g))
    assert -4.0 <= spread < -3.5  # near the high-dimensional limit -2t = -4
    # a narrow cone is far less uniform
    cone = torch.randn(500, 64, generator=g) * 0.05 + torch.ones(64)
    assert uniformity(cone) > -0.5
    with pytest.raises(ConfigError, match="t must be"):
        uniformity(torch.randn(3, 2), t=-1)
    assert math.isnan(uniformity(torch.randn(1, 4)))


def test_health_report_tells_collapsed_from_healthy():
    g = torch.Generator().manual_seed(0)
    healthy = torch.randn(3000, 32, generator=g)
    # complete collapse: every row a positive multiple of one vector, plus a little noise
    collapsed = (torch.rand(400, 1, generator=g) + 0.5) @ torch.randn(1, 32, generator=g) + 0.01 * torch.randn(
        400, 32, generator=g)
    view = {"healthy": healthy + 0.1 * torch.randn(3000, 32, generator=g), "collapsed": collapsed}
    rep = health_report({"healthy": healthy, "collapsed": collapsed}, view, max_rows=1000)
    assert set(rep) == {"healthy", "collapsed"}
    h, c = rep["healthy"], rep["collapsed"]
    assert h["rows"] == 3000 and h["dim"] == 32 and c["rows"] == 400
    assert h["effective_rank_ratio"] > 0.8 > 0.2 > c["effective_rank_ratio"]
    assert h["uniformity"] < c["uniformity"]
    assert h["mean_dim_std"] > 3 * c["mean_dim_std"]
    assert c["alignment"] == pytest.approx(0.0, abs=1e-12) and 0 < h["alignment"] < 0.1
    assert "alignment" not in health_report({"healthy": healthy})["healthy"]
    # deterministic subsampling
    again = health_report({"healthy": healthy, "collapsed": collapsed}, view, max_rows=1000)
    assert again == rep


def test_health_report_checks_and_edge_cases():
    with pytest.raises(ConfigError, match="max_rows"):
        health_report({"t": torch.randn(5, 2)}, max_rows=1)
    with pytest.raises(ConfigError, match="2-D"):
        health_report({"t": torch.randn(5)})
    with pytest.raises(ConfigError, match="differ in shape"):
        health_report({"t": torch.randn(5, 2)}, {"t": torch.randn(4, 2)})
    rep = health_report({"one": torch.randn(1, 4), "none": torch.zeros(0, 4)})
    assert math.isnan(rep["one"]["uniformity"]) and rep["none"]["effective_rank"] == 0.0
    # works on gradient-carrying GNN outputs without touching their graph
    h = torch.randn(10, 4, requires_grad=True)
    assert health_report({"t": h * 2})["t"]["rows"] == 10
