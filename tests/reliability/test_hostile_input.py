"""Hostile input to all three functions: never a 500, nothing stored, no value spliced into SQL.

Hypothesis draws headers, bodies and query strings; every text it draws
carries a marker, and every SQL statement the functions send to BigQuery is
captured: the marker must never appear in SQL text (values travel only as
query parameters).
"""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

import pytest
from google.cloud import bigquery, firestore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rbm_analytics.core import clients
from rbm_analytics.core.tables import ALL_TABLES, ensure_tables
from rbm_analytics_dev.local import emulators

from tests.support import PROJECT, REPO_ROOT, bearer, signed_webhook

MARK = "Zq9"
marked = st.text(max_size=30).map(lambda s: f"{MARK}{s}")
dates = st.dates().map(lambda d: d.isoformat())
anything = st.one_of(
    marked, dates, st.integers(), st.floats(allow_nan=False), st.none(), st.booleans(),
    st.lists(marked, max_size=3), st.dictionaries(marked, marked, max_size=3),
)  # fmt: skip
CASES = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def sql_log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL text any BigQuery client in this process sends."""
    seen: list[str] = []
    original = bigquery.Client.query

    def query(self: bigquery.Client, sql: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(sql)
        return original(self, sql, *args, **kwargs)

    monkeypatch.setattr(bigquery.Client, "query", query)
    return seen


@pytest.fixture
def warehouse(bigquery_emulator: Any, firestore_host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    dataset = f"hostile_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bigquery_emulator.host)
    monkeypatch.setenv("BQ_DATASET", dataset)
    clients.reset()
    # As deployed: the tables exist (Terraform creates them) before any request.
    ensure_tables(clients.bigquery_client(), PROJECT, dataset, "US")
    return dataset


@functools.cache
def _app(target: str) -> Any:
    import functions_framework

    return functions_framework.create_app(target, str(REPO_ROOT / "functions" / "main.py"))


def _documents() -> int:
    db = firestore.Client(project=PROJECT)
    return sum(
        1 for c in ("agent_messages", "user_messages", "user_events")
        for _ in db.collection(c).select([]).stream()
    )  # fmt: skip


def _table_rows(dataset: str) -> dict[str, int]:
    """Row counts of every table a refresh writes, in one query."""
    counts = ", ".join(
        f"(SELECT COUNT(*) FROM `{PROJECT}.{dataset}.{t}`) AS {t}" for t in ALL_TABLES
    )
    (row,) = clients.bigquery_client().query(f"SELECT {counts}").result()
    return dict(row)


def _assert_no_marker(sql_log: list[str]) -> None:
    spliced = [sql for sql in sql_log if MARK in sql]
    assert not spliced, spliced[0][:500]


@given(
    route=st.sampled_from(["/", "/agent-messages", f"/{MARK}"]),
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE"]),
    body=st.one_of(st.binary(max_size=300), anything.map(lambda v: json.dumps(v).encode())),
    headers=st.dictionaries(
        st.sampled_from(["X-Goog-Signature", "Authorization", "Content-Type", "X-Other"]),
        # What can travel in an HTTP header: visible ASCII and spaces.
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
            lambda s: f"{MARK}{s}"), max_size=3,
    ),
    signed=st.one_of(st.none(), st.dictionaries(st.sampled_from(
        ["agentId", "messageId", "eventId", "eventType", "senderPhoneNumber", "sendTime",
         "text", "location", "userFile", "suggestionResponse", "phoneNumber"]),
        anything, max_size=6)),
)  # fmt: skip
@CASES
def test_ingest_hostile_requests(
    firestore_host: str,
    route: str,
    method: str,
    body: bytes,
    headers: dict[str, str],
    signed: dict[str, Any] | None,
) -> None:
    emulators.wipe_firestore(firestore_host, PROJECT)
    client = _app("ingest").test_client()
    if signed is not None:  # a correctly signed payload, so parsing is reached
        body, signed_headers = signed_webhook(signed)
        headers = {**headers, **signed_headers}
    if route == "/agent-messages" and "Authorization" not in headers:
        headers = {**headers, **bearer()}
    resp = client.open(route, method=method, data=body, headers=headers)
    assert resp.status_code < 500, resp.get_data(as_text=True)
    if resp.status_code != 200:
        assert _documents() == 0


@given(
    method=st.sampled_from(["POST", "POST", "GET", "PATCH"]),
    body=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(st.sampled_from(["run_date", "start", "end", MARK]), anything,
                        max_size=3).map(lambda d: json.dumps(d).encode()),
    ),
)  # fmt: skip
@CASES
def test_refresh_hostile_requests(
    warehouse: str, sql_log: list[str], method: str, body: bytes
) -> None:
    before = _table_rows(warehouse)
    resp = _app("refresh").test_client().open("/", method=method, data=body)
    assert resp.status_code < 500, resp.get_data(as_text=True)
    if resp.status_code != 200:
        assert _table_rows(warehouse) == before
    _assert_no_marker(sql_log)


@given(
    path=st.sampled_from(["/", "/ui", "/agents", f"/{MARK}"]),
    params=st.dictionaries(
        st.sampled_from(["start", "end", "scale", "metrics", "agent", "format", MARK]),
        st.one_of(marked, dates, st.sampled_from(["day", "week", "month", "csv", "json",
                                                  "sent,read_rate", "sent;DROP TABLE x"])),
        max_size=6,
    ),
    method=st.sampled_from(["GET", "GET", "POST"]),
)  # fmt: skip
@CASES
def test_export_hostile_requests(
    warehouse: str, sql_log: list[str], path: str, params: dict[str, str], method: str
) -> None:
    resp = _app("export").test_client().open(path, method=method, query_string=params)
    body = resp.get_data()  # drain the stream: errors inside it must not be 500s either
    assert resp.status_code < 500, body[:500]
    _assert_no_marker(sql_log)


def test_marker_would_be_caught(sql_log: list[str]) -> None:
    """The SQL check itself can fail: a spliced value is detected."""
    sql_log.append(f"SELECT '{MARK}x'")
    with pytest.raises(AssertionError):
        _assert_no_marker(sql_log)
