"""`make dev`'s demo accounts come with a TOTP device whose otpauth URL is kept in a 0600 file of the data
folder, the same on every start, so a developer adds it to an authenticator app once."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from eci_platform.demo import _development_totp_ensure
from tenants.models import SealedTOTPDevice

pytestmark = pytest.mark.django_db


def test_the_demo_device_is_kept_in_a_private_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECI_DATA_DIR", str(tmp_path))
    user = get_user_model().objects.create_user("demo-operator", password="a-long-demo-password")
    path = _development_totp_ensure(user, "operator-totp")
    assert path == tmp_path / "operator-totp"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    url, secret = path.read_text().splitlines()
    assert url.startswith("otpauth://totp/") and f"secret={secret}" in url
    device = SealedTOTPDevice.objects.get(user=user)
    assert device.confirmed and device.bin_key == base64.b32decode(secret)
    # The next start keeps file and device; a device changed meanwhile gets the file's secret back.
    device.sealed_key = SealedTOTPDevice.for_secret(user, bytes(20)).sealed_key
    device.save()
    assert _development_totp_ensure(user, "operator-totp") == path
    assert path.read_text().splitlines() == [url, secret]
    assert SealedTOTPDevice.objects.get(user=user).bin_key == base64.b32decode(secret)
