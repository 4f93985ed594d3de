"""What the hub itself says when the bot cannot: both languages, always."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "empty": {
        "es": "Parece que tu mensaje ha llegado vacío. ¿Me cuentas en qué puedo ayudarte?",
        "en": "Your message seems to be empty. Could you tell me how I can help?",
    },
    "unavailable": {
        "es": (
            "Lo siento, ahora mismo tengo un problema técnico y no he podido procesar tu "
            "mensaje. Lo he guardado: vuelve a intentarlo en unos minutos o escríbenos a "
            "postventa@example.com."
        ),
        "en": (
            "Sorry, I'm having a technical problem right now and couldn't process your "
            "message. I've saved it: please try again in a few minutes or write to "
            "postventa@example.com."
        ),
    },
}


def text(key: str, language: str) -> str:
    entry = TEXTS[key]
    return entry.get(language) or entry["es"]
