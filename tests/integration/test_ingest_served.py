"""ingest served as it runs in Cloud Functions: functions-framework on gunicorn, over HTTP.

What only a real server shows: the body limit with and without Content-Length
(chunked), hostile bodies at full size, and the log lines on the process's stdout.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from rbm_analytics_dev.local import emulators

from tests.support import BASE_ENV, PROJECT, REPO_ROOT, bearer, rbm_sample, rbm_sample_bytes
from tests.support import signed_webhook as _signed

LIMIT = 4096


@pytest.fixture(scope="module")
def served(firestore_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    log = tmp_path_factory.mktemp("served") / "ingest.log"
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
            "MAX_BODY_BYTES": str(LIMIT),
            "PATH": os.environ["PATH"],
        },
        log_path=log,
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def url(served: Any, firestore_emulator: Any) -> str:
    emulators.wipe_firestore(firestore_emulator.host, PROJECT)
    return f"http://127.0.0.1:{served.port}"


def _padded(size: int) -> tuple[bytes, dict[str, str]]:
    body, headers = _signed(rbm_sample_bytes("user_message_text"))
    return body + b" " * (size - len(body)), headers


def test_body_of_exactly_the_limit_is_accepted(url: str) -> None:
    body, headers = _padded(LIMIT)
    resp = requests.post(url + "/", data=body, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"stored": 1, "duplicate": 0}


def test_one_byte_over_the_limit_is_413(url: str) -> None:
    body, headers = _padded(LIMIT + 1)
    resp = requests.post(url + "/", data=body, headers=headers, timeout=30)
    assert resp.status_code == 413
    assert resp.json() == {"error": f"request body is {LIMIT + 1} bytes; the limit is {LIMIT}"}


def test_chunked_body_over_the_limit_is_413(url: str) -> None:
    body = json.dumps({"agentMessages": [rbm_sample("agent_message")] * 20}).encode()
    assert len(body) > LIMIT

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    resp = requests.post(url + "/agent-messages", data=chunks(), headers=bearer(), timeout=30)
    assert resp.status_code == 413
    assert "over the limit" in resp.json()["error"]


def test_chunked_body_under_the_limit_is_read(url: str) -> None:
    body = json.dumps(rbm_sample("agent_message")).encode()
    resp = requests.post(url + "/agent-messages", data=iter([body]), headers=bearer(), timeout=30)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[" * (LIMIT // 2) + b"]" * (LIMIT // 2), "request body is nested too deeply"),
        # Parsed (a 4,000-digit integer; UTF-16 JSON), then refused for its shape.
        (b'{"n": 1' + b"0" * (LIMIT - 20) + b"}", None),
        ('{"é": "ü\u2603"}'.encode("utf-16"), None),
        (b"\x00" * 100, "request body is not valid JSON"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b"-1e999", "request body must be a JSON object"),
    ],
)
def test_hostile_bodies_are_400(url: str, body: bytes, expected: str | None) -> None:
    for path, headers in (("/", {}), ("/agent-messages", bearer())):
        resp = requests.post(url + path, data=body, headers=headers, timeout=30)
        assert resp.status_code == 400, (path, resp.text)
        error = resp.json()["error"]
        assert error == expected if expected else error.startswith(("message ", "agentId ")), error


def test_signed_payload_that_is_an_array_or_number_is_400(url: str) -> None:
    for data in (b"[]", b"[{}]", b"7", b"1e400", b'"text"', b"null"):
        body, headers = _signed(data)
        resp = requests.post(url + "/", data=body, headers=headers, timeout=30)
        assert resp.status_code == 400, data
        assert resp.json()["error"] in {
            "message.data must be a JSON object",
            "message.data is not valid JSON",
        }


def test_unicode_in_ids_and_texts(url: str) -> None:
    text = rbm_sample("user_message_text") | {"text": "emoji 😀 and RTL \u202e text"}
    body, headers = _signed(json.dumps(text, ensure_ascii=False).encode())
    assert requests.post(url + "/", data=body, headers=headers, timeout=30).status_code == 200
    bad_id = rbm_sample("user_message_text") | {"messageId": "idé"}
    body, headers = _signed(json.dumps(bad_id, ensure_ascii=False).encode())
    resp = requests.post(url + "/", data=body, headers=headers, timeout=30)
    assert resp.status_code == 400
    assert resp.json()["error"].startswith("messageId")


def test_log_lines_on_stdout_are_json(url: str, served: Any) -> None:
    marker = "served-log-check"
    bad = rbm_sample("user_event_read") | {"eventId": marker + " x"}
    body, headers = _signed(bad)
    assert requests.post(url + "/", data=body, headers=headers, timeout=30).status_code == 400
    lines = Path(served.log_path).read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    requests_logged = [e for e in entries if e.get("message") == "ingest request"]
    assert requests_logged, lines[-5:]
    last = requests_logged[-1]
    assert (last["severity"], last["status"], last["route"]) == ("WARNING", 400, "webhook")
    assert last["error"].startswith("eventId")
    assert marker not in json.dumps(entries)
