"""Human labels of canonical values (categories, statuses…), in both languages."""

from __future__ import annotations

from datetime import date, timedelta

LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "problem_category": {
        "no_power": ("No enciende", "Doesn't turn on"),
        "damaged": ("Roto o dañado", "Broken or damaged"),
        "noise": ("Hace ruido", "Makes noise"),
        "missing_parts": ("Faltan piezas", "Missing parts"),
        "software": ("Software o conexión", "Software or connectivity"),
        "other": ("Otro problema", "Something else"),
    },
    "preferred_resolution": {
        "repair": ("Reparación", "Repair"),
        "replacement": ("Sustitución", "Replacement"),
        "refund": ("Reembolso", "Refund"),
        "no_preference": ("Lo que recomendéis", "Whatever you recommend"),
    },
    "return_reason": {
        "doesnt_fit": ("No cabe / no es la talla", "Doesn't fit"),
        "not_as_described": ("No es como se describía", "Not as described"),
        "changed_mind": ("He cambiado de opinión", "Changed my mind"),
        "arrived_damaged": ("Llegó dañado", "Arrived damaged"),
        "wrong_item": ("Producto equivocado", "Wrong item"),
        "other": ("Otro motivo", "Another reason"),
    },
    "return_type": {
        "return": ("Devolución con reembolso", "Return for a refund"),
        "exchange": ("Cambio por otro", "Exchange"),
    },
    "status": {
        "open": ("abierto, pendiente de revisión", "open, waiting for review"),
        "in_progress": ("en curso", "in progress"),
        "waiting_customer": ("pendiente de tu respuesta", "waiting for your reply"),
        "resolved": ("resuelto", "resolved"),
        "closed": ("cerrado", "closed"),
    },
    "case_type": {
        "warranty": ("Garantía", "Warranty"),
        "return": ("Devolución", "Return"),
        "exchange": ("Cambio", "Exchange"),
        "support": ("Soporte", "Support"),
    },
    "next_step": {
        "open": ("Lo revisará el equipo en 1–2 días laborables y te escribiremos.",
                 "The team will review it within 1–2 working days and get back to you."),
        # still "open" after the 1–2 working days promised above
        "open_overdue": ("Está tardando más de lo que te dijimos; perdona la espera. Si "
                         "quieres que alguien lo mire ahora, escribe «hablar con una persona».",
                         "It's taking longer than we told you; sorry for the wait. If you'd "
                         "like someone to look at it now, type \"talk to a person\"."),
        "in_progress": ("Estamos trabajando en ello; te avisaremos de cualquier novedad.",
                        "We're working on it and will let you know of any news."),
        "waiting_customer": ("Necesitamos un dato tuyo: revisa tu correo o responde aquí.",
                             "We need something from you: check your email or reply here."),
        "resolved": ("Si algo no va bien, dímelo y lo reabrimos.",
                     "If something isn't right, tell me and we'll reopen it."),
        "closed": ("El caso está cerrado. Si necesitas algo más, dímelo.",
                   "The case is closed. If you need anything else, just tell me."),
    },
}


def working_days_between(start: date, end: date) -> int:
    """Monday–Friday days after ``start`` up to and including ``end``."""
    days, day = 0, start
    while day < end:
        day += timedelta(days=1)
        days += day.weekday() < 5
    return days


def next_step(status: str, opened: date, today: date, lang: str) -> str:
    """What happens next, as promised when the case was opened; an open case past the
    promise says so and offers a person, instead of promising "1–2 days" again."""
    if status == "open" and working_days_between(opened, today) > 2:
        return label("next_step", "open_overdue", lang)
    return label("next_step", status, lang)


def label(kind: str, value: str | None, lang: str) -> str:
    pair = LABELS.get(kind, {}).get(value or "")
    if pair is None:
        return value or ""
    return pair[1] if lang == "en" else pair[0]


def options(kind: str, lang: str) -> list[tuple[str, str]]:
    """(value, label) pairs in a stable order, for buttons."""
    return [(value, pair[1] if lang == "en" else pair[0]) for value, pair in LABELS[kind].items()]
