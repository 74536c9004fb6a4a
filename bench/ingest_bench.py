"""Ingest benchmarks: handler CPU cost, served throughput and latency, sent-log batches."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any
from unittest import mock

from google.api_core import retry as gretry
from google.cloud import firestore
from google.cloud.firestore_v1 import transforms as fs_transforms
from google.cloud.firestore_v1.types import firestore as firestore_types
from google.cloud.firestore_v1.types import write as write_pb
from rbm_analytics.core.config import Credential, Settings
from rbm_analytics.core.http import Request
from rbm_analytics.core.shards import SHARD_FIELD
from rbm_analytics.core.timeutil import format_us, now_us
from rbm_analytics.ingest import routes as ingest
from rbm_analytics.ingest.auth import sign
from rbm_analytics.ingest.rbm import parse_webhook_payload
from rbm_analytics.ingest.records import Receipt, UserMessage
from rbm_analytics.ingest.store import FirestoreStore
from rbm_analytics.ingest.writes import Committer, DocWrite
from rbm_analytics_dev.local import emulators

from . import harness
from .harness import AGENT_KEY, CLIENT_TOKEN, PHONE_KEY, PROJECT, measurement, note

KINDS = ("read", "delivered", "text", "reply", "typing")
# Yesterday: ingest refuses times in the future or older than RETENTION_DAYS.
SEND_TIME = format_us(now_us() - 86_400_000_000)


def _payload(i: int, rng: random.Random) -> dict[str, Any]:
    kind = KINDS[i % len(KINDS)]
    phone = f"+1555{rng.randrange(10**7):07d}"
    base = {
        "senderPhoneNumber": phone,
        "agentId": f"agent-{i % 5}",
        "sendTime": SEND_TIME,
    }
    if kind in ("read", "delivered"):
        return {**base, "eventType": kind.upper(), "eventId": f"ev{i}", "messageId": f"m{i}"}
    if kind == "typing":
        return {**base, "eventType": "IS_TYPING", "eventId": f"ev{i}"}
    if kind == "reply":
        return {
            **base,
            "messageId": f"u{i}",
            "suggestionResponse": {"postbackData": "track_order", "text": "Track", "type": "REPLY"},
        }
    return {**base, "messageId": f"u{i}", "text": "When does my order arrive?"}


def webhook_requests(n: int, seed: int, prefix: str = "") -> list[harness.Req]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        payload = _payload(i, rng)
        for key in ("messageId", "eventId"):
            if key in payload:
                payload[key] = f"{prefix}{payload[key]}"
        data = json.dumps(payload).encode()
        body = json.dumps(
            {"message": {"data": base64.b64encode(data).decode(), "messageId": str(i)}}
        ).encode()
        headers = {"X-Goog-Signature": sign(data, CLIENT_TOKEN), "Content-Type": "application/json"}
        out.append(("/", headers, body))
    return out


# The RPC's answer: decoding one is the C protobuf runtime's work inside the
# RPC, so the stand-in is built once (building it per event from dicts cost
# about 10 us, measured as if it were the handler's).
_ANSWER = write_pb.WriteResult.pb()()


async def _read_nothing(self: Committer, *args: Any) -> dict[str, Any]:
    return {}


async def _encode_only(
    self: Committer, docs: Any, retry: Any = None, timeout: Any = None
) -> list[Any]:
    # Everything up to the RPC runs: the request the RPC would send (one
    # BatchWrite per write here; a shared one costs less per write), built
    # as the committer builds it, and serialized.
    firestore_types.BatchWriteRequest.pb(self._batch_write_request(docs)).SerializeToString()
    return [_ANSWER] * len(docs)


def client_dict(doc: DocWrite) -> dict[str, Any]:
    """The same document as the high-level client's set(merge=True) data."""
    data: dict[str, Any] = doc.all_fields()
    for t in doc.transforms:
        if t.op == "minimum":
            data[t.field] = fs_transforms.Minimum(t.value)
        elif t.op == "increment":
            data[t.field] = fs_transforms.Increment(t.value)
        else:
            data[t.field] = fs_transforms.SERVER_TIMESTAMP
    return data


def handler_cost(n: int) -> harness.Measurement:
    """CPU per webhook event: parse, verify, hash, build the Firestore write; no I/O."""
    settings = Settings(
        project=PROJECT,
        rbm_client_tokens=(Credential(CLIENT_TOKEN),),
        agent_api_keys=(Credential(AGENT_KEY),),
        phone_hash_key=PHONE_KEY.encode(),
    )
    # Points at an address nothing listens on: commit is replaced, no RPC is made.
    with mock.patch.dict("os.environ", {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:9"}):
        client = firestore.Client(project=PROJECT)
    store = FirestoreStore(client, retention_days=90, deadline_s=5)
    reqs = [Request("POST", "/", headers, body) for _, headers, body in webhook_requests(n, 7)]
    sink = io.StringIO()

    def store_factory() -> FirestoreStore:
        return store  # one factory, as the deployed function passes one

    async def handle_all() -> None:
        for r in reqs:
            resp = await ingest.handle(r, settings, store_factory)
            assert resp.status == 200, resp.body

    def handler() -> None:
        # One event loop for the pass, as the served function has one.
        asyncio.run(handle_all())

    def baseline() -> None:
        # The work no webhook can skip: decode the envelope, one HMAC-SHA512
        # over the data, parse the payload.
        for r in reqs:
            data = base64.b64decode(json.loads(r.body)["message"]["data"])
            hmac.compare_digest(
                hmac.new(CLIENT_TOKEN.encode(), data, hashlib.sha512).digest(),
                base64.b64decode(r.headers["X-Goog-Signature"]),
            )
            json.loads(data)

    def cpu_us(fn: Any) -> float:
        t0 = time.process_time()
        fn()
        return (time.process_time() - t0) / len(reqs) * 1e6

    # Reads find nothing stored: every receipt creates its document.
    no_reads = mock.patch.object(Committer, "get_async", _read_nothing)
    encode_only = mock.patch.object(Committer, "commit_async", _encode_only)
    with encode_only, no_reads, redirect_stdout(sink):
        handler()  # warm-up: imports, caches, allocator
        # Median of 5 passes: the machine is shared, one pass can be unlucky.
        handler_us = statistics.median(cpu_us(handler) for _ in range(5))
        baseline_us = statistics.median(cpu_us(baseline) for _ in range(5))
    return measurement(
        "ingest.handler_cpu_per_event",
        handler_us,
        "us",
        baseline_us,
        "<= 4 x the decode + HMAC + parse baseline",
        handler_us <= 4 * baseline_us,
    )


def throughput(n: int, concurrencies: Sequence[int]) -> list[harness.Measurement]:
    """Served ingest vs the same number of raw single-document writes, per concurrency.

    One emulator for all; at each concurrency the served function runs with
    THREADS = that concurrency, both paths are warmed up, then they alternate
    in ``ROUNDS`` rounds on fresh ids and each rate is its events over its
    summed time. The latency at half the maximum rate is taken at the first
    concurrency.
    """
    out = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with harness.firestore(tmp) as fs:
            with mock.patch.dict("os.environ", {"FIRESTORE_EMULATOR_HOST": fs.host}):
                client = firestore.Client(project=PROJECT)
                client.collection("baseline").document("warm").set({"x": 1})
            for concurrency in concurrencies:
                assert fs.proc is not None
                out += _throughput_at(
                    n,
                    concurrency,
                    client,
                    fs.host,
                    fs.proc.pid,
                    tmp,
                    concurrency == concurrencies[0],
                )
    return out


ROUNDS = 4
# Passes of each path over a fresh emulator before the first timed round.
WARM_PASSES = 3
# Shard cost: many short pairs (see shard_cost).
SHARD_ROUNDS = 32


def _rounds(n: int, rounds: int) -> list[tuple[int, int]]:
    """``rounds`` consecutive index ranges covering ``range(n)``."""
    cuts = [n * r // rounds for r in range(rounds + 1)]
    return list(itertools.pairwise(cuts))


def _throughput_at(
    n: int,
    concurrency: int,
    client: firestore.Client,
    host: str,
    emulator: int,
    tmp: Path,
    first: bool,
) -> list[harness.Measurement]:
    out = []
    docs = [
        {
            "agent_id": "a",
            "user_key": uuid.uuid4().hex,
            "kind": "text",
            "event_at_us": 1,
            "received_at_us": 2,
            "updated_at": firestore.SERVER_TIMESTAMP,
        }
        for _ in range(n)
    ]
    col = client.collection(f"baseline{concurrency}")
    requests = webhook_requests(n, 2, f"c{concurrency}-")
    # THREADS as deployed (infra/functions.tf: the request concurrency, here
    # the load's); ingest's requests are coroutines and use no threads.
    env = {**harness.base_env(host), "THREADS": str(concurrency)}
    run_dir = tmp / f"served{concurrency}"
    run_dir.mkdir()
    with harness.served("ingest", env, run_dir) as fn:
        # Both paths warmed alike: connections, caches, and the emulator's JIT,
        # which keeps speeding up for some ten thousand operations, so the
        # first concurrency warms it with WARM_PASSES passes of each path.
        for p in range(WARM_PASSES if first else 1):
            harness.threaded(lambda i, p=p: col.document(f"w{p}-{i}").set(docs[i]), n, concurrency)
            harness.http_load(
                fn.port, webhook_requests(n, 1, f"warm{concurrency}-{p}-"), concurrency
            )
        # Alternating rounds, so a change in the machine's other load (it is
        # shared) falls on both paths alike instead of on whichever ran second.
        raw_s = served_s = 0.0
        statuses: dict[int, int] = {}
        # CPU seconds of each process over the timed rounds: where each path's
        # time goes on the two shared cores.
        raw_cpu = {"client": 0.0, "emulator": 0.0}
        served_cpu = {"function": 0.0, "emulator": 0.0, "load": 0.0}
        assert fn.proc is not None
        for lo, hi in _rounds(n, ROUNDS):
            mine, emu = time.process_time(), harness.tree_cpu_s(emulator)
            raw_s += harness.threaded(
                lambda i, lo=lo: col.document(f"d{lo + i}").set(docs[lo + i]), hi - lo, concurrency
            )
            raw_cpu["client"] += time.process_time() - mine
            raw_cpu["emulator"] += harness.tree_cpu_s(emulator) - emu
            mine, emu = time.process_time(), harness.tree_cpu_s(emulator)
            func = harness.tree_cpu_s(fn.proc.pid)
            load = harness.http_load(fn.port, requests[lo:hi], concurrency)
            served_cpu["load"] += time.process_time() - mine
            served_cpu["emulator"] += harness.tree_cpu_s(emulator) - emu
            served_cpu["function"] += harness.tree_cpu_s(fn.proc.pid) - func
            served_s += load.seconds
            for status, count in load.statuses.items():
                statuses[status] = statuses.get(status, 0) + count
        raw_rate, rate = n / raw_s, n / served_s
        bad = {s: c for s, c in statuses.items() if s != 200}

        def per_event(cpu: dict[str, float]) -> str:
            return ", ".join(f"{k} {v / n * 1e6:.0f} us" for k, v in cpu.items())

        note(
            f"raw Firestore writes: {raw_rate:.0f}/s ({concurrency} clients); {per_event(raw_cpu)}"
        )
        note(f"served ingest: {rate:.0f} events/s, statuses {statuses}; {per_event(served_cpu)}")
        out.append(
            measurement(
                f"ingest.events_per_s_{concurrency}_clients",
                rate,
                "events/s",
                raw_rate,
                f">= 0.8 x raw single-document writes, {concurrency} clients each",
                rate >= 0.8 * raw_rate and not bad,
            )
        )
        served_us = sum(served_cpu.values()) / n * 1e6
        out.append(
            measurement(
                f"ingest.cpu_per_event_{concurrency}_clients",
                served_us,
                "us",
                sum(raw_cpu.values()) / n * 1e6,
                f"reported: CPU per event of every process on the shared cores, served "
                f"({per_event(served_cpu)}) vs raw writes ({per_event(raw_cpu)})",
                None,
            )
        )
        if not first:  # the latency at half the maximum rate: at the first concurrency
            return out
        half = rate / 2
        paced = harness.http_load(
            fn.port, webhook_requests(n // 2, 3, "half"), concurrency, rate=half
        )
        for name, ms in (("p50", paced.p50), ("p99", paced.percentile(99))):
            out.append(
                measurement(
                    f"ingest.latency_{name}_at_half_max",
                    ms,
                    "ms",
                    None,
                    f"reported at {half:.0f} events/s, {concurrency} clients",
                    None,
                )
            )
    return out


# Functions that only read their body: what each serving stack costs per
# request before any of ingest's own work. The WSGI one is the threaded
# gunicorn/Flask stack ``refresh`` and ``export`` run on; the ASGI one is the
# stack ingest runs on (uvicorn; the request a coroutine on its event loop).
_ECHO = """
import functions_framework.aio
from starlette.responses import Response


def echo_wsgi(request):
    request.get_data()
    return ("", 204)


@functions_framework.aio.http
async def echo_asgi(request):
    await request.body()
    return Response(b"", 204)
"""


def framework_floor(n: int, concurrency: int = 16) -> harness.Measurement:
    """CPU per request of each serving stack alone, and of ingest's, same run.

    The same keep-alive load (signed webhook bodies, ``concurrency`` clients,
    ``THREADS`` = ``concurrency``) against a function that only reads the
    body, served as WSGI and as ASGI, and against ingest without storage
    (every event refused at the signature check, so none does I/O).
    """
    requests = webhook_requests(n, 6, "floor-")
    unsigned = [(path, {**h, "X-Goog-Signature": "AAAA"}, body) for path, h, body in requests]
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "echo.py").write_text(_ECHO)
        env = {**harness.base_env("127.0.0.1:9"), "THREADS": str(concurrency)}
        cost = {}
        for name, target, source, reqs in (
            ("WSGI echo", "echo_wsgi", tmp / "echo.py", requests),
            ("ASGI echo", "echo_asgi", tmp / "echo.py", requests),
            ("ingest", "ingest", harness.REPO / "functions" / "main.py", unsigned),
        ):
            run_dir = tmp / target
            run_dir.mkdir()
            with harness.served(target, env, run_dir, source) as fn:
                assert fn.proc is not None
                harness.http_load(fn.port, reqs[: n // 4], concurrency)
                before = harness.tree_cpu_s(fn.proc.pid)
                load = harness.http_load(fn.port, reqs, concurrency)
                cost[name] = (harness.tree_cpu_s(fn.proc.pid) - before) / n * 1e6
                note(f"{name}: {cost[name]:.0f} us CPU per request, statuses {load.statuses}")
    return measurement(
        "ingest.serving_stack_cpu_per_request",
        cost["ASGI echo"],
        "us",
        cost["WSGI echo"],
        f"reported: a function that only reads the body, served as ASGI (ingest's stack) "
        f"vs threaded WSGI; ingest refusing a bad signature (no I/O): "
        f"{cost['ingest']:.0f} us; {concurrency} keep-alive clients",
        None,
    )


def rpc_cost(n: int) -> list[harness.Measurement]:
    """The Firestore client's CPU per RPC, one RPC at a time from one thread.

    A write shared by a ``BatchWrite`` of 5 (about what 16 concurrent webhook
    requests share) against one alone, and a one-document
    ``BatchGetDocuments`` (the read before a receipt's write) against the
    one-write ``BatchWrite``: what each RPC the served function sends costs it,
    whatever rides in it. CPU of this whole process (the gRPC core's own
    threads included), so the emulator's answer time is not counted.
    """
    with tempfile.TemporaryDirectory() as tmp_s, harness.firestore(Path(tmp_s)) as fs:
        with mock.patch.dict("os.environ", {"FIRESTORE_EMULATOR_HOST": fs.host}):
            client = firestore.Client(project=PROJECT)
        committer = Committer(client)
        no_retry = gretry.Retry(predicate=lambda exc: False, timeout=30)

        def doc(i: int, prefix: str) -> DocWrite:
            fields = {"agent_id": "agent-0", "user_key": uuid.uuid4().hex, "event_at_us": i}
            return DocWrite("rpc", f"{prefix}{i}", fields, (), create=True)

        def cpu_us(fn: Any) -> float:
            started = time.process_time()
            for i in range(n):
                fn(i)
            return (time.process_time() - started) / n * 1e6

        cpu_us(lambda i: committer._batch_write([doc(i, "warm")], 30))
        one = cpu_us(lambda i: committer._batch_write([doc(i, "one")], 30))
        five = cpu_us(
            lambda i: committer._batch_write([doc(5 * i + j, "five") for j in range(5)], 30)
        )
        read = cpu_us(lambda i: committer.get("rpc", [f"one{i}"], ("agent_id",), no_retry, 30))
    return [
        measurement(
            "ingest.client_cpu_per_batch_write",
            five,
            "us",
            one,
            "reported: CPU per BatchWrite RPC of 5 writes vs of 1 (the cost is per RPC)",
            None,
        ),
        measurement(
            "ingest.client_cpu_per_batch_get",
            read,
            "us",
            one,
            "reported: CPU per one-document BatchGetDocuments (a streamed RPC) vs a "
            "one-write BatchWrite",
            None,
        ),
    ]


def shard_cost(n: int, concurrency: int = 16) -> list[harness.Measurement]:
    """Webhook writes with the shard field vs the same writes without it, same run.

    The documents are built beforehand (both lists), so what is measured is
    what the field changes downstream: encoding, the shared write RPCs and
    the emulator's storing. The two variants run back to back in
    ``SHARD_ROUNDS`` pairs, each into its own collections, from
    ``concurrency`` coroutines on one event loop (as the served function
    stores them, sharing BatchWrite RPCs). The cost is CPU time per write, of this process
    (the writing client) and the emulator together: it hardly moves with the
    machine's other load, where a rate on these shared cores swings by more
    than the 5 % being measured. The rates are reported too, with the median
    of the pairs' ratios.
    """
    settings = Settings(project=PROJECT, phone_hash_key=PHONE_KEY.encode())
    received = now_us()
    records = [
        parse_webhook_payload(
            base64.b64decode(json.loads(body)["message"]["data"]),
            phone_key=settings.phone_hash_key,
            received_us=received,
            retention_days=settings.retention_days,
        )
        for _, _, body in webhook_requests(n, 4, "shard-")
    ]
    # The emulator's address for the whole run: the store writes through the
    # asyncio client, made on first use from the environment.
    with (
        tempfile.TemporaryDirectory() as tmp_s,
        harness.firestore(Path(tmp_s)) as fs,
        mock.patch.dict("os.environ", {"FIRESTORE_EMULATOR_HOST": fs.host}),
    ):
        client = firestore.Client(project=PROJECT)
        store = FirestoreStore(client, retention_days=90, deadline_s=30)
        sharded = [_new_write(store, r) for r in records]
        plain = [
            d._replace(
                collection=f"{d.collection}_plain",
                fields={k: v for k, v in d.fields.items() if k != SHARD_FIELD},
            )
            for d in sharded
        ]
        no_retry = gretry.AsyncRetry(predicate=lambda exc: False, timeout=30)
        committer = store._committer
        loop = asyncio.new_event_loop()
        warm = [d._replace(collection="warm", doc_id=f"w{i}") for i, d in enumerate(sharded)]
        # The emulator keeps speeding up over its first few thousand writes.
        harness.concurrently(
            lambda i: committer.commit_async([warm[i]], no_retry, 30),
            min(n // 4, 3000),
            concurrency,
            loop,
        )
        assert fs.proc is not None
        emulator = fs.proc.pid
        times = {"sharded": 0.0, "plain": 0.0}
        cpu = {"sharded": 0.0, "plain": 0.0}
        variants = [("sharded", sharded), ("plain", plain)]
        pairs = []
        for r, (lo, hi) in enumerate(_rounds(n, SHARD_ROUNDS)):
            taken = {}
            # Each goes first in every other pair: no order favours either.
            for name, docs in variants[:: 1 if r % 2 == 0 else -1]:
                cpu_before = time.process_time() + harness.tree_cpu_s(emulator)
                taken[name] = harness.concurrently(
                    lambda i, lo=lo, docs=docs: committer.commit_async(
                        [docs[lo + i]], no_retry, 30
                    ),
                    hi - lo,
                    concurrency,
                    loop,
                )
                cpu[name] += time.process_time() + harness.tree_cpu_s(emulator) - cpu_before
                times[name] += taken[name]
            pairs.append(taken["plain"] / taken["sharded"])
        loop.close()
    rate, plain_rate = n / times["sharded"], n / times["plain"]
    cost_us, plain_cost_us = cpu["sharded"] / n * 1e6, cpu["plain"] / n * 1e6
    note(
        f"writes with shard: {rate:.0f}/s, {cost_us:.0f} us CPU each; without: "
        f"{plain_rate:.0f}/s, {plain_cost_us:.0f} us ({concurrency} coroutines); "
        f"pair rate ratios {', '.join(f'{p:.2f}' for p in pairs)}"
    )
    return [
        measurement(
            "ingest.sharded_write_cpu_us",
            cost_us,
            "us",
            plain_cost_us,
            "CPU per webhook write (client + emulator) with the shard field vs without: <= 1.05 x",
            cost_us <= 1.05 * plain_cost_us,
        ),
        measurement(
            "ingest.sharded_writes_per_s",
            rate,
            "writes/s",
            plain_rate,
            f"reported (the median of {len(pairs)} back-to-back pairs' ratios: "
            f"{statistics.median(pairs):.2f})",
            None,
        ),
    ]


def _new_write(store: FirestoreStore, record: Any) -> DocWrite:
    """The write a first copy of ``record`` makes (nothing stored yet)."""
    if isinstance(record, Receipt):
        return store.receipt_write(record)
    if isinstance(record, UserMessage):
        return store.user_message_write(record)
    return store.user_event_write(record)


def _agent_batch(b: int, size: int) -> dict[str, Any]:
    return {
        "agentMessages": [
            {
                "agentId": f"agent-{b % 5}",
                "name": f"phones/+1555{(b * size + j) % 10**7:07d}/agentMessages/b{b}-{j}",
                "sendTime": SEND_TIME,
                "contentMessage": {"text": "hello"},
                "messageTrafficType": "TRANSACTION",
            }
            for j in range(size)
        ]
    }


def sentlog_batches(batches: int, concurrency: int) -> harness.Measurement:
    """500-record /agent-messages batches vs raw WriteBatch commits of the same documents."""
    size = 500
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with harness.firestore(tmp) as fs:
            bodies = [json.dumps(_agent_batch(b, size)).encode() for b in range(batches)]
            settings = Settings(project=PROJECT, phone_hash_key=PHONE_KEY.encode())
            from rbm_analytics.ingest.rbm import parse_agent_messages

            with mock.patch.dict("os.environ", {"FIRESTORE_EMULATOR_HOST": fs.host}):
                client = firestore.Client(project=PROJECT)
                store = FirestoreStore(client, retention_days=90, deadline_s=30)
                parsed = [
                    parse_agent_messages(
                        json.loads(b),
                        phone_key=settings.phone_hash_key,
                        received_us=now_us(),
                        retention_days=90,
                    )
                    for b in bodies
                ]
                col = client.collection("baseline")

                def raw(i: int) -> None:
                    wb = client.batch()
                    for rec in parsed[i]:
                        doc = client_dict(store.sent_write(rec))
                        wb.set(col.document(rec.message_id), doc, merge=True)
                    wb.commit()

                raw_s = harness.threaded(raw, batches, concurrency)
            raw_rate = batches * size / raw_s
            note(f"raw WriteBatch commits: {raw_rate:.0f} records/s")
            headers = {"Authorization": f"Bearer {AGENT_KEY}", "Content-Type": "application/json"}
            env = {**harness.base_env(fs.host), "THREADS": str(concurrency)}
            with harness.served("ingest", env, tmp) as fn:
                load = harness.http_load(
                    fn.port, [("/agent-messages", headers, b) for b in bodies], concurrency
                )
            rate = batches * size / load.seconds
            note(f"served /agent-messages: {rate:.0f} records/s, statuses {load.statuses}")
            ok = load.statuses == {200: batches}
            meets = ok and rate >= 0.8 * raw_rate
            return measurement(
                "ingest.sentlog_records_per_s",
                rate,
                "records/s",
                raw_rate,
                ">= 0.8 x raw WriteBatch commits",
                meets,
            )


def relay_overhead(n: int, concurrency: int, rate: float = 100.0) -> list[harness.Measurement]:
    """Served ingest with the relay on (forwarding to the demo bot) vs off, same run,
    open-loop at ``rate`` events/s (latency counts from when each request was due).

    Both serve the same Firestore emulator; the bot is the local stack's demo
    bot in its own process (it verifies every signature). The two loads
    alternate in rounds, so drift on a shared machine hits both alike.
    """
    out = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        bot_port = emulators.free_port()
        bot = emulators.ManagedProcess(
            name="demo bot",
            argv=[sys.executable, "-m", "rbm_analytics_dev.local.bot",
                  "--port", str(bot_port), "--token", CLIENT_TOKEN],
            port=bot_port,
            ready_url=f"http://127.0.0.1:{bot_port}/",
            log_path=tmp / "bot.log",
        ).start()  # fmt: skip
        try:
            with harness.firestore(tmp) as fs:
                env = {**harness.base_env(fs.host), "THREADS": str(concurrency)}
                relay_env = {**env, "FORWARD_URL": f"http://127.0.0.1:{bot_port}/"}
                plain_dir, relay_dir = tmp / "plain", tmp / "relay"
                plain_dir.mkdir()
                relay_dir.mkdir()
                with (
                    harness.served("ingest", env, plain_dir) as plain,
                    harness.served("ingest", relay_env, relay_dir) as relayed,
                ):
                    for fn, name in ((plain, "wp"), (relayed, "wr")):
                        harness.http_load(fn.port, webhook_requests(100, 5, name), concurrency)
                    latencies: dict[str, list[float]] = {"plain": [], "relay": []}
                    statuses: dict[str, dict[int, int]] = {"plain": {}, "relay": {}}
                    rounds = 4
                    for r in range(rounds):
                        for fn, name in ((plain, "plain"), (relayed, "relay")):
                            reqs = webhook_requests(n // rounds, 10 + r, f"{name}{r}-")
                            load = harness.http_load(fn.port, reqs, concurrency, rate=rate)
                            latencies[name] += load.latencies_ms
                            for status, count in load.statuses.items():
                                statuses[name][status] = statuses[name].get(status, 0) + count
        finally:
            bot.stop()
    note(f"relay on/off statuses: {statuses}")
    ok = all(set(s) == {200} for s in statuses.values())

    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered), max(1, -(-int(p * len(ordered)) // 100))) - 1]

    for p, label in ((50, "p50"), (99, "p99")):
        on, off = pct(latencies["relay"], p), pct(latencies["plain"], p)
        out.append(
            measurement(
                f"ingest.relay_latency_{label}",
                on,
                "ms",
                off,
                f"{label} at {rate:.0f} events/s, relay on vs off (store and forward "
                "at once): <= 2 x",
                ok and on <= 2 * off,
            )
        )
    return out


def run(smoke: bool) -> None:
    handler_cost(300 if smoke else 2000)
    framework_floor(300 if smoke else 4000)
    rpc_cost(50 if smoke else 1000)
    throughput(300 if smoke else 4000, (16, 32))
    shard_cost(320 if smoke else 32_000)
    sentlog_batches(2 if smoke else 20, 4)
    relay_overhead(200 if smoke else 2000, 16)
