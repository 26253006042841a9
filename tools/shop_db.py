"""The demo shop's database (SQLite by default, Postgres by URL): schema, deterministic seed data, a handle.

All money is stored in integer cents (EUR). Seeded timestamps are derived from one anchor date
(`seed(today=...)`, default: today in UTC), so two databases seeded on the same day are identical and
relative facts ("delivered 45 days ago") hold whenever the demo is run. The anchor is kept in `shop_meta`.
See `tools/shop.py` for the table of the demo customer's orders and the business tools.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from storage.sql import (
    append_only,
    connect,
    create_schema,
    database_errors,
    is_postgres,
    redact,
    sqlite_file,
    sync_ids,
    table_exists,
)
from storage.sql import transaction as sql_transaction

logger = logging.getLogger(__name__)

SEED_VERSION = "1"
SHIPPING_CENTS = 495  # standard delivery; free from EUR 50
FREE_SHIPPING_FROM_CENTS = 5000

SCHEMA = """
CREATE TABLE IF NOT EXISTS shop_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, phone TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deletion_requested')),
    created_at TEXT NOT NULL, deletion_requested_at TEXT, deletion_reason TEXT);
CREATE TABLE IF NOT EXISTS addresses (
    id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id), label TEXT NOT NULL,
    line1 TEXT NOT NULL, postcode TEXT NOT NULL, city TEXT NOT NULL, country TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)));
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL, category TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents > 0));
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'shipped', 'delivered', 'cancelled',
                                           'refunded', 'payment_failed')),
    currency TEXT NOT NULL DEFAULT 'EUR',
    subtotal_cents INTEGER NOT NULL, shipping_cents INTEGER NOT NULL, total_cents INTEGER NOT NULL,
    shipping_address TEXT NOT NULL, carrier TEXT, tracking_number TEXT, estimated_delivery TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, shipped_at TEXT, delivered_at TEXT,
    cancelled_at TEXT, cancel_reason TEXT);
CREATE TABLE IF NOT EXISTS order_items (
    id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents > 0));
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id), method TEXT NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    status TEXT NOT NULL CHECK (status IN ('authorized', 'captured', 'voided', 'failed')),
    error_code TEXT, error_message TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refunds (
    id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id),
    payment_id INTEGER NOT NULL REFERENCES payments(id),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    reason TEXT NOT NULL DEFAULT '', status TEXT NOT NULL CHECK (status IN ('pending', 'completed')),
    created_at TEXT NOT NULL, expected_by TEXT, completed_at TEXT);
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
    order_id INTEGER REFERENCES orders(id), subject TEXT NOT NULL, body TEXT NOT NULL,
    priority TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high')),
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'pending', 'closed')),
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS newsletter (
    customer_id TEXT PRIMARY KEY REFERENCES customers(id),
    subscribed INTEGER NOT NULL CHECK (subscribed IN (0, 1)), updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS action_ledger (
    key TEXT PRIMARY KEY, tool TEXT NOT NULL, user_id TEXT NOT NULL, args_json TEXT NOT NULL,
    result_json TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, actor TEXT NOT NULL, tool TEXT NOT NULL,
    args_json TEXT NOT NULL, outcome TEXT NOT NULL, event_id TEXT, node TEXT, tenant TEXT, role TEXT,
    approver TEXT, thread_id TEXT, trace_id TEXT);
CREATE INDEX IF NOT EXISTS idx_orders_customer ON orders(customer_id);
CREATE INDEX IF NOT EXISTS idx_items_order ON order_items(order_id);
CREATE INDEX IF NOT EXISTS idx_payments_order ON payments(order_id);
CREATE INDEX IF NOT EXISTS idx_refunds_order ON refunds(order_id);
CREATE INDEX IF NOT EXISTS idx_tickets_customer ON tickets(customer_id);
"""

APPEND_ONLY = ("audit_log",)  # UPDATE and DELETE refused by triggers (storage.sql.append_only)
EXPLICIT_IDS = ("products", "orders")  # seeded with fixed ids; their id sequences are moved on after seeding
# Columns added to audit_log after its first release (auth/audit.py event fields); added to older files on open.
AUDIT_COLUMNS = ("event_id", "node", "tenant", "role", "approver", "thread_id", "trace_id")

# Drop order respects foreign keys (children first).
TABLES = ("audit_log", "action_ledger", "newsletter", "tickets", "refunds", "payments", "order_items",
          "orders", "products", "addresses", "customers", "shop_meta")  # fmt: skip
SEEDED_TABLES = ("customers", "addresses", "products", "orders", "order_items", "payments", "refunds",
                 "tickets", "newsletter")  # fmt: skip

# ---------------------------------------------------------------------------------------------- seed data
# (id, name, email, phone, member for N days)
_CUSTOMERS = [
    ("demo", "Dana Demo", "demo@example.com", "+31612345678", 400),
    ("alice", "Alice Martin", "alice.martin@example.com", "+33612345678", 700),
    ("bob", "Bob Keller", "bob.keller@example.com", "+4915112345678", 250),
    ("chen", "Chen Wei", "chen.wei@example.com", None, 180),
    ("erin", "Erin Walsh", "erin.walsh@example.com", "+353871234567", 90),
]
# (customer, label, line1, postcode, city, country, is_default)
_ADDRESSES = [
    ("demo", "Home", "Keizersgracht 123", "1015 CJ", "Amsterdam", "NL", 1),
    ("demo", "Work", "Stationsplein 45", "3511 ED", "Utrecht", "NL", 0),
    ("alice", "Home", "12 Rue de la Paix", "75002", "Paris", "FR", 1),
    ("bob", "Home", "Torstrasse 88", "10119", "Berlin", "DE", 1),
    ("chen", "Home", "Calle de Alcala 200", "28028", "Madrid", "ES", 1),
    ("erin", "Home", "14 Grafton Street", "D02 XY45", "Dublin", "IE", 1),
]
# (id, sku, name, category, price_cents)
_PRODUCTS = [
    (1, "SB-HDP-01", "Aurora Wireless Headphones", "audio", 12900),
    (2, "SB-KBD-02", "Keystone Mechanical Keyboard", "computing", 8990),
    (3, "SB-MSE-03", "Glide Ergonomic Mouse", "computing", 3990),
    (4, "SB-HUB-04", "Hub 7-in-1 USB-C Adapter", "computing", 3450),
    (5, "SB-LMP-05", "Lumen Desk Lamp", "home", 4900),
    (6, "SB-BTL-06", "Trail Insulated Bottle 750 ml", "outdoor", 2495),
    (7, "SB-BPK-07", "Commuter Backpack 22 L", "outdoor", 7900),
    (8, "SB-SPK-08", "Pebble Bluetooth Speaker", "audio", 5999),
    (9, "SB-CHG-09", "Volt 65 W USB-C Charger", "computing", 4490),
    (10, "SB-MON-10", "Vista 27-inch 4K Monitor", "computing", 32900),
    (11, "SB-CAM-11", "Clarity 1080p Webcam", "computing", 6490),
    (12, "SB-STD-12", "Riser Laptop Stand", "home", 4200),
]
# (id, customer, status, placed days ago, items [(product, qty)], payment method, extra)
# extra keys: shipped / delivered / cancelled / refunded (days ago), eta (days from anchor, may be < 0),
# carrier, tracking, cancel_reason, refund_reason, paid (cancelled orders: was payment captured?)
# fmt: off
_ORDERS: list[tuple[int, str, str, int, list[tuple[int, int]], str, dict[str, Any]]] = [
    (1001, "demo", "delivered", 50, [(7, 1), (9, 1)], "card",
     {"shipped": 48, "delivered": 45, "carrier": "DHL", "tracking": "JJD000390010011001"}),
    (1002, "demo", "refunded", 25, [(4, 1)], "paypal",
     {"shipped": 24, "delivered": 21, "refunded": 6, "carrier": "PostNL", "tracking": "3SSWB1002004518",
      "refund_reason": "Adapter arrived with a broken HDMI port"}),
    (1003, "demo", "cancelled", 20, [(5, 1)], "card",
     {"cancelled": 19, "cancel_reason": "Ordered by mistake", "paid": True}),
    (1004, "demo", "delivered", 12, [(10, 1), (11, 1)], "card",
     {"shipped": 10, "delivered": 8, "carrier": "DHL", "tracking": "JJD000390010041004"}),
    (1005, "demo", "shipped", 9, [(8, 1)], "card",
     {"shipped": 7, "eta": -4, "carrier": "UPS", "tracking": "1Z999AA10123456784"}),
    (1006, "demo", "shipped", 4, [(1, 1)], "card",
     {"shipped": 2, "eta": 2, "carrier": "DHL", "tracking": "JJD000390010061006"}),
    (1007, "demo", "payment_failed", 3, [(12, 1), (6, 1)], "card", {}),
    (1008, "demo", "processing", 2, [(2, 1), (3, 1)], "card", {}),
    (1009, "demo", "processing", 1, [(6, 2)], "paypal", {}),
    (1010, "demo", "pending", 1, [(9, 1), (4, 1)], "card", {}),
    (1011, "alice", "delivered", 30, [(5, 1), (6, 1)], "card",
     {"shipped": 29, "delivered": 27, "carrier": "Colissimo", "tracking": "6A12345678901"}),
    (1012, "alice", "shipped", 3, [(8, 1)], "paypal",
     {"shipped": 2, "eta": 1, "carrier": "Colissimo", "tracking": "6A12345678912"}),
    (1013, "alice", "pending", 1, [(2, 1)], "card", {}),
    (1014, "bob", "delivered", 40, [(10, 1)], "card",
     {"shipped": 38, "delivered": 36, "carrier": "DHL", "tracking": "JJD000390010141014"}),
    (1015, "bob", "processing", 2, [(11, 1), (12, 1)], "card", {}),
    (1016, "bob", "cancelled", 15, [(1, 1)], "card", {"cancelled": 15, "cancel_reason": "Found it cheaper"}),
    (1017, "chen", "delivered", 18, [(7, 1)], "paypal",
     {"shipped": 16, "delivered": 13, "carrier": "SEUR", "tracking": "SEUR0001017"}),
    (1018, "chen", "refunded", 35, [(9, 1)], "card",
     {"shipped": 33, "delivered": 30, "refunded": 20, "carrier": "SEUR", "tracking": "SEUR0001018",
      "refund_reason": "Charger stopped working"}),
    (1019, "erin", "delivered", 60, [(3, 1)], "card",
     {"shipped": 58, "delivered": 55, "carrier": "An Post", "tracking": "CE123456789IE"}),
    (1020, "erin", "delivered", 22, [(4, 1), (6, 1)], "paypal",
     {"shipped": 20, "delivered": 17, "carrier": "An Post", "tracking": "CE123456790IE"}),
]
# fmt: on
# (customer, order, subject, body, priority, status, days ago)
_TICKETS = [
    (
        "demo",
        1005,
        "Order 1005 has not arrived",
        "Tracking has not moved for days. Where is my speaker?",
        "normal",
        "open",
        1,
    ),
    ("bob", None, "Invoice address", "Please add my company name to future invoices.", "low", "closed", 100),
]
_NEWSLETTER = {"demo": 1, "alice": 0, "bob": 1, "chen": 0, "erin": 1}


def iso(ts: datetime) -> str:
    """Format a datetime as the database's UTC timestamp text (`2025-01-31T09:30:00Z`)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(text: str) -> datetime:
    """Parse a timestamp written by `iso`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


class ShopDB:
    """Handle on the shop database: one connection shared by threads, serialised by a lock.

    `target` is a SQLite file (the embedded default) or a ``postgresql://`` URL (storage.sql: the same SQL on
    either engine). Reads and writes both take the lock, so a read never sees another thread's half-done
    transaction on the shared connection. Writes use `BEGIN IMMEDIATE` (on Postgres: the shop's advisory lock),
    so several processes - or several server instances on one Postgres - serialise their writes too.
    """

    def __init__(
        self,
        target: Path | str,
        *,
        clock: Callable[[], datetime] = utc_now,
        audit: Any = None,
        permissions: Any = None,
    ) -> None:
        """`audit`: an `auth.audit.AuditLog` that gets every tool call's event (None: the shop journal only).
        `permissions`: the validated `config.permissions.Permissions` the door enforces (None: the shipped file)."""
        self.target = str(target)
        self.is_postgres = is_postgres(target)
        self.path = None if self.is_postgres else sqlite_file(target) if str(target) != ":memory:" else Path(target)
        self.audit, self.permissions = audit, permissions
        self.clock = clock
        self._lock = threading.RLock()
        self._conn = connect(target, lock="shop")
        with self._lock:
            try:
                self._create_schema(self._conn)
            except database_errors() as exc:  # a database from an older schema; seed() rebuilds it
                logger.warning("shop database %s has an outdated schema (%s); run seed", self.where, exc)

    @property
    def where(self) -> str:
        """The database, for messages (a URL without its password)."""
        return redact(self.target) if self.is_postgres else str(self.path)

    @staticmethod
    def _create_schema(conn: Any) -> None:
        create_schema(conn, SCHEMA, append_only_tables=APPEND_ONLY)
        if isinstance(conn, sqlite3.Connection):  # files older than the audit columns
            _add_audit_columns(conn)

    # ------------------------------------------------------------------------------------ access
    def now(self) -> datetime:
        """Current time from the injected clock (UTC)."""
        return self.clock()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Run a read query and return rows as dicts."""
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, params).fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Hold the lock and an IMMEDIATE transaction; commit on success, roll back on any exception."""
        with self._lock, sql_transaction(self._conn) as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """Hold the lock for a consistent multi-statement read."""
        with self._lock:
            yield self._conn

    def dump(self) -> str:
        """SQL text dump of the whole database (used to compare databases)."""
        with self._lock:
            return "\n".join(self._conn.iterdump())

    def counts(self, tables: tuple[str, ...] = SEEDED_TABLES) -> dict[str, int]:
        """Row count per table."""
        with self._lock:
            return {t: int(self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ShopDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ seeding
    def is_seeded(self) -> bool:
        """True once `seed()` has completed on this database with the current seed version."""
        with self._lock:
            return _seeded(self._conn)

    def seed(self, *, reset: bool = False, today: date | None = None) -> dict[str, int]:
        """Fill the database with the demo shop and return row counts per seeded table.

        Idempotent: on an already seeded database nothing changes unless `reset=True`, which drops every
        table (including the ledger and audit log) and seeds again; a database from another seed version
        is rebuilt too. Seeded data is fixed; timestamps are relative to `today` (default: the clock's
        date), so the same day always gives the same database. One IMMEDIATE transaction, so two
        processes seeding at once cannot interleave.
        """
        with self.transaction() as conn:
            if reset or not _seeded(conn):
                for table in TABLES:
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in SCHEMA_STATEMENTS:
                    conn.execute(statement)
                for table in APPEND_ONLY:
                    append_only(conn, table)
                _insert_seed(conn, today or self.now().date())
                sync_ids(conn, EXPLICIT_IDS)
        return self.counts()


def _add_audit_columns(conn: sqlite3.Connection) -> None:
    """Bring an older audit_log up to AUDIT_COLUMNS (adding a column is not an update: no trigger fires)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(audit_log)")}
    for column in AUDIT_COLUMNS:
        if column not in have:
            conn.execute(f"ALTER TABLE audit_log ADD COLUMN {column} TEXT")


def _split_script(script: str) -> list[str]:
    """Split an SQL script into complete statements."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return statements


SCHEMA_STATEMENTS = _split_script(SCHEMA)


def _seeded(conn: Any) -> bool:
    if not table_exists(conn, "shop_meta"):
        return False
    row = conn.execute("SELECT value FROM shop_meta WHERE key = 'seed_version'").fetchone()
    return row is not None and row[0] == SEED_VERSION


def _insert_seed(conn: sqlite3.Connection, today: date) -> None:
    """Insert the fixed demo data with timestamps relative to `today` (inside the caller's transaction)."""
    anchor = datetime.combine(today, time(0, 0), tzinfo=UTC)

    def at(days_ago: int, hour: int = 10, minute: int = 0) -> str:
        return iso(anchor - timedelta(days=days_ago) + timedelta(hours=hour, minutes=minute))

    prices = {p[0]: p[4] for p in _PRODUCTS}
    conn.executemany(
        "INSERT INTO customers (id, name, email, phone, created_at) VALUES (?, ?, ?, ?, ?)",
        [(c[0], c[1], c[2], c[3], at(c[4], 12)) for c in _CUSTOMERS],
    )
    conn.executemany(
        "INSERT INTO addresses (customer_id, label, line1, postcode, city, country, is_default) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        _ADDRESSES,
    )
    conn.executemany(
        "INSERT INTO products (id, sku, name, category, price_cents) VALUES (?, ?, ?, ?, ?)", _PRODUCTS
    )
    home = {a[0]: f"{a[2]}, {a[3]} {a[4]}, {a[5]}" for a in _ADDRESSES if a[6]}
    for oid, cust, status, placed, items, method, x in _ORDERS:
        subtotal = sum(prices[pid] * qty for pid, qty in items)
        shipping = SHIPPING_CENTS if subtotal < FREE_SHIPPING_FROM_CENTS else 0
        total = subtotal + shipping
        created = at(placed, 9 + (oid - 1001) % 12, (oid * 7) % 60)
        events = [x[k] for k in ("shipped", "delivered", "cancelled", "refunded") if k in x]
        updated = at(min(events), 15) if events else created
        conn.execute(
            "INSERT INTO orders (id, customer_id, status, subtotal_cents, shipping_cents, total_cents, "
            "shipping_address, carrier, tracking_number, estimated_delivery, created_at, updated_at, "
            "shipped_at, delivered_at, cancelled_at, cancel_reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                oid,
                cust,
                status,
                subtotal,
                shipping,
                total,
                home[cust],
                x.get("carrier"),
                x.get("tracking"),
                (today + timedelta(days=x["eta"])).isoformat() if "eta" in x else None,
                created,
                updated,
                at(x["shipped"], 14) if "shipped" in x else None,
                at(x["delivered"], 13) if "delivered" in x else None,
                at(x["cancelled"], 11) if "cancelled" in x else None,
                x.get("cancel_reason"),
            ),
        )
        conn.executemany(
            "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES (?, ?, ?, ?)",
            [(oid, pid, qty, prices[pid]) for pid, qty in items],
        )
        pay_status, err_code, err_msg = _payment_state(status, x)
        cur = conn.execute(
            "INSERT INTO payments (order_id, method, amount_cents, status, error_code, error_message, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (oid, method, total, pay_status, err_code, err_msg, created),
        )
        if "refunded" in x:
            conn.execute(
                "INSERT INTO refunds (order_id, payment_id, amount_cents, reason, status, created_at, "
                "expected_by, completed_at) VALUES (?, ?, ?, ?, 'completed', ?, ?, ?)",
                (
                    oid,
                    cur.lastrowid,
                    total,
                    x.get("refund_reason", ""),
                    at(x["refunded"], 16),
                    (today - timedelta(days=x["refunded"] - 10)).isoformat(),
                    at(x["refunded"] - 4, 8),
                ),
            )
    conn.executemany(
        "INSERT INTO tickets (customer_id, order_id, subject, body, priority, status, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(*t[:6], at(t[6], 18)) for t in _TICKETS],
    )
    conn.executemany(
        "INSERT INTO newsletter (customer_id, subscribed, updated_at) VALUES (?, ?, ?)",
        [(c, s, at(300, 12)) for c, s in _NEWSLETTER.items()],
    )
    conn.executemany(
        "INSERT INTO shop_meta (key, value) VALUES (?, ?)",
        [("seed_version", SEED_VERSION), ("anchor_date", today.isoformat())],
    )


def _payment_state(status: str, extra: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """Payment status for a seeded order: pending = authorised only, unpaid cancellations voided."""
    if status == "pending":
        return "authorized", None, None
    if status == "payment_failed":
        return "failed", "PAY-402", "Card declined by the issuing bank (insufficient funds)"
    if status == "cancelled" and not extra.get("paid"):
        return "voided", None, None
    return "captured", None, None
