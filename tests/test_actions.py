"""Custom actions with a fake tracker and a collecting dispatcher."""

from actions.fallback import ActionFallback, consecutive_fallbacks
from actions.greeting import ActionGreet
from actions.language import ActionSetLanguage
from bot.db.models import Customer
from bot.db.session import session_scope
from tests.conftest import make_tracker


def _user(intent):
    return {"event": "user", "parse_data": {"intent": {"name": intent}}}


def test_greet_anonymous_shows_menu(dispatcher, action_env):
    events = ActionGreet().run(dispatcher, make_tracker(), {})
    assert [m["response"] for m in dispatcher.messages] == ["utter_greet", "utter_help"]
    assert events == []


def test_greet_known_customer_by_first_name(dispatcher, action_env):
    with session_scope(action_env) as s:
        customer = Customer(name="Lucía Martín", email="lucia@example.org", language="es")
        s.add(customer)
        s.flush()
        cid = customer.id
    events = ActionGreet().run(dispatcher, make_tracker(metadata={"customer_id": cid}), {})
    first = dispatcher.messages[0]
    assert first["response"] == "utter_greet_name"
    assert first["customer_name"] == "Lucía"
    assert events == [{"event": "slot", "timestamp": None, "name": "customer_name",
                       "value": "Lucía"}]


def test_greet_unknown_customer_id_is_anonymous(dispatcher, action_env):
    ActionGreet().run(dispatcher, make_tracker(metadata={"customer_id": 424242}), {})
    assert dispatcher.messages[0]["response"] == "utter_greet"


def test_consecutive_fallbacks_counts_only_the_latest_run():
    events = [_user("nlu_fallback"), _user("greet"), _user("nlu_fallback"),
              {"event": "bot"}, _user("nlu_fallback")]
    assert consecutive_fallbacks(events) == 2
    assert consecutive_fallbacks([_user("greet")]) == 0
    assert consecutive_fallbacks([_user("nlu_fallback"), {"event": "session_started"}]) == 0


def test_fallback_first_asks_to_rephrase_then_hands_off(dispatcher):
    assert ActionFallback().run(
        dispatcher, make_tracker(events=[_user("nlu_fallback")]), {}) == []
    assert dispatcher.messages[-1]["response"] == "utter_ask_rephrase"
    two = [_user("nlu_fallback"), {"event": "bot"}, _user("nlu_fallback")]
    events = ActionFallback().run(dispatcher, make_tracker(events=two), {})
    assert dispatcher.messages[-1]["response"] == "utter_still_not_understood"
    assert [(e["event"], e.get("name"), e.get("value")) for e in events] == [
        ("slot", "handoff_reason", "fallback"), ("followup", "action_handoff", None)]


def test_set_language_from_entity_tells_the_hub(dispatcher):
    tracker = make_tracker(intent="choose_language",
                           entities=[{"entity": "language", "value": "en"}],
                           slots={"language": "es"})
    events = ActionSetLanguage().run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["custom"] == {"set_language": "en"}
    assert events[0]["name"] == "language" and events[0]["value"] == "en"


def test_set_language_synonym_and_toggle(dispatcher):
    tracker = make_tracker(entities=[{"entity": "language", "value": "Español"}],
                           slots={"language": "en"})
    assert ActionSetLanguage().run(dispatcher, tracker, {})[0]["value"] == "es"
    toggle = make_tracker(slots={"language": "es"})  # "change language" without saying which
    assert ActionSetLanguage().run(dispatcher, toggle, {})[0]["value"] == "en"


# --- FAQ ---------------------------------------------------------------------------------

import pytest  # noqa: E402

from actions import faq  # noqa: E402
from bot.core.config import ROOT  # noqa: E402
from bot.db.models import Conversation  # noqa: E402
from bot.services.kb import store  # noqa: E402


@pytest.fixture
def kb_env(action_env):
    with session_scope(action_env) as s:
        store.import_directory(s, ROOT / "knowledge_base")
    faq.knowledge_base.cache_clear()
    yield action_env
    faq.knowledge_base.cache_clear()


def test_answer_faq_from_text(dispatcher, kb_env):
    tracker = make_tracker(intent="ask_faq", text="how long does the refund take?",
                           slots={"language": "en"})
    events = faq.ActionAnswerFaq().run(dispatcher, tracker, {})
    assert "14 days" in dispatcher.messages[0]["text"]
    assert dispatcher.messages[1]["response"] == "utter_ask_faq_resolved"
    assert events[0]["name"] == "faq_id" and events[0]["value"] == "refund-timing"


def test_answer_faq_button_payload_picks_that_entry(dispatcher, kb_env):
    tracker = make_tracker(intent="ask_faq", text='/ask_faq{"faq_id": "invoices"}',
                           entities=[{"entity": "faq_id", "value": "invoices"}],
                           slots={"language": "es"})
    events = faq.ActionAnswerFaq().run(dispatcher, tracker, {})
    assert "factura" in dispatcher.messages[0]["text"].lower()
    assert events[0]["value"] == "invoices"


def test_answer_faq_without_text_asks_for_the_question(dispatcher, kb_env):
    faq.ActionAnswerFaq().run(dispatcher, make_tracker(intent="ask_faq", text="/ask_faq"), {})
    assert dispatcher.messages[0]["response"] == "utter_ask_faq_question"


def test_answer_faq_unknown_is_honest(dispatcher, kb_env):
    tracker = make_tracker(intent="ask_faq", text="¿vendéis entradas de cine?")
    events = faq.ActionAnswerFaq().run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["response"] == "utter_faq_unknown"
    assert events[0]["value"] is None


def test_feedback_yes_records_confirmed_containment(dispatcher, kb_env):
    with session_scope(kb_env) as s:
        conv = Conversation(sender="f" * 16, channel="web")
        s.add(conv)
        s.flush()
        cid = conv.id
    tracker = make_tracker(intent="affirm", slots={"faq_id": "refund-timing"},
                           metadata={"conversation_id": cid})
    events = faq.ActionFaqFeedback().run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["response"] == "utter_faq_glad"
    assert events[0]["value"] is None
    with session_scope(kb_env) as s:
        assert s.get(Conversation, cid).outcome == "resolved_bot_confirmed"


def test_feedback_no_offers_human_or_case(dispatcher, kb_env):
    """A "no" is not a hand-off by itself: the customer gets one-tap ways on ("talk to a
    person" first, which action_handoff records as not_solved)."""
    tracker = make_tracker(intent="deny", slots={"faq_id": "refund-timing"})
    events = faq.ActionFaqFeedback().run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["response"] == "utter_faq_not_solved"
    assert all(e["event"] != "followup" for e in events)


def test_fallback_answers_from_kb_when_it_can(dispatcher, kb_env):
    tracker = make_tracker(intent="nlu_fallback", text="factura con NIF de empresa",
                           events=[_user("nlu_fallback")])
    ActionFallback().run(dispatcher, tracker, {})
    first = dispatcher.messages[0]
    assert first.get("text") or first.get("response") == "utter_faq_suggest"
    assert first.get("response") != "utter_ask_rephrase"


@pytest.mark.parametrize("text, refused", [
    ("no tengo foto, lo siento", True), ("I don't have a photo, sorry", True),
    ("sin foto", True), ("no puedo hacer fotos ahora", True),
    ("I haven't got any pictures", True), ("No tengo ninguna foto", True),
    ("aquí va la foto", False), ("here is the picture", False),
    ("la foto no sale bien pero la mando", False), ("no", False),
])
def test_a_typed_no_photo_skips_the_photo_like_the_button(text, refused):
    """Read by words (the sentence may be read as any intent, even nlu_fallback); a bare
    "no" is the deny intent's slot mapping, not this."""
    from actions.cases_intake import no_photo

    assert no_photo(text) is refused
