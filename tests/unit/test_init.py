"""``rbm-analytics init`` with the command runner faked: the exact commands, files and output.

The fake answers ``gcloud firestore databases list`` and ``gcloud secrets
versions list`` the way gcloud does, records every command with its stdin,
and runs nothing.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
from collections.abc import Sequence
from pathlib import Path

import pytest
from rbm_analytics.ingest.auth import sign
from rbm_analytics_dev import cli
from rbm_analytics_dev.commands import init
from rbm_analytics_dev.commands.init import Result, Runner

TOKEN = "EXAMPLE_CLIENT_TOKEN"
URL = "https://rbm-ingest-abc123-uc.a.run.app"


class FakeRunner(Runner):
    def __init__(self, databases: Sequence[str] = (), versions: Sequence[str] = ()) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.databases = databases
        self.versions = versions

    def run(
        self, argv: Sequence[str], *, stdin: str | None = None, capture: bool = False
    ) -> Result:
        argv = list(argv)
        self.calls.append((argv, stdin))
        if argv[:4] == ["gcloud", "firestore", "databases", "list"]:
            project = argv[4].split("=", 1)[1]
            return Result(0, json.dumps([
                {"name": f"projects/{project}/databases/{d}", "type": "FIRESTORE_NATIVE"}
                for d in self.databases
            ]))  # fmt: skip
        if argv[:4] == ["gcloud", "secrets", "versions", "list"]:
            name = argv[4]
            return Result(
                0, f"projects/1/secrets/{name}/versions/1\n" if name in self.versions else ""
            )
        if argv[-3:] == ["output", "-raw", "webhook_url"]:
            return Result(0, URL)
        return Result(0, "")

    def commands(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls]

    def stdin_of(self, secret: str) -> str | None:
        for argv, stdin in self.calls:
            if argv[:5] == ["gcloud", "secrets", "versions", "add", secret]:
                return stdin
        return None


def counter() -> object:
    n = iter(range(1, 100))
    return lambda size: f"generated{next(n)}-" + "x" * size


def run(argv: list[str], runner: Runner, tmp_path: Path, ask: object = None) -> tuple[int, str]:
    args = cli.build_parser().parse_args(["init", "--infra-dir", str(tmp_path), *argv])
    out = io.StringIO()
    code = init.run(args, runner=runner, ask=ask, out=out, token=counter())  # type: ignore[arg-type]
    return code, out.getvalue()


RELAY = [
    "--project", "acme-rbm", "--agents", "acme-agent", "--mode", "relay",
    "--bot-url", "https://bot.example.com/rbm", "--client-token", f"acme-agent={TOKEN}", "--yes",
]  # fmt: skip


def test_relay_on_an_empty_project_runs_exactly_these_commands(tmp_path: Path) -> None:
    runner = FakeRunner()
    code, out = run(RELAY, runner, tmp_path)
    assert code == 0, out
    tf = ["terraform", f"-chdir={tmp_path}"]
    secret_steps = []
    for name in ("RBM_CLIENT_TOKENS", "AGENT_API_KEYS", "PHONE_HASH_KEY", "PUBSUB_PUSH_TOKENS"):
        secret_steps += [
            ["gcloud", "secrets", "versions", "list", name, "--project=acme-rbm",
             "--filter=state=ENABLED", "--format=value(name)", "--limit=1"],
            ["gcloud", "secrets", "versions", "add", name, "--project=acme-rbm", "--data-file=-"],
        ]  # fmt: skip
    assert runner.commands() == [
        ["gcloud", "firestore", "databases", "list", "--project=acme-rbm", "--format=json"],
        [*tf, "init", "-input=false"],
        [*tf, "apply", "-input=false", "-auto-approve",
         "-target=google_secret_manager_secret.secret"],
        *secret_steps,
        [*tf, "apply", "-input=false", "-auto-approve"],
        [*tf, "output", "-raw", "webhook_url"],
    ]  # fmt: skip
    assert (tmp_path / "terraform.tfvars").read_text() == (
        "# Written by rbm-analytics init; edit freely (see terraform.tfvars.example).\n"
        'project_id = "acme-rbm"\n'
        'region     = "us-central1"\n'
        'dataset_id = "rbm_analytics"\n'
        'firestore_database = "(default)"\n'
        'forward_url = "https://bot.example.com/rbm"\n'
    )
    # Secrets go on stdin, bound to the agent; never in a command line.
    assert runner.stdin_of("RBM_CLIENT_TOKENS") == f"{TOKEN}:acme-agent"
    key = runner.stdin_of("AGENT_API_KEYS")
    assert key == "generated1-" + "x" * 32 + ":acme-agent"
    assert runner.stdin_of("PHONE_HASH_KEY") == "generated2-" + "x" * 48
    assert all(TOKEN not in " ".join(argv) for argv in runner.commands())
    # The agent key is shown once, with how to read it back.
    assert out.count("generated1-" + "x" * 32) == 1
    assert "gcloud secrets versions access latest --secret=AGENT_API_KEYS" in out
    # Console steps in the console's order, with the deployed URL.
    steps = out[out.index("In the RBM console") :]
    order = [steps.index(s) for s in ("Configure", f"{URL}/", "Verify", "Save")]
    assert order == sorted(order)


def test_the_printed_curl_carries_a_signature_the_client_token_verifies(tmp_path: Path) -> None:
    code, out = run(RELAY, FakeRunner(), tmp_path)
    assert code == 0
    curl = out[out.index("curl") :]
    signature = curl.split("X-Goog-Signature: ", 1)[1].split("'", 1)[0]
    body = json.loads(curl.split("--data-binary '", 1)[1].rsplit("'", 1)[0])
    data = base64.b64decode(body["message"]["data"])
    assert sign(data, TOKEN) == signature
    assert json.loads(data)["agentId"] == "acme-agent"
    assert f'"{URL}/"' in curl


def test_generated_secrets_are_long_enough() -> None:
    assert len(secrets.token_urlsafe(32)) >= 32  # the agent API key and push token
    assert len(secrets.token_urlsafe(48).encode()) >= 32  # the phone-hash key, in bytes


def test_an_existing_default_database_is_imported(tmp_path: Path) -> None:
    runner = FakeRunner(databases=["(default)"])
    code, _ = run([*RELAY, "--firestore", "import"], runner, tmp_path)
    assert code == 0
    cmds = runner.commands()
    tf = ["terraform", f"-chdir={tmp_path}"]
    imported = [*tf, "import", "google_firestore_database.db[0]",
                "projects/acme-rbm/databases/(default)"]  # fmt: skip
    assert cmds.index(imported) == cmds.index([*tf, "init", "-input=false"]) + 1
    assert 'firestore_database = "(default)"' in (tmp_path / "terraform.tfvars").read_text()


def test_an_existing_default_database_or_a_named_one_is_asked_for(tmp_path: Path) -> None:
    runner = FakeRunner(databases=["(default)"])
    # With --yes there is no one to ask: stop before changing anything.
    code, _ = run(RELAY, runner, tmp_path)
    assert code == 1
    assert not (tmp_path / "terraform.tfvars").exists()
    assert not any(c[0] == "terraform" for c in runner.commands())
    # Interactive: the answer "named" keeps the data in its own database.
    answers = iter(["", "", "named"])  # region and dataset: the defaults
    runner = FakeRunner(databases=["(default)"])
    code, _ = run([a for a in RELAY if a != "--yes"], runner, tmp_path, ask=lambda q: next(answers))
    assert code == 0
    assert 'firestore_database = "rbm-analytics"' in (tmp_path / "terraform.tfvars").read_text()
    assert not any("import" in c for c in runner.commands())


def test_a_secret_that_has_a_version_is_left_alone(tmp_path: Path) -> None:
    runner = FakeRunner(versions=["PHONE_HASH_KEY", "AGENT_API_KEYS"])
    code, out = run(RELAY, runner, tmp_path)
    assert code == 0
    assert runner.stdin_of("PHONE_HASH_KEY") is None  # a new key would make new users
    assert runner.stdin_of("AGENT_API_KEYS") is None
    assert "PHONE_HASH_KEY already has a version" in out
    assert "generated" not in out.split("In the RBM console")[0].split("Done.")[1]


def test_pubsub_mode_needs_no_client_token_and_prints_the_push_endpoint(tmp_path: Path) -> None:
    runner = FakeRunner()
    argv = ["--project", "p1", "--agents", "a1,a2", "--mode", "pubsub", "--yes"]
    code, out = run(argv, runner, tmp_path)
    assert code == 0, out
    push = runner.stdin_of("PUBSUB_PUSH_TOKENS")
    assert push is not None and push.endswith(":a1|a2")
    secret = push.split(":", 1)[0]
    assert f"{URL}/pubsub?token={secret}" in out
    assert "Edit subscription" in out
    # No webhook: a token nobody knows keeps POST / closed.
    client = runner.stdin_of("RBM_CLIENT_TOKENS")
    assert client is not None and ":" not in client and len(client) >= 32
    assert "forward_url" not in (tmp_path / "terraform.tfvars").read_text()


def test_several_agents_with_their_own_bots_get_forward_urls(tmp_path: Path) -> None:
    argv = [
        "--project", "p1", "--agents", "a1,a2", "--mode", "relay", "--yes",
        "--client-token", "a1=T1", "--client-token", "a2=T2",
        "--bot-url", "a1=https://one.example.com/", "--bot-url", "a2=https://two.example.com/",
    ]  # fmt: skip
    runner = FakeRunner()
    assert run(argv, runner, tmp_path)[0] == 0
    tfvars = (tmp_path / "terraform.tfvars").read_text()
    assert (
        'forward_urls = { "a1" = "https://one.example.com/", "a2" = "https://two.example.com/" }'
        in tfvars
    )
    assert runner.stdin_of("RBM_CLIENT_TOKENS") == "T1:a1,T2:a2"
    assert runner.stdin_of("AGENT_API_KEYS") == "generated1-" + "x" * 32 + ":a1|a2"


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--agents", "a1", "--mode", "tap", "--client-token", "T"], "--project"),
        (["--project", "p", "--mode", "tap", "--client-token", "T"], "--agents"),
        (["--project", "p", "--agents", "a1", "--mode", "tap"], "--client-token"),
        (["--project", "p", "--agents", "a1", "--mode", "relay", "--client-token", "T"],
         "--bot-url"),
        (["--project", "p", "--agents", "bad/agent", "--mode", "tap"], "--agents"),
        (["--project", "p", "--agents", "a1", "--mode", "tap", "--client-token", "a:b"],
         "--client-token"),
    ],
)  # fmt: skip
def test_missing_or_wrong_answers_with_yes_exit_2_naming_the_flag(
    argv: list[str], flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = FakeRunner()
    code, _ = run([*argv, "--yes"], runner, tmp_path)
    assert code == 2
    assert flag in capsys.readouterr().err
    assert runner.calls == []


def test_interactive_answers_fill_what_the_flags_leave_out(tmp_path: Path) -> None:
    answers = iter(["acme-rbm", "", "", "acme-agent", "tap", TOKEN])
    questions: list[str] = []

    def ask(q: str) -> str:
        questions.append(q)
        return next(answers)

    code, out = run([], FakeRunner(), tmp_path, ask=ask)
    assert code == 0, out
    assert [q.split(" [")[0].rstrip(": ") for q in questions] == [
        "Google Cloud project id", "Region", "BigQuery dataset",
        "RBM agent ids, comma-separated", "Integration: relay, tap or pubsub", "clientToken",
    ]  # fmt: skip
    # The console step that shows the clientToken comes before the question for it.
    assert "Integrations → Webhook → Configure" in out
    assert "docs/tap/" in out


def test_dry_run_prints_every_command_and_runs_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*a: object, **k: object) -> None:
        raise AssertionError("dry run ran a command")

    monkeypatch.setattr(init.subprocess, "run", forbidden)
    args = cli.build_parser().parse_args(
        ["init", "--infra-dir", str(tmp_path), *RELAY, "--firestore", "named", "--dry-run"]
    )
    out = io.StringIO()
    assert init.run(args, out=out) == 0
    text = out.getvalue()
    assert not (tmp_path / "terraform.tfvars").exists()
    assert f"$ terraform -chdir={tmp_path} init -input=false" in text
    assert "$ gcloud secrets versions add PHONE_HASH_KEY --project=acme-rbm --data-file=-" in text
    assert "<generated AGENT_API_KEYS>" in text
    assert "INGEST_URL=$(terraform" in text


def test_the_readme_shows_the_dry_run_output_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support import REPO_ROOT

    monkeypatch.chdir(REPO_ROOT)
    argv = [a for a in RELAY if a != f"acme-agent={TOKEN}"]
    argv.insert(argv.index("--client-token") + 1, "acme-agent=EXAMPLE_CLIENT_TOKEN")
    args = cli.build_parser().parse_args(["init", *argv, "--firestore", "named", "--dry-run"])
    out = io.StringIO()
    assert init.run(args, out=out) == 0
    assert out.getvalue().rstrip("\n") in (REPO_ROOT / "README.md").read_text()


def test_a_bare_secret_with_base64_padding_is_the_only_agents_token() -> None:
    from rbm_analytics_dev.commands.init import _pairs

    assert _pairs(["c2VjcmV0=="], ("acme",), "--client-token") == {"acme": "c2VjcmV0=="}
    assert _pairs(["acme=tok=="], ("acme", "beta"), "--client-token") == {"acme": "tok=="}
    assert _pairs(["https://bot.example/hook?a=b"], ("acme", "beta"), "--forward-url") == {
        "acme": "https://bot.example/hook?a=b",
        "beta": "https://bot.example/hook?a=b",
    }
