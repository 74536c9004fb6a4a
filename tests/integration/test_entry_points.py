"""The three deployed entry points: one request path, lazy imports, runtime-only source.

These go through ``functions/main.py`` exactly as functions-framework serves
it in the cloud.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from typing import Any

import pytest

from tests.app_client import client_for, create_app
from tests.support import REPO_ROOT, bearer

MAIN = str(REPO_ROOT / "functions" / "main.py")
LEAK = "+15550001111 wrote this"


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# An unexpected exception in each function's own code, and the request that reaches it.
BUGS = [
    ("ingest", "rbm_analytics.ingest.routes.parse_json", "post", "/", b"{}"),
    (
        "ingest",
        "rbm_analytics.ingest.routes.parse_agent_messages",
        "post",
        "/agent-messages",
        b"{}",
    ),
    ("refresh", "rbm_analytics.refresh.routes.plan_from_body", "post", "/", b"{}"),
    ("export", "rbm_analytics.export.routes.parse_export_params", "get", "/", b""),
    ("export", "rbm_analytics.export.routes.parse_agents_params", "get", "/agents", b""),
    ("export", "rbm_analytics.export.ui.serve", "get", "/ui", b""),
]


@pytest.mark.parametrize(("target", "where", "method", "path", "body"), BUGS)
def test_an_unexpected_exception_is_a_json_500_and_one_log_line(
    target: str,
    where: str,
    method: str,
    path: str,
    body: bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise KeyError(LEAK)

    monkeypatch.setattr(where, boom)
    client = client_for(create_app(target))
    headers = bearer()
    resp = getattr(client, method)(path, data=body, headers=headers)
    assert resp.status_code == 500
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.get_json() == {"error": "internal error; nothing was changed by this request"}
    assert "15550001111" not in resp.get_data(as_text=True)
    (line,) = _lines(capsys.readouterr().out)
    assert line["message"] == f"{target} request"
    assert (line["status"], line["severity"], line["outcome"]) == (500, "ERROR", "error")
    assert line["exception"].startswith("KeyError at test_entry_points.py")
    assert "boom" in line["traceback"]
    assert "15550001111" not in json.dumps(line)


@pytest.mark.parametrize(
    ("target", "method", "path"),
    [("ingest", "get", "/"), ("refresh", "get", "/"), ("export", "post", "/"),
     ("ingest", "post", "/nowhere"), ("export", "get", "/nowhere")],
)  # fmt: skip
def test_refusals_carry_nosniff_and_log_one_line(
    target: str, method: str, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    resp = getattr(client_for(create_app(target)), method)(path)
    assert resp.status_code in (404, 405)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.get_json()["error"]
    (line,) = _lines(capsys.readouterr().out)
    assert line["status"] == resp.status_code


COLD_START = """
import json, sys
import functions_framework
app = functions_framework.create_app(sys.argv[1], sys.argv[2])
if hasattr(app, "test_client"):  # WSGI (Flask)
    resp = app.test_client().open(sys.argv[3], method=sys.argv[4], data=b"{")
else:  # ASGI (Starlette)
    from starlette.testclient import TestClient
    resp = TestClient(app).request(sys.argv[4], sys.argv[3], content=b"{")
print(json.dumps({"status": resp.status_code, "modules": sorted(sys.modules)}))
"""


@pytest.mark.parametrize(
    ("target", "path", "method", "absent"),
    [
        ("ingest", "/", "POST", ("google.cloud.bigquery", "rbm_analytics.refresh",
                                 "rbm_analytics.export", "rbm_analytics_dev")),
        ("export", "/?scale=fortnight", "GET", ("google.cloud.firestore", "rbm_analytics.ingest",
                                "rbm_analytics.refresh", "rbm_analytics_dev")),
        ("refresh", "/", "POST", ("rbm_analytics.ingest", "rbm_analytics.export",
                                  "rbm_analytics_dev")),
    ],
)  # fmt: skip
def test_each_function_loads_only_its_own_package(
    target: str, path: str, method: str, absent: tuple[str, ...]
) -> None:
    env = {"GOOGLE_CLOUD_PROJECT": "demo-cold", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", COLD_START, target, MAIN, path, method],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # A malformed body or a bad date: answered by the function's own code.
    assert result["status"] == 400, out.stdout[:2000]
    own = f"rbm_analytics.{target}"
    assert own in result["modules"]
    for name in absent:
        assert not any(m == name or m.startswith(name + ".") for m in result["modules"]), name


def test_the_deployed_folder_holds_only_runtime_code() -> None:
    """functions/ is what Terraform zips: the functions, never the CLI or local stack."""
    functions = REPO_ROOT / "functions"
    files = {p.relative_to(functions).as_posix() for p in functions.rglob("*") if p.is_file()}
    # What the archive's excludes leave out (infra/functions.tf).
    files = {f for f in files if "__pycache__" not in f and ".egg-info/" not in f}
    assert {"main.py", "requirements.txt"} <= files
    assert all(
        f in ("main.py", "requirements.txt") or f.startswith("rbm_analytics/") for f in files
    )
    for path in functions.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )  # fmt: skip
            assert not any(n.startswith("rbm_analytics_dev") for n in names), path


@pytest.mark.parametrize(
    ("target", "method", "path"), [("refresh", "post", "/"), ("export", "get", "/")]
)
@pytest.mark.parametrize(
    ("setting", "value"), [("BQ_DATASET", "rbm-analytics;drop"), ("GOOGLE_CLOUD_PROJECT", "X")]
)
def test_a_setting_that_is_no_bigquery_id_is_503_naming_it_in_both_functions(
    target: str, method: str, path: str, setting: str, value: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9")  # never reached
    monkeypatch.setenv(setting, value)
    resp = getattr(client_for(create_app(target)), method)(path)
    assert resp.status_code == 503
    assert setting in resp.get_json()["error"]


@pytest.mark.parametrize("target", ["ingest", "refresh", "export"])
@pytest.mark.parametrize("path", ["/robots.txt", "/favicon.ico"])
def test_the_frameworks_own_paths_answer_like_every_other(
    target: str, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    resp = client_for(create_app(target)).get(path)
    assert resp.status_code == 404
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.get_json() == {"error": "no such route"}
    (line,) = _lines(capsys.readouterr().out)
    assert (line["message"], line["status"]) == (f"{target} request", 404)
