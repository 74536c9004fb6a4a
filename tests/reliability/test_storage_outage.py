"""Firestore stops answering mid-load: failures are 503s in bounded time, and nothing is lost.

The served ingest (functions-framework on gunicorn, as deployed) takes a
steady stream of webhook events while its Firestore emulator is frozen
(SIGSTOP: connections hang, the worst case for a client) for a few seconds.
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

from google.cloud import firestore
from rbm_analytics.ingest.auth import sign

from bench import harness

DEADLINE_S = 2.0


def _requests(n: int, tag: str) -> tuple[list[harness.Req], list[str]]:
    reqs, ids = [], []
    for i in range(n):
        mid = f"{tag}-{i}"
        data = json.dumps(
            {"senderPhoneNumber": f"+1555000{i % 1000:04d}", "agentId": "acme-agent",
             "messageId": mid, "sendTime": "2026-01-02T18:13:20.734Z", "text": "hello"}
        ).encode()  # fmt: skip
        body = json.dumps({"message": {"data": base64.b64encode(data).decode()}}).encode()
        headers = {"X-Goog-Signature": sign(data, harness.CLIENT_TOKEN)}
        reqs.append(("/", headers, body))
        ids.append(mid)
    return reqs, ids


def _stored_ids(host: str, ids: list[str]) -> set[str]:
    from unittest import mock

    with mock.patch.dict("os.environ", {"FIRESTORE_EMULATOR_HOST": host}):
        client = firestore.Client(project=harness.PROJECT)
        refs = [client.collection("user_messages").document(i) for i in ids]
        return {snap.id for snap in client.get_all(refs) if snap.exists}


def test_outage_gives_503s_within_the_deadline_and_resending_lands_everything(
    tmp_path: Path, soak: bool
) -> None:
    rate, seconds = (100.0, 60.0) if soak else (60.0, 6.0)
    pause_at, pause_for = seconds * 0.25, min(3.0, seconds / 3)
    reqs, ids = _requests(int(rate * seconds), "outage")
    with harness.firestore(tmp_path) as fs:
        env = {**harness.base_env(fs.host), "FIRESTORE_DEADLINE_SECONDS": str(DEADLINE_S)}
        with harness.served("ingest", env, tmp_path) as fn:
            harness.http_load(fn.port, _requests(20, "warm")[0], 4)

            def outage() -> None:
                fs.pause()
                threading.Event().wait(pause_for)
                fs.resume()

            timer = threading.Timer(pause_at, outage)
            timer.start()
            try:
                load = harness.http_load(fn.port, reqs, concurrency=16, rate=rate)
            finally:
                timer.join()
                fs.resume()

            statuses = [status for status, _ in load.outcomes]
            print(f"statuses during the outage run: {load.statuses}")
            assert set(statuses) <= {200, 503}, load.statuses  # never a 500 or a dropped connection
            failed = [i for i, s in enumerate(statuses) if s == 503]
            assert failed, "the outage produced no 503: the test did not exercise it"
            slowest = max(ms for _, ms in load.outcomes)
            print(f"slowest answer {slowest:.0f} ms with a {DEADLINE_S:.0f} s deadline")
            # The deadline bounds retries: no answer hangs until the sender gives
            # up. The margin is wide on purpose (a loaded 2-core machine stalls
            # whole processes); the measured latency is a benchmark figure.
            assert slowest < (4 * DEADLINE_S + 10) * 1000

            acknowledged = [ids[i] for i, s in enumerate(statuses) if s == 200]
            assert _stored_ids(fs.host, acknowledged) == set(acknowledged)

            resend = harness.http_load(fn.port, [reqs[i] for i in failed], concurrency=8)
            assert resend.statuses == {200: len(failed)}, resend.statuses
            assert _stored_ids(fs.host, ids) == set(ids)
