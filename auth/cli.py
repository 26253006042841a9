"""`python app.py apikey create | list | revoke`: API keys for the served API.

    python app.py apikey create --user demo [--tenant default] [--role customer|agent|admin] --json
    python app.py apikey list [--json]
    python app.py apikey revoke KEY_ID [--json]

`create` prints the key once; only its sha256 is stored (`Settings.auth_target`: SWITCHBOARD_AUTH_DB, else the
database URL, else data_dir/auth.sqlite).
Bad input exits with status 2 and one line on stderr, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from auth.identity import ROLES, Identity, parse_role
from auth.keys import KeyStore
from config.settings import Settings


class UsageError(Exception):
    """Bad input: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints usage too; the contract is one line
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="app.py apikey", description="API keys for the served API (langgraph dev / make serve).")
    sub = p.add_subparsers(dest="action", required=True, parser_class=_Parser)

    s = sub.add_parser("create", help="create a key (printed once)")
    s.add_argument("--user", help="the user id the key acts as")
    s.add_argument("--tenant", default="default", help="tenant id (default: default)")
    s.add_argument("--role", default="customer", help=f"one of {', '.join(ROLES)} (default: customer)")
    s.add_argument("--json", action="store_true", help="print one JSON object")

    s = sub.add_parser("list", help="list keys (never their secrets)")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("revoke", help="revoke a key by its id")
    s.add_argument("key_id")
    s.add_argument("--json", action="store_true")
    return p


def create(keys: KeyStore, args: argparse.Namespace) -> dict:
    if not args.user:
        raise UsageError("--user is required")
    try:
        role = parse_role(args.role)
        Identity(user_id=args.user, tenant_id=args.tenant, role=role)
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        if "user_id" in str(exc):
            first = f"invalid user {args.user!r}: use 1-64 letters, digits, '_', '.', '@' or '-'"
        elif "tenant_id" in str(exc):
            first = f"invalid tenant {args.tenant!r}: use 1-64 letters, digits, '_', '.', '@' or '-'"
        raise UsageError(first) from exc
    key, record = keys.create(args.user, args.tenant, role)
    return {"key": key, **record.model_dump()}


def apikey_main(argv: list[str], settings: Settings | None = None) -> int:
    settings = settings or Settings.from_env()
    keys = KeyStore(settings.auth_target)
    try:
        args = build_parser().parse_args(argv)
        if args.action == "create":
            out = create(keys, args)
            if args.json:
                print(json.dumps(out))
            else:
                print(out["key"])
                print(
                    f"key {out['key_id']} · user {out['user']} · tenant {out['tenant']} · role {out['role']} "
                    "(shown once; send it as 'Authorization: Bearer KEY')",
                    file=sys.stderr,
                )
        elif args.action == "list":
            records = [r.model_dump() for r in keys.list()]
            if args.json:
                print(json.dumps({"keys": records}))
            else:
                for r in records:
                    state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
                    print(f"{r['key_id']}  {r['user']:<20} {r['tenant']:<12} {r['role']:<8} {r['created_at']}  {state}")
        else:
            try:
                record = keys.revoke(args.key_id)
            except KeyError:
                raise UsageError(f"unknown key id {args.key_id!r} (see 'python app.py apikey list')") from None
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            print(json.dumps(record.model_dump()) if args.json else f"revoked {record.key_id} ({record.user})")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
