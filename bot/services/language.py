"""Which language to answer in: explicit choice > channel locale > the text itself.

Detection is a small scoring of function words and Spanish-only characters: it needs no
model, works on two-word messages and is predictable enough to test.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

SUPPORTED = ("es", "en")

_ES_WORDS = set(
    """
    el la los las un una unos unas de del al y o que qué en con por para mi mis tu tus su sus
    es está esta estoy son soy eres hay como cómo cuando cuándo donde dónde cual cuál quiero
    quisiera puedo puede pueden necesito tengo tiene gracias hola buenas buenos días dias tardes
    noches adiós adios sí si no pero muy más mas ya también tambien porque cuanto cuánto cuanta
    lo le me te se nos vale claro ayuda ayudar favor pedido devolver devolución devolucion
    garantía garantia reembolso cambiar producto hablar persona quiero necesito mismo todo nada
    algo hace ahora aquí aqui eso esto ese esta estas estos chao hasta luego perdón perdon
    roto rota funciona llegó llego dinero tarda cuándo semana mes año
    """.split()
)
_EN_WORDS = set(
    """
    the a an of and or to in on with for my your his her their is are am was were be been
    what how when where which who why i you we they it this that these those have has had do
    does did can could would should will want need please thanks thank hello hi hey bye
    goodbye yes no not but very more also because much many just order return refund warranty
    exchange product talk person help speak english get my broken working arrived money
    long take week month year there here anything something nothing sorry ok okay
    """.split()
)
# Words that are the same in both languages or too short to tell anything.
_AMBIGUOUS = {"no", "ok", "a", "me", "he", "mi", "son", "is", "si", "de"}
_ES_CHARS = re.compile(r"[ñ¿¡áéíóúü]", re.IGNORECASE)
_WORD = re.compile(r"[a-záéíóúüñ']+", re.IGNORECASE)


@dataclass(frozen=True)
class Detection:
    language: str | None  # None: not enough evidence
    confidence: float  # 0..1
    words: int


def _fold(word: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn"
    )


_ES_FOLDED = {_fold(w) for w in _ES_WORDS}


# what says nothing about a language: e-mail addresses, links, order and case numbers (an
# address like "typed-1a2b3c4d@example.com" read as the English word "a", four times)
_NOT_WORDS = re.compile(r"\S+@\S+|https?://\S+|www\.\S+|\b(?:PED|GAR|DEV|SOP)[\s\-_]*\d[\d\s\-_]*",
                        re.IGNORECASE)


def detect(text: str) -> Detection:
    text = _NOT_WORDS.sub(" ", text or "")
    words = [w.lower() for w in _WORD.findall(text)]
    es = en = 0.0
    for w in words:
        if w in _AMBIGUOUS:
            continue
        if w in _ES_WORDS or _fold(w) in _ES_FOLDED:
            es += 1
        if w in _EN_WORDS:
            en += 1
    es += 1.5 * len(_ES_CHARS.findall(text or ""))
    total = es + en
    if total < 1:
        return Detection(None, 0.0, len(words))
    lang = "es" if es >= en else "en"
    confidence = abs(es - en) / total
    return Detection(lang, confidence, len(words))


def normalise_locale(locale: str | None) -> str | None:
    """'es-MX' → 'es', 'EN_us' → 'en'; unsupported or empty → None."""
    if not locale or not isinstance(locale, str):
        return None
    code = locale.strip().replace("_", "-").split("-")[0].lower()
    return code if code in SUPPORTED else None


@dataclass(frozen=True)
class LanguageDecision:
    language: str
    source: str  # explicit | locale | text | previous | default


def decide(
    *,
    text: str,
    locale: str | None,
    previous: str | None,
    previous_source: str | None,
    default: str = "es",
) -> LanguageDecision:
    """Pick the reply language for this turn.

    An explicit choice is sticky for the conversation. Otherwise the channel locale wins,
    except that a clearly-worded message of four or more words in the other language
    overrides it (a Spanish speaker on an English phone must not be answered in English),
    and a conversation such a message moved stays in that language through short replies
    until one is clearly in the locale's language again.
    Without a locale, the text decides; when the text says nothing (an emoji, an order
    number), the conversation keeps its language.
    """
    if previous_source == "explicit" and previous in SUPPORTED:
        return LanguageDecision(previous, "explicit")
    det = detect(text)
    strong = det.language is not None and det.words >= 4 and det.confidence >= 0.6
    loc = normalise_locale(locale)
    if loc:
        if strong and det.language != loc:
            return LanguageDecision(det.language, "text")
        if (previous_source == "text" and previous in SUPPORTED and previous != loc
                and not (det.language == loc and det.confidence >= 0.5)):
            # someone writing English on a Spanish phone keeps English through short
            # replies ("cool thanks, bye", "no that's all") until they write Spanish again
            return LanguageDecision(previous, "text")
        return LanguageDecision(loc, "locale")
    if det.language is not None and (det.confidence >= 0.5 or previous is None):
        return LanguageDecision(det.language, "text")
    if previous in SUPPORTED:
        return LanguageDecision(previous, previous_source or "previous")
    return LanguageDecision(default, "default")
