"""Where rdlviz keeps what it builds: converted databases, materialised graphs, text
embeddings.

Everything lives under ``RDLVIZ_HOME`` (default ``~/.cache/rdlviz``). Each entry's folder
name carries a fingerprint of its inputs, so a changed source file or a new builder
version simply lands in a new folder; nothing is ever silently reused across inputs.
Folders are written under a temporary name and renamed into place, so an interrupted
build never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Union

__all__ = ["home", "fingerprint", "file_fingerprint", "atomic_dir"]


def home() -> Path:
    """The root of rdlviz's cache: ``$RDLVIZ_HOME`` or ``~/.cache/rdlviz``."""
    root = Path(os.environ.get("RDLVIZ_HOME", "~/.cache/rdlviz")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def fingerprint(*parts: object, length: int = 12) -> str:
    """A short stable hash of JSON-serialisable ``parts``."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:length]


def file_fingerprint(paths: Iterable[Union[str, Path]], length: int = 12) -> str:
    """A short hash of the names and contents of ``paths`` (order-independent)."""
    h = hashlib.sha1()
    for p in sorted(Path(p) for p in paths):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:length]


@contextmanager
def atomic_dir(target: Union[str, Path]) -> Iterator[Path]:
    """Yield a fresh temporary folder that is renamed to ``target`` on success.

    If ``target`` appears meanwhile (another process built it), ours is discarded.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
