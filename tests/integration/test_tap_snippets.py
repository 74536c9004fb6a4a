"""The tap-mode snippets in docs/tap/, run as a bot would run them, against a served ingest.

The Python one is imported from its file; the Node.js one runs under ``node``
(it needs no npm package; skipped with the reason when node is missing).
Each forwards a signed webhook request untouched and records a sent message
through the wrapped create call; ingest must store both.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from rbm_analytics.core.timeutil import format_us, now_us
from rbm_analytics_dev.local import emulators

from tests.integration.ingest_support import all_documents
from tests.support import AGENT_KEY, BASE_ENV, REPO_ROOT, signed_webhook

TAP = REPO_ROOT / "docs" / "tap"


@pytest.fixture(scope="module")
def served(firestore_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = emulators.free_port()
    proc = emulators.ManagedProcess(
        name="ingest",
        argv=[
            str(Path(sys.executable).parent / "functions-framework"),
            *("--source", str(REPO_ROOT / "functions" / "main.py")),
            *("--target", "ingest", "--port", str(port)),
        ],
        port=port,
        ready_url=f"http://127.0.0.1:{port}/",
        env={
            **BASE_ENV,
            "FIRESTORE_EMULATOR_HOST": firestore_emulator.host,
            "PATH": os.environ["PATH"],
        },
        log_path=tmp_path_factory.mktemp("tap") / "ingest.log",
    )
    proc.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


@pytest.fixture
def url(served: str, firestore_host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RBM_ANALYTICS_URL", served)
    monkeypatch.setenv("RBM_ANALYTICS_API_KEY", AGENT_KEY)
    return served


def _event(prefix: str) -> bytes:
    return json.dumps(
        {"senderPhoneNumber": "+12223334444", "messageId": f"{prefix}-user-1",
         "sendTime": format_us(now_us() - 60_000_000), "agentId": "acme-agent",
         "text": "Where is my order?"}
    ).encode()  # fmt: skip


def _create_response(prefix: str) -> dict[str, Any]:
    """What agentMessages.create returns (an AgentMessage resource)."""
    return {
        "name": f"phones/+12223334444/agentMessages/{prefix}-sent-1",
        "sendTime": format_us(now_us() - 120_000_000),
        "contentMessage": {"text": "Your order has shipped."},
    }


def _wait_for(ids: set[str], timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        docs = all_documents()
        found = set(docs["agent_messages"]) | set(docs["user_messages"])
        if ids <= found or time.monotonic() > deadline:
            return docs
        time.sleep(0.2)


def _load_python_tap() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rbm_analytics_tap", TAP / "rbm_analytics_tap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_python_tap_forwards_the_webhook_and_records_sent_messages(url: str) -> None:
    tap = _load_python_tap()
    body, headers = signed_webhook(_event("py"))
    assert tap.forward_webhook(body, headers["X-Goog-Signature"]) == 200
    calls: list[dict[str, Any]] = []

    def create(**kwargs: Any) -> dict[str, Any]:  # stands in for agentMessages.create
        calls.append(kwargs)
        return _create_response("py")

    send = tap.recording_create("acme-agent", create)
    assert send(parent="phones/+12223334444", messageId="py-sent-1")["name"].endswith("py-sent-1")
    docs = _wait_for({"py-user-1", "py-sent-1"})
    assert "py-user-1" in docs["user_messages"]
    assert docs["agent_messages"]["py-sent-1"]["agent_id"] == "acme-agent"
    assert calls == [{"parent": "phones/+12223334444", "messageId": "py-sent-1"}]
    # A forged request is refused by ingest, not stored (and not retried).
    assert tap.forward_webhook(body, "AAAA") == 401


NODE_DRIVER = """
const tap = require(process.argv[1]);
const [body, signature, response] = process.argv.slice(2);
(async () => {
  const forwarded = await tap.forwardWebhook(Buffer.from(body), signature);
  const create = tap.recordingCreate('acme-agent', async (params) => JSON.parse(response));
  const sent = await create({parent: 'phones/+12223334444', messageId: 'js-sent-1'});
  const recorded = await tap.recordSent('acme-agent', {data: JSON.parse(response)});
  console.log(JSON.stringify({forwarded, name: sent.name, recorded}));
})();
"""


def test_node_tap_forwards_the_webhook_and_records_sent_messages(url: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node.js snippet cannot run here")
    body, headers = signed_webhook(_event("js"))
    proc = subprocess.run(
        [node, "-e", NODE_DRIVER, str(TAP / "rbm-analytics-tap.js"), body.decode(),
         headers["X-Goog-Signature"], json.dumps(_create_response("js"))],
        capture_output=True, text=True, timeout=60, env={**os.environ}, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # The wrapped create's own record and the explicit one: the second is a duplicate, still 200.
    assert result == {"forwarded": 200, "name": "phones/+12223334444/agentMessages/js-sent-1",
                      "recorded": 200}  # fmt: skip
    docs = _wait_for({"js-user-1", "js-sent-1"})
    assert "js-user-1" in docs["user_messages"]
    # Stored once: the second record changed nothing (a duplicate, still 200).
    assert docs["agent_messages"]["js-sent-1"]["agent_id"] == "acme-agent"
