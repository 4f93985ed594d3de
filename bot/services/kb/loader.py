"""Read and validate knowledge-base files (`knowledge_base/<id>.yml`).

Validation is strict and happens before anything is written, so an import is all-or-nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

LANGUAGES = ("es", "en")
ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_ANSWER_CHARS = 4000


class KBError(ValueError):
    """A knowledge-base entry or file is invalid; the message says which and why."""


def validate_entry(raw: Any, source: str = "entry") -> dict[str, Any]:
    """Return the entry in canonical form: {id, tags, content: {es: {...}, en: {...}}}."""
    if not isinstance(raw, dict):
        raise KBError(f"{source}: expected a mapping with id, tags, es, en")
    if isinstance(raw.get("content"), dict):  # already in canonical form
        raw = {"id": raw.get("id"), "tags": raw.get("tags"), **raw["content"]}
    faq_id = str(raw.get("id") or "").strip()
    if not ID_RE.match(faq_id):
        raise KBError(f"{source}: id {faq_id!r} must be lower-case words joined by dashes")
    tags = raw.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise KBError(f"{source} ({faq_id}): tags must be a list of strings")
    content: dict[str, Any] = {}
    for lang in LANGUAGES:
        block = raw.get(lang)
        if not isinstance(block, dict):
            raise KBError(f"{source} ({faq_id}): missing the {lang!r} block")
        title = str(block.get("title") or "").strip()
        answer = str(block.get("answer") or "").strip()
        questions = [str(q).strip() for q in (block.get("questions") or []) if str(q).strip()]
        if not title:
            raise KBError(f"{source} ({faq_id}): empty {lang} title")
        if not answer:
            raise KBError(f"{source} ({faq_id}): empty {lang} answer")
        if len(answer) > MAX_ANSWER_CHARS:
            raise KBError(f"{source} ({faq_id}): {lang} answer longer than {MAX_ANSWER_CHARS}")
        if len(questions) < 1:
            raise KBError(f"{source} ({faq_id}): {lang} needs at least one example question")
        content[lang] = {"title": title, "answer": answer, "questions": questions}
    return {"id": faq_id, "tags": [t.strip() for t in tags if t.strip()], "content": content}


def load_directory(path: Path) -> list[dict[str, Any]]:
    """Every `*.yml`/`*.yaml` file under `path` (one entry, or a list of entries, per file)."""
    if not path.is_dir():
        raise KBError(f"{path}: not a directory")
    entries: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    # Files starting with "_" are not entries (e.g. _unanswerable.yml, negative prototypes).
    files = sorted(f for f in list(path.glob("*.yml")) + list(path.glob("*.yaml"))
                   if not f.name.startswith("_"))
    if not files:
        raise KBError(f"{path}: no .yml files")
    for file in files:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise KBError(f"{file.name}: not valid YAML ({exc})") from exc
        for i, raw in enumerate(data if isinstance(data, list) else [data]):
            where = f"{file.name}[{i}]" if isinstance(data, list) else file.name
            entry = validate_entry(raw, where)
            if entry["id"] in seen:
                raise KBError(
                    f"duplicate id {entry['id']!r} in {seen[entry['id']]} and {file.name}")
            seen[entry["id"]] = file.name
            entries.append(entry)
    return entries


def dump_entry(entry: dict[str, Any]) -> str:
    doc = {"id": entry["id"], "tags": entry["tags"], **entry["content"]}
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)


def load_unanswerable(path: Path) -> dict[str, list[str]]:
    """Questions the KB must not answer (``_unanswerable.yml``): negative prototypes."""
    file = path / "_unanswerable.yml"
    if not file.is_file():
        return {"es": [], "en": []}
    data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    return {lang: [str(q).strip() for q in data.get(lang) or [] if str(q).strip()]
            for lang in LANGUAGES}
