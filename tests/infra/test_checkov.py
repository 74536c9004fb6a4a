"""checkov over infra/: no failed check; every skip carries its reason in the code."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from tests.support import REPO_ROOT

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"


def _run(*extra: str) -> list[dict[str, Any]]:
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run 'make install'"
    # --skip-download and BC_SKIP_MAPPING keep checkov offline.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(REPO_ROOT / "infra"), "--framework", "terraform",
         "--compact", "-o", "json", "--skip-download", *extra],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    return report if isinstance(report, list) else [report]


@pytest.fixture(scope="module")
def report() -> list[dict[str, Any]]:
    return _run()


def test_checkov_finds_no_failed_check(report: list[dict[str, Any]]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for r in report
        for c in r["results"].get("failed_checks", [])
    ]
    assert failed == [], "checkov failed checks:\n" + "\n".join(failed)
    summary = report[0]["summary"]
    assert summary["parsing_errors"] == 0
    # The scan saw the whole configuration.
    assert summary["resource_count"] >= 30
    assert summary["passed"] > 0


def test_every_skipped_check_has_a_reason(report: list[dict[str, Any]]) -> None:
    skipped = [c for r in report for c in r["results"].get("skipped_checks", [])]
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 4, f"{check['check_id']} on {check['resource']}: {reason!r}"
    # Skips are the deliberate ones, each explained in README "Deploy".
    assert {c["check_id"] for c in skipped} <= {
        "CKV_GCP_62", "CKV_GCP_80", "CKV_GCP_81", "CKV_GCP_84", "CKV_GCP_102", "CKV_GCP_124",
    }  # fmt: skip
