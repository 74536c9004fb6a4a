"""The Analytics page in a real headless Chromium (Debian's), served by the export function."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from rbm_analytics_dev.local.emulators import free_port
from werkzeug.serving import make_server

from tests.export_data import Warehouse, daily, parse_csv

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START, END = date(2026, 1, 5), date(2026, 2, 15)  # six ISO weeks, Monday to Sunday
AGENTS = ("acme-agent", "bravo-agent")

pytestmark = pytest.mark.browser


@pytest.fixture
def served(export_app: Any, warehouse: Warehouse) -> Iterator[str]:
    """The export function on a free loopback port, in a thread of this process."""
    server = make_server("127.0.0.1", free_port(), export_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _data() -> list[dict[str, Any]]:
    rows = []
    for i in range((END - START).days + 1):
        day = START + timedelta(days=i)
        for a, agent in enumerate(AGENTS):
            sent = 40 + (i * 7 + a * 13) % 25
            rows.append(
                daily(day, agent, sent=sent, delivered=sent - 3 - a, read=sent // 2 + (i % 5))
            )
    return rows


def _ready(page: Any) -> None:
    # A selector, not a JS predicate: the page's CSP forbids eval.
    page.locator("body[data-state='ready']").wait_for(timeout=20_000)


def test_page_changes_scale_and_metric_and_exports_the_csv(
    served: str, warehouse: Warehouse, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed: run 'make browser'")
    from playwright.sync_api import sync_playwright

    rows = _data()
    warehouse.load("daily_metrics", rows)
    outside: list[str] = []
    console_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900},
                                          accept_downloads=True)  # fmt: skip

            def guard(route: Any) -> None:
                # Everything the page loads must come from the function itself.
                if urlsplit(route.request.url).netloc != urlsplit(served).netloc:
                    outside.append(route.request.url)
                    route.abort()
                else:
                    route.continue_()

            context.route("**/*", guard)
            page = context.new_page()
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            page.goto(f"{served}/ui?start={START}&end={END}")
            _ready(page)

            # Day scale, default metrics, all agents: 42 days x 2 agents.
            assert page.locator("#agent option").all_inner_texts() == ["All agents", *AGENTS]
            assert page.locator("#numbers tbody tr").count() == 42 * 2
            assert page.locator("#chart svg g.series path").count() == 3 * 2
            assert page.locator("#chart svg g.series circle").count() == 3 * 2 * 42
            assert "Sent, Delivered, Read per day" in page.locator("#table-caption").inner_text()

            # Week scale: six weeks, each the sum of its days.
            page.select_option("#scale", "week")
            _ready(page)
            assert page.locator("#numbers tbody tr").count() == 6 * 2
            first = page.locator("#numbers tbody tr").first.locator("th, td").all_inner_texts()
            week_sent = sum(r["sent"] for r in rows[:14] if r["agent_id"] == AGENTS[0])
            assert first[:3] == [str(START), AGENTS[0], str(week_sent)]
            assert page.locator("#chart svg g.series circle").count() == 3 * 2 * 6

            # A metric, toggled from the keyboard: one more line per agent, one more column.
            page.focus('input[name="metrics"][value="read_rate"]')
            page.keyboard.press("Space")
            _ready(page)
            assert page.locator("#chart svg g.series path").count() == 4 * 2
            assert page.locator("#numbers thead th").all_inner_texts()[-1] == "Read rate"
            assert page.locator('#chart svg g.series[data-metric="read_rate"]').count() == 2
            path_before = page.locator("#chart svg g.series path").first.get_attribute("d")

            # One agent.
            page.select_option("#agent", AGENTS[0])
            _ready(page)
            assert page.locator("#numbers tbody tr").count() == 6
            assert page.locator("#chart svg g.series path").count() == 4
            assert page.locator("#chart svg g.series path").first.get_attribute("d") == path_before
            page.screenshot(path=str(tmp_path / "analytics-desktop.png"), full_page=True)

            # The export link downloads the CSV of exactly this selection.
            with page.expect_download() as info:
                page.click("#export-link")
            download = info.value
            assert download.suggested_filename == f"rbm-analytics_{START}_{END}_week.csv"
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            csv_rows = parse_csv(saved.read_bytes())
            assert list(csv_rows[0]) == [
                "date",
                "agent_id",
                "sent",
                "delivered",
                "read",
                "read_rate",
            ]
            assert [r["agent_id"] for r in csv_rows] == [AGENTS[0]] * 6
            assert csv_rows[0]["sent"] == str(week_sent)
            table = page.locator("#numbers tbody tr").all_inner_texts()
            assert [t.split("\t")[-1] for t in table] == [r["read_rate"] for r in csv_rows]

            # A phone-sized screen: no horizontal scrolling of the page itself.
            phone = browser.new_context(viewport={"width": 390, "height": 844},
                                        device_scale_factor=2, is_mobile=True)  # fmt: skip
            mobile = phone.new_page()
            mobile.goto(f"{served}/ui?start={START}&end={END}&scale=week")
            _ready(mobile)
            assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
            mobile.screenshot(path=str(tmp_path / "analytics-phone.png"), full_page=True)
        finally:
            browser.close()
    for shot in ("analytics-desktop.png", "analytics-phone.png"):
        assert (tmp_path / shot).stat().st_size > 10_000
        shutil.copy(tmp_path / shot, Path("/tmp") / f"rbm-export-{shot}")
    assert outside == []
    assert console_errors == []
