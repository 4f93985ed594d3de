"""Demo customers, products and orders, with dates relative to today.

Delivery dates are computed from the day the demo is loaded, so that on any date the demo
has orders inside the return window, inside the legal warranty only, covered only by the
extended warranty, out of warranty, and not yet delivered.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.core.config import Settings
from bot.db.models import Customer, Order, OrderLine, Product
from bot.services.policy import return_until, warranty_until

PRODUCTS = [
    # sku, es, en, category, price
    ("LAV-8KG", "Lavadora Aqualux 8 kg", "Aqualux 8 kg washing machine", "appliance", "449.00"),
    ("FRI-NF", "Frigorífico combi No Frost", "No Frost fridge-freezer", "appliance", "689.00"),
    ("HOR-PIR", "Horno pirolítico 71 L", "71 L pyrolytic oven", "appliance", "399.00"),
    ("CAF-EXP", "Cafetera espresso Barista", "Barista espresso machine", "appliance", "129.00"),
    ("TV-55", 'Televisor 4K 55"', '55" 4K television', "electronics", "549.00"),
    ("POR-14", 'Portátil Ultra 14"', 'Ultra 14" laptop', "electronics", "899.00"),
    ("AUR-BT", "Auriculares Bluetooth NC", "Noise-cancelling Bluetooth headphones", "electronics",
     "149.00"),
    ("MOV-X", "Móvil Nova X 128 GB", "Nova X 128 GB smartphone", "electronics", "379.00"),
    ("SOF-3P", "Sofá tres plazas Nórdico", "Nordic three-seater sofa", "furniture", "799.00"),
    ("MES-ROB", "Mesa de comedor de roble", "Oak dining table", "furniture", "459.00"),
    ("SIL-OF", "Silla de oficina ergonómica", "Ergonomic office chair", "furniture", "219.00"),
    ("COL-150", "Colchón viscoelástico 150x190", "150x190 memory foam mattress", "furniture",
     "349.00"),
]

# name, email, phone, language, orders: [(number, days since delivery or None, [(sku, ext)])]
CUSTOMERS = [
    ("Lucía Martín", "lucia.martin@example.com", "+34 600 111 234", "es", [
        ("PED-000123", 10, [("LAV-8KG", False), ("CAF-EXP", False), ("AUR-BT", False)]),
        ("PED-000130", 400, [("TV-55", False)]),
    ]),
    ("Jorge Ramírez", "jorge.ramirez@example.com", "+52 55 5555 4321", "es", [
        ("PED-000245", 45, [("SOF-3P", False)]),
        ("PED-000250", None, [("SIL-OF", False)]),
    ]),
    ("Emma Wilson", "emma.wilson@example.com", "+44 7700 900 555", "en", [
        ("PED-000311", 5, [("POR-14", False), ("MOV-X", False)]),
    ]),
    ("Carmen Ortega", "carmen.ortega@example.com", "+34 611 222 987", "es", [
        ("PED-000402", 365 * 3 + 200, [("FRI-NF", True)]),
        ("PED-000405", 365 * 3 + 120, [("HOR-PIR", False)]),
    ]),
    ("David Brown", "david.brown@example.com", "+1 202 555 0147", "en", [
        ("PED-000518", 800, [("MES-ROB", False), ("COL-150", False)]),
    ]),
]


def load(session: Session, today: date | None = None) -> int:
    """Insert the demo data if it is not there yet. Returns the number of customers added."""
    today = today or date.today()
    if session.execute(select(Customer.id).where(Customer.is_demo.is_(True))).first():
        return 0
    products = {}
    for sku, es, en, cat, _price in PRODUCTS:
        product = session.execute(select(Product).where(Product.sku == sku)).scalar_one_or_none()
        if product is None:
            product = Product(sku=sku, name_es=es, name_en=en, category=cat, is_demo=True)
            session.add(product)
        products[sku] = product
    prices = {p[0]: int(Decimal(p[4]) * 100) for p in PRODUCTS}
    for name, email, phone, lang, orders in CUSTOMERS:
        customer = Customer(name=name, email=email, phone=phone, language=lang, is_demo=True)
        session.add(customer)
        for number, days, lines in orders:
            delivered = today - timedelta(days=days) if days is not None else None
            ordered = (delivered or today) - timedelta(days=3)
            order = Order(number=number, customer=customer, ordered_at=ordered,
                          delivered_at=delivered, is_demo=True)
            session.add(order)
            for i, (sku, ext) in enumerate(lines, start=1):
                session.add(OrderLine(order=order, line_no=i, product=products[sku],
                                      quantity=1, unit_price_cents=prices[sku],
                                      extended_warranty=ext))
    session.flush()
    return len(CUSTOMERS)


def clear(session: Session) -> None:
    """Remove every demo row (activity, customers, their orders, demo products)."""
    from bot.services import demo_activity

    demo_activity.clear(session)
    demo_orders = select(Order.id).where(Order.is_demo.is_(True)).scalar_subquery()
    for stmt in (
        delete(OrderLine).where(OrderLine.order_id.in_(demo_orders)),
        delete(Order).where(Order.is_demo.is_(True)),
        delete(Customer).where(Customer.is_demo.is_(True)),
        delete(Product).where(Product.is_demo.is_(True)),
    ):
        session.execute(stmt.execution_options(synchronize_session=False))
    session.expire_all()


def show(session: Session, settings: Settings) -> dict:
    """The demo customers in the shape of DESIGN.md's `demo show --json`."""
    customers = session.execute(
        select(Customer).where(Customer.is_demo.is_(True)).order_by(Customer.id)
    ).scalars()
    out = []
    for c in customers:
        orders = []
        for o in c.orders:
            lines = []
            for line in o.lines:
                wu = warranty_until(o.delivered_at, line.extended_warranty, settings)
                ru = return_until(o.delivered_at, settings)
                lines.append({
                    "line_id": line.line_no,
                    "product": line.product.name_es if c.language == "es" else line.product.name_en,
                    "category": line.product.category,
                    "extended_warranty": line.extended_warranty,
                    "warranty_until": wu.isoformat() if wu else None,
                    "return_until": ru.isoformat() if ru else None,
                })
            orders.append({
                "number": o.number,
                "delivered_at": o.delivered_at.isoformat() if o.delivered_at else None,
                "lines": lines,
            })
        out.append({"name": c.name, "email": c.email, "phone": c.phone,
                    "language": c.language, "orders": orders})
    return {"customers": out}
