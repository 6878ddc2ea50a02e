"""Second-factor helpers of the tests: a confirmed TOTP device, the code an authenticator app would show,
the real two-step sign-in over HTTP, and (for tests about something else) a session marked verified the
way the code step marks it."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP, hotp
from django_otp.util import random_hex

from tenants.models import SealedTOTPDevice
from tenants.second_factor import VERIFIED_AT_KEY, backup_codes_replace


def totp_device(user: User) -> SealedTOTPDevice:
    """The user's confirmed TOTP device (made if there is none)."""
    device = SealedTOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        secret = bytes.fromhex(random_hex(20))
        device = SealedTOTPDevice.for_secret(user, secret, name="test app", confirmed=True)
        device.save()
    return device


def totp_code(device: SealedTOTPDevice) -> str:
    """The code an authenticator app shows now; if that one was used already, the next one (within the
    device's tolerance), as a phone a little ahead would show."""
    device.refresh_from_db()
    now = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).t()
    step = max(now, device.last_t + 1)
    assert step <= now + device.tolerance, "no unused code in the tolerance window"
    return f"{hotp(device.bin_key, step, device.digits):0{device.digits}d}"


def backup_codes(user: User, count: int = 2) -> list[str]:
    """A new set of `count` backup codes for the user, made as the enrolment makes them."""
    return backup_codes_replace(user, count)


def two_step_sign_in(client: Client, login_path: str, user: User, password: str, **extra: Any) -> Any:
    """Password, then the current code, over HTTP; returns the code step's answer."""
    device = totp_device(user)
    first = client.post(login_path, {"username": user.get_username(), "password": password, **extra})
    assert first.status_code == 302, first.content.decode()
    assert first["Location"].endswith("login/code/"), first["Location"]
    return client.post(first["Location"], {"code": totp_code(device)})


def verified_login(client: Client, user: User) -> Client:
    """force_login plus what the code step records: the device in the session and the time it was used
    (for tests about something else than signing in)."""
    device = totp_device(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[VERIFIED_AT_KEY] = time.time()
    session.save()
    return client
