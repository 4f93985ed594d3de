"""Hybrid FAQ retrieval: BM25 (stemmed, accent-folded) fused with e5 embeddings and an entry
classifier, and a calibrated decision between answering, suggesting candidates and saying
"I don't know"."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.services.kb import regional
from bot.services.kb.embeddings import Embedder

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
_STEMMER_LANG = {"es": "spanish", "en": "english"}
MAX_QUERY_CHARS = 500
CROSS_LINGUAL = True


@dataclass(frozen=True)
class SearchConfig:
    """Fusion weight and decision thresholds; `make bench-faq` recalibrates them."""

    bm25_weight: float = 0.25
    bm25_k: float = 3.0
    answer_weight: float = 0.5
    answer_threshold: float = 0.90
    answer_margin: float = 0.02
    suggest_threshold: float = 0.86
    # Reject when a known out-of-KB question is this much closer than the best entry.
    negative_margin: float = 0.0
    # Share of the entry classifier's probability in the score (0 = not used).
    classifier_weight: float = 0.0
    # Reject when the classifier gives the known-unanswerable class at least this (> 1: off).
    unanswerable_threshold: float = 1.01

    @classmethod
    def load(cls, lang: str = "es", path: Path = CALIBRATION_FILE) -> SearchConfig:
        """The calibrated values for a language (score distributions differ per language)."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        values = data.get("per_language", {}).get(lang) or data.get("config", {})
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


@dataclass
class Candidate:
    faq_id: str
    score: float
    title: str
    semantic: float
    lexical: float


@dataclass
class SearchResult:
    query: str
    language: str
    decision: str  # answer | suggest | none
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def faq_id(self) -> str | None:
        """The entry the assistant answers with (suggestions count: the first one is shown
        first); None when it would not answer from the knowledge base."""
        return self.candidates[0].faq_id if self.decision != "none" and self.candidates else None

    @property
    def score(self) -> float:
        return self.candidates[0].score if self.candidates else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "faq_id": self.faq_id, "score": round(self.score, 4),
                "decision": self.decision,
                "candidates": [asdict(c) | {"score": round(c.score, 4)}
                               for c in self.candidates]}


def has_language(entry: dict[str, Any], lang: str) -> bool:
    """An entry answers in a language only when it has an answer there: the editor may
    publish an entry with one language still untranslated (flagged as missing)."""
    block = (entry.get("content") or {}).get(lang) or {}
    return bool(str(block.get("answer") or "").strip() and str(block.get("title") or "").strip())


def fold(text: str) -> str:
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


@dataclass
class Signals:
    """What one query looks like to each entry of a language index."""

    semantic: np.ndarray  # best cosine to the entry's title/questions (both languages)
    answer: np.ndarray  # cosine to the entry's answer
    lexical: np.ndarray  # BM25
    classified: np.ndarray  # the entry classifier's probability
    negative: float  # best cosine to a question we know the KB does not answer
    unanswerable: float = 0.0  # the classifier's probability of "the KB does not answer"


class EntryClassifier:
    """Multinomial logistic regression over e5 vectors: entries' questions (both languages)
    as their classes, the known unanswerable questions as one more class.

    Nearest-example similarity alone is fooled by a query that shares a story with an
    example of the wrong entry; a linear model learns which directions of the embedding
    separate the entries. On the dev rows it raised top-1 and rejection together (README,
    FAQ results). Refitted on every index build (an admin's publish): ~0.5 s per language,
    one thread, so the edit is still answered on the next message.
    """

    C = 16.0

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, n_entries: int) -> None:
        self.coef, self.intercept, self.n_entries = coef, intercept, n_entries

    @classmethod
    def fit(cls, vectors: np.ndarray, owners: np.ndarray, n_entries: int,
            negatives: np.ndarray) -> EntryClassifier | None:
        labels = np.concatenate([owners, np.full(len(negatives), n_entries)]).astype(int)
        if n_entries == 0 or not len(labels):
            return None
        coef = np.zeros((n_entries + 1, vectors.shape[1]), dtype=np.float32)
        intercept = np.full(n_entries + 1, -1e9, dtype=np.float32)  # absent class: p = 0
        if len(set(labels.tolist())) == 1:  # one entry, nothing else known: it is certain
            intercept[labels[0]] = 0.0
            return cls(coef, intercept, n_entries)
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # a rebuild must not take both cores from the turns
            model = LogisticRegression(C=cls.C, max_iter=1000).fit(
                np.vstack([vectors, negatives]) if len(negatives) else vectors, labels)
        if len(model.classes_) == 2:  # binary: sklearn keeps one row, for classes_[1]
            coef[model.classes_[1]], intercept[model.classes_[1]] = model.coef_[0], \
                model.intercept_[0]
            intercept[model.classes_[0]] = 0.0
        else:
            coef[model.classes_] = model.coef_
            intercept[model.classes_] = model.intercept_
        return cls(coef, intercept, n_entries)

    def probabilities(self, qvec: np.ndarray) -> np.ndarray:
        """P(entry) for each entry, then P(the KB does not answer) as the last element."""
        scores = self.coef @ qvec + self.intercept
        scores = np.exp(scores - scores.max())
        return scores / scores.sum()


class LanguageIndex:
    """Search structures for one language over a fixed set of entries."""

    def __init__(self, lang: str, entries: list[dict[str, Any]], embedder: Embedder,
                 negatives: list[str] | None = None,
                 classifier_negatives: list[str] | None = None) -> None:
        import bm25s
        import Stemmer

        self.lang = lang
        entries = [e for e in entries if has_language(e, lang)]
        self.ids = [e["id"] for e in entries]
        self.titles = [e["content"][lang]["title"] for e in entries]
        self._stemmer = Stemmer.Stemmer(_STEMMER_LANG[lang])
        docs = []
        owners, texts = [], []
        answers = []
        other = "en" if lang == "es" else "es"
        for i, e in enumerate(entries):
            block = e["content"][lang]
            short = [block["title"], *block.get("questions", [])]
            docs.append(" ".join(short * 2 + [block["answer"]] + e.get("tags", [])))
            # e5 is multilingual: the other language's questions are more paraphrases.
            alt = e["content"].get(other, {})
            for t in short + ([alt.get("title", ""), *alt.get("questions", [])]
                              if CROSS_LINGUAL else []):
                if t:
                    owners.append(i)
                    texts.append(t)
            answers.append(block["answer"])
        self._bm25 = bm25s.BM25()
        if docs:
            self._bm25.index(self._tokenize(docs), show_progress=False)
        self._owners = np.array(owners)
        self._short = embedder.embed(texts, "query") if texts else np.zeros((0, 384))
        self._answers = embedder.embed(answers, "passage") if answers else np.zeros((0, 384))
        self._negatives = embedder.embed(negatives, "query") if negatives else None
        others = embedder.embed(classifier_negatives, "query") \
            if classifier_negatives else np.zeros((0, 384))
        self._classifier = EntryClassifier.fit(self._short, self._owners, len(self.ids),
                                               others)

    def _tokenize(self, texts: list[str]):
        import bm25s

        return bm25s.tokenize([fold(t) for t in texts], stopwords=self.lang,
                              stemmer=self._stemmer, show_progress=False)

    def negative_similarity(self, qvec: np.ndarray) -> float:
        """How close the query is to questions we know the KB does not answer."""
        if self._negatives is None or not len(self._negatives):
            return -1.0
        return float(np.max(self._negatives @ qvec))

    def classify(self, qvec: np.ndarray) -> tuple[np.ndarray, float]:
        """The classifier's probability of each entry and of "not answered here" (zeros
        without a classifier)."""
        if not self._classifier:
            return np.zeros(len(self.ids)), 0.0
        probs = self._classifier.probabilities(qvec)
        return probs[:-1], float(probs[-1])

    def scores(self, qvec: np.ndarray, query: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(self.ids)
        sims = self._short @ qvec
        semantic = np.full(n, -1.0)
        np.maximum.at(semantic, self._owners, sims)
        answer = self._answers @ qvec
        tokens = self._tokenize([query])
        vocab_inv = {v: k for k, v in tokens.vocab.items()}
        words = [vocab_inv[i] for i in tokens.ids[0] if vocab_inv.get(i)]
        known = [w for w in words if w in (getattr(self._bm25, "vocab_dict", None) or {})]
        lexical = self._bm25.get_scores(known) if known else np.zeros(n)
        return semantic, answer, np.asarray(lexical, dtype=float)


def fuse(config: SearchConfig, semantic: np.ndarray, answer: np.ndarray,
         lexical: np.ndarray, classified: np.ndarray | None = None
         ) -> tuple[np.ndarray, np.ndarray]:
    """One score per entry from the signals; also returns the normalised BM25."""
    lex_n = lexical / (lexical + config.bm25_k)
    score = np.maximum(semantic, config.answer_weight * answer
                       + (1 - config.answer_weight) * semantic)
    score = score + config.bm25_weight * lex_n
    if classified is not None and config.classifier_weight:
        score = score + config.classifier_weight * classified
    return score, lex_n


def decide(config: SearchConfig, total: np.ndarray, semantic: np.ndarray,
           negative: float, unanswerable: float = 0.0) -> tuple[str, np.ndarray]:
    """answer | suggest | none, and the entries ranked best first."""
    order = np.argsort(-total)
    top = total[order[0]]
    margin = top - total[order[1]] if len(order) > 1 else 1.0
    if negative - semantic[order[0]] >= config.negative_margin or \
            unanswerable >= config.unanswerable_threshold:
        return "none", order
    if top >= config.answer_threshold and margin >= config.answer_margin:
        return "answer", order
    if top >= config.suggest_threshold:
        return "suggest", order
    return "none", order


class FaqSearcher:
    """An index over a snapshot of the entries; rebuilt (cheaply) when the KB version moves."""

    def __init__(self, entries: list[dict[str, Any]], embedder: Embedder,
                 config: SearchConfig | None = None,
                 negatives: dict[str, list[str]] | None = None) -> None:
        self.configs = {lang: config or SearchConfig.load(lang) for lang in ("es", "en")}
        self.entries = {e["id"]: e for e in entries}
        negatives = negatives or {}
        every_negative = [q for lang in ("es", "en") for q in negatives.get(lang, [])]
        self.indexes = {lang: LanguageIndex(lang, entries, embedder, negatives.get(lang),
                                            every_negative)
                        for lang in ("es", "en")}
        self.embedder = embedder

    def signals(self, query: str, lang: str) -> Signals:
        """Per-entry semantic, answer, BM25 and classifier scores and the closeness to known
        unanswerable questions. Regional words ("heladera", "boleta") are also tried in the
        KB's words; each signal keeps the better of the two readings."""
        index = self.indexes[lang]
        qvec = self.embedder.embed_uncached(query)
        semantic, answer, lexical = index.scores(qvec, query)
        classified, unanswerable = index.classify(qvec)
        negative = index.negative_similarity(qvec)
        normal = regional.normalise(query, lang)
        if normal != fold(query):
            qvec2 = self.embedder.embed_uncached(normal)
            sem2, ans2, lex2 = index.scores(qvec2, normal)
            semantic, answer = np.maximum(semantic, sem2), np.maximum(answer, ans2)
            lexical = np.maximum(lexical, lex2)
            classified2, unanswerable2 = index.classify(qvec2)
            classified = np.maximum(classified, classified2)
            unanswerable = min(unanswerable, unanswerable2)  # the KB's words may answer it
            negative = max(negative, index.negative_similarity(qvec2))
        return Signals(semantic, answer, lexical, classified, negative, unanswerable)

    def search(self, query: str, lang: str, k: int = 3) -> SearchResult:
        query = " ".join((query or "").split())[:MAX_QUERY_CHARS]
        lang = lang if lang in self.indexes else "es"
        index = self.indexes[lang]
        if not query or not any(ch.isalnum() for ch in query) or not index.ids:
            return SearchResult(query, lang, "none")
        sig = self.signals(query, lang)
        semantic = sig.semantic
        config = self.configs[lang]
        total, lex_n = fuse(config, semantic, sig.answer, sig.lexical, sig.classified)
        decision, order = decide(config, total, semantic, sig.negative, sig.unanswerable)
        cands = [Candidate(index.ids[i], float(total[i]), index.titles[i], float(semantic[i]),
                           float(lex_n[i])) for i in order[:k]]
        return SearchResult(query, lang, decision, cands)

    def answer(self, faq_id: str, lang: str) -> dict[str, str] | None:
        """None when the entry does not exist or is not translated to ``lang``."""
        entry = self.entries.get(faq_id)
        return dict(entry["content"][lang]) if entry and has_language(entry, lang) else None
