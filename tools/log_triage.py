"""Deterministic log and stack-trace triage for the technical analyst.

:func:`triage` reads a customer message that may contain a pasted log, stack trace or error screen and
extracts what a support engineer would look for first: shop error codes (``PAY-402``, ``PAY-3DS-TIMEOUT``),
generic codes (``ERR_CONNECTION_RESET``, ``ECONNREFUSED``), exception class names (Python, Java, JS),
HTTP error statuses, timeouts, and the few lines that matter. :func:`match_known_issues` scores the
knowledge base's known-issue articles against that triage. Both are pure functions: no I/O.
"""

from __future__ import annotations

import builtins
import errno
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, Field

Severity = Literal["low", "medium", "high"]

MAX_LINE_CHARS = 300
"""Lines kept in ``relevant_lines`` are cut to this many characters."""

# Known-issue scoring weights: exact code > exception name > HTTP status.
SCORE_CODE = 10.0
SCORE_EXCEPTION = 5.0
SCORE_EXCEPTION_SHORT = 4.0
SCORE_HTTP = 1.0


class Triage(BaseModel):
    """What :func:`triage` found in a text."""

    contains_log: bool = Field(description="True when the text holds a pasted log, stack trace or error dump")
    error_codes: list[str] = Field(default_factory=list, description="Shop and generic error codes, in order")
    exceptions: list[str] = Field(default_factory=list, description="Exception class names as written.")
    http_statuses: list[int] = Field(default_factory=list, description="HTTP 4xx/5xx statuses, sorted.")
    timeouts: bool = Field(default=False, description="True when a timeout is reported.")
    timeout_phrases: list[str] = Field(default_factory=list, description="Timeout phrases seen (lower case).")
    relevant_lines: list[str] = Field(default_factory=list, description="The lines that matter, in order.")
    severity: Severity = "low"
    summary: str = ""

    @property
    def has_signals(self) -> bool:
        """Something for the technical analyst: an error code, an exception, an HTTP error status or a log."""
        return bool(self.error_codes or self.exceptions or self.http_statuses or self.contains_log)


class KnownIssueMatch(BaseModel):
    """A known-issue article that matches a triage, with why."""

    article_id: str
    title: str
    score: float
    reasons: list[str]
    codes: list[str] = Field(default_factory=list, description="The article's error codes (patterns) that matched.")
    exceptions: list[str] = Field(default_factory=list, description="The article's exception names that matched.")

    @property
    def decisive(self) -> bool:
        """The match rests on something only the shop's own systems raise: one of its error codes, or one of its
        own exception classes. An HTTP status, a Python built-in (`TimeoutError`) or a library's exception
        (`sqlite3.OperationalError`, `requests.exceptions.ReadTimeout`) is seen on any site or script."""
        return bool(self.codes) or any(is_shop_exception(e) for e in self.exceptions)


def is_shop_exception(name: str) -> bool:
    """True for an exception class of the shop's own code (`CheckoutServiceError`): not module-qualified (a
    library's, `sqlite3.OperationalError`) and not one of Python's built-in exceptions (`TimeoutError`)."""
    if "." in name:
        return False
    builtin = getattr(builtins, name, None)
    return not (isinstance(builtin, type) and issubclass(builtin, BaseException))


# --- patterns -------------------------------------------------------------------------------------------

_SHOP_CODE = re.compile(r"(?<![\w-])[A-Z][A-Z0-9]{1,5}(?:-[A-Z0-9]{3,16}){1,3}(?![\w-])")
_NOT_ERROR_PREFIXES = frozenset(
    {"ISO", "UTF", "RFC", "SHA", "TLS", "SSL", "HTTP", "HTTPS", "UUID", "AES", "RSA", "ORD", "ORDER", "REQ",
     "TRACE", "TKT", "TICKET", "SKU", "GMT", "UTC", "CET", "CEST", "EST", "PST", "X"}
)
_ERR_CODE = re.compile(r"\b(?:NET::)?ERR_[A-Z0-9_]{3,}\b")
_ERRNO_NAMES = frozenset(name for name in errno.errorcode.values() if len(name) >= 5) | {
    "ENOTFOUND", "ECONNABORTED", "ESOCKETTIMEDOUT", "EAI_AGAIN"
}
_ERRNO = re.compile(r"\bE[A-Z_]{3,}\b")

_EXCEPTION = re.compile(
    r"(?<![\w.])((?:[A-Za-z_$][\w$]*\.)*[A-Z][\w$]*?(?:Error|Exception|Exit|Interrupt|Timeout|Fault|Panic))\b"
)
_JS_ERRORS = frozenset(
    {"TypeError", "ReferenceError", "RangeError", "SyntaxError", "EvalError", "URIError", "AggregateError"}
)

_REASONS = {s.phrase.lower(): s.value for s in HTTPStatus if s.value >= 400}
_REASON_ALT = "|".join(sorted((re.escape(p) for p in _REASONS), key=len, reverse=True))
_HTTP_PATTERNS = [
    re.compile(r"\bHTTP(?:/\d(?:\.\d)?)?\s*[ :=]\s*([45]\d\d)\b", re.I),
    re.compile(r"\b(?:status(?:[ _-]?code)?|code|response)\s*[=:]?\s*\"?([45]\d\d)\b", re.I),
    re.compile(
        r"\b(?:returned|got|received|responded with|failed with)\s+(?:an?\s+)?(?:HTTP\s+)?([45]\d\d)\b", re.I
    ),
    re.compile(rf"\b([45]\d\d)\s+(?:{_REASON_ALT})\b", re.I),
    re.compile(r"\"[A-Z]+ [^\"]* HTTP/[\d.]+\" ([45]\d\d) "),  # access log: "GET /x HTTP/1.1" 502 ...
]

_TIMEOUT = re.compile(
    r"\b(?:timed out|time[ -]?out(?:s)?|timeout(?:error|exception)?|ETIMEDOUT|ESOCKETTIMEDOUT"
    r"|deadline exceeded|\w*TimeoutException|\w*Timeout(?:Error)?|took too long|zeitüberschreitung)\b"
    r"(?!\s*[=:]\s*\d)",  # "timeout=10" is a setting, not an event
    re.I,
)

_LOG_LINE = re.compile(
    r"^\s*(?:\[?\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}|\[?\d{2}:\d{2}:\d{2}|\d{4}/\d{2}/\d{2} \d{2}:\d{2})"
    r"|\b(?:ERROR|WARN(?:ING)?|INFO|DEBUG|FATAL|CRITICAL|TRACE)\b"
    r"|\[(?:error|warn|crit|alert|emerg)\]"
    r"|^Traceback \(most recent call last\):"
    r"|^\s+at [\w$.<>/]+[ (]"
    r"|^\s*File \"[^\"]+\", line \d+"
    r"|^\s*Caused by: "
    r"|\"[A-Z]+ \S+ HTTP/[\d.]+\" \d{3} "
)
_TRACEBACK_START = re.compile(r"^Traceback \(most recent call last\):", re.M)
_PY_FRAME = re.compile(r"^\s*File \"[^\"]+\", line \d+")
_JAVA_FRAME = re.compile(r"^\s+at [\w$.<>/:@]+(?:\(|\s)")
_CAUSED_BY = re.compile(r"^\s*Caused by: ")
_EXC_LINE = re.compile(
    r"^\s*(?:Uncaught |Unhandled |Exception in thread \"[^\"]*\" |Caused by: )?"
    r"(?:[A-Za-z_$][\w$]*\.)*[A-Z][\w$]*(?:Error|Exception|Exit|Interrupt|Timeout)\b(?::|\s*$)"
)
_ERROR_WORD = re.compile(
    r"\b(?:ERROR|FATAL|CRITICAL|SEVERE|PANIC|failed|failure|exception)\b|\[(?:error|crit)\]", re.I
)
_HIGH_WORD = re.compile(
    r"\b(?:FATAL|CRITICAL|PANIC|OutOfMemory\w*|segfault|data loss)\b|\[(?:crit|alert|emerg)\]"
)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _error_codes(text: str) -> list[str]:
    found: list[tuple[int, str]] = []
    for m in _SHOP_CODE.finditer(text):
        code = m.group()
        prefix = code.split("-", 1)[0]
        if prefix in _NOT_ERROR_PREFIXES:
            continue
        found.append((m.start(), code))
    for m in _ERR_CODE.finditer(text):
        found.append((m.start(), m.group()))
    for m in _ERRNO.finditer(text):
        if m.group() in _ERRNO_NAMES:
            found.append((m.start(), m.group()))
    return _unique(code for _, code in sorted(found))


def _exceptions(text: str) -> list[str]:
    names: list[str] = []
    for m in _EXCEPTION.finditer(text):
        name = m.group(1)
        last = name.rsplit(".", 1)[-1]
        if last in {"Error", "Exception"} or (last.endswith("Timeout") and "." not in name and last != name):
            continue
        names.append(name)
    # A bare name that is the last component of a dotted one found elsewhere is the same exception:
    # keep the dotted (more precise) name, at the first position either appeared.
    dotted = {n.rsplit(".", 1)[-1]: n for n in names if "." in n}
    return _unique(dotted.get(n, n) for n in names)


def _http_statuses(text: str) -> list[int]:
    codes = {int(m.group(1)) for rx in _HTTP_PATTERNS for m in rx.finditer(text)}
    return sorted(c for c in codes if 400 <= c <= 599)


def _is_error_line(
    line: str, codes: Sequence[str], exceptions: Sequence[str], statuses: Sequence[int]
) -> bool:
    if _ERROR_WORD.search(line) or _EXC_LINE.search(line) or _TIMEOUT.search(line):
        return True
    if any(c in line for c in codes) or any(e in line for e in exceptions):
        return True
    return any(str(s) in line and _http_statuses(line) for s in statuses)


def _key_lines(lines: Sequence[str]) -> tuple[list[int], list[int]]:
    """Indexes of traceback essentials: (exception message lines, last/top frame lines)."""
    messages: list[int] = []
    frames: list[int] = []
    i = 0
    n = len(lines)
    while i < n:
        line = lines[i]
        if _TRACEBACK_START.search(line):
            last_frame = None
            j = i + 1
            while j < n and (lines[j][:1] in (" ", "\t") or not lines[j].strip()):
                if _PY_FRAME.search(lines[j]):
                    last_frame = j
                j += 1
            if last_frame is not None:
                frames.append(last_frame)
                if last_frame + 1 < j and not _PY_FRAME.search(lines[last_frame + 1]):
                    frames.append(last_frame + 1)
            if j < n:
                messages.append(j)  # the exception message line
            i = j + 1
            continue
        if _EXC_LINE.search(line) or _CAUSED_BY.search(line):
            messages.append(i)
            if i + 1 < n and _JAVA_FRAME.search(lines[i + 1]):
                frames.append(i + 1)  # the top frame of a Java / JS trace
        i += 1
    return messages, frames


def _select_lines(
    lines: list[str], error_idx: list[int], key_idx: tuple[list[int], list[int]], max_lines: int
) -> list[str]:
    """Pick at most ``max_lines`` lines by priority, returned in their original order.

    Priority: exception messages (latest first), the first and last error line, traceback frames
    (latest first), the other error lines, then the lines next to errors.
    """
    messages, frames = key_idx
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    if len(nonblank) <= max_lines:
        chosen = nonblank
    else:
        priority: list[int] = messages[::-1]  # later traces first: the final exception is what broke
        if error_idx:
            priority += [error_idx[0], error_idx[-1]]
        priority += frames[::-1]
        priority += error_idx
        priority += [j for i in error_idx for j in (i - 1, i + 1) if 0 <= j < len(lines) and lines[j].strip()]
        chosen = _unique_ints(priority)[:max_lines]
    return [lines[i][:MAX_LINE_CHARS] for i in sorted(chosen)]


def _unique_ints(items: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(items))


def _severity(
    text: str, codes: Sequence[str], exceptions: Sequence[str], statuses: Sequence[int], timeouts: bool,
    error_lines: int,
) -> Severity:
    if any(s >= 500 for s in statuses) or _HIGH_WORD.search(text) or _TRACEBACK_START.search(text):
        return "high"
    if any(re.search(r"-5\d\d$", c) for c in codes):
        return "high"
    if codes or exceptions or statuses or timeouts or error_lines:
        return "medium"
    return "low"


def _summary(t: Triage) -> str:
    if not (t.error_codes or t.exceptions or t.http_statuses or t.timeouts or t.contains_log):
        return "No log or error signals found."
    parts = ["Log" if t.contains_log else "Message", f"({t.severity} severity)"]
    details: list[str] = []
    if t.error_codes:
        details.append("codes " + ", ".join(t.error_codes[:5]))
    if t.exceptions:
        details.append("exceptions " + ", ".join(e.rsplit(".", 1)[-1] for e in t.exceptions[:4]))
    if t.http_statuses:
        details.append("HTTP " + ", ".join(map(str, t.http_statuses)))
    if t.timeouts:
        details.append("timeout")
    return " ".join(parts) + (": " + "; ".join(details) if details else ": no specific error signals") + "."


def triage(text: str, *, max_lines: int = 40) -> Triage:
    """Triage ``text`` (a message, possibly with a pasted log or stack trace).

    Extracts error codes, exception names, HTTP 4xx/5xx statuses and timeouts; keeps at most ``max_lines``
    relevant lines (first and last error, each traceback's last frame and message, other error lines and
    their neighbours, by that priority, in original order); rates severity and writes a one-line summary.
    """
    if max_lines < 1:
        raise ValueError("max_lines must be >= 1")
    lines = text.splitlines()
    codes = _error_codes(text)
    exceptions = _exceptions(text)
    statuses = _http_statuses(text)
    timeout_phrases = _unique(m.group().lower() for m in _TIMEOUT.finditer(text))
    log_lines = sum(1 for line in lines if _LOG_LINE.search(line))
    contains_log = log_lines >= 2 or bool(_TRACEBACK_START.search(text))
    error_idx = [i for i, line in enumerate(lines) if _is_error_line(line, codes, exceptions, statuses)]
    key_idx = _key_lines(lines)
    relevant = _select_lines(lines, error_idx, key_idx, max_lines) if error_idx or contains_log else []
    result = Triage(
        contains_log=contains_log,
        error_codes=codes,
        exceptions=exceptions,
        http_statuses=statuses,
        timeouts=bool(timeout_phrases),
        timeout_phrases=timeout_phrases,
        relevant_lines=relevant,
        severity=_severity(text, codes, exceptions, statuses, bool(timeout_phrases), len(error_idx)),
    )
    result.summary = _summary(result)
    return result


# --- known issues --------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int):
        return [str(value)]
    return [str(v) for v in value]


def match_known_issues(triage: Triage, articles: Sequence[Mapping[str, Any]]) -> list[KnownIssueMatch]:
    """Score known-issue articles (``kind == "known_issue"``) against a triage, best first.

    Each article is the front matter of a KB article: ``id``, ``title``, ``kind``, ``error_codes``,
    ``exceptions``, ``http_status`` (a value or a list). An exact error-code match scores highest
    (codes may be glob patterns like ``PAY-3DS-*``), then an exception name (full dotted name, or its last
    component), then an HTTP status. Articles with no match are left out; ties sort by id. Each match names
    the article's codes and exceptions that matched (`KnownIssueMatch.decisive`: evidence only the shop raises).
    """
    codes = {c.upper() for c in triage.error_codes}
    exc_full = set(triage.exceptions)
    exc_short = {e.rsplit(".", 1)[-1] for e in triage.exceptions}
    statuses = set(triage.http_statuses)
    matches: list[KnownIssueMatch] = []
    for art in articles:
        if art.get("kind") != "known_issue":
            continue
        score = 0.0
        reasons: list[str] = []
        matched_codes: list[str] = []
        matched_exceptions: list[str] = []
        for pattern in _as_list(art.get("error_codes")):
            hit = sorted(c for c in codes if fnmatch.fnmatchcase(c, pattern.upper()))
            if hit:
                score += SCORE_CODE
                matched_codes.append(pattern)
                exact = hit == [pattern.upper()]
                reasons.append(f"error code {', '.join(hit)}" + ("" if exact else f" ~ {pattern}"))
        for name in _as_list(art.get("exceptions")):
            if name in exc_full:
                score += SCORE_EXCEPTION
                reasons.append(f"exception {name}")
                matched_exceptions.append(name)
            elif name.rsplit(".", 1)[-1] in exc_short:
                score += SCORE_EXCEPTION_SHORT
                reasons.append(f"exception {name.rsplit('.', 1)[-1]} (short name)")
                matched_exceptions.append(name)
        for status in _as_list(art.get("http_status")):
            if status.isdigit() and int(status) in statuses:
                score += SCORE_HTTP
                reasons.append(f"HTTP {status}")
        if score > 0:
            art_id, title = str(art.get("id", "")), str(art.get("title", ""))
            matches.append(
                KnownIssueMatch(
                    article_id=art_id, title=title, score=score, reasons=reasons,
                    codes=matched_codes, exceptions=matched_exceptions,
                )
            )
    return sorted(matches, key=lambda m: (-m.score, m.article_id))
