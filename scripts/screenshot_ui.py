"""Screenshot of the Analytics page of a running local stack (docs/analytics.png).

    make run            # in another terminal; wait for the banner
    .venv/bin/python scripts/screenshot_ui.py   # --url http://127.0.0.1:8082/ui --out FILE

Drives Debian's Chromium through Playwright: the demo's last 14 days for one
agent, with sent, delivered, read and user messages.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

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
    args = parser.parse_args()
    end = datetime.now(UTC).date() - timedelta(days=1)
    start = end - timedelta(days=13)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1080})
        page.goto(args.url)
        page.locator("#status", has_text="rows").wait_for(timeout=60_000)
        page.fill("#start", start.isoformat())
        page.fill("#end", end.isoformat())
        page.select_option("#agent", args.agent)
        page.check("input[value=user_messages]")
        page.click("button[type=submit]")
        page.locator("#chart-caption", has_text=args.agent).wait_for(timeout=60_000)
        page.locator("#status", has_text="rows").wait_for(timeout=60_000)
        page.screenshot(path=args.out)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
