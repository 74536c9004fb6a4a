"""``rbm-analytics init``: from an empty project to events flowing, in one guided command.

It asks for (or takes as flags, for CI) the project, region, dataset, agents
and how the agent is connected, then:

1. finds out whether the project already has a Firestore database
   (``gcloud firestore databases list``) and either imports the existing
   ``(default)`` into Terraform or puts the data in a named database;
2. writes ``infra/terraform.tfvars``;
3. ``terraform init``, the import if any, and an apply of the secrets alone;
4. adds the secret versions: the client tokens pasted from the RBM console, a
   generated agent API key (shown once, with how to read it back), a
   generated phone-hash key and a generated Pub/Sub push token. A secret that
   already has a version is left alone: a new phone-hash key would turn every
   user into a new one;
5. ``terraform apply`` of everything;
6. prints the console steps in the order the console asks for them, and a
   ``curl`` that sends a signed test event.

With ``--dry-run`` nothing runs: every command is printed instead.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rbm_analytics.core.ids import is_valid_id

from rbm_analytics_dev.local.emulators import REPO_ROOT

MODES = ("relay", "tap", "pubsub")
FIRESTORE_CHOICES = ("import", "named", "create")
DEFAULT_NAMED_DATABASE = "rbm-analytics"
SECRET_NAMES = ("RBM_CLIENT_TOKENS", "AGENT_API_KEYS", "PHONE_HASH_KEY", "PUBSUB_PUSH_TOKENS")
CONSOLE = "https://business-communications.cloud.google.com/console/"
# The event the printed curl sends: a typing indicator from a reserved test
# number, which no metric counts (it lands in user_events only).
TEST_EVENT_ID = "rbm-analytics-init-test"
TEST_PHONE = "+15550100000"

EPILOG = """\
modes (how RBM's events reach ingest; README "Connect your agent"):
  relay   the agent's webhook points at ingest, which stores each event and
          forwards it, signed as RBM signed it, to your bot (--bot-url)
  tap     the webhook stays on your bot, which forwards each request to ingest
  pubsub  the agent's Pub/Sub push subscription points at ingest's /pubsub

examples:
  rbm-analytics init                                    # asks for everything
  rbm-analytics init --project acme-rbm --agents acme-agent --mode relay \\
      --bot-url https://bot.example.com/rbm --client-token acme-agent=TOKEN --yes
  rbm-analytics init --project acme-rbm --agents acme-agent --mode tap \\
      --client-token acme-agent=TOKEN --firestore named --dry-run

exit codes: 0 done (or printed), 1 a command failed, 2 bad or missing answers.
"""


class InitError(Exception):
    """A missing or wrong answer; the message says which flag to use."""


class StepFailed(Exception):
    """A command failed or the project is not as expected; the message says which."""


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str = ""


class Runner:
    """Runs commands for real (inheriting the terminal, so terraform can ask)."""

    dry = False

    def run(
        self, argv: Sequence[str], *, stdin: str | None = None, capture: bool = False
    ) -> Result:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            list(argv),
            input=stdin,
            text=True,
            stdout=subprocess.PIPE if capture else None,
            check=False,
        )
        return Result(proc.returncode, proc.stdout or "")


class DryRunner(Runner):
    """Prints each command instead of running it."""

    dry = True

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def run(
        self, argv: Sequence[str], *, stdin: str | None = None, capture: bool = False
    ) -> Result:
        suffix = "   # the value on stdin" if stdin is not None else ""
        self.out.write(f"$ {shlex.join(argv)}{suffix}\n")
        return Result(0, "")


@dataclass
class Answers:
    project: str
    region: str
    dataset: str
    agents: tuple[str, ...]
    mode: str
    client_tokens: dict[str, str] = field(default_factory=dict)
    bot_urls: dict[str, str] = field(default_factory=dict)
    firestore: str = "create"
    database: str = "(default)"
    alert_emails: tuple[str, ...] = ()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "init",
        help="guided first deploy: tfvars, secrets, terraform, console steps",
        description="From an empty Google Cloud project to RBM events flowing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--project", help="Google Cloud project id")
    p.add_argument("--region", help="region of the functions (default us-central1)")
    p.add_argument("--dataset", help="BigQuery dataset (default rbm_analytics)")
    p.add_argument("--agents", help="RBM agent ids, comma-separated")
    p.add_argument("--mode", choices=MODES, help="relay, tap or pubsub (see below)")
    p.add_argument(
        "--client-token", action="append", default=[], metavar="AGENT=TOKEN",
        help="an agent's clientToken from the console (repeat per agent)",
    )  # fmt: skip
    p.add_argument(
        "--bot-url", action="append", default=[], metavar="[AGENT=]URL",
        help="relay: where your bot's webhook is today (AGENT=URL per agent)",
    )  # fmt: skip
    p.add_argument(
        "--firestore", choices=FIRESTORE_CHOICES,
        help="an existing (default) database: import it, or use a named one",
    )  # fmt: skip
    p.add_argument("--database", help=f"the named database (default {DEFAULT_NAMED_DATABASE})")
    p.add_argument("--alert-email", action="append", default=[], help="who gets the alerts")
    p.add_argument("--infra-dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--yes", action="store_true", help="ask nothing: missing answers are errors")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    p.set_defaults(func=run)


def run(
    args: argparse.Namespace,
    *,
    runner: Runner | None = None,
    ask: Callable[[str], str] | None = None,
    out: TextIO | None = None,
    token: Callable[[int], str] = secrets.token_urlsafe,
) -> int:
    """The command; ``runner``, ``ask`` and ``token`` are swapped in tests."""
    out = out or sys.stdout
    runner = runner or (DryRunner(out) if args.dry_run else Runner())
    prompt = None if args.yes else (ask or _terminal_ask)
    try:
        answers = gather(args, prompt, out)
        infra = args.infra_dir or _default_infra()
        return Init(answers, runner, out, infra, token, ask=prompt).run()
    except InitError as exc:
        print(f"rbm-analytics init: {exc}", file=sys.stderr)
        return 2


def _default_infra() -> Path:
    """``infra`` as the user would type it from the checkout's root, else the absolute path."""
    here = Path("infra")
    if (here / "variables.tf").is_file() and here.resolve() == (REPO_ROOT / "infra").resolve():
        return here
    return REPO_ROOT / "infra"


def _terminal_ask(question: str) -> str:
    return input(question)


def _pairs(values: Sequence[str], agents: tuple[str, ...], what: str) -> dict[str, str]:
    """``AGENT=VALUE`` entries; a bare ``VALUE`` is for the only agent (or all, for URLs).

    Only a known agent's name makes ``AGENT=VALUE``: a bare secret may hold
    ``=`` itself (base64 padding), and a URL may too (in its query).
    """
    out: dict[str, str] = {}
    for raw in values:
        agent, sep, value = raw.partition("=")
        if sep and agent in agents:
            out[agent] = value
            continue
        if len(agents) != 1 and what == "--client-token":
            raise InitError(f"{what}: with several agents, write AGENT=VALUE (AGENT in --agents)")
        for a in agents:
            out.setdefault(a, raw)
    return out


def gather(args: argparse.Namespace, ask: Callable[[str], str] | None, out: TextIO) -> Answers:
    """Every answer, from the flags or asked; without ``ask``, a missing one is an error."""

    def need(value: str | None, flag: str, question: str, default: str | None = None) -> str:
        if value:
            return value
        if ask is None:
            if default is not None:
                return default
            raise InitError(f"{flag} is required with --yes")
        suffix = f" [{default}]" if default else ""
        answer = ask(f"{question}{suffix}: ").strip() or (default or "")
        if not answer:
            raise InitError(f"{flag} is required")
        return answer

    project = need(args.project, "--project", "Google Cloud project id")
    region = need(args.region, "--region", "Region", "us-central1")
    dataset = need(args.dataset, "--dataset", "BigQuery dataset", "rbm_analytics")
    raw_agents = need(args.agents, "--agents", "RBM agent ids, comma-separated")
    agents = tuple(a.strip() for a in raw_agents.split(",") if a.strip())
    bad = [a for a in agents if not is_valid_id(a)]
    if not agents or bad:
        raise InitError("--agents must be RBM agent ids, comma-separated")
    mode = need(args.mode, "--mode", "Integration: relay, tap or pubsub", "relay")
    if mode not in MODES:
        raise InitError(f"--mode must be one of {', '.join(MODES)}")
    answers = Answers(project, region, dataset, agents, mode)
    answers.alert_emails = tuple(args.alert_email)

    answers.client_tokens = _pairs(args.client_token, agents, "--client-token")
    if mode != "pubsub":
        for agent in agents:
            if agent in answers.client_tokens:
                continue
            if ask is None:
                raise InitError(f"--client-token {agent}=TOKEN is required with --yes")
            out.write(
                f"\nAgent {agent}: in the Business Communications Developer Console "
                f"({CONSOLE}) open the agent → Integrations → Webhook → Configure. "
                "The dialog shows the agent's clientToken (your bot already verifies "
                "with it). Copy it, then Cancel: you come back to this dialog with "
                "ingest's URL once it is deployed.\n"
            )
            answers.client_tokens[agent] = need(None, "--client-token", "clientToken")
    for agent, value in answers.client_tokens.items():
        if not value or any(c in value for c in ",:|"):
            raise InitError(f"--client-token for {agent}: a token has no , : or |")

    if mode == "relay":
        answers.bot_urls = _pairs(args.bot_url, agents, "--bot-url")
        for agent in agents:
            if agent not in answers.bot_urls:
                answers.bot_urls[agent] = need(
                    None, "--bot-url", f"Where does {agent}'s webhook point today (your bot)"
                )
        for url in answers.bot_urls.values():
            if not url.startswith(("https://", "http://")):
                raise InitError("--bot-url must be an http(s) URL")
    answers.firestore = args.firestore or ""
    answers.database = args.database or ""
    return answers


class Init:
    """The steps, in order, through ``runner``."""

    def __init__(
        self,
        answers: Answers,
        runner: Runner,
        out: TextIO,
        infra: Path,
        token: Callable[[int], str],
        *,
        ask: Callable[[str], str] | None,
    ) -> None:
        self.a = answers
        self.runner = runner
        self.out = out
        self.infra = infra
        self.token = token
        self.ask = ask
        self.auto = ask is None
        self.tf = ["terraform", f"-chdir={infra}"]

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def must(self, argv: Sequence[str], *, stdin: str | None = None) -> None:
        if self.runner.run(argv, stdin=stdin).code != 0:
            raise StepFailed(f"failed: {shlex.join(argv)}")

    def run(self) -> int:
        try:
            self.choose_database()
            self.write_tfvars()
            self.say("\n== Terraform: init, the existing database, the secrets")
            self.must([*self.tf, "init", "-input=false"])
            if self.a.firestore == "import":
                self.must(
                    [*self.tf, "import", "google_firestore_database.db[0]",
                     f"projects/{self.a.project}/databases/(default)"]
                )  # fmt: skip
            self.must(
                [*self.tf, "apply", *self._approve(), "-target=google_secret_manager_secret.secret"]
            )
            shown = self.add_secrets()
            self.say("\n== Terraform: everything else")
            self.must([*self.tf, "apply", *self._approve()])
            url = self.ingest_url()
            self.next_steps(url, shown)
        except StepFailed as exc:
            print(f"rbm-analytics init: {exc}", file=sys.stderr)
            return 1
        return 0

    def _approve(self) -> list[str]:
        return ["-input=false", "-auto-approve"] if self.auto else []

    # -- Firestore -------------------------------------------------------------
    def choose_database(self) -> None:
        a = self.a
        if a.firestore == "named" or (a.database and a.database != "(default)"):
            a.firestore, a.database = "named", a.database or DEFAULT_NAMED_DATABASE
            return
        listing = self.runner.run(
            ["gcloud", "firestore", "databases", "list", f"--project={a.project}", "--format=json"],
            capture=True,
        )
        if listing.code != 0 and not self.runner.dry:
            raise StepFailed("could not list Firestore databases (gcloud)")
        names = {
            str(d.get("name", "")).rsplit("/", 1)[-1] for d in json.loads(listing.stdout or "[]")
        }
        if "(default)" not in names:
            a.firestore = a.firestore or "create"
            if a.firestore == "import":
                raise StepFailed("there is no (default) database to import")
            a.database = "(default)"
            return
        if not a.firestore or a.firestore == "create":
            self.say(
                "This project already has a Firestore (default) database (an agent's "
                "backend often does). rbm-analytics can share it (its collections are "
                "agent_messages, user_messages and user_events) by importing it into "
                f"Terraform, or keep its data apart in a named database "
                f"({DEFAULT_NAMED_DATABASE})."
            )
            if self.ask is None:
                raise StepFailed("choose --firestore import or named")
            choice = self.ask("import or named? [named]: ").strip() or "named"
            a.firestore = choice if choice in ("import", "named") else "named"
        a.database = "(default)" if a.firestore == "import" else DEFAULT_NAMED_DATABASE

    # -- files -----------------------------------------------------------------
    def tfvars(self) -> str:
        a = self.a
        lines = [
            "# Written by rbm-analytics init; edit freely (see terraform.tfvars.example).",
            f"project_id = {json.dumps(a.project)}",
            f"region     = {json.dumps(a.region)}",
            f"dataset_id = {json.dumps(a.dataset)}",
            f"firestore_database = {json.dumps(a.database)}",
        ]
        if a.mode == "relay":
            urls = set(a.bot_urls.values())
            if len(urls) == 1:
                lines.append(f"forward_url = {json.dumps(urls.pop())}")
            else:
                body = ", ".join(
                    f"{json.dumps(k)} = {json.dumps(v)}" for k, v in a.bot_urls.items()
                )
                lines.append(f"forward_urls = {{ {body} }}")
        if a.alert_emails:
            lines.append(f"alert_emails = {json.dumps(list(a.alert_emails))}")
        return "\n".join(lines) + "\n"

    def write_tfvars(self) -> None:
        path = self.infra / "terraform.tfvars"
        text = self.tfvars()
        if self.runner.dry:
            self.say(f"\n== would write {path}:\n{text}")
            return
        if path.exists() and path.read_text(encoding="utf-8") != text:
            backup = path.with_name("terraform.tfvars.bak")
            path.replace(backup)
            self.say(f"(the previous {path.name} is now {backup.name})")
        path.write_text(text, encoding="utf-8")
        self.say(f"\nWrote {path}:\n{text}")

    # -- secrets ----------------------------------------------------------------
    def has_version(self, name: str) -> bool:
        res = self.runner.run(
            ["gcloud", "secrets", "versions", "list", name, f"--project={self.a.project}",
             "--filter=state=ENABLED", "--format=value(name)", "--limit=1"],
            capture=True,
        )  # fmt: skip
        return res.code == 0 and bool(res.stdout.strip())

    def add_secrets(self) -> dict[str, str]:
        """Adds each secret's first version; returns what must be shown once."""
        a = self.a
        agents = "|".join(a.agents)
        if a.client_tokens:
            client = ",".join(f"{t}:{agent}" for agent, t in a.client_tokens.items())
        else:
            # Pub/Sub only: no webhook. A token nobody knows keeps POST / closed.
            client = self.token(32)
        values = {
            "RBM_CLIENT_TOKENS": client,
            "AGENT_API_KEYS": f"{self.token(32)}:{agents}",
            "PHONE_HASH_KEY": self.token(48),
            "PUBSUB_PUSH_TOKENS": f"{self.token(32)}:{agents}",
        }
        shown: dict[str, str] = {}
        self.say("\n== Secret Manager: one version per secret (values on stdin, never in argv)")
        for name in SECRET_NAMES:
            if not self.runner.dry and self.has_version(name):
                self.say(f"{name} already has a version: left as it is")
                continue
            self.must(
                ["gcloud", "secrets", "versions", "add", name,
                 f"--project={a.project}", "--data-file=-"],
                stdin=values[name],
            )  # fmt: skip
            if name in ("AGENT_API_KEYS", "PUBSUB_PUSH_TOKENS"):
                generated = values[name].split(":", 1)[0]
                shown[name] = f"<generated {name}>" if self.runner.dry else generated
        return shown

    def ingest_url(self) -> str:
        res = self.runner.run([*self.tf, "output", "-raw", "webhook_url"], capture=True)
        return res.stdout.strip() or "$INGEST_URL"

    # -- what to do next ---------------------------------------------------------
    def next_steps(self, url: str, shown: dict[str, str]) -> None:
        a = self.a
        read_back = (
            f"gcloud secrets versions access latest --secret=AGENT_API_KEYS "
            f"--project={a.project} | cut -d: -f1"
        )
        self.say("\n== Done. ingest is at " + url)
        if url.startswith("$"):
            self.say(f"  {url[1:]}=$({shlex.join([*self.tf, 'output', '-raw', 'webhook_url'])})")
        if "AGENT_API_KEYS" in shown:
            self.say(
                "\nYour agent backend's API key for POST /agent-messages (shown once; "
                f"read it back later with: {read_back}):\n  {shown['AGENT_API_KEYS']}"
            )
        self.say(
            "\nThe agent backend posts what agentMessages.create returned to "
            f"{url}/agent-messages with 'Authorization: Bearer <key>' (docs/tap/)."
        )
        self.say("\nIn the RBM console, in this order:")
        if a.mode == "relay":
            for n, agent in enumerate(a.agents, 1):
                self.say(
                    f"  {n}. {agent}: Integrations → Webhook → Configure (the dialog you "
                    "copied the clientToken from) → paste the Webhook endpoint URL "
                    f"{url}/ → Verify (ingest answers the check) → Save. Events now "
                    f"reach ingest first and your bot at {a.bot_urls[agent]} right after."
                )
        elif a.mode == "tap":
            self.say(
                "  nothing changes: the webhook stays on your bot. Add the forward from "
                f"docs/tap/ to it: each request's raw body and X-Goog-Signature to {url}/."
            )
        else:
            push = shown.get("PUBSUB_PUSH_TOKENS", "<the token in PUBSUB_PUSH_TOKENS>")
            for n, agent in enumerate(a.agents, 1):
                self.say(
                    f"  {n}. {agent}: Integrations → Edit subscription → Push → endpoint "
                    f"{url}/pubsub?token={push} → Save. (The token is shown once; read it "
                    f"back with gcloud secrets versions access latest "
                    f"--secret=PUBSUB_PUSH_TOKENS --project={a.project} | cut -d: -f1.)"
                )
        self.say('\nThen send a signed test event and see it arrive ({"stored": 1, ...}):')
        self.say(self.test_curl(url))

    def test_curl(self, url: str) -> str:
        agent = self.a.agents[0]
        data = json.dumps(
            {"senderPhoneNumber": TEST_PHONE, "eventType": "IS_TYPING",
             "eventId": TEST_EVENT_ID, "agentId": agent},
            separators=(",", ":"),
        )  # fmt: skip
        if self.a.mode == "pubsub":
            body = json.dumps({"message": {"data": base64.b64encode(data.encode()).decode()}})
            return (
                f"  PUSH_TOKEN=$(gcloud secrets versions access latest "
                f"--secret=PUBSUB_PUSH_TOKENS --project={self.a.project} "
                "| cut -d, -f1 | cut -d: -f1)\n"
                f'  curl -sS -X POST "{url}/pubsub?token=$PUSH_TOKEN" \\\n'
                f"    -H 'Content-Type: application/json' --data-binary '{body}'"
            )
        token = self.a.client_tokens.get(agent, "")
        signature = base64.b64encode(
            hmac.new(token.encode(), data.encode(), hashlib.sha512).digest()
        ).decode()
        body = json.dumps({"message": {"data": base64.b64encode(data.encode()).decode()}})
        return (
            f"  curl -sS -X POST \"{url}/\" -H 'Content-Type: application/json' \\\n"
            f"    -H 'X-Goog-Signature: {signature}' \\\n"
            f"    --data-binary '{body}'"
        )
