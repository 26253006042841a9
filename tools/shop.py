"""The demo shop's typed business tools, with permissions, ownership checks and business rules.

Customer `demo` (Dana Demo, demo@example.com; the CLI's default user) owns orders 1001-1010. Dates are
relative to the seed day ("d-9" = nine days before seeding); orders were placed d-50, d-25, d-20, d-12,
d-9, d-4, d-3, d-2, d-1, d-1 (1001 to 1010). Totals in EUR; delivery costs 4.95 below a 50.00 subtotal.

| id   | status         |  total | items                            | notes                                |
|------|----------------|--------|----------------------------------|--------------------------------------|
| 1001 | delivered      | 123.90 | Commuter Backpack, Volt Charger  | delivered d-45: past 30-day returns  |
| 1002 | refunded       |  39.45 | Hub 7-in-1 USB-C Adapter         | full refund d-6, completed d-2       |
| 1003 | cancelled      |  53.95 | Lumen Desk Lamp                  | paid, cancelled d-19, not refunded   |
| 1004 | delivered      | 393.90 | Vista 4K Monitor, Clarity Webcam | delivered d-8: refundable            |
| 1005 | shipped        |  59.99 | Pebble Bluetooth Speaker         | UPS 1Z999AA10123456784, ETA d-4 late |
| 1006 | shipped        | 129.00 | Aurora Wireless Headphones       | DHL JJD000390010061006, ETA d+2      |
| 1007 | payment_failed |  66.95 | Riser Laptop Stand, Trail Bottle | card declined, error PAY-402         |
| 1008 | processing     | 129.80 | Keystone Keyboard, Glide Mouse   | cancel refunds all; address editable |
| 1009 | processing     |  54.85 | 2 x Trail Insulated Bottle       | cancel refunds all; address editable |
| 1010 | pending        |  79.40 | Volt Charger, Hub USB-C Adapter  | authorised, not captured; no invoice |

Other customers: alice 1011-1013, bob 1014-1016, chen 1017-1018, erin 1019-1020 (erin has no open
orders, so her account can be deleted). Demo also has one open ticket (about 1005) and is subscribed to
the newsletter.

Tools (see `TOOLS`), by declared class (`ToolSpec.kind`) and approval (`ToolSpec.permission`):
- read (no approval): get_order, list_orders, get_account, get_invoice, get_refund_status;
- destructive (needs approval; cannot be undone): cancel_order, issue_refund, delete_account;
- write (needs approval): update_shipping_address, update_account;
- write (no approval, low impact): set_newsletter_subscription, create_ticket.
Call them through `run_tool` with a `Caller` from the runtime (the node is checked against
config/permissions.yaml).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Collection, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from dialogue.slots import EMAIL_RE
from tools.registry import (
    Caller,
    Permission,
    ToolArgs,
    ToolContext,
    ToolFn,
    ToolKind,
    ToolRefusal,
    ToolResult,
    ToolSpec,
    execute,
)
from tools.shop_db import ShopDB, iso, parse_ts

__all__ = [
    "TOOLS",
    "Caller",
    "RETURN_WINDOW_DAYS",
    "ShopDB",
    "ToolResult",
    "ToolSpec",
    "run_tool",
]

RETURN_WINDOW_DAYS = 30
REFUND_DAYS = 10  # refunds reach the customer within this many days
DELETION_GRACE_DAYS = 14
OPEN_STATUSES = ("pending", "processing", "shipped")
TOOLS: dict[str, ToolSpec] = {}


# ------------------------------------------------------------------------------------------ arguments
def _parse_order_id(value: object) -> object:
    if isinstance(value, bool):
        raise PydanticCustomError("order_id", "order id must be a number like 1004 or #1004")
    if isinstance(value, str):
        text = value.strip().removeprefix("#").strip()
        if not re.fullmatch(r"[0-9]{1,9}", text):
            raise PydanticCustomError(
                "order_id",
                "order id must be a number like 1004 or #1004, got '{value}'",
                {"value": value[:40]},
            )
        return int(text)
    return value


OrderId = Annotated[
    int, BeforeValidator(_parse_order_id), Field(gt=0, lt=10**9, description="Order number, e.g. 1004")
]


class NoArgs(ToolArgs):
    """No arguments: the tool works on the calling customer's own data."""


class OrderArgs(ToolArgs):
    """One of the calling customer's orders."""

    order_id: OrderId


class CancelArgs(ToolArgs):
    """The order to cancel and, optionally, why."""

    order_id: OrderId
    reason: str = Field("", max_length=500, description="Why the customer wants to cancel")


class RefundArgs(ToolArgs):
    """The order to refund, and how much of it (all of what remains when no amount is given)."""

    order_id: OrderId
    amount: float | None = Field(
        None, gt=0, le=100_000, description="Amount in EUR; omit for the full remaining refundable amount"
    )
    currency: str | None = Field(
        None, pattern=r"^[A-Z]{3}$", description="Currency the customer named (ISO code); omit for the order's"
    )
    reason: str = Field("", max_length=500, description="Why the refund is issued")

    @field_validator("amount")
    @classmethod
    def _cents(cls, value: float | None) -> float | None:
        exponent = Decimal(str(value)).as_tuple().exponent if value is not None else 0  # a str only for NaN/inf,
        if isinstance(exponent, int) and exponent < -2:  # which the field's gt/le bounds refuse before this
            raise PydanticCustomError("amount", "amount must have at most 2 decimals")
        return value


class AddressArgs(ToolArgs):
    """The unshipped order and its new delivery address."""

    order_id: OrderId
    address: str = Field(
        max_length=200, description="Full new delivery address: street and number, postcode, city, country"
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = " ".join(value.split())
        if len(value) < 10 or not any(ch.isdigit() for ch in value):
            raise PydanticCustomError(
                "address",
                "address must be a full address (at least 10 characters, with a house number or postcode)",
            )
        return value


_PHONE = re.compile(r"\+?[0-9]{7,15}")


class AccountArgs(ToolArgs):
    """One account detail of the calling customer and its new value (validated for that detail)."""

    field: Literal["name", "email", "phone"] = Field(description="Which account detail to change")
    value: str = Field(max_length=200, description="The new value")

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: str, info: ValidationInfo) -> str:
        field = info.data.get("field")
        if field == "email":
            value = value.lower()
            if not EMAIL_RE.fullmatch(value):
                raise PydanticCustomError("email", "not a valid email address")
        elif field == "phone":
            value = re.sub(r"[\s().-]", "", value)
            if not _PHONE.fullmatch(value):
                raise PydanticCustomError("phone", "not a valid phone number (7-15 digits, optional +)")
        elif field == "name":
            value = " ".join(value.split())
            if not 2 <= len(value) <= 100 or not any(ch.isalpha() for ch in value):
                raise PydanticCustomError("name", "not a valid name (2-100 characters with letters)")
        return value


class DeleteArgs(ToolArgs):
    """Why the calling customer wants their account deleted (optional)."""

    reason: str = Field("", max_length=500, description="Why the customer wants to leave")


class NewsletterArgs(ToolArgs):
    """Whether the calling customer gets the newsletter."""

    subscribed: bool = Field(description="True to subscribe, false to unsubscribe")


class TicketArgs(ToolArgs):
    """A ticket for the human support team, about the calling customer (and one of their orders, if any)."""

    subject: str = Field(min_length=3, max_length=200, description="Short summary of the issue")
    body: str = Field(min_length=1, max_length=5000, description="Full description for the support team")
    priority: Literal["low", "normal", "high"] = Field("normal", description="How urgent: low, normal or high")
    order_id: OrderId | None = Field(None, description="Related order number, if any")


# ------------------------------------------------------------------------------------------ registry
def tool(
    name: str,
    kind: ToolKind,
    permission: Permission,
    args_model: type[ToolArgs],
    description: str,
    *,
    when: str,
    check: ToolFn | None = None,
) -> Callable[[ToolFn], ToolFn]:
    """Register a tool function in `TOOLS`: its class, approval, arguments, what it does and when to use it,
    and its preconditions (`check`) for write tools. A declaration that breaks the rules fails at import."""

    def register(fn: ToolFn) -> ToolFn:
        TOOLS[name] = ToolSpec(
            name=name,
            description=" ".join(description.split()),
            permission=permission,
            args_model=args_model,
            fn=fn,
            check=check,
            kind=kind,
            when=" ".join(when.split()),
        )
        return fn

    return register


def run_tool(
    db: ShopDB,
    name: str,
    args: Mapping[str, Any] | None,
    *,
    caller: Caller,
    idempotency_key: str | None = None,
    allowed_tools: Collection[str] | None = None,
    dry_run: bool = False,
) -> ToolResult:
    """Run shop tool `name` for `caller` (node and customer from the runtime); never raises for bad input.

    Bad input and business-rule refusals come back as ok=False with a one-line error. A node calling a tool
    config/permissions.yaml does not grant it raises `tools.registry.ToolNotPermitted` (after auditing it).
    `dry_run` checks a write tool's preconditions and returns a preview of its effect, changing nothing.

    Write tools given an `idempotency_key` store their result in `action_ledger` with the change; the
    same key again returns that result (`data["replayed"] is True`) without changing anything.
    `allowed_tools`, when given, limits the call to the tools a workflow may use.
    """
    return execute(
        db,
        TOOLS,
        name,
        args,
        caller=caller,
        idempotency_key=idempotency_key,
        allowed_tools=allowed_tools,
        dry_run=dry_run,
    )


# ------------------------------------------------------------------------------------------ helpers
def _eur(cents: int) -> float:
    return round(cents / 100, 2)


def _money(cents: int) -> str:
    return f"EUR {cents / 100:,.2f}"


def _own_order(ctx: ToolContext, order_id: int) -> sqlite3.Row:
    row = ctx.conn.execute(
        "SELECT * FROM orders WHERE id = ? AND customer_id = ?", (order_id, ctx.user_id)
    ).fetchone()
    if row is None:  # another customer's order answers exactly like a missing one
        raise ToolRefusal(f"order {order_id} was not found for this customer")
    return row


def _payment(ctx: ToolContext, order_id: int) -> sqlite3.Row | None:
    return ctx.conn.execute(
        "SELECT * FROM payments WHERE order_id = ? ORDER BY id DESC LIMIT 1", (order_id,)
    ).fetchone()


def _paid_refunded(ctx: ToolContext, order_id: int) -> tuple[int, int]:
    """Cents captured and cents refunded for the order."""
    paid, _ = _captured(ctx, order_id)
    return paid, _refunded(ctx, order_id)


def _captured(ctx: ToolContext, order_id: int) -> tuple[int, int]:
    """Cents captured for the order and how many payments were (a double charge shows as two), in one query."""
    paid, count = ctx.conn.execute(
        "SELECT COALESCE(SUM(amount_cents), 0), COUNT(*) FROM payments WHERE order_id = ? AND status = 'captured'",
        (order_id,),
    ).fetchone()
    return int(paid), int(count)


def _refunded(ctx: ToolContext, order_id: int) -> int:
    row = ctx.conn.execute("SELECT COALESCE(SUM(amount_cents), 0) FROM refunds WHERE order_id = ?", (order_id,))
    return int(row.fetchone()[0])


def _items(ctx: ToolContext, order_id: int) -> list[dict[str, Any]]:
    rows = ctx.conn.execute(
        "SELECT p.sku, p.name, i.quantity, i.unit_price_cents FROM order_items i JOIN products p "
        "ON p.id = i.product_id WHERE i.order_id = ? ORDER BY i.id",
        (order_id,),
    ).fetchall()
    return [
        {
            "sku": r["sku"],
            "name": r["name"],
            "quantity": r["quantity"],
            "unit_price": _eur(r["unit_price_cents"]),
            "line_total": _eur(r["unit_price_cents"] * r["quantity"]),
        }
        for r in rows
    ]


def _days_since_delivery(ctx: ToolContext, order: sqlite3.Row) -> int | None:
    if not order["delivered_at"]:
        return None
    return (ctx.now.date() - parse_ts(order["delivered_at"]).date()).days


def _refund_rows(ctx: ToolContext, order_id: int) -> list[dict[str, Any]]:
    rows = ctx.conn.execute("SELECT * FROM refunds WHERE order_id = ? ORDER BY id", (order_id,)).fetchall()
    return [
        {
            "refund_id": r["id"],
            "amount": _eur(r["amount_cents"]),
            "status": r["status"],
            "reason": r["reason"],
            "created_at": r["created_at"],
            "expected_by": r["expected_by"],
            "completed_at": r["completed_at"],
        }
        for r in rows
    ]


def _insert_refund(
    ctx: ToolContext, order_id: int, payment_id: int, cents: int, reason: str
) -> dict[str, Any]:
    expected = (ctx.now + timedelta(days=REFUND_DAYS)).date().isoformat()
    cur = ctx.conn.execute(
        "INSERT INTO refunds (order_id, payment_id, amount_cents, reason, status, created_at, expected_by) "
        "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
        (order_id, payment_id, cents, reason, iso(ctx.now), expected),
    )
    return {"refund_id": cur.lastrowid, "amount": _eur(cents), "status": "pending", "expected_by": expected}


# ------------------------------------------------------------------------------------------ read tools
@tool(
    "get_order",
    "read",
    "read",
    OrderArgs,
    """Look up one of the customer's orders: status, items, totals,
      delivery address, carrier and tracking number, payment state and what is still refundable.""",
    when="""the customer asks about one order they name or that the conversation is about: where it is, what is
      in it, what was paid or can still be refunded. Not for a list of orders (list_orders).""",
)
def get_order(ctx: ToolContext, args: OrderArgs) -> dict[str, Any]:
    """Details of one order owned by the caller."""
    order = _own_order(ctx, args.order_id)
    payment = _payment(ctx, args.order_id)
    (paid, captured), refunded = _captured(ctx, args.order_id), _refunded(ctx, args.order_id)
    days = _days_since_delivery(ctx, order)
    return {
        "order_id": order["id"],
        "status": order["status"],
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
        "currency": order["currency"],
        "items": _items(ctx, args.order_id),
        "subtotal": _eur(order["subtotal_cents"]),
        "shipping": _eur(order["shipping_cents"]),
        "total": _eur(order["total_cents"]),
        "shipping_address": order["shipping_address"],
        "carrier": order["carrier"],
        "tracking_number": order["tracking_number"],
        "estimated_delivery": order["estimated_delivery"],
        "shipped_at": order["shipped_at"],
        "delivered_at": order["delivered_at"],
        "cancelled_at": order["cancelled_at"],
        "cancel_reason": order["cancel_reason"],
        "payment": None
        if payment is None
        else {
            "method": payment["method"],
            "status": payment["status"],
            "amount": _eur(payment["amount_cents"]),
            "error_code": payment["error_code"],
            "error_message": payment["error_message"],
            "created_at": payment["created_at"],
        },
        "payments_captured": captured,
        "paid": _eur(paid),
        "refunded": _eur(refunded),
        "refundable": _eur(max(paid - refunded, 0)),
        "days_since_delivery": days,
        "within_return_window": None if days is None else days <= RETURN_WINDOW_DAYS,
    }


@tool(
    "list_orders",
    "read",
    "read",
    NoArgs,
    "List all of the customer's orders, newest first, with status and total.",
    when="""the customer asks about their orders in general, or which order they mean is unclear. Not for the
      details of one known order (get_order).""",
)
def list_orders(ctx: ToolContext, args: NoArgs) -> dict[str, Any]:
    """Summaries of the caller's orders."""
    rows = ctx.conn.execute(
        "SELECT o.id, o.status, o.created_at, o.total_cents, o.currency, o.carrier, i.quantity, p.name "
        "FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id "
        "WHERE o.customer_id = ? ORDER BY o.created_at DESC, o.id DESC, i.id",
        (ctx.user_id,),
    ).fetchall()
    by_id: dict[int, dict[str, Any]] = {}
    for r in rows:  # items in the order they were added, on every SQL engine
        order = by_id.setdefault(
            r["id"],
            {
                "order_id": r["id"],
                "status": r["status"],
                "created_at": r["created_at"],
                "total": _eur(r["total_cents"]),
                "currency": r["currency"],
                "items": [],
                "item_count": 0,
                "carrier": r["carrier"],
            },
        )
        order["items"].append(f"{r['quantity']} x {r['name']}" if r["quantity"] > 1 else r["name"])
        order["item_count"] += r["quantity"]
    orders = [{**o, "items": ", ".join(o["items"])} for o in by_id.values()]
    return {"orders": orders, "count": len(orders)}


@tool(
    "get_account",
    "read",
    "read",
    NoArgs,
    """Show the customer's account: name, email, phone, addresses,
      newsletter subscription, number of orders and open tickets.""",
    when="""the customer asks what their account holds (contact details, addresses, newsletter, tickets), or
      before changing a detail. Not to change anything (update_account).""",
)
def get_account(ctx: ToolContext, args: NoArgs) -> dict[str, Any]:
    """The caller's account profile."""
    c = ctx.conn.execute("SELECT * FROM customers WHERE id = ?", (ctx.user_id,)).fetchone()
    addresses = ctx.conn.execute(
        "SELECT label, line1, postcode, city, country, is_default FROM addresses "
        "WHERE customer_id = ? ORDER BY id",
        (ctx.user_id,),
    ).fetchall()
    news = ctx.conn.execute(
        "SELECT subscribed FROM newsletter WHERE customer_id = ?", (ctx.user_id,)
    ).fetchone()
    n_orders = ctx.conn.execute(
        "SELECT COUNT(*) FROM orders WHERE customer_id = ?", (ctx.user_id,)
    ).fetchone()[0]
    n_tickets = ctx.conn.execute(
        "SELECT COUNT(*) FROM tickets WHERE customer_id = ? AND status != 'closed'", (ctx.user_id,)
    ).fetchone()[0]
    return {
        "customer_id": c["id"],
        "name": c["name"],
        "email": c["email"],
        "phone": c["phone"],
        "member_since": c["created_at"],
        "status": c["status"],
        "deletion_requested_at": c["deletion_requested_at"],
        "addresses": [{**dict(a), "is_default": bool(a["is_default"])} for a in addresses],
        "newsletter_subscribed": bool(news and news["subscribed"]),
        "order_count": n_orders,
        "open_tickets": n_tickets,
    }


@tool(
    "get_invoice",
    "read",
    "read",
    OrderArgs,
    """Get the invoice of a paid order: invoice number, lines,
      VAT included, totals, amount paid and refunded. Not available before payment is taken.""",
    when="""the customer asks for the invoice, VAT or the amounts billed of one paid order. Not for refund
      progress (get_refund_status).""",
)
def get_invoice(ctx: ToolContext, args: OrderArgs) -> dict[str, Any]:
    """Invoice of one paid order owned by the caller."""
    order = _own_order(ctx, args.order_id)
    paid, refunded = _paid_refunded(ctx, args.order_id)
    if paid == 0:
        raise ToolRefusal(
            f"no invoice for order {order['id']}: it is {order['status']} and no payment has been "
            "taken (invoices are issued once payment is confirmed)"
        )
    c = ctx.conn.execute("SELECT name FROM customers WHERE id = ?", (ctx.user_id,)).fetchone()
    total = order["total_cents"]
    net = round(total / Decimal("1.21"))
    return {
        "invoice_number": f"INV-{order['created_at'][:4]}-{order['id']}",
        "order_id": order["id"],
        "issued_at": order["created_at"],
        "bill_to": {"name": c["name"], "address": order["shipping_address"]},
        "lines": _items(ctx, args.order_id),
        "subtotal": _eur(order["subtotal_cents"]),
        "shipping": _eur(order["shipping_cents"]),
        "total": _eur(total),
        "vat_rate": 0.21,
        "vat_included": _eur(total - net),
        "net_amount": _eur(net),
        "currency": order["currency"],
        "paid": _eur(paid),
        "refunded": _eur(refunded),
    }


@tool(
    "get_refund_status",
    "read",
    "read",
    OrderArgs,
    """Check refunds of an order: each refund's amount,
      status (pending or completed), expected date, plus the total refunded and what is still refundable.""",
    when="the customer asks whether, when or how much of an order was refunded. Not to start a refund (issue_refund).",
)
def get_refund_status(ctx: ToolContext, args: OrderArgs) -> dict[str, Any]:
    """Refunds recorded for one order owned by the caller."""
    order = _own_order(ctx, args.order_id)
    paid, refunded = _paid_refunded(ctx, args.order_id)
    refunds = _refund_rows(ctx, args.order_id)
    return {
        "order_id": order["id"],
        "order_status": order["status"],
        "refunds": refunds,
        "has_refund": bool(refunds),
        "paid": _eur(paid),
        "refunded_total": _eur(refunded),
        "refundable": _eur(max(paid - refunded, 0)),
        "currency": order["currency"],
    }


# ------------------------------------------------------------------------------------------ approval tools
# Each write tool declares its preconditions once, in a `check_*` function that raises ToolRefusal (with what the
# customer can do instead, and the article that says so) or returns a preview of the effect. The registry runs it
# alone as a dry run before approval, and again in the write transaction right before the tool itself.
METHOD_NAMES = {"card": "your card", "paypal": "your PayPal account"}
"""Payment methods as the customer reads them."""


def method_name(method: str | None) -> str:
    """'your card', 'your PayPal account', or 'the original payment method' for anything else."""
    return METHOD_NAMES.get(method or "", "the original payment method")
_REFUSE_OR_RETURN = (
    "You can refuse the delivery: the parcel comes back to us and we refund the items once it arrives (the "
    f"delivery charge is kept). Or accept it and return it within {RETURN_WINDOW_DAYS} days of delivery, free of "
    "charge via a drop-off point."
)
_RETURN_INSTEAD = (
    f"You can return it within {RETURN_WINDOW_DAYS} days of delivery: start the return under Account > Orders and "
    "the refund follows once the parcel is back with us."
)


def _method(ctx: ToolContext, order_id: int) -> str:
    payment = _payment(ctx, order_id)
    return method_name(payment["method"] if payment else None)


def check_cancel(ctx: ToolContext, args: CancelArgs) -> dict[str, Any]:
    """Cancellable: the caller's order, pending / processing / payment_failed. Preview: items and money back."""
    order = _own_order(ctx, args.order_id)
    oid, status = order["id"], order["status"]
    if status == "shipped":
        raise ToolRefusal(
            f"order {oid} has already shipped, so it can no longer be cancelled",
            code="already_shipped",
            instead=_REFUSE_OR_RETURN,
            article="kb-cancel-order",
        )
    if status == "delivered":
        days = _days_since_delivery(ctx, order)
        if days is not None and days > RETURN_WINDOW_DAYS:
            raise ToolRefusal(
                f"order {oid} was delivered {days} days ago, so it can't be cancelled, and the "
                f"{RETURN_WINDOW_DAYS}-day returns window has passed",
                code="already_delivered",
                instead="If an item is faulty, it may still be covered by the legal guarantee: tell me what is wrong "
                "and I'll pass it to a colleague.",
                article="kb-faulty-damaged-items",
            )
        raise ToolRefusal(
            f"order {oid} was delivered and cannot be cancelled",
            code="already_delivered",
            instead=_RETURN_INSTEAD,
            article="kb-cancel-order",
        )
    if status in ("cancelled", "refunded"):
        raise ToolRefusal(f"order {oid} is already {status}", code=f"already_{status}", article="kb-cancel-order")
    paid, refunded = _paid_refunded(ctx, oid)
    payment = _payment(ctx, oid)
    if paid - refunded > 0:
        money = f"{_money(paid - refunded)} is refunded in full to {_method(ctx, oid)}"
    elif payment is not None and payment["status"] == "authorized":
        money = "the card authorisation is released; nothing is charged"
    else:
        money = "no payment was taken, so nothing is charged"
    return {
        "order_id": oid,
        "status": status,
        "items": [f"{i['quantity']} x {i['name']}" for i in _items(ctx, oid)],
        "total": _money(order["total_cents"]),
        "refund_amount": _eur(max(paid - refunded, 0)),
        "money": money,
    }


@tool(
    "cancel_order",
    "destructive",
    "needs_approval",
    CancelArgs,
    """Cancel a pending, processing or payment_failed order.
      Any captured payment is refunded in full automatically. Shipped or delivered orders cannot be
      cancelled (they can be returned after delivery).""",
    check=check_cancel,
    when="""the customer wants an order that has not shipped cancelled. Not for a shipped or delivered order
      (that is a return or a refund).""",
)
def cancel_order(ctx: ToolContext, args: CancelArgs) -> dict[str, Any]:
    """Cancel the order; void an authorisation or refund a captured payment in full."""
    order = _own_order(ctx, args.order_id)
    oid, status = order["id"], order["status"]
    payment = _payment(ctx, oid)
    refund = None
    note = "no payment was taken"
    if payment is not None and payment["status"] == "authorized":
        ctx.conn.execute("UPDATE payments SET status = 'voided' WHERE id = ?", (payment["id"],))
        note = "the card authorisation was released; nothing was charged"
    paid, refunded = _paid_refunded(ctx, oid)
    if paid - refunded > 0 and payment is not None:
        refund = _insert_refund(ctx, oid, payment["id"], paid - refunded, args.reason or "order cancelled")
        refund["method"] = payment["method"]
        note = f"a refund of {_money(paid - refunded)} to {_method(ctx, oid)} was started"
    ctx.conn.execute(
        "UPDATE orders SET status = 'cancelled', cancelled_at = ?, cancel_reason = ?, updated_at = ? "
        "WHERE id = ?",
        (iso(ctx.now), args.reason or None, iso(ctx.now), oid),
    )
    return {"order_id": oid, "status": "cancelled", "previous_status": status, "refund": refund, "note": note}


def check_refund(ctx: ToolContext, args: RefundArgs) -> dict[str, Any]:
    """Refundable: delivered within the window or cancelled after payment, something left, in the order's currency."""
    order = _own_order(ctx, args.order_id)
    oid, status = order["id"], order["status"]
    paid, refunded = _paid_refunded(ctx, oid)
    if status in ("pending", "processing"):
        raise ToolRefusal(
            f"order {oid} is {status} and has not shipped yet, so there is nothing to refund yet",
            code="not_shipped",
            instead="You can cancel it free of charge instead; cancelling refunds any payment in full.",
            article="kb-cancel-order",
        )
    if status == "shipped":
        raise ToolRefusal(
            f"order {oid} has shipped and is still on its way, so it can't be refunded yet",
            code="in_transit",
            instead=_REFUSE_OR_RETURN,
            article="kb-how-to-return",
        )
    if status == "payment_failed" or paid == 0:
        raise ToolRefusal(
            f"order {oid} was never paid ({status.replace('_', ' ')}), so there is nothing to refund",
            code="never_paid",
            article="kb-payment-problems",
        )
    if paid - refunded <= 0:
        raise ToolRefusal(
            f"order {oid} has already been fully refunded ({_money(refunded)})",
            code="fully_refunded",
            instead="The refund reaches your account within a few business days of completion; "
            "ask me to check its status if it has not arrived.",
            article="kb-track-refund",
        )
    days = _days_since_delivery(ctx, order)
    if status == "delivered" and days is not None and days > RETURN_WINDOW_DAYS:
        raise ToolRefusal(
            f"order {oid} was delivered {days} days ago, outside the {RETURN_WINDOW_DAYS}-day returns window, "
            "so it can no longer be refunded",
            code="outside_return_window",
            instead="If an item is faulty, it may still be covered by the legal guarantee: tell me what is "
            "wrong and I'll pass it to a colleague.",
            article="kb-faulty-damaged-items",
        )
    if args.currency is not None and args.currency != order["currency"]:
        raise ToolRefusal(
            f"order {oid} was paid in {order['currency']}, and refunds are made in the order's currency, "
            f"not {args.currency}",
            code="currency_mismatch",
            instead=f"Up to {_money(paid - refunded)} can still be refunded on this order.",
            article="kb-refund-timing",
        )
    remaining = paid - refunded
    cents = remaining if args.amount is None else int(Decimal(str(args.amount)) * 100)
    if cents > remaining:
        raise ToolRefusal(
            f"a refund of {_money(cents)} exceeds the {_money(remaining)} still refundable on order {oid}",
            code="exceeds_refundable",
            instead=f"I can refund up to {_money(remaining)} on this order.",
            article="kb-how-to-return",
        )
    return {
        "order_id": oid,
        "amount": _eur(cents),
        "currency": order["currency"],
        "method": (_payment(ctx, oid) or {"method": "card"})["method"],
        "refundable_before": _eur(remaining),
        "full": cents == remaining,
    }


@tool(
    "issue_refund",
    "destructive",
    "needs_approval",
    RefundArgs,
    f"""Refund a paid order that was delivered (within
      {RETURN_WINDOW_DAYS} days) or cancelled after payment. Give an amount in EUR for a partial refund or
      omit it for the full remaining amount.""",
    check=check_refund,
    when="""the customer wants money back for a delivered order within the returns window, or for a cancelled
      order that was paid. Not to check on a refund already made (get_refund_status).""",
)
def issue_refund(ctx: ToolContext, args: RefundArgs) -> dict[str, Any]:
    """Refund all or part of what was paid and not yet refunded (preconditions in `check_refund`)."""
    order = _own_order(ctx, args.order_id)
    oid, status = order["id"], order["status"]
    paid, refunded = _paid_refunded(ctx, oid)
    remaining = paid - refunded
    cents = remaining if args.amount is None else int(Decimal(str(args.amount)) * 100)
    payment = ctx.conn.execute(
        "SELECT id, method FROM payments WHERE order_id = ? AND status = 'captured' ORDER BY id DESC LIMIT 1", (oid,)
    ).fetchone()
    refund = _insert_refund(ctx, oid, payment["id"], cents, args.reason)
    new_status = "refunded" if cents == remaining and status == "delivered" else status
    ctx.conn.execute(
        "UPDATE orders SET status = ?, updated_at = ? WHERE id = ?", (new_status, iso(ctx.now), oid)
    )
    return {
        "order_id": oid,
        **refund,
        "currency": order["currency"],
        "method": payment["method"],
        "refunded_total": _eur(refunded + cents),
        "refundable": _eur(remaining - cents),
        "order_status": new_status,
    }


def check_address(ctx: ToolContext, args: AddressArgs) -> dict[str, Any]:
    """Changeable: the caller's order before it ships. Preview: old and new address."""
    order = _own_order(ctx, args.order_id)
    oid, status = order["id"], order["status"]
    if status == "shipped":
        raise ToolRefusal(
            f"order {oid} has already shipped, so its delivery address can no longer be changed",
            code="already_shipped",
            instead="You can use the carrier's redirect service from the tracking page where it is offered, have "
            "it delivered to a neighbour or pick-up point, or refuse the parcel so it returns to us and we refund "
            "the items.",
            article="kb-change-shipping-address",
        )
    if status not in ("pending", "processing"):
        raise ToolRefusal(
            f"order {oid} is {status.replace('_', ' ')}, and the delivery address can only be changed before "
            "the order ships (pending or processing)",
            code=f"status_{status}",
            instead="To use the new address for future orders, add it to your address book under Account > "
            "Addresses.",
            article="kb-change-shipping-address",
        )
    return {"order_id": oid, "old_address": order["shipping_address"], "new_address": args.address}


@tool(
    "update_shipping_address",
    "write",
    "needs_approval",
    AddressArgs,
    """Change the delivery address of an order
      that has not shipped yet (pending or processing).""",
    check=check_address,
    when="the customer wants an unshipped order delivered to another address. Not for the account's saved addresses.",
)
def update_shipping_address(ctx: ToolContext, args: AddressArgs) -> dict[str, Any]:
    """Replace the delivery address of an unshipped order (preconditions in `check_address`)."""
    order = _own_order(ctx, args.order_id)
    ctx.conn.execute(
        "UPDATE orders SET shipping_address = ?, updated_at = ? WHERE id = ?",
        (args.address, iso(ctx.now), order["id"]),
    )
    return {"order_id": order["id"], "old_address": order["shipping_address"], "new_address": args.address}


def check_account(ctx: ToolContext, args: AccountArgs) -> dict[str, Any]:
    """Changeable: a valid new value (the argument model checks it); an email not used by another account."""
    if args.field == "email":
        other = ctx.conn.execute(
            "SELECT 1 FROM customers WHERE email = ? AND id != ?", (args.value, ctx.user_id)
        ).fetchone()
        if other:
            raise ToolRefusal(
                "that email address is already used by another account",
                code="email_in_use",
                instead="Use another address, or sign in to the other account and change or close it first.",
                article="kb-ki-acc-409-email-change-conflict",
            )
    old = ctx.conn.execute(f"SELECT {args.field} FROM customers WHERE id = ?", (ctx.user_id,)).fetchone()[0]
    if old == args.value:
        raise ToolRefusal(f"your {args.field} is already {args.value}", code="unchanged", article="kb-edit-account")
    return {"field": args.field, "old_value": old, "new_value": args.value}


@tool(
    "update_account",
    "write",
    "needs_approval",
    AccountArgs,
    """Change the customer's name, email address or
      phone number.""",
    check=check_account,
    when="""the customer wants their name, email address or phone number changed. Not for a delivery address
      (update_shipping_address).""",
)
def update_account(ctx: ToolContext, args: AccountArgs) -> dict[str, Any]:
    """Change one account field (preconditions in `check_account`)."""
    old = ctx.conn.execute(f"SELECT {args.field} FROM customers WHERE id = ?", (ctx.user_id,)).fetchone()[0]
    ctx.conn.execute(f"UPDATE customers SET {args.field} = ? WHERE id = ?", (args.value, ctx.user_id))
    return {"field": args.field, "old_value": old, "new_value": args.value, "changed": old != args.value}


def check_delete(ctx: ToolContext, args: DeleteArgs) -> dict[str, Any]:
    """Deletable: not already requested, no open order, no pending refund."""
    c = ctx.conn.execute("SELECT status FROM customers WHERE id = ?", (ctx.user_id,)).fetchone()
    if c["status"] == "deletion_requested":
        raise ToolRefusal("account deletion has already been requested", code="already_requested",
                          article="kb-delete-account")
    open_orders = [
        r[0]
        for r in ctx.conn.execute(
            f"SELECT id FROM orders WHERE customer_id = ? "
            f"AND status IN ({','.join('?' * len(OPEN_STATUSES))}) ORDER BY id",
            (ctx.user_id, *OPEN_STATUSES),
        )
    ]
    if open_orders:
        raise ToolRefusal(
            "the account cannot be deleted while orders are pending, processing or shipped: "
            + ", ".join(map(str, open_orders)),
            code="open_orders",
            instead="Once those orders are delivered or cancelled, ask again and I'll start the deletion.",
            article="kb-delete-account",
        )
    pending = [
        r[0]
        for r in ctx.conn.execute(
            "SELECT DISTINCT r.order_id FROM refunds r JOIN orders o ON o.id = r.order_id "
            "WHERE o.customer_id = ? AND r.status = 'pending' ORDER BY r.order_id",
            (ctx.user_id,),
        )
    ]
    if pending:
        raise ToolRefusal(
            "the account cannot be deleted while refunds are still pending for orders: "
            + ", ".join(map(str, pending)),
            code="pending_refunds",
            instead="Once the refunds have reached you, ask again and I'll start the deletion.",
            article="kb-delete-account",
        )
    erase_on = (ctx.now + timedelta(days=DELETION_GRACE_DAYS)).date().isoformat()
    return {"erase_on": erase_on, "grace_days": DELETION_GRACE_DAYS}


@tool(
    "delete_account",
    "destructive",
    "needs_approval",
    DeleteArgs,
    f"""Request deletion of the customer's account
      ({DELETION_GRACE_DAYS}-day grace period; newsletter unsubscribed at once). Refused while any order is
      pending, processing or shipped, or a refund is still pending.""",
    check=check_delete,
    when="""the customer wants their account closed and their data erased. Not to unsubscribe from the
      newsletter only (set_newsletter_subscription).""",
)
def delete_account(ctx: ToolContext, args: DeleteArgs) -> dict[str, Any]:
    """Start account deletion (preconditions in `check_delete`)."""
    ctx.conn.execute(
        "UPDATE customers SET status = 'deletion_requested', deletion_requested_at = ?, "
        "deletion_reason = ? WHERE id = ?",
        (iso(ctx.now), args.reason, ctx.user_id),
    )
    ctx.conn.execute(
        "INSERT INTO newsletter (customer_id, subscribed, updated_at) VALUES (?, 0, ?) "
        "ON CONFLICT(customer_id) DO UPDATE SET subscribed = 0, updated_at = excluded.updated_at",
        (ctx.user_id, iso(ctx.now)),
    )
    erase_on = (ctx.now + timedelta(days=DELETION_GRACE_DAYS)).date().isoformat()
    return {"status": "deletion_requested", "erase_on": erase_on, "newsletter_subscribed": False}

# ------------------------------------------------------------------------------------------ low-impact writes
@tool(
    "set_newsletter_subscription",
    "write",
    "write",
    NewsletterArgs,
    "Subscribe the customer to, or unsubscribe them from, the newsletter.",
    when="the customer asks to subscribe to or unsubscribe from the newsletter.",
)
def set_newsletter_subscription(ctx: ToolContext, args: NewsletterArgs) -> dict[str, Any]:
    """Set the newsletter flag."""
    row = ctx.conn.execute(
        "SELECT subscribed FROM newsletter WHERE customer_id = ?", (ctx.user_id,)
    ).fetchone()
    ctx.conn.execute(
        "INSERT INTO newsletter (customer_id, subscribed, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(customer_id) DO UPDATE SET subscribed = excluded.subscribed, "
        "updated_at = excluded.updated_at",
        (ctx.user_id, int(args.subscribed), iso(ctx.now)),
    )
    return {
        "subscribed": args.subscribed,
        "changed": row is None or bool(row["subscribed"]) != args.subscribed,
    }


@tool(
    "create_ticket",
    "write",
    "write",
    TicketArgs,
    """Open a support ticket for the human team, optionally about
      one of the customer's orders.""",
    when="""the customer's problem needs the human support team and nothing else here can solve it. Not to
      escalate the conversation itself (that is the escalate node).""",
)
def create_ticket(ctx: ToolContext, args: TicketArgs) -> dict[str, Any]:
    """Create an open ticket."""
    if args.order_id is not None:
        _own_order(ctx, args.order_id)
    cur = ctx.conn.execute(
        "INSERT INTO tickets (customer_id, order_id, subject, body, priority, status, created_at) "
        "VALUES (?, ?, ?, ?, ?, 'open', ?)",
        (ctx.user_id, args.order_id, args.subject, args.body, args.priority, iso(ctx.now)),
    )
    ticket_id = int(cur.lastrowid or 0)
    return {
        "ticket_id": ticket_id,
        "reference": f"SB-{ticket_id:06d}",
        "status": "open",
        "priority": args.priority,
        "subject": args.subject,
        "order_id": args.order_id,
    }
