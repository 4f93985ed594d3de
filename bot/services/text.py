"""Cleaning of customer text before it reaches NLU or the transcript."""

from __future__ import annotations

import unicodedata

_KEEP_CONTROL = {"\n", "\t"}
# Joiners inside emoji sequences (ZWJ) and variation selectors carry meaning for emojis.
_KEEP_FORMAT = {"\u200d", "\ufe0f", "\ufe0e"}


def clean_text(text: str | None) -> str:
    """NFC-normalise, drop control and invisible format characters, collapse blank runs.

    Zero-width spaces, BOMs, bidi overrides and C0/C1 controls are removed: they confuse
    tokenisation and can hide content from an agent reading the transcript.
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cc" and ch not in _KEEP_CONTROL:
            continue
        if cat == "Cf" and ch not in _KEEP_FORMAT:
            continue
        if ch == "\t":
            ch = " "
        out.append(ch)
    lines = [" ".join(line.split()) for line in "".join(out).split("\n")]
    return "\n".join(line for line in lines if line).strip()


def has_words(text: str) -> bool:
    """True when the text has at least one letter or digit (not only emojis/punctuation)."""
    return any(ch.isalnum() for ch in text)
