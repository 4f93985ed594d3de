"""Scripted customers who type: end-to-end dialogue completion, per scenario and language.

`make bench-dialogues` starts the real stack (same helper as `make bench`: free ports,
throw-away database with the demo data, the trained model), then plays the dialogues of
bench/dialogues/*.yml through the hub's turn API and prints a table scenario × language →
completed/total, the overall completion rate and, for each failure, the last turns.
Writes bench/results/dialogues-<timestamp>.json.

A scripted customer never presses a button (never sends a `/payload`): it reads the bot's
reply, recognises what is being asked by keywords (es/en: order number, email or phone
digits, which product, what kind of problem, description, since when, photo, preferred
solution, reason, return or exchange, what instead, the summary, what to change, CES, NPS,
comment, …) and answers in its own words from its script. Asked the same thing again, it
uses its next phrasing; when the bot says something it does not recognise as a question
(help menu, "anything else?", "I didn't get that" with nothing pending), it restates what
it wants. Triggers let it react to a moment (at the summary: correct something; after the
FAQ answer: start the claim; after the case is opened: ask how it is going).

A dialogue fails when it exceeds BENCH_DIALOGUES_MAX_TURNS (25) customer turns, when the
bot asks the same question (or stays silent) 3 times, when the stack errors, or on a dead
end (duplicate case, locked verification, not eligible, an unwanted hand-off); otherwise,
once its goal events were seen, its checks decide: the case (`python -m bot cases show
<n> --json`: type, order line, category, details), the status shown, the survey stored…

Between dialogues the bench closes the cases its own conversations opened (and those it
seeded), so that no two dialogues collide on the same order line (an open case for the same
product makes the bot show the duplicate instead), and clears the failed-verification
counters of the orders it used. Dialogues run one after the other.

Environment:
  BENCH_DIALOGUES_LIMIT=N      run only the first N dialogues (smoke run)
  BENCH_DIALOGUES_ONLY=text    run only dialogues whose id or scenario contains `text`
  BENCH_DIALOGUES_MAX_TURNS=N  turn limit per dialogue (25)
  BENCH_HUB_URL=http://…       use an already running hub instead of starting the stack; its
                               database (for seeding, checks and closing the bench's own
                               cases) is BENCH_DATABASE_URL, else DATABASE_URL / .env
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.stack_fixture import bench_stack, result_path
from bot.core.config import ROOT

SCRIPTS = ROOT / "bench" / "dialogues"
MAX_TURNS = int(os.environ.get("BENCH_DIALOGUES_MAX_TURNS", "25"))
MAX_SAME_QUESTION = 3
TAIL_TURNS = 6
CASE_RE = re.compile(r"\b(GAR|DEV|SOP)-\d{4}-\d{6}\b")
PAYLOAD_RE = re.compile(r"^\s*/\w")


def fold(text: str) -> str:
    """Lower case without accents, for keyword matching on es/en replies."""
    text = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in text if not unicodedata.combining(c)).lower().replace("’", "'")


# --- what the bot said -----------------------------------------------------------------------
# One kind per bot message, first match wins (so the order matters). Patterns run on the
# folded text. Events are outcomes; question kinds are answered from the script.

KINDS: list[tuple[str, str]] = [
    # the hub's own apology when Rasa failed or gave no reply, or its "we're busy" after a
    # turn waited RASA_QUEUE_TIMEOUT in line for Rasa: a stack error
    ("stack_error", r"problema tecnico y no he podido procesar|technical problem right now"
                    r"|atendiendo a muchas personas|helping a lot of people"),
    ("case_created", r"^(hecho|done)\b.*\b(gar|dev|sop)-\d{4}-\d{6}"),
    ("case_status", r"\b(gar|dev|sop)-\d{4}-\d{6} \(.*(proximo paso|next step|ultimo movimiento"
                    r"|last update)"),
    ("duplicate", r"ya tienes un caso abierto|already have an open case"),
    ("already_returned", r"ya se devolvio|already been returned"),
    ("verification_locked", r"despues de tres intentos|after three attempts"),
    ("handoff_failed", r"no consigo pasarte|can't put you through"),
    ("handoff", r"te paso con una persona|passing you to a person|posicion \d+ de la cola"
                r"|number \d+ in the queue|queda en la cola|stays in the queue"
                r"|se lo paso todo a una persona|passing all of it to a person"),
    ("ineligible", r"plazo de devolucion de \d+ dias termino|return window ended"
                   r"|garantia termino|warranty ended|todavia no se ha entregado"
                   r"|hasn't been delivered yet"),
    ("welcome_back", r"ya se quien eres|i know who you are now"),
    ("survey_thanks", r"gracias por tus respuestas|thank you for your answers"),
    ("survey_declined", r"gracias por escribirnos|thanks for getting in touch"),
    ("survey_invalid", r"necesito un numero entero|i need a whole number"),
    ("survey_empathy", r"siento que la experiencia|sorry the experience"),
    ("summary", r"^(resumen|summary)\b"),
    ("survey_ces", r"que tan facil|how easy was it"),
    ("survey_nps", r"probabilidad hay de que nos recomiendes|how likely are you to recommend"),
    ("survey_csat", r"como de satisfecho|how satisfied"),
    ("survey_follow_up", r"se ponga en contacto contigo|contact you to put it right"),
    ("survey_comment", r"algun comentario|add a comment"),
    ("correct_field", r"¿que quieres cambiar|what would you like to change"),
    ("case_number", r"¿cual es el numero del caso|what's the case number"
                    r"|no parece un numero de caso|doesn't look like a case number"
                    r"|no encuentro ningun caso|can't find a case|no tienes casos abiertos"
                    r"|you have no open cases"),
    ("order_number", r"¿cual es el numero de tu pedido|what's your order number"
                     r"|no parece un numero de pedido|doesn't look like an order number"
                     r"|ningun pedido con ese numero|can't find an order"),
    ("verification", r"dime el correo electronico|tell me the email address"
                     r"|no coinciden con el pedido|doesn't match the order"),
    ("order_line", r"¿que producto del pedido|which product of the order"
                   r"|a que producto te refieres|which product you mean"),
    ("problem_category", r"¿que le pasa\?|what's wrong with it\?"),
    ("problem_description", r"cuentame con tus palabras|tell me in your own words"
                            r"|necesito una breve descripcion|need a short description"),
    ("problem_started", r"¿desde cuando|since when has it|no he entendido la fecha"
                        r"|didn't get the date"),
    ("photo", r"si tienes una foto|if you have a photo|para la foto|for the photo"),
    ("preferred_resolution", r"¿que solucion prefieres|which solution would you prefer"),
    ("return_reason", r"¿por que quieres devolver|why would you like to return"),
    ("return_type", r"¿prefieres devolverlo|would you rather return it"),
    ("exchange_for", r"¿por cual lo quieres cambiar|what would you like instead"),
    ("faq_resolved", r"te ha resuelto la duda|did this answer your question"),
    ("faq_suggest", r"te refieres a alguna|do you mean one of these"),
    ("faq_unknown", r"no tengo una respuesta fiable|don't have a reliable answer"),
    ("clarify", r"^¿te refieres a «|^do you mean \""),  # "X or Y?": say it again, clearer
    ("noted", r"lo anoto con tus palabras|note it in your words"),
    ("offer_human", r"quieres que te atienda una persona|would you like a person"),
    ("reask", r"elige una de las opciones|pick one of the options|elige uno de los botones"
              r"|pick one of the buttons|pulsar un boton o decirmelo|tap a button or tell me"
              r"|si esta todo bien, responde|if everything is right, just say"),
    ("rephrase", r"no lo he entendido|didn't quite get|sigo sin entenderte"
                 r"|still don't understand|no se como seguir|not sure how to continue"),
    ("form_cancelled", r"lo dejamos aqui|let's leave it here"),
    ("out_of_scope", r"eso se me escapa|outside what i know"),
    ("help_menu", r"puedo ayudarte con esto|here is what i can help with"),
    ("anything_else", r"algo mas en lo que pueda|anything else i can|ayudarte en algo mas"
                      r"|te ayudo con otra cosa|help you with something else"
                      r"|necesitas otra cosa|need anything else|ayudo con alguno"
                      r"|help with one of those"),
    ("faq_prompt", r"preguntame lo que quieras|ask me anything"),
    ("greet", r"soy el asistente|after-sales assistant"),
]
_KIND_RE = [(k, re.compile(p, re.S)) for k, p in KINDS]

QUESTION_KINDS = {
    "summary", "survey_ces", "survey_nps", "survey_csat", "survey_follow_up", "survey_comment",
    "correct_field", "case_number", "order_number", "verification", "order_line",
    "problem_category", "problem_description", "problem_started", "photo",
    "preferred_resolution", "return_reason", "return_type", "exchange_for", "faq_resolved",
    "faq_suggest", "faq_unknown", "offer_human", "reask", "rephrase", "form_cancelled",
    "help_menu", "anything_else", "faq_prompt", "survey_invalid", "out_of_scope", "clarify",
}
# Questions of a claim/return/status form (the customer is in the middle of something).
FORM_KINDS = {
    "summary", "correct_field", "case_number", "order_number", "verification", "order_line",
    "problem_category", "problem_description", "problem_started", "photo",
    "preferred_resolution", "return_reason", "return_type", "exchange_for",
}
# Off-flow replies: when one of these comes together with a form question, the bot answered
# something else (an FAQ, "I don't know", "out of scope", "didn't get that") in the middle.
INTERJECTION_KINDS = {"faq_unknown", "faq_suggest", "out_of_scope", "rephrase", "unknown",
                      "faq_resolved", "help_menu"}
# Answered by restating the goal unless the script has an answer for them.
RESTATE_KINDS = {"faq_suggest", "faq_unknown", "form_cancelled", "help_menu", "anything_else",
                 "faq_prompt", "offer_human", "unknown", "silence", "out_of_scope"}
# Kinds that re-ask whatever was asked before.
REASK_KINDS = {"reask", "survey_invalid", "clarify"}
DEFAULT_FAIL_ON = ["stack_error", "duplicate", "already_returned", "verification_locked",
                   "ineligible", "handoff", "handoff_failed"]


def classify(text: str) -> str:
    folded = fold(text).strip()
    if not folded:
        return "empty"
    for kind, rx in _KIND_RE:
        if rx.search(folded):
            return kind
    return "unknown"


@dataclass
class Reply:
    messages: list[dict[str, Any]]
    kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kinds = [classify(m.get("text") or "") for m in self.messages]

    @property
    def texts(self) -> list[str]:
        return [m.get("text") or "" for m in self.messages]

    def question(self) -> str:
        """What the customer should answer: the last question in the reply."""
        if not self.messages:
            return "silence"
        for kind in reversed(self.kinds):
            if kind in QUESTION_KINDS:
                return kind
        return "unknown"

    def text_of(self, kind: str) -> str | None:
        """The last message of this kind in the reply."""
        found = [t for k, t in zip(self.kinds, self.texts, strict=True) if k == kind]
        return found[-1] if found else None

    def repeat_key(self) -> str:
        """What counts as "the same question" for the 3-times rule: the question the
        customer answers (an unrecognised reply by its text)."""
        kind = self.question()
        if kind == "unknown":
            return "unknown: " + fold(self.texts[-1])[:80]
        return kind

    def interjection(self) -> list[str]:
        """Off-flow messages the bot put before a form question in the same reply."""
        if self.question() not in FORM_KINDS:
            return []
        return [k for k in self.kinds if k in INTERJECTION_KINDS]


# --- scripts ---------------------------------------------------------------------------------

@dataclass
class Dialogue:
    id: str
    scenario: str
    lang: str
    persona: str
    customer: str  # e-mail of the demo customer whose data the persona uses
    order: str
    line: int
    product_hint: str
    opening: list[str]
    answers: dict[str, list[str]]
    restate: list[str]
    triggers: list[dict[str, Any]]
    goal: list[str]
    fail_on: list[str]
    checks: dict[str, Any]
    seed_case: dict[str, Any] | None
    file: str


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def load_scripts(directory: Path = SCRIPTS) -> list[Dialogue]:
    defaults = yaml.safe_load((directory / "_defaults.yml").read_text(encoding="utf-8"))
    out: list[Dialogue] = []
    for path in sorted(directory.glob("*.yml")):
        if path.name.startswith("_"):
            continue
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        scenario = doc["scenario"]
        for d in doc["dialogues"]:
            lang = d["lang"]
            answers = {k: _as_list(v) for k, v in (defaults["answers"][lang] or {}).items()}
            answers.update({k: _as_list(v) for k, v in (d.get("answers") or {}).items()})
            opening = _as_list(d["opening"])
            fail_on = [k for k in DEFAULT_FAIL_ON + _as_list(d.get("fail_on_extra"))
                       if k not in _as_list(d.get("allow"))]
            out.append(Dialogue(
                id=d["id"], scenario=scenario, lang=lang, persona=d["persona"],
                customer=d["customer"], order=d["order"], line=int(d["line"]),
                product_hint=d["product_hint"], opening=opening, answers=answers,
                restate=_as_list(d.get("restate")) or opening[1:] + opening[:1],
                triggers=list(d.get("triggers") or []),
                goal=_as_list(d.get("goal") or doc.get("goal")),
                fail_on=fail_on, checks=dict(doc.get("checks") or {}, **(d.get("checks") or {})),
                seed_case=d.get("seed_case"), file=path.name))
    for d in out:
        for text in [*d.opening, *d.restate, *(x for v in d.answers.values() for x in v),
                     *(x for t in d.triggers for x in _as_list(t.get("say")))]:
            if PAYLOAD_RE.match(text):
                raise ValueError(f"{d.id}: scripted customers type, no payloads: {text!r}")
        for trig in d.triggers:
            if not isinstance(trig, dict) or "at" not in trig or "say" not in trig:
                raise ValueError(f"{d.id}: a trigger needs `at` (a kind) and `say`: {trig}")
    ids = [d.id for d in out]
    if len(ids) != len(set(ids)):
        raise ValueError("duplicate dialogue ids")
    return out


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class ScriptedCustomer:
    """Answers the bot in its own words: the n-th time a thing is asked, the n-th phrasing."""

    def __init__(self, d: Dialogue, profile: dict[str, str]):
        self.d = d
        self.profile = profile
        self.answers = {k: list(v) for k, v in d.answers.items()}
        self.restate_lines = list(d.restate)
        self.used: Counter = Counter()
        self.fired: set[int] = set()
        self.last_question: str | None = None
        self.corrected_at: int | None = None  # turn of the correction (trigger "mark")
        self.correction_key: str | None = None
        self.summary_before: str | None = None

    def fmt(self, text: str) -> str:
        return text.format_map(_Blank(self.profile))

    def _pick(self, key: str, options: list[str]) -> str:
        text = options[self.used[key] % len(options)]
        self.used[key] += 1
        return self.fmt(text)

    def opening(self) -> str:
        return self._pick("opening", self.d.opening[:1])

    def restate(self) -> str:
        return self._pick("restate", self.restate_lines)

    def respond(self, reply: Reply, turn: int) -> tuple[str, str]:
        """(text, why) — why is the kind answered, for the transcript."""
        present = set(reply.kinds)
        for i, trig in enumerate(self.d.triggers):
            if i in self.fired or trig["at"] not in present:
                continue
            self.fired.add(i)
            key = f"trigger{i}"
            self.answers[key] = _as_list(trig["say"])
            for kind, options in (trig.get("then") or {}).items():
                self.answers[kind] = _as_list(options)
                self.used[kind] = 0
            if trig.get("restate"):
                self.restate_lines, self.used["restate"] = _as_list(trig["restate"]), 0
            if trig.get("mark"):
                self.corrected_at, self.correction_key = turn, key
                self.summary_before = reply.text_of("summary")
            self.last_question = key  # "say it another way" → the next phrasing of this
            return self._pick(key, self.answers[key]), f"trigger:{trig['at']}"
        kind = reply.question()
        if kind in REASK_KINDS or (kind == "rephrase" and self.last_question):
            kind = self.last_question or "unknown"
        if (kind == "summary" and self.correction_key
                and not self.summary_reflects_correction(reply.text_of("summary"))):
            # the summary still shows the old value: the customer insists, in other words
            self.last_question = self.correction_key
            return (self._pick(self.correction_key, self.answers[self.correction_key]),
                    "summary without the correction")
        if kind in self.answers and self.answers[kind]:
            if kind not in RESTATE_KINDS:
                self.last_question = kind
            return self._pick(kind, self.answers[kind]), kind
        self.last_question = None
        return self.restate(), f"restate ({kind})"

    def summary_reflects_correction(self, summary: str | None) -> bool:
        spec = self.d.checks.get("summary_change")
        if not spec or summary is None:
            return True
        return summary_changed(self.summary_before, summary, spec)


# --- the bench's database --------------------------------------------------------------------

class BenchDB:
    """Seeding, checks and reset on the database the hub writes to."""

    def __init__(self, url: str, cli_env: dict[str, str]):
        self.url, self.cli_env = url, cli_env
        self.seeded: list[int] = []

    @contextmanager
    def session(self) -> Iterator[Any]:
        from bot.db.session import session_scope

        with session_scope(self.url) as s:
            yield s

    def demo(self) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "bot", "demo", "show", "--json"], cwd=ROOT,
                             env=self.cli_env, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"`bot demo show --json` failed: {out.stderr[-2000:]}")
        return json.loads(out.stdout)

    def case(self, number: str) -> dict[str, Any] | None:
        out = subprocess.run([sys.executable, "-m", "bot", "cases", "show", number, "--json"],
                             cwd=ROOT, env=self.cli_env, capture_output=True, text=True,
                             timeout=120)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def seed_case(self, d: Dialogue, spec: dict[str, Any]) -> str:
        from sqlalchemy import select

        from bot.db.models import Order, OrderLine
        from bot.services import cases

        with self.session() as s:
            order = s.execute(select(Order).where(Order.number == d.order)).scalar_one()
            line = s.execute(select(OrderLine).where(OrderLine.order_id == order.id,
                                                     OrderLine.line_no == d.line)).scalar_one()
            opened = cases.open_case(
                s, case_type=spec.get("type", "warranty"), actor="bench",
                customer_id=order.customer_id, order_line_id=line.id, channel="api",
                language=d.lang, category=spec.get("category"),
                description=spec.get("description"),
                details={"order_number": d.order, "line_id": d.line,
                         "product": spec.get("product", d.product_hint), "seeded_by": "bench"})
            self.seeded.append(opened.case.id)
            return opened.case.number

    def survey(self, sender: str) -> dict[str, Any] | None:
        from sqlalchemy import select

        from bot.db.models import Conversation, SurveyResponse

        with self.session() as s:
            row = s.execute(
                select(SurveyResponse).join(Conversation,
                                            SurveyResponse.conversation_id == Conversation.id)
                .where(Conversation.sender == sender).order_by(SurveyResponse.id.desc())
            ).scalars().first()
            if row is None:
                return None
            return {"state": row.state, "ces": row.ces, "nps": row.nps, "csat": row.csat,
                    "comment": row.comment}

    def cases_of(self, sender: str) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from bot.db.models import Case, Conversation

        with self.session() as s:
            rows = s.execute(select(Case.number, Case.type, Case.status).join(
                Conversation, Case.conversation_id == Conversation.id).where(
                Conversation.sender == sender).order_by(Case.id)).all()
            return [{"number": n, "type": t, "status": st} for n, t, st in rows]

    def reset(self, d: Dialogue, case_numbers: list[str]) -> None:
        """Close the bench's own open cases (never anyone else's) and forget failed
        verifications of the order/cases this dialogue used."""
        from sqlalchemy import delete, or_, select

        from bot.db.models import Case, CaseEvent, Conversation, VerificationAttempt, utcnow
        from bot.services.cases import OPEN_STATUSES

        with self.session() as s:
            ours = select(Conversation.id).where(Conversation.sender.like("bench-dlg-%"))
            rows = s.execute(select(Case).where(
                Case.status.in_(OPEN_STATUSES),
                or_(Case.conversation_id.in_(ours), Case.id.in_(self.seeded or [-1])))
            ).scalars().all()
            now = utcnow()
            for case in rows:
                s.add(CaseEvent(case_id=case.id, kind="status", from_status=case.status,
                                to_status="closed", actor="bench", internal=True,
                                note="closed by bench/dialogues between dialogues",
                                created_at=now))
                case.status, case.updated_at = "closed", now
            keys = [f"order:{d.order}", *(f"case:{n}" for n in case_numbers)]
            s.execute(delete(VerificationAttempt).where(VerificationAttempt.key.in_(keys)))


# --- one dialogue ----------------------------------------------------------------------------

def profile_for(d: Dialogue, demo: dict[str, Any]) -> dict[str, str]:
    cust = next((c for c in demo["customers"] if c["email"] == d.customer), None)
    if cust is None:
        raise ValueError(f"{d.id}: no demo customer {d.customer}")
    order = next((o for o in cust["orders"] if o["number"] == d.order), None)
    if order is None:
        raise ValueError(f"{d.id}: {d.customer} has no order {d.order}")
    line = next((x for x in order["lines"] if x["line_id"] == d.line), None)
    if line is None or fold(d.product_hint) not in fold(line["product"]):
        raise ValueError(f"{d.id}: line {d.line} of {d.order} is not {d.product_hint!r}")
    digits = re.sub(r"\D", "", cust["phone"])
    return {"name": cust["name"], "first_name": cust["name"].split()[0],
            "email": cust["email"], "phone4": digits[-4:], "order": d.order,
            "order_loose": d.order.lower().replace("-", " "),
            "order_digits": d.order.split("-")[1]}


def _summary_line(text: str | None, label_re: str) -> str | None:
    for line in re.split(r"\n|•", text or ""):
        if re.search(label_re, fold(line.strip())):
            return line.strip()
    return None


def summary_changed(before: str | None, after: str, spec: dict[str, Any]) -> bool:
    """Does the summary line named by spec["line"] differ from before (and contain one of
    spec["contains"], when given)?"""
    old = _summary_line(before, spec["line"])
    new = _summary_line(after, spec["line"])
    ok = new is not None and new != old
    if spec.get("contains"):
        ok = ok and any(fold(w) in fold(new or "") for w in _as_list(spec["contains"]))
    return ok


class Failed(Exception):
    pass


def post_like_a_widget(http: httpx.Client, hub_url: str, body: dict[str, Any],
                       attempts: int = 8) -> httpx.Response:
    """POST a turn; a 429 is waited out (its ``retry_after``) and sent again, as the widget
    does: a scripted customer answers in milliseconds, faster than the per-customer limit
    a person never reaches."""
    for _ in range(attempts - 1):
        resp = http.post(f"{hub_url}/api/messages", json=body)
        if resp.status_code != 429:
            return resp
        try:
            wait = float(resp.json().get("retry_after") or 0.5)
        except ValueError:
            wait = 0.5
        time.sleep(min(5.0, max(0.05, wait)))
    return http.post(f"{hub_url}/api/messages", json=body)


def run_dialogue(d: Dialogue, hub_url: str, db: BenchDB, demo: dict[str, Any]) -> dict:
    started = time.monotonic()
    sender = f"bench-dlg-{re.sub(r'[^A-Za-z0-9-]', '-', d.id)}-{uuid.uuid4().hex[:8]}"
    profile = profile_for(d, demo)
    seeded = None
    if d.seed_case:
        seeded = db.seed_case(d, d.seed_case)
        profile["case"] = seeded
    customer = ScriptedCustomer(d, profile)
    http = httpx.Client(timeout=90)
    locale = {"es": "es-ES", "en": "en-GB"}[d.lang]
    transcript: list[dict[str, Any]] = []
    seen: list[str] = []
    created: list[str] = []
    statuses: list[str] = []
    summaries: list[tuple[int, str]] = []
    handoff_numbers: list[str] = []
    faq_answers: list[str] = []
    interjections: list[dict[str, Any]] = []
    asked: Counter = Counter()
    reason = ""
    goal_reached = False
    text, why = customer.opening(), "opening"
    try:
        for turn in range(1, MAX_TURNS + 1):
            try:
                resp = post_like_a_widget(http, hub_url, {
                    "sender": sender, "text": text, "metadata": {"locale": locale}})
            except httpx.HTTPError as exc:
                raise Failed(f"stack error: {type(exc).__name__}: {exc}") from exc
            if resp.status_code != 200:
                raise Failed(f"stack error: HTTP {resp.status_code} {resp.text[:200]}")
            reply = Reply(resp.json().get("messages") or [])
            transcript.append({"turn": turn, "customer": text, "answering": why,
                               "bot": reply.texts, "kinds": reply.kinds,
                               "buttons": [[b.get("title") for b in m.get("buttons") or []]
                                           for m in reply.messages]})
            for kind, msg in zip(reply.kinds, reply.texts, strict=True):
                seen.append(kind)
                if kind == "case_created":
                    created.append(CASE_RE.search(msg).group(0))
                    customer.profile["created_case"] = created[-1]
                elif kind == "case_status":
                    statuses.append(CASE_RE.search(msg).group(0))
                elif kind == "summary":
                    summaries.append((turn, msg))
                elif kind == "handoff" and CASE_RE.search(msg):
                    handoff_numbers.append(CASE_RE.search(msg).group(0))
            if "faq_resolved" in reply.kinds:
                faq_answers.append("\n".join(
                    t for k, t in zip(reply.kinds, reply.texts, strict=True)
                    if k in ("unknown", "faq_resolved")))
            dead = [k for k in reply.kinds if k in d.fail_on]
            if "stack_error" in dead:
                raise Failed("stack error: the hub apologised for a technical problem "
                             "(Rasa failed or gave no reply)")
            if dead:
                raise Failed(f"dead end: bot replied with {dead[0]}")
            if all(g in seen for g in d.goal):
                goal_reached = True
                break
            if reply.interjection():
                interjections.append({"turn": turn, "kinds": reply.interjection()})
            key = reply.repeat_key()
            asked[key] += 1
            if asked[key] >= MAX_SAME_QUESTION:
                raise Failed(f"bot asked the same thing ({key}) {asked[key]} times")
            text, why = customer.respond(reply, turn)
        else:
            raise Failed(f"exceeded {MAX_TURNS} turns without reaching the goal "
                         f"({', '.join(g for g in d.goal if g not in seen)} missing)")
    except Failed as exc:
        reason = str(exc)
    checks: list[dict[str, Any]] = []
    if goal_reached:
        checks = run_checks(d, db, sender=sender, created=created, statuses=statuses,
                            seeded=seeded, summaries=summaries, customer=customer,
                            handoff_numbers=handoff_numbers)
        bad = [c for c in checks if not c["ok"]]
        if bad:
            reason = "check failed: " + "; ".join(f"{c['check']}: {c['detail']}" for c in bad)
    completed = goal_reached and not reason
    db.reset(d, [*created, *([seeded] if seeded else [])])
    return {
        "id": d.id, "scenario": d.scenario, "lang": d.lang, "persona": d.persona,
        "script": d.file, "customer": d.customer, "order": d.order, "line": d.line,
        "product": d.product_hint, "sender": sender, "completed": completed,
        "goal_reached": goal_reached, "reason": reason or None, "turns": len(transcript),
        "seconds": round(time.monotonic() - started, 1), "cases_opened": created,
        "cases_in_db": db.cases_of(sender), "seeded_case": seeded, "checks": checks,
        "faq_answers": faq_answers, "interjections": interjections,
        "transcript": transcript,
    }


def run_checks(d: Dialogue, db: BenchDB, *, sender: str, created: list[str],
               statuses: list[str], seeded: str | None, summaries: list[tuple[int, str]],
               customer: ScriptedCustomer, handoff_numbers: list[str]) -> list[dict]:
    out: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        out.append({"check": name, "ok": bool(ok), "detail": detail})

    spec = d.checks
    if "case" in spec:
        want = spec["case"]
        source = handoff_numbers if want.get("from") == "handoff" else created
        number = source[-1] if source else None
        data = db.case(number) if number else None
        if data is None:
            check("case", False, f"no case to check (numbers seen: {source})")
        else:
            problems = []
            details = data.get("details") or {}
            if want.get("type") and data["type"] != want["type"]:
                problems.append(f"type {data['type']} != {want['type']}")
            if want.get("line", True) and want.get("from") != "handoff":
                line = want.get("line_id", d.line)
                if details.get("order_number") != d.order or details.get("line_id") != line:
                    problems.append(f"order line {details.get('order_number')}/"
                                    f"{details.get('line_id')} != {d.order}/{line}")
            if want.get("category") and data.get("category") not in _as_list(want["category"]):
                problems.append(f"category {data.get('category')!r} not in {want['category']}")
            for key, allowed in (want.get("details") or {}).items():
                if details.get(key) not in _as_list(allowed):
                    problems.append(f"{key} {details.get(key)!r} not in {allowed}")
            for key, words in (want.get("details_contain") or {}).items():
                value = fold(str(details.get(key) or ""))
                if not any(fold(w) in value for w in _as_list(words)):
                    problems.append(f"{key} {details.get(key)!r} has none of {words}")
            check("case", not problems,
                  f"{number} {data['type']} category={data.get('category')} "
                  + ("; ".join(problems) if problems else "as expected"))
    if "status_of" in spec:
        target = seeded if spec["status_of"] == "seeded" else (created[-1] if created else None)
        check("status", target is not None and target in statuses,
              f"status shown for {statuses or 'nothing'}, expected {target}")
    if "summary_change" in spec:
        want = spec["summary_change"]
        before = [t for turn, t in summaries if customer.corrected_at is None
                  or turn <= customer.corrected_at]
        after = [t for turn, t in summaries if customer.corrected_at is not None
                 and turn > customer.corrected_at]
        if not before or not after:
            check("summary_change", False, f"summaries before/after the correction: "
                  f"{len(before)}/{len(after)}")
        else:
            old = _summary_line(before[-1], want["line"])
            new = _summary_line(after[-1], want["line"])
            check("summary_change", summary_changed(before[-1], after[-1], want),
                  f"{old!r} -> {new!r}")
    if "survey" in spec:
        want = spec["survey"]
        got = db.survey(sender)
        problems = [] if got else ["no survey stored"]
        for key in ("ces", "nps", "csat"):
            if got and key in want and got.get(key) != want[key]:
                problems.append(f"{key} {got.get(key)} != {want[key]}")
        if got and want.get("comment") and not got.get("comment"):
            problems.append("no comment stored")
        check("survey", not problems, f"{got} " + "; ".join(problems))
    return out


# --- the run ---------------------------------------------------------------------------------

def _select(dialogues: list[Dialogue]) -> list[Dialogue]:
    only = os.environ.get("BENCH_DIALOGUES_ONLY")
    if only:
        dialogues = [d for d in dialogues if only in d.id or only == d.scenario]
    limit = os.environ.get("BENCH_DIALOGUES_LIMIT")
    if limit:
        dialogues = dialogues[:int(limit)]
    return dialogues


def _tail(result: dict, n: int = TAIL_TURNS) -> str:
    lines = []
    for t in result["transcript"][-n:]:
        lines.append(f"    [{t['turn']:2}] C: {t['customer']}")
        for text, kind in zip(t["bot"], t["kinds"], strict=True):
            one = " ".join(text.split())
            lines.append(f"         B: {one[:160]}{'…' if len(one) > 160 else ''}  <{kind}>")
        if not t["bot"]:
            lines.append("         B: (no reply)")
    return "\n".join(lines)


def report(results: list[dict], meta: dict) -> dict:
    table: dict[str, dict[str, list[int]]] = {}
    for r in results:
        cell = table.setdefault(r["scenario"], {}).setdefault(r["lang"], [0, 0])
        cell[0] += r["completed"]
        cell[1] += 1
    done = sum(r["completed"] for r in results)
    rate = round(done / len(results), 3) if results else None
    patterns = Counter(re.sub(r"GAR|DEV|SOP|-\d{4}-\d{6}", "", r["reason"] or "")
                       for r in results if not r["completed"])
    interjected = Counter(k for r in results for i in r["interjections"] for k in i["kinds"])
    return {**meta, "dialogues": len(results), "completed": done, "completion_rate": rate,
            "interjections_in_forms": dict(interjected.most_common()),
            "dialogues_with_interjections": sum(bool(r["interjections"]) for r in results),
            "table": {s: {lang: {"completed": c[0], "total": c[1]} for lang, c in v.items()}
                      for s, v in table.items()},
            "failure_reasons": dict(patterns.most_common()), "results": results}


def print_report(rep: dict) -> None:
    print()
    print(f"{'scenario':16} {'es':>7} {'en':>7}")
    for scenario, cells in rep["table"].items():
        row = [f"{cells[lang]['completed']}/{cells[lang]['total']}" if lang in cells else "-"
               for lang in ("es", "en")]
        print(f"{scenario:16} {row[0]:>7} {row[1]:>7}")
    rate = rep["completion_rate"]
    print(f"overall: {rep['completed']}/{rep['dialogues']} completed"
          + (f" ({100 * rate:.0f}%)" if rate is not None else ""))
    for r in rep["results"]:
        if r["completed"]:
            continue
        print(f"\nFAILED {r['id']} ({r['scenario']}, {r['lang']}, {r['order']} line {r['line']} "
              f"{r['product']}): {r['reason']}")
        print(_tail(r))
    if rep["interjections_in_forms"]:
        print(f"\noff-flow replies in the middle of a form (the bot answered something else "
              f"before re-asking), in {rep['dialogues_with_interjections']} dialogues:")
        for kind, n in rep["interjections_in_forms"].items():
            print(f"  {n:3} × {kind}")
    if rep["failure_reasons"]:
        print("\nfailure reasons:")
        for why, n in rep["failure_reasons"].items():
            print(f"  {n:3} × {why}")


def run_all(hub_url: str, db: BenchDB, dialogues: list[Dialogue]) -> list[dict]:
    demo = db.demo()
    for d in dialogues:  # validate every script against the demo data before starting
        profile_for(d, demo)
    results = []
    for i, d in enumerate(dialogues, start=1):
        try:
            r = run_dialogue(d, hub_url, db, demo)
        except Exception as exc:  # a bug in the bench or a broken reply: keep going
            r = {"id": d.id, "scenario": d.scenario, "lang": d.lang, "persona": d.persona,
                 "script": d.file, "customer": d.customer, "order": d.order, "line": d.line,
                 "product": d.product_hint, "completed": False, "goal_reached": False,
                 "reason": f"bench error: {type(exc).__name__}: {exc}", "turns": 0,
                 "seconds": 0.0, "checks": [], "interjections": [], "transcript": []}
        mark = "ok  " if r["completed"] else "FAIL"
        print(f"[{i:2}/{len(dialogues)}] {mark} {d.id:34} {r['turns']:2} turns "
              f"{r['seconds']:5.1f}s {r['reason'] or ''}", flush=True)
        results.append(r)
    return results


def main() -> int:
    dialogues = _select(load_scripts())
    if not dialogues:
        print("no dialogues selected", file=sys.stderr)
        return 2
    started = time.monotonic()
    external = os.environ.get("BENCH_HUB_URL")
    if external:
        from bot.core.config import get_settings

        url = os.environ.get("BENCH_DATABASE_URL") or get_settings().database_url
        db = BenchDB(url, {**os.environ, "DATABASE_URL": url})
        results = run_all(external.rstrip("/"), db, dialogues)
        hub = external
    else:
        # every scripted customer comes from 127.0.0.1: the address limit (sized for a
        # shop's NAT) is raised, the per-customer one stays as shipped
        with bench_stack(extra_env={"IP_RATE_BURST": "5000",
                                    "IP_RATE_PER_SECOND": "500"}) as bs:
            db = BenchDB(bs.settings.database_url, bs.cli_env)
            results = run_all(bs.hub_url, db, dialogues)
            hub = "started by the bench"
    meta = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "hub": hub,
            "max_turns": MAX_TURNS, "max_same_question": MAX_SAME_QUESTION,
            "seconds": round(time.monotonic() - started, 1)}
    rep = report(results, meta)
    out = result_path("dialogues")
    out.write_text(json.dumps(rep, indent=2, ensure_ascii=False))
    print_report(rep)
    print(f"\nwritten {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
