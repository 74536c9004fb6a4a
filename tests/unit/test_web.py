"""The one request path: routing, method, error JSON, catch-all 500, headers, the log line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rbm_analytics import web
from rbm_analytics.core.errors import InvalidInput, Unavailable
from rbm_analytics.core.http import Request, Response, json_response

SECRET_TEXT = "+15551234567 said hello"


def _ok(request: Request, deps: str, fields: dict[str, Any]) -> Response:
    fields["seen"] = deps
    return json_response(200, {"ok": True})


def _bad(request: Request, deps: str, fields: dict[str, Any]) -> Response:
    raise InvalidInput("field x is missing")


def _down(request: Request, deps: str, fields: dict[str, Any]) -> Response:
    raise Unavailable("storage is unavailable; retry later") from TimeoutError()


def _bug(request: Request, deps: str, fields: dict[str, Any]) -> Response:
    raise RuntimeError(SECRET_TEXT)


def _stream(request: Request, deps: str, fields: dict[str, Any]) -> Response:
    return Response(200, iter([b"a,b\n", b"1,2\n"]), "text/csv")


SERVICE: web.Service[str] = web.Service(
    "demo",
    (
        web.Route("ok", ("POST",), _ok, "/"),
        web.Route("bad", ("POST",), _bad, "/bad"),
        web.Route("down", ("POST",), _down, "/down"),
        web.Route("bug", ("GET", "POST"), _bug, "/bug"),
        web.Route("files", ("GET",), _stream, "/files", prefix=True),
    ),
    usage="POST / or /bad",
)


def _serve(path: str, method: str = "POST", headers: dict[str, str] | None = None) -> Response:
    return web.serve(SERVICE, Request(method, path, headers or {}), lambda: "deps")


def _logs(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def _body(response: Response) -> Any:
    assert isinstance(response.body, bytes)
    return json.loads(response.body)


@pytest.mark.parametrize("path", ["/", "", "//"])
def test_a_route_serves_and_logs_one_line(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    response = _serve(path)
    assert response.status == 200
    (line,) = _logs(capsys)
    assert line["message"] == "demo request"
    assert (line["route"], line["status"], line["severity"], line["seen"]) == (
        "ok", 200, "INFO", "deps",
    )  # fmt: skip
    assert line["latency_ms"] >= 0


def test_unknown_path_is_404_without_echoing_it(capsys: pytest.CaptureFixture[str]) -> None:
    response = _serve("/+15551234567")
    assert response.status == 404
    assert "15551234567" not in _body(response)["error"]
    assert "POST /" in _body(response)["error"]
    (line,) = _logs(capsys)
    assert "15551234567" not in json.dumps(line)
    assert (line["route"], line["severity"]) == ("unknown", "WARNING")


def test_wrong_method_is_405_with_allow_and_builds_no_dependencies() -> None:
    built: list[str] = []

    def deps() -> str:
        built.append("x")
        return "deps"

    response = web.serve(SERVICE, Request("GET", "/", {}), deps)
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert built == []


def test_domain_errors_map_to_their_status(capsys: pytest.CaptureFixture[str]) -> None:
    bad, down = _serve("/bad"), _serve("/down")
    assert (bad.status, _body(bad)) == (400, {"error": "field x is missing"})
    assert (down.status, _body(down)) == (503, {"error": "storage is unavailable; retry later"})
    first, second = _logs(capsys)
    assert (first["severity"], first["outcome"]) == ("WARNING", "rejected")
    assert (second["severity"], second["outcome"], second["cause"]) == (
        "ERROR", "failed", "TimeoutError",
    )  # fmt: skip


def test_a_bug_is_a_json_500_with_the_traceback_in_the_log_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = _serve("/bug")
    assert response.status == 500
    assert response.content_type == "application/json"
    assert _body(response) == {"error": web.INTERNAL_ERROR}
    (line,) = _logs(capsys)
    assert line["severity"] == "ERROR"
    assert line["exception"].startswith("RuntimeError at test_web.py:")
    assert "_bug" in line["traceback"]
    # The exception's text may quote a payload: it is never logged or returned.
    assert SECRET_TEXT not in json.dumps(line)
    assert b"15551234567" not in response.body  # type: ignore[operator]


@pytest.mark.parametrize("path", ["/", "/bad", "/bug", "/nowhere", "/files/a"])
def test_every_response_says_nosniff(path: str) -> None:
    assert (
        _serve(path, "GET" if path.startswith("/files") else "POST").headers[
            "X-Content-Type-Options"
        ]
        == "nosniff"
    )


def test_a_streamed_body_logs_when_it_ends(capsys: pytest.CaptureFixture[str]) -> None:
    response = _serve("/files/x.csv", "GET")
    assert _logs(capsys) == []  # nothing yet: the body has not been sent
    assert b"".join(response.body) == b"a,b\n1,2\n"
    (line,) = _logs(capsys)
    assert (line["status"], line["outcome"], line["bytes"]) == (200, "complete", 8)


def test_an_aborted_stream_logs_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    body = iter(_serve("/files/x.csv", "GET").body)
    next(body)
    body.close()  # type: ignore[attr-defined]
    (line,) = _logs(capsys)
    assert (line["outcome"], line["severity"], line["bytes"]) == ("aborted", "WARNING", 4)


def test_trace_id_joins_the_request_to_its_cloud_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "acme")
    _serve("/", headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"})
    _serve("/", headers={"X-Cloud-Trace-Context": "../../etc;o=1"})
    first, second = _logs(capsys)
    assert first["logging.googleapis.com/trace"] == (
        "projects/acme/traces/105445aa7843bc8bf206b12000100000"
    )
    assert "logging.googleapis.com/trace" not in second


def test_the_first_route_that_matches_wins_exact_or_prefix() -> None:
    routes = (
        web.Route("a", ("GET",), _ok, "/a"),
        web.Route("files", ("GET",), _ok, "/files", prefix=True),
        web.Route("shadowed", ("GET",), _ok, "/files/b"),
        web.Route("root", ("GET",), _ok, "/"),
    )
    service: web.Service[str, Response] = web.Service("x", routes, usage="GET /a")
    found = {
        p: getattr(service.route(p), "name", None)
        for p in ("/a", "/a/", "/a//", "/files/b", "/", "", "/b")
    }
    assert found == {
        "/a": "a",
        "/a/": "a",
        "/a//": "a",
        "/files/b": "files",
        "/": "root",
        "": "root",
        "/b": None,
    }


@pytest.mark.parametrize("name", ["X-Goog-Signature", "x-goog-signature", "X-GOOG-SIGNATURE"])
def test_a_header_is_found_whatever_the_case_of_either_name(name: str) -> None:
    for headers in (
        {"x-goog-signature": "s"},
        {"X-Goog-Signature": "s"},
        {"X-GOOG-signature": "s"},
    ):
        assert Request("POST", "/", headers).header(name) == "s"
    assert Request("POST", "/", {"other": "s"}).header(name) is None
