"""The Analytics page: three static files from ``ui/``, served by the export function.

The page loads nothing from the internet; its Content-Security-Policy allows
only this origin, so a stray external reference fails loudly in the browser
instead of leaking requests. Its URLs are relative, so the page works at
``/ui`` on a Cloud Run URL and under any path prefix.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from rbm_analytics.core.errors import NotFound
from rbm_analytics.core.http import Response

UI_PATH = "/ui"
_FILES = {
    UI_PATH: ("index.html", "text/html; charset=utf-8"),
    f"{UI_PATH}/app.js": ("app.js", "text/javascript; charset=utf-8"),
    f"{UI_PATH}/style.css": ("style.css", "text/css; charset=utf-8"),
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return resources.files("rbm_analytics.export").joinpath("ui", name).read_bytes()


def serve(path: str) -> Response:
    """200 with the file; ``/ui/`` redirects to ``/ui`` so relative URLs resolve."""
    if path == f"{UI_PATH}/":
        return Response(308, b"", "text/plain", {"Location": "../ui"})
    if path not in _FILES:
        raise NotFound(f"no such page; the Analytics page is {UI_PATH}")
    name, content_type = _FILES[path]
    return Response(200, _read(name), content_type, _HEADERS)
