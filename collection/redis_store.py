"""The Redis client behind Django's cache, made once per process: Django's cache builds a new client
object for every call, which costs more than the call itself on the signing path."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import cache

_clients: dict[str, Any] = {}


def redis_client() -> Any:
    location = str(settings.CACHES["default"]["LOCATION"])
    client = _clients.get(location)
    if client is None:
        client = _clients[location] = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    return client
