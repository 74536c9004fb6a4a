"""The page's files, its headers, and the agents list it fills its select from."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from rbm_analytics.metrics.catalog import METRICS

from tests.export_data import Warehouse, daily


class _Checkboxes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[str] = []
        self.labels_for: set[str] = set()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name") == "metrics":
            self.metrics.append(str(a["value"]))
        if tag == "label" and a.get("for"):
            self.labels_for.add(str(a["for"]))
        if a.get("id"):
            self.ids.add(str(a["id"]))


def test_page_and_assets_are_served_with_a_strict_policy(offline_client: Any) -> None:
    page = offline_client.get("/ui")
    assert page.status_code == 200
    assert page.content_type == "text/html; charset=utf-8"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    html = page.data.decode()
    assert 'src="ui/app.js"' in html and 'href="ui/style.css"' in html
    js = offline_client.get("/ui/app.js")
    css = offline_client.get("/ui/style.css")
    assert js.status_code == css.status_code == 200
    assert js.content_type.startswith("text/javascript")
    assert css.content_type.startswith("text/css")
    # Nothing from the internet: the only absolute URL is the SVG namespace name.
    for body in (html, js.data.decode(), css.data.decode()):
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*", body))
        assert urls <= {"http://www.w3.org/2000/svg"}, urls


def test_page_offers_every_metric_and_labels_every_control(offline_client: Any) -> None:
    parser = _Checkboxes()
    parser.feed(offline_client.get("/ui").data.decode())
    chartable = [n for n, m in METRICS.items() if m.unit is not None]
    assert sorted(parser.metrics) == sorted(chartable)
    assert {"scale", "start", "end", "agent"} <= parser.labels_for <= parser.ids


def test_ui_with_a_slash_redirects_and_only_get_is_allowed(offline_client: Any) -> None:
    resp = offline_client.get("/ui/")
    assert resp.status_code == 308
    assert resp.headers["Location"] == "../ui"
    assert offline_client.post("/ui").status_code == 405
    assert offline_client.get("/ui/other.js").status_code == 404


def test_agents_lists_the_agents_with_rows_in_range(
    export_client: Any, warehouse: Warehouse
) -> None:
    warehouse.load(
        "daily_metrics",
        [
            daily("2026-01-01", "zulu"),
            daily("2026-01-02", "alpha"),
            daily("2026-01-02", "zulu"),
            daily("2026-02-01", "late"),
        ],
    )
    resp = export_client.get("/agents", query_string={"start": "2026-01-01", "end": "2026-01-31"})
    assert resp.status_code == 200
    assert resp.get_json() == {
        "start": "2026-01-01",
        "end": "2026-01-31",
        "agents": ["alpha", "zulu"],
    }
    bad = export_client.get("/agents", query_string={"scale": "week"})
    assert bad.status_code == 400
    assert "scale" in bad.get_json()["error"]
