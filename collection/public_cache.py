"""The public answers that are the same for every visitor of an initiative's site (its home page, its
share image, /api/counts.json), kept in Redis so that a crowd arriving from a shared link costs a lookup
per request instead of a rendering.

A middleware, right after host routing and the security middleware (so the HTTPS redirect and its
headers still apply), answers from the cache before the rest of the stack runs; on a miss the request
goes through the whole stack and the view, and the finished answer (with the headers the later
middleware added: Vary, CSP, framing) is kept.

What an entry depends on is in its key or checked against it, so that nothing stale or foreign is served:
- the initiative: Django's cache keys are prefixed with the schema (django_tenants.cache.make_key), so
  host A's entry cannot be read on host B; the key also holds a digest of the initiative's row fields a
  page shows (state, texts, dates), so a correction or a pause shows at once;
- the language, chosen as the page chooses it (?lang=, else the browser's header, else the registered
  one): the key holds the chosen language, and the answers say `Vary: Accept-Language`;
- the counts: each entry records the `counted_at` of the snapshot that was published when it was made,
  and the snapshot is fetched together with the entry (one MGET); a newer snapshot makes it stale.

In front of Redis, each process keeps what it served for PUBLIC_LOCAL_SECONDS (a second or two): a Redis
round trip costs several times what the rest of such an answer does, and a crowd asks for the same few
answers. That adds at most those seconds to a count that is up to a minute old anyway.

Only what every visitor sees goes in: no personal data, no CSRF token, no cookie (an answer that sets a
cookie is not kept), only answers with status 200 to a GET. The TTL bounds what an unused entry costs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from collection.selectors import COUNTS_CACHE_KEY
from collection.views import chosen_language
from tenants.db import connection
from tenants.models import Initiative

# Path -> whether the answer has a language (counts.json has none).
PUBLIC_PATHS = {"/": True, "/share.png": True, "/api/counts.json": False}
# Initiative fields a public answer may show: a change to any of them is a new key.
SHOWN_FIELDS = (
    "state",
    "registration_number",
    "registered_on",
    "registered_language",
    "languages",
    "title",
    "subject",
    "objectives",
    "register_url",
    "website_url",
    "collection_start",
    "submitted_on",
    "withdrawn_on",
    "closed_on",
)
# Per process: (schema, key) -> (valid until, headers, content). Bounded: the answers are few, but the
# keys of changed initiatives must not pile up.
_served: dict[tuple[str, str], tuple[float, list[tuple[str, str]], bytes]] = {}
SERVED_MAX = 1000


def public_answers_forget() -> None:
    """Forget what this process served (tests; a process that must see a change at once)."""
    _served.clear()


def initiative_digest(initiative: Initiative) -> str:
    """Of the fields shown, remembered on the row object: host routing hands out the same object for
    HOST_CACHE_SECONDS and a fresh one after, so the digest is as fresh as the object itself."""
    digest: str | None = initiative.__dict__.get("_public_digest")
    if digest is None:
        shown = repr([getattr(initiative, name) for name in SHOWN_FIELDS])
        digest = initiative.__dict__["_public_digest"] = hashlib.blake2b(
            shown.encode(), digest_size=8
        ).hexdigest()
    return digest


def public_answer_key(request: HttpRequest, initiative: Initiative) -> str | None:
    """The cache key of the answer to `request`, or None when it is not a public answer."""
    has_language = PUBLIC_PATHS.get(request.path_info)
    if has_language is None or request.method != "GET":
        return None
    language = chosen_language(request, initiative.registered_language) if has_language else "-"
    return f"public:{request.path_info}:{language}:{initiative_digest(initiative)}"


def _answer(headers: list[tuple[str, str]], content: bytes) -> HttpResponse:
    response = HttpResponse(content)
    for header, value in headers:
        response.headers[header] = value
    return response


class PublicAnswerCacheMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        initiative = getattr(request, "tenant", None)
        if (
            not isinstance(initiative, Initiative)
            or getattr(request, "urlconf", None) != settings.ROOT_URLCONF
        ):
            return self.get_response(request)  # the platform domain: the operator console
        key = public_answer_key(request, initiative)
        if key is None:
            return self.get_response(request)
        # The schema is in the local key as django-tenants puts it in Redis's: one initiative's answer is
        # never another's.
        local_key = (str(connection.schema_name), key)
        now = time.monotonic()
        served = _served.get(local_key)
        if served is not None and served[0] > now:
            return _answer(served[1], served[2])
        found = cache.get_many([COUNTS_CACHE_KEY, key])
        published = found.get(COUNTS_CACHE_KEY)
        stamp = published.get("counted_at") if isinstance(published, dict) else None
        entry = found.get(key)
        if isinstance(entry, tuple) and len(entry) == 3 and entry[0] == stamp:
            _stamp, headers, content = entry
            self._remember(local_key, now, headers, content)
            return _answer(headers, content)
        response = self.get_response(request)
        if response.status_code == 200 and not response.cookies and not response.streaming:
            headers = [
                (header, value) for header, value in response.items() if header.lower() != "set-cookie"
            ]
            cache.set(key, (stamp, headers, response.content), timeout=settings.PUBLIC_CACHE_SECONDS)
            self._remember(local_key, now, headers, response.content)
        return response

    @staticmethod
    def _remember(
        local_key: tuple[str, str], now: float, headers: list[tuple[str, str]], content: bytes
    ) -> None:
        if settings.PUBLIC_LOCAL_SECONDS <= 0:
            return
        if len(_served) >= SERVED_MAX:
            _served.clear()
        _served[local_key] = (now + settings.PUBLIC_LOCAL_SECONDS, headers, content)
