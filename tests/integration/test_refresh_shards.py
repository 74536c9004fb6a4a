"""Upgrading to the sharded change feed loses nothing.

Documents written before ingest wrote ``shard`` are found by no shard's
query; ``rbm-analytics backfill-shards`` gives them theirs (and a new
``updated_at``), and the next refresh mirrors them. A shard's stream that is
new since the upgrade starts at its collection's old cursor, not at the
beginning: what the old per-collection stream mirrored is not read again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud import firestore
from rbm_analytics.core.collections import AGENT_MESSAGES, USER_EVENTS, USER_MESSAGES
from rbm_analytics.core.config import get_settings
from rbm_analytics.core.shards import SHARD_FIELD, shard_of
from rbm_analytics.core.tables import dataset_path
from rbm_analytics.refresh import watermark
from rbm_analytics_dev import cli

from tests.integration.refresh_support import Traffic, post_refresh, table_rows, us, utc
from tests.support import PROJECT

DAY = {"start": "2026-01-05", "end": "2026-01-05"}
AT = utc(2026, 1, 5, 9)


def _old_documents(db: firestore.Client) -> None:
    """One document per collection as the version before shards wrote them."""
    common = {
        "agent_id": "agent-old", "user_key": "k-old", "updated_at": firestore.SERVER_TIMESTAMP,
    }  # fmt: skip
    db.collection(AGENT_MESSAGES).document("old-m").set(
        {**common, "content_type": "text", "sent_at_us": us(AT)}
    )
    db.collection(USER_MESSAGES).document("old-u").set(
        {**common, "kind": "text", "event_at_us": us(AT)}
    )
    db.collection(USER_EVENTS).document("old-e").set(
        {**common, "event_id": "old-e", "event_type": "IS_TYPING", "event_at_us": us(AT)}
    )


def _backfill(capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    assert cli.main(["backfill-shards"]) == 0
    out = capsys.readouterr().out
    updated: dict[str, int] = json.loads(out[out.index("{\n") :])["updated"]
    return updated


def test_documents_without_a_shard_are_mirrored_after_the_backfill(
    ingest_client: Any, bq_dataset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = firestore.Client(project=PROJECT)
    Traffic(ingest_client).agent_messages([("new-m", "agent-new", "+15550007777", AT)])
    _old_documents(db)

    post_refresh(DAY)
    mirrored = {r["message_id"] for r in table_rows(bq_dataset, "agent_messages")}
    assert mirrored == {"new-m"}, "a document without a shard is in no shard's stream"

    assert _backfill(capsys) == {AGENT_MESSAGES: 1, USER_MESSAGES: 1, USER_EVENTS: 1}
    count = get_settings().shard_count
    for collection, doc_id in ((AGENT_MESSAGES, "old-m"), (USER_MESSAGES, "old-u"),
                               (USER_EVENTS, "old-e")):  # fmt: skip
        doc = db.collection(collection).document(doc_id).get().to_dict() or {}
        assert doc[SHARD_FIELD] == shard_of(doc_id, count)

    post_refresh(DAY)
    assert {r["message_id"] for r in table_rows(bq_dataset, "agent_messages")} == {
        "new-m", "old-m",
    }  # fmt: skip
    assert [r["message_id"] for r in table_rows(bq_dataset, "user_messages")] == ["old-u"]
    assert [r["event_id"] for r in table_rows(bq_dataset, "user_events")] == ["old-e"]
    # Run again, nothing is left to do.
    assert set(_backfill(capsys).values()) == {0}


def test_new_shard_streams_start_at_the_collections_old_cursor(
    ingest_client: Any, bq_dataset: str
) -> None:
    t = Traffic(ingest_client)
    t.agent_messages([("m1", "agent-a", "+15550008888", AT)])
    t.user_message("u1", "agent-a", "+15550008888", AT, "text")
    # The version before shards read user_messages as one stream, up to now.
    settings = get_settings()
    watermark.save(
        firestore.Client(project=PROJECT), dataset_path(settings.project, bq_dataset),
        USER_MESSAGES, watermark.Cursor(datetime.now(UTC)), "old-run", caught_up=True,
    )  # fmt: skip
    summary = post_refresh(DAY)
    # agent_messages had no cursor: read from the beginning; user_messages not again.
    assert summary["mirror_rows"][AGENT_MESSAGES] == 1
    assert summary["mirror_rows"][USER_MESSAGES] == 0
