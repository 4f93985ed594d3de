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


def test_fallback_first_asks_to_rephrase_then_offers_human(dispatcher):
    ActionFallback().run(dispatcher, make_tracker(events=[_user("nlu_fallback")]), {})
    assert dispatcher.messages[-1]["response"] == "utter_ask_rephrase"
    two = [_user("nlu_fallback"), {"event": "bot"}, _user("nlu_fallback")]
    ActionFallback().run(dispatcher, make_tracker(events=two), {})
    assert dispatcher.messages[-1]["response"] == "utter_offer_human"


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
