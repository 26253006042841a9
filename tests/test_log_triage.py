"""Tests for tools.log_triage: extraction, line selection, severity and known-issue matching."""

from __future__ import annotations

import pytest

from tools.log_triage import Triage, match_known_issues, triage

PY_TRACE = """\
Traceback (most recent call last):
  File "/srv/shop/checkout/views.py", line 88, in submit
    result = gateway.charge(order, amount)
  File "/srv/shop/payments/gateway.py", line 141, in charge
    resp = self._session.post(url, json=payload, timeout=10)
  File "/srv/shop/payments/client.py", line 57, in post
    raise PaymentDeclinedError(code)
payments.errors.PaymentDeclinedError: PAY-402 card declined by issuer"""

JAVA_TRACE = """\
2025-03-04 10:15:31.204 ERROR [inventory-sync] c.s.i.SyncJob - stock sync failed
java.net.SocketTimeoutException: Read timed out
\tat java.base/java.net.SocketInputStream.socketRead0(Native Method)
\tat java.base/java.net.SocketInputStream.read(SocketInputStream.java:168)
\tat com.switchboard.inventory.WarehouseClient.fetch(WarehouseClient.java:92)
Caused by: java.io.IOException: connection reset by peer
\tat com.switchboard.inventory.WarehouseClient.open(WarehouseClient.java:40)"""

JS_ERROR = """\
Uncaught TypeError: Cannot read properties of undefined (reading 'total')
    at renderCart (https://shop.example/static/cart.js:211:17)
    at HTMLButtonElement.onClick (https://shop.example/static/cart.js:98:5)
net::ERR_CONNECTION_RESET while loading /api/cart"""

NGINX = [
    '2025/03/04 10:16:02 [error] 1234#0: *5521 upstream prematurely closed connection while reading response '
    'header from upstream, client: 10.0.0.7, server: shop, request: "POST /api/checkout HTTP/1.1", '
    'upstream: "http://127.0.0.1:8081/checkout"',
    '10.0.0.7 - - [04/Mar/2025:10:16:02 +0000] "POST /api/checkout HTTP/1.1" 502 157 "-" "Mozilla/5.0"',
    '2025/03/04 10:16:40 [error] 1234#0: *5530 upstream timed out (110: Connection timed out) while reading '
    'upstream, client: 10.0.0.9, server: shop, request: "GET /api/invoice/1004 HTTP/1.1"',
]


def _noise(i: int) -> str:
    return f"2025-03-04 10:{i // 60:02d}:{i % 60:02d}.000 INFO [web] GET /products/{i} 200 in {5 + i % 7}ms"


def build_big_log() -> str:
    """A realistic 300-line log: mostly INFO noise with the incidents spread through it."""
    lines = [_noise(i) for i in range(300)]
    blocks = {
        20: ["2025-03-04 10:00:20.100 WARN [checkout] retrying payment: HTTP 504 from gateway, status=504"],
        60: PY_TRACE.splitlines(),
        130: JAVA_TRACE.splitlines(),
        200: JS_ERROR.splitlines(),
        240: NGINX,
        270: ["2025-03-04 10:04:30.000 ERROR [worker] ECONNREFUSED 127.0.0.1:6379 (redis) CHK-500 raised"],
    }
    for at in sorted(blocks, reverse=True):
        lines[at:at] = blocks[at]
    return "\n".join(lines[:300 + sum(len(b) for b in blocks.values())])


BIG_LOG = build_big_log()


def test_big_log_is_300_plus_lines() -> None:
    assert len(BIG_LOG.splitlines()) >= 300


def test_extracts_exact_codes_exceptions_statuses() -> None:
    t = triage("Checkout broke again, log below:\n" + BIG_LOG)
    assert t.contains_log
    assert t.error_codes == ["PAY-402", "ERR_CONNECTION_RESET", "ECONNREFUSED", "CHK-500"]
    assert t.exceptions == [
        "payments.errors.PaymentDeclinedError",
        "java.net.SocketTimeoutException",
        "java.io.IOException",
        "TypeError",
    ]
    assert t.http_statuses == [502, 504]
    assert t.timeouts
    assert "timed out" in t.timeout_phrases
    assert t.severity == "high"
    assert "PAY-402" in t.summary and "\n" not in t.summary


@pytest.mark.parametrize("max_lines", [40, 12, 6])
def test_relevant_lines_are_bounded_and_keep_final_exception(max_lines: int) -> None:
    t = triage(BIG_LOG, max_lines=max_lines)
    assert 0 < len(t.relevant_lines) <= max_lines
    # every trace's final exception line survives any cut, whatever else is dropped
    assert "payments.errors.PaymentDeclinedError: PAY-402 card declined by issuer" in t.relevant_lines
    assert "java.net.SocketTimeoutException: Read timed out" in t.relevant_lines
    assert any(line.startswith("Uncaught TypeError") for line in t.relevant_lines)
    if max_lines >= 12:  # then the traceback's last frame and its code line too
        assert any("client.py" in line and "line 57" in line for line in t.relevant_lines)
        assert "    raise PaymentDeclinedError(code)" in t.relevant_lines
    # original order is kept
    positions = [BIG_LOG.splitlines().index(line) for line in t.relevant_lines]
    assert positions == sorted(positions)


def test_relevant_lines_cover_first_and_last_error() -> None:
    t = triage(BIG_LOG, max_lines=40)
    assert any("HTTP 504 from gateway" in line for line in t.relevant_lines)  # first error
    assert any("ECONNREFUSED" in line for line in t.relevant_lines)  # last error
    assert "java.net.SocketTimeoutException: Read timed out" in t.relevant_lines
    assert any(line.startswith("Uncaught TypeError") for line in t.relevant_lines)
    noise = [line for line in t.relevant_lines if " INFO [web] GET /products/" in line]
    assert len(noise) <= 12  # only as neighbours of errors


def test_small_budget_keeps_no_noise() -> None:
    t = triage(BIG_LOG, max_lines=12)
    assert len(t.relevant_lines) == 12
    assert not any(" INFO [web] GET /products/" in line for line in t.relevant_lines)


def test_shop_codes_and_reason_phrase() -> None:
    t = triage("Paying fails: PAY-3DS-TIMEOUT, and the invoice shows INV-PDF-500 / 503 Service Unavailable")
    assert t.error_codes == ["PAY-3DS-TIMEOUT", "INV-PDF-500"]
    assert t.http_statuses == [503]
    assert t.timeouts


def test_plain_message_is_low_and_has_no_codes() -> None:
    t = triage("Hi, where is my order #1004? I paid 49.99 on 2025-03-01. Size UK-10, ISO-8601 dates ok.")
    assert t == Triage(contains_log=False, severity="low", summary="No log or error signals found.")


def test_auth_code_is_medium() -> None:
    t = triage("Login says AUTH-423 account locked, HTTP 423")
    assert t.error_codes == ["AUTH-423"]
    assert t.http_statuses == [423]
    assert t.severity == "medium"
    assert not t.contains_log


def test_max_lines_must_be_positive() -> None:
    with pytest.raises(ValueError):
        triage("x", max_lines=0)


ARTICLES = [
    {"id": "kb-general-502", "title": "Gateway errors", "kind": "known_issue", "error_codes": [],
     "exceptions": [], "http_status": 502},
    {"id": "kb-pay-declined", "title": "Card declined", "kind": "known_issue", "error_codes": ["PAY-402"],
     "exceptions": [], "http_status": [402]},
    {"id": "kb-java-timeout", "title": "Warehouse sync timeouts", "kind": "known_issue", "error_codes": [],
     "exceptions": ["SocketTimeoutException"], "http_status": None},
    {"id": "kb-py-declined", "title": "Declined exception", "kind": "known_issue", "error_codes": [],
     "exceptions": ["payments.errors.PaymentDeclinedError"], "http_status": []},
    {"id": "kb-faq-pay", "title": "How to pay", "kind": "faq", "error_codes": ["PAY-402"]},
    {"id": "kb-3ds", "title": "3-D Secure timeouts", "kind": "known_issue", "error_codes": ["PAY-3DS-*"]},
    {"id": "kb-unrelated", "title": "Returns", "kind": "known_issue", "error_codes": ["RET-410"]},
]


def test_known_issue_order_code_then_exception_then_status() -> None:
    matches = match_known_issues(triage(BIG_LOG), ARTICLES)
    ids = [m.article_id for m in matches]
    assert ids == ["kb-pay-declined", "kb-py-declined", "kb-java-timeout", "kb-general-502"]
    assert matches[0].reasons == ["error code PAY-402"]
    assert matches[2].reasons == ["exception SocketTimeoutException (short name)"]
    assert matches[3].reasons == ["HTTP 502"]
    assert "kb-faq-pay" not in ids  # not a known issue


def test_known_issue_glob_code() -> None:
    matches = match_known_issues(triage("Error PAY-3DS-TIMEOUT at checkout"), ARTICLES)
    assert [m.article_id for m in matches] == ["kb-3ds"]
    assert matches[0].reasons == ["error code PAY-3DS-TIMEOUT ~ PAY-3DS-*"]


def test_known_issue_no_match() -> None:
    assert match_known_issues(triage("hello"), ARTICLES) == []
