"""E-mail: one SMTP server named by EMAIL_URL (django-environ's e-mail URL: `smtp://`, `smtp+tls://`,
`smtps://`, with user and password percent-encoded), the sender EMAIL_FROM, and how long the links sent
by e-mail (organiser invitations, password resets) work.

In development the `dev` runner starts an SMTP sink that keeps each message as a .eml file under
.data/mail/ and writes its EMAIL_URL to .env (eci_platform/mail_sink.py); without one, messages are
printed on the console. Tests send to Django's in-memory outbox, and once through a real SMTP server."""

from __future__ import annotations

from eci_platform.settings.environment import env, required

# Not kept as a setting of its own: it may hold the SMTP password, which debug pages would show.
_email = env.email_url_config(
    required("EMAIL_URL", dev_default="consolemail://", build_placeholder="dummymail://")
)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = int(_email.get("EMAIL_PORT") or 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
# A web request that sends (an invitation, a reset) must not hang on a slow server.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)

DEFAULT_FROM_EMAIL = required("EMAIL_FROM", dev_default="ECI platform (development) <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# An organiser invitation's link works this long, once.
ORGANISER_INVITATION_HOURS = env.int("ORGANISER_INVITATION_HOURS", default=72)
# A password-reset link (Django's, bound to the password it replaces, so also single use) works this long.
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_SECONDS", default=60 * 60)
