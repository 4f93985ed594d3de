"""Free text → option (bot.services.choices): every question with buttons, both languages.

The semantic step uses the bundled e5 model (loaded once for the module); the others are
pure text rules."""

from __future__ import annotations

from datetime import date

import pytest

from bot.services import choices
from bot.services.choice_catalog import options_for, product_options
from bot.services.parsing import parse_date

LINES = product_options([(1, "Lavadora Aqualux 8 kg"), (2, "Cafetera espresso Barista"),
                         (3, "Auriculares Bluetooth NC")])


def pick(text: str, kind: str | None = None, options=None, embed=choices.default_embed):
    return choices.resolve(text, options or options_for(kind), embed)


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("hace un ruido raro al centrifugar", "problem_category", "noise"),
    ("the screen goes black after a minute", "problem_category", "software"),
    ("no da señales de vida", "problem_category", "no_power"),
    ("it's completely dead, nothing happens", "problem_category", "no_power"),
    ("le faltaba el cable de alimentación", "problem_category", "missing_parts"),
    ("la verdad es que el color no pega con mi salón", "return_reason", "changed_mind"),
    ("honestly I just don't like it", "return_reason", "changed_mind"),
    ("it's way too big for my kitchen", "return_reason", "doesnt_fit"),
    ("me llegó con la esquina rota", "return_reason", "arrived_damaged"),
    ("prefiero que me la cambien por una nueva", "preferred_resolution", "replacement"),
    ("just give me my money back", "preferred_resolution", "refund"),
    ("que venga alguien a arreglarla", "preferred_resolution", "repair"),
    ("quiero el dinero", "return_type", "return"),
    ("I'd rather swap it for the bigger one", "return_type", "exchange"),
])
def test_words_map_to_the_option(text, kind, value):
    assert pick(text, kind).value == value


@pytest.mark.parametrize(("text", "line"), [
    ("la cafetera", "2"), ("the coffee machine", "2"), ("los cascos", "3"),
    ("the headphones", "3"), ("la segunda", "2"), ("washing machine", "1"), ("3", "3"),
    ("el último", "3"),
])
def test_product_of_the_order_by_name_or_position(text, line):
    assert pick(text, options=LINES).value == line


def test_exact_titles_in_either_language_and_typos():
    assert pick("Reembolso", "preferred_resolution").how == "exact"
    assert pick("Doesn't fit", "return_reason").value == "doesnt_fit"
    assert pick("reparacion", "preferred_resolution").value == "repair"
    assert pick("reparasion", "preferred_resolution").value == "repair"  # typo


def test_whole_word_keywords_do_not_match_inside_other_words():
    # "golpeara" is not "golpe", "dentro" is not "dent"
    assert pick("hace un ruido raro, como si algo golpeara dentro", "problem_category"
                ).value == "noise"


def test_negation_is_respected():
    assert pick("no está roto, pero hace un zumbido", "problem_category").value == "noise"


def test_negation_scope_is_short():
    found = pick("no es lo que salía en las fotos de la web", "return_reason")
    assert found.value == "not_as_described"


def test_two_different_reasons_ask_which_one():
    found = pick("no es como en la foto y además llegó con un golpe", "return_reason")
    assert found.ambiguous
    assert set(found.candidates) == {"not_as_described", "arrived_damaged"}


def test_a_longer_keyword_wins_over_the_word_inside_it():
    assert pick("llegó roto", "return_reason").value == "arrived_damaged"


@pytest.mark.parametrize("text", ["", "   ", "🤔", "mmm", "?!", "zzz"])
def test_empty_emoji_and_noise_are_not_guessed(text):
    assert not pick(text, "problem_category").found


@pytest.mark.parametrize("text", ["no sé", "ni idea", "I don't know", "lo que ustedes vean"])
def test_i_dont_know_is_its_own_answer(text):
    assert pick(text, "preferred_resolution").how == "unknown"


def test_a_problem_that_fits_no_button_is_not_forced_into_one():
    """Either "other" by meaning or no option (the form then notes it as "other" with the
    customer's words) — never one of the specific buttons."""
    for text in ("huele a quemado cuando lleva un rato encendida",
                 "it doesn't get cold at all", "pierde agua por abajo"):
        found = pick(text, "problem_category")
        assert found.value in ("other", None) and not found.ambiguous, (text, found)
    assert choices.fallback_option(options_for("return_reason")) == "other"


def test_nothing_close_gives_no_guess():
    found = pick("bla bla bla bla", "return_type")
    assert not found.found and not found.ambiguous


def test_without_embeddings_only_text_rules_apply():
    assert pick("se le ha caído la puerta", "problem_category", embed=None).value is None


@pytest.mark.parametrize(("text", "expected"), [
    ("around the first of the month", date(2026, 11, 1)),
    ("a principios de mes", date(2026, 11, 1)),
    ("desde el lunes", date(2026, 11, 23)),
    ("the 3rd of march", date(2026, 3, 3)),
    ("el día 30", date(2026, 10, 30)),  # day 30 is still to come: last month's
])
def test_dates_as_customers_type_them(text, expected):
    assert parse_date(text, today=date(2026, 11, 27)) == expected


def test_future_dates_are_refused():
    assert parse_date("el 3 de diciembre de 2026", today=date(2026, 11, 27)) is None
