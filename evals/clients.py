"""The real Agent Inbox and Agent Chat UI against a real `langgraph dev`: each approves a waiting action.

    python -m evals.clients build --apps DIR   # npm install + next build of DIR/agent-inbox, DIR/agent-chat-ui
    python -m evals.clients run --apps DIR [--out evals/reports/clients] [--json]

The apps' source is not part of this project: clone langchain-ai/agent-inbox and langchain-ai/agent-chat-ui into
DIR yourself (`make test-clients` uses CLIENTS_DIR). `build` installs them from the npm registry and builds them
for production; Google Fonts cannot be fetched offline, so the build points Next.js's own test hook
(NEXT_FONT_GOOGLE_MOCKED_RESPONSES) at a local DejaVu font (`FONT_MOCK`).

`run` seeds a data directory, creates keys (demo: customer, rita: agent), starts `langgraph dev` on loopback with
auth on, then for each app: demo asks for something that needs approval (langgraph-sdk), the app is served with
`next start` on loopback, headless Chromium (Debian's chromium + chromium-driver, through selenium) enters the
deployment URL, graph id `supervisor` and rita's key the way a person would, finds the interrupt, checks that it
is rendered as a form with buttons and the action's arguments (not raw JSON, no nulls), and clicks approve.
langgraph-sdk then checks that the thread finished, that the shop database holds exactly one new refund for the
order, and that the answer confirms it. Screenshots go to `--out`. No step reaches anything but loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evals.devserver import REPO, DevServerFailed, dev_server, free_port, serving

APPS = ("agent-inbox", "agent-chat-ui")
GRAPH = "supervisor"
OUT = REPO / "evals" / "reports" / "clients"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-default-apps", "--window-size=1400,1800",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # the apps' pages also ask Google Fonts: no
)  # fmt: skip
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# next/font/google's test hook: a module whose every key answers with this CSS; the font file is read from disk.
FONT_MOCK = """// Offline next/font/google (NEXT_FONT_GOOGLE_MOCKED_RESPONSES): every request gets a local font.
const css = `/* latin */
@font-face {
  font-family: 'Inter';
  font-style: normal;
  font-weight: 100 900;
  font-display: swap;
  src: url(%s) format('truetype');
}
`;
module.exports = new Proxy({}, { get: () => css });
"""
# Per app: the ticket demo sends, the tool that waits for approval, the order it touches, and what the answer says.
TICKETS = {
    "agent-inbox": ("I want a refund for order 1004, the monitor is faulty.", "issue_refund", 1004, "refund"),
    "agent-chat-ui": ("Please cancel order 1008", "cancel_order", 1008, "cancel"),
}
WAIT_S = 60.0


class ClientsUnavailable(RuntimeError):
    """Something the run needs is not here (an app's build, chromium, selenium): the reason says what."""


class ClientCheckFailed(AssertionError):
    """An app did not show or approve the interrupt as it should; the message says what was seen."""


@dataclass
class AppResult:
    app: str
    commit: str
    version: str
    thread_id: str
    action: str
    rendered: dict[str, Any] = field(default_factory=dict)
    outcome: dict[str, Any] = field(default_factory=dict)
    screenshots: list[str] = field(default_factory=list)
    ok: bool = False
    error: str = ""


# ---------------------------------------------------------------- what must be here


def app_dir(apps: Path, name: str) -> Path:
    return apps / name


def missing(apps: Path) -> str | None:
    """Why `run` cannot go ahead here (None: it can)."""
    for name in APPS:
        path = app_dir(apps, name)
        if not (path / "package.json").exists():
            return f"{path} is not a checkout of langchain-ai/{name} (clone it there)"
        if not (path / ".next" / "BUILD_ID").exists():
            return f"{name} is not built: python -m evals.clients build --apps {apps}"
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            return f"{binary} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[clients]')"
    return None


def describe(path: Path) -> tuple[str, str]:
    """(commit, version of the app's langgraph-sdk): the commit from git when the checkout has one."""
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    if (path / "COMMIT").exists():
        commit = (path / "COMMIT").read_text().strip()
    sdk = path / "node_modules" / "@langchain" / "langgraph-sdk" / "package.json"
    version = json.loads(sdk.read_text())["version"] if sdk.exists() else "?"
    return commit, f"@langchain/langgraph-sdk {version}"


# ---------------------------------------------------------------- build


def build(apps: Path) -> None:
    """npm install and a production build of each app (webpack for Next 16: its Turbopack ignores the font hook)."""
    mock = apps / "font-mock.cjs"
    mock.write_text(FONT_MOCK % FONT)
    env = {"NEXT_TELEMETRY_DISABLED": "1", "NEXT_FONT_GOOGLE_MOCKED_RESPONSES": str(mock),
           "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}  # fmt: skip
    for name in APPS:
        path = app_dir(apps, name)
        if not (path / "package.json").exists():
            raise ClientsUnavailable(f"{path} is not a checkout of langchain-ai/{name}")
        # agent-inbox's tree has a peer conflict (@y/y) that only yarn's lockfile settles; npm needs legacy peers.
        _npm(["npm", "install", "--no-audit", "--no-fund", "--legacy-peer-deps"], path, env)
        major = int(json.loads((path / "node_modules/next/package.json").read_text())["version"].split(".")[0])
        _npm([str(path / "node_modules/.bin/next"), "build", *(["--webpack"] if major >= 16 else [])], path, env)


def _npm(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    import os

    done = subprocess.run(argv, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ClientsUnavailable(f"{' '.join(argv[:2])} failed in {cwd}:\n{(done.stdout + done.stderr)[-3000:]}")


# ---------------------------------------------------------------- the served API side


@dataclass
class Served:
    url: str
    keys: dict[str, str]
    data: Path

    def client(self, who: str) -> Any:
        from langgraph_sdk import get_sync_client

        return get_sync_client(url=self.url, api_key=self.keys[who])


def create_keys(data: Path) -> dict[str, str]:
    from auth.keys import KeyStore

    store = KeyStore(data / "auth.sqlite")
    return {"demo": store.create("demo")[0], "rita": store.create("rita", "default", "agent")[0]}


def ticket_waiting(served: Served, text: str) -> str:
    """A new thread of demo's with `text`; returns its id once it waits for approval."""
    demo = served.client("demo")
    tid = str(demo.threads.create()["thread_id"])
    demo.runs.wait(tid, GRAPH, input={"messages": [{"role": "user", "content": text}]})
    status = demo.threads.get_state(tid)["values"].get("status")
    if status != "awaiting_approval":
        raise ClientCheckFailed(f"the ticket {text!r} did not stop for approval (status {status!r})")
    return tid


def refunds(data: Path, order_id: int) -> int:
    with contextlib.closing(sqlite3.connect(data / "shop.sqlite")) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM refunds WHERE order_id = ?", (order_id,)).fetchone()[0])


def finished(served: Served, tid: str, timeout_s: float = WAIT_S) -> dict[str, Any]:
    """The thread's state once it is idle and no longer waiting (ClientCheckFailed after `timeout_s`)."""
    rita = served.client("rita")
    deadline = time.monotonic() + timeout_s
    while True:
        thread = rita.threads.get(tid)
        if thread["status"] == "idle":
            state = rita.threads.get_state(tid)
            if not state["next"]:
                return dict(state)
        if thread["status"] == "error" or time.monotonic() > deadline:
            state = rita.threads.get_state(tid)
            raise ClientCheckFailed(
                f"thread {tid} did not finish after the approval: status {thread['status']}, next {state['next']}, "
                f"values.status {state['values'].get('status')!r}, error {state['values'].get('hitl')}"
            )
        time.sleep(0.5)  # polling another process's state


def outcome(served: Served, tid: str, order_id: int, before: int, says: str) -> dict[str, Any]:
    """Check that the approved action ran exactly once and the answer confirms it."""
    state = finished(served, tid)
    values = state["values"]
    result = values.get("action_result") or {}
    found = {
        "status": values.get("status"),
        "action_ok": bool(result.get("ok")),
        "approver": (values.get("approval") or {}).get("approver"),
        "new_refunds": refunds(served.data, order_id) - before,
        "answer": str(values.get("answer") or ""),
    }
    problems = []
    if found["status"] != "completed" or not found["action_ok"]:
        problems.append(f"the action did not complete: status {found['status']!r}, result {result}")
    if found["approver"] != "rita":
        problems.append(f"approved by {found['approver']!r}, not rita")
    if found["new_refunds"] != 1:
        problems.append(f"{found['new_refunds']} new refunds for order {order_id}, not exactly 1")
    if says not in found["answer"].lower():
        problems.append(f"the answer does not mention {says!r}: {found['answer'][:300]!r}")
    if problems:
        raise ClientCheckFailed("; ".join(problems))
    return found


# ---------------------------------------------------------------- the browser


@contextlib.contextmanager
def browser(profile: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)  # no Selenium Manager download
    try:
        yield driver
    finally:
        driver.quit()


def until(what: str, probe: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    """`probe()` once it returns something true (page elements re-render: stale lookups are retried)."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        try:
            if found := probe():
                return found
        except WebDriverException as exc:
            last = exc.msg or type(exc).__name__
        if time.monotonic() > deadline:
            raise ClientCheckFailed(f"timed out waiting for {what}{f' ({last})' if last else ''}")
        time.sleep(0.3)  # polling the page


def page_text(driver: Any) -> str:
    return str(driver.execute_script("return document.body ? document.body.innerText : ''"))


# React attaches its props to a DOM node when it hydrates it; before that the node ignores input.
HYDRATED = "return Object.keys(arguments[0]).some(k => k.startsWith('__reactProps'))"


def type_into(driver: Any, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    def typed() -> bool:
        element = driver.find_element(By.ID, element_id)
        if not driver.execute_script(HYDRATED, element):
            return False  # typed into server-rendered HTML, React would reset it when it hydrates
        element.clear()
        element.send_keys(value)
        return bool(driver.find_element(By.ID, element_id).get_attribute("value") == value)

    until(f"input #{element_id}", typed)


def fill(driver: Any, values: dict[str, str]) -> None:
    """Type each input's value and check that all of them still hold it (a redirect or re-mount clears a form)."""
    from selenium.webdriver.common.by import By

    def filled() -> bool:
        for element_id, value in values.items():
            if driver.find_element(By.ID, element_id).get_attribute("value") != value:
                type_into(driver, element_id, value)
        time.sleep(0.5)  # let a pending re-render land before checking again
        return all(driver.find_element(By.ID, k).get_attribute("value") == v for k, v in values.items())

    until(f"the form {list(values)}", filled)


# One script finds and clicks the button, so a re-render between finding and clicking cannot make it stale.
CLICK = """
const [label, within] = arguments;
const scope = within ? document.querySelector(within) : document;
if (!scope) return false;
for (const b of scope.querySelectorAll('button')) {
  const hydrated = Object.keys(b).some(k => k.startsWith('__reactProps'));  // before that, a click does nothing
  if (b.innerText.trim() === label && !b.disabled && b.offsetParent !== null && hydrated) {
    b.scrollIntoView({block: 'center'});
    b.click();
    return true;
  }
}
return false;
"""


def click_button(driver: Any, label: str, within: str = "") -> None:
    """Click the visible, enabled button whose text is `label` (inside `within`, a CSS selector, if given)."""
    until(f"a {label!r} button", lambda: driver.execute_script(CLICK, label, within))


def buttons(driver: Any) -> list[str]:
    return list(driver.execute_script(
        "return [...document.querySelectorAll('button')].filter(b => b.offsetParent !== null)"
        ".map(b => b.innerText.trim()).filter(t => t)"
    ))  # fmt: skip


def rendered(driver: Any, action: str, args: dict[str, Any], approve: str) -> dict[str, Any]:
    """What the page shows of the interrupt; ClientCheckFailed unless it is a form with the action's arguments."""
    text = page_text(driver)
    fields = driver.execute_script("return [...document.querySelectorAll('textarea, input')].map(e => e.value)")
    seen: dict[str, Any] = {
        "action": action in text,
        # each argument in a form field (editable), not only somewhere in the description
        "args": {k: any(str(v) in f or f"{v:g}" in f if isinstance(v, float) else str(v) in f for f in fields)
                 for k, v in args.items()},  # fmt: skip
        "buttons": buttons(driver),
        "raw_json": any(marker in text for marker in ('"action_request"', '"action_requests"', '"review_configs"')),
        "null": "null" in text.lower().split(),
    }
    problems = []
    if not seen["action"]:
        problems.append(f"the action {action} is not shown")
    if not all(seen["args"].values()):
        problems.append(f"arguments not in the form: {[k for k, v in seen['args'].items() if not v]}")
    if approve not in seen["buttons"]:
        problems.append(f"no {approve!r} button among {seen['buttons']}")
    if seen["raw_json"] or seen["null"]:
        problems.append("the interrupt is shown as raw JSON or with a null")
    if problems:
        raise ClientCheckFailed("; ".join(problems) + f"\npage text:\n{text[:2000]}")
    return seen


# ---------------------------------------------------------------- the two apps


def drive_inbox(driver: Any, app_url: str, served: Served, tid: str, action: str, shots: Callable[[str], str]) -> dict:
    """Agent Inbox: add an inbox (graph id, deployment URL), put the key in Settings, open the thread, Accept."""
    from selenium.webdriver.common.by import By

    driver.get(app_url + "/")
    until("the add-inbox dialog", lambda: driver.find_elements(By.ID, "graph-id"))
    fill(driver, {"graph-id": GRAPH, "deployment-url": served.url, "name": "Switchboard"})
    click_button(driver, "Add Inbox", within="form")
    until("the inbox saved", lambda: driver.execute_script("return localStorage.getItem('inbox:agent_inboxes')"))
    listing = app_url + "/?inbox=interrupted&offset=0&limit=10"
    # The app reloads the page once by itself: when its first list comes back empty (it does: that search goes out
    # without a key and gets 401) inbox-view.tsx sets localStorage `inbox-refreshed-<date>`, re-runs its inbox-id
    # backfill and calls window.location.reload() 100 ms later. Acting before that reload loses the work (a popover
    # closes, a navigation races it), so wait until the page in front of us was loaded with that flag already set.
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FLAGGED_AT_LOAD})
    driver.get(listing)
    until("the Inbox's one-time reload", lambda: driver.execute_script(RELOADED))
    driver.get(listing)
    until("the inbox list", lambda: "Interrupted" in page_text(driver) and not driver.find_elements(By.ID, "graph-id"))
    until("the list loaded", lambda: "Loading" not in page_text(driver))
    # The key goes in Settings (the add dialog asks for one only for https hosts); its field writes it to
    # localStorage on every change. Even after the reload, clicking the Settings trigger found it re-mounted
    # (stale) on every try for 20 s here, so the key is put where that field stores it and the list reloaded.
    driver.execute_script("localStorage.setItem('inbox:langchain_api_key', arguments[0])", served.keys["rita"])
    driver.get(listing)
    until(f"the waiting {action} in the list", lambda: action in (text := page_text(driver)) and "Loading" not in text)
    shots("inbox-list")
    clicked: list[float] = []

    def thread_view() -> bool:
        if "Accept" in buttons(driver):
            return True
        if not clicked or time.monotonic() - clicked[-1] > 3:  # a click before the row hydrated does nothing
            if driver.execute_script(CLICK_TEXT, action):  # the newest row first: this run's thread
                clicked.append(time.monotonic())
        return False

    try:
        until("the thread view", thread_view)
    except ClientCheckFailed as exc:
        inboxes = driver.execute_script("return localStorage.getItem('inbox:agent_inboxes')")
        raise ClientCheckFailed(
            f"{exc}: at {driver.current_url}, inboxes {inboxes}\npage text:\n{page_text(driver)[:1500]}"
        ) from None
    args = _interrupt_args(served, tid)
    seen = rendered(driver, action, args, "Accept")
    shots("inbox-thread")
    click_button(driver, "Accept")
    return seen


# Run before each document's own scripts (CDP): whether the Inbox's auto-refresh flag was already stored when this
# document loaded; such a document never reloads itself.
FLAGGED_AT_LOAD = """
window.__sbFlaggedAtLoad = Object.keys(localStorage).some(k => k.startsWith('inbox-refreshed-'));
"""
# The Inbox's one-time reload is behind us: the current document was loaded with the flag already set.
RELOADED = "return window.__sbFlaggedAtLoad === true && document.readyState === 'complete'"


def _wait_briefly(probe: Callable[[], Any], timeout_s: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the page
    return found


CLICK_TEXT = """
const text = arguments[0];
const all = [...document.querySelectorAll('body *')].filter(e => e.offsetParent !== null && e.innerText
  && e.innerText.trim() === text && ![...e.children].some(c => c.innerText && c.innerText.trim() === text));
if (!all.length) return false;
all[0].click();
return true;
"""


def drive_chat(driver: Any, app_url: str, served: Served, tid: str, action: str, shots: Callable[[str], str]) -> dict:
    """Agent Chat UI: the setup form (deployment URL, graph id, key), then the thread by id, Approve."""
    from selenium.webdriver.common.by import By

    driver.get(app_url + "/")
    until("the setup form", lambda: driver.find_elements(By.ID, "apiUrl"))
    fill(driver, {"apiUrl": served.url, "assistantId": GRAPH, "apiKey": served.keys["rita"]})
    click_button(driver, "Continue")
    until("the chat", lambda: "apiUrl=" in driver.current_url and not driver.find_elements(By.ID, "apiUrl"))
    driver.get(driver.current_url + f"&threadId={tid}")
    until(f"the {action} interrupt", lambda: action in page_text(driver) and "Approve" in buttons(driver))
    args = _interrupt_args(served, tid)
    seen = rendered(driver, action, args, "Approve")
    shots("chat-thread")
    click_button(driver, "Approve")
    return seen


def _interrupt_args(served: Served, tid: str) -> dict[str, Any]:
    state = served.client("rita").threads.get_state(tid)
    for task in state["tasks"]:
        for intr in task.get("interrupts") or []:
            return dict(intr["value"]["action_requests"][0]["args"])
    raise ClientCheckFailed(f"thread {tid} has no interrupt")


DRIVERS = {"agent-inbox": drive_inbox, "agent-chat-ui": drive_chat}


# ---------------------------------------------------------------- run


@contextlib.contextmanager
def next_app(path: Path, logs: Path) -> Iterator[str]:
    """`next start` of a built app on a free loopback port."""
    import os

    port = free_port()
    argv = [str(path / "node_modules/.bin/next"), "start", str(path), "-p", str(port), "-H", "127.0.0.1"]
    env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}
    with serving(argv, port, "/", logs, what=f"next start ({path.name})", timeout_s=60, poll_s=0.5, env=env) as url:
        yield url


def run_app(name: str, apps: Path, served: Served, out: Path, work: Path) -> AppResult:
    text, action, order_id, says = TICKETS[name]
    commit, version = describe(app_dir(apps, name))
    result = AppResult(app=name, commit=commit, version=version, thread_id="", action=action)
    taken = 0

    def shots(label: str) -> str:
        nonlocal taken
        taken += 1
        path = out / f"{name}-{taken}-{label}.png"
        driver.save_screenshot(str(path))
        result.screenshots.append(str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path))
        return str(path)

    before = refunds(served.data, order_id)
    result.thread_id = ticket_waiting(served, text)
    profile = Path(tempfile.mkdtemp(prefix=f"{name}-profile-", dir=work))  # a fresh browser: no stored inboxes
    with next_app(app_dir(apps, name), work / f"{name}.log") as app_url, browser(profile) as driver:
        try:
            result.rendered = DRIVERS[name](driver, app_url, served, result.thread_id, action, shots)
            result.outcome = outcome(served, result.thread_id, order_id, before, says)
            with contextlib.suppress(Exception):
                time.sleep(2)  # let the app redraw after the run, for the record only
                shots("after")
            result.ok = True
        except ClientCheckFailed as exc:
            result.error = str(exc)
            with contextlib.suppress(Exception):
                shots("failed")
    return result


def run(apps: Path, out: Path = OUT, *, data: Path | None = None, model_cache: Path | None = None) -> list[AppResult]:
    """Both apps end to end; `data` is a seeded data directory to copy (default: seed a new one)."""
    if problem := missing(apps):
        raise ClientsUnavailable(problem)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="switchboard-clients-") as tmp:
        work = Path(tmp)
        served_data = work / "data"
        cache = model_cache or work / "models"
        if data is not None:
            shutil.copytree(data, served_data)
        else:
            from config.settings import Settings
            from graphs.services import seed
            from memory.embeddings import get_embedder

            seed(Settings(data_dir=served_data), embedder=get_embedder(cache))
        keys = create_keys(served_data)
        with dev_server(served_data, cache, work / "server.log",
                        drop_env=("SWITCHBOARD_AUTH_ALLOW_STUDIO", "SWITCHBOARD_AUTH_DB")) as url:  # fmt: skip
            served = Served(url=url, keys=keys, data=served_data)
            return [run_app(name, apps, served, out, work) for name in APPS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.clients", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    bp = sub.add_parser("build", help="npm install + next build of both apps")
    bp.add_argument("--apps", type=Path, required=True)
    rp = sub.add_parser("run", help="both apps approve a waiting action")
    rp.add_argument("--apps", type=Path, required=True)
    rp.add_argument("--out", type=Path, default=OUT)
    rp.add_argument("--data", type=Path, help="a seeded data directory to copy (default: seed one)")
    rp.add_argument("--model-cache", type=Path)
    rp.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            build(args.apps)
            return 0
        results = run(args.apps, args.out, data=args.data, model_cache=args.model_cache)
    except (ClientsUnavailable, DevServerFailed) as exc:
        print(f"clients: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for r in results:
            print(f"{r.app} {r.commit[:12]} ({r.version}): {'ok' if r.ok else 'FAILED'} thread {r.thread_id}")
            print(f"  rendered {r.rendered}\n  outcome {r.outcome}" + (f"\n  error {r.error}" if r.error else ""))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
