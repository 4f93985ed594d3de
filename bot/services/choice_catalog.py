"""The options of every question with buttons, with what customers type for each.

Titles come from ``labels`` (the buttons); keywords are accent-folded word starts in both
languages; examples are prototype phrases for the semantic step of ``choices.resolve``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.services.choices import Option, fold
from bot.services.labels import LABELS

_KEYWORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "problem_category": {
        "no_power": ("no enciende", "no arranca", "no prende", "no funciona nada",
                     "no se enciende", "sin corriente", "no hace nada", "no da senal",
                     "no tiene luz", "no carga", "no llega corriente", "muerto", "muerta",
                     "won't turn on", "wont turn on", "doesn't turn on", "doesnt turn on",
                     "does not turn on", "dead$", "no power", "not turning on", "won't start",
                     "wont start", "won't switch on", "doesn't switch on", "won't power",
                     "nothing happens", "won't charge", "doesn't charge", "no lights"),
        "damaged": ("roto", "rota", "rotura", "golpe$", "golpes$", "golpead", "abollad",
                    "rayad", "agriet", "partid",
                    "rajad", "desconchad", "quebrad", "doblad", "damag", "broken", "cracked",
                    "dent$", "dents$", "dented", "scratch", "smashed", "chipped", "bent$",
                    "torn$", "rasgad",
                    "descosid", "cojea", "tambalea", "wobbl"),
        "noise": ("ruido", "suena", "sonido raro", "pita", "pitido", "vibra", "zumb", "chirr",
                  "traquete", "cruje", "noise", "noisy", "rattl", "buzz", "beep", "vibrat",
                  "squeak", "squeal", "grind", "clunk", "whine", "hum$", "hums$", "humming",
                  "loud"),
        "missing_parts": ("falta", "faltan", "sin piezas", "incomplet", "no venia", "no vino",
                          "no trae", "no traia", "missing", "not included", "didn't come with",
                          "did not come with", "wasn't in the box", "screws", "tornillos"),
        "software": ("software", "actualiz", "app$", "apps$", "aplicacion", "wifi", "wi-fi",
                     "wi fi",
                     "se cuelga", "se bloquea", "se congela", "se reinicia", "error", "firmware",
                     "update", "bluetooth", "freez", "crash", "reboot", "restart", "conexion",
                     "conecta", "connect", "pairing", "emparej", "sincroniz", "sync",
                     "pantalla en negro", "pantalla negra", "se apaga sola", "se apaga solo",
                     "screen goes black", "black screen", "turns off by itself",
                     "shuts down", "shuts off", "se apaga"),
        "other": ("otro", "otra cosa", "other", "something else", "ninguna", "none of"),
    },
    "preferred_resolution": {
        "repair": ("repar", "arregl", "fix", "repair", "tecnico", "technician", "mend",
                   "que lo miren", "que la miren", "que lo revisen", "que la revisen",
                   "look at it", "have it looked", "service it"),
        "replacement": ("cambi", "sustitu", "reemplaz", "nuevo", "nueva", "otro igual",
                        "otra igual", "replace", "new one", "swap", "brand new", "exchange"),
        "refund": ("reembols", "devuelv", "devolucion del dinero", "dinero", "plata", "abono",
                   "refund", "money back", "my money", "reintegr", "lana"),
        "no_preference": ("lo que recomend", "lo que os parezca", "lo que les parezca",
                          "lo que mejor", "whatever you recommend", "what you think is best",
                          "whatever is best", "lo que sea mejor"),
    },
    "return_reason": {
        "arrived_damaged": ("llego roto", "llego rota", "llego danad", "vino roto",
                            "vino rota", "vino danad", "llego con un golpe", "golpe$",
                            "golpes$", "roto",
                            "rota", "danad", "rayad", "abollad", "arrived broken",
                            "arrived damaged", "came broken", "came damaged", "damaged",
                            "broken", "cracked", "dented", "scratched"),
        "wrong_item": ("equivoc", "no es lo que pedi", "otro producto", "otro modelo",
                       "no es el que pedi", "no es la que pedi", "me mandaron otr",
                       "me enviaron otr", "wrong", "not what i ordered", "different item",
                       "sent me the", "not the one i ordered", "isn't what i ordered"),
        "not_as_described": ("no es como", "no coincide", "descripcion", "diferente a la foto",
                             "distinto a la foto", "no se parece", "en la foto", "anunciaban",
                             "anunciado", "prometia", "not as described", "doesn't match",
                             "does not match", "different from", "not like the picture",
                             "not like the photo", "advertised", "description", "looks nothing",
                             "foto", "imagen", "photo", "picture", "pictures", "web",
                             "website", "ficha"),
        "doesnt_fit": ("no cabe", "no entra", "no me cabe", "talla", "tamano", "medida",
                       "demasiado grande", "demasiado pequen", "muy grande", "muy pequen",
                       "doesn't fit", "does not fit", "won't fit", "too big", "too small",
                       "too large", "too wide", "size", "no pasa por la puerta"),
        "changed_mind": ("cambiado de opinion", "arrepent", "ya no lo quiero", "ya no la quiero",
                         "no me gusta", "no me convence", "no lo necesito", "no la necesito",
                         "no me termina", "no pega", "no me acaba", "changed my mind",
                         "don't want", "dont want", "don't like", "dont like", "no longer need",
                         "don't need", "not for me", "regret", "not convinced", "mas barato",
                         "cheaper", "better price", "mejor precio", "encontre uno mejor",
                         "found a better"),
        "other": ("otro motivo", "otra razon", "otra cosa", "other reason", "something else"),
    },
    "return_type": {
        "exchange": ("cambi", "otro modelo", "otra talla", "otro color", "otra medida",
                     "exchange", "swap", "another size", "another model", "different colour",
                     "different color", "replace it with", "trade"),
        "return": ("devol", "devuelv", "reembols", "dinero", "plata", "return", "refund",
                   "money back", "send it back", "give it back"),
    },
}

_EXAMPLES: dict[str, dict[str, tuple[str, ...]]] = {
    "problem_category": {
        "no_power": ("no enciende, está muerto", "le doy al botón y no hace nada",
                     "no arranca ni se ilumina", "it won't turn on at all",
                     "nothing happens when I press the power button", "it's completely dead"),
        "damaged": ("está roto", "tiene un golpe y la puerta está abollada",
                    "la pantalla está rajada", "it's broken", "the glass is cracked",
                    "there's a big dent on the side"),
        "noise": ("hace un ruido muy raro", "vibra mucho y pega golpes al centrifugar",
                  "suena como un pitido constante", "it makes a strange noise",
                  "it rattles and shakes a lot", "there's a loud buzzing sound"),
        "missing_parts": ("faltan piezas en la caja", "no venían los tornillos",
                          "falta el mando", "some parts are missing",
                          "the remote wasn't in the box", "it came without the cable"),
        "software": ("la aplicación da error", "no se conecta al wifi",
                     "se queda colgado y se reinicia solo", "la pantalla se queda en negro",
                     "the app keeps crashing", "it won't connect to wifi or bluetooth",
                     "it freezes and restarts by itself", "the screen goes black"),
        # what fits none of the above, so that meaning can also point at "other"
        "other": ("no enfría", "no se pone frío", "no calienta", "it doesn't get cold",
                  "it doesn't heat up", "pierde agua", "huele a quemado",
                  "se calienta demasiado", "la batería dura muy poco", "la puerta no cierra bien",
                  "it leaks water", "it smells of burning", "it overheats",
                  "the battery drains very fast", "the door doesn't close properly"),
    },
    "preferred_resolution": {
        "repair": ("que me lo reparen", "prefiero que lo arregle un técnico",
                   "I'd like it repaired", "please fix it"),
        "replacement": ("que me lo cambien por uno nuevo", "quiero otro igual",
                        "I want a new one", "replace it please"),
        "refund": ("quiero que me devuelvan el dinero", "prefiero el reembolso",
                   "I want my money back", "a refund please"),
    },
    "return_reason": {
        "arrived_damaged": ("me llegó roto", "vino con un golpe", "it arrived damaged",
                            "the box was crushed and it's broken"),
        "wrong_item": ("me enviaron otro producto", "no es lo que pedí",
                       "you sent me the wrong item", "this isn't what I ordered"),
        "not_as_described": ("no es como en la foto", "no coincide con la descripción",
                             "the colour is not the one in the pictures",
                             "it's not as described on the website"),
        "doesnt_fit": ("no me cabe en la cocina", "es demasiado grande", "no es mi talla",
                       "it doesn't fit in my flat", "it's too small"),
        "changed_mind": ("me he arrepentido", "ya no lo quiero", "no me gusta",
                         "I changed my mind", "I just don't like it", "I don't need it anymore"),
    },
    "return_type": {
        "return": ("quiero que me devuelvan el dinero", "devolverlo sin más",
                   "a refund please", "just return it"),
        "exchange": ("cambiarlo por otro", "prefiero otro color", "I'd like to swap it",
                     "exchange it for another size"),
    },
}

FALLBACKS = {"problem_category": "other", "preferred_resolution": "no_preference",
             "return_reason": "other"}


def options_for(kind: str) -> list[Option]:
    """Every option of a fixed question, in button order."""
    return [Option(value, titles=pair, keywords=_KEYWORDS.get(kind, {}).get(value, ()),
                   examples=_EXAMPLES.get(kind, {}).get(value, ()),
                   fallback=FALLBACKS.get(kind) == value)
            for value, pair in LABELS[kind].items()]


# Product types as customers name them, in both languages and regional variants. A product
# name containing any word of a group is matched by any other word of the group.
PRODUCT_WORDS: tuple[tuple[str, ...], ...] = (
    ("lavadora", "lavarropas", "washing machine", "washer"),
    ("secadora", "dryer", "tumble dryer"),
    ("frigorifico", "nevera", "heladera", "refri", "refrigerador", "combi", "fridge",
     "refrigerator", "fridge-freezer", "freezer", "congelador"),
    ("horno", "oven"),
    ("microondas", "microwave"),
    ("lavavajillas", "lavaplatos", "dishwasher"),
    ("cafetera", "coffee", "espresso", "barista", "cafe"),
    ("televisor", "tele", "television", "tv", "telly", "pantalla", "smart tv"),
    ("portatil", "laptop", "lap", "ordenador", "computadora", "notebook", "computer"),
    ("auriculares", "cascos", "audifonos", "headphones", "earphones", "headset", "earbuds"),
    ("movil", "celular", "telefono", "smartphone", "phone", "mobile", "cellphone"),
    ("sofa", "sillon", "couch", "settee"),
    ("mesa", "table"),
    ("silla", "chair"),
    ("colchon", "mattress"),
    ("aspiradora", "vacuum", "hoover"),
)


def product_options(lines: Sequence[tuple[str, str]]) -> list[Option]:
    """Options for "which product?": (line id, product name) pairs of the order."""
    out = []
    for line_id, product in lines:
        name = fold(product)
        keywords = [w for w in name.split() if len(w) > 3 and not any(c.isdigit() for c in w)]
        for group in PRODUCT_WORDS:
            if any(f" {g} " in f" {name} " for g in group):
                keywords.extend(group)
        out.append(Option(str(line_id), titles=(product,), keywords=tuple(dict.fromkeys(
            keywords)), examples=(product,)))
    return out
