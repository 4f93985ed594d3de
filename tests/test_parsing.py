"""Typed answers to form questions: dates, categories, resolutions, return reasons."""

from datetime import date

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
