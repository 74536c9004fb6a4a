"""Every document ingest writes carries its change-feed shard, from its id alone."""

from __future__ import annotations

from typing import Any

from google.cloud import firestore
from rbm_analytics.core.collections import AGENT_MESSAGES, USER_EVENTS, USER_MESSAGES
from rbm_analytics.core.config import get_settings
from rbm_analytics.core.shards import SHARD_FIELD, shard_of

from tests.integration.refresh_support import Traffic, utc
from tests.support import PROJECT


def test_every_written_document_has_the_shard_of_its_id(ingest_client: Any) -> None:
    t = Traffic(ingest_client)
    sends = [
        (f"shard-m{i}", "acme-agent", f"+1555300{i:04d}", utc(2026, 3, 2, 9)) for i in range(40)
    ]
    t.agent_messages(sends)
    for mid, agent, phone, at in sends[:20]:
        t.receipt("READ", mid, agent, phone, at)  # an update keeps the shard
        t.user_message(f"shard-u-{mid}", agent, phone, at, "text")
        t.typing(f"shard-typing-{mid}", agent, phone, at)
    # A receipt before its sent record creates the document: it has a shard too.
    t.receipt("DELIVERED", "shard-early", "acme-agent", "+15553009999", utc(2026, 3, 2, 9))

    count = get_settings().shard_count
    db = firestore.Client(project=PROJECT)
    seen: dict[str, set[int]] = {}
    for collection in (AGENT_MESSAGES, USER_MESSAGES, USER_EVENTS):
        docs = list(db.collection(collection).select([SHARD_FIELD]).stream())
        assert len(docs) >= 20, collection
        for doc in docs:
            assert (doc.to_dict() or {}).get(SHARD_FIELD) == shard_of(doc.id, count), doc.id
        seen[collection] = {(doc.to_dict() or {})[SHARD_FIELD] for doc in docs}
    # The hash spreads 40 ids over more than a few of the shards.
    assert len(seen[AGENT_MESSAGES]) > count // 2
