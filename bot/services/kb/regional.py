"""Query-side normalisation of regional and colloquial words to the knowledge base's own.

The KB is written in es-ES and British/neutral English; customers write "heladera",
"celular", "boleta", "regresarlo", "hoover". ``regionalisms.yml`` maps such words (and
frequent misspellings) to the KB's word; the search tries the customer's text as written
*and* normalised, so a mapping can only add evidence, never remove it.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import yaml

LEXICON = Path(__file__).with_name("regionalisms.yml")


def fold(text: str) -> str:
    text = unicodedata.normalize("NFD", (text or "").lower())
    return " ".join("".join(c for c in text if unicodedata.category(c) != "Mn").split())


@lru_cache(maxsize=4)
def _patterns(lang: str, path: Path = LEXICON) -> tuple[re.Pattern | None, dict[str, str]]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError:
        return None, {}
    table = {fold(str(k)): fold(str(v)) for k, v in (data.get(lang) or {}).items()
             if k and v and fold(str(k)) != fold(str(v))}
    if not table:
        return None, {}
    words = sorted(table, key=len, reverse=True)  # multi-word variants first
    return re.compile(r"(?<!\w)(" + "|".join(map(re.escape, words)) + r")(?!\w)"), table


def normalise(text: str, lang: str) -> str:
    """The folded text with regional words replaced by the KB's words."""
    folded = fold(text)
    pattern, table = _patterns(lang)
    if pattern is None:
        return folded
    return pattern.sub(lambda m: table[m.group(1)], folded)
