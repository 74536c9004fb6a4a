"""In-process clients for the functions as functions-framework builds them.

``refresh`` and ``export`` are Flask apps and keep Flask's test client.
``ingest`` is an ASGI (Starlette) app: ``client_for`` wraps Starlette's test
client in the same small surface the tests use (``post(path, data=...,
headers=..., query_string=...)``, ``get_json()``, ``get_data()``), so one
test reads the same against either kind of app. Requests go through the
whole ASGI app: routing, the 404 paths, body limits and headers.
"""

from __future__ import annotations

import contextlib
import functools
import json as jsonlib
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import functions_framework

from tests.support import REPO_ROOT

MAIN = str(REPO_ROOT / "functions" / "main.py")


def create_app(target: str) -> Any:
    """The app functions-framework builds for ``target`` from functions/main.py."""
    return functions_framework.create_app(target, MAIN)


def client_for(app: Any) -> Any:
    """A test client with Flask's test-client surface, for either kind of app."""
    if hasattr(app, "test_client"):
        return app.test_client()
    return AsgiClient(app)


class AsgiResponse:
    """An httpx response read the way Flask's test response is."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self.status_code: int = response.status_code
        self.headers = response.headers  # case-insensitive, as Flask's
        self.data: bytes = response.content

    @property
    def content_type(self) -> str | None:
        value: str | None = self.headers.get("content-type")
        return value

    @property
    def text(self) -> str:
        return str(self._response.text)

    def get_data(self, as_text: bool = False) -> bytes | str:
        return self.text if as_text else self.data

    def get_json(self) -> Any:
        return jsonlib.loads(self.data)

    @property
    def json(self) -> Any:
        return self.get_json()


def _header_bytes(value: str | bytes) -> bytes:
    """A header value as it goes on the wire: Latin-1, as WSGI and ASGI read
    it back (UTF-8 for what Latin-1 cannot encode); Flask's client takes any str."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


class AsgiClient:
    """Flask's test-client calls, sent through Starlette's test client."""

    def __init__(self, app: Any) -> None:
        from starlette.testclient import TestClient

        self._client = TestClient(app)

    def open(
        self,
        path: str,
        method: str = "GET",
        *,
        data: bytes | str | Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        query_string: Mapping[str, str] | str | None = None,
        **_: Any,
    ) -> AsgiResponse:
        kwargs: dict[str, Any] = {
            "headers": {k: _header_bytes(v) for k, v in (headers or {}).items()}
        }
        if isinstance(data, (bytes, str)):
            kwargs["content"] = data
        elif data is not None:
            kwargs["data"] = dict(data)
        if json is not None:
            kwargs["json"] = json
        if query_string:
            if isinstance(query_string, str):
                path = f"{path}?{query_string}"
            else:
                kwargs["params"] = dict(query_string)
        return AsgiResponse(self._client.request(method, path, **kwargs))

    def __getattr__(self, method: str) -> Any:
        if method in {"get", "post", "put", "patch", "delete", "head", "options"}:
            return functools.partial(self.open, method=method.upper())
        raise AttributeError(method)


@contextlib.contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """``app`` served over HTTP on a free local port by uvicorn, in a thread;
    its base URL. Stopped (connections closed) on exit."""
    import uvicorn
    from rbm_analytics_dev.local.emulators import free_port

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
