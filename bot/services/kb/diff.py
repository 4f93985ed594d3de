"""What changed between two versions of an FAQ entry, field by field, computed on the server
with difflib so that every client (console, tests, CLI) shows the same diff, as plain text.

Answers and titles are compared word by word (an edited answer usually changes a few words
in a long paragraph); example questions and tags line by line (each is a unit).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

LANGUAGES = ("es", "en")
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)

Op = tuple[str, str]  # ("equal" | "insert" | "delete", text)


def _merge(ops: list[Op]) -> list[Op]:
    merged: list[Op] = []
    for op, text in ops:
        if text and merged and merged[-1][0] == op:
            merged[-1] = (op, merged[-1][1] + text)
        elif text:
            merged.append((op, text))
    return merged


def _regroup(ops: list[Op]) -> list[Op]:
    """One removal then one addition per changed stretch: a space left equal between two
    changed words would otherwise cut a rewritten sentence into word-by-word pairs."""
    out: list[Op] = []
    removed: list[str] = []
    added: list[str] = []

    def flush() -> None:
        if removed:
            out.append(("delete", "".join(removed)))
        if added:
            out.append(("insert", "".join(added)))
        removed.clear()
        added.clear()

    for i, (op, text) in enumerate(ops):
        if op == "equal":
            if (text.isspace() and (removed or added) and i + 1 < len(ops)
                    and ops[i + 1][0] != "equal"):
                removed.append(text)
                added.append(text)
                continue
            flush()
            out.append((op, text))
        else:
            (removed if op == "delete" else added).append(text)
    flush()
    return _merge(out)


def word_ops(old: str, new: str) -> list[Op]:
    """Word-level edit script of two texts (whitespace kept, so joining gives the texts)."""
    a, b = _TOKEN.findall(old or ""), _TOKEN.findall(new or "")
    ops: list[Op] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append(("equal", "".join(a[i1:i2])))
            continue
        if tag in ("delete", "replace"):
            ops.append(("delete", "".join(a[i1:i2])))
        if tag in ("insert", "replace"):
            ops.append(("insert", "".join(b[j1:j2])))
    return _regroup(ops)


def line_ops(old: list[str], new: list[str]) -> list[Op]:
    """Line-level edit script of two lists (questions, tags); each text ends with a newline."""
    ops: list[Op] = []
    matcher = difflib.SequenceMatcher(None, list(old), list(new), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            ops += [("equal", line + "\n") for line in old[i1:i2]]
            continue
        if tag in ("delete", "replace"):
            ops += [("delete", line + "\n") for line in old[i1:i2]]
        if tag in ("insert", "replace"):
            ops += [("insert", line + "\n") for line in new[j1:j2]]
    return ops


def as_text(ops: list[Op], lines: bool = False) -> str:
    """The edit script as text: ``[-removed-]{+added+}`` inline (as ``git diff --word-diff``),
    or ``- line`` / ``+ line`` / ``  line`` for lists."""
    if lines:
        mark = {"equal": "  ", "delete": "- ", "insert": "+ "}
        return "".join(mark[op] + text for op, text in ops).rstrip("\n")
    wrap = {"equal": "{}", "delete": "[-{}-]", "insert": "{{+{}+}}"}
    return "".join(wrap[op].format(text) for op, text in ops)


def _block(data: dict[str, Any] | None, lang: str) -> dict[str, Any]:
    block = ((data or {}).get("content") or {}).get(lang) or {}
    return {"title": str(block.get("title") or ""), "answer": str(block.get("answer") or ""),
            "questions": [str(q) for q in block.get("questions") or []]}


def entry_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Changed fields between two ``{"tags", "content"}`` versions (None: nothing), each as
    ``{"field": "es.answer", "lang", "part", "ops": [[op, text], ...], "text"}``."""
    changes: list[dict[str, Any]] = []
    old_tags = [str(t) for t in (old or {}).get("tags") or []]
    new_tags = [str(t) for t in (new or {}).get("tags") or []]
    if old_tags != new_tags:
        ops = line_ops(old_tags, new_tags)
        changes.append({"field": "tags", "lang": None, "part": "tags",
                        "ops": [list(o) for o in ops], "text": as_text(ops, lines=True)})
    for lang in LANGUAGES:
        a, b = _block(old, lang), _block(new, lang)
        for part in ("title", "answer", "questions"):
            if a[part] == b[part]:
                continue
            lines = part == "questions"
            ops = line_ops(a[part], b[part]) if lines else word_ops(a[part], b[part])
            changes.append({"field": f"{lang}.{part}", "lang": lang, "part": part,
                            "ops": [list(o) for o in ops], "text": as_text(ops, lines)})
    return changes


def diff_text(changes: list[dict[str, Any]]) -> str:
    """The whole diff as one text (logs, audit details, the CLI)."""
    return "\n".join(f"{c['field']}:\n{c['text']}" for c in changes)
