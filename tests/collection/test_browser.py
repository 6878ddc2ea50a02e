"""A real browser (Debian's Chromium, driven by Selenium through Debian's chromedriver; nothing is
downloaded) signs an initiative end to end against gunicorn: the form, the proof of work solved by the
ALTCHA widget in the page, the receipt. Skipped where Chromium is not installed, unless REQUIRE_BROWSER
is set (CI sets it, so there a missing browser fails)."""

from __future__ import annotations

import contextlib
import datetime
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from pytest_django.plugin import DjangoDbBlocker
from selenium.webdriver.remote.webdriver import WebDriver

from collection.models import Statement
from collection.sealed import personal_data_decode
from collection.selectors import COUNTS_CACHE_KEY
from eci_platform.demo import demo_initiative_ensure
from tenants.keyring.sealing import open_sealed
from tenants.models import Initiative
from tenants.onboarding import initiative_onboard
from tests.browser import (
    SCREENSHOT_FOLDER,
    axe_required,
    axe_serious_violations,
    browser_required,
    chromium,
    page_loaded,
)
from tests.conftest import RUN_CACHE_PREFIX, onboarding_request
from tests.processes import committed_initiative_remove, gunicorn, platform_environment

pytestmark = browser_required

# Signing attempts per minute from one address on the strict test site: the accessibility test makes
# four (two forms with errors, a statement, the same statement again) before it wants the 429 page.
ADDRESS_LIMIT = 4
SIGNATORY = (
    ("first_names", "Maria Skłodowska"),
    ("family_names", "Curie"),
    ("document_number", "44051401359"),
)


@contextlib.contextmanager
def _served(
    django_db_blocker: DjangoDbBlocker, keystore: Path, *, demo: bool = False, **settings_of_the_site: str
) -> Iterator[tuple[Initiative, str]]:
    with django_db_blocker.unblock():
        if demo:  # the initiative `make dev` shows, made by the same code
            initiative = demo_initiative_ensure()
        else:
            initiative = initiative_onboard(onboarding_request("browser", 930001), actor="t", provision="now")
        try:
            environment = platform_environment(keystore, ALTCHA_COST="5000", **settings_of_the_site)
            with gunicorn(environment, "--workers", "1", "--threads", "4") as port:
                yield initiative, f"http://{initiative.slug}.{settings.PLATFORM_DOMAIN}:{port}"
        finally:
            committed_initiative_remove(initiative)


@pytest.fixture
def site(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker, keystore: Path
) -> Iterator[tuple[Initiative, str]]:
    """A committed initiative served by gunicorn on a free port."""
    with _served(django_db_blocker, keystore) as served:
        yield served


@pytest.fixture
def demo_site(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker, keystore: Path
) -> Iterator[tuple[Initiative, str]]:
    """The demo initiative of `make dev`, served by gunicorn on a free port."""
    with _served(django_db_blocker, keystore, demo=True) as served:
        yield served


@pytest.fixture
def strict_site(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker, keystore: Path
) -> Iterator[tuple[Initiative, str]]:
    """The same with a low per-address limit, so that the rate-limited page comes after a few attempts,
    and no host cache, so that a change of the initiative's state shows at once."""
    limit = str(ADDRESS_LIMIT)
    with _served(
        django_db_blocker,
        keystore,
        RATE_LIMIT_ADDRESS_SOFT=limit,
        RATE_LIMIT_ADDRESS_HARD=limit,
        HOST_CACHE_SECONDS="0",
    ) as served:
        yield served


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def test_a_citizen_signs_the_demo_initiative_in_a_real_browser(
    demo_site: tuple[Initiative, str], browser: WebDriver, django_db_blocker: DjangoDbBlocker
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    initiative, base = demo_site
    driver = browser
    driver.get(f"{base}/sign/?lang=en")
    Select(driver.find_element(By.ID, "country")).select_by_value("PL")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 15).until(lambda d: "/sign/PL/" in d.current_url)
    assert "Clean air for every school" in driver.page_source  # the demo initiative, as registered
    _fill_and_submit(driver)
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


def _fill_and_submit(driver: WebDriver) -> None:
    """The Polish form (Part B, one document type) filled in for the same person each time."""
    from selenium.webdriver.common.by import By

    for field, value in SIGNATORY:
        driver.find_element(By.ID, f"id_{field}").send_keys(value)
    driver.find_element(By.ID, "id_declaration").click()
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def _submit_without_the_widget(driver: WebDriver) -> None:
    """Send the form as it is, past the browser's checks and without a proof of work, and wait for the
    answer to load."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script(
        "document.querySelector('form[method=post]').noValidate = true;"
        "document.querySelector('altcha-widget').remove();"
        "document.body.dataset.sent = 'yes';"
    )
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script("return document.readyState === 'complete' && !document.body.dataset.sent")
    )


@axe_required
def test_the_public_pages_have_no_serious_accessibility_violations(
    strict_site: tuple[Initiative, str], browser: WebDriver, django_db_blocker: DjangoDbBlocker
) -> None:
    """axe-core (WCAG 2.1 A and AA rules) on every public page a citizen can meet: the initiative, the
    choice of nationality, forms of both parts (with a radio group and with help texts), a form with
    errors, the receipt, the duplicate (409), too many attempts (429) and outside collection (410)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    initiative, base = strict_site
    with django_db_blocker.unblock():
        # The privacy notice lists the organisers' contact persons: audit the list too.
        Initiative.objects.filter(pk=initiative.pk).update(
            contact_persons=[{"name": "Zoë Ørsted", "email": "zoe@example.eu"}]
        )
    pages = [
        "/?lang=en",
        "/?lang=el",
        "/sign/?lang=de",
        "/sign/FR/?lang=fr",
        "/sign/AT/?lang=en",
        "/sign/HU/?lang=en",
    ]
    found: dict[str, list[str]] = {}

    def audit(label: str) -> None:
        serious = axe_serious_violations(browser)
        if serious:
            found[label] = serious

    def references_resolve(label: str) -> None:
        """Every id an aria-describedby or the error summary names exists in the page (axe does not
        check aria-describedby targets)."""
        missing = browser.execute_script(
            "const named = [...document.querySelectorAll('[aria-describedby]')]"
            "  .flatMap(e => e.getAttribute('aria-describedby').split(/\\s+/))"
            "  .concat([...document.querySelectorAll('.error-summary a')].map(a => a.hash.slice(1)));"
            "return named.filter(id => !document.getElementById(id));"
        )
        if missing:
            found[f"{label}: ids named but absent"] = missing

    for path in pages:
        browser.get(f"{base}{path}")
        audit(path)
    # The markup as sent (the browser's parser mends it before axe sees it): no block inside a paragraph,
    # no label tied to nothing (a radio group has a legend instead).
    browser.get(f"{base}/sign/AT/?lang=en")
    sent = browser.execute_async_script(
        "fetch(location.href).then(r => r.text()).then(arguments[arguments.length - 1]);"
    )
    assert [p for p in re.findall(r"<p[ >].*?</p>", sent, re.S) if "<div" in p] == []
    assert re.findall(r"<label(?![^>]*\bfor=)[^>]*>", sent) == []
    # The form again, with every error shown: one with a radio group (AT) and one with help texts (FR).
    for country in ("AT", "FR"):
        browser.get(f"{base}/sign/{country}/?lang=en")
        browser.find_element(By.ID, "id_email").send_keys("not an address")
        _submit_without_the_widget(browser)
        assert "This field is required." in browser.page_source
        audit(f"/sign/{country}/ with errors")
        references_resolve(f"/sign/{country}/ with errors")
        described = browser.find_element(By.ID, "id_email").get_attribute("aria-describedby")
        assert described == "id_email_helptext id_email_error"
        if country == "AT":
            # The radio group is a fieldset with a legend; the summary's link leads to its first option.
            legend = browser.find_element(By.CSS_SELECTOR, "fieldset > legend").text
            assert legend.startswith("Type of document")
            assert browser.find_elements(By.CSS_SELECTOR, "fieldset input[type=radio]")
            assert browser.find_elements(By.CSS_SELECTOR, '.error-summary a[href="#id_document_type_0"]')

    # A statement (the widget solves the proof of work): the receipt.
    browser.get(f"{base}/sign/PL/?lang=en")
    _fill_and_submit(browser)
    WebDriverWait(browser, 60).until(lambda d: "/receipt/" in d.current_url and page_loaded(d))
    audit("receipt")
    # The same person again: 409.
    browser.get(f"{base}/sign/PL/?lang=en")
    _fill_and_submit(browser)
    # (The form's declaration says "already supported" too: wait for the page's heading.)
    WebDriverWait(browser, 60).until(
        lambda d: page_loaded(d) and "You have already supported" in d.find_element(By.TAG_NAME, "h1").text
    )
    audit("duplicate (409)")
    # Past the per-address limit: 429 (a few more tries, should a new minute have begun meanwhile).
    for _attempt in range(2 * ADDRESS_LIMIT + 2):
        browser.get(f"{base}/sign/PL/?lang=en")
        _submit_without_the_widget(browser)
        if "Too many attempts" in browser.page_source:
            break
    assert "Too many attempts" in browser.page_source
    audit("rate limited (429)")
    # Collection paused: 410.
    with django_db_blocker.unblock():
        Initiative.objects.filter(pk=initiative.pk).update(state="paused")
    browser.get(f"{base}/sign/FR/?lang=en")
    assert "not collecting" in browser.page_source
    audit("not collecting (410)")
    assert not found, found


SCREENSHOTS = SCREENSHOT_FOLDER
# A campaign under way: Malta and Luxembourg over their minimum, the rest on the way.
CAMPAIGN = {"DE": 180_400, "FR": 97_250, "IT": 61_030, "PL": 38_900, "ES": 20_115, "MT": 4_410, "LU": 4_500}


@pytest.fixture
def campaign_site(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker, keystore: Path
) -> Iterator[tuple[Initiative, str]]:
    """The demo initiative with counts published where its gunicorn reads them (this run's cache)."""
    with _served(django_db_blocker, keystore, demo=True, CACHE_KEY_PREFIX=RUN_CACHE_PREFIX) as served:
        initiative = served[0]
        with initiative:
            cache.set(
                COUNTS_CACHE_KEY,
                {
                    "schema": initiative.schema_name,
                    "total": sum(CAMPAIGN.values()),
                    "by_country": CAMPAIGN,
                    "counted_at": datetime.datetime.now(datetime.UTC).isoformat(),
                },
            )
        yield served


@axe_required
def test_screenshots_of_the_public_home_page_at_phone_and_desktop_widths(
    campaign_site: tuple[Initiative, str], browser: WebDriver
) -> None:
    """The home page at 375 px (a phone) and 1280 px (a laptop), whole, into .data/screenshots/ (for a
    person to look at); at each width nothing scrolls sideways and axe finds nothing serious."""
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _initiative, base = campaign_site
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (375, 1280):
        browser.set_window_size(width, 900)
        browser.get(f"{base}/?lang=en")
        assert f"{sum(CAMPAIGN.values()):,}" in browser.page_source  # the published total, as shown
        inner = browser.execute_script("return window.innerWidth")
        # The window's frame, if any, comes on top of the page's width.
        browser.set_window_size(2 * width - inner, 900)
        assert browser.execute_script("return window.innerWidth") == width
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        ), f"the page scrolls sideways at {width} px"
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(
            2 * width - inner, height + 900 - browser.execute_script("return innerHeight")
        )
        path = SCREENSHOTS / f"home-{width}.png"
        assert browser.save_screenshot(str(path))
        with Image.open(path) as image:
            assert image.width == width and image.height >= height - 1
        violations = axe_serious_violations(browser)
        assert violations == [], (width, violations)

    # The receipt on a phone, and as printed (the print style: no navigation, black on white).
    browser.set_window_size(375, 900)
    browser.get(f"{base}/sign/PL/?lang=en")
    assert browser.save_screenshot(str(SCREENSHOTS / "sign-375.png"))
    _fill_and_submit(browser)
    WebDriverWait(browser, 60).until(lambda d: "/receipt/" in d.current_url and page_loaded(d))
    assert browser.save_screenshot(str(SCREENSHOTS / "receipt-375.png"))
    browser.set_window_size(1280, 900)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert browser.save_screenshot(str(SCREENSHOTS / "receipt-print.png"))
    footer_shown = browser.execute_script(
        "return getComputedStyle(document.querySelector('.site-footer')).display !== 'none'"
    )
    assert not footer_shown
    assert browser.find_element(By.CSS_SELECTOR, ".receipt-id code").is_displayed()
