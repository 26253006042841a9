"""Least privilege: config/permissions.yaml says which graph node may call which business tool.

`load_permissions` validates the file at start-up (an unknown node, tool or key is one clear line); the one
door to the tools (`tools.registry.execute`) asks `Permissions.allows` on every call. The node names are a
`Literal` (`NodeName`), so a call site naming a node that does not exist is a type error too.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

NodeName = Literal[
    "guard_input",
    "compress_context",
    "classify_intent",
    "supervisor",
    "retrieve_knowledge",
    "analyze_technical",
    "plan_action",
    "request_approval",
    "execute_action",
    "generate_response",
    "review_gate",
    "escalate",
    "guard_output",
    "remember",
]
"""Every node of the support graph, in graph order (graphs.supervisor builds its nodes from this list)."""
NODE_NAMES: tuple[str, ...] = get_args(NodeName)

Mode = Literal["call", "dry_run"]


class NodeGrant(BaseModel):
    """The tools one node may use: `call` runs them; `dry_run` only checks a write tool's preconditions."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    call: frozenset[str] = frozenset()
    dry_run: frozenset[str] = frozenset()


class Permissions(BaseModel):
    """Everything in config/permissions.yaml, validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: Literal[1] = 1
    nodes: dict[NodeName, NodeGrant] = Field(default_factory=dict)

    def allows(self, node: NodeName, tool: str, *, dry_run: bool = False) -> bool:
        """True when `node` may use `tool` (a `call` grant covers the dry run too)."""
        grant = self.nodes.get(node)
        if grant is None:
            return False
        return tool in grant.call or (dry_run and tool in grant.dry_run)

    def tools_of(self, node: NodeName, mode: Mode = "call") -> frozenset[str]:
        grant = self.nodes.get(node)
        if grant is None:
            return frozenset()
        return grant.call if mode == "call" else grant.call | grant.dry_run


def _one_line(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "[key]") or "(top level)"
        if err["type"] == "literal_error" and err["loc"][0] == "nodes" and err["loc"][-1] == "[key]":
            parts.append(f"nodes: unknown node {err['input']!r} (graph nodes: {', '.join(NODE_NAMES)})")
            continue
        got = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {err.get('input')!r})"
        parts.append(f"{loc}: {err['msg']}{got}")
    return f"{path}: " + "; ".join(parts)


@lru_cache(maxsize=8)
def load_permissions(path: Path, tools: tuple[str, ...], read_tools: tuple[str, ...] = ()) -> Permissions:
    """Load and validate config/permissions.yaml against the registered `tools` (names) and its read tools.

    Raises ValueError with one line naming the key: an unknown node, an unknown tool, a read tool under
    `dry_run` (a read has no dry run), or anything that is not the documented shape.
    """
    from config.settings import _read_yaml

    try:
        permissions = Permissions.model_validate(_read_yaml(path))
    except ValidationError as exc:
        raise ValueError(_one_line(path, exc)) from None
    known = set(tools)
    for node, grant in permissions.nodes.items():
        for mode in ("call", "dry_run"):
            unknown = sorted(set(getattr(grant, mode)) - known)
            if unknown:
                raise ValueError(
                    f"{path}: nodes.{node}.{mode}: unknown tool(s) {unknown} (tools: {', '.join(sorted(known))})"
                )
        reads = sorted(grant.dry_run & set(read_tools))
        if reads:
            raise ValueError(f"{path}: nodes.{node}.dry_run: {reads} are read tools (a read has no dry run; use call)")
    return permissions


def check_workflows(permissions: Permissions, workflows: Mapping[str, Any], path: Path) -> None:
    """Every tool a workflow names must be granted to the node that uses it (a start-up check).

    `read_tools` are called by retrieve_knowledge; an `action` is dry-run by plan_action and called by
    execute_action. A workflow needing a grant the file does not give would fail at run time: say so now.
    """
    for intent, flow in workflows.items():
        needs: list[tuple[NodeName, str, bool]] = [
            ("retrieve_knowledge", tool, False) for tool in getattr(flow, "read_tools", ())
        ]
        if action := getattr(flow, "action", None):
            needs += [("plan_action", action, True), ("execute_action", action, False)]
        for node, tool, dry in needs:
            if not permissions.allows(node, tool, dry_run=dry):
                mode = "dry_run" if dry else "call"
                raise ValueError(
                    f"{path}: workflow {intent!r} needs {node} to {mode} {tool!r}; grant it under nodes.{node}.{mode}"
                )
