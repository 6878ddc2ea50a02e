"""The parties of the export file tests: the platform that signs, the authority it encrypts for, and a
stranger who is neither."""

from __future__ import annotations

import pytest

from eci_crypto.certificates import self_signed_certificate_create
from tests.eci_crypto.parties import Party


# RSA 3072 key generation takes a while: once per run.
@pytest.fixture(scope="session")
def platform() -> Party:
    return Party(*self_signed_certificate_create("ECI platform export signing (test)"))


@pytest.fixture(scope="session")
def authority() -> Party:
    return Party(*self_signed_certificate_create("Competent authority BE (test)"))


@pytest.fixture(scope="session")
def stranger() -> Party:
    return Party(*self_signed_certificate_create("Someone else (test)"))
