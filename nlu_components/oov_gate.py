"""Out-of-vocabulary gate: gibberish must fall back, not be confidently misread.

DIET with character n-grams gives high confidence to strings it has never seen anything
like ("kjhkjh lkjlkj" → affirm 0.8; "🤷‍♀️🤔" → affirm 0.9). Inside a form, a misread
"affirm" would confirm a claim the customer never confirmed. This component learns the
vocabulary (accent-folded words, and emojis) of the training data and, when a message has
no known word, no entity and no digits, sets the intent confidence to zero so that the
FallbackClassifier after it turns it into ``nlu_fallback``. One known word is enough to
leave DIET's decision alone, so real messages with new words are not affected.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Optional

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.utils.io import dump_obj_as_json_to_file, read_json_file

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_VOCAB_FILE = "vocabulary.json"


def fold(text: str) -> str:
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(fold(text)) if len(w) > 1 or w in ("y", "o", "a", "k")]


def emojis(text: str) -> set[str]:
    return {c for c in text if unicodedata.category(c) == "So"}


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class OutOfVocabularyGate(GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"prefix_length": 5}

    def __init__(self, config: dict[str, Any], model_storage: ModelStorage,
                 resource: Resource, vocabulary: Optional[set] = None,
                 known_emojis: Optional[set] = None) -> None:
        self.config = config
        self._storage = model_storage
        self._resource = resource
        self.vocabulary = vocabulary or set()
        self.known_emojis = known_emojis or set()
        n = int(config.get("prefix_length", 5))
        self._prefixes = {w[:n] for w in self.vocabulary if len(w) >= n}

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage,
               resource: Resource, execution_context: ExecutionContext) -> OutOfVocabularyGate:
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        vocab: set = set()
        known: set = set()
        for example in training_data.training_examples:
            text = example.get("text") or ""
            vocab.update(words(text))
            known.update(emojis(text))
        for table in training_data.lookup_tables:
            for element in table.get("elements", []) if isinstance(table, dict) else []:
                vocab.update(words(str(element)))
        with self._storage.write_to(self._resource) as model_dir:
            dump_obj_as_json_to_file(model_dir / _VOCAB_FILE,
                                     {"words": sorted(vocab), "emojis": sorted(known)})
        return self._resource

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> OutOfVocabularyGate:
        try:
            with model_storage.read_from(resource) as model_dir:
                data = read_json_file(model_dir / _VOCAB_FILE)
        except ValueError:
            data = {"words": [], "emojis": []}
        return cls(config, model_storage, resource, set(data["words"]), set(data["emojis"]))

    def _known(self, word: str) -> bool:
        n = int(self.config.get("prefix_length", 5))
        return word in self.vocabulary or (len(word) >= n and word[:n] in self._prefixes)

    def is_gibberish(self, text: str, has_entities: bool) -> bool:
        if not self.vocabulary or has_entities or any(c.isdigit() for c in text):
            return False
        tokens = words(text)
        if tokens:
            return not any(self._known(w) for w in tokens)
        marks = emojis(text)
        return bool(marks) and not (marks & self.known_emojis)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            intent = message.get("intent")
            text = message.get("text") or ""
            if not intent or not self.is_gibberish(text, bool(message.get("entities"))):
                continue
            message.set("intent", {**intent, "confidence": 0.0}, add_to_output=True)
            ranking = message.get("intent_ranking") or []
            message.set("intent_ranking",
                        [{**r, "confidence": 0.0} for r in ranking], add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
