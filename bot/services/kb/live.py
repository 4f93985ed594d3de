"""The knowledge base as running processes see it: the database's current entries, indexed.

Every search first reads the KB version (one indexed query); when an admin has created,
edited or deleted an entry since the last search, the index is rebuilt before answering.
Only changed texts need new embeddings (cached), so an edit is live in well under a second
and nothing is retrained.
"""

from __future__ import annotations

import threading
from pathlib import Path

from bot.core.config import ROOT
from bot.db.session import session_scope
from bot.services.kb import store
from bot.services.kb.embeddings import Embedder
from bot.services.kb.loader import load_unanswerable
from bot.services.kb.search import FaqSearcher, SearchResult

KB_DIR = ROOT / "knowledge_base"


class LiveKnowledgeBase:
    def __init__(self, database_url: str, embedder: Embedder | None = None,
                 kb_dir: Path = KB_DIR) -> None:
        self.database_url = database_url
        self.embedder = embedder or Embedder()
        self.negatives = load_unanswerable(kb_dir)
        self._searcher: FaqSearcher | None = None
        self._version = -1
        self._lock = threading.Lock()

    def current(self) -> FaqSearcher:
        with session_scope(self.database_url) as session:
            version = store.kb_version(session)
            if self._searcher is not None and version == self._version:
                return self._searcher
            entries = [{"id": e.faq_id, "tags": list(e.tags or []), "content": e.content}
                       for e in store.list_entries(session)]
        with self._lock:
            if self._searcher is None or version != self._version:
                self._searcher = FaqSearcher(entries, self.embedder, negatives=self.negatives)
                self._version = version
                self.embedder.save()
            return self._searcher

    @property
    def version(self) -> int:
        return self._version

    def search(self, query: str, lang: str) -> SearchResult:
        return self.current().search(query, lang)

    def answer(self, faq_id: str, lang: str) -> dict[str, str] | None:
        return self.current().answer(faq_id, lang)
