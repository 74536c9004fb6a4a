"""The whole system on one machine: both emulators, the three functions, a scheduler.

    Firestore emulator      127.0.0.1:8085   data: .data/firestore (exported on stop)
    BigQuery emulator       127.0.0.1:9050   data: .data/bigquery  (gRPC on 9060)
    ingest   (functions-framework)  :8080   relays every webhook event to the demo bot
    refresh  (functions-framework)  :8081   backfills (the morning run is the job)
    export   (functions-framework)  :8082
    scheduler (Cloud Scheduler stand-in)  :8090   on the cron, starts the refresh
             job as the cloud's does: N task processes of one execution
             (the Cloud Run job's stand-in), output in logs/refresh-job.log
    demo bot (the agent's own webhook, behind the relay)  :8070
             records what it received: .data/bot/received.jsonl

Every process runs in its own process group and is stopped with its group, so
the Java server behind ``gcloud`` goes too. The functions run the same code
as in the cloud (``functions/main.py``) with the emulator hosts in their
environment and local, well-known secrets.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import TextIO

from rbm_analytics.core.config import Settings
from rbm_analytics.core.errors import ConfigError
from rbm_analytics.core.timeutil import datetime_to_us, now_us, today_utc

from rbm_analytics_dev.local import emulators
from rbm_analytics_dev.local.cron import Cron, CronError
from rbm_analytics_dev.local.emulators import ManagedProcess
from rbm_analytics_dev.local.job import DEFAULT_TASKS, MAX_TASKS, LocalJob
from rbm_analytics_dev.local.scheduler import JobTarget, LocalScheduler, RunResult
from rbm_analytics_dev.local.sender import Target
from rbm_analytics_dev.local.simulate import AGENT_NAMES

LOCAL_PROJECT = "demo-rbm-local"  # "demo-" projects never reach real Google Cloud
LOCAL_DATASET = "rbm_analytics"
# Well-known secrets of the local stack only (printed in its banner). Two
# tenants share the deployment, each with a client token and an API key bound
# to its own agents: "acme" owns the first demo agent, "globex" the others the
# simulator can name. A request signed or sent for the other tenant's agent
# gets 403, exactly as in a shared deployment in the cloud.
LOCAL_TENANTS: dict[str, tuple[str, ...]] = {
    "acme": AGENT_NAMES[:1],
    "globex": AGENT_NAMES[1:],
}
LOCAL_CLIENT_TOKENS = ",".join(
    f"local-client-token-{t}:{'|'.join(agents)}" for t, agents in LOCAL_TENANTS.items()
)
LOCAL_AGENT_KEYS = ",".join(
    f"local-api-key-{t}-{'0123456789abcdef' * 2}:{'|'.join(agents)}"
    for t, agents in LOCAL_TENANTS.items()
)
LOCAL_PHONE_HASH_KEY = "local-phone-hash-key-0123456789abcdef"
LOCAL_PUSH_TOKEN = "local-pubsub-token-0123456789abcdef"  # noqa: S105
FUNCTIONS = ("ingest", "refresh", "export")
DEFAULT_SCHEDULE = "0 6 * * *"
DEFAULT_PORTS: dict[str, int] = {
    "ingest": 8080,
    "refresh": 8081,
    "export": 8082,
    "firestore": 8085,
    "bigquery": 9050,
    "bigquery_grpc": 9060,
    "scheduler": 8090,
    "bot": 8070,
}
# The relay's deadline locally: short, so a stopped bot shows up quickly as 503s.
LOCAL_FORWARD_TIMEOUT_S = 3
ENV_PREFIX = "RBM_LOCAL_"
TASKS_ENV = f"{ENV_PREFIX}REFRESH_TASKS"
# Demo traffic seeded into empty storage: enough to make every chart move.
DEMO_AGENTS, DEMO_USERS, DEMO_DAYS, DEMO_SEED = 3, 100, 14, 2026


def local_target(url: str) -> Target:
    """The local stack's ingest at ``url``, with every tenant's token and key."""
    return Target(url, LOCAL_CLIENT_TOKENS, LOCAL_AGENT_KEYS)


class StackError(RuntimeError):
    """The stack cannot start; the message says what to do."""


def port_env(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}_PORT"


@dataclass(frozen=True)
class StackConfig:
    """Where everything listens and lives; every field can come from the environment."""

    data_dir: Path = emulators.REPO_ROOT / ".data"
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    schedule: str = DEFAULT_SCHEDULE
    # Tasks of the morning refresh job, as infra/'s refresh_tasks.
    refresh_tasks: int = DEFAULT_TASKS
    demo: bool = True
    # The demo bot behind the relay (ingest forwards every webhook event to it).
    bot: bool = True
    demo_users: int = DEMO_USERS
    demo_days: int = DEMO_DAYS
    project: str = LOCAL_PROJECT
    dataset: str = LOCAL_DATASET
    source: Path = emulators.REPO_ROOT / "functions" / "main.py"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        env = os.environ if env is None else env
        ports = {}
        for name, default in DEFAULT_PORTS.items():
            raw = env.get(port_env(name), "").strip()
            ports[name] = parse_port(raw, port_env(name)) if raw else default
        data_dir = env.get(f"{ENV_PREFIX}DATA_DIR", "").strip()
        tasks = env.get(TASKS_ENV, "").strip()
        return cls(
            data_dir=Path(data_dir) if data_dir else cls.data_dir,
            ports=ports,
            schedule=env.get(f"{ENV_PREFIX}SCHEDULE", "").strip() or DEFAULT_SCHEDULE,
            refresh_tasks=parse_tasks(tasks, TASKS_ENV) if tasks else DEFAULT_TASKS,
        )

    def with_ports(self, **overrides: int | None) -> StackConfig:
        ports = dict(self.ports)
        ports.update({k: v for k, v in overrides.items() if v is not None})
        return replace(self, ports=ports)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def function_env(self) -> dict[str, str]:
        """What the functions see: the same settings as in the cloud, pointed at the emulators."""
        env = {
            "GOOGLE_CLOUD_PROJECT": self.project,
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{self.ports['firestore']}",
            "BIGQUERY_EMULATOR_HOST": f"127.0.0.1:{self.ports['bigquery']}",
            "BQ_DATASET": self.dataset,
            "RBM_CLIENT_TOKENS": LOCAL_CLIENT_TOKENS,
            "AGENT_API_KEYS": LOCAL_AGENT_KEYS,
            "PHONE_HASH_KEY": LOCAL_PHONE_HASH_KEY,
            "PUBSUB_PUSH_TOKENS": LOCAL_PUSH_TOKEN,
            "PYTHONUNBUFFERED": "1",
        }
        if self.bot:
            env["FORWARD_URL"] = self.url("bot") + "/"
            env["FORWARD_TIMEOUT_SECONDS"] = str(LOCAL_FORWARD_TIMEOUT_S)
        return env

    @property
    def bot_record(self) -> Path:
        """Every delivery the demo bot received, one JSON line each."""
        return self.data_dir / "bot" / "received.jsonl"

    def cli_env(self) -> dict[str, str]:
        """What the CLI needs to work on this stack (refresh, export, schedule, simulate)."""
        env = {k: v for k, v in self.function_env().items() if k != "PYTHONUNBUFFERED"}
        env.update(
            CLOUD_SCHEDULER_EMULATOR_HOST=f"127.0.0.1:{self.ports['scheduler']}",
            RBM_INGEST_URL=self.url("ingest"),
            RBM_CLIENT_TOKEN=LOCAL_CLIENT_TOKENS,
            RBM_AGENT_API_KEY=LOCAL_AGENT_KEYS,
        )
        return env

    @property
    def env_file(self) -> Path:
        return self.data_dir / "local.env"


def parse_port(raw: str, what: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{what} must be a port number, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise StackError(f"{what} must be between 1 and 65535, got {port}")
    return port


def parse_tasks(raw: str, what: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise StackError(f"{what} must be a number of tasks, got {raw!r}") from None


def defined_functions(source: Path) -> tuple[str, ...]:
    """Which of the three entry points ``source`` defines."""
    tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return tuple(f for f in FUNCTIONS if f in names)


def http_get(url: str, timeout_s: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Stack:
    """Starts and stops everything; ``start()`` either brings all of it up or
    stops what it started and raises."""

    def __init__(
        self,
        config: StackConfig,
        *,
        out: TextIO | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.config = config
        # Set when the clean-up begins: a signal handler that sees it must
        # not interrupt the clean-up (that would leave processes behind).
        self.stopping = stopping or threading.Event()
        self.out = out or sys.stdout
        self.logs = config.data_dir / "logs"
        self.processes: dict[str, ManagedProcess] = {}
        self.scheduler: LocalScheduler | None = None
        self.functions: tuple[str, ...] = ()
        self._lock = threading.Lock()

    # -- messages -------------------------------------------------------------
    def say(self, line: str) -> None:
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()

    # -- checks ---------------------------------------------------------------
    def check(self) -> None:
        """Everything that can be known before starting anything."""
        cfg = self.config
        try:
            Cron.parse(cfg.schedule)
        except CronError as exc:
            raise StackError(f"schedule: {exc}") from None
        if not 1 <= cfg.refresh_tasks <= MAX_TASKS:
            raise StackError(
                f"the refresh job takes 1 to {MAX_TASKS} tasks (--refresh-tasks, {TASKS_ENV}), "
                f"not {cfg.refresh_tasks}"
            )
        if not cfg.source.is_file():
            raise StackError(
                f"{cfg.source} not found: run 'rbm-analytics serve' from a checkout of the "
                "repository (or pass --source)"
            )
        self.functions = defined_functions(cfg.source)
        if "ingest" not in self.functions:
            raise StackError(f"{cfg.source} defines no 'ingest' function")
        try:
            # The functions' own check of their settings, before anything starts.
            Settings.from_env(cfg.function_env())
        except ConfigError as exc:
            raise StackError(f"settings: {exc.message}") from None
        emulators.check_firestore_prerequisites()  # raises PrerequisiteMissing
        emulators.bigquery_python()
        used = [
            name
            for name, port in cfg.ports.items()
            if (name not in FUNCTIONS or name in self.functions)
            and (name != "bot" or cfg.bot)
            and emulators.port_in_use(port)
        ]
        if used:
            detail = ", ".join(f"{n} {cfg.ports[n]}" for n in used)
            flags = " ".join(f"--{n.replace('_', '-')}-port" for n in used)
            raise StackError(
                f"port already in use: {detail}. Stop what holds it (another 'make run'?) "
                f"or choose other ports with {flags} or the {ENV_PREFIX}*_PORT variables"
            )
        ports = list(cfg.ports.values())
        if len(set(ports)) != len(ports):
            raise StackError(f"two services were given the same port: {cfg.ports}")

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        started = time.monotonic()
        self.check()
        cfg = self.config
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            # The functions create their clients lazily, so all five start at once.
            self._start_all(
                [
                    emulators.firestore_emulator(
                        cfg.ports["firestore"],
                        data_dir=cfg.data_dir / "firestore",
                        log_path=self.logs / "firestore.log",
                    ),
                    emulators.bigquery_emulator(
                        cfg.ports["bigquery"],
                        cfg.ports["bigquery_grpc"],
                        cfg.project,
                        cfg.data_dir / "bigquery",
                        log_path=self.logs / "bigquery.log",
                    ),
                    *(self._function(name) for name in self.functions),
                    *([self._bot()] if cfg.bot else []),
                ]
            )
            try:
                self._ensure_tables()
            except Exception as exc:
                raise StackError(
                    f"could not create the BigQuery tables in the emulator: {exc}; "
                    f"see {self.logs / 'bigquery.log'}"
                ) from exc
            self._write_env_file()
            if "refresh" in self.functions:
                self.scheduler = LocalScheduler(
                    Cron.parse(cfg.schedule),
                    JobTarget(self.refresh_job()),
                    cfg.ports["scheduler"],
                    project=cfg.project,
                    on_run=self._report_run,
                ).start()
        except BaseException:
            self.stop(save=False)
            raise
        self.startup_seconds = time.monotonic() - started

    def refresh_job(self) -> LocalJob:
        """The refresh job's stand-in, with exactly the refresh function's environment.

        Its tasks run from the functions' source folder, so ``python -m``
        finds the same code the refresh function runs (in the cloud the job
        runs the function's image).
        """
        cfg = self.config
        return LocalJob(
            cfg.refresh_tasks,
            env=cfg.function_env(),
            cwd=cfg.source.parent,
            log_path=self.job_log,
        )

    @property
    def job_log(self) -> Path:
        return self.logs / "refresh-job.log"

    def _write_env_file(self) -> None:
        lines = [
            "# The rbm-analytics CLI against the running local stack:",
            f"#   set -a; . {self.config.env_file}; set +a",
            *(f"{k}={v}" for k, v in self.config.cli_env().items()),
        ]
        self.config.env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _function(self, name: str) -> ManagedProcess:
        port = self.config.ports[name]
        return ManagedProcess(
            name=name,
            argv=[
                *(sys.executable, "-m", "functions_framework"),
                *("--source", str(self.config.source), "--target", name),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            port=port,
            # functions-framework answers /robots.txt itself (404), without
            # calling the function: a probe that cannot trigger a refresh.
            ready_url=f"http://127.0.0.1:{port}/robots.txt",
            env=self.config.function_env(),
            log_path=self.logs / f"{name}.log",
        )

    def _bot(self) -> ManagedProcess:
        port = self.config.ports["bot"]
        self.config.bot_record.parent.mkdir(parents=True, exist_ok=True)
        # The bot checks each relayed request's signature: every tenant's token.
        clients_tokens = local_target(self.config.url("ingest")).client_tokens()
        tokens = [arg for c in clients_tokens for arg in ("--token", c.secret)]
        return ManagedProcess(
            name="bot",
            argv=[
                *(sys.executable, "-m", "rbm_analytics_dev.local.bot"),
                *("--port", str(port)),
                *tokens,
                *("--record", str(self.config.bot_record)),
            ],
            port=port,
            ready_url=f"http://127.0.0.1:{port}/",
            log_path=self.logs / "bot.log",
        )

    def _start_all(self, procs: list[ManagedProcess]) -> None:
        """Start in parallel; on any failure the caller stops what did start."""
        for proc in procs:
            self.processes[proc.name] = proc

        def start(proc: ManagedProcess) -> None:
            proc.start(timeout_s=90)

        with ThreadPoolExecutor(max_workers=len(procs) or 1) as pool:
            errors = [f.exception() for f in [pool.submit(start, p) for p in procs]]
        failed = [e for e in errors if e is not None]
        if failed:
            raise StackError("; ".join(str(e) for e in failed))

    def _ensure_tables(self) -> None:
        # Tables exist from the start, so export answers (with zeros) before
        # the first refresh. Refresh creates them too, as in the cloud; the
        # reach dataset and its authorized function are Terraform's in the
        # cloud, and created here.
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery
        from rbm_analytics.core.tables import ensure_tables

        client = bigquery.Client(
            project=self.config.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.config.url("bigquery")},
        )
        try:
            ensure_tables(client, self.config.project, self.config.dataset, "US", reach=True)
        finally:
            client.close()  # type: ignore[no-untyped-call]

    def stop(self, *, save: bool = True) -> None:
        """Stop everything started, newest first; save Firestore's data first."""
        self.stopping.set()
        # Gone with the stack: a stale file would point the CLI at nothing.
        self.config.env_file.unlink(missing_ok=True)
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        _stop_all([p for n, p in self.processes.items() if n in FUNCTIONS])
        firestore = self.processes.get("firestore emulator")
        if save and firestore is not None and firestore.proc is not None:
            self.save()
        _stop_all([p for n, p in self.processes.items() if n not in FUNCTIONS])
        self.processes.clear()

    def save(self) -> Path | None:
        """Export Firestore's documents to the data directory (BigQuery's are on disk already)."""
        firestore = self.processes.get("firestore emulator")
        if firestore is None:
            return None
        try:
            return emulators.export_firestore(
                firestore.host, self.config.project, self.config.data_dir / "firestore"
            )
        except (OSError, RuntimeError) as exc:
            self.say(f"warning: could not save the Firestore data: {exc}")
            return None

    # -- state ----------------------------------------------------------------
    def firestore_is_empty(self) -> bool:
        cfg = self.config
        url = (
            f"http://127.0.0.1:{cfg.ports['firestore']}/v1/projects/{cfg.project}"
            "/databases/(default)/documents/agent_messages?pageSize=1"
        )
        try:
            # The first read after an import loads the data: it can take a while.
            status, body = http_get(url, timeout_s=120)
        except OSError as exc:
            raise StackError(f"Firestore emulator did not answer a listing: {exc}") from None
        if status != 200:
            raise StackError(f"Firestore emulator answered HTTP {status} to a listing")
        return not json.loads(body or b"{}").get("documents")

    def _report_run(self, result: RunResult) -> None:
        what = f"[scheduler] {'morning' if result.trigger == 'schedule' else 'manual'} refresh job"
        job = result.job
        if job is None:  # no task started: the body was refused, or starting failed
            self.say(f"{what} not started (HTTP {result.status}): {result.body[:300]}")
        elif job["failed_tasks"] == 0:
            self.say(
                f"{what}: {job['tasks']} tasks ok in {result.seconds:.1f}s, "
                f"{job['documents_read']:,} documents read"
            )
        else:
            self.say(
                f"{what} failed: {job['failed_tasks']} of {job['tasks']} tasks failed in "
                f"{result.seconds:.1f}s; see {self.job_log}"
            )

    # -- demo -----------------------------------------------------------------
    def seed_demo(self, *, progress: bool = True) -> None:
        """Simulated traffic for the last two weeks, then a refresh of those days."""
        from rbm_analytics_dev.local.sender import Progress, Sender
        from rbm_analytics_dev.local.simulate import PlanConfig, plan_backfill

        users, days = self.config.demo_users, self.config.demo_days
        # From midnight UTC `days` days ago until now, so every refreshed day is whole.
        end_us = now_us()
        first_day = datetime.combine(today_utc() - timedelta(days=days), dt_time(), UTC)
        span = (end_us - datetime_to_us(first_day)) / 86_400_000_000
        plan = plan_backfill(
            PlanConfig(agents=DEMO_AGENTS, users=users, days=span, end_us=end_us, seed=DEMO_SEED)
        )
        self.say(
            f"Seeding demo traffic: {DEMO_AGENTS} agents, {users} users, {days} days "
            f"({len(plan.events):,} events, {len(plan.requests):,} requests)..."
        )
        target = local_target(self.config.url("ingest"))
        sender = Sender(
            target, concurrency=16, progress=Progress(len(plan.requests)) if progress else None
        )
        report = sender.run(plan.requests)
        self.say(report.render())
        if report.interrupted:
            raise KeyboardInterrupt
        if report.failures:
            raise StackError(f"demo traffic: {report.failures} requests failed")
        self.save()
        if self.scheduler is None:
            self.say("No refresh function yet: the demo traffic is in Firestore only.")
            return
        # The traffic began `days` ago: its first UTC date is today - days.
        start, end = today_utc() - timedelta(days=days), today_utc() - timedelta(days=1)
        self.say(f"Refreshing {start} .. {end}...")
        self.scheduler.trigger({"start": start.isoformat(), "end": end.isoformat()})

    # -- what is where --------------------------------------------------------
    def banner(self) -> str:
        cfg = self.config
        ingest = cfg.url("ingest")
        lines = [
            "",
            f"rbm-analytics local stack is up (project {cfg.project}, dataset {cfg.dataset})",
            "",
            f"  RBM webhook      POST {ingest}/        signed with the agent's client token",
            f"  Pub/Sub push     POST {ingest}/pubsub?token={LOCAL_PUSH_TOKEN}",
            f"  sent log         POST {ingest}/agent-messages   "
            "Authorization: Bearer <the agent's API key>",
            "  credentials      bound to agents (RBM_CLIENT_TOKENS, AGENT_API_KEYS):",
        ]
        target = local_target(ingest)
        for tenant, agents in LOCAL_TENANTS.items():
            lines.append(
                f"    {tenant:<8} token {target.token_for(agents[0])}   "
                f"key {target.key_for(agents[0])}   agents {', '.join(agents)}"
            )
        if "refresh" in self.functions:
            lines.append(
                f"  refresh          POST {cfg.url('refresh')}/  "
                "the refresh function, for backfills (one process)"
            )
        if "export" in self.functions:
            lines += [
                f"  export (CSV)     GET  {cfg.url('export')}/?start=YYYY-MM-DD&end=YYYY-MM-DD",
                f"  Analytics page   {cfg.url('export')}/ui",
            ]
        if self.scheduler is not None:
            status = self.scheduler.status()
            lines.append(
                f"  scheduler        {self.scheduler.url}/  ({cfg.schedule} UTC, next "
                f"{status['next_run']}) starts the refresh job: {cfg.refresh_tasks} task "
                f"processes, as Cloud Run runs it; POST {self.scheduler.url}/run fires it now "
                f"(output in {self.job_log})"
            )
        if cfg.bot:
            lines.append(
                f"  demo bot         {cfg.url('bot')}/  the agent's own webhook: ingest relays "
                f"every event to it ({cfg.bot_record.name} in {cfg.bot_record.parent})"
            )
        lines += [
            f"  Firestore        127.0.0.1:{cfg.ports['firestore']}   "
            f"BigQuery  http://127.0.0.1:{cfg.ports['bigquery']}",
            f"  data             {cfg.data_dir}   logs {self.logs}",
            "",
            f"The CLI on this stack: set -a; . {cfg.env_file}; set +a   then e.g.",
            "  rbm-analytics export --scale week --metrics sent,delivered,read,read_rate",
            "  rbm-analytics refresh --start 2026-01-01 --end 2026-01-31",
            "  rbm-analytics schedule status",
            "",
            "Try:",
            f"  rbm-analytics simulate --url {ingest} --agents 2 --users 50 --days 3",
            f"  rbm-analytics simulate --url {ingest} --live --rate 20",
        ]
        if self.scheduler is not None:
            lines.append(
                f"  curl -X POST {self.scheduler.url}/run   # the morning refresh job, now"
            )
            lines.append(
                f"  CLOUD_SCHEDULER_EMULATOR_HOST=127.0.0.1:{cfg.ports['scheduler']} "
                f"rbm-analytics schedule status --project {cfg.project}"
            )
            lines.append(
                f"  curl -X POST {cfg.url('refresh')}/ -H 'Content-Type: application/json' "
                """-d '{"start": "2026-01-01", "end": "2026-01-31"}'   # a backfill"""
            )
        if "export" in self.functions:
            lines.append(
                f"  curl '{cfg.url('export')}/?scale=week&metrics=sent,delivered,read,read_rate'"
            )
        lines += ["", "Ctrl-C stops everything; the data stays in " + str(cfg.data_dir) + "."]
        return "\n".join(lines)


def _stop_all(procs: list[ManagedProcess]) -> None:
    if procs:
        with ThreadPoolExecutor(max_workers=len(procs)) as pool:
            list(pool.map(lambda p: p.stop(), procs))


def run_stack(
    config: StackConfig,
    *,
    out: TextIO | None = None,
    wait: Callable[[], None] | None = None,
    stopping: threading.Event | None = None,
) -> Stack:
    """Start, seed on first use, print the banner, wait, stop. ``wait`` returns
    when the stack should stop (the CLI waits for a signal); ``stopping`` is
    set once the clean-up begins, so a second signal does not interrupt it."""
    stack = Stack(config, out=out, stopping=stopping)
    stack.say(f"Starting the local stack (data in {config.data_dir})...")
    stack.start()
    try:
        stack.say(f"Started in {stack.startup_seconds:.1f}s.")
        if config.demo and stack.firestore_is_empty():
            stack.seed_demo(progress=True)
        stack.say(stack.banner())
        if wait is not None:
            wait()
    finally:
        stack.say("Stopping...")
        stack.stop()
        stack.say("Stopped; nothing left running.")
    return stack
