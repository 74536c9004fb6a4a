"""A fixed rate through the served ingest, with duplicates: nothing lost, nothing counted twice.

Simulated RBM traffic (a seeded plan with its own ground truth, 1 % of the
webhook events delivered twice and some reordered) is sent at a fixed rate
to ``ingest`` served as deployed (functions-framework on gunicorn). Every
request must be acknowledged (no 5xx), and the morning refresh of those days
must report exactly the plan's ground truth.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import bigquery
from rbm_analytics.core.clients import make_bigquery_client
from rbm_analytics.core.config import Settings
from rbm_analytics.core.timeutil import datetime_to_us
from rbm_analytics_dev.local.sender import agent_messages_request, webhook_request
from rbm_analytics_dev.local.simulate import COUNT_COLUMNS, PlanConfig, plan_backfill

from bench import harness


def _requests(plan: Any) -> list[harness.Req]:
    out: list[harness.Req] = []
    for seq, req in enumerate(plan.requests):
        if req.route == "webhook":
            body, headers = webhook_request(req.body_json(), harness.CLIENT_TOKEN, seq)
            out.append(("/", headers, body))
        else:
            body, headers = agent_messages_request(req.body_json(), harness.AGENT_KEY)
            out.append(("/agent-messages", headers, body))
    return out


def _post_json(port: int, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=600) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def test_fixed_rate_with_duplicates_loses_nothing_and_refresh_matches_ground_truth(
    tmp_path: Path, bigquery_emulator: Any, soak: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = int(os.environ.get("RELIABILITY_SEED", "4242"))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    config = PlanConfig(
        agents=3, users=400 if soak else 60, days=4, end_us=datetime_to_us(today), seed=seed,
        duplicate_rate=0.01, reorder_rate=0.05,
    )  # fmt: skip
    plan = plan_backfill(config)
    reqs = _requests(plan)
    counts = plan.counts()
    print(f"seed {seed}: {len(reqs)} requests, {counts}")
    assert counts["duplicates"] > 0, "the plan has no duplicate deliveries to test"

    dataset = f"load_{uuid.uuid4().hex[:10]}"
    with harness.firestore(tmp_path) as fs:
        env = harness.base_env(fs.host)
        with harness.served("ingest", env, tmp_path) as fn:
            # Warm the emulator's JVM and the worker first, as a deployed
            # service is warm; the first commits on a cold emulator can stall.
            warm = [
                ("/", *reversed(webhook_request(
                    {"senderPhoneNumber": "+15550000000", "agentId": "warm-up",
                     "eventType": "IS_TYPING", "eventId": f"warm-{i}"},
                    harness.CLIENT_TOKEN, i)))
                for i in range(40)
            ]  # fmt: skip
            harness.http_load(fn.port, warm, concurrency=8)
            load = harness.http_load(fn.port, reqs, concurrency=8, rate=150.0)
        print(f"ingest: {load.rate:.0f} requests/s, statuses {load.statuses}")
        failures = [line for line in (tmp_path / "ingest.log").read_text().splitlines()
                    if '"status":200' not in line and '"ingest request"' in line]  # fmt: skip
        assert load.statuses == {200: len(reqs)}, (load.statuses, failures[:5])

        refresh_env = {**env, "BIGQUERY_EMULATOR_HOST": bigquery_emulator.host,
                       "BQ_DATASET": dataset}  # fmt: skip
        first = (today - timedelta(days=config.days + 1)).date()
        last = (today - timedelta(days=1)).date()
        with harness.served("refresh", refresh_env, tmp_path) as fn:
            summary = _post_json(fn.port, {"start": first.isoformat(), "end": last.isoformat()})
        print(f"refresh: {summary['documents_read']} documents in {summary['seconds']} s")

    settings = Settings(project=harness.PROJECT, bq_dataset=dataset)
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bigquery_emulator.host)
    client = make_bigquery_client(settings)
    rows = client.query(
        f"SELECT * FROM `{harness.PROJECT}.{dataset}.daily_metrics`",
        job_config=bigquery.QueryJobConfig(),
    ).result()
    got = {(r["date"], r["agent_id"]): dict(r) for r in rows}
    truth = plan.truth()
    keys = set(truth.daily) | set(got)
    assert keys, "nothing was counted"
    mismatches = []
    for key in sorted(keys):
        want = truth.row(*key)
        have = got.get(key, {})
        for column in COUNT_COLUMNS:
            if have.get(column, 0) != want[column]:
                mismatches.append((key, column, have.get(column, 0), want[column]))
    assert not mismatches, mismatches[:20]
