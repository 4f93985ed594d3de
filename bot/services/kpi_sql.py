"""SQL expressions the KPI engine needs that SQLite and PostgreSQL spell differently.

Why custom constructs: SQLite has no interval type and stores our naive-UTC datetimes as text
(``YYYY-MM-DD HH:MM:SS.ffffff``, SQLAlchemy's format), PostgreSQL as ``timestamp``. The KPIs must
be identical on both backends and identical to Python's ``timedelta`` arithmetic, so:

* durations are whole **microseconds** (integers: exact on both; Python divides by 1e6, which
  is what ``timedelta.total_seconds()`` does);
* "t + N seconds" on SQLite shifts the whole-second part with ``strftime`` and re-appends the
  original fraction, so text comparison with stored values stays exact to the microsecond;
* time buckets are ``YYYY-MM-DD`` strings of the bucket's first day (weeks start on Monday,
  ISO), the same keys Python generates for empty buckets (``bucket_starts``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

from sqlalchemy import BigInteger, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

UNITS = ("day", "week", "month")


class micros_between(FunctionElement):  # noqa: N801 - reads like the SQL function it is
    """``end - start`` in whole microseconds (BIGINT); NULL when either is NULL."""

    type = BigInteger()
    name = "micros_between"
    inherit_cache = True


@compiles(micros_between)
def _micros_default(element, compiler, **kw) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) * 1000000 AS BIGINT)"


@compiles(micros_between, "sqlite")
def _micros_sqlite(element, compiler, **kw) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return (f"((CAST(strftime('%s', {end}) AS INTEGER) - CAST(strftime('%s', {start}) AS INTEGER))"
            f" * 1000000 + CAST(substr({end}, 21, 6) AS INTEGER)"
            f" - CAST(substr({start}, 21, 6) AS INTEGER))")


class plus_seconds(FunctionElement):  # noqa: N801
    """A datetime column plus a constant whole number of seconds (same type as the column)."""

    name = "plus_seconds"
    inherit_cache = True
    # part of the statement cache key: two windows must not share one compiled statement
    _traverse_internals = FunctionElement._traverse_internals + [
        ("seconds", InternalTraversal.dp_plain_obj)]

    def __init__(self, column, seconds: int) -> None:
        self.seconds = int(seconds)
        super().__init__(column)
        self.type = column.type


@compiles(plus_seconds)
def _plus_default(element, compiler, **kw) -> str:
    (column,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} + INTERVAL '{element.seconds} seconds')"


@compiles(plus_seconds, "sqlite")
def _plus_sqlite(element, compiler, **kw) -> str:
    (column,) = (compiler.process(c, **kw) for c in element.clauses)
    return (f"(strftime('%Y-%m-%d %H:%M:%S', {column}, '{element.seconds:+d} seconds')"
            f" || substr({column}, 20))")


class bucket_of(FunctionElement):  # noqa: N801
    """The ``YYYY-MM-DD`` first day of the day/week/month a datetime falls in."""

    type = String()
    name = "bucket_of"
    inherit_cache = True
    _traverse_internals = FunctionElement._traverse_internals + [
        ("unit", InternalTraversal.dp_string)]

    def __init__(self, column, unit: str) -> None:
        if unit not in UNITS:
            raise ValueError(f"unknown time unit {unit!r}")
        self.unit = unit
        super().__init__(column)


@compiles(bucket_of)
def _bucket_default(element, compiler, **kw) -> str:
    (column,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"to_char(date_trunc('{element.unit}', {column}), 'YYYY-MM-DD')"


@compiles(bucket_of, "sqlite")
def _bucket_sqlite(element, compiler, **kw) -> str:
    (column,) = (compiler.process(c, **kw) for c in element.clauses)
    if element.unit == "day":
        return f"substr({column}, 1, 10)"
    if element.unit == "week":
        return f"date({column}, 'weekday 0', '-6 days')"
    return f"(substr({column}, 1, 7) || '-01')"


class joined(FunctionElement):  # noqa: N801
    """Aggregate: the group's non-NULL texts joined with single spaces."""

    type = String()
    name = "joined"
    inherit_cache = True


@compiles(joined)
def _joined_default(element, compiler, **kw) -> str:
    (column,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"string_agg({column}, ' ' ORDER BY {column})"


@compiles(joined, "sqlite")
def _joined_sqlite(element, compiler, **kw) -> str:
    (column,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"group_concat({column}, ' ')"


def bucket_start(day: date, unit: str) -> date:
    """Python's twin of ``bucket_of``."""
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def bucket_starts(since: datetime, until: datetime, unit: str) -> Iterator[str]:
    """Every bucket key that overlaps [since, until), oldest first."""
    current = bucket_start(since.date(), unit)
    while datetime.combine(current, datetime.min.time()) < until:
        yield current.isoformat()
        if unit == "day":
            current += timedelta(days=1)
        elif unit == "week":
            current += timedelta(days=7)
        else:
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)


def bucket_count(since: datetime, until: datetime, unit: str) -> int:
    """How many buckets ``bucket_starts`` would yield (without building them)."""
    first = bucket_start(since.date(), unit)
    last = (until - timedelta(microseconds=1)).date()
    if last < first:
        return 0
    if unit == "day":
        return (last - first).days + 1
    if unit == "week":
        return (last - first).days // 7 + 1
    return (last.year - first.year) * 12 + last.month - first.month + 1
