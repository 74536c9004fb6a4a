"""Helpers for refresh tests: traffic through the real ingest handler, the
refresh function in-process, and BigQuery tables read back from the emulator."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from google.cloud import bigquery
from rbm_analytics.core import clients
from rbm_analytics.core.timeutil import datetime_to_us
from rbm_analytics_dev.reference import COUNTS, Expected

from tests.support import REPO_ROOT, bearer, signed_webhook


def iso(at: datetime) -> str:
    """RFC 3339 with microseconds, as RBM and the agent API send times."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@dataclass
class Traffic:
    """Posts traffic to the real ingest handler (test client); every post must be 200."""

    client: Any

    def _ok(self, resp: Any) -> None:
        assert resp.status_code == 200, resp.get_data(as_text=True)

    def agent_messages(self, items: list[tuple[str, str, str, datetime]]) -> None:
        """(message_id, agent_id, phone, sent_at) sent records, in batches of 500."""
        for i in range(0, len(items), 500):
            body = {
                "agentMessages": [
                    {"agentId": agent, "messageId": mid, "phoneNumber": phone,
                     "sendTime": iso(at), "contentMessage": {"text": "hi"}}
                    for mid, agent, phone, at in items[i : i + 500]
                ]
            }  # fmt: skip
            data = json.dumps(body).encode()
            self._ok(self.client.post("/agent-messages", data=data, headers=bearer()))

    def webhook(self, payload: dict[str, Any]) -> None:
        body, headers = signed_webhook(payload)
        self._ok(self.client.post("/", data=body, headers=headers))

    def receipt(self, kind: str, message_id: str, agent: str, phone: str, at: datetime) -> None:
        self.webhook(
            {"senderPhoneNumber": phone, "eventType": kind, "eventId": uuid.uuid4().hex,
             "messageId": message_id, "sendTime": iso(at), "agentId": agent}
        )  # fmt: skip

    def typing(self, event_id: str, agent: str, phone: str, at: datetime) -> None:
        self.webhook(
            {"senderPhoneNumber": phone, "eventType": "IS_TYPING", "eventId": event_id,
             "sendTime": iso(at), "agentId": agent}
        )  # fmt: skip

    def user_message(
        self,
        message_id: str,
        agent: str,
        phone: str,
        at: datetime,
        kind: str,
        postback: str | None = None,
    ) -> None:
        payload: dict[str, Any] = {
            "senderPhoneNumber": phone, "messageId": message_id, "sendTime": iso(at),
            "agentId": agent,
        }  # fmt: skip
        if kind == "text":
            payload["text"] = "hello"
        elif kind == "file":
            payload["userFile"] = {
                "category": "IMAGE",
                "payload": {"mimeType": "image/png", "fileSizeBytes": 10,
                            "fileUri": "https://rcs.example.invalid/f", "fileName": "a.png"},
            }  # fmt: skip
        elif kind == "location":
            payload["location"] = {"latitude": 1.5, "longitude": 2.5}
        else:
            payload["suggestionResponse"] = {
                "postbackData": postback,
                "text": "tap",
                "type": "REPLY" if kind == "suggestion_reply" else "ACTION",
            }
        self.webhook(payload)


_refresh_app: Any = None


def refresh_client() -> Any:
    global _refresh_app
    if _refresh_app is None:
        import functions_framework

        _refresh_app = functions_framework.create_app(
            "refresh", str(REPO_ROOT / "functions" / "main.py")
        )
    return _refresh_app.test_client()


def post_refresh(body: dict[str, Any] | None = None, expect: int = 200) -> Any:
    resp = refresh_client().post("/", data=json.dumps(body or {}).encode())
    assert resp.status_code == expect, resp.get_data(as_text=True)
    return resp.get_json()


def table_rows(dataset: str, table: str) -> list[dict[str, Any]]:
    client = clients.bigquery_client()
    rows = client.query(f"SELECT * FROM `{client.project}.{dataset}.{table}`").result()
    return [dict(r) for r in rows]


# Each run's latest status (README: refresh_runs is append-only, a later row supersedes).
LATEST_RUNS_SQL = """
SELECT * FROM `{dataset}.refresh_runs`
QUALIFY ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY finished_at DESC NULLS LAST) = 1
"""


# Every table a refresh writes, and the column that records when a row was
# written rather than what it says.
REFRESH_TABLES = (
    "agent_messages", "user_messages", "user_events",
    "daily_metrics", "daily_postbacks", "response_samples",
)  # fmt: skip
WRITE_TIME = {"refreshed_at"}


def table_snapshot(
    dataset: str, tables: tuple[str, ...] = REFRESH_TABLES
) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows as sorted (column, value) tuples without the write time,
    in a stable order: two refreshes that wrote the same data compare equal."""
    out = {}
    for table in tables:
        rows = [
            tuple(sorted((k, v) for k, v in row.items() if k not in WRITE_TIME))
            for row in table_rows(dataset, table)
        ]
        out[table] = sorted(rows, key=repr)
    return out


def latest_runs(dataset: str) -> list[dict[str, Any]]:
    """One row per run (its latest), oldest run first."""
    client = clients.bigquery_client()
    rows = client.query(LATEST_RUNS_SQL.format(dataset=f"{client.project}.{dataset}")).result()
    return sorted((dict(r) for r in rows), key=lambda r: r["started_at"])


def metrics_by_key(dataset: str) -> dict[tuple[str, str], dict[str, Any]]:
    """daily_metrics as {(iso date, agent_id): row}."""
    return {(r["date"].isoformat(), r["agent_id"]): r for r in table_rows(dataset, "daily_metrics")}


def query(sql: str, params: list[bigquery.ScalarQueryParameter] | None = None) -> list[Any]:
    client = clients.bigquery_client()
    config = bigquery.QueryJobConfig(query_parameters=params or [])
    return list(client.query(sql, job_config=config).result())


def us(at: datetime) -> int:
    return datetime_to_us(at)


DURATIONS = (
    "read_to_reply_avg_s", "read_to_reply_p50_s", "agent_response_avg_s",
    "agent_response_p50_s", "agent_response_p90_s",
)  # fmt: skip


def _close(actual: float | None, wanted: float | None) -> bool:
    if actual is None or wanted is None:
        return actual is wanted
    return math.isclose(actual, wanted, rel_tol=1e-6, abs_tol=1e-9)


def assert_tables_match(dataset: str, want: Expected) -> None:
    got = {(r["date"], r["agent_id"]): r for r in table_rows(dataset, "daily_metrics")}
    assert sorted(got) == sorted(want.metrics), "the (date, agent) rows differ"
    problems = []
    for key, row in sorted(want.metrics.items()):
        for column in COUNTS:
            if got[key][column] != row[column]:
                problems.append(f"{key} {column}: got {got[key][column]}, want {row[column]}")
        for column in DURATIONS:  # exact: integer milliseconds, divided once
            if got[key][column] != row[column]:
                problems.append(f"{key} {column}: got {got[key][column]}, want {row[column]}")
    assert not problems, "\n".join(problems[:40])

    postbacks = {
        (r["date"], r["agent_id"], r["postback_data"], r["kind"]): r["count"]
        for r in table_rows(dataset, "daily_postbacks")
    }
    assert postbacks == want.postbacks

    samples: dict[tuple[date, str, str], list[int]] = {}
    for r in table_rows(dataset, "response_samples"):
        samples.setdefault((r["date"], r["agent_id"], r["metric"]), []).append(r["duration_ms"])
        assert r["seconds"] == r["duration_ms"] / 1000
    assert {k: sorted(v) for k, v in samples.items()} == {
        k: sorted(v) for k, v in want.samples.items()
    }
