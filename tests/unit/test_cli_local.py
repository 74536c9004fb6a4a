"""``rbm-analytics simulate`` and ``serve`` as a person meets them: help with
examples, exit codes, and errors that say what to do."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from rbm_analytics_dev.cli import COMMANDS, main
from rbm_analytics_dev.local import emulators


@pytest.mark.parametrize("command", ["serve", "simulate"])
def test_help_has_examples_and_exit_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "exit codes:" in out


@pytest.mark.parametrize("argv", [[], *([name] for name in COMMANDS)])
def test_every_help_shows_examples(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_simulate_dry_run_writes_the_same_truth_for_the_same_flags(tmp_path: Path) -> None:
    flags = ["simulate", "--dry-run", "--seed", "5", "--end", "2026-01-10T12:00:00Z"]
    assert main([*flags, "--truth", str(tmp_path / "a.json")]) == 0
    assert main([*flags, "--truth", str(tmp_path / "b.json")]) == 0
    a = json.loads((tmp_path / "a.json").read_text())
    assert a == json.loads((tmp_path / "b.json").read_text())
    assert {row["agent_id"] for row in a["daily_metrics"]} == {"acme-retail", "globex-bank"}
    assert {row["date"] for row in a["daily_metrics"]} == {
        "2026-01-07", "2026-01-08", "2026-01-09", "2026-01-10",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dry-run", "--agents", "0"], "agents must be between 1 and 1000"),
        (["--dry-run", "--end", "yesterday"], "--end is not an RFC 3339 timestamp"),
        (["--url", "ftp://example.com"], "--url must be an http:// or https:// URL"),
        (["--live", "--rate", "0"], "--rate must be positive"),
        (["--live", "--dry-run"], "--dry-run plans a bounded period"),
    ],
)
def test_simulate_bad_flags_exit_2_with_a_message(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", *flags]) == 2
    assert message in capsys.readouterr().err


def test_simulate_against_nothing_says_what_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{emulators.free_port()}"
    assert main(["simulate", "--url", url, "--seed", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach" in err and "make run" in err


def test_serve_refuses_a_bad_schedule_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--data-dir", str(tmp_path), "--schedule", "0 6 * *"]) == 1
    assert "schedule: a schedule has 5 fields" in capsys.readouterr().err


def test_serve_refuses_a_refresh_job_of_no_tasks_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--data-dir", str(tmp_path), "--refresh-tasks", "0"]) == 1
    assert "the refresh job takes 1 to 256 tasks" in capsys.readouterr().err
    monkeypatch.setenv("RBM_LOCAL_REFRESH_TASKS", "four")
    assert main(["serve", "--data-dir", str(tmp_path)]) == 1
    assert "RBM_LOCAL_REFRESH_TASKS must be a number of tasks" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written


def test_serve_names_a_port_that_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The unit tier runs without the BigQuery emulator's virtualenv.
    monkeypatch.setattr(emulators, "bigquery_python", lambda: Path(sys.executable))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["serve", "--data-dir", str(tmp_path), "--ingest-port", str(port)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"ingest {port}" in err and "--ingest-port" in err


def test_serve_without_gcloud_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcloud, no java
    assert main(["serve", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Google Cloud CLI" in err and "cloud-firestore-emulator" in err
    assert "Traceback" not in err


def test_serve_without_the_firestore_emulator_component_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sdk = tmp_path / "google-cloud-sdk"
    (sdk / "bin").mkdir(parents=True)
    (sdk / "platform" / "bq").mkdir(parents=True)  # an SDK without the emulator
    gcloud = sdk / "bin" / "gcloud"
    gcloud.write_text("#!/bin/sh\nexit 1\n")
    gcloud.chmod(0o755)
    monkeypatch.setenv("PATH", str(sdk / "bin"))
    assert main(["serve", "--data-dir", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert "gcloud components install cloud-firestore-emulator" in err
    assert "Traceback" not in err
