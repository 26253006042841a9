"""Known issues added through `app.py ingest` reach analyze_technical, per tenant, without a restart (issue 10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.runtime import Runtime

import app
from classifier.model import IntentClassifier
from config.settings import Settings
from graphs.context import Context
from graphs.services import build_services
from nodes import analyze_technical

ARTICLE = """---
id: ki-flux-capacitor
title: Flux capacitor overload during checkout
kind: known_issue
tenant_id: acme
error_codes: [FLUX-CAP-0088]
exceptions: [warpdrive.FluxCapacitorError]
---
# Flux capacitor overload during checkout

Checkout fails with FLUX-CAP-0088 when the basket holds more than 88 items. Split the basket into two orders;
a fix ships with the next release.
"""
TICKET = """Checkout keeps failing, here is the log:
2026-11-02 10:01:22 ERROR checkout failed: FLUX-CAP-0088
Traceback (most recent call last):
  File "checkout.py", line 12, in pay
warpdrive.FluxCapacitorError: capacitor overloaded
"""


def _known_issues(services: Any, tenant_id: str) -> list[dict[str, Any]]:
    node = analyze_technical.make(lambda: services)
    update = node({"ticket": TICKET}, Runtime(context=Context(tenant_id=tenant_id)))
    return [{**k, "in_knowledge": any(a["id"] == k["id"] for a in update.get("knowledge", []))}
            for k in update["analysis"]["known_issues"]]


def test_ingested_known_issue_reaches_analyze_technical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path, embedder: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SWITCHBOARD_MODEL_CACHE", str(model_cache))
    texts = [f"{w} {n}" for w in ("checkout error", "where is my parcel") for n in ("now", "today", "again", "please")]
    labels = [lab for lab in ("report_bug", "track_order") for _ in range(4)]  # any model: build_services loads one
    IntentClassifier.fit(texts, labels, embedder=embedder, oos_label=None).save(Settings.from_env().intent_model_dir)
    services = build_services(Settings.from_env(), embedder=embedder, auto_seed=False)  # a running server's
    assert _known_issues(services, "acme") == []

    doc = tmp_path / "flux.md"
    doc.write_text(ARTICLE, encoding="utf-8")
    assert app.main(["ingest", str(doc), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["documents"] == 1 and report["chunks_added"] >= 1

    [found] = _known_issues(services, "acme")  # the same services: no restart needed
    assert found["id"] == "ki-flux-capacitor" and found["in_knowledge"]
    assert any("FLUX-CAP-0088" in r for r in found["reasons"])
    assert any("FluxCapacitorError" in r for r in found["reasons"])
    assert _known_issues(services, "default") == []  # another tenant's known issue is not this tenant's
