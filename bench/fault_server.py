"""A fault-injecting, OpenAI-compatible chat server on loopback, for resilience tests and benchmarks.

    server = FaultServer(rates={"500": 0.1, "429": 0.05}, seed=7).start()   # random faults, seeded
    server.script("primary", ["500", "429:3", "ok"])                         # or exact faults per request
    ChatOpenAI(base_url=server.url, model="primary", api_key="x")            # the real client talks to it
    server.says["primary"] = "Delivery takes 2-4 days [kb-x]."               # what `ok` answers, not "<model> says ok"
    server.count("primary"); server.stop()

    python -m bench.fault_server --rates 500=0.1,hang=0.02 --seed 1         # stand-alone, prints its URL

Only `POST /v1/chat/completions` (streaming and not) is served. Faults, as written in scripts and rates:

| fault        | what the client sees                                                              |
|--------------|-----------------------------------------------------------------------------------|
| `ok`         | a normal completion (`"<model> says ok"`, or `says[model]`) with usage             |
| `500`..`599` | that status with an OpenAI-style error body                                       |
| `429[:s]`    | 429 with `Retry-After: s` (default 1)                                             |
| `hang[:s]`   | no answer for `s` seconds (default 60) or until `stop()`: longer than any timeout |
| `slow:s`     | a normal completion after `s` seconds                                             |
| `malformed`  | 200 `application/json` whose body is not JSON                                     |
| `truncate`   | the body stops part-way and the connection drops (chunked stream or JSON)         |
| `truncate:1` | streaming: the stream ends cleanly after two events, with no finish and no [DONE] |
| `hold`       | waits until `release()` (or `stop()`), then answers normally: a test's gate       |

A scripted model answers its script in order, then `default` (normally `ok`); other models draw from
`rates` with a `random.Random(seed)`: independently per request, or with `exact=True` from a shuffled deck of 100 per
100 requests (so the measured share is the configured one, not a binomial draw around it). Every request is counted
per model (and logged with its fault, in order, with its arrival time in `arrivals`) before its fault is applied.
Hand-written: the standard library's threaded HTTP server is enough, and no maintained PyPI package
serves scripted OpenAI faults on a free loopback port.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KINDS = ("ok", "status", "429", "hang", "slow", "malformed", "truncate", "hold")


def parse_fault(spec: str) -> tuple[str, float]:
    """`"429:3"` -> ("429", 3.0); `"503"` -> ("status", 503); raises ValueError on anything unknown."""
    name, _, arg = spec.strip().partition(":")
    if name.isdigit() and 500 <= int(name) <= 599:
        return "status", float(name)
    defaults = {"ok": 0.0, "429": 1.0, "hang": 60.0, "slow": 0.1, "malformed": 0.0, "truncate": 0.0, "hold": 0.0}
    if name not in defaults:
        raise ValueError(f"unknown fault {spec!r}: use ok, 5xx, 429[:s], hang[:s], slow:s, malformed, truncate, hold")
    return name, float(arg) if arg else defaults[name]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up (its timeout) is expected
            return
        super().handle_error(request, client_address)


class FaultServer:
    """Threaded loopback server; `start()` binds a free port and returns self (also a context manager)."""

    def __init__(
        self,
        rates: Mapping[str, float] | None = None,
        *,
        seed: int = 0,
        default: str = "ok",
        host: str = "127.0.0.1",
        exact: bool = False,
    ) -> None:
        self.rates = {spec: float(p) for spec, p in (rates or {}).items()}
        for spec in self.rates:
            parse_fault(spec)
        if sum(self.rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")
        if exact and any(abs(p * 100 - round(p * 100)) > 1e-9 for p in self.rates.values()):
            raise ValueError("exact fault rates must be whole percentages (0.06, not 0.065)")
        self.exact = exact
        self._deck: list[str] = []
        self.default = default
        self.rng = random.Random(seed)
        self.host = host
        self.counts: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.says: dict[str, str] = {}  # model -> the text an `ok` answer carries (streamed word by word)
        self.log: list[tuple[str, str]] = []  # (model, fault) per request, in arrival order
        self.arrivals: list[tuple[float, str, str]] = []  # (time.monotonic(), model, fault) per request
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Condition()
        self._gate = threading.Event()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------------------
    def start(self) -> FaultServer:
        self._httpd = _HTTPServer((self.host, 0), _handler(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fault-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._gate.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL for an OpenAI client (`.../v1`)."""
        assert self._httpd is not None, "server not started"
        return f"http://{self.host}:{self._httpd.server_address[1]}/v1"

    def script(self, model: str, faults: Iterable[str]) -> None:
        """Answer the next requests for `model` with these faults, in order."""
        faults = list(faults)
        for spec in faults:
            parse_fault(spec)
        with self._lock:
            self._scripts[model].extend(faults)

    def release(self) -> None:
        """Let every `hold` request (present and future) answer."""
        self._gate.set()

    def count(self, model: str | None = None) -> int:
        """Requests received for `model` (all models when None)."""
        with self._lock:
            return self.counts[model] if model is not None else sum(self.counts.values())

    def wait_for(self, model: str | None, n: int, timeout: float = 5.0) -> bool:
        """Block until `model` (any model when None) has received `n` requests (a state change, not a sleep)."""
        with self._lock:
            got = (lambda: sum(self.counts.values())) if model is None else (lambda: self.counts[model])
            return self._lock.wait_for(lambda: got() >= n, timeout=timeout)

    # --- per request ---------------------------------------------------------------------------
    def _next_fault(self, model: str) -> str:
        with self._lock:
            self.counts[model] += 1
            script = self._scripts.get(model)
            if script:
                spec = script.popleft()
            elif self.exact:
                if not self._deck:  # every 100 requests hold exactly the configured share of each fault
                    self._deck = [f for f, p in self.rates.items() for _ in range(round(p * 100))]
                    self._deck += [self.default] * (100 - len(self._deck))
                    self.rng.shuffle(self._deck)
                spec = self._deck.pop()
            else:
                spec, roll = self.default, self.rng.random()
                for candidate, p in self.rates.items():
                    if roll < p:
                        spec = candidate
                        break
                    roll -= p
            self.faults[spec] += 1
            self.log.append((model, spec))
            self.arrivals.append((time.monotonic(), model, spec))
            self._lock.notify_all()
            return spec


def completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
    }


def chunk(model: str, delta: dict[str, Any], finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}] if usage is None else [],
    }
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


def _handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read counts, not logs
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return self._json(400, {"error": {"message": "request is not JSON", "type": "invalid_request_error"}})
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                return self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            model = str(request.get("model", ""))
            stream = bool(request.get("stream"))
            kind, arg = parse_fault(server._next_fault(model))
            try:
                self._answer(kind, arg, model, stream)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout): nothing to do
                self.close_connection = True

        def _answer(self, kind: str, arg: float, model: str, stream: bool) -> None:
            if kind == "status":
                return self._json(int(arg), {"error": {"message": f"injected {int(arg)}", "type": "server_error"}})
            if kind == "429":
                body = {"error": {"message": "injected rate limit", "type": "rate_limit_error"}}
                return self._json(429, body, {"Retry-After": f"{arg:g}"})
            if kind == "hang":
                server._stopping.wait(arg)
                self.close_connection = True
                return None
            if kind == "slow":
                server._stopping.wait(arg)
            if kind == "hold":
                server._gate.wait()
            if kind == "malformed":
                return self._raw(200, b'{"id": "chatcmpl-fault", "choices": [{"message": ', "application/json")
            text = server.says.get(model, f"{model} says ok")
            if stream:
                return self._stream(model, text, truncate=kind == "truncate", clean=arg == 1)
            if kind == "truncate":  # promise more bytes than are sent, then drop the connection
                data = json.dumps(completion(model, text)).encode()
                self.send_response(200)
                self.send_header("Connection", "close")  # so no client reuses the dropped connection
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return None
            return self._json(200, completion(model, text))

        def _stream(self, model: str, text: str, *, truncate: bool, clean: bool = False) -> None:
            self.send_response(200)
            if truncate:  # the connection is dropped after this response: say so, or a pooled client reuses it
                self.send_header("Connection", "close")
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            words = text.split(" ")
            events = [chunk(model, {"role": "assistant", "content": ""})]
            events += [chunk(model, {"content": (" " if i else "") + w}) for i, w in enumerate(words)]
            if truncate:  # two events, then the connection drops (or, `clean`, the stream just ends)
                for event in events[:2]:
                    self._chunk(event)
                if clean:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                self.close_connection = True
                return
            events.append(chunk(model, {}, finish="stop"))
            events.append(chunk(model, {}, usage={"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}))
            events.append(b"data: [DONE]\n\n")
            for event in events:
                self._chunk(event)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _json(self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
            self._raw(status, json.dumps(body).encode(), "application/json", headers)

        def _raw(self, status: int, data: bytes, ctype: str, headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

    return Handler


def parse_rates(text: str) -> dict[str, float]:
    """`"500=0.1,429:2=0.05"` -> {"500": 0.1, "429:2": 0.05}."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        spec, _, p = part.rpartition("=")
        if not spec:
            raise ValueError(f"rate {part!r} must look like FAULT=PROBABILITY")
        rates[spec] = float(p)
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="", help="FAULT=P,... e.g. 500=0.1,429:2=0.05,hang=0.01")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    server = FaultServer(parse_rates(args.rates), seed=args.seed).start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print(json.dumps({"requests": dict(server.counts), "faults": dict(server.faults)}))


if __name__ == "__main__":
    main()
