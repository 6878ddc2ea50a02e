"""Redis: REDIS_URL (in development the `dev` runner and the test setup set it to the embedded server's
address when the environment does not). Used as the Celery broker and result backend and as Django's
cache (which never holds personal data)."""

from __future__ import annotations

from eci_platform.settings.environment import optional, required_service_url

REDIS_URL = required_service_url("REDIS_URL", "Redis")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": optional("CACHE_KEY_PREFIX", "eci"),
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}
