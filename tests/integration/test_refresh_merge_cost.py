"""What the mirror MERGEs read and rewrite: exactly the staged partitions, only changed rows.

BigQuery bills a MERGE by the partitions it reads and (for UPDATE) rewrites.
The emulator reports no bytes, so these tests look at what decides the bill:
the rendered statement and its parameters (the target's partition filter
names exactly the staged dates, as a constant array) and the number of rows
the statement changed.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery
from rbm_analytics.core import clients
from rbm_analytics.refresh.warehouse import MERGES, Warehouse

from tests.integration.refresh_support import Traffic, post_refresh, table_rows
from tests.support import PROJECT

PHONE = "+15550003333"


@pytest.fixture
def statements(bq_dataset: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any, Any]]:
    """Every query the refresh sends: (SQL, parameters, the finished job)."""
    seen: list[tuple[str, Any, Any]] = []
    original = bigquery.Client.query

    def query(self: bigquery.Client, sql: str, *args: Any, **kwargs: Any) -> Any:
        job = original(self, sql, *args, **kwargs)
        config = kwargs.get("job_config")
        seen.append((sql, list(config.query_parameters) if config else [], job))
        return job

    monkeypatch.setattr(bigquery.Client, "query", query)
    monkeypatch.setenv("REFRESH_OVERLAP_SECONDS", "0.5")
    clients.reset()
    return seen


def _merges(seen: list[tuple[str, Any, Any]], table: str) -> list[tuple[str, Any, Any]]:
    return [s for s in seen if re.search(rf"^MERGE `[^`]*\.{table}` AS t$", s[0], re.M)]


def _dates(params: list[Any]) -> list[date]:
    (dates,) = [p for p in params if p.name == "dates"]
    assert isinstance(dates, bigquery.ArrayQueryParameter) and dates.array_type == "DATE"
    return list(dates.values)


def test_a_late_read_touches_only_its_own_partition(
    ingest_client: Any, bq_dataset: str, statements: list[tuple[str, Any, Any]]
) -> None:
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    old, recent = today - timedelta(days=60), today - timedelta(days=2)
    traffic = Traffic(ingest_client)
    traffic.agent_messages([("new", "agent-a", PHONE, recent)])
    time.sleep(0.6)  # "new" stays out of the next runs' overlap margin
    traffic.agent_messages([("old", "agent-a", PHONE, old)])
    traffic.receipt("DELIVERED", "old", "agent-a", PHONE, old + timedelta(seconds=5))
    post_refresh({"run_date": today.date().isoformat()})
    time.sleep(0.6)  # past the overlap margin: the next run reads only what changes now
    statements.clear()

    # A READ for the 60-day-old message arrives (its cutoff passed long ago:
    # it changes the mirror, not the daily numbers).
    # Just before now, whatever the hour the test runs at (a time ahead of
    # ingest's clock would be refused).
    read_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    traffic.receipt("READ", "old", "agent-a", PHONE, read_at)
    post_refresh({"run_date": today.date().isoformat()})

    (merge,) = _merges(statements, "agent_messages")
    sql, params, job = merge
    assert _dates(params) == [old.date()]
    # The target's only partition filter is the constant array of staged dates.
    code = re.sub(r"--[^\n]*", "", sql)
    assert re.findall(r"t\.sent_date\b[^,\n]*", code) == ["t.sent_date IN UNNEST(@dates)"]
    assert {p.name for p in params} == {"dates"}
    if job.num_dml_affected_rows is None:
        pytest.skip("emulator: the MERGE reports no affected-row count")
    assert job.num_dml_affected_rows == 1
    (row,) = [r for r in table_rows(bq_dataset, "agent_messages") if r["message_id"] == "old"]
    assert row["read_at"] == read_at


def test_unchanged_rows_read_again_rewrite_nothing(
    ingest_client: Any,
    bq_dataset: str,
    statements: list[tuple[str, Any, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    sent = today - timedelta(days=3)
    traffic = Traffic(ingest_client)
    traffic.agent_messages([("m1", "agent-a", PHONE, sent), ("m2", "agent-a", PHONE, sent)])
    traffic.receipt("READ", "m1", "agent-a", PHONE, sent + timedelta(minutes=1))
    traffic.user_message("u1", "agent-a", PHONE, sent + timedelta(minutes=2), "text")
    traffic.typing("e1", "agent-a", PHONE, sent + timedelta(minutes=2))
    body = {"run_date": today.date().isoformat()}
    post_refresh(body)
    first = {t: sorted(map(repr, table_rows(bq_dataset, t))) for t in MERGES}

    # Within the overlap margin the same documents are read and staged again,
    # and a duplicate READ (the same event delivered twice) changes nothing.
    traffic.receipt("READ", "m1", "agent-a", PHONE, sent + timedelta(minutes=1))
    monkeypatch.setenv("REFRESH_OVERLAP_SECONDS", "3600")
    clients.reset()
    statements.clear()
    post_refresh(body)
    merges = {t: _merges(statements, t) for t in MERGES}
    assert all(len(m) == 1 for m in merges.values()), "every table staged its rows again"
    for table, ((sql, params, _),) in merges.items():
        assert _dates(params) == [sent.date()], table
        if table != "agent_messages":
            assert "WHEN MATCHED" not in sql, f"{table} is write-once: insert-only MERGE"
    assert {t: sorted(map(repr, table_rows(bq_dataset, t))) for t in MERGES} == first
    affected = {t: m[0][2].num_dml_affected_rows for t, m in merges.items()}
    if None in affected.values():
        pytest.skip("emulator: a MERGE reports no affected-row count")
    assert affected == dict.fromkeys(MERGES, 0)


def test_the_daily_statements_pass_require_partition_filter(bq_dataset: str) -> None:
    """Every daily statement filters each mirror table on its partition column.

    The emulator enforces require_partition_filter, so with it set on the
    mirror tables the whole daily recompute must still run. (The MERGEs put
    their target filter in ON, `t.<date> IN UNNEST(@dates)`, which the
    emulator does not accept as satisfying it; see docs/scaling.md.)
    """
    client = clients.bigquery_client()
    wh = Warehouse(client, PROJECT, bq_dataset, "US")
    wh.ensure()
    for name in ("agent_messages", "user_messages", "user_events"):
        table = client.get_table(f"{PROJECT}.{bq_dataset}.{name}")
        table.require_partition_filter = True
        client.update_table(table, ["require_partition_filter"])
    with pytest.raises(gexc.BadRequest, match="partition elimination"):
        client.query(f"SELECT COUNT(*) FROM `{PROJECT}.{bq_dataset}.user_events`").result()
    day = date(2026, 5, 4)
    counts = wh.replace_daily(day, day, window_days=8, refreshed_at=datetime.now(UTC))
    assert counts.total == 0
