"""Which Aegra route a request is on, for the two modules that fit the project's auth to Aegra (0.11).

The handlers of auth/handlers.py tell requests apart by the value they are given. The LangGraph server builds that
value itself; Aegra hands most routes' handlers the client's JSON body with the path parameters on top, so a body
could make a state write look like a run cancel or a metadata patch (`run_id`, `action`, `metadata` keys). Here the
route decides instead: cluster/aegra_http.py's authentication dependency, which every Aegra route runs first,
records the matched route (`served`), and cluster/aegra_auth.py reads it.

Two more facts about a request live here:
- the routes that are not served at all (`NOT_SERVED`), refused with 403 before anything else runs: they start runs
  that never pass the project's `threads.create_run` handler (Aegra's v2 thread commands, crons);
- whether a `threads.create_run` handler call comes from the run-creating path that hands the run what the handler
  admitted (`admitting`, set by cluster/aegra_http.py); any other caller of that handler is refused, so a route
  Aegra adds later cannot start a run on the client's own input.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

Route = tuple[str, str]  # (method, path template), e.g. ("POST", "/threads/{thread_id}/runs")

_SERVED: ContextVar[Route | None] = ContextVar("switchboard_aegra_route", default=None)
_ADMITTING: ContextVar[bool] = ContextVar("switchboard_aegra_admitting", default=False)

# The threads.update calls that cancel or interrupt runs; every other one is a state write or a metadata patch.
RUN_CANCELS: Final[frozenset[Route]] = frozenset(
    {
        ("POST", "/runs/cancel"),
        ("POST", "/threads/{thread_id}/runs/{run_id}/cancel"),
        ("PATCH", "/threads/{thread_id}/runs/{run_id}"),  # Aegra's run update: status "interrupted" only
    }
)
METADATA_PATCH: Final[Route] = ("PATCH", "/threads/{thread_id}")  # Aegra builds its value from its own model

_V2 = (
    "Agent Protocol v2 thread commands (run.start, input.respond) are not served here: they would start runs past "
    "the project's input and ownership checks. Start or resume a run with POST /threads/{thread_id}/runs "
    "(or /runs/stream, /runs/wait)."
)
_CRONS = "crons are not served on Aegra: a cron's runs would be built past the project's input and ownership checks"
NOT_SERVED: Final[dict[Route, str]] = {
    ("POST", "/threads/{thread_id}/commands"): _V2,
    ("POST", "/runs/crons"): _CRONS,
    ("POST", "/threads/{thread_id}/runs/crons"): _CRONS,
}


def serve(route: Route) -> None:
    """Record the route of the request being served (its own task's context: never another request's)."""
    _SERVED.set(route)


def served() -> Route | None:
    """The route of the request being served, or None outside one (then nothing is taken for a cancel)."""
    return _SERVED.get()


def is_run_cancel() -> bool:
    return served() in RUN_CANCELS


def is_metadata_patch() -> bool:
    return served() == METADATA_PATCH


@contextmanager
def admitting() -> Iterator[None]:
    """Around the `threads.create_run` handler call whose admitted input, context and config the run then takes."""
    token = _ADMITTING.set(True)
    try:
        yield
    finally:
        _ADMITTING.reset(token)


def is_admitting() -> bool:
    return _ADMITTING.get()
