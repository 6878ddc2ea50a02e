"""The operator console's second factor, over HTTP: the password alone reaches nothing, a TOTP code or a
backup code signs in, wrong codes are refused and audited, an operator without a device enrols, a
certificate confirmation asks for the code again after 15 minutes, and resetting someone's second factor
(console and command) removes their devices and ends their sessions."""

from __future__ import annotations

import base64
import datetime
import html
import importlib
import io
import json
import re
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django_otp.oath import TOTP

from eci_crypto.certificates import certificate_fingerprint, certificate_load, self_signed_certificate_create
from tenants.authorities import authority_register
from tenants.keyring.account_secrets import SealedSecretError
from tenants.models import AuditEvent, BackupCode, BackupCodeDevice, CompetentAuthority, SealedTOTPDevice
from tenants.second_factor import code_check
from tests.second_factor import backup_codes, totp_code, totp_device, two_step_sign_in, verified_login

pytestmark = pytest.mark.django_db

LOGIN = "/operator/login/"
CODE = "/operator/login/code/"
ENROL = "/operator/login/enrol/"
CONSOLE = "/operator/"
PASSWORD = "a-long-operator-password"


@pytest.fixture(autouse=True)
def _quick_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _staff(username: str = "night-shift", **fields: Any) -> User:
    return get_user_model().objects.create_user(
        username, password=PASSWORD, is_staff=True, is_superuser=True, **fields
    )


def _password_step(client: Client, user: User) -> Any:
    return client.post(LOGIN, {"username": user.username, "password": PASSWORD, "next": CONSOLE})


def _failures(user: User) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="second_factor.failed", details__user_id=user.pk))


def _text(response: Any) -> str:
    return html.unescape(response.content.decode())


def test_a_password_alone_does_not_reach_the_console(platform_client: Client) -> None:
    user = _staff()
    totp_device(user)
    response = _password_step(platform_client, user)
    assert (response.status_code, response["Location"]) == (302, CODE)
    for page in (CONSOLE, "/operator/tenants/initiative/", "/operator/auth/user/"):
        answer = platform_client.get(page)
        assert answer.status_code == 302 and answer["Location"].startswith(LOGIN), page
    assert "_auth_user_id" not in platform_client.session  # nobody is signed in between the steps


def test_a_current_code_signs_in_and_a_used_one_does_not_again(platform_client: Client) -> None:
    user = _staff()
    device = totp_device(user)
    assert _password_step(platform_client, user).status_code == 302
    code = totp_code(device)
    response = platform_client.post(CODE, {"code": code})
    assert (response.status_code, response["Location"]) == (303, CONSOLE)
    assert platform_client.get(CONSOLE).status_code == 200

    replay = Client(HTTP_HOST=settings.PLATFORM_DOMAIN)
    assert _password_step(replay, user).status_code == 302
    assert replay.post(CODE, {"code": code}).status_code == 400  # a TOTP code is good once
    assert replay.get(CONSOLE).status_code == 302


def test_a_session_key_planted_before_the_sign_in_is_worth_nothing_after_it() -> None:
    """Session fixation: the key a victim is given before signing in is replaced at the password step
    and again at the code step; whoever planted it is not signed in."""
    user = _staff()
    attacker = Client(HTTP_HOST=settings.PLATFORM_DOMAIN)
    planted = attacker.session.session_key  # a stored session, its cookie set in the attacker's client
    assert planted
    victim = Client(HTTP_HOST=settings.PLATFORM_DOMAIN)
    victim.cookies[settings.SESSION_COOKIE_NAME] = planted
    assert _password_step(victim, user).status_code == 302
    pending = victim.cookies[settings.SESSION_COOKIE_NAME].value
    assert pending != planted
    assert victim.post(CODE, {"code": totp_code(totp_device(user))}).status_code == 303
    signed_in = victim.cookies[settings.SESSION_COOKIE_NAME].value
    assert signed_in not in (planted, pending)
    assert victim.get(CONSOLE).status_code == 200
    assert attacker.get(CONSOLE).status_code == 302


@pytest.mark.parametrize("typed", ["000000", "12345", "abc", "", " ", "9" * 5000, "zzzzzzzz", "é" * 6])
def test_a_wrong_or_malformed_code_is_a_400_and_audited_without_the_code(
    platform_client: Client, typed: str
) -> None:
    user = _staff()
    device = totp_device(user)
    if typed == "000000" and totp_code(device) == "000000":
        pytest.skip("the one time in a million the current code is 000000")
    assert _password_step(platform_client, user).status_code == 302
    response = platform_client.post(CODE, {"code": typed})
    assert response.status_code == 400
    assert platform_client.get(CONSOLE).status_code == 302
    if typed.strip():  # an empty field is no attempt
        events = _failures(user)
        assert len(events) == 1 and events[0].details["stage"] == "sign-in"
        assert typed not in json.dumps(events[0].details) and events[0].actor == user.username


def test_five_wrong_codes_send_back_to_the_password(platform_client: Client) -> None:
    user = _staff()
    device = totp_device(user)
    assert _password_step(platform_client, user).status_code == 302
    answers = [platform_client.post(CODE, {"code": "abcdefgh"}).status_code for _ in range(5)]
    assert answers == [400, 400, 400, 400, 303]
    # The pending sign-in is gone: even the right code does not sign in now.
    assert platform_client.post(CODE, {"code": totp_code(device)})["Location"] == LOGIN
    assert platform_client.get(CONSOLE).status_code == 302


def test_a_backup_code_signs_in_once(platform_client: Client) -> None:
    user = _staff()
    totp_device(user)
    first, second = backup_codes(user)
    assert _password_step(platform_client, user).status_code == 302
    # As typed from paper: upper case, with a space.
    response = platform_client.post(CODE, {"code": f"{first[:4].upper()} {first[4:].upper()}"})
    assert (response.status_code, response["Location"]) == (303, CONSOLE)
    used = AuditEvent.objects.get(action="second_factor.backup_code_used")
    assert used.details == {"user_id": user.pk, "site": "operator", "remaining": 1}

    again = Client(HTTP_HOST=settings.PLATFORM_DOMAIN)
    assert _password_step(again, user).status_code == 302
    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC), tick=False) as traveller:
        assert again.post(CODE, {"code": first}).status_code == 400
        # django-otp backs off after a wrong code (1 s, then 2, 4, ...): answered 429, not checked.
        throttled = again.post(CODE, {"code": second})
        assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
        traveller.shift(datetime.timedelta(seconds=3))
        assert again.post(CODE, {"code": second}).status_code == 303
    assert not BackupCode.objects.filter(device__user=user).exists()


def test_an_operator_without_a_device_enrols_after_the_password(platform_client: Client) -> None:
    user = _staff()
    assert _password_step(platform_client, user).status_code == 302
    assert platform_client.get(CODE)["Location"] == ENROL
    page = platform_client.get(ENROL)
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    text = _text(page)
    assert "<svg" in text and "otpauth" not in page.request["PATH_INFO"]
    secret = re.search(r'<code class="secret"[^>]*>([A-Z2-7 ]+)</code>', text)
    assert secret is not None
    key = base64.b32decode(secret.group(1).replace(" ", ""))
    assert platform_client.post(ENROL, {"code": "123"}).status_code == 400
    assert _failures(user)[0].details["stage"] == "enrolment"
    code = f"{TOTP(key).token():06d}"
    done = platform_client.post(ENROL, {"code": code})
    assert done.status_code == 200 and "no-store" in done["Cache-Control"]
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert len(codes) == 10
    assert platform_client.get(CONSOLE).status_code == 200
    assert SealedTOTPDevice.objects.get(user=user, confirmed=True).bin_key == key
    event = AuditEvent.objects.get(action="second_factor.enrolled")
    assert event.details == {"user_id": user.pk, "site": "operator", "backup_codes": 10}
    assert not any(code in json.dumps(event.details) for code in codes)
    # The enrolment page is over: it never shows the secret or the codes again.
    assert platform_client.get(ENROL)["Location"] == LOGIN


def _unconfirmed_authority() -> tuple[CompetentAuthority, str]:
    certificate = self_signed_certificate_create("Second factor test authority")[1]
    CompetentAuthority.objects.filter(country="MT").delete()
    authority = authority_register(country="MT", certificate_pem=certificate, actor="another-operator")
    return authority, certificate_fingerprint(certificate_load(certificate))


def test_a_certificate_confirmation_asks_for_the_code_again_after_15_minutes(platform_client: Client) -> None:
    authority, fingerprint = _unconfirmed_authority()
    user = _staff()
    confirm = f"/operator/tenants/competentauthority/{authority.pk}/confirm/"
    with time_machine.travel(datetime.datetime.now(tz=datetime.UTC), tick=True) as traveller:
        assert two_step_sign_in(platform_client, LOGIN, user, PASSWORD).status_code == 303
        traveller.shift(datetime.timedelta(minutes=16))
        prompt = platform_client.post(confirm, {"fingerprint": fingerprint})
        assert prompt.status_code == 200 and "second factor again" in _text(prompt)
        assert f'name="fingerprint" value="{fingerprint}"' in prompt.content.decode()  # sent again with it
        authority.refresh_from_db()
        assert authority.confirmed_at is None
        wrong = platform_client.post(confirm, {"fingerprint": fingerprint, "second_factor_code": "111111x"})
        assert wrong.status_code == 400 and _failures(user)[-1].details["stage"] == "re-verification"
        authority.refresh_from_db()
        assert authority.confirmed_at is None
        code = totp_code(totp_device(user))
        done = platform_client.post(confirm, {"fingerprint": fingerprint, "second_factor_code": code})
        assert done.status_code == 302
        authority.refresh_from_db()
        assert authority.confirmed_at is not None
        # Fresh again: the next sensitive action within 15 minutes goes straight through.
        traveller.shift(datetime.timedelta(minutes=14))
        assert platform_client.get(confirm).status_code == 200


def test_within_15_minutes_a_confirmation_goes_straight_through(operator: Client) -> None:
    authority, fingerprint = _unconfirmed_authority()
    response = operator.post(
        f"/operator/tenants/competentauthority/{authority.pk}/confirm/", {"fingerprint": fingerprint}
    )
    assert response.status_code == 302


# -- resetting someone's second factor ----------------------------------------------------------------------


def test_an_operator_resets_a_second_factor_ending_sessions_and_forcing_enrolment(operator: Client) -> None:
    victim = _staff("lost-phone")
    device = totp_device(victim)
    backup_codes(victim)
    theirs = Client(HTTP_HOST=settings.PLATFORM_DOMAIN)
    assert two_step_sign_in(theirs, LOGIN, victim, PASSWORD).status_code == 303
    assert theirs.get(CONSOLE).status_code == 200

    old_code = totp_code(device)  # what the lost phone shows
    url = f"/operator/auth/user/{victim.pk}/second-factor/"
    page = operator.get(url)
    assert page.status_code == 200 and "signs in with an authenticator app" in _text(page)
    assert url in operator.get(f"/operator/auth/user/{victim.pk}/change/").content.decode()
    response = operator.post(url)
    assert response.status_code == 302
    assert not SealedTOTPDevice.objects.filter(user=victim).exists()
    assert not BackupCodeDevice.objects.filter(user=victim).exists()
    assert theirs.get(CONSOLE).status_code == 302  # their session ended
    event = AuditEvent.objects.get(action="second_factor.reset")
    assert event.actor == "op"
    assert event.details == {"user_id": victim.pk, "devices": 2, "sessions_ended": 1}

    # The old device's codes mean nothing now; the next sign-in enrols.
    again = Client(HTTP_HOST=settings.PLATFORM_DOMAIN)
    assert _password_step(again, victim).status_code == 302
    assert again.post(CODE, {"code": old_code})["Location"] == ENROL


def test_a_reset_needs_the_permission_and_a_known_user(platform_client: Client, operator: Client) -> None:
    victim = _staff("someone")
    totp_device(victim)
    viewer = get_user_model().objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_user"))
    verified_login(platform_client, viewer)
    assert platform_client.post(f"/operator/auth/user/{victim.pk}/second-factor/").status_code == 403
    assert operator.post("/operator/auth/user/999999999/second-factor/").status_code == 404
    assert SealedTOTPDevice.objects.filter(user=victim).exists()
    assert not AuditEvent.objects.filter(action="second_factor.reset").exists()


def test_reset_second_factor_command(platform_client: Client) -> None:
    victim = _staff("by-command")
    totp_device(victim)
    verified_login(platform_client, victim)
    stdout = io.StringIO()
    call_command("reset_second_factor", "--user", "by-command", "--json", stdout=stdout)
    assert json.loads(stdout.getvalue()) == {"user_id": victim.pk, "devices_removed": 1, "sessions_ended": 1}
    assert not SealedTOTPDevice.objects.filter(user=victim).exists()
    assert platform_client.get(CONSOLE).status_code == 302
    assert AuditEvent.objects.get(action="second_factor.reset").actor == "command-line"

    refused = io.StringIO()
    with pytest.raises(CommandError, match="No user with that user name"):
        call_command("reset_second_factor", "--user", "nobody-at-all", "--json", stdout=refused)
    assert json.loads(refused.getvalue())["errors"] == {"user": ["Unknown."]}
    assert "nobody-at-all" not in refused.getvalue()
    assert AuditEvent.objects.filter(action="second_factor.reset").count() == 1


# -- the secrets at rest ------------------------------------------------------------------------------------


def test_a_copy_of_the_database_holds_no_secret_and_no_backup_code() -> None:
    """The TOTP secret is sealed under a key from the key provider, bound to its account; backup codes are
    HMACs. Neither is in a row as it is, and a sealed secret moved to another account does not open."""
    user, other = _staff(), _staff("another-operator")
    device = totp_device(user)
    codes = backup_codes(user, 3)
    secret = device.bin_key
    with connection.cursor() as cursor:
        cursor.execute("SELECT sealed_key FROM tenants_sealedtotpdevice WHERE id = %s", [device.pk])
        (stored,) = cursor.fetchone()
        cursor.execute("SELECT digest FROM tenants_backupcode")
        digests = [row[0] for row in cursor.fetchall()]
    assert secret not in bytes(stored) and secret.hex().encode() not in bytes(stored)
    assert len(digests) == 3 and not set(codes) & set(digests)
    assert not any(code in digest for code in codes for digest in digests)
    moved = SealedTOTPDevice.objects.create(user=other, name="moved", confirmed=True, sealed_key=stored)
    with pytest.raises(SealedSecretError):
        moved.bin_key  # noqa: B018
    tampered = bytearray(stored)
    tampered[-1] ^= 1
    device.sealed_key = bytes(tampered)
    with pytest.raises(SealedSecretError):
        device.bin_key  # noqa: B018


def test_devices_made_before_move_to_sealed_secrets_and_still_accept_their_codes() -> None:
    from django.apps import apps
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    migration = importlib.import_module("tenants.migrations.0006_sealed_second_factor")
    user = _staff()
    old = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    static = StaticDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    static.token_set.create(token="abcdefgh")
    migration._devices_move(apps, None)
    assert not TOTPDevice.objects.exists() and not StaticDevice.objects.exists()
    moved = SealedTOTPDevice.objects.get(user=user)
    assert moved.bin_key == old.bin_key and moved.name == "phone"
    assert code_check(user, totp_code(moved)).device == moved
    assert code_check(user, "ABCD EFGH").device is not None  # typed from paper
    assert not BackupCode.objects.filter(device__user=user).exists()  # spent
