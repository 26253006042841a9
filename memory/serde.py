"""What every checkpointer of ours writes: customer text redacted, everything encrypted at rest.

`checkpoint_serde(settings)` is LangGraph's `EncryptedSerializer` (AES-256-GCM with the PII key,
`guards.vault`) around `RedactingSerializer(JsonPlusSerializer())`. It is shared by the SQLite, Postgres and
in-memory checkpointers (`memory.checkpointer.open_checkpointer`), and covers checkpoints, channel blobs and
pending writes alike:

- customer messages are redacted before they are serialised (`guards.intake.redact_customer_messages`), so
  even a graph invoked directly, not through an entry point that admits its input, never stores the raw text;
- what must be kept (the customer's own data from identity-checked tools, an action waiting for approval) is
  stored only encrypted. Checkpoints written without encryption (before this serializer) still load.
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from guards.intake import redact_customer_messages

__all__ = ["Boxed", "RedactingSerializer", "checkpoint_serde"]


class Boxed:
    """A string channel value sent through the serializer where a checkpointer would store it in plain text
    (Postgres keeps `str` values inline in the checkpoint's JSONB, past any serde); it loads as the string."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value


class RedactingSerializer(SerializerProtocol):
    """Redacts PII in customer messages, then serialises with `inner`."""

    def __init__(self, inner: SerializerProtocol | None = None) -> None:
        self.inner = inner or JsonPlusSerializer()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if isinstance(obj, Boxed):
            obj = obj.value
        return self.inner.dumps_typed(redact_customer_messages(obj))

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return self.inner.loads_typed(data)


def checkpoint_serde(settings: Any) -> EncryptedSerializer:
    """The serializer for these settings' PII key (SWITCHBOARD_PII_KEY, else data_dir/pii.key)."""
    from guards.vault import vault_for

    return EncryptedSerializer(vault_for(settings).cipher(), RedactingSerializer())
