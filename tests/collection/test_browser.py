"""A real browser (Debian's Chromium, driven by Selenium through Debian's chromedriver; nothing is
downloaded) signs an initiative end to end against gunicorn: the form, the proof of work solved by the
ALTCHA widget in the page, the receipt. Skipped where Chromium is not installed, unless REQUIRE_BROWSER
is set (CI sets it, so there a missing browser fails)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from pytest_django.plugin import DjangoDbBlocker
from selenium.webdriver.remote.webdriver import WebDriver

from collection.models import Statement
from collection.sealed import personal_data_decode
from eci_platform.embedded import REPOSITORY_ROOT
from tenants.keyring.sealing import open_sealed
from tenants.models import Initiative
from tenants.services import initiative_onboard
from tests.conftest import onboarding_request
from tests.processes import committed_initiative_remove, gunicorn, platform_environment

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("REQUIRE_BROWSER"),
    reason="Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)


@pytest.fixture
def site(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker, keystore: Path
) -> Iterator[tuple[Initiative, str]]:
    """A committed initiative served by gunicorn on a free port."""
    with django_db_blocker.unblock():
        initiative = initiative_onboard(onboarding_request("browser", 930001), actor="t", provision="now")
        try:
            environment = platform_environment(keystore, ALTCHA_COST="5000")
            with gunicorn(environment, "--workers", "1", "--threads", "4") as port:
                yield initiative, f"http://{initiative.slug}.{settings.PLATFORM_DOMAIN}:{port}"
        finally:
            committed_initiative_remove(initiative)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
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
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_a_citizen_signs_in_a_real_browser(
    site: tuple[Initiative, str], browser: WebDriver, django_db_blocker: DjangoDbBlocker
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    initiative, base = site
    driver = browser
    driver.get(f"{base}/sign/?lang=en")
    Select(driver.find_element(By.ID, "country")).select_by_value("PL")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d: "/sign/PL/" in d.current_url)
    for field, value in (
        ("first_names", "Maria Skłodowska"),
        ("family_names", "Curie"),
        ("document_number", "44051401359"),
    ):
        driver.find_element(By.ID, f"id_{field}").send_keys(value)
    driver.find_element(By.ID, "id_declaration").click()
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    # The widget solves the proof of work in the page, then the form is sent; the receipt follows.
    WebDriverWait(driver, 60).until(lambda d: "/receipt/" in d.current_url)
    page = driver.page_source
    assert "your support has been recorded" in page

    with django_db_blocker.unblock(), initiative:
        row = Statement.objects.get()
    assert str(row.pk) in page
    stored = personal_data_decode(open_sealed(initiative.pk, row.pk, "PL", bytes(row.sealed_personal_data)))
    assert stored == {
        "first_names": "Maria Skłodowska",
        "family_names": "Curie",
        "document_type": "personal.number",
        "document_number": "44051401359",
    }


AXE = REPOSITORY_ROOT / "node_modules" / "axe-core" / "axe.min.js"


@pytest.mark.skipif(
    not AXE.exists() and not os.environ.get("REQUIRE_BROWSER"), reason="axe-core is not installed (npm ci)"
)
def test_the_public_pages_have_no_serious_accessibility_violations(
    site: tuple[Initiative, str], browser: WebDriver
) -> None:
    """axe-core (WCAG 2.1 A and AA rules) on every public page, including a form with errors."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _initiative, base = site
    axe = AXE.read_text()
    pages = ["/?lang=en", "/sign/?lang=de", "/sign/FR/?lang=fr", "/sign/AT/?lang=en", "/sign/HU/?lang=en"]
    found: dict[str, list[str]] = {}

    def audit(label: str) -> None:
        browser.execute_script(axe)
        result = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];"
            "axe.run(document, {runOnly: {type: 'tag', values: tags}}).then(r => done(r.violations.map("
            "  v => [v.id, v.impact, v.nodes.map(n => n.html.slice(0, 160)).join(' | ')])));"
        )
        serious = [
            f"{rule} ({impact}, {count} nodes)"
            for rule, impact, count in result
            if impact in ("serious", "critical")
        ]
        if serious:
            found[label] = serious

    browser.set_script_timeout(30)
    for path in pages:
        browser.get(f"{base}{path}")
        audit(path)
    # The form again, with every error shown.
    browser.get(f"{base}/sign/FR/?lang=en")
    browser.execute_script(
        "document.querySelector('form[method=post]').noValidate = true;"
        "document.querySelector('altcha-widget').remove();"
    )
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".error-summary"))
    assert "This field is required." in browser.page_source
    audit("/sign/FR/ with errors")
    assert not found, found
