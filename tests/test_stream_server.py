"""With a model configured, the response generator's tokens stream on `messages` over the served API.

A real `langgraph dev` whose model is a loopback OpenAI-compatible server this module starts (bench.fault_server,
no faults scripted: it streams its reply word by word), driven by langgraph-sdk. What a client sees:

- `generate_response` streams the model's answer token by token (metadata `langgraph_node`), only for an answer that
  goes out unreviewed; the classifier cascade, the rolling summary and a draft a human reviews are not streamed.
- The thread's final AI message is authoritative. When the streamed text goes out unchanged it keeps the streamed
  message's id (one message, no repeat on the stream); when anything rewrote it (unsupported claims -> the offline
  answer, cited sources appended, the output guard's redaction, a reviewer) `guard_output` sends the answer as a new,
  complete message on `messages`, and the streamed draft is not in the thread.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.fault_server import FaultServer
from config.settings import Settings
from tests.devserver import dev_server, langgraph_cli

pytestmark = pytest.mark.server

DELIVERY = "How long does delivery take?"
CITED = "Standard delivery takes 2-4 business days [kb-delivery-times-by-region]."
MODELS = ("sb-primary", "gpt-4o")  # SWITCHBOARD_LLM_MODEL, and the strong tier's model (config/error-policies.yaml)


@dataclass
class Served:
    url: str
    keys: dict[str, str]
    model: FaultServer

    def client(self, who: str = "demo") -> Any:
        from langgraph_sdk import get_sync_client

        return get_sync_client(url=self.url, api_key=self.keys[who])

    def say(self, text: str) -> None:
        for model in MODELS:
            self.model.says[model] = text


@pytest.fixture(scope="module")
def served(seeded_settings: Settings, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    langgraph_cli()
    from auth.keys import KeyStore

    data = tmp_path_factory.mktemp("stream-server") / "data"
    shutil.copytree(seeded_settings.data_dir, data)
    store = KeyStore(data / "auth.sqlite")
    keys = {"demo": store.create("demo")[0], "root": store.create("stream-root", "default", "admin")[0]}
    logs = tmp_path_factory.mktemp("stream-server-logs") / "server.log"  # outside the watched project folder
    drop = ("SWITCHBOARD_AUTH_ALLOW_STUDIO", "SWITCHBOARD_AUTH_DB", "SWITCHBOARD_REDIS_URL",
            "SWITCHBOARD_LLM_FALLBACK_MODEL")
    with FaultServer() as model:
        env = {"SWITCHBOARD_LLM_BASE_URL": model.url, "SWITCHBOARD_LLM_MODEL": MODELS[0]}
        with dev_server(data, model_cache, logs, drop_env=drop, env=env) as url:
            yield Served(url=url, keys=keys, model=model)


def run(served: Served, text: str, stream_mode: Any, assistant: str = "supervisor") -> tuple[str, list[Any]]:
    client = served.client()
    tid = client.threads.create()["thread_id"]
    parts = list(client.runs.stream(tid, assistant, input={"messages": [{"role": "user", "content": text}]},
                                    stream_mode=stream_mode))  # fmt: skip
    assert not [p for p in parts if p.event == "error"], [p.data for p in parts if p.event == "error"]
    return tid, parts


def tuples(parts: list[Any]) -> list[tuple[dict, dict]]:
    """`messages-tuple` events: (message chunk, metadata)."""
    return [(p.data[0], p.data[1]) for p in parts if p.event == "messages"]


def test_the_answer_streams_token_by_token_and_is_the_threads_final_message(served: Served) -> None:
    served.say(CITED)
    calls = served.model.count()
    tid, parts = run(served, DELIVERY, "messages-tuple")
    final = served.client().threads.get_state(tid)["values"]
    assert final["status"] == "completed" and final["answer"] == CITED
    streamed = tuples(parts)
    nodes = {meta["langgraph_node"] for _, meta in streamed}
    assert nodes == {"generate_response"}, nodes  # nothing else speaks on `messages` (guard_output: same message)
    tokens = [m for m, _ in streamed if m["content"]]
    assert len(tokens) >= 5 and all(m["type"] == "AIMessageChunk" for m in tokens)
    assert "".join(m["content"] for m in tokens) == CITED
    assert {m["id"] for m, _ in streamed} == {final["messages"][-1]["id"]}  # the streamed message is the final one
    assert final["messages"][-1]["content"] == CITED
    assert served.model.count() == calls + 1  # one real model call, streamed


def test_all_four_modes_together_tokens_arrive_before_the_node_finishes(served: Served) -> None:
    served.say(CITED)
    tid, parts = run(served, DELIVERY, ["messages", "custom", "updates", "values"])
    kinds = [p.event for p in parts]
    assert {"messages/metadata", "messages/partial", "custom", "updates", "values"} <= set(kinds), set(kinds)
    (meta,) = [p.data for p in parts if p.event == "messages/metadata"]
    ((mid, about),) = meta.items()
    assert about["metadata"]["langgraph_node"] == "generate_response"
    partials = [(i, p.data[0]) for i, p in enumerate(parts) if p.event == "messages/partial"]
    texts = [m["content"] for _, m in partials]
    assert len(set(texts)) >= 5 and texts[-1] == CITED  # the message grows chunk by chunk
    assert all(m["id"] == mid and CITED.startswith(m["content"]) for _, m in partials)
    done = next(i for i, p in enumerate(parts) if p.event == "updates" and "generate_response" in p.data)
    assert partials[0][0] < done  # streamed while the node ran, not replayed afterwards
    custom = [p.data for p in parts if p.event == "custom"]
    assert {"node": "generate_response", "event": "done"}.items() <= next(
        e for e in custom if e["node"] == "generate_response"
    ).items()
    values = [p.data for p in parts if p.event == "values"]
    assert values[-1]["answer"] == CITED and values[-1]["messages"][-1]["id"] == mid
    assert served.client().threads.get_state(tid)["values"]["messages"][-1]["id"] == mid


def test_an_unsupported_claim_streams_but_the_grounded_answer_is_what_the_thread_keeps(served: Served) -> None:
    claim = "Your refund of EUR 480.00 went out on 2026-11-30."  # no fact says so
    served.say(claim)
    tid, parts = run(served, DELIVERY, "messages-tuple")
    final = served.client().threads.get_state(tid)["values"]
    assert "unsupported_claim" in final["flags"]
    assert "480" not in final["answer"] and final["answer"] == final["messages"][-1]["content"]
    streamed = tuples(parts)
    draft = [m for m, meta in streamed if meta["langgraph_node"] == "generate_response"]
    assert "".join(m["content"] for m in draft) == claim  # what the client saw streaming...
    (sent,) = [m for m, meta in streamed if meta["langgraph_node"] == "guard_output"]
    assert sent["type"] == "ai" and sent["content"] == final["answer"]  # ...then the answer, whole, as a new message
    assert sent["id"] == final["messages"][-1]["id"] != draft[0]["id"]
    assert draft[0]["id"] not in {m["id"] for m in final["messages"]}  # the streamed draft is not in the thread


def test_a_draft_for_review_is_not_streamed(served: Served) -> None:
    """A strict assistant reviews what the default one sends (tests/test_hitl_server.py): its draft stays unseen."""
    text = "Your order is on its way."
    served.say(text)
    root = served.client("root")
    strict = root.assistants.create("supervisor", name="stream-strict", context={"auto_threshold": 1.0})
    calls = served.model.count()
    tid, parts = run(served, "Where is my order 1006?", ["messages-tuple", "updates"], assistant=strict["assistant_id"])
    state = served.client().threads.get_state(tid)
    assert state["next"] == ["review_gate"] and state["values"]["status"] == "awaiting_review"
    assert served.model.count() == calls + 1 and state["values"]["draft"].startswith(text)  # the model wrote it
    assert tuples(parts) == []  # but the customer saw none of it before a human did


def test_what_the_output_guard_redacts_after_streaming_arrives_as_a_new_whole_message(served: Served) -> None:
    """The tokens streamed before guard_output ran: the client saw the address, and the thread's final message (the
    authoritative one, which a client shows once the run ends) has it redacted, sent whole from guard_output."""
    leaky = CITED + " Questions? Write to ops-lead@example.org."
    served.say(leaky)
    tid, parts = run(served, DELIVERY, "messages-tuple")
    final = served.client().threads.get_state(tid)["values"]
    assert "pii:email" in final["flags"] and "ops-lead@example.org" not in final["answer"]
    assert final["answer"].startswith(CITED) and final["messages"][-1]["content"] == final["answer"]
    streamed = tuples(parts)
    draft = [m for m, meta in streamed if meta["langgraph_node"] == "generate_response"]
    assert "".join(m["content"] for m in draft) == leaky
    (sent,) = [m for m, meta in streamed if meta["langgraph_node"] == "guard_output"]
    assert sent["content"] == final["answer"] and sent["id"] == final["messages"][-1]["id"] != draft[0]["id"]
