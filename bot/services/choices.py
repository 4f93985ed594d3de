"""Free text → one of the options the bot offered, for every question that has buttons.

Customers type instead of clicking: "hace un ruido raro al centrifugar", "honestly I just
don't like it", "la segunda", "the coffee machine". One resolver serves every choice (problem
kind, preferred solution, return reason, return or exchange, the product of the order, the
field to correct), in Spanish and English, in this order of evidence:

1. exact value or button title (either language), or a position ("la segunda", "2");
2. keywords and synonyms (accent-folded, word starts, negations respected: "no está roto");
3. typos: a word within a small edit distance of a keyword or of a title word;
4. meaning: cosine similarity of the multilingual e5 embedding (the model we already ship)
   to a few prototype phrases per option.

The result says how sure it is: one value, two candidates when the text genuinely fits both
(the caller asks once with a narrower question), ``unknown`` for "no sé", or nothing.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import numpy as np

# Semantic decision (cosine between unit e5 vectors). e5 similarities are compressed into
# roughly 0.70 (unrelated) … 0.95 (paraphrase); the margin separates "clearly this one" from
# "these two are equally plausible".
SEMANTIC_ACCEPT = 0.885
SEMANTIC_CONSIDER = 0.875
SEMANTIC_MARGIN = 0.015

UNKNOWN_PHRASES = ("no se", "no lo se", "ni idea", "no estoy segur", "no sabria", "cualquiera",
                   "me da igual", "lo que sea", "da igual", "dont know", "don't know",
                   "do not know", "not sure", "no idea", "no preference", "whatever",
                   "any of them", "either", "no tengo preferencia", "sin preferencia",
                   "lo que digais", "lo que ustedes", "lo que vosotros", "lo que veais",
                   "lo que vean", "you decide", "up to you")
NEGATIONS = ("no", "not", "ni", "nunca", "never", "isn't", "isnt", "wasn't", "wasnt",
             "doesn't", "doesnt", "didn't", "didnt", "tampoco", "sin")
ORDINALS = {
    0: ("1", "uno", "una", "primero", "primera", "el primero", "la primera", "first",
        "the first", "first one", "the first one", "one", "opcion 1", "option 1", "#1"),
    1: ("2", "dos", "segundo", "segunda", "el segundo", "la segunda", "second",
        "the second", "second one", "the second one", "two", "opcion 2", "option 2", "#2"),
    2: ("3", "tres", "tercero", "tercera", "el tercero", "la tercera", "third",
        "the third", "third one", "the third one", "three", "opcion 3", "option 3", "#3"),
    3: ("4", "cuatro", "cuarto", "cuarta", "fourth", "four", "opcion 4", "option 4"),
    4: ("5", "cinco", "quinto", "quinta", "fifth", "five", "opcion 5", "option 5"),
    5: ("6", "seis", "sexto", "sexta", "sixth", "six", "opcion 6", "option 6"),
}
LAST = ("el ultimo", "la ultima", "ultimo", "ultima", "the last one", "last one", "the last",
        "last")
FILLER = re.compile(r"^(?:pues|bueno|vale|ok|okay|well|um+|eh+|ah|oh|mmm+|hmm+|so|la verdad"
                    r"(?: es que)?|honestly|i think|creo que|diria que|i'd say|i guess|"
                    r"yo creo que|mira|look)\b[\s,]*")


def fold(text: str) -> str:
    """Lower case, no accents, punctuation to spaces, single spaces."""
    text = unicodedata.normalize("NFD", (text or "").lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    text = re.sub(r"[^\w'#/+-]+", " ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class Option:
    """One button of a question: its value, its titles, and what a customer may type."""

    value: str
    titles: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    fallback: bool = False  # "other"/"no preference": taken when nothing else fits


@dataclass
class Choice:
    value: str | None
    how: str  # exact | position | keyword | typo | semantic | ambiguous | unknown | none
    candidates: tuple[str, ...] = ()
    score: float = 0.0

    @property
    def found(self) -> bool:
        return self.value is not None

    @property
    def ambiguous(self) -> bool:
        return self.how == "ambiguous"


Embed = Callable[[list[str]], np.ndarray]


@dataclass
class _Prototypes:
    owners: list[int] = field(default_factory=list)
    vectors: np.ndarray | None = None


_proto_cache: dict[tuple, _Prototypes] = {}
_proto_lock = threading.Lock()


def _keyword_hits(t: str, keywords: Sequence[str]) -> list[str]:
    """Keywords found at a word start, skipping negated ones ("no está roto")."""
    hits = []
    for k in keywords:
        whole = k.endswith("$")  # "golpe$": the word itself, not "golpeara"
        fk = fold(k.rstrip("$"))
        if not fk:
            continue
        for m in re.finditer(rf"(?<!\w){re.escape(fk)}" + (r"(?!\w)" if whole else ""), t):
            # negation scope: the two words before ("no está roto", "isn't broken"), not a
            # whole clause ("not what the photos showed" is about the photos)
            before = t[:m.start()].split()[-2:]
            if not fk.startswith(("no ", "not ", "ni ")) and any(w in NEGATIONS for w in before):
                continue
            hits.append(fk)
            break
    return hits


def _spans(t: str, keywords: Sequence[str]) -> list[tuple[int, int]]:
    out = []
    for k in keywords:
        whole = k.endswith("$")
        k = fold(k.rstrip("$"))
        m = re.search(rf"(?<!\w){re.escape(k)}" + (r"(?!\w)" if whole else ""), t)
        if m:
            out.append((m.start(), m.end()))
    return out


# Function words never count as evidence for an option ("doesn't" is in "Doesn't fit").
STOPWORDS = frozenset({
    "doesn't", "doesnt", "won't", "wont", "don't", "dont", "isn't", "can't", "cannot", "about",
    "there", "their", "these", "those", "which", "would", "could", "should", "other", "still",
    "porque", "cuando", "desde", "hasta", "sobre", "entre", "donde", "tengo", "tiene", "estaba",
    "quiero", "otra", "otro", "something", "really", "tambien", "pero", "because"})


def _typo_hit(t: str, option: Option) -> bool:
    words = [w for w in t.split() if len(w) >= 5 and w not in STOPWORDS]
    if not words:
        return False
    targets = {w for k in option.keywords + option.titles for w in fold(k).split()
               if len(w) >= 5 and w not in STOPWORDS}
    return any(SequenceMatcher(None, w, target).ratio() >= 0.88
               for w in words for target in targets)


def _position(t: str, options: Sequence[Option]) -> int | None:
    t = re.sub(r"^(?:el|la|lo|the|opcion|option|numero|number)\s+", "", t).strip()
    for i, words in ORDINALS.items():
        if i < len(options) and (t in words or t in {fold(w) for w in words}):
            return i
    if t in LAST and options:
        return len(options) - 1
    return None


def is_unknown(text: str) -> bool:
    t = f" {fold(text)} "
    return any(f" {p} " in t or t.strip().startswith(p) for p in UNKNOWN_PHRASES)


def _semantic(t: str, options: Sequence[Option], embed: Embed,
              allowed: set[int]) -> list[tuple[float, int]]:
    key = tuple((o.value, o.examples, o.titles) for o in options)
    with _proto_lock:
        protos = _proto_cache.get(key)
    if protos is None:
        owners, texts = [], []
        for i, o in enumerate(options):
            for phrase in (*o.titles, *o.examples):
                owners.append(i)
                texts.append(phrase)
        protos = _Prototypes(owners, embed(texts) if texts else None)
        with _proto_lock:
            if len(_proto_cache) > 256:
                _proto_cache.clear()
            _proto_cache[key] = protos
    if protos.vectors is None:
        return []
    q = embed([t])[0]
    sims = protos.vectors @ q
    best: dict[int, float] = {}
    for owner, s in zip(protos.owners, sims, strict=True):
        if owner in allowed:
            best[owner] = max(best.get(owner, -1.0), float(s))
    return sorted(((s, i) for i, s in best.items()), reverse=True)


def resolve(text: str, options: Sequence[Option], embed: Embed | None = None) -> Choice:
    """The option a typed answer means, or why not (see the module docstring)."""
    raw = fold(text)
    t = FILLER.sub("", raw).strip() or raw
    if not t or not any(c.isalnum() for c in t):
        return Choice(None, "none")
    for o in options:
        names = {fold(o.value), fold(o.value.replace("_", " "))} | {fold(x) for x in o.titles}
        if t in names:
            return Choice(o.value, "exact", score=1.0)
    pos = _position(t, options)
    if pos is not None:
        return Choice(options[pos].value, "position", score=1.0)

    hits = {i: _keyword_hits(t, o.keywords) for i, o in enumerate(options)}
    hit_idx = [i for i, h in hits.items() if h]
    # "other" keywords ("otra cosa") only count when nothing specific was said
    specific = [i for i in hit_idx if not options[i].fallback]
    if specific:
        hit_idx = specific
    if len(hit_idx) == 1:
        return Choice(options[hit_idx[0]].value, "keyword", score=0.95)
    if len(hit_idx) > 1:
        # A keyword inside a longer one of another option loses: "llegó roto" over "roto".
        spans = {i: _spans(t, hits[i]) for i in hit_idx}
        outer = [i for i in hit_idx if not all(
            any(a <= s and e <= b and (b - a) > (e - s) for j in hit_idx if j != i
                for a, b in spans[j]) for s, e in spans[i])]
        if len(outer) == 1:
            return Choice(options[outer[0]].value, "keyword", score=0.9)
        # Two different things said ("no es como en la foto y además llegó con un golpe"):
        # the customer is asked which one matters.
        ranked = _semantic(t, options, embed, set(outer)) if embed else []
        pair = [options[i].value for _, i in ranked[:2]] if ranked else \
            [options[i].value for i in outer[:2]]
        return Choice(None, "ambiguous", tuple(pair))

    if is_unknown(t):
        return Choice(None, "unknown")

    typo = [i for i, o in enumerate(options) if not o.fallback and _typo_hit(t, o)]
    if len(typo) == 1:
        return Choice(options[typo[0]].value, "typo", score=0.85)

    if embed is None or sum(c.isalpha() for c in t) < 4:
        return Choice(None, "none")
    # a fallback option competes only through its own examples (typical "other" cases)
    allowed = {i for i, o in enumerate(options) if not o.fallback or o.examples}
    ranked = _semantic(t, options, embed, allowed)
    if not ranked:
        return Choice(None, "none")
    top, i = ranked[0]
    second = ranked[1][0] if len(ranked) > 1 else -1.0
    if top >= SEMANTIC_ACCEPT and top - second >= SEMANTIC_MARGIN:
        return Choice(options[i].value, "semantic", score=top)
    if top >= SEMANTIC_ACCEPT and len(ranked) > 1:
        return Choice(None, "ambiguous", (options[i].value, options[ranked[1][1]].value), top)
    if top >= SEMANTIC_CONSIDER and top - second >= 2 * SEMANTIC_MARGIN:
        return Choice(options[i].value, "semantic", score=top)
    return Choice(None, "none", score=top)


def fallback_option(options: Sequence[Option]) -> str | None:
    return next((o.value for o in options if o.fallback), None)


_embedder = None
_embedder_lock = threading.Lock()


def default_embed(texts: list[str]) -> np.ndarray:
    """Unit e5 vectors; prototypes are cached on disk, customers' words never are."""
    global _embedder
    from bot.core.config import VAR_DIR
    from bot.services.kb.embeddings import Embedder

    with _embedder_lock:
        if _embedder is None:
            _embedder = Embedder(VAR_DIR / "choice_embeddings.npz")
    if len(texts) == 1:
        return _embedder.embed_uncached(texts[0])[None, :]
    vectors = _embedder.embed(texts, "query")
    _embedder.save()
    return vectors
