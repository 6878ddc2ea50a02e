"""The organisers' console in a real browser (Debian's Chromium through Selenium and Debian's chromedriver,
against gunicorn): an organiser signs in with both factors, axe-core finds no serious or critical WCAG 2.1
A/AA violation on the dashboard (two languages, with errors too), the audit trail and the other console
pages, the browser reports no Content-Security-Policy violation, and screenshots of the dashboard at 375
and 1280 px wide are written to .data/screenshots/ (ignored by git). Skipped like
tests/collection/test_browser.py where Chromium or axe-core is missing, unless REQUIRE_BROWSER is set."""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection as database
from django.utils import timezone
from pytest_django.plugin import DjangoDbBlocker
from selenium.webdriver.remote.webdriver import WebDriver

from collection.models import Statement
from collection.services import counts_refresh
from tenants.models import Initiative, OrganiserMembership
from tenants.onboarding import initiative_onboard
from tests.browser import SCREENSHOT_FOLDER, axe_required, axe_serious_violations, browser_required, chromium
from tests.conftest import RUN_CACHE_PREFIX, onboarding_request
from tests.processes import committed_initiative_remove, gunicorn, platform_environment
from tests.second_factor import totp_code, totp_device

pytestmark = [browser_required, axe_required]

SCREENSHOTS = SCREENSHOT_FOLDER
PASSWORD = "a long organiser passphrase for the browser"
DAYS = 21


def _statements_over_days(initiative: Initiative) -> None:
    """A few hundred statements spread over the last DAYS days, counted and published: the dashboard
    has bars and meters to show. Made-up sealed bytes: the dashboard reads counts only."""
    countries = ["DE", "FR", "IT", "PL", "MT", "LU", "SE", "AT"]
    rows = [
        Statement(
            country=countries[number % len(countries)] if number % 3 else "MT",
            form_revision="test",
            key_version=1,
            index_digest=os.urandom(32),
            index_key_version=1,
            sealed_personal_data=os.urandom(32),
        )
        for number in range(600)
    ]
    with initiative:
        Statement.objects.bulk_create(rows)
        with database.cursor() as cursor:
            # More of them towards today, as a campaign gathers pace.
            cursor.execute(
                "UPDATE collection_statement SET submitted_at = now() - make_interval("
                "days => floor(power(random(), 2) * %s)::int, hours => floor(random() * 3)::int)",
                [DAYS - 1],  # with the hours, at most DAYS back: on the collection's first day
            )
        counts_refresh()


@pytest.fixture
def console(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker, keystore: Path
) -> Iterator[tuple[Initiative, User, str]]:
    """A committed initiative with statements and an organiser with a TOTP device, served by gunicorn
    that shares this run's cache (the published counts)."""
    with django_db_blocker.unblock():
        initiative = initiative_onboard(onboarding_request("console", 940001), actor="t", provision="now")
        Initiative.objects.filter(pk=initiative.pk).update(
            collection_start=timezone.localdate() - datetime.timedelta(days=DAYS)
        )
        initiative.refresh_from_db()
        _statements_over_days(initiative)
        user = get_user_model().objects.create_user(
            f"organiser-{uuid.uuid4().hex[:8]}@example.org", password=PASSWORD
        )
        OrganiserMembership.objects.create(user=user, initiative=initiative)
        totp_device(user)
        try:
            environment = platform_environment(
                keystore, CACHE_KEY_PREFIX=RUN_CACHE_PREFIX, HOST_CACHE_SECONDS="0"
            )
            with gunicorn(environment, "--workers", "1", "--threads", "4") as port:
                yield initiative, user, f"http://{initiative.slug}.{settings.PLATFORM_DOMAIN}:{port}"
        finally:
            user.delete()
            committed_initiative_remove(initiative)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def _audit(browser: WebDriver) -> list[str]:
    return axe_serious_violations(browser)


def _screenshot(browser: WebDriver, width: int, name: str) -> Path:
    """The whole page at `width` CSS pixels: the window is made as tall as the page first."""
    browser.set_window_size(width, 800)
    browser.refresh()
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(width, height)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    assert browser.save_screenshot(str(path))
    # Mobile first: nothing wider than the screen but the tables' own scrolling regions.
    overflow = browser.execute_script("return document.documentElement.scrollWidth")
    assert overflow <= width, f"the page is {overflow} px wide at {width} px"
    return path


def test_the_console_pages_are_accessible_and_the_dashboard_is_photographed(
    console: tuple[Initiative, User, str], browser: WebDriver
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _initiative, user, base = console
    browser.set_window_size(1280, 900)
    browser.get(f"{base}/manage/login/")
    browser.find_element(By.ID, "id_username").send_keys(user.username)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: "/manage/login/code/" in d.current_url)
    browser.find_element(By.ID, "id_code").send_keys(totp_code(totp_device(user)))
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: d.current_url.rstrip("/").endswith("/manage"))

    found: dict[str, list[str]] = {}
    pages = [
        "/manage/?lang=en",
        "/manage/?lang=el",
        "/manage/audit/",
        "/manage/audit/?since=not-a-day",
        "/manage/audit/?page=2",
        "/manage/exports/",
        "/manage/organisers/",
        "/manage/funding/",
        "/manage/submission/",
        "/manage/password/",
    ]
    for path in pages:
        browser.get(f"{base}{path}")
        serious = axe_serious_violations(browser)
        if serious:
            found[path] = serious
    # The dashboard's numbers are those published: 600 statements, the chart has a bar a day.
    browser.get(f"{base}/manage/?lang=en")
    assert "600 of 1,000,000 statements of support" in browser.page_source
    assert len(browser.find_elements(By.CSS_SELECTOR, ".dashboard-chart rect")) == DAYS + 1
    # A change refused for a missing reason: the form with its errors.
    browser.find_element(By.CSS_SELECTOR, "#control-pause button[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "control-errors"))
    if serious := axe_serious_violations(browser):
        found["/manage/ with errors"] = serious
    # Every id the error summary or an aria-describedby names is in the page (axe does not check).
    missing = browser.execute_script(
        "const named = [...document.querySelectorAll('[aria-describedby]')]"
        "  .flatMap(e => e.getAttribute('aria-describedby').split(/\\s+/))"
        "  .concat([...document.querySelectorAll('.error-summary a')].map(a => a.hash.slice(1)));"
        "return named.filter(id => !document.getElementById(id));"
    )
    assert missing == []
    assert browser.find_element(By.ID, "id_reason_pause").get_attribute("aria-invalid") == "true"
    assert not found, found

    csp = [
        entry["message"]
        for entry in cast(Any, browser).get_log("browser")  # Chromium's own
        if "Content Security Policy" in entry["message"]
    ]
    assert csp == []

    browser.get(f"{base}/manage/?lang=en")
    for width in (375, 1280):
        shot = _screenshot(browser, width, f"dashboard-{width}.png")
        assert shot.stat().st_size > 10_000
