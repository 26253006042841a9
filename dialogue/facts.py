"""Facts as sentences: what identity-checked tool results say, written for the question that was asked.

Never raw tool output: each renderer picks the fields that answer the intent (a tracking question gets
status, carrier, tracking number and expected date; a refund question gets the refund state) and says them
in plain sentences. `confirmation()` states the effect that actually happened, from the tool's result, not
from the plan. `STATUS_WORDS` lets the composer drop knowledge-base sentences that contradict the facts.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from tools.shop import method_name

STATUS_WORDS: dict[str, tuple[str, ...]] = {
    "label_created": ("label created", "not collected"),
    "pending": ("pending",),
    "processing": ("processing", "being prepared"),
    "shipped": ("shipped", "in transit", "on its way", "handed to the carrier"),
    "out_for_delivery": ("out for delivery",),
    "delivered": ("delivered",),
    "cancelled": ("cancelled", "canceled"),
    "refunded": ("refunded",),
    "payment_failed": ("payment failed", "payment_failed"),
}
"""Order statuses and the words that name them in articles."""


RETRY_ADVICE = (
    "You can retry the payment with another card or method from the order page within 48 hours of ordering; "
    "after that the order lapses and nothing is charged."
)
"""What a failed payment's facts advise; dropped when the known issue the answer cites already says how to retry."""


def consistent(sentence: str, status: str | None, *, strict: bool = False) -> bool:
    """False when the sentence names an order status other than `status` (no tracking text for a cancelled order).

    `strict`: the sentence must name `status` itself (used when the order's facts already answer the question).
    """
    if not status:
        return True
    low = sentence.lower()
    named = {s for s, words in STATUS_WORDS.items() if any(w in low for w in words)}
    if strict:
        return status in named
    return not named or status in named


def about_status(sentence: str, status: str | None) -> bool:
    """The sentence names the order's own status ("Once the order is shipped, ...")."""
    if not status:
        return False
    low = sentence.lower()
    return any(w in low for w in STATUS_WORDS.get(status, ()))


METHOD_WORDS = {"paypal": ("paypal",)}  # the shop takes cards and PayPal


def about_method(sentence: str, method: str | None) -> bool:
    """The sentence names the order's own payment method ("24 hours for PayPal"); cards are the default every
    passage is written for, so they prefer nothing."""
    low = sentence.lower()
    return any(w in low for w in METHOD_WORDS.get(method or "", ()))


def _day(ts: str | None) -> str:
    return str(ts)[:10] if ts else ""


def _money(value: Any, currency: str = "EUR") -> str:
    return f"{currency} {float(value or 0):,.2f}"


def _items(order: dict[str, Any]) -> str:
    items = order.get("items") or []
    if isinstance(items, str):
        return items
    return ", ".join(f"{i['quantity']} x {i['name']}" if i.get("quantity", 1) > 1 else i["name"] for i in items)


def order_sentences(order: dict[str, Any], intent: str | None, today: date) -> list[str]:
    """The order's state, in sentences, leading with what the intent asks about."""
    oid, status, cur = order.get("order_id"), order.get("status"), order.get("currency", "EUR")
    what = f"Order {oid} ({_items(order)}, {_money(order.get('total'), cur)})"
    out: list[str] = []
    if intent == "payment_issue" and status in PAYMENT_LEADS:
        # "Charged twice for order 1006": what we hold for its payment is the answer, not its parcel's tracking.
        return [payment_sentence(order, what)]
    if status == "shipped":
        line = f"{what} has shipped with {order.get('carrier')}, tracking number {order.get('tracking_number')}."
        out.append(line)
        eta = order.get("estimated_delivery")
        if eta:
            late = date.fromisoformat(eta) < today
            out.append(
                f"It was expected on {eta}, so it is running late." if late else f"It is expected on {eta}."
            )
    elif status == "delivered":
        out.append(f"{what} was delivered on {_day(order.get('delivered_at'))}.")
        if intent in RETURN_INTENTS:
            days = order.get("days_since_delivery")
            if order.get("within_return_window"):
                out.append(f"That was {days} days ago, so it is within the 30-day returns window.")
            elif days is not None:
                out.append(f"That was {days} days ago, outside the 30-day returns window.")
    elif status == "cancelled":
        reason = f" (reason given: {order['cancel_reason'][0].lower()}{order['cancel_reason'][1:]})" if order.get(
            "cancel_reason"
        ) else ""
        out.append(f"{what} was cancelled on {_day(order.get('cancelled_at'))}{reason}, so it will not be shipped.")
        if float(order.get("paid") or 0) > 0:
            if float(order.get("refunded") or 0) >= float(order.get("paid") or 0):
                out.append(f"The payment of {_money(order.get('paid'), cur)} has been refunded.")
            elif float(order.get("refunded") or 0) > 0:
                out.append(f"{_money(order.get('refunded'), cur)} of {_money(order.get('paid'), cur)} was refunded.")
            else:
                out.append(f"You paid {_money(order.get('paid'), cur)}, and no refund is recorded for it yet.")
    elif status == "refunded":
        method = method_name((order.get("payment") or {}).get("method"))
        out.append(f"{what} was returned and fully refunded: {_money(order.get('refunded'), cur)} to {method}.")
    elif status == "payment_failed":
        pay = order.get("payment") or {}
        why = f": {pay['error_message'].lower()}, error {pay['error_code']}" if pay.get("error_message") else ""
        out.append(f"The payment for {what[0].lower() + what[1:]} failed{why}, so it has not been processed.")
        out.append(RETRY_ADVICE)
    elif status == "processing":
        out.append(f"{what} is being prepared in our warehouse (processing) and has not shipped yet.")
    elif status == "pending":
        placed = _day(order.get("created_at"))
        out.append(f"{what} is pending: it was placed on {placed} and has not shipped yet.")
    else:
        out.append(f"{what} is {str(status).replace('_', ' ')}.")
    if status in ("pending", "processing") and intent in ("check_cancellation_fee", "change_order", "cancel_order"):
        out.append(f"While it is {status}, it can be cancelled free of charge, with a full refund of any payment.")
    return out


PAYMENT_LEADS = ("pending", "processing", "shipped", "out_for_delivery", "delivered", "label_created")
"""Statuses whose payment question is answered by the payment record alone (a failed, cancelled or refunded order
says what happened to its money in its own status sentences)."""


def payment_sentence(order: dict[str, Any], what: str) -> str:
    """What the shop holds for an order's payment: none yet, one charge (method and day), a hold, or several."""
    pay = order.get("payment") or {}
    cur = order.get("currency", "EUR")
    if not pay:
        return f"{what}: there is no payment recorded for it yet."
    count = order.get("payments_captured")
    day = _day(pay.get("created_at"))
    on = f" on {day}" if day else ""
    method = method_name(pay.get("method"))
    if isinstance(count, int) and count > 1:
        return (f"{what}: we have {count} charges for it, {_money(order.get('paid'), cur)} in total against the "
                f"order's {_money(order.get('total'), cur)}.")
    if pay.get("status") == "authorized":
        since = f" from {day}" if day else ""
        return (f"{what}: the {_money(pay.get('amount'), cur)} on {method}{since} is still a hold (authorised), "
                f"not a charge.")
    if pay.get("status") == "voided":
        return f"{what}: its payment of {_money(pay.get('amount'), cur)}{on} was voided, so nothing was charged."
    return f"{what}: we have one charge for it, {_money(pay.get('amount'), cur)} to {method}{on}."


RETURN_INTENTS = ("get_refund", "check_refund_policy", "check_cancellation_fee", "complaint")


def answers_intent(order: dict[str, Any], intent: str | None) -> bool:
    """The order's own facts settle this kind of question (its returns window; whether cancelling is free)."""
    status = order.get("status")
    if intent in RETURN_INTENTS and status == "delivered" and order.get("days_since_delivery") is not None:
        return True
    if intent == "delivery_period" and order.get("order_id") is not None:
        return True  # "when will my headphones get here?": that order's status and estimate are the answer
    return intent == "check_cancellation_fee" and status in ("pending", "processing")


def refund_sentences(data: dict[str, Any]) -> list[str]:
    oid, cur = data.get("order_id"), data.get("currency", "EUR")
    refunds = data.get("refunds") or []
    if not refunds:
        return [f"There is no refund recorded for order {oid}."]
    out = []
    for r in refunds[-2:]:
        if r.get("status") == "completed":
            out.append(
                f"The refund of {_money(r.get('amount'), cur)} for order {oid} was completed on "
                f"{_day(r.get('completed_at'))}."
            )
        else:
            out.append(
                f"A refund of {_money(r.get('amount'), cur)} for order {oid} is {r.get('status')}; it should reach "
                f"you by {r.get('expected_by')}."
            )
    return out


def invoice_sentences(data: dict[str, Any]) -> list[str]:
    cur = data.get("currency", "EUR")
    vat = round(float(data.get("vat_rate") or 0) * 100)
    line = (
        f"Invoice {data.get('invoice_number')} for order {data.get('order_id')} is for "
        f"{_money(data.get('total'), cur)}, including {_money(data.get('vat_included'), cur)} VAT ({vat} %)."
    )
    extra = f" {_money(data.get('refunded'), cur)} of it has been refunded." if float(data.get("refunded") or 0) else ""
    return [line + extra]


def account_sentences(data: dict[str, Any], intent: str | None) -> list[str]:
    if intent in ("switch_account", "edit_account", "set_up_shipping_address", "change_shipping_address"):
        phone = f" and phone number {data['phone']}" if data.get("phone") else ""
        out = [f"Your account is {data.get('name')}, with email address {data.get('email')}{phone}."]
        default = next((a for a in data.get("addresses") or [] if a.get("is_default")), None)
        if default and intent == "change_shipping_address":
            out.append(
                f"Your default address is {default['line1']}, {default['postcode']} {default['city']}."
            )
        return out
    if intent == "newsletter_subscription":
        state = "subscribed to" if data.get("newsletter_subscribed") else "not subscribed to"
        return [f"Your account is currently {state} the newsletter."]
    return []


def confirmation(tool: str, data: dict[str, Any]) -> str:
    """What was done, from the tool's result (the edited amount, the address actually written)."""
    cur = data.get("currency", "EUR")
    match tool:
        case "cancel_order":
            refund = data.get("refund") or {}
            money = (
                f" A refund of {_money(refund.get('amount'), cur)} to "
                f"{method_name(refund.get('method'))} has been started and should "
                f"reach you by {refund.get('expected_by')}."
                if refund
                else f" {str(data.get('note', '')).capitalize()}."
            )
            return f"Done: order {data.get('order_id')} is cancelled.{money}"
        case "issue_refund":
            return (
                f"Done: I've refunded {_money(data.get('amount'), cur)} for order {data.get('order_id')} to "
                f"{method_name(data.get('method'))}. It should reach you by "
                f"{data.get('expected_by')}."
            )
        case "update_shipping_address":
            return (
                f"Done: order {data.get('order_id')} will now be delivered to {data.get('new_address')} "
                f"(instead of {data.get('old_address')})."
            )
        case "update_account":
            return f"Done: your {data.get('field')} is now {data.get('new_value')}."
        case "delete_account":
            return (
                f"Done: your account is scheduled for deletion and will be erased on {data.get('erase_on')}. "
                "You've been unsubscribed from the newsletter."
            )
        case "set_newsletter_subscription":
            state = "subscribed to" if data.get("subscribed") else "unsubscribed from"
            return f"Done: you're {state} the newsletter." if data.get("changed", True) else (
                f"You were already {state} the newsletter, so nothing changed."
            )
        case "create_ticket":
            return f"I've opened ticket {data.get('reference')} for our support team."
    return "Done."
