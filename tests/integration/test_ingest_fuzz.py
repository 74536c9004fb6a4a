"""Fuzzing both routes through the functions-framework app against the emulator.

Bodies are random bytes, random JSON, and samples with random fields replaced
or removed, correctly signed (or with the right bearer key) so parsing and
storage are reached. Headers are random or valid. Whatever arrives: never a
500, every error is ``{"error": ...}`` JSON, and a non-200 answer leaves the
stored documents exactly as they were.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from rbm_analytics.ingest.auth import sign

from tests.integration.ingest_support import AGENT_SAMPLES, WEBHOOK_SAMPLES, all_documents
from tests.support import AGENT_KEY, CLIENT_TOKEN, envelope, rbm_sample

SEED = 20260102
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ALLOWED = {200, 400, 401, 403, 404, 405}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**30, max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "",
            "+12223334444",
            "READ",
            "DELIVERED",
            "REPLY",
            "2026-01-01T00:00:00Z",
            "__x__",
            "\ud800",
        ]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# Values that confuse a parser expecting another type, size or encoding.
confusing = st.sampled_from(
    [[], {}, ["REPLY"], {"a": 1}, 0, -1, 10**400 // 10**390, 1e308, True, None, "", "x" * 3000]
) | st.just("\ud800")
replacements = confusing | json_values
# Header values as HTTP carries them: Latin-1 text without line breaks.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=120,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, samples: tuple[str, ...]) -> Any:
    """A sample with one to three fields replaced by random JSON, removed, or added.

    The first field is drawn from every (sample, field) pair at once, so each
    field of each sample is as likely as any other to be hit.
    """
    name, first = draw(st.sampled_from([(n, p) for n in samples for p in _paths(rbm_sample(n))]))
    doc = copy.deepcopy(rbm_sample(name))
    for i in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "add" or not paths:
            key = draw(st.text(max_size=12) | st.sampled_from(["text", "location", "eventType"]))
            doc[key] = draw(json_values)
            continue
        path = first if i == 0 else draw(st.sampled_from(paths))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(replacements)
    return doc


def _dumps(doc: Any) -> bytes:
    # Lone surrogates are legal JSON escapes; keep them escaped, as a sender's JSON would.
    return json.dumps(doc, ensure_ascii=True).encode()


@st.composite
def webhook_requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    kind = draw(
        st.sampled_from(
            ["bytes", "json", "signed-json", "mutated", "mutated", "mutated", "handshake"]
        )
    )
    signature: str | None = None
    if kind == "bytes":
        body = draw(st.binary(max_size=600))
    elif kind == "json":
        body = _dumps(draw(json_values))
    elif kind == "handshake":
        body = _dumps({"clientToken": draw(st.sampled_from([CLIENT_TOKEN, "x"]) | st.text()),
                       "secret": draw(json_values)})  # fmt: skip
    else:
        data = _dumps(
            draw(json_values) if kind == "signed-json" else draw(mutated(WEBHOOK_SAMPLES))
        )
        if draw(st.integers(0, 9)) == 0:
            data = draw(st.binary(max_size=200))  # signed, but not JSON at all
        body = envelope(data)
        signature = sign(data, CLIENT_TOKEN)
    headers: dict[str, str] = {}
    header_choice = draw(st.sampled_from(["valid"] * 4 + ["random", "absent"]))
    if header_choice == "valid" and signature is not None:
        headers["X-Goog-Signature"] = signature
    elif header_choice == "random":
        headers["X-Goog-Signature"] = draw(header_text)
    if draw(st.booleans()):
        headers["Content-Type"] = draw(header_text)
    method = draw(st.sampled_from(["POST"] * 8 + ["GET", "PUT"]))
    return method, draw(st.sampled_from(["/", "/", "/", "/x"])), body, headers


@st.composite
def agent_requests(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    kind = draw(st.sampled_from(["bytes", "json", "mutated", "mutated", "batch"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=600))
    elif kind == "json":
        body = _dumps(draw(json_values))
    elif kind == "mutated":
        body = _dumps(draw(mutated(AGENT_SAMPLES)))
    else:
        items = draw(st.lists(mutated(("agent_message",)), min_size=1, max_size=4))
        body = _dumps({"agentMessages": items})
    choice = draw(st.sampled_from(["valid", "valid", "random", "absent"]))
    headers: dict[str, str] = {}
    if choice == "valid":
        headers["Authorization"] = f"Bearer {AGENT_KEY}"
    elif choice == "random":
        headers["Authorization"] = draw(header_text | header_text.map(lambda t: f"Bearer {t}"))
    if draw(st.booleans()):
        headers["Content-Type"] = draw(header_text)
    method = draw(st.sampled_from(["POST"] * 8 + ["DELETE", "PATCH"]))
    return method, "/agent-messages", body, headers


class Checker:
    """Sends a request and checks the answer and what it left in Firestore."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.docs = all_documents()
        self.statuses: dict[int, int] = {}

    def check(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        resp = self.client.open(path, method=method, data=body, headers=headers)
        status = resp.status_code
        self.statuses[status] = self.statuses.get(status, 0) + 1
        assert status in ALLOWED, (status, resp.get_data(as_text=True))
        now = all_documents()
        if status == 200:
            self.docs = now
            return
        assert now == self.docs, "a rejected request changed the stored documents"
        payload = resp.get_json()
        assert set(payload) == {"error"} and isinstance(payload["error"], str)
        assert "2223334444" not in payload["error"]


@seed(SEED)
@FUZZ
@given(data=st.data())
def test_fuzz_webhook(ingest_client: Any, data: st.DataObject) -> None:
    print(f"hypothesis seed {SEED}")
    checker = Checker(ingest_client)
    checker.check(*data.draw(webhook_requests()))


@seed(SEED)
@FUZZ
@given(data=st.data())
def test_fuzz_agent_messages(ingest_client: Any, data: st.DataObject) -> None:
    print(f"hypothesis seed {SEED}")
    checker = Checker(ingest_client)
    checker.check(*data.draw(agent_requests()))


def test_fuzz_reaches_storage(ingest_client: Any) -> None:
    """The generators are not vacuous: mutated, signed samples do get stored."""
    stored = 0
    checker = Checker(ingest_client)

    @seed(SEED)
    @settings(max_examples=40, deadline=None, database=None)
    @given(doc=mutated(WEBHOOK_SAMPLES))
    def run(doc: Any) -> None:
        nonlocal stored
        data = _dumps(doc)
        headers = {"X-Goog-Signature": sign(data, CLIENT_TOKEN)}
        checker.check("POST", "/", envelope(data), headers)

    run()
    stored = checker.statuses.get(200, 0)
    print(f"statuses: {checker.statuses}")
    assert stored > 0 and checker.statuses.get(400, 0) > 0
