"""After-sales policy windows (configurable through Settings)."""

from __future__ import annotations

from datetime import date, timedelta

from bot.core.config import Settings


def add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def warranty_until(delivered: date | None, extended: bool, settings: Settings) -> date | None:
    if delivered is None:
        return None
    years = settings.warranty_years + (settings.extended_warranty_years if extended else 0)
    return add_years(delivered, years)


def return_until(delivered: date | None, settings: Settings) -> date | None:
    if delivered is None:
        return None
    return delivered + timedelta(days=settings.return_days)
