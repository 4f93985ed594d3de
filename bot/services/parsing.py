"""Understanding the customer's typed answers to form questions, in Spanish and English.

Buttons send canonical values; people type "no enciende", "hace 2 semanas", "prefiero que me
devuelvan el dinero". These parsers map such text to the canonical value or return None so
the form can ask again with an example.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta


def fold(text: str) -> str:
    text = unicodedata.normalize("NFD", (text or "").lower())
    return " ".join("".join(c for c in text if unicodedata.category(c) != "Mn").split())


def _match(text: str, table: dict[str, tuple[str, ...]]) -> str | None:
    t = fold(text)
    if t in table:
        return t
    for value, keywords in table.items():
        if any(re.search(rf"(?<!\w){re.escape(k)}", t) for k in keywords):
            return value
    return None


PROBLEM_CATEGORIES: dict[str, tuple[str, ...]] = {
    "no_power": ("no enciende", "no arranca", "no prende", "no funciona nada", "no se enciende",
                 "sin corriente", "won't turn on", "wont turn on", "doesn't turn on",
                 "does not turn on", "dead", "no power", "not turning on", "won't start"),
    "damaged": ("roto", "rota", "rotura", "golpe", "abollad", "rayad", "agriet", "partid",
                "damag", "broken", "cracked", "dent", "scratch", "smashed"),
    "noise": ("ruido", "suena", "pita", "vibra", "zumbido", "noise", "noisy", "rattl",
              "buzz", "beep", "vibrat", "squeak"),
    "missing_parts": ("falta", "faltan", "sin piezas", "incomplet", "missing", "not included",
                      "piece", "screws"),
    "software": ("software", "actualiz", "app ", "aplicacion", "wifi", "wi-fi", "pantalla se",
                 "se cuelga", "error", "firmware", "update", "bluetooth", "freez", "crash"),
    "other": ("otro", "otra cosa", "other", "something else"),
}

RESOLUTIONS: dict[str, tuple[str, ...]] = {
    "repair": ("repar", "arregl", "fix", "repair", "tecnico", "technician"),
    "replacement": ("cambi", "sustitu", "reemplaz", "nuevo", "otro igual", "replace",
                    "new one", "swap"),
    "refund": ("reembols", "devuelv", "dinero", "plata", "abono", "refund", "money back"),
}

RETURN_REASONS: dict[str, tuple[str, ...]] = {
    "arrived_damaged": ("llego roto", "llego rota", "llego dañad", "llego danad", "vino roto",
                        "golpe", "arrived broken", "arrived damaged", "damaged", "broken",
                        "roto", "rota"),
    "wrong_item": ("equivoc", "no es lo que pedi", "otro producto", "wrong", "not what i ordered",
                   "different item"),
    "not_as_described": ("no es como", "no coincide", "descripcion", "diferente a la foto",
                         "not as described", "doesn't match", "does not match", "different from"),
    "doesnt_fit": ("no cabe", "no entra", "talla", "tamano", "medida", "grande", "pequen",
                   "doesn't fit", "does not fit", "too big", "too small", "size"),
    "changed_mind": ("cambiado de opinion", "arrepent", "ya no lo quiero", "no me gusta",
                     "no lo necesito", "changed my mind", "don't want", "dont want",
                     "don't like", "no longer need"),
}

RETURN_TYPES: dict[str, tuple[str, ...]] = {
    "exchange": ("cambi", "otro modelo", "otra talla", "otro color", "exchange", "swap",
                 "another size", "another model", "different colour", "different color"),
    "return": ("devol", "devuelv", "reembols", "dinero", "return", "refund", "money back"),
}


def problem_category(text: str) -> str | None:
    return _match(text, PROBLEM_CATEGORIES)


def resolution(text: str) -> str | None:
    return _match(text, RESOLUTIONS)


def return_reason(text: str) -> str | None:
    return _match(text, RETURN_REASONS)


def return_type(text: str) -> str | None:
    return _match(text, RETURN_TYPES)


# --- dates -----------------------------------------------------------------------------------

MONTHS = {
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11,
    "diciembre": 12, "january": 1, "february": 2, "march": 3, "april": 4, "may": 5,
    "june": 6, "july": 7, "august": 8, "september": 9, "october": 10, "november": 11,
    "december": 12, "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8,
    "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12, "ene": 1, "abr": 4, "ago": 8,
    "dic": 12,
}
NUMBERS = {"un": 1, "una": 1, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5,
           "seis": 6, "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "a": 1, "an": 1,
           "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10, "couple": 2, "par": 2, "once": 11,
           "doce": 12, "trece": 13, "catorce": 14, "quince": 15, "veinte": 20,
           "treinta": 30, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
           "thirty": 30}
UNITS = {"dia": 1, "dias": 1, "day": 1, "days": 1, "semana": 7, "semanas": 7, "week": 7,
         "weeks": 7, "mes": 30, "meses": 30, "month": 30, "months": 30, "ano": 365,
         "anos": 365, "year": 365, "years": 365}
WEEKDAYS = {"lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4, "sabado": 5,
            "domingo": 6, "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3,
            "friday": 4, "saturday": 5, "sunday": 6}
UNKNOWN = ("no se", "no lo se", "ni idea", "no recuerdo", "no me acuerdo", "don't know",
           "dont know", "not sure", "no idea", "can't remember", "cant remember")


def _build(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


SINCE_DELIVERY = re.compile(
    r"\b(?:desde (?:que|el dia que|el primer dia|el principio|siempre)|nada mas (?:llegar|"
    r"recibirl)|en cuanto (?:llego|lo recibi|la recibi)|since (?:it|they|the day|day one|"
    r"delivery|i got|we got|the start|the beginning|(?:i|we) (?:bought|purchased|ordered|"
    r"received)|(?:the )?purchase|buying)|from (?:day one|the start|the beginning|the first "
    r"day)|desde la compra|(?:right )?out of the box|straight away|always has)")


def since_delivery(text: str) -> bool:
    """"Desde que llegó", "since the day it arrived": the problem started on delivery."""
    return bool(SINCE_DELIVERY.search(fold(text)))


_UNIT_WORD = r"(?:dias?|days?|semanas?|weeks?|mes|meses|months?|anos?|years?)"
_DATE_REWRITES = (  # typed variants mapped to the forms below
    (re.compile(r"\bsemanita(s?)\b"), r"semana\1"),
    (re.compile(r"\bmesecitos\b"), "meses"),
    (re.compile(r"\bmesecito\b"), "mes"),
    (re.compile(r"\bdiita(s?)\b"), r"dia\1"),
    (re.compile(r"\banito(s?)\b"), r"ano\1"),
    (re.compile(rf"\b(?:un |a )?(?:par|couple)(?: de| of)? (?={_UNIT_WORD}\b)"), "2 "),
    (re.compile(r"\b(?:unos pocos|unas pocas|unos cuantos|unas cuantas|algunos|algunas|unos|"
                rf"unas|varios|varias|a few|few|some|several) (?={_UNIT_WORD}\b)"), "3 "),
)
_AGO = (
    re.compile(r"\b(?:hace|desde hace)\s+(?:unos?\s+|unas\s+)?(\d+|\w+)\s+(\w+)"),
    re.compile(r"\b(?:for|durante|lleva|llevo|llevamos|desde hace)\s+(?:the\s+)?"
               r"(?:last\s+|past\s+|unos?\s+|unas\s+)?(\d+|\w+)\s+(\w+)"),
    re.compile(r"\b(\d+|\w+)\s+(\w+)\s+ago\b"),
)
_RECENTLY = re.compile(
    r"\b(?:el otro dia|the other day|recientemente|recently|lately|ultimamente|not long ago|"
    r"hace (?:muy )?(?:poco|poquito)(?: tiempo)?(?=$|[^\w ]| (?:que|se|no|y|dejo|empezo|"
    r"comenzo|me|le|lo|la)\b))")


def _ago(t: str, today: date) -> date | None:
    """"hace 2 semanas", "for three days", "a month ago": the first reading with a number and
    a unit ("hace un ruido raro desde hace una semana" skips the noise)."""
    for pattern in _AGO:
        for m in pattern.finditer(t):
            n = int(m.group(1)) if m.group(1).isdigit() else NUMBERS.get(m.group(1))
            unit = UNITS.get(m.group(2))
            if n and unit:
                return today - timedelta(days=n * unit)
    return None


def _last(today: date, weekday: int) -> date:
    """The most recent such weekday before today."""
    return today - timedelta(days=(today.weekday() - weekday) % 7 or 7)


def parse_date(text: str, today: date | None = None) -> date | str | None:
    """A past date from "ayer", "hace 2 semanas", "el 3 de marzo", "3/3/2026", "yesterday",
    "two weeks ago", "March 3"… ; "unknown" when the customer does not know; None when the
    text is not a date (or is in the future). Vague answers ("hace unos días", "el otro día",
    "recently") give an approximate date, unless the text says "since I bought it" (the
    caller then takes the delivery date)."""
    today = today or date.today()
    t = fold(text)
    if not t:
        return None
    # "no sé" is checked last: "no se enciende desde el lunes" is a date, and "no sé, hace
    # unos días" an approximate one, better than none
    unknown = any(re.search(rf"\b{re.escape(u)}\b", t) for u in UNKNOWN)
    for pattern, replacement in _DATE_REWRITES:
        t = pattern.sub(replacement, t)
    found: date | None = None
    if re.search(r"\b(hoy|today|esta manana|this morning)\b", t):
        found = today
    elif re.search(r"\b(anteayer|antes de ayer|antier|day before yesterday)\b", t):
        found = today - timedelta(days=2)
    elif re.search(r"\b(ayer|yesterday|anoche|last night)\b", t):
        found = today - timedelta(days=1)
    elif ago := _ago(t, today):
        found = ago
    elif re.search(r"\b(?:(?:a )?principios? de(?: este)? mes|primeros de mes|(?:el )?(?:dia )?"
                   r"(?:1|uno|primero) de(?: este)? mes|(?:the )?(?:first|1st|start|beginning)"
                   r" of (?:the|this) month|start of the month|early this month)\b", t):
        found = today.replace(day=1)
    elif re.search(r"\b(?:a )?mediados de(?: este)? mes|(?:the )?middle of (?:the|this) "
                   r"month|mid[- ]month\b", t):
        found = today.replace(day=15)
    elif m := re.search(r"\b(?:el dia|dia|el|on the|the)\s+(\d{1,2})(?:st|nd|rd|th|º)?\s*$", t):
        found = _build(today.year, today.month, int(m.group(1)))
        if found is not None and found > today:
            found = _build(today.year - (today.month == 1), (today.month - 2) % 12 + 1,
                           int(m.group(1)))
    elif m := re.search(r"\b(lunes|martes|miercoles|jueves|viernes|sabado|domingo|monday|"
                        r"tuesday|wednesday|thursday|friday|saturday|sunday)\b", t):
        found = _last(today, WEEKDAYS[m.group(1)])
    elif re.search(r"\b(?:finde|fin de semana|weekend)\b", t):
        found = _last(today, WEEKDAYS["sabado"])
    elif m := re.search(r"\b(?:la semana pasada|last week)\b", t):
        found = today - timedelta(days=7)
    elif m := re.search(r"\b(?:el mes pasado|last month)\b", t):
        found = today - timedelta(days=30)
    elif m := re.search(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", t):
        found = _build(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    elif m := re.search(r"\b(\d{1,2})[/.-](\d{1,2})(?:[/.-](\d{2,4}))?\b", t):
        year = int(m.group(3)) if m.group(3) else today.year
        year = year + 2000 if year < 100 else year
        found = _build(year, int(m.group(2)), int(m.group(1)))  # day/month, as in Spain
    elif m := re.search(r"\b(\d{1,2})(?:st|nd|rd|th|º)?\s+(?:de\s+|of\s+)?([a-z]+)"
                        r"(?:\s+(?:de\s+)?(\d{4}))?", t):
        month = MONTHS.get(m.group(2))
        if month:
            found = _build(int(m.group(3) or today.year), month, int(m.group(1)))
    if found is None:
        if m := re.search(r"\b([a-z]+)\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?\b", t):
            month = MONTHS.get(m.group(1))
            if month:
                found = _build(int(m.group(3) or today.year), month, int(m.group(2)))
    if found is None and not SINCE_DELIVERY.search(t):  # vague answers, last
        if re.search(r"\b(?:esta semana|this week)\b", t):
            found = today - timedelta(days=today.weekday())
        elif re.search(r"\b(?:este mes|this month)\b", t):
            found = today.replace(day=1)
        elif _RECENTLY.search(t):
            found = today - timedelta(days=3)
    if found is not None and found > today and not re.search(r"\d{4}", t):
        found = _build(found.year - 1, found.month, found.day)  # "3 de diciembre" in January
    if found is None or found > today:
        return "unknown" if unknown else None
    return found


# --- survey scores ---------------------------------------------------------------------------

NUMBER_WORDS = {
    "cero": 0, "zero": 0, "uno": 1, "un": 1, "una": 1, "one": 1, "dos": 2, "two": 2, "tres": 3,
    "three": 3, "cuatro": 4, "four": 4, "cinco": 5, "five": 5, "seis": 6, "six": 6,
    "siete": 7, "seven": 7, "ocho": 8, "eight": 8, "nueve": 9, "nine": 9, "diez": 10,
    "ten": 10,
}
CES_WORDS = [  # longest first: "muy facil" before "facil"
    ("ni facil ni dificil", 4), ("muy facil", 7), ("bastante facil", 6), ("algo facil", 5),
    ("muy dificil", 1), ("bastante dificil", 2), ("algo dificil", 3), ("facilisimo", 7),
    ("very easy", 7), ("quite easy", 6), ("somewhat easy", 5), ("neutral", 4),
    ("very difficult", 1), ("very hard", 1), ("somewhat difficult", 3), ("difficult", 2),
    ("hard", 2), ("facil", 6), ("easy", 6), ("dificil", 2), ("normal", 4),
]

_EASY = ("facil", "facilisimo", "facilito", "easy")
_DIFFICULT = ("dificil", "dificilisimo", "difficult", "hard")
_NEGATIONS = ("no", "nada", "not", "ni", "tampoco", "nunca", "never")
_NEGATED = {  # (easy?, "at all"?) -> score
    (True, True): 2, (True, False): 3, (False, True): 6, (False, False): 5}
_BETWEEN = {  # words that may stand between the negation and "easy": "no fue muy fácil"
    "fue", "es", "era", "ha", "sido", "resulto", "parecio", "me", "nos", "lo", "muy", "tan",
    "demasiado", "nada", "para", "it", "was", "is", "has", "been", "seemed", "very", "so",
    "that", "too", "really", "particularly", "at", "all", "the", "process", "el", "proceso",
}


def _negated_effort(t: str) -> int | None | bool:
    """A negated easy/difficult in the effort answer: "no fue nada fácil" 2, "not easy" 3,
    "nada difícil" 6, "wasn't hard" 5; None when negated but unclear ("no del todo fácil");
    False when nothing is negated."""
    values: set[int | None] = set()
    plain = False
    for clause in re.split(r"[,.;:!?()]+| pero | but ", t):
        tokens = re.findall(r"[a-z']+", clause)
        for i, word in enumerate(tokens):
            if word not in _EASY + _DIFFICULT:
                continue
            before = tokens[max(0, i - 4):i]
            negs = [j for j, w in enumerate(before) if w in _NEGATIONS or w.endswith("n't")
                    or w in ("wasnt", "isnt", "werent", "doesnt", "didnt")]
            if not negs:
                plain = True
                continue
            between = before[negs[-1] + 1:]
            if any(w not in _BETWEEN for w in between):
                values.add(None)  # "no sé si fue fácil", "not entirely easy": ask again
                continue
            after = " ".join(tokens[i + 1:i + 3])
            at_all = ("nada" in before[negs[0]:] or "at all" in " ".join(before)
                      or after in ("at all", "para nada", "en absoluto")
                      or after.startswith("en absoluto"))
            values.add(_NEGATED[(word in _EASY, at_all)])
    if not values:
        return False
    if plain or len(values) > 1:
        return None  # "no fue fácil, fue difícil" / mixed: ask again with the scale
    return values.pop()


def parse_score(text: str, low: int, high: int, words: bool = False) -> int | None:
    """An integer score in [low, high] from "7", "un 8", "ocho", "8/10", "10!", or, for the
    effort scale, "muy fácil". Decimals ("7.5", "siete y medio"), negatives and
    out-of-range numbers are None: the form asks again with the scale."""
    t = fold(text)
    if not t:
        return None
    if re.search(r"\d\s*[.,]\s*\d|\by medio\b|\band a half\b|-\s*\d", t):
        return None
    t = re.sub(r"\s+(?:de|sobre|out of)\s+(?:10|diez|ten|7|siete|seven)\b", "", t)
    numbers = [int(n) for n in re.findall(r"(?<![\d/])(\d{1,3})(?:\s*/\s*\d+)?", t)]
    if not numbers:
        numbers = [NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", t) if w in NUMBER_WORDS
                   and not (w in ("un", "una") and len(t.split()) > 1)]
    if len(numbers) == 1:
        return numbers[0] if low <= numbers[0] <= high else None
    if not numbers and words:
        if re.search(r"\bni facil ni dificil\b|\bneither easy nor (?:difficult|hard)\b", t):
            return 4
        negated = _negated_effort(t)
        if negated is not False:
            return negated if negated is None or low <= negated <= high else None
        for phrase, value in CES_WORDS:
            if re.search(rf"\b{phrase}\b", t):
                return value
    return None
