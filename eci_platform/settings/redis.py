"""Redis: REDIS_URL, or the embedded server when it is unset and DEBUG is on. Used as the Celery broker
and result backend and as Django's cache (which never holds personal data)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from eci_platform.settings.environment import DEBUG, optional

REDIS_URL = optional("REDIS_URL")
if not REDIS_URL:
    if not DEBUG:
        raise ImproperlyConfigured("The environment variable REDIS_URL is required.")
    from eci_platform.embedded import ensure_redis

    REDIS_URL = ensure_redis()

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": optional("CACHE_KEY_PREFIX", "eci"),
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}
