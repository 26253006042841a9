"""`python app.py health [--json]`: the health route's checks (observability.http.health), from the command line.

The same functions answer `GET /switchboard/health`, so the two agree: data directory, shop database, knowledge
base (only when this process built it: "not_loaded" here), the model chain and the circuit breakers of models and
tools. Breaker state comes from the shared Redis store when `SWITCHBOARD_REDIS_URL` is set (what every server
process sees); without one a separate command has no breakers to read and says "not_loaded".
Exit status 0 when healthy, 1 when degraded (as the route's 503).
"""

from __future__ import annotations

import argparse
import json


def health_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="app.py health", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    from config.settings import Settings
    from observability.http import health

    body = health(Settings.from_env())
    if args.json:
        print(json.dumps(body, default=str))
    else:
        print(f"status: {body['status']}")
        for name, check in body["checks"].items():
            extra = {k: v for k, v in check.items() if k != "status"}
            print(f"  {name:10} {check['status']:12} {json.dumps(extra, default=str) if extra else ''}".rstrip())
    return 0 if body["status"] == "ok" else 1
