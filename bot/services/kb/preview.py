"""The editor's "try it" box: which entry (or none) the bot would answer a customer question
with, with the scores and the "did you mean" candidates — over the published knowledge base,
and over the same knowledge base with the admin's unsaved edit applied in memory.

The second index is built like the bot's own (same ``FaqSearcher``, same calibration); only
the edited entry's texts need new embeddings (the rest come from the cache), so a try costs
tens of milliseconds and nothing is written.
"""

from __future__ import annotations

from typing import Any

from bot.services.kb.live import LiveKnowledgeBase
from bot.services.kb.search import FaqSearcher, SearchResult

SHOWN_CANDIDATES = 5
SUGGESTIONS = 3  # what actions/faq.py offers as buttons


def with_entry(searcher: FaqSearcher, faq_id: str, data: dict[str, Any],
               negatives: dict[str, list[str]]) -> FaqSearcher:
    """The published index with one entry replaced (or added) by ``data``."""
    entries = dict(searcher.entries)
    entries[faq_id] = {"id": faq_id, "tags": list(data.get("tags") or []),
                       "content": data["content"]}
    return FaqSearcher([entries[k] for k in sorted(entries)], searcher.embedder,
                       negatives=negatives)


def describe(result: SearchResult, searcher: FaqSearcher) -> dict[str, Any]:
    """What the customer would get, as the editor shows it."""
    config = searcher.configs.get(result.language) or next(iter(searcher.configs.values()))
    return {
        "decision": result.decision,  # answer | suggest | none
        "faq_id": result.faq_id if result.decision == "answer" else None,
        "suggestions": ([c.faq_id for c in result.candidates[:SUGGESTIONS]]
                        if result.decision == "suggest" else []),
        "candidates": [{"faq_id": c.faq_id, "title": c.title, "score": round(c.score, 4),
                        "semantic": round(c.semantic, 4), "lexical": round(c.lexical, 4)}
                       for c in result.candidates],
        "thresholds": {"answer": config.answer_threshold, "margin": config.answer_margin,
                       "suggest": config.suggest_threshold},
    }


def try_question(live: LiveKnowledgeBase, query: str, lang: str, faq_id: str | None = None,
                 draft: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"before": ..., "after": ... | None}``; ``after`` only with an edit to apply."""
    searcher = live.current()
    before = describe(searcher.search(query, lang, k=SHOWN_CANDIDATES), searcher)
    after = None
    if faq_id and draft is not None:
        edited = with_entry(searcher, faq_id, draft, live.negatives)
        after = describe(edited.search(query, lang, k=SHOWN_CANDIDATES), edited)
    return {"query": query, "lang": lang, "before": before, "after": after}


def ranking(live: LiveKnowledgeBase, query: str, lang: str) -> tuple[dict[str, Any],
                                                                     dict[str, float]]:
    """The bot's verdict on ``query`` and the fused score of every published entry (the
    editor's list is ordered by it)."""
    searcher = live.current()
    result = searcher.search(query, lang, k=max(1, len(searcher.entries)))
    return describe(result, searcher), {c.faq_id: c.score for c in result.candidates}
