"""Settings are read once: config/settings.py is the only module that reads the environment (issue 10)."""

from __future__ import annotations

import ast
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import app
from config.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SETTINGS_MODULE = "config/settings.py"
SKIPPED_DIRS = {"tests", "notebooks", "node_modules", "__pycache__"}  # tests set up environments on purpose

# Modules that touch the environment although they are not config/settings.py, each for a reason of its own.
ALLOWED = {
    # A process entry point: turns Chroma's telemetry off before chromadb is imported; Chroma reads only its own
    # variable. No Switchboard setting is read.
    "app.py": "sets ANONYMIZED_TELEMETRY for chromadb",
    # The LangSmith and OpenTelemetry SDKs are configured through their own variables (LANGSMITH_*, OTEL_*); this
    # start-up step reads and sets those for them and reads no SWITCHBOARD_* setting.
    "observability/tracing.py": "LANGSMITH_* / OTEL_* for the tracing SDKs",
    # The local-cluster launcher (`make cluster`) is a process of its own, configured by its CLUSTER_* variables;
    # it starts the service (passing settings down as SWITCHBOARD_* to the instances) but never runs inside it.
    "cluster/up.py": "CLUSTER_* of the cluster launcher process",
    # A load-generating client (`app.py bench load`): the API key it sends is the client's, not a service setting.
    "bench/load.py": "the load client's SWITCHBOARD_API_KEY",
}


def _modules() -> Iterator[Path]:
    for path in sorted(REPO.rglob("*.py")):
        rel = path.relative_to(REPO)
        if rel.parts[0].startswith(".") or any(part in SKIPPED_DIRS for part in rel.parts):
            continue
        yield path


def environment_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) for every read or write of the process environment in `source`.

    `os.environ`, `os.environb`, `os.getenv`, `os.putenv`, `os.unsetenv` (also under an alias, or imported by name)
    count; `{**os.environ, ...}` does not: it hands the environment on to a child process unread.
    """
    tree = ast.parse(source)
    os_names = {"os"}
    names = {"environ", "environb", "getenv", "putenv", "unsetenv"}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {a.asname or a.name for a in node.names if a.name == "os"}
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [(node.lineno, f"from os import {a.name}") for a in node.names if a.name in names]
    handed_on = {
        id(value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values, strict=True)
        if key is None
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in names
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
            and id(node) not in handed_on
        ):
            found.append((node.lineno, f"os.{node.attr}"))
    return sorted(found)


def test_the_scan_sees_reads_and_lets_a_handed_on_environment_pass() -> None:
    code = (
        "import os\nimport os as o\nfrom os import getenv\n"
        "a = os.environ.get('X')\nb = o.getenv('Y')\nc = {**os.environ, 'Z': '1'}\nd = dict(os.environ)\n"
    )
    assert [line for line, _ in environment_uses(code)] == [3, 4, 5, 7]


def test_only_settings_reads_the_environment() -> None:
    offenders, used = [], set()
    for path in _modules():
        rel = path.relative_to(REPO).as_posix()
        uses = environment_uses(path.read_text(encoding="utf-8"))
        if not uses or rel == SETTINGS_MODULE:
            continue
        if rel in ALLOWED:
            used.add(rel)
            continue
        offenders += [f"{rel}:{line}: {what}" for line, what in uses]
    assert not offenders, "read settings through config.settings.Settings, passed down:\n" + "\n".join(offenders)
    assert used == set(ALLOWED), f"allow-list entries that no longer touch the environment: {set(ALLOWED) - used}"


def test_settings_module_does_read_the_environment() -> None:
    assert environment_uses((REPO / SETTINGS_MODULE).read_text(encoding="utf-8"))  # the scan is not blind


class _Recorder(BaseHTTPRequestHandler):
    paths: list[str] = []

    def _answer(self) -> None:
        type(self).paths.append(self.path)
        body = json.dumps({"error": "recorded"}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def chroma_stand_in() -> Iterator[str]:
    """A loopback HTTP server that records what a Chroma client asks it (and answers 503)."""
    _Recorder.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_chroma_url_from_the_environment_is_the_long_term_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chroma_stand_in: str, model_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(data))
    monkeypatch.setenv("SWITCHBOARD_MODEL_CACHE", str(model_cache))
    monkeypatch.setenv("SWITCHBOARD_CHROMA_URL", chroma_stand_in)
    assert Settings.from_env().knowledge_target == chroma_stand_in
    doc = tmp_path / "note.md"
    doc.write_text("# Opening hours\n\nThe shop answers tickets around the clock.\n", encoding="utf-8")
    assert app.main(["ingest", str(doc)]) != 0  # the stand-in refuses: the ingest went to the server...
    assert any(p.startswith("/api/") for p in _Recorder.paths), _Recorder.paths
    assert not (data / "chroma").exists()  # ...and not into an embedded store
    assert "error" in capsys.readouterr().err
