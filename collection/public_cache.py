"""The public answers that are the same for every visitor of an initiative's site (its home page, its
share image, /api/counts.json), kept in Redis so that a crowd arriving from a shared link costs one
Redis round trip per request instead of a rendering.

What an entry depends on is in its key or checked against it, so that nothing stale or foreign is served:
- the initiative: Django's cache keys are prefixed with the schema (django_tenants.cache.make_key), so
  host A's entry cannot be read on host B; the key also holds a digest of the initiative's row fields a
  page shows (state, texts, dates), so a correction or a pause shows at once;
- the language, chosen from ?lang= or the browser's header (the answers say `Vary: Accept-Language`);
- the counts: each entry records the `counted_at` of the snapshot it was made from, and the snapshot is
  fetched together with the entry (one MGET); a newer snapshot makes the entry stale.
Only what every visitor sees goes in: no personal data, no CSRF token, no cookie (an answer that sets a
cookie is not kept). The TTL only bounds what an unused entry costs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse

from collection.selectors import COUNTS_CACHE_KEY, counts_kept_after_destruction
from tenants.models import Initiative

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
HEADERS_KEPT = ("Content-Type", "Content-Language", "Cache-Control")


def initiative_digest(initiative: Initiative) -> str:
    shown = repr([getattr(initiative, name) for name in SHOWN_FIELDS])
    return hashlib.blake2b(shown.encode(), digest_size=8).hexdigest()


def public_answer(
    initiative: Initiative,
    name: str,
    language: str,
    build: Callable[[dict[str, object] | None], HttpResponse],
) -> HttpResponse:
    """The answer `name` in `language`, from the cache when it was made from the counts published now;
    otherwise `build(published counts)` makes it, and it is kept."""
    key = f"public:{name}:{language}:{initiative_digest(initiative)}"
    found = cache.get_many([COUNTS_CACHE_KEY, key])
    published: dict[str, object] | None = found.get(COUNTS_CACHE_KEY)
    stamp = published.get("counted_at") if isinstance(published, dict) else None
    entry = found.get(key)
    if isinstance(entry, tuple) and len(entry) == 3 and entry[0] == stamp:
        _stamp, headers, content = entry
        return HttpResponse(content, headers=headers)
    if published is None:
        # Once the statements are destroyed, the counts kept on the destruction record (a query).
        published = counts_kept_after_destruction()
    response = build(published)
    if response.status_code == 200 and not response.cookies:
        headers = {header: response[header] for header in HEADERS_KEPT if header in response}
        cache.set(key, (stamp, headers, response.content), timeout=settings.PUBLIC_CACHE_SECONDS)
    return response
