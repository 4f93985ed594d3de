"""After-sales policy windows (configurable through Settings)."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    # within_warranty | extended_warranty | warranty_expired | within_return_window |
    # return_window_closed | damaged_on_arrival | not_delivered
    reason: str
    until: date | None


def warranty_eligibility(delivered: date | None, extended: bool, settings: Settings,
                         today: date | None = None) -> Eligibility:
    today = today or date.today()
    if delivered is None or delivered > today:
        return Eligibility(False, "not_delivered", None)
    legal = add_years(delivered, settings.warranty_years)
    if today <= legal:
        return Eligibility(True, "within_warranty", legal)
    until = warranty_until(delivered, extended, settings)
    if extended and until and today <= until:
        return Eligibility(True, "extended_warranty", until)
    return Eligibility(False, "warranty_expired", until)


def return_eligibility(delivered: date | None, settings: Settings, today: date | None = None,
                       damaged_on_arrival: bool = False) -> Eligibility:
    """Damaged on arrival is handled like a warranty case, whatever the return window."""
    today = today or date.today()
    if delivered is None or delivered > today:
        return Eligibility(False, "not_delivered", None)
    until = return_until(delivered, settings)
    if damaged_on_arrival:
        return Eligibility(True, "damaged_on_arrival", until)
    if until and today <= until:
        return Eligibility(True, "within_return_window", until)
    return Eligibility(False, "return_window_closed", until)
