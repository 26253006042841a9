"""The load benchmark's client (bench/load.py): loopback only, clear argument errors, the empty-stream fallback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bench.load import loopback_urls, main, one_ticket, percentile


@pytest.mark.parametrize("url", ["http://10.0.0.5:8123", "http://example.com:80", "ftp://127.0.0.1:21", "http://127.0.0.1"])
def test_only_loopback_servers_are_targets(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        loopback_urls(url)


def test_several_instances_are_comma_separated() -> None:
    assert loopback_urls("http://127.0.0.1:1/, http://localhost:2") == ["http://127.0.0.1:1", "http://localhost:2"]


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_API_KEY", raising=False)
    assert main(["--url", "http://127.0.0.1:9"]) == 2
    assert "apikey create" in capsys.readouterr().err
    assert main(["--url", "http://192.168.1.2:9", "--key", "sb_x"]) == 2
    assert main(["--url", "http://127.0.0.1:9", "--key", "sb_x", "--clients", "0"]) == 2


def test_percentiles_interpolate() -> None:
    assert percentile([], 95) == 0.0
    assert percentile([10.0, 20.0, 30.0, 40.0, 50.0], 50) == 30.0
    assert percentile([10.0, 20.0], 95) == pytest.approx(19.5)


class Part:
    def __init__(self, event: str, data: Any) -> None:
        self.event, self.data = event, data


class FakeClient:
    """A langgraph-sdk client whose stream comes back with `parts` (maybe none) and whose run ends `status`."""

    def __init__(self, parts: list[Part], status: str = "success") -> None:
        self.parts, self.status = parts, status
        self.calls: list[str] = []
        outer = self

        class Threads:
            async def create(self) -> dict[str, str]:
                return {"thread_id": "t1"}

            async def get_state(self, thread: str) -> dict[str, Any]:
                outer.calls.append("get_state")
                return {"values": {"answer": "from the state", "status": "completed"}}

        class Runs:
            async def stream(self, *args: Any, **kwargs: Any) -> Any:
                for part in outer.parts:
                    yield part

            async def list(self, thread: str, limit: int = 1) -> list[dict[str, str]]:
                outer.calls.append("list")
                return [{"run_id": "r1"}]

            async def join(self, thread: str, run_id: str) -> dict[str, Any]:
                outer.calls.append(f"join:{run_id}")
                return {}

            async def get(self, thread: str, run_id: str) -> dict[str, str]:
                return {"status": outer.status}

        self.threads, self.runs = Threads(), Runs()


def test_an_empty_stream_falls_back_to_the_thread_state() -> None:
    client = FakeClient([])
    values, empty = asyncio.run(one_ticket(client, "hi", timeout_s=5))
    assert empty and values["answer"] == "from the state"
    assert client.calls == ["list", "join:r1", "get_state"]


def test_a_full_stream_needs_no_fallback() -> None:
    client = FakeClient([Part("metadata", {"run_id": "r9"}), Part("values", {"answer": "streamed"})])
    values, empty = asyncio.run(one_ticket(client, "hi", timeout_s=5))
    assert not empty and values == {"answer": "streamed"} and client.calls == []


def test_a_run_that_did_not_succeed_is_an_error() -> None:
    client = FakeClient([Part("metadata", {"run_id": "r9"}), Part("values", {"answer": "x"})], status="error")
    with pytest.raises(RuntimeError, match="run ended error"):
        asyncio.run(one_ticket(client, "hi", timeout_s=5))


def test_an_updates_stream_reads_the_answer_from_the_thread_state() -> None:
    client = FakeClient([Part("metadata", {"run_id": "r9"}), Part("updates", {"guard_input": {}})])
    values, empty = asyncio.run(one_ticket(client, "hi", timeout_s=5, stream_mode="updates"))
    assert not empty and values["answer"] == "from the state"
    assert client.calls == ["get_state"]  # the stream ended, so the run did: no join


def test_an_updates_stream_with_only_metadata_counts_as_empty() -> None:
    client = FakeClient([Part("metadata", {"run_id": "r9"})])
    values, empty = asyncio.run(one_ticket(client, "hi", timeout_s=5, stream_mode="updates"))
    assert empty and values["answer"] == "from the state" and client.calls == ["join:r9", "get_state"]


def test_a_stream_cut_while_the_run_still_runs_joins_it() -> None:
    client = FakeClient([Part("metadata", {"run_id": "r9"}), Part("values", {"answer": "partial"})], status="running")
    with pytest.raises(RuntimeError, match="run ended running"):
        asyncio.run(one_ticket(client, "hi", timeout_s=5))
    assert client.calls == ["join:r9", "get_state"]
