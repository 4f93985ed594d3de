"""Case numbering/lifecycle, order lookup adapters (DB and REST against a local HTTP server),
customer verification and policy eligibility."""

from __future__ import annotations

import json
import os
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.core.config import Settings
from bot.db.session import session_factory, session_scope
from bot.services import cases, demo
from bot.services.orders import (
    DatabaseOrderService,
    OrderServiceUnavailable,
    RestOrderService,
    verify_customer,
)
from bot.services.policy import return_eligibility, warranty_eligibility
from tests.conftest import run_cli

TODAY = date(2026, 11, 25)
S = Settings()


def test_numbers_are_dense_per_prefix_and_year(db_url):
    with session_scope(db_url) as s:
        a = cases.open_case(s, case_type="warranty").case.number
        b = cases.open_case(s, case_type="warranty").case.number
        c = cases.open_case(s, case_type="return").case.number
        d = cases.open_case(s, case_type="exchange").case.number
        e = cases.open_case(s, case_type="support").case.number
    year = date.today().year
    assert (a, b) == (f"GAR-{year}-000001", f"GAR-{year}-000002")
    assert (c, d) == (f"DEV-{year}-000001", f"DEV-{year}-000002")
    assert e == f"SOP-{year}-000001"


def test_concurrent_numbering_never_repeats(db_url):
    numbers: list[str] = []
    errors: list[Exception] = []

    def worker():
        for _ in range(5):
            session = session_factory(db_url)()
            try:
                numbers.append(cases.open_case(session, case_type="support").case.number)
                session.commit()
            except Exception as exc:  # noqa: BLE001 - a lock timeout is a failure here too
                session.rollback()
                errors.append(exc)
            finally:
                session.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(numbers) == len(set(numbers)) == 20


def test_idempotent_submission_creates_one_case(db_url):
    with session_scope(db_url) as s:
        first = cases.open_case(s, case_type="warranty", idempotency_key="conv-1:submit-1",
                                description="no enciende")
        again = cases.open_case(s, case_type="warranty", idempotency_key="conv-1:submit-1",
                                description="no enciende")
        assert first.created and not again.created
        assert first.case.id == again.case.id
        assert len(cases.list_cases(s)) == 1


def test_duplicate_detection_by_line_and_type(db_url):
    with session_scope(db_url) as s:
        demo.load(s, TODAY)
    line_id = DatabaseOrderService(db_url).find("PED-000123").lines[0].db_id
    with session_scope(db_url) as s:
        opened = cases.open_case(s, case_type="return", order_line_id=line_id)
        assert cases.find_open_duplicate(s, "exchange", line_id).id == opened.case.id
        assert cases.find_open_duplicate(s, "warranty", line_id) is None
        cases.transition(s, opened.case, "closed", actor="agent")
        assert cases.find_open_duplicate(s, "return", line_id) is None


def test_lifecycle_with_audit_and_reopen(db_url):
    with session_scope(db_url) as s:
        case = cases.open_case(s, case_type="warranty").case
        cases.transition(s, case, "in_progress", actor="ana")
        cases.transition(s, case, "waiting_customer", actor="ana", note="need photo")
        cases.add_note(s, case, actor="ana", note="<b>customer</b> angry")
        cases.transition(s, case, "resolved", actor="ana")
        assert case.resolved_at is not None
        cases.transition(s, case, "open", actor="customer")  # reopen
        assert case.resolved_at is None
        with pytest.raises(cases.InvalidTransition):
            cases.transition(s, case, "bogus", actor="x")
        cases.transition(s, case, "closed", actor="ana")
        with pytest.raises(cases.InvalidTransition):
            cases.transition(s, case, "in_progress", actor="ana")
        data = cases.as_dict(case)
        kinds = [(e["kind"], e["to"]) for e in data["events"]]
        assert kinds == [("created", "open"), ("status", "in_progress"),
                         ("status", "waiting_customer"), ("note", None),
                         ("status", "resolved"), ("reopened", "open"), ("status", "closed")]
        public = cases.as_dict(case, include_internal=False)["events"]
        assert all(not e["internal"] for e in public) and len(public) == 6


def test_cases_cli_show_and_list(db_url):
    with session_scope(db_url) as s:
        number = cases.open_case(s, case_type="warranty", description="ruido").case.number
    env = {**os.environ, "DATABASE_URL": db_url}
    shown = run_cli("cases", "show", number.lower().replace("-", " "), "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["number"] == number and data["events"][0]["kind"] == "created"
    listed = json.loads(run_cli("cases", "list", "--json", "--status", "open", env=env).stdout)
    assert [c["number"] for c in listed] == [number]
    missing = run_cli("cases", "show", "GAR-1999-000001", env=env)
    assert missing.returncode == 1 and "no case" in missing.stderr


# --- orders ----------------------------------------------------------------------------------

def test_database_order_lookup_and_verification(db_url):
    with session_scope(db_url) as s:
        demo.load(s, TODAY)
    svc = DatabaseOrderService(db_url)
    order = svc.find("PED-000123")
    assert order.customer_name == "Lucía Martín" and len(order.lines) == 3
    assert svc.find("PED-999999") is None
    assert verify_customer(order, "  Lucia.Martin@Example.com ")
    assert verify_customer(order, "1234")  # last 4 digits of +34 600 111 234
    assert not verify_customer(order, "4321")
    assert not verify_customer(order, "someone@else.com")
    assert not verify_customer(order, "")
    assert not verify_customer(order, "12")
    # the whole number, as customers also type it (C29 of the 2026-11-27 exploration)
    assert verify_customer(order, "600111234")
    assert verify_customer(order, "+34 600 111 234")
    assert verify_customer(order, "600 11 12 34")
    assert not verify_customer(order, "600111235")
    assert not verify_customer(order, "+34 600 111 234 5")  # longer than the number
    assert not verify_customer(order, "11234")  # 5 digits: neither 4 nor a whole number


class FakeShopApi(BaseHTTPRequestHandler):
    """A shop's order API: flaky on demand (counts calls), 404 for unknown orders."""

    calls = 0
    fail_first = 0

    def do_GET(self):  # noqa: N802 - http.server API
        cls = type(self)
        cls.calls += 1
        if cls.calls <= cls.fail_first:
            self.send_response(503)
            self.end_headers()
            return
        if self.path != "/orders/PED-000777":
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({
            "number": "PED-000777", "delivered_at": "2026-11-01",
            "customer": {"name": "Ana Ruiz", "email": "ana@shop.test", "phone": "+34 611 000 999",
                         "language": "es"},
            "lines": [{"line_id": 1, "product": "Horno", "category": "appliance",
                       "extended_warranty": True}],
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def shop_api():
    FakeShopApi.calls, FakeShopApi.fail_first = 0, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeShopApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_rest_order_lookup_with_retries(shop_api):
    FakeShopApi.fail_first = 2  # two 503s, then success: retried with backoff
    order = RestOrderService(shop_api, backoff=0.01).find("PED-000777")
    assert order.delivered_at == date(2026, 11, 1) and order.lines[0].extended_warranty
    assert FakeShopApi.calls == 3
    assert RestOrderService(shop_api, backoff=0.01).find("PED-000001") is None


def test_rest_order_service_down(shop_api):
    FakeShopApi.fail_first = 100
    with pytest.raises(OrderServiceUnavailable):
        RestOrderService(shop_api, retries=2, backoff=0.01).find("PED-000777")
    with pytest.raises(OrderServiceUnavailable):
        RestOrderService("http://127.0.0.1:9", retries=1, backoff=0.01).find("PED-000777")


# --- policy ----------------------------------------------------------------------------------

@pytest.mark.parametrize("days, extended, eligible, reason", [
    (10, False, True, "within_warranty"),
    (365 * 3 - 1, False, True, "within_warranty"),
    (365 * 3 + 10, False, False, "warranty_expired"),
    (365 * 3 + 10, True, True, "extended_warranty"),
    (365 * 5 + 10, True, False, "warranty_expired"),
    (-3, False, False, "not_delivered"),  # delivery date in the future
])
def test_warranty_eligibility(days, extended, eligible, reason):
    e = warranty_eligibility(TODAY - timedelta(days=days), extended, S, TODAY)
    assert (e.eligible, e.reason) == (eligible, reason)


def test_warranty_without_delivery_date():
    assert warranty_eligibility(None, False, S, TODAY).reason == "not_delivered"


@pytest.mark.parametrize("days, damaged, eligible, reason", [
    (5, False, True, "within_return_window"),
    (30, False, True, "within_return_window"),
    (31, False, False, "return_window_closed"),
    (90, True, True, "damaged_on_arrival"),
    (-1, False, False, "not_delivered"),
])
def test_return_eligibility(days, damaged, eligible, reason):
    e = return_eligibility(TODAY - timedelta(days=days), S, TODAY, damaged_on_arrival=damaged)
    assert (e.eligible, e.reason) == (eligible, reason)


def test_completed_return_is_found(db_url):
    with session_scope(db_url) as s:
        demo.load(s, TODAY)
    line_id = DatabaseOrderService(db_url).find("PED-000123").lines[2].db_id
    with session_scope(db_url) as s:
        case = cases.open_case(s, case_type="return", order_line_id=line_id).case
        assert cases.find_completed_return(s, line_id) is None  # still open
        cases.set_resolution(s, case, actor="agent", resolution="refunded 149 €")
        cases.transition(s, case, "resolved", actor="agent")
        assert cases.find_completed_return(s, line_id).id == case.id
