"""The second factor (django-otp) of everyone who signs in: operators and organisers."""

from __future__ import annotations

from eci_platform.settings.core import PLATFORM_DOMAIN
from eci_platform.settings.environment import env

# An export request, a download link or a certificate confirmation asks for a code again when the last
# one was typed longer ago than this.
SECOND_FACTOR_REVERIFY_SECONDS = env.int("SECOND_FACTOR_REVERIFY_SECONDS", default=15 * 60)
# Between the password and the code: after this long the sign-in starts again with the password.
SECOND_FACTOR_PENDING_SECONDS = env.int("SECOND_FACTOR_PENDING_SECONDS", default=5 * 60)
# Single-use backup codes handed out at enrolment.
SECOND_FACTOR_BACKUP_CODES = 10

# The name authenticator apps show next to the account.
OTP_TOTP_ISSUER = f"ECI {PLATFORM_DOMAIN}"
# django-otp's own admin pages are not on the operator console; should they ever be, no secrets.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
