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
    # the turn waited RASA_QUEUE_TIMEOUT in line for Rasa (bot/hub/rasa_client.py); nothing of
    # it reached the bot, the message is stored (status failed) and a resend is tried again
    "busy": {
        "es": (
            "Lo siento, ahora mismo estamos atendiendo a muchas personas a la vez y no he "
            "llegado a tu mensaje a tiempo. Lo he guardado: envíamelo de nuevo en un momento, "
            "por favor."
        ),
        "en": (
            "Sorry, we're helping a lot of people at once right now and I didn't get to your "
            "message in time. I've saved it: please send it again in a moment."
        ),
    },
    "rate_limited": {
        "es": "Vas un poco rápido: te leo enseguida. Tus mensajes se enviarán en un momento.",
        "en": "You're typing faster than I can read: your messages will be sent in a moment.",
    },
    "foreign_session": {
        "es": "Ese mensaje no pertenece a esta conversación y no se ha enviado.",
        "en": "That message does not belong to this conversation and was not sent.",
    },
    "tg_help": {
        "es": (
            "Soy el asistente de posventa. Puedo responder dudas (envíos, garantías, "
            "devoluciones…), abrir una reclamación de garantía o una devolución y decirte "
            "cómo va tu caso. Escríbeme con tus palabras.\n\n"
            "/idioma — cambiar de idioma\n/start — empezar de nuevo"
        ),
        "en": (
            "I'm the after-sales assistant. I can answer questions (shipping, warranty, "
            "returns…), open a warranty claim or a return and tell you how your case is "
            "going. Just write in your own words.\n\n"
            "/language — change language\n/start — start again"
        ),
    },
    "tg_choose_language": {
        "es": "¿En qué idioma prefieres que hablemos?",
        "en": "Which language would you like me to use?",
    },
    "tg_unsupported_media": {
        "es": (
            "De momento solo puedo leer texto y fotos. ¿Me lo escribes, por favor? "
            "(Si te pido una foto del problema, envíala como foto.)"
        ),
        "en": (
            "For now I can only read text and photos. Could you write it to me, please? "
            "(If I ask for a photo of the problem, send it as a photo.)"
        ),
    },
    "tg_edited": {
        "es": (
            "He visto que has editado un mensaje, pero no puedo tener en cuenta las "
            "ediciones. Si algo ha cambiado, envíamelo en un mensaje nuevo."
        ),
        "en": (
            "I noticed you edited a message, but I can't take edits into account. If "
            "something changed, please send it as a new message."
        ),
    },
    "tg_photo_unexpected": {
        "es": "Gracias por la foto. La guardaré cuando te la pida durante una reclamación.",
        "en": "Thanks for the photo. I'll keep photos when I ask for one during a claim.",
    },
    "tg_photo_rejected": {
        "es": "No he podido aceptar esa imagen (usa JPEG, PNG o WebP de hasta 5 MB).",
        "en": "I couldn't accept that image (please use JPEG, PNG or WebP up to 5 MB).",
    },
    "tg_photo_storage_full": {
        "es": "Ahora mismo no puedo guardar fotos. Puedes seguir sin ella o enviarla más tarde.",
        "en": "I can't store photos right now. You can carry on without it or send it later.",
    },
    "tg_link_invalid": {
        "es": (
            "Ese enlace ya no es válido (caduca a los pocos minutos y solo sirve una vez). "
            "Puedes seguir aquí igualmente: ¿en qué te ayudo?"
        ),
        "en": (
            "That link is no longer valid (it expires after a few minutes and works once). "
            "You can carry on here anyway: how can I help?"
        ),
    },
    "tg_link_ok": {
        "es": "¡Hola de nuevo! Seguimos aquí la conversación que empezaste en la web.",
        "en": "Hello again! Let's continue here the conversation you started on the web.",
    },
    "queue_position": {
        "es": ("Estás en la posición {position} de la cola. Tiempo de espera estimado: unos "
               "{minutes} min. Puedes seguir escribiendo aquí: la persona que te atienda lo "
               "leerá todo. Si ya no lo necesitas, dime «ya no hace falta»."),
        "en": ("You are number {position} in the queue. Estimated wait: about {minutes} min. "
               "Feel free to keep writing here: the person who helps you will read it all. "
               "If you no longer need it, just say \"never mind\"."),
    },
    "queue_closed": {
        "es": ("Ahora mismo el equipo no está disponible (horario: {hours}). Volvemos el "
               "{back}. Tu consulta queda en la cola con todo el contexto y te responderemos "
               "por aquí en cuanto abramos; no hace falta que esperes conectado."),
        "en": ("The team is not available right now (hours: {hours}). We're back on {back}. "
               "Your request stays in the queue with all the context and we'll answer you "
               "here as soon as we open; no need to wait online."),
    },
    "queue_update": {
        "es": "Actualización: ahora eres el número {position} de la cola (unos {minutes} min).",
        "en": "Update: you are now number {position} in the queue (about {minutes} min).",
    },
    "still_waiting": {
        "es": ("Recibido, lo verá la persona que te atienda. Sigues en la posición {position} "
               "de la cola."),
        "en": ("Got it, the person who helps you will see it. You are still number {position} "
               "in the queue."),
    },
    "saved_while_closed": {
        "es": ("Guardado. El equipo lo leerá en cuanto vuelva ({back}) y te responderá por "
               "aquí. Si ya no lo necesitas, escribe «déjalo»."),
        "en": ("Saved. The team will read it as soon as they're back ({back}) and answer you "
               "here. If you no longer need it, just say \"never mind\"."),
    },
    "left_queue": {
        "es": ("De acuerdo, te he sacado de la cola. Si necesitas algo más, aquí sigo: "
               "escríbeme cuando quieras."),
        "en": ("All right, I've taken you out of the queue. If you need anything else, I'm "
               "still here: just write."),
    },
    "agent_joined": {
        "es": "{agent} del equipo de posventa se ha unido a la conversación.",
        "en": "{agent} from the after-sales team has joined the conversation.",
    },
    "agent_left": {
        "es": "{agent} ha terminado de atenderte. Gracias por tu paciencia.",
        "en": "{agent} has finished helping you. Thanks for your patience.",
    },
}

WEEKDAYS = {
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def text(key: str, language: str, **values: object) -> str:
    entry = TEXTS[key]
    template = entry.get(language) or entry["es"]
    return template.format(**values) if values else template
