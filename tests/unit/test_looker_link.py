"""``rbm-analytics looker-link`` and Terraform's looker_studio_url: the same
Looker Studio Linking API URL, parameter by parameter."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from rbm_analytics_dev.cli import main
from rbm_analytics_dev.commands.looker import looker_url

from tests.infra import hcl

TEMPLATE = "0b6c2f0e-1c0d-4f55-9a43-2d5e0c5f8d11"


def _data_sources(project: str, dataset: str) -> list[tuple[str, str]]:
    return [
        ("ds.ds0.connector", "bigQuery"),
        ("ds.ds0.type", "TABLE"),
        ("ds.ds0.projectId", project),
        ("ds.ds0.datasetId", dataset),
        ("ds.ds0.tableId", "agent_daily"),
        ("ds.ds1.connector", "bigQuery"),
        ("ds.ds1.type", "TABLE"),
        ("ds.ds1.projectId", project),
        ("ds.ds1.datasetId", dataset),
        ("ds.ds1.tableId", "all_agents_daily"),
    ]


def test_a_blank_report_on_the_views() -> None:
    url = looker_url("my-project", "rbm_analytics")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https", "lookerstudio.google.com", "/reporting/create",
    )  # fmt: skip
    assert parse_qsl(parts.query, strict_parsing=True) == [
        ("r.reportName", "RBM Analytics"),
        *_data_sources("my-project", "rbm_analytics"),
    ]
    assert "r.reportName=RBM%20Analytics&ds.ds0.connector=bigQuery&" in url


def test_a_template_report_is_copied_with_its_data_sources_pointed_at_the_views() -> None:
    url = looker_url("example.com:my-project", "analytics_eu", TEMPLATE)
    assert parse_qsl(urlsplit(url).query, strict_parsing=True) == [
        ("c.reportId", TEMPLATE),
        ("r.reportName", "RBM Analytics"),
        *_data_sources("example.com:my-project", "analytics_eu"),
    ]


def test_the_command_prints_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["looker-link", "--project", "my-project", "--dataset", "rbm_analytics"]
    assert main([*argv, "--template-report", TEMPLATE]) == 0
    assert capsys.readouterr().out == looker_url("my-project", "rbm_analytics", TEMPLATE) + "\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--project", "My Project", "--dataset", "d"], "--project is not a BigQuery id"),
        (["--project", "my-project", "--dataset", "a-b"], "--dataset is not a BigQuery id"),
        (
            ["--project", "my-project", "--dataset", "d", "--template-report", "x&c.mode=edit"],
            "--template-report is not a Looker Studio report id",
        ),
    ],
)
def test_bad_ids_exit_2_and_print_no_url(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["looker-link", *flags]) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err


@pytest.mark.parametrize("template", ["", TEMPLATE])
def test_terraform_outputs_the_same_url(template: str, tmp_path: Path) -> None:
    """The output's expression, evaluated by terraform console with this
    deployment's values in place of the resources (no provider needed)."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("terraform is not installed on this machine")
    tf = hcl.load()
    assert tf.outputs["looker_studio_url"]["value"] == "${local.looker_studio_url}"
    views = {p.stem: p.name for p in sorted(hcl.path("views").glob("*.sql"))}
    known = {
        "local.views": "{" + ", ".join(f'"{k}" = "{v}"' for k, v in views.items()) + "}",
        "var.project_id": json.dumps("my-project"),
        "google_bigquery_dataset.analytics.dataset_id": json.dumps("rbm_analytics"),
        "var.looker_template_report_id": json.dumps(template),
    }
    params = tf.locals["looker_params"].removeprefix("${").removesuffix("}")
    expr = '"' + tf.locals["looker_studio_url"] + '"'
    expr = expr.replace("local.looker_params", f"({params})")
    for ref, value in known.items():
        expr = re.sub(rf"\b{re.escape(ref)}\b", lambda _, v=value: v, expr)
    proc = subprocess.run(
        [binary, "console"], input=expr + "\n", capture_output=True, text=True, timeout=60,
        cwd=tmp_path, check=False,
        env={"PATH": "/usr/bin:/bin", "TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1",
             "HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip()) == looker_url("my-project", "rbm_analytics", template)
