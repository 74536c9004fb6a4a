"""The local stack's two tenants, end to end through a served ingest.

The simulator signs each agent's webhook events with that agent's own client
token and sends its sent records with its own API key; the deployment's
credentials are bound to agents, so any mix-up would be a 403. Everything
arrives, and swapping the tenants' secrets is refused without storing a thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rbm_analytics.core import clients
from rbm_analytics.core.timeutil import now_us
from rbm_analytics_dev.local.sender import Sender, SendError, Target, preflight
from rbm_analytics_dev.local.simulate import PlanConfig, plan_backfill
from rbm_analytics_dev.local.stack import (
    LOCAL_AGENT_KEYS,
    LOCAL_CLIENT_TOKENS,
    LOCAL_TENANTS,
    local_target,
)

from tests.app_client import serve_asgi
from tests.integration.ingest_support import all_documents, assert_nothing_stored

SEED = 4242


@pytest.fixture
def served(ingest_app: Any, firestore_host: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("RBM_CLIENT_TOKENS", LOCAL_CLIENT_TOKENS)
    monkeypatch.setenv("AGENT_API_KEYS", LOCAL_AGENT_KEYS)
    clients.reset()
    with serve_asgi(ingest_app) as url:
        yield url


def _plan(agents: int) -> Any:
    print(f"seed {SEED}")
    return plan_backfill(PlanConfig(agents=agents, users=8, days=1, end_us=now_us(), seed=SEED))


def test_each_agent_signs_and_sends_with_its_own_credentials(served: str) -> None:
    target = local_target(served)
    preflight(target)  # every tenant's token and key is known
    plan = _plan(agents=3)  # one agent of the first tenant, two of the second
    assert {LOCAL_TENANTS["acme"][0]} < set(plan.config.agent_ids())
    report = Sender(target, concurrency=4, give_up_after_s=5).run(plan.requests)
    assert report.failures == 0
    stored = all_documents()["agent_messages"]
    sent = {e.message_id: e.agent_id for e in plan.events if e.kind == "sent"}
    assert {mid: stored[mid]["agent_id"] for mid in sent} == sent


def test_another_tenants_secrets_are_refused_and_store_nothing(served: str) -> None:
    acme, globex = (LOCAL_TENANTS[t] for t in ("acme", "globex"))
    target = local_target(served)
    # The acme agent's traffic, signed and sent with globex's secrets.
    swapped = Target(served, target.token_for(globex[0]), target.key_for(globex[0]))
    plan = _plan(agents=1)
    assert plan.config.agent_ids() == [acme[0]]
    report = Sender(swapped, concurrency=2, give_up_after_s=2).run(plan.requests)
    assert report.failures == len(plan.requests)
    assert_nothing_stored()


def test_an_agent_without_a_credential_is_named_before_anything_is_sent() -> None:
    target = Target("http://127.0.0.1:9", "tokA:agent-a", "keyA:agent-a")
    with pytest.raises(SendError, match="--client-token has no entry for agent agent-b"):
        target.check_agents(["agent-a", "agent-b"])
    # An unbound entry serves every agent that has no bound one.
    either = Target("http://127.0.0.1:9", "tokA:agent-a,tokAny", "keyAny")
    assert (either.token_for("agent-a"), either.token_for("agent-b")) == ("tokA", "tokAny")
    assert either.key_for("agent-a") == "keyAny"
