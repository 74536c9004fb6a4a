"""Screenshot of the Analytics page of a running local stack (docs/analytics.png).

    make run            # in another terminal; wait for the banner
    .venv/bin/python scripts/screenshot_ui.py   # --url http://127.0.0.1:8082/ui --out FILE

Drives Debian's Chromium through Playwright: the demo's last 30 days up to
today (dashed, "so far"), one agent compared with another beside the
all-agents total, with counts and the 90th-percentile agent response time in
their own charts.
"""

from __future__ import annotations

import argparse

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8082/ui")
    parser.add_argument("--out", default="docs/analytics.png")
    parser.add_argument("--agent", default="acme-retail")
    parser.add_argument("--compare", default="", help="a second agent (default: the next one)")
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1080})
        page.goto(args.url)
        page.locator("#status", has_text="rows").wait_for(timeout=60_000)
        page.select_option("#range", "30")
        page.select_option("#agent", args.agent)
        others = [v for v in page.locator("#compare option").evaluate_all(
            "os => os.map(o => o.value)") if v and v != args.agent]  # fmt: skip
        compare = args.compare or (others[0] if others else "")
        if compare:
            page.select_option("#compare", compare)
        page.uncheck("input[value=delivered]")
        page.check("input[value=agent_response_p90_s]")
        page.click("button[type=submit]")
        page.locator("#chart-caption", has_text=args.agent).wait_for(timeout=60_000)
        page.locator("body[data-state='ready']").wait_for(timeout=60_000)
        page.screenshot(path=args.out)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
