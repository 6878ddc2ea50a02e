"""An organiser's whole way in, in a real browser against gunicorn: the operator's `invite_organiser`
sends the invitation through a real SMTP server (the development sink, which keeps each message as a
.eml file), the link from that message sets a password, the authenticator is set up from the key the
page shows, backup codes are shown once, then sign-out, sign-in with the password and a later code, and
sign-out again. axe-core audits every page on the way (REQ-22)."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from django.conf import settings
from django_otp.oath import TOTP
from pytest_django.plugin import DjangoDbBlocker

from eci_platform.embedded import REPOSITORY_ROOT
from eci_platform.mail_sink import MailSink
from tenants.models import AuditEvent, Initiative, OrganiserMembership
from tenants.onboarding import initiative_onboard
from tests.browser import axe_required, axe_serious_violations, browser_required, chromium, page_loaded
from tests.conftest import onboarding_request
from tests.exports.test_organiser_accounts import LINK
from tests.processes import committed_initiative_remove, gunicorn, platform_environment

pytestmark = [browser_required, axe_required]

ADDRESS = "new.organiser@example.org"
PASSWORD = "seven lanterns over a quiet harbour"


@pytest.fixture
def organiser_site(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker, keystore: Path, tmp_path: Path
) -> Iterator[tuple[Initiative, str, dict[str, str], Path]]:
    """A committed initiative served by gunicorn, e-mail going to a sink that keeps .eml files."""
    mail = tmp_path / "mail"
    sink = MailSink(mail, announce=lambda line: None)
    with django_db_blocker.unblock():
        initiative = initiative_onboard(onboarding_request("organiser", 930002), actor="t", provision="now")
    try:
        environment = platform_environment(keystore, EMAIL_URL=sink.url)
        with gunicorn(environment, "--workers", "1", "--threads", "4") as port:
            # The links in the messages name the port the site is served on.
            environment = {**environment, "PUBLIC_URL_PORT": str(port)}
            yield initiative, f"http://{initiative.slug}.{settings.PLATFORM_DOMAIN}:{port}", environment, mail
    finally:
        sink.stop()
        with django_db_blocker.unblock():
            committed_initiative_remove(initiative)


def _code_now(secret_base32: str, after_step: int = -1) -> tuple[str, int]:
    """What an authenticator app set up with this key shows, waiting for a time step later than
    `after_step` (a code is accepted once)."""
    letters = secret_base32.replace(" ", "").upper()
    key = base64.b32decode(letters + "=" * (-len(letters) % 8))
    totp = TOTP(key)
    while totp.t() <= after_step:
        time.sleep(0.5)
        totp = TOTP(key)
    return f"{totp.token():06d}", totp.t()


def test_an_invited_organiser_joins_sets_up_the_second_factor_and_signs_in_and_out(
    organiser_site: tuple[Initiative, str, dict[str, str], Path], django_db_blocker: DjangoDbBlocker
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    initiative, base, environment, mail = organiser_site
    # The operator invites, as on the command line.
    invited = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "invite_organiser",
            "--initiative",
            initiative.slug,
            "--email",
            ADDRESS,
        ],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert invited.returncode == 0, invited.stderr
    (kept,) = mail.glob("*.eml")
    message = message_from_bytes(kept.read_bytes(), policy=policy.default)
    assert message["To"] == ADDRESS
    body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    found = LINK.search(body)
    assert found, body
    link = found.group(0)
    assert link.startswith(f"{base}/manage/invitation/")

    found_violations: dict[str, list[str]] = {}

    def audit(label: str) -> None:
        WebDriverWait(driver, 15).until(page_loaded)
        serious = axe_serious_violations(driver)
        if serious:
            found_violations[label] = serious

    def heading() -> str:
        return str(driver.find_element(By.TAG_NAME, "h1").text)

    def press(selector: str, by: str = By.CSS_SELECTOR) -> None:
        """Click, then wait for the next page: the old one, marked, stays 'complete' until it is replaced
        (a mark in the window, since chromedriver may fail on a stale element instead of saying so)."""
        driver.execute_script("window.pressedOnThisPage = true;")
        driver.find_element(by, selector).click()
        WebDriverWait(driver, 15).until(
            lambda d: d.execute_script(
                "return window.pressedOnThisPage === undefined && document.readyState === 'complete'"
            )
        )

    def submit() -> None:
        press("main form[method=post] button[type=submit]")

    with chromium() as driver:
        # The link from the message: the token leaves the address bar at once.
        driver.get(link)
        assert driver.current_url == f"{base}/manage/invitation/accept/"
        assert ADDRESS in driver.page_source
        audit("invitation")
        # A password Django's validators refuse first: the page says why, nothing is made.
        driver.find_element(By.ID, "id_new_password1").send_keys("short")
        driver.find_element(By.ID, "id_new_password2").send_keys("short")
        submit()
        assert "too short" in driver.page_source
        audit("invitation with errors")
        driver.find_element(By.ID, "id_new_password1").send_keys(PASSWORD)
        driver.find_element(By.ID, "id_new_password2").send_keys(PASSWORD)
        submit()

        # Straight on to the second factor: the key as a QR code and as text.
        assert driver.current_url == f"{base}/manage/login/enrol/"
        assert heading() == "Set up your second factor"
        assert driver.find_elements(By.CSS_SELECTOR, "figure.qr-code svg")
        assert driver.page_source.count("You are now an organiser of this initiative.") == 1
        audit("enrolment")
        secret = driver.find_element(By.CSS_SELECTOR, "code.secret").text
        driver.find_element(By.ID, "id_code").send_keys(
            "000000" if _code_now(secret)[0] != "000000" else "111111"
        )
        submit()
        assert heading() == "Set up your second factor" and "aria-invalid" in driver.page_source
        audit("enrolment with a wrong code")
        code, used_step = _code_now(secret)
        driver.find_element(By.ID, "id_code").send_keys(code)
        submit()
        assert heading() == "Your backup codes"
        codes = driver.find_elements(By.CSS_SELECTOR, "ul.backup-codes code")
        assert len(codes) >= 8 and all(len(item.text) >= 8 for item in codes)
        audit("backup codes")
        press("I have saved the codes", By.PARTIAL_LINK_TEXT)
        assert driver.current_url.startswith(f"{base}/manage/")
        assert "/login/" not in driver.current_url
        audit("first page after enrolment")

        # Sign out.
        press("form[action='/manage/logout/'] button")
        assert driver.current_url.startswith(f"{base}/manage/login/")
        audit("signed out")
        driver.get(f"{base}/manage/exports/")
        assert driver.current_url.startswith(f"{base}/manage/login/")  # really out

        # Sign in: the password, then a code from a later time step (each code works once).
        driver.find_element(By.ID, "id_username").send_keys(ADDRESS)
        driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
        submit()
        assert driver.current_url == f"{base}/manage/login/code/"
        audit("code step")
        code, _ = _code_now(secret, after_step=used_step)
        driver.find_element(By.ID, "id_code").send_keys(code)
        submit()
        assert driver.current_url == f"{base}/manage/exports/"  # where it was asked for
        audit("signed in")
        press("form[action='/manage/logout/'] button")
        assert driver.current_url.startswith(f"{base}/manage/login/")

    assert not found_violations, found_violations
    with django_db_blocker.unblock():
        assert OrganiserMembership.objects.filter(user__username=ADDRESS, initiative=initiative).exists()
        actions = Counter(
            AuditEvent.objects.filter(initiative_slug=initiative.slug).values_list("action", flat=True)
        )
    # Twice in (after enrolment, after the code) and twice out; never a password or a code in the log.
    assert (
        actions["organiser.invited"] == actions["organiser.joined"] == actions["second_factor.enrolled"] == 1
    )
    assert actions["signin.succeeded"] == actions["signout"] == 2
    with django_db_blocker.unblock():
        logged = str(list(AuditEvent.objects.filter(initiative_slug=initiative.slug).values("details")))
    assert PASSWORD not in logged and secret not in logged
