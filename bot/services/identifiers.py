"""Order and case numbers as customers type them, normalised to the canonical form.

Orders ``PED-NNNNNN``; cases ``GAR|DEV|SOP-YYYY-NNNNNN``. Customers write them in any case,
with spaces or without dashes ("ped 000123", "gar2026000001"); we accept those and nothing else.
"""

from __future__ import annotations

import re

CASE_PREFIXES = {"warranty": "GAR", "return": "DEV", "exchange": "DEV", "support": "SOP"}

_ORDER = re.compile(r"\bPED[\s\-_]*(\d{6})\b", re.IGNORECASE)
_CASE = re.compile(r"\b(GAR|DEV|SOP)[\s\-_]*(\d{4})[\s\-_]*(\d{6})\b", re.IGNORECASE)


def find_order_number(text: str | None) -> str | None:
    match = _ORDER.search(text or "")
    return f"PED-{match.group(1)}" if match else None


def find_case_number(text: str | None) -> str | None:
    match = _CASE.search(text or "")
    if not match:
        return None
    return f"{match.group(1).upper()}-{match.group(2)}-{match.group(3)}"


def format_order_number(n: int) -> str:
    return f"PED-{n:06d}"


def format_case_number(prefix: str, year: int, n: int) -> str:
    return f"{prefix}-{year:04d}-{n:06d}"
