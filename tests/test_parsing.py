"""Typed answers to form questions: dates, categories, resolutions, return reasons."""

from datetime import date, timedelta

import pytest

from bot.services import parsing
from bot.services.labels import label, options

TODAY = date(2026, 11, 25)


@pytest.mark.parametrize("text, expected", [
    ("ayer", date(2026, 11, 24)),
    ("desde ayer por la tarde", date(2026, 11, 24)),
    ("hace 2 semanas", date(2026, 11, 11)),
    ("hace dos semanas", date(2026, 11, 11)),
    ("hace un mes", date(2026, 10, 26)),
    ("el 3 de marzo", date(2026, 3, 3)),
    ("3/03/2026", date(2026, 3, 3)),
    ("3-3-26", date(2026, 3, 3)),
    ("2026-11-01", date(2026, 11, 1)),
    ("yesterday", date(2026, 11, 24)),
    ("two weeks ago", date(2026, 11, 11)),
    ("3 days ago", date(2026, 11, 22)),
    ("March 3", date(2026, 3, 3)),
    ("since March 3rd, 2025", date(2025, 3, 3)),
    ("el 30 de diciembre", date(2025, 12, 30)),  # last December, not a future date
    ("hoy", TODAY),
    ("no sé", "unknown"),
    ("I don't know", "unknown"),
    ("ni idea, hace mucho", "unknown"),
    # "no se" that is not "I don't know": the date wins (TODAY is Wednesday 2026-11-25)
    ("no se enciende desde el lunes", date(2026, 11, 23)),
    ("no sé, la semana pasada", date(2026, 11, 18)),
])
def test_dates(text, expected):
    assert parsing.parse_date(text, TODAY) == expected


@pytest.mark.parametrize("text", ["mañana", "2026-12-24", "blablá", "", "31/02/2026", "👍"])
def test_not_dates(text):
    assert parsing.parse_date(text, TODAY) is None


@pytest.mark.parametrize("text, value", [
    ("la lavadora no enciende", "no_power"),
    ("it won't turn on", "no_power"),
    ("hace un ruido horrible al centrifugar", "noise"),
    ("llegó con un golpe en la puerta", "damaged"),
    ("faltan dos tornillos", "missing_parts"),
    ("la app no conecta por wifi", "software"),
    ("otra cosa", "other"),
])
def test_problem_category(text, value):
    assert parsing.problem_category(text) == value


def test_choices_and_unknown_answers():
    assert parsing.resolution("prefiero que me devuelvan el dinero") == "refund"
    assert parsing.resolution("que me la arreglen") == "repair"
    assert parsing.resolution("a new one please, replace it") == "replacement"
    assert parsing.return_reason("no cabe en el hueco") == "doesnt_fit"
    assert parsing.return_reason("I changed my mind") == "changed_mind"
    assert parsing.return_type("cambiarlo por otra talla") == "exchange"
    assert parsing.return_type("I want my money back") == "return"
    assert parsing.problem_category("qwerty") is None
    assert parsing.return_reason("👍") is None


def test_labels_in_both_languages():
    assert label("status", "waiting_customer", "es") == "pendiente de tu respuesta"
    assert label("status", "waiting_customer", "en") == "waiting for your reply"
    assert [v for v, _ in options("return_type", "en")] == ["return", "exchange"]
    assert label("status", "unknown-value", "es") == "unknown-value"


FRIDAY = date(2026, 11, 27)


@pytest.mark.parametrize("text, days_ago", [
    ("desde hace un par de semanas", 14),
    ("hace un par de días", 2),
    ("a couple of days ago", 2),
    ("hace unos días", 3),
    ("desde hace unos dias", 3),
    ("a few days ago", 3),
    ("hace unos pocos días", 3),
    ("hace algunos días", 3),
    ("some days ago", 3),
    ("hace quince días", 15),
    ("hace 15 dias", 15),
    ("hace once días", 11),
    ("hace doce días", 12),
    ("hace veinte días", 20),
    ("hace treinta días", 30),
    ("fifteen days ago", 15),
    ("twenty days ago", 20),
    ("thirty days ago", 30),
    ("hace una semanita", 7),
    ("hace un mesecito", 30),
    ("hace unos diitas", 3),
    ("since last weekend", 6),  # Saturday 21
    ("desde el finde", 6),
    ("desde el fin de semana", 6),
    ("el finde pasado", 6),
    ("last weekend", 6),
    ("anoche", 1),
    ("last night", 1),
    ("antier", 2),
    ("el otro día", 3),
    ("the other day", 3),
    ("hace poco", 3),
    ("desde hace poco", 3),
    ("recently", 3),
    ("recientemente", 3),
    ("esta semana", 4),  # Monday 23
    ("this week", 4),
    ("este mes", 26),  # the 1st
    ("this month", 26),
    ("no enciende desde el lunes", 4),
    ("hace un ruido raro desde el lunes", 4),  # the noise is not a date, Monday is
    ("hace un ruido raro desde hace una semana", 7),
])
def test_dates_as_customers_say_them(text, days_ago):
    assert parsing.parse_date(text, FRIDAY) == FRIDAY - timedelta(days=days_ago)


def test_this_week_on_a_monday_is_today():
    monday = date(2026, 11, 23)
    assert parsing.parse_date("esta semana", monday) == monday
    assert parsing.parse_date("this week", monday) == monday


@pytest.mark.parametrize("text", ["hace ruido", "hace poco ruido", "hace mucho ruido",
                                  "PED-000123", "hola?", "desde que lo compré",
                                  "since I bought it", "desde que lo compré, hace poco",
                                  "hace un ruido horrible"])
def test_not_dates_on_a_friday(text):
    assert parsing.parse_date(text, FRIDAY) is None


@pytest.mark.parametrize("text", ["desde que lo compré", "since I bought it",
                                  "since we purchased it", "desde la compra", "desde que llegó"])
def test_since_buying_is_since_delivery(text):
    assert parsing.since_delivery(text)


@pytest.mark.parametrize("text", ["hace ruido", "hace 2 semanas", "hola?", "desde el lunes"])
def test_not_since_delivery(text):
    assert not parsing.since_delivery(text)


@pytest.mark.parametrize("text, expected", [
    ("la verdad no fue nada fácil", 2), ("no fue nada fácil", 2), ("nada fácil", 2),
    ("not easy at all", 2), ("not at all easy", 2), ("no fue fácil para nada", 2),
    ("no fue fácil", 3), ("not easy", 3), ("it wasn't easy", 3), ("no muy fácil", 3),
    ("not very easy", 3), ("tampoco fue fácil", 3),
    ("nada difícil", 6), ("no fue nada difícil", 6), ("not difficult at all", 6),
    ("not hard at all", 6),
    ("no fue difícil", 5), ("not difficult", 5), ("not hard", 5), ("wasn't hard", 5),
    ("no, un 6", 6), ("no, fue muy fácil", 7), ("muy fácil", 7), ("fácil", 6),
    ("difícil", 2), ("ni fácil ni difícil", 4), ("neither easy nor difficult", 4),
    ("no del todo fácil", None), ("no sé si fue fácil", None),
    ("no fue fácil, fue difícil", None),
])
def test_negated_effort_words(text, expected):
    assert parsing.parse_score(text, 1, 7, words=True) == expected


def test_an_open_case_past_its_promise_says_so_instead_of_promising_again():
    """A two-week-old open case still read "the team will review it within 1–2 working
    days" (found by a helper typing as customers)."""
    from bot.services.labels import next_step, working_days_between

    friday, monday, wednesday = date(2026, 11, 20), date(2026, 11, 23), date(2026, 11, 25)
    assert working_days_between(friday, monday) == 1  # the weekend does not count
    assert working_days_between(friday, wednesday) == 3
    assert "1–2" in next_step("open", monday, wednesday, "es")  # 2 working days: on time
    late = next_step("open", friday, wednesday, "en")
    assert "longer than we told you" in late and "talk to a person" in late
    assert "hablar con una persona" in next_step("open", friday, wednesday, "es")
    # other statuses keep their own next step, however old
    assert next_step("in_progress", friday, wednesday, "es") == \
        "Estamos trabajando en ello; te avisaremos de cualquier novedad."
