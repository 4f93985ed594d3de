"""When the human team works: a weekly schedule plus holidays, in the team's time zone.

``SUPPORT_HOURS`` reads like a shop door sign: ``"mon-fri 09:00-18:00; sat 10:00-14:00"``.
Outside those hours a customer who asks for a person is told honestly when the team is back
(and stays in the queue) instead of waiting for a reply that will not come tonight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = {
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_TO = {"es": "a", "en": "to"}
_PART = re.compile(r"^\s*([a-z]{3})(?:\s*-\s*([a-z]{3}))?"
                   r"\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    windows: dict[int, list[tuple[time, time]]]  # weekday → [(open, close)]
    holidays: frozenset[date]
    tz: ZoneInfo

    @classmethod
    def parse(cls, hours: str, holidays: str = "", tz: str = "Europe/Madrid") -> Schedule:
        windows: dict[int, list[tuple[time, time]]] = {i: [] for i in range(7)}
        for part in filter(None, (p.strip() for p in hours.lower().split(";"))):
            m = _PART.match(part)
            if not m or m.group(1) not in DAYS or (m.group(2) and m.group(2) not in DAYS):
                raise ScheduleError(f"cannot read {part!r} (e.g. 'mon-fri 09:00-18:00')")
            first = DAYS.index(m.group(1))
            last = DAYS.index(m.group(2)) if m.group(2) else first
            start = time(int(m.group(3)), int(m.group(4)))
            end = time(int(m.group(5)), int(m.group(6))) if m.group(5) != "24" else time.max
            if end <= start:
                raise ScheduleError(f"{part!r}: closing time must be after opening time")
            day = first
            while True:
                windows[day].append((start, end))
                if day == last:
                    break
                day = (day + 1) % 7
        days = frozenset(date.fromisoformat(d.strip()) for d in holidays.split(",") if d.strip())
        return cls(windows, days, ZoneInfo(tz))

    def describe(self, lang: str) -> str:
        """The hours in the customer's words: "lunes a viernes 09:00–18:00, sábado
        10:00–14:00" (not the setting's "mon-fri", which a customer should never read)."""
        lang = lang if lang in DAY_NAMES else "en"
        names = DAY_NAMES[lang]

        def hours(day: int) -> str:
            return (" y " if lang == "es" else " and ").join(
                f"{start:%H:%M}–{'24:00' if end == time.max else f'{end:%H:%M}'}"
                for start, end in sorted(self.windows[day]))

        parts, day = [], 0
        while day < 7:
            if not self.windows[day]:
                day += 1
                continue
            last = day
            while last + 1 < 7 and self.windows[last + 1] == self.windows[day]:
                last += 1
            span = names[day] if last == day else (
                f"{names[day]} {_TO[lang]} {names[last]}" if last > day + 1
                else f"{names[day]} {'y' if lang == 'es' else 'and'} {names[last]}")
            parts.append(f"{span} {hours(day)}")
            day = last + 1
        return "; ".join(parts) or ("sin horario" if lang == "es" else "no hours set")

    def local(self, now: datetime) -> datetime:
        if now.tzinfo is None:  # our DB times are naive UTC
            now = now.replace(tzinfo=timezone.utc)
        return now.astimezone(self.tz)

    def is_open(self, now: datetime) -> bool:
        t = self.local(now)
        if t.date() in self.holidays:
            return False
        return any(start <= t.time() < end for start, end in self.windows[t.weekday()])

    def next_opening(self, now: datetime) -> datetime | None:
        """The next moment the team is in (local time), or None if the schedule is empty."""
        t = self.local(now)
        for offset in range(0, 400):
            day = t.date() + timedelta(days=offset)
            if day in self.holidays:
                continue
            for start, _end in sorted(self.windows[day.weekday()]):
                candidate = datetime.combine(day, start, tzinfo=self.tz)
                if candidate > t:
                    return candidate
        return None
