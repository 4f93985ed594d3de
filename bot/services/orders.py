"""Order lookup behind one interface: the shop database (demo data) or a shop's own REST API.

Chosen by ``ORDER_SERVICE`` (``db`` | ``rest``). The REST client has timeouts and retries
with exponential backoff; when the API stays down it raises ``OrderServiceUnavailable`` so the
bot can apologise instead of pretending the order does not exist.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Protocol

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import select
from urllib3.util.retry import Retry

from bot.core.config import Settings
from bot.db.models import Order
from bot.db.session import session_scope


class OrderServiceUnavailable(Exception):
    pass


@dataclass
class OrderLineInfo:
    line_id: int
    product: str
    category: str
    extended_warranty: bool = False
    db_id: int | None = None  # order_lines.id when the order lives in our database
    names: dict[str, str] = field(default_factory=dict)  # the product's name per language


@dataclass
class OrderInfo:
    number: str
    customer_name: str
    email: str
    phone: str | None
    language: str
    delivered_at: date | None
    lines: list[OrderLineInfo] = field(default_factory=list)
    customer_id: int | None = None

    def in_language(self, lang: str) -> OrderInfo:
        """The same order with its products named in ``lang`` where the shop has the name:
        the language of the chat, not the one on the customer's record (an English chat
        about a Spanish customer's order showed "Lavadora Aqualux 8 kg")."""
        return replace(self, lines=[replace(x, product=x.names.get(lang) or x.product)
                                    for x in self.lines])


class OrderService(Protocol):
    def find(self, number: str) -> OrderInfo | None: ...


class DatabaseOrderService:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def find(self, number: str) -> OrderInfo | None:
        with session_scope(self.database_url) as session:
            order = session.execute(select(Order).where(Order.number == number)
                                    ).scalar_one_or_none()
            if order is None:
                return None
            c = order.customer
            return OrderInfo(
                number=order.number, customer_name=c.name, email=c.email, phone=c.phone,
                language=c.language, delivered_at=order.delivered_at, customer_id=c.id,
                lines=[OrderLineInfo(line.line_no,
                                     line.product.name_es if c.language == "es"
                                     else line.product.name_en,
                                     line.product.category, line.extended_warranty, line.id,
                                     names={"es": line.product.name_es,
                                            "en": line.product.name_en})
                       for line in order.lines],
            )


class RestOrderService:
    """Client for `GET {base}/orders/{number}` → 200 order JSON | 404."""

    def __init__(self, base_url: str, token: str = "", timeout: float = 3.0,
                 retries: int = 3, backoff: float = 0.3) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"
        retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                      backoff_factor=backoff, status_forcelist=(429, 500, 502, 503, 504),
                      allowed_methods=("GET",), respect_retry_after_header=True,
                      raise_on_status=False)
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        self.http.mount("https://", HTTPAdapter(max_retries=retry))

    def find(self, number: str) -> OrderInfo | None:
        try:
            resp = self.http.get(f"{self.base_url}/orders/{number}", timeout=self.timeout)
        except requests.RequestException as exc:
            raise OrderServiceUnavailable(str(exc)) from exc
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise OrderServiceUnavailable(f"order API answered {resp.status_code}")
        try:
            data = resp.json()
            customer = data["customer"]
            delivered = data.get("delivered_at")
            return OrderInfo(
                number=data["number"], customer_name=customer["name"],
                email=customer["email"], phone=customer.get("phone"),
                language=customer.get("language", "es"),
                delivered_at=date.fromisoformat(delivered) if delivered else None,
                lines=[OrderLineInfo(int(x["line_id"]), str(x["product"]),
                                     str(x.get("category", "")),
                                     bool(x.get("extended_warranty", False)))
                       for x in data.get("lines", [])],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise OrderServiceUnavailable(f"order API sent an unexpected body: {exc}") from exc


def order_service(settings: Settings) -> OrderService:
    if settings.order_service == "rest":
        if not settings.order_api_url:
            raise ValueError("ORDER_SERVICE=rest needs ORDER_API_URL")
        return RestOrderService(settings.order_api_url, settings.order_api_token,
                                settings.order_api_timeout)
    return DatabaseOrderService(settings.database_url)


def _digits(text: str | None) -> str:
    return re.sub(r"\D", "", text or "")


# a whole phone number typed without its country code still has this many digits or more
# (Spain 9; the shortest national numbers in Europe and the Americas 7)
NATIONAL_MIN_DIGITS = 7


def verify_customer(order: OrderInfo, factor: str) -> bool:
    """The email on the order, or its phone: the last 4 digits, as we ask, or the whole
    number, with or without the country code, as customers also type it ("600111234",
    "+34 600 111 234"); a longer proof is never weaker. Constant-time compares."""
    factor = (factor or "").strip()
    if "@" in factor:
        return hmac.compare_digest(factor.lower(), order.email.strip().lower())
    digits = _digits(factor)
    phone = _digits(order.phone)
    if len(phone) < 4:
        return False
    if len(digits) == 4:
        return hmac.compare_digest(digits, phone[-4:])
    if NATIONAL_MIN_DIGITS <= len(digits) <= len(phone):
        return hmac.compare_digest(digits, phone[-len(digits):])
    return False
