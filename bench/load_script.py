"""What the simulated customers of `make bench-load` say: short, real conversations that go
through every path a turn can take (NLU only, the knowledge base on the action server, a case
lookup with identity check in the database, the closing survey), in Spanish and English.

Nobody presses buttons; everything is typed, as most customers do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

GREETINGS = {"es": ["hola", "buenas tardes", "hola, buenos días"],
             "en": ["hello", "hi there", "good morning"]}
# each has an answer in the knowledge base (FAQ ids in the comments)
FAQ = {
    "es": ["¿cuánto dura la garantía?",  # warranty-coverage
           "¿cuánto tardáis en devolverme el dinero de una devolución?",  # refund-timing
           "¿cuántos días tengo para devolver un producto?",  # return-policy
           "¿dónde está mi pedido? quiero hacer el seguimiento",  # order-tracking
           "¿en qué horario atendéis?",  # contact-hours
           "necesito la factura de mi compra"],  # invoices
    "en": ["how long is the warranty?",
           "how long do refunds take?",
           "how many days do I have to return a product?",
           "where is my order? I want to track it",
           "what are your opening hours?",
           "I need the invoice for my purchase"],
}
STATUS = {"es": "¿cómo va mi caso {number}?", "en": "what is the status of my case {number}?"}
THANKS = {"es": ["gracias", "muchas gracias"], "en": ["thanks", "thank you very much"]}
# the hub's apology when Rasa failed or timed out (bot/hub/texts.py "unavailable")
APOLOGY_WORDS = ("problema técnico", "technical problem")
# its "we're busy, send it again" when a turn waited RASA_QUEUE_TIMEOUT in line for Rasa
# (bot/hub/texts.py "busy"): not an answer either, so it counts as failed too
BUSY_WORDS = ("atendiendo a muchas personas", "helping a lot of people")


@dataclass(frozen=True)
class CaseRef:
    """A real case and the e-mail that proves the customer owns it (from the database)."""

    number: str
    email: str


def conversation(rng: random.Random, lang: str, cases: list[CaseRef]) -> list[str]:
    """Greeting, an FAQ question, a case status check (with the e-mail when asked), another
    FAQ question in either language, thanks (which opens the closing survey)."""
    other = "en" if lang == "es" else "es"
    lines = [rng.choice(GREETINGS[lang]), rng.choice(FAQ[lang])]
    if cases:
        case = rng.choice(cases)
        lines += [STATUS[lang].format(number=case.number), case.email]
    lines += [rng.choice(FAQ[rng.choice([lang, other])]), rng.choice(THANKS[lang])]
    return lines


def apology(messages: list[dict]) -> str | None:
    """Which of the hub's own replies instead of an answer this is, if any."""
    texts = [(m.get("text") or "").lower() for m in messages]
    if any(word in t for t in texts for word in BUSY_WORDS):
        return "busy reply (waited RASA_QUEUE_TIMEOUT in line for Rasa)"
    if any(word in t for t in texts for word in APOLOGY_WORDS):
        return "apology (Rasa failed or timed out)"
    return None
