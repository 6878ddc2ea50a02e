"""The public home page: the published counts against the goal and the dated thresholds, share metadata
with a server-made picture, and the public cache in front of it (collection/public_cache.py): the second
request is not recomputed, a new count or a change of the initiative is, and no answer of one initiative
or one language is ever served for another."""

from __future__ import annotations

import datetime
import html
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from babel.numbers import format_decimal
from django.core.cache import cache
from django.test import override_settings
from PIL import Image

from collection import views
from collection.public_cache import public_answers_forget
from collection.selectors import COUNTS_CACHE_KEY
from collection.services import counts_refresh
from regulation.member_states import member_states
from regulation.thresholds import THRESHOLD_TABLES
from tenants.models import Initiative, InitiativeState
from tenants.services import initiative_transition
from tests.collection.test_counts import make_statement
from tests.conftest import RUN_CACHE_PREFIX, client_for

pytestmark = pytest.mark.django_db

ROW = re.compile(
    r'<th scope="row"><span class="state-name">(?P<name>[^<]+)</span>.*?</th>\s*'
    r'<td class="num">(?P<count>[^<]+)</td>\s*<td class="num">(?P<threshold>[^<]+)</td>',
    re.S,
)


def publish(initiative: Initiative, statements: dict[str, int]) -> dict[str, object]:
    """Rows for the counts (made-up sealed bytes), then the periodic refresh publishes them."""
    with initiative:
        for country, number in statements.items():
            for _ in range(number):
                make_statement(country)
        return counts_refresh()


def state_rows(page: str) -> dict[str, tuple[str, str]]:
    return {
        html.unescape(row["name"]): (html.unescape(row["count"]), html.unescape(row["threshold"]))
        for row in ROW.finditer(page)
    }


def home(initiative: Initiative, path: str = "/?lang=en", **headers: Any) -> str:
    response = client_for(initiative).get(path, **headers)
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The views' computations of the published progress, one entry per rendering."""
    calls: list[str] = []
    original = views.progress_published

    def counted(initiative: Initiative, published: dict[str, object] | None) -> object:
        calls.append(initiative.slug)
        return original(initiative, published)

    monkeypatch.setattr(views, "progress_published", counted)
    return calls


@pytest.fixture
def local_memory() -> Iterator[None]:
    """Each process's memory of what it served on, as in production."""
    public_answers_forget()
    with override_settings(PUBLIC_LOCAL_SECONDS=60):
        yield
    public_answers_forget()


def test_the_home_page_shows_the_published_counts_and_thresholds(alpha: Initiative) -> None:
    publish(alpha, {"DE": 3, "MT": 2, "FR": 1})
    api = client_for(alpha).get("/api/counts.json").json()
    page = home(alpha)
    rows = state_rows(page)
    assert len(rows) == 27
    for code, figures in api["countries"].items():
        name = views.country_name(code, "en")
        assert rows[name] == (f"{figures['count']:,}", f"{figures['threshold']:,}"), code
        assert figures["threshold"] == member_states()[code].threshold(alpha.registered_on)
    assert api["total"] == 6
    assert '<span class="count">6</span>' in page
    assert "6 of 1,000,000 statements of support" in page
    assert "0 of 7 Member States at or over their minimum" in page
    assert 'href="/sign/?lang=en"' in page  # the call to sign while collecting


def test_the_numbers_are_written_as_the_language_writes_them(alpha: Initiative) -> None:
    with alpha:
        Initiative.objects.filter(pk=alpha.pk).update(languages=["en", "fr", "de"])
    publish(alpha, {"DE": 2})
    page = home(alpha, "/?lang=fr")
    rows = state_rows(page)
    germany = views.country_name("DE", "fr")
    threshold = member_states()["DE"].threshold(alpha.registered_on)
    assert rows[germany] == ("2", format_decimal(threshold, locale="fr"))
    assert rows[germany][1] != f"{threshold:,}"  # not as English writes it
    assert "2 sur 1\u202f000\u202f000 déclarations de soutien" in page
    assert '<html lang="fr">' in page


def test_a_state_at_its_minimum_counts_towards_the_seven(alpha: Initiative) -> None:
    threshold = member_states()["MT"].threshold(alpha.registered_on)
    with alpha:
        cache.set(
            COUNTS_CACHE_KEY,
            {
                "schema": alpha.schema_name,
                "total": threshold + 5,
                "by_country": {"MT": threshold, "LU": 5},
                "counted_at": datetime.datetime.now(datetime.UTC).isoformat(),
            },
        )
    page = home(alpha)
    assert "1 of 7 Member States at or over their minimum" in page
    malta = re.search(r'<tr class="reached">\s*<th scope="row"><span class="state-name">Malta</span>', page)
    assert malta and "Reached" in page[malta.start() : malta.start() + 400]
    assert '<tr class="reached">' not in page.replace(malta.group(0), "")  # Luxembourg is short of it


def test_an_initiative_registered_before_the_2024_table_shows_the_2020_thresholds(alpha: Initiative) -> None:
    older = THRESHOLD_TABLES[-1]
    Initiative.objects.filter(pk=alpha.pk).update(registered_on=datetime.date(2024, 3, 1))
    alpha.refresh_from_db()
    api = client_for(alpha).get("/api/counts.json").json()
    rows = state_rows(home(alpha))
    differing = 0
    for code, state in member_states().items():
        expected = state.thresholds[older.column]
        assert api["countries"][code]["threshold"] == expected
        assert rows[views.country_name(code, "en")][1] == f"{expected:,}"
        differing += expected != state.thresholds[THRESHOLD_TABLES[0].column]
    assert differing  # the two tables differ: the test tells them apart


def test_share_tags_name_absolute_addresses_and_the_picture_is_a_png(alpha: Initiative) -> None:
    publish(alpha, {"PL": 2})
    page = home(alpha, "/?lang=en")
    tags = dict(re.findall(r'<meta (?:property|name)="((?:og|twitter):[a-z:_]+)" content="([^"]*)"', page))
    assert tags["og:title"] == alpha.text("title", "en")
    assert tags["twitter:card"] == "summary_large_image"
    assert tags["og:description"] == "2 of 1,000,000 statements of support"
    site = f"http://{alpha.slug}.localhost:8000/"
    assert tags["og:url"] == f"{site}?lang=en"
    assert tags["og:image"] == tags["twitter:image"] == f"{site}share.png?lang=en"
    picture = client_for(alpha).get("/share.png?lang=en")
    assert picture.status_code == 200 and picture["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(picture.content)) as image:
        assert image.format == "PNG" and image.size == (1200, 630)


def test_the_cache_serves_the_second_request_without_recomputing(
    alpha: Initiative, renders: list[str]
) -> None:
    publish(alpha, {"AT": 1})
    first = home(alpha)
    second = home(alpha)
    assert first == second and renders == ["alpha"]
    client_for(alpha).get("/api/counts.json")
    client_for(alpha).get("/api/counts.json")
    client_for(alpha).get("/share.png")
    client_for(alpha).get("/share.png")
    assert renders == ["alpha"] * 3
    # A new count is a new page, at the next request.
    publish(alpha, {"AT": 1})
    assert '<span class="count">2</span>' in home(alpha)
    assert client_for(alpha).get("/api/counts.json").json()["total"] == 2
    assert len(renders) == 5


def test_a_change_of_the_initiative_shows_at_once(alpha: Initiative, renders: list[str]) -> None:
    assert 'href="/sign/?lang=en"' in home(alpha)
    initiative_transition(alpha, InitiativeState.PAUSED, actor="test", reason="test")
    page = home(alpha)
    assert 'href="/sign/?lang=en"' not in page
    assert "This initiative is not collecting statements of support now" in page
    assert len(renders) == 2


def test_nothing_of_a_visitor_is_kept(alpha: Initiative) -> None:
    response = client_for(alpha).get("/?lang=en")
    assert not response.cookies and "csrfmiddlewaretoken" not in response.content.decode()
    assert "Accept-Language" in response["Vary"]
    assert "public" in response["Cache-Control"]
    # The security headers are those of any page, from the cache too.
    cached = client_for(alpha).get("/?lang=en")
    for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Vary"):
        assert cached[header] == response[header]


@pytest.mark.parametrize("memory", ["redis", "process"])
def test_one_initiatives_answer_is_never_served_for_another(
    alpha: Initiative,
    beta: Initiative,
    monkeypatch: pytest.MonkeyPatch,
    memory: str,
    request: pytest.FixtureRequest,
) -> None:
    if memory == "process":
        request.getfixturevalue("local_memory")
    # The same key for both but for the schema django-tenants puts before it: only that keeps them apart.
    monkeypatch.setattr("collection.public_cache.initiative_digest", lambda initiative: "same")
    publish(alpha, {"DE": 3})
    assert alpha.text("title", "en") in home(alpha)
    beta_page = home(beta)
    assert beta.text("title", "en") in beta_page and alpha.text("title", "en") not in beta_page
    assert client_for(beta).get("/api/counts.json").json()["total"] == 0
    assert client_for(alpha).get("/api/counts.json").json()["total"] == 3


@pytest.mark.parametrize("memory", ["redis", "process"])
def test_a_language_variant_is_never_served_for_another(
    alpha: Initiative, renders: list[str], memory: str, request: pytest.FixtureRequest
) -> None:
    if memory == "process":
        request.getfixturevalue("local_memory")
    french = home(alpha, "/", HTTP_ACCEPT_LANGUAGE="fr-BE,fr;q=0.9")
    german = home(alpha, "/", HTTP_ACCEPT_LANGUAGE="de")
    english = home(alpha, "/")
    assert '<html lang="fr">' in french and '<html lang="de">' in german and '<html lang="en">' in english
    # The same choice by ?lang= is the same variant, from the cache.
    assert (
        home(alpha, "/?lang=fr") == french and home(alpha, "/?lang=de", HTTP_ACCEPT_LANGUAGE="fr") == german
    )
    assert len(renders) == 3
    for path, language in (("/share.png?lang=fr", "fr"), ("/share.png?lang=de", "de")):
        assert client_for(alpha).get(path)["Content-Language"] == language


def test_the_process_memory_answers_without_redis(
    alpha: Initiative, local_memory: None, renders: list[str]
) -> None:
    publish(alpha, {"SE": 1})
    page = home(alpha)
    # The Redis entries and even the counts gone (this run's keys only: others may share the server).
    client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    client.delete(*client.scan_iter(match=f"*:{RUN_CACHE_PREFIX}:*", count=1000))
    # This process still answers.
    assert home(alpha) == page and len(renders) == 1


def test_head_and_other_methods(alpha: Initiative) -> None:
    assert client_for(alpha).head("/").status_code == 200
    assert client_for(alpha).post("/share.png").status_code == 405
    assert client_for(alpha).post("/api/counts.json").status_code == 405


def test_counts_json_is_the_same_document_from_the_cache(alpha: Initiative) -> None:
    publish(alpha, {"IE": 2})
    first = client_for(alpha).get("/api/counts.json")
    second = client_for(alpha).get("/api/counts.json")
    assert json.loads(first.content) == json.loads(second.content)
    assert first["Content-Type"] == second["Content-Type"] == "application/json"
