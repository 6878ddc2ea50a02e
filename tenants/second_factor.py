"""The second factor of everyone who signs in (operators on the console, organisers on /manage/), with
django-otp: a TOTP device and single-use backup codes (a django-otp static device).

Signing in takes two steps. The password step does not sign anyone in: it only notes in the session who
typed a right password, on which site, until when and where to go next (`pending_start`). The code step
then signs in with Django's `login` and django-otp's `login` together (`sign_in_complete`), so a password
alone never yields an authenticated session. An account without a confirmed device enrols at that point:
a secret kept in the pending state (the session, never a URL), confirmed by a current code, then backup
codes shown once.

The session also records when the second factor was last typed (`verified_stamp`): sensitive actions ask
for it again once that is older than SECOND_FACTOR_REVERIFY_SECONDS (`verified_recently`).

Audit events: second_factor.enrolled, second_factor.failed, second_factor.backup_code_used,
second_factor.reset; never a code or a secret.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from typing import Any

import segno
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django_otp import devices_for_user, user_has_device, verify_token
from django_otp import login as otp_login
from django_otp.models import Device
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from tenants.account_notices import AccountChange, account_change_notify
from tenants.audit import audit_record
from tenants.keyring.account_secrets import backup_code_digest
from tenants.models import BackupCode, BackupCodeDevice, Initiative, SealedTOTPDevice
from tenants.sessions import user_sessions_end

PENDING_KEY = "second_factor_pending"
VERIFIED_AT_KEY = "second_factor_verified_at"
# Wrong codes in one pending sign-in before it starts again with the password (the devices' own
# exponential back-off, django-otp's ThrottlingMixin, comes on top).
PENDING_FAILURES = 5
# The site a session belongs to: the operator console, or an initiative's schema name.
OPERATOR_SITE = "operator"

TOTP_CODE = re.compile(r"\d{6}")
BACKUP_CODE = re.compile(r"[a-z2-7]{8}")  # django-otp's StaticToken.random_token(): 40 random bits
CODE_MAX_LENGTH = 32


class AlreadyEnrolledError(Exception):
    """The account got a confirmed device meanwhile (another sign-in enrolled first)."""


# -- the pending sign-in (between the password and the code) ------------------------------------------------


@dataclass(frozen=True)
class PendingSignIn:
    user: Any  # the user model's instance
    backend: str
    next_url: str
    enrolling: bool


def pending_start(request: HttpRequest, user: User, *, site: str, next_url: str) -> None:
    """After a right password: remember who, where and until when; nobody is signed in yet. A new
    session key, as Django's login gives, so a key planted before the password is worthless."""
    request.session.cycle_key()
    request.session[PENDING_KEY] = {
        "user": str(user.pk),
        "backend": getattr(user, "backend", settings.AUTHENTICATION_BACKENDS[0]),
        # A password changed between the two steps ends the pending sign-in (like Django's sessions).
        "hash": user.get_session_auth_hash(),
        "site": site,
        "next": next_url,
        "started": time.time(),
        "failures": 0,
    }


def pending_sign_in(request: HttpRequest, *, site: str) -> PendingSignIn | None:
    """The pending sign-in of this session on this site, if any and still good."""
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict) or pending.get("site") != site:
        return None
    if time.time() - float(pending.get("started", 0)) > settings.SECOND_FACTOR_PENDING_SECONDS:
        pending_clear(request)
        return None
    user = get_user_model().objects.filter(pk=str(pending.get("user")), is_active=True).first()
    if user is None or user.get_session_auth_hash() != pending.get("hash"):
        pending_clear(request)
        return None
    return PendingSignIn(
        user=user,
        backend=str(pending["backend"]),
        next_url=str(pending["next"]),
        enrolling=not user_has_device(user, confirmed=True),
    )


def pending_clear(request: HttpRequest) -> None:
    request.session.pop(PENDING_KEY, None)


def pending_failure_count(request: HttpRequest) -> bool:
    """Count a wrong code against the pending sign-in; False once it is used up (then it is gone)."""
    pending = request.session[PENDING_KEY]
    pending["failures"] = int(pending.get("failures", 0)) + 1
    request.session.modified = True
    if pending["failures"] >= PENDING_FAILURES:
        pending_clear(request)
        return False
    return True


def enrolment_key(request: HttpRequest) -> str:
    """The TOTP secret being enrolled (hex, as django-otp stores it): made once per pending sign-in and
    kept in the session until confirmed."""
    pending = request.session[PENDING_KEY]
    if not pending.get("enrol_key"):
        pending["enrol_key"] = random_hex(20)  # 160 bits, RFC 4226's recommendation
        request.session.modified = True
    return str(pending["enrol_key"])


# -- codes --------------------------------------------------------------------------------------------------


def code_normalise(code: str) -> str:
    """What people type: spaces and dashes anywhere, backup codes in either case."""
    return re.sub(r"[\s-]", "", code).lower()[:CODE_MAX_LENGTH]


@dataclass(frozen=True)
class CodeCheck:
    device: Device | None  # the device that accepted the code
    throttled: bool  # django-otp's back-off refused to check: wait
    kind: str  # "totp", "backup" or "malformed"


def _devices(user: User, kind: str) -> list[Device]:
    model = SealedTOTPDevice if kind == "totp" else BackupCodeDevice
    return list(model.objects.devices_for_user(user, confirmed=True))


def code_check(user: User, code: str) -> CodeCheck:
    """A current TOTP code or an unused backup code of `user`, checked on the devices of that kind (a
    backup code typed must not slow down the authenticator app's device, nor the other way round)."""
    code = code_normalise(code)
    kind = "totp" if TOTP_CODE.fullmatch(code) else "backup" if BACKUP_CODE.fullmatch(code) else "malformed"
    if kind == "malformed":
        return CodeCheck(None, throttled=False, kind=kind)
    devices = _devices(user, kind)
    allowed = [device for device in devices if device.verify_is_allowed()[0]]
    for device in allowed:
        # django-otp's verify_token locks the device row: a backup code is good once, a TOTP code once.
        verified = verify_token(user, device.persistent_id, code)
        if verified is not None:
            return CodeCheck(verified, throttled=False, kind=kind)
    return CodeCheck(None, throttled=bool(devices) and not allowed, kind=kind)


@dataclass(frozen=True)
class Provisioning:
    otpauth_url: str
    secret_base32: str
    qr_svg: str


def totp_provisioning(user: User, key: str) -> Provisioning:
    """What an authenticator app needs: the otpauth:// URL as a QR code (inline SVG: no request for an
    image that would carry the secret) and the secret as base32 text to type in."""
    device = TOTPDevice(user=user, key=key)  # not saved, never sealed: only for django-otp's URL format
    url = device.config_url
    svg = segno.make(url, error="m").svg_inline(
        scale=4, border=4, light="#fff", title="QR code of the authenticator app set-up", svgclass="qr-code"
    )
    secret = base64.b32encode(device.bin_key).decode()
    return Provisioning(url, " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)), svg)


@dataclass(frozen=True)
class Enrolment:
    device: SealedTOTPDevice
    backup_codes: list[str]


def second_factor_enrol(
    user: User, *, key: str, code: str, actor: str, initiative: Initiative | None, site: str
) -> Enrolment | None:
    """Confirm the secret in enrolment with a current code: a confirmed TOTP device and a fresh set of
    backup codes, in one transaction. None for a wrong code (audited). The backup codes are returned
    once and never again (django-otp keeps them to compare)."""
    code = code_normalise(code)
    device = SealedTOTPDevice.for_secret(user, bytes.fromhex(key), name="Authenticator app", confirmed=True)
    totp = TOTP(bytes.fromhex(key), device.step, device.t0, device.digits, device.drift)
    # Checked before any row exists (TOTPDevice.verify_token would save the device, right or wrong).
    if not (TOTP_CODE.fullmatch(code) and totp.verify(int(code), tolerance=device.tolerance)):
        audit_second_factor_failed(user, actor=actor, initiative=initiative, site=site, stage="enrolment")
        return None
    device.last_t, device.drift = totp.t(), totp.drift  # the code just typed is not good a second time
    with transaction.atomic():
        # One enrolment at a time per account: two sign-ins racing must not both add a device.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        if user_has_device(user, confirmed=True):
            raise AlreadyEnrolledError
        for leftover in devices_for_user(user, confirmed=None):  # unconfirmed ones, made elsewhere
            leftover.delete()
        device.save()
        codes = backup_codes_replace(user)
        audit_record(
            actor=actor,
            action="second_factor.enrolled",
            initiative=initiative,
            user_id=user.pk,
            site=_site_kind(site),
            backup_codes=len(codes),
        )
        account_change_notify(user.pk, AccountChange.SECOND_FACTOR_ENROLLED)
    return Enrolment(device, codes)


def backup_codes_replace(user: User, count: int | None = None) -> list[str]:
    """A new set of backup codes (any earlier set is gone), kept as HMACs; the codes are returned once."""
    BackupCodeDevice.objects.filter(user=user).delete()
    device = BackupCodeDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    # django-otp's format: 8 characters of base32, 40 random bits.
    codes = [StaticToken.random_token() for _ in range(count or settings.SECOND_FACTOR_BACKUP_CODES)]
    BackupCode.objects.bulk_create(
        [BackupCode(device=device, digest=backup_code_digest(code, user_id=user.pk)) for code in codes]
    )
    return codes


# -- the signed-in session ----------------------------------------------------------------------------------


def sign_in_complete(request: HttpRequest, pending: PendingSignIn, device: Device) -> None:
    """Both factors given: Django's login (a new session key), the device in the session (what
    `request.user.is_verified()` reads) and the time of the verification."""
    pending_clear(request)
    auth.login(request, pending.user, backend=pending.backend)
    otp_login(request, device)
    verified_stamp(request)


def verified_stamp(request: HttpRequest) -> None:
    request.session[VERIFIED_AT_KEY] = time.time()


def verified_recently(request: HttpRequest) -> bool:
    """The second factor was typed in this session within SECOND_FACTOR_REVERIFY_SECONDS."""
    verified_at = request.session.get(VERIFIED_AT_KEY)
    if not isinstance(verified_at, int | float):
        return False
    return 0 <= time.time() - verified_at <= settings.SECOND_FACTOR_REVERIFY_SECONDS


def is_verified(request: HttpRequest) -> bool:
    """Signed in with both factors (django-otp's middleware sets `is_verified`)."""
    check = getattr(request.user, "is_verified", None)
    return bool(request.user.is_authenticated and check is not None and check())


# -- resetting someone's second factor ----------------------------------------------------------------------


@dataclass(frozen=True)
class SecondFactorReset:
    user_id: int
    devices: int
    sessions: int


def second_factor_reset(user: User, *, actor: str) -> SecondFactorReset:
    """An operator's action: delete all of the user's devices (TOTP and backup codes) and end their
    sessions; they enrol again at their next sign-in."""
    with transaction.atomic():
        devices = list(devices_for_user(user, confirmed=None))
        for device in devices:
            device.delete()
        sessions = user_sessions_end(int(user.pk))
        audit_record(
            actor=actor,
            action="second_factor.reset",
            user_id=user.pk,
            devices=len(devices),
            sessions_ended=sessions,
        )
        account_change_notify(user.pk, AccountChange.SECOND_FACTOR_RESET)
    return SecondFactorReset(int(user.pk), len(devices), sessions)


# -- audit --------------------------------------------------------------------------------------------------


def _site_kind(site: str) -> str:
    return OPERATOR_SITE if site == OPERATOR_SITE else "manage"


def audit_second_factor_failed(
    user: User, *, actor: str, initiative: Initiative | None, site: str, stage: str
) -> None:
    """A wrong, malformed or throttled code (stage: sign-in, enrolment, re-verification); never the code."""
    audit_record(
        actor=actor,
        action="second_factor.failed",
        initiative=initiative,
        user_id=user.pk,
        site=_site_kind(site),
        stage=stage,
    )


def audit_backup_code_used(
    user: User, device: Device, *, actor: str, initiative: Initiative | None, site: str
) -> None:
    """A backup code was spent: worth knowing (a lost phone, or a stolen sheet), and how many are left."""
    remaining = BackupCode.objects.filter(device_id=device.pk).count()
    audit_record(
        actor=actor,
        action="second_factor.backup_code_used",
        initiative=initiative,
        user_id=user.pk,
        site=_site_kind(site),
        remaining=remaining,
    )
