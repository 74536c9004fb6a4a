"""Every field of every sample, replaced by every kind of wrong value or removed:
parsing either yields a storable record or a 400 naming a field; nothing else escapes."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from rbm_analytics.core.errors import InvalidInput
from rbm_analytics.ingest import rbm

from tests.support import FIXTURES, PHONE_KEY, rbm_sample

WEBHOOK = sorted(
    p.stem for p in (FIXTURES / "rbm").glob("*.json") if p.stem.startswith(("user_", "server_"))
)
AGENT = ("agent_message", "agent_messages_batch")
_DELETE = object()
WRONG_VALUES: tuple[Any, ...] = (
    _DELETE,
    None,
    True,
    0,
    -1,
    2**64,
    10**30,
    1.5,
    float("inf"),
    float("nan"),
    "",
    " ",
    "x" * 5000,
    "\ud800",
    "+12223334444",
    "2026-01-01T00:00:00Z",
    "__x__",
    "a/b",
    [],
    ["REPLY"],
    {},
    {"a": 1},
)

# Received after every sample's time, with a retention that admits them all.
ARRIVAL: dict[str, Any] = {
    "phone_key": PHONE_KEY.encode(),
    "received_us": 1_767_400_000_000_000,  # 2026-01-03T00:26:40Z
    "retention_days": 90,
}


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*prefix, i))


def _variants(sample: str) -> Iterator[tuple[str, Any]]:
    base = rbm_sample(sample)
    for path in _paths(base):
        for value in WRONG_VALUES:
            doc = copy.deepcopy(base)
            parent = doc
            for part in path[:-1]:
                parent = parent[part]
            if value is _DELETE:
                if not isinstance(parent, dict):
                    continue
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            yield f"{'.'.join(map(str, path))}={value!r:.20}", doc


def _assert_storable(record: Any) -> None:
    for name, value in record._asdict().items():
        assert value is None or (isinstance(value, str | int) and not isinstance(value, bool))
        if isinstance(value, str):
            value.encode()  # raises on lone surrogates
            # postbackData is the agent's own string, kept as the agent wrote it.
            if name != "postback_data":
                assert "2223334444" not in value


def _assert_clean_400(exc: InvalidInput) -> None:
    assert isinstance(exc, InvalidInput) and exc.message
    assert "2223334444" not in exc.message and "5556667777" not in exc.message


@pytest.mark.parametrize("sample", WEBHOOK)
def test_webhook_type_confusion(sample: str) -> None:
    outcomes = {"ok": 0, "400": 0}
    for label, doc in _variants(sample):
        data = json.dumps(doc).encode()
        try:
            record = rbm.parse_webhook_payload(data, **ARRIVAL)
        except InvalidInput as exc:
            _assert_clean_400(exc)
            outcomes["400"] += 1
        except Exception as exc:  # pragma: no cover - the failure being tested for
            pytest.fail(f"{sample} {label}: {type(exc).__name__}: {exc}")
        else:
            _assert_storable(record)
            outcomes["ok"] += 1
    assert outcomes["400"] > 0 and outcomes["ok"] > 0, outcomes


@pytest.mark.parametrize("sample", AGENT)
def test_agent_message_type_confusion(sample: str) -> None:
    for label, doc in _variants(sample):
        try:
            records = rbm.parse_agent_messages(doc, **ARRIVAL)
        except InvalidInput as exc:
            _assert_clean_400(exc)
        except Exception as exc:  # pragma: no cover - the failure being tested for
            pytest.fail(f"{sample} {label}: {type(exc).__name__}: {exc}")
        else:
            for record in records:
                _assert_storable(record)


def test_handshake_type_confusion() -> None:
    for label, doc in _variants("handshake"):
        try:
            hs = rbm.parse_handshake(doc)
        except InvalidInput as exc:
            _assert_clean_400(exc)
        except Exception as exc:  # pragma: no cover
            pytest.fail(f"handshake {label}: {type(exc).__name__}: {exc}")
        else:
            if hs is not None:
                hs.client_token.encode()
                hs.secret.encode()
