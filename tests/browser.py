"""The real browser of the tests: Debian's Chromium, driven by Selenium through Debian's chromedriver
(nothing is downloaded), and axe-core (npm) to audit a page. Tests that need them are skipped where
they are missing, unless REQUIRE_BROWSER is set (CI sets it, so there a missing browser fails)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from eci_platform.embedded import REPOSITORY_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
AXE = REPOSITORY_ROOT / "node_modules" / "axe-core" / "axe.min.js"
# Screenshots the browser tests take, for a person to look at (ignored by git).
SCREENSHOT_FOLDER = REPOSITORY_ROOT / ".data" / "screenshots"

browser_required = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("REQUIRE_BROWSER"),
    reason="Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)
axe_required = pytest.mark.skipif(
    not AXE.exists() and not os.environ.get("REQUIRE_BROWSER"), reason="axe-core is not installed (npm ci)"
)


@contextlib.contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium, quit when the block ends."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",  # screenshots as wide as the page, on any machine
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for CSP reports
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def axe_serious_violations(driver: WebDriver) -> list[str]:
    """axe-core's serious and critical violations of the WCAG 2.1 A and AA rules on the page shown."""
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];"
        "axe.run(document, {runOnly: {type: 'tag', values: tags}}).then(r => done(r.violations.map("
        "  v => [v.id, v.impact, v.nodes.map(n => n.html.slice(0, 160)).join(' | ')])));"
    )
    return [
        f"{rule} ({impact}: {nodes})" for rule, impact, nodes in result if impact in ("serious", "critical")
    ]


def page_loaded(driver: WebDriver) -> bool:
    return bool(driver.execute_script("return document.readyState === 'complete'"))
