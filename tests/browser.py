"""Headless Chromium for the browser tests (tests/test_slides.py, tests/test_site.py), driven by
Playwright with the network off.

The browser is Debian's (/usr/bin/chromium; `make test` installs it when missing), never
one Playwright downloads. Each page gets a `PageLog` of every request it made, the loads
that failed and the errors it raised, so a test can assert that nothing left the machine.
"""

from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LOCAL_URL = re.compile(r"^(file|data|blob|about):")


@contextmanager
def offline_browser():
    """A Chromium browser (Playwright's Browser) whose contexts are made offline by `new_page`."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("no chromium: `make test` installs Debian's (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageLog:
    requests: list[str] = field(default_factory=list)  # every URL asked for
    failed: list[str] = field(default_factory=list)    # "url: why" for loads that failed
    errors: list[str] = field(default_factory=list)    # uncaught exceptions and console errors

    def left_the_machine(self) -> list[str]:
        return [url for url in self.requests if not LOCAL_URL.match(url)]


def new_page(browser, width: int, height: int):
    """(page, log): a page in a fresh offline context of width x height CSS pixels."""
    context = browser.new_context(offline=True, viewport={"width": width, "height": height})
    page = context.new_page()
    log = PageLog()
    watch(page, log)
    return page, log


def watch(page, log: PageLog) -> None:
    page.on("request", lambda request: log.requests.append(request.url))
    page.on("requestfailed", lambda request: log.failed.append(f"{request.url}: {request.failure}"))
    page.on("pageerror", lambda error: log.errors.append(str(error)))
    page.on("console", lambda message: log.errors.append(message.text) if message.type == "error" else None)
