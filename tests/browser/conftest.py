"""Browser fixtures: Debian's Chromium driven by Playwright (its driver only: Playwright's own
browser download cannot work here), against a real `vidconv serve`.

Each test gets a fresh browser context (its own sessionStorage, cookies and downloads) whose
page records every console message and every Content-Security-Policy violation, and a
``shot(name)`` that saves a screenshot under the test's tmp dir (an artifact, not in the repo).
Without Playwright or Chromium the tests skip and say why; with ``browser`` in
VIDCONV_TEST_REQUIRE (CI) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import unavailable

CHROMIUM = os.environ.get("VIDCONV_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# Collected in the page before any of its own scripts run (an init script is not subject to
# the page's CSP): every violation the browser reports.
WATCH_CSP = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective}: ${e.blockedURI}`);
});
"""


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("browser", "Playwright is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        unavailable("browser", f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        except Exception as exc:  # noqa: BLE001 - any failure to start means no browser here
            unavailable("browser", f"Chromium did not start: {exc}")
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """One page of a fresh browser context, and what it has said."""

    page: Any
    shots: Path
    console: list[str] = field(default_factory=list)
    count: int = 0

    def shot(self, name: str) -> Path:
        self.count += 1
        path = self.shots / f"{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def violations(self) -> list[str]:
        found: list[str] = self.page.evaluate("() => window.__violations")
        return found + [m for m in self.console if "Content Security Policy" in m]


OpenTab = Callable[..., Tab]


@pytest.fixture
def open_tab(chromium: Any, tmp_path: Path) -> Iterator[OpenTab]:
    contexts: list[Any] = []

    def open_(width: int = 1000, height: int = 900) -> Tab:
        context = chromium.new_context(viewport={"width": width, "height": height},
                                       accept_downloads=True)
        contexts.append(context)
        context.add_init_script(WATCH_CSP)
        page = context.new_page()
        page.set_default_timeout(60_000)  # a loaded 2-core CI machine
        shots = tmp_path / "screenshots"
        shots.mkdir(exist_ok=True)
        tab = Tab(page, shots)
        page.on("console", lambda m: tab.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: tab.console.append(f"pageerror: {e}"))
        return tab

    yield open_
    for context in contexts:
        context.close()
