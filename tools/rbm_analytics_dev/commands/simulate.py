"""``rbm-analytics simulate``: realistic RBM traffic against ingest (local or deployed)."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading

from rbm_analytics.core.errors import InvalidInput
from rbm_analytics.core.timeutil import now_us, parse_rfc3339_us

from rbm_analytics_dev.local.sender import Progress, Sender, SendError, Target, preflight
from rbm_analytics_dev.local.simulate import (
    LivePlan,
    PlanConfig,
    PlannedRequest,
    plan_backfill,
    truth_of,
)
from rbm_analytics_dev.local.stack import DEFAULT_PORTS, LOCAL_AGENT_KEYS, LOCAL_CLIENT_TOKENS

US = 1_000_000

EPILOG = f"""\
Plans conversations between N agents and M users — campaign messages with
suggestions, DELIVERED and READ receipts with realistic lags (most within
seconds or minutes, a tail over days past the 8-day cutoff, some never),
replies of every kind (suggestion replies and actions with their postbackData,
text, files with MIME types, locations), IS_TYPING events, user-initiated
conversations and agent responses — and sends them the way RBM and an agent
backend do: signed webhook events (with duplicates and late, reordered
deliveries) and the sent log in batches of up to 500. Failed requests (503,
connection errors) are retried with backoff; nothing is dropped silently.

The same --seed and --end produce exactly the same traffic (re-sending it is
harmless: every event is then a duplicate). --truth writes what a correct
refresh must report for it (daily_metrics and daily_postbacks rows per UTC
date and agent, with the 8-day rule applied).

Defaults talk to the local stack ('make run'): --url http://127.0.0.1:{DEFAULT_PORTS["ingest"]}
and its local client token and API key. Environment: RBM_INGEST_URL,
RBM_CLIENT_TOKEN, RBM_AGENT_API_KEY.

examples:
  rbm-analytics simulate                                   # 2 agents, 50 users, 3 days
  rbm-analytics simulate --agents 5 --users 1000 --days 14 --seed 7 --truth truth.json
  rbm-analytics simulate --live --rate 50 --duration 600   # 50 requests/s for 10 minutes
  rbm-analytics simulate --dry-run --truth truth.json      # plan only, send nothing
  rbm-analytics simulate --url https://REGION-PROJECT.cloudfunctions.net/ingest \\
      --client-token "$RBM_CLIENT_TOKEN" --api-key "$RBM_AGENT_API_KEY"

exit codes: 0 everything sent, 1 some requests failed or the target is not
reachable, 2 bad arguments.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="send realistic RBM traffic to ingest (local stack or a deployment)",
        description="Send realistic RBM traffic to an ingest endpoint.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    env = os.environ
    target = p.add_argument_group("target")
    target.add_argument(
        "--url",
        default=env.get("RBM_INGEST_URL", f"http://127.0.0.1:{DEFAULT_PORTS['ingest']}"),
        help="ingest base URL (webhook at /, sent log at /agent-messages)",
    )
    target.add_argument(
        "--client-token",
        metavar="TOKEN",
        default=env.get("RBM_CLIENT_TOKEN", LOCAL_CLIENT_TOKENS),
        help="RBM client token that signs webhook requests; or, where tokens are bound to "
        "agents, entries as in RBM_CLIENT_TOKENS (TOKEN:agentA|agentB,...): each agent's "
        "events are signed with its own (default: the local stack's)",
    )
    target.add_argument(
        "--api-key",
        metavar="KEY",
        default=env.get("RBM_AGENT_API_KEY", LOCAL_AGENT_KEYS),
        help="API key for /agent-messages; or entries as in AGENT_API_KEYS "
        "(KEY:agentA|agentB,...): each agent's batches carry its own key",
    )
    shape = p.add_argument_group("traffic")
    shape.add_argument(
        "--agents", type=int, metavar="N", default=2, help="number of agents (default 2)"
    )
    shape.add_argument(
        "--users", type=int, metavar="M", default=50, help="number of users (default 50)"
    )
    shape.add_argument(
        "--days",
        type=float,
        metavar="D",
        default=3.0,
        help="days of history up to --end (default 3)",
    )
    shape.add_argument(
        "--end", metavar="TIME", help="RFC 3339 end of the simulated period (default: now)"
    )
    shape.add_argument(
        "--seed", type=int, metavar="N", help="random seed (default: a new one, printed)"
    )
    shape.add_argument(
        "--campaign-rate",
        metavar="RATE",
        type=float,
        default=0.5,
        help="agent-initiated messages per user, per agent, per day (default 0.5)",
    )
    shape.add_argument(
        "--inbound-rate",
        metavar="RATE",
        type=float,
        default=0.08,
        help="user-initiated conversations per user, per agent, per day (default 0.08)",
    )
    shape.add_argument(
        "--duplicates",
        type=float,
        metavar="SHARE",
        default=0.03,
        help="share of events delivered twice",
    )
    shape.add_argument(
        "--reorder",
        type=float,
        metavar="SHARE",
        default=0.05,
        help="share of webhook events delivered late",
    )
    shape.add_argument(
        "--window-days",
        type=int,
        metavar="DAYS",
        default=8,
        help="backfill window for --truth (default 8)",
    )
    live = p.add_argument_group("live traffic")
    live.add_argument("--live", action="store_true", help="send traffic as it happens, from now on")
    live.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    live.add_argument(
        "--duration", type=float, metavar="SECONDS", help="seconds to run (default: until Ctrl-C)"
    )
    run_opts = p.add_argument_group("sending")
    run_opts.add_argument(
        "--concurrency", type=int, metavar="N", default=16, help="parallel connections (default 16)"
    )
    run_opts.add_argument(
        "--give-up-after",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="retry a failing request this long before counting it failed (default 300)",
    )
    run_opts.add_argument("--truth", metavar="FILE", help="write the ground truth as JSON")
    run_opts.add_argument("--dry-run", action="store_true", help="plan, but send nothing")
    run_opts.add_argument("--quiet", action="store_true", help="no progress bar")
    run_opts.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace, end_us: int, seed: int) -> PlanConfig:
    try:
        return PlanConfig(
            agents=args.agents,
            users=args.users,
            days=args.days,
            end_us=end_us,
            seed=seed,
            campaign_rate=args.campaign_rate,
            inbound_rate=args.inbound_rate,
            duplicate_rate=args.duplicates,
            reorder_rate=args.reorder,
            window_days=args.window_days,
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    err = sys.stderr
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**9)
    end_us = parse_rfc3339_us(args.end, "--end") if args.end else now_us()
    if args.live and args.end:
        raise InvalidInput("--end does not apply to --live traffic, which starts now")
    if args.live and args.dry_run:
        raise InvalidInput("--dry-run plans a bounded period: drop --live")
    if args.live and args.rate <= 0:
        raise InvalidInput("--rate must be positive")
    if args.duration is not None and args.duration <= 0:
        raise InvalidInput("--duration must be positive")
    config = _config(args, end_us, seed)
    try:
        target = Target(args.url, args.client_token, args.api_key)
        target.check_agents(config.agent_ids())
    except SendError as exc:
        raise InvalidInput(str(exc)) from None

    if args.live:
        start = now_us()
        stop = start + int(args.duration * US) if args.duration else None
        requests = LivePlan(config, start, args.rate, stop).requests()
        total = None
        print(
            f"simulate: live traffic to {target.url} at ~{args.rate:g} requests/s "
            f"({config.agents} agents, {config.users} users, seed {seed}); Ctrl-C stops",
            file=err,
        )
    else:
        plan = plan_backfill(config)
        requests, total = iter(plan.requests), len(plan.requests)
        counts = plan.counts()
        print(
            f"simulate: {config.days:g} days up to {args.end or 'now'} for {config.agents} "
            f"agents and {config.users} users (seed {seed}): {len(plan.events):,} events, "
            f"{counts['duplicates']:,} duplicates, {total:,} requests",
            file=err,
        )
        if args.dry_run:
            if args.truth:
                plan.truth().dump(args.truth)
                print(f"simulate: ground truth written to {args.truth}", file=err)
            if args.json:
                print(json.dumps({"seed": seed, "plan": counts}, indent=1))
            return 0

    try:
        preflight(target)
    except SendError as exc:
        print(f"rbm-analytics simulate: {exc}", file=err)
        return 1

    sent: list[PlannedRequest] = []
    lock = threading.Lock()

    def on_sent(req: PlannedRequest) -> None:
        with lock:
            sent.append(req)

    sender = Sender(
        target,
        concurrency=args.concurrency,
        give_up_after_s=args.give_up_after,
        realtime=args.live,
        progress=None if args.quiet else Progress(total),
        on_sent=on_sent if args.truth else None,
    )
    report = sender.run(requests)
    if args.truth:
        # The truth of what was actually delivered: all of a backfill plan,
        # or what a live run managed to send before it stopped.
        truth_of(sent, config.window_days).dump(args.truth)
        print(f"simulate: ground truth written to {args.truth}", file=err)
    if args.json:
        print(json.dumps({"seed": seed, **report.to_json()}, indent=1))
    else:
        print(report.render(), file=err)
    return 1 if report.failures else 0
