"""Django core settings: apps, middleware, templates, security."""

from __future__ import annotations

from pathlib import Path

from eci_platform.embedded import REPOSITORY_ROOT
from eci_platform.settings.environment import DEBUG, env, optional, required
from regulation.languages import OFFICIAL_LANGUAGES

BASE_DIR = REPOSITORY_ROOT
SECRET_KEY = required("SECRET_KEY", dev_default="development-only-secret-key-not-for-production")
PLATFORM_DOMAIN = required("PLATFORM_DOMAIN", dev_default="localhost").lower().strip(".")

# The platform domain and every initiative's subdomain; anything else gets the 404 page.
ALLOWED_HOSTS = [PLATFORM_DOMAIN, f".{PLATFORM_DOMAIN}", *env.list("EXTRA_ALLOWED_HOSTS", default=[])]

SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    # The second factor of operators and organisers; its tables live in the public schema only.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django.contrib.staticfiles",
    "django_altcha",  # only for the ALTCHA widget's script among its static files
    "csp",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "collection",
    "exports",
]
# eci_platform is listed for its management commands (the `dev` runner); it has no models.
INSTALLED_APPS = (
    list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS] + ["workers", "eci_platform"]
)

MIDDLEWARE = [
    # The request's id, its log context, its latency and its access line, for every answer (probes too).
    "eci_platform.request_observation.RequestObservationMiddleware",
    # Probes answer before anything looks at the Host header or the database's tenant routing.
    "eci_platform.health.HealthCheckMiddleware",
    "eci_platform.hosts.InitiativeHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # An initiative's home page, share image and counts, answered from the cache before the rest runs.
    "collection.public_cache.PublicAnswerCacheMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Sessions, locale, authentication and messages, on the pages where someone signs in only.
    "eci_platform.areas.SignedInAreasMiddleware",
    # Inside the signed-in areas' chain: the request (and its user) for the account audit's signals.
    "tenants.account_audit.AuditActorMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "eci_platform.csp.SettingsPolicyCSPMiddleware",
]

# The admin looks for these three in MIDDLEWARE; SignedInAreasMiddleware runs them on the operator
# console (the whole platform domain), which the operator-console tests exercise.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]

ROOT_URLCONF = "eci_platform.urls_tenant"
PUBLIC_SCHEMA_URLCONF = "eci_platform.urls_platform"
WSGI_APPLICATION = "eci_platform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# The 24 official languages of the EU (regulation.languages); the initiative pages are shown in one of them.
LANGUAGE_CODE = "en"
LANGUAGES = list(OFFICIAL_LANGUAGES)
LOCALE_PATHS = [BASE_DIR / "eci_platform" / "locale"]  # compiled by `python -m eci_platform.translations`
TIME_ZONE = "Europe/Brussels"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(optional("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Development serves from the apps by the finders (the `dev` runner and the test setup create the empty
# STATIC_ROOT WhiteNoise expects); production runs collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "/operator/login/"
# Sessions of the operator console and the organisers' pages (eci_platform/session_limits.py): at most
# this long from signing in, and this long without a request.
SESSION_ABSOLUTE_SECONDS = env.int("SESSION_ABSOLUTE_SECONDS", default=12 * 60 * 60)
SESSION_IDLE_SECONDS = env.int("SESSION_IDLE_SECONDS", default=30 * 60)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_SECONDS
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    # The header the TLS-terminating proxy sets to "https" (and strips from what clients send); empty when
    # the platform terminates TLS itself. Trusting a header no proxy controls would let any client claim
    # HTTPS.
    _proxy_header = optional("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto").strip()
    if _proxy_header:
        SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    # The initiatives are subdomains of the platform domain: HSTS covers them too.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    # Consent to the browsers' preload list (it takes effect only once the operator submits the registrable
    # domain); HTTPS-only subdomains are already a given here. SECURE_HSTS_PRELOAD=0 where the operator's
    # domain cannot commit to that; `check --deploy` then warns (security.W021), as it should.
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    # The probes answer before this, on plain HTTP inside the cluster.
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)

CSRF_TRUSTED_ORIGINS = [f"https://{PLATFORM_DOMAIN}"]
# In the visitor's language on an initiative's public pages too.
CSRF_FAILURE_VIEW = "eci_platform.error_pages.csrf_failure"

# The operator of this collection system, named in every privacy notice as joint controller of the
# signatories' data with the initiative's organisers (Art. 19(1)-(3) of Regulation 2019/788).
# Required in production: a privacy notice that names no real controller is not one.
OPERATOR_NAME = required("OPERATOR_NAME", dev_default="ECI Collection Platform operator (development)")
OPERATOR_CONTACT_EMAIL = required("OPERATOR_CONTACT_EMAIL", dev_default="data-protection@example.org")
# Who hears of every registration and confirmation of an authority certificate (tenants/authorities.py):
# someone outside the day-to-day operators, so that one operator's change is seen by another person.
SECURITY_CONTACT_EMAIL = required("SECURITY_CONTACT_EMAIL", dev_default="security@example.org")

# The scheme and port under which initiative sites are reached, for links shown to people.
PUBLIC_URL_SCHEME = optional("PUBLIC_URL_SCHEME", "http" if DEBUG else "https")
PUBLIC_URL_PORT = optional("PUBLIC_URL_PORT", "8000" if DEBUG else "")

# How long a process remembers which initiative a host name serves (and its state).
HOST_CACHE_SECONDS = env.float("HOST_CACHE_SECONDS", default=5.0)

# The public answers that every visitor gets alike (home page, share image, /api/counts.json) are kept in
# Redis this long at most (collection/public_cache.py); a new count or a change of the initiative makes a
# new entry sooner. Browsers and proxies may keep them PUBLIC_MAX_AGE_SECONDS.
PUBLIC_CACHE_SECONDS = env.int("PUBLIC_CACHE_SECONDS", default=300)
PUBLIC_MAX_AGE_SECONDS = env.int("PUBLIC_MAX_AGE_SECONDS", default=30)
# Each process also keeps what it served this long, in front of Redis (0: always ask Redis).
PUBLIC_LOCAL_SECONDS = env.float("PUBLIC_LOCAL_SECONDS", default=2.0)

# Signing: the anti-bot proof of work and the rate limits (per minute; see collection/ratelimit.py).
ALTCHA_COST = env.int("ALTCHA_COST", default=50_000)  # per-initiative value on the initiative's row
ALTCHA_HARDER_FACTOR = env.int("ALTCHA_HARDER_FACTOR", default=10)
RATE_LIMIT_ADDRESS_SOFT = env.int("RATE_LIMIT_ADDRESS_SOFT", default=10)
RATE_LIMIT_ADDRESS_HARD = env.int("RATE_LIMIT_ADDRESS_HARD", default=30)
RATE_LIMIT_NETWORK_SOFT = env.int("RATE_LIMIT_NETWORK_SOFT", default=100)
RATE_LIMIT_NETWORK_HARD = env.int("RATE_LIMIT_NETWORK_HARD", default=300)
# How many reverse proxies in front add X-Forwarded-For (0: trust REMOTE_ADDR only).
TRUSTED_PROXY_HOPS = env.int("TRUSTED_PROXY_HOPS", default=0)

# Content-Security-Policy (django-csp): scripts only from this site, nothing inline, no framing. The
# ALTCHA widget runs its proof of work in a worker made from a blob and styles itself inline.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
