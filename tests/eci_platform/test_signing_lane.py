"""The signing lane (eci_platform.signing_lane) answers an accepted statement exactly as Django's chain
would, and leaves everything else to Django once, with nothing counted or logged twice."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils.http import parse_http_date

from collection.models import Statement
from collection.ratelimit import signing_pressure
from tenants.models import Initiative
from tests.collection.signing import valid_form
from tests.conftest import host_of, solved_proof
from tests.serving import DjangoOnlyClient

pytestmark = pytest.mark.django_db

# What a deployment behind TLS has on (tests run with DEBUG's defaults otherwise).
PRODUCTION_HEADERS = override_settings(
    SECURE_HSTS_SECONDS=31536000,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    SECURE_HSTS_PRELOAD=True,
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
)


def _answered_by_the_lane(response: Any) -> bool:
    return getattr(response, "answered_by_the_lane", False)


def _signing_client(initiative: Initiative, client_class: type[Client] = Client, **extra: Any) -> Client:
    client = client_class(HTTP_HOST=host_of(initiative), enforce_csrf_checks=True, **extra)
    client.get("/sign/AT/?lang=de")  # sets the CSRF cookie
    return client


def _post(client: Client, country: str = "AT", **overrides: str) -> Any:
    form = {
        **valid_form(country),
        "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        "altcha": solved_proof(client),
        **overrides,
    }
    return client.post(
        f"/sign/{country}/?lang=de",
        form,
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_REFERER=f"https://{client.defaults['HTTP_HOST']}/sign/{country}/",
    )


def _header_values(response: Any) -> dict[str, str]:
    headers = dict(response.items())
    headers.pop("X-Request-ID")
    headers["Location"] = re.sub(r"[0-9a-f-]{36}", "<id>", headers["Location"])
    headers["Expires"] = str(abs(time.time() - parse_http_date(headers["Expires"])) < 5)
    return headers


@PRODUCTION_HEADERS
def test_an_accepted_statement_gets_the_same_answer_from_the_lane_as_from_django(alpha: Initiative) -> None:
    through_django = _post(_signing_client(alpha, DjangoOnlyClient), document_number="X1111111")
    through_lane = _post(_signing_client(alpha), document_number="X2222222")
    assert not _answered_by_the_lane(through_django) and _answered_by_the_lane(through_lane)
    assert through_django.status_code == through_lane.status_code == 303
    assert _header_values(through_lane) == _header_values(through_django)
    for header in (
        "Strict-Transport-Security",
        "Content-Security-Policy",
        "X-Frame-Options",
        "Cache-Control",
    ):
        assert through_lane[header]
    assert re.fullmatch(r"[0-9a-f]{32}", through_lane["X-Request-ID"])
    statement_id = uuid.UUID(through_lane["Location"].split("/")[2])
    with alpha:
        assert Statement.objects.filter(pk=statement_id).exists() and Statement.objects.count() == 2


def test_the_lane_writes_the_attempt_line_and_the_access_line_once(
    alpha: Initiative, caplog: pytest.LogCaptureFixture
) -> None:
    client = _signing_client(alpha)
    with caplog.at_level(logging.INFO):
        response = _post(client)
    assert _answered_by_the_lane(response)
    attempts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("statement attempt")]
    assert len(attempts) == 1 and "outcome=accepted" in attempts[0]
    access = [
        r
        for r in caplog.records
        if r.name == "eci_platform.requests" and r.getMessage() == "POST sign-form 303"
    ]
    assert len(access) == 1


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"document_number": ""}, 400),  # invalid form
        ({"altcha": ""}, 403),  # no proof
        ({"altcha": "bm90IGEgcHJvb2Y="}, 403),  # not a proof
        ({"csrfmiddlewaretoken": "x" * 64}, 403),  # a wrong CSRF token
    ],
)
def test_what_the_lane_does_not_accept_django_answers_once(
    alpha: Initiative, caplog: pytest.LogCaptureFixture, change: dict[str, str], status: int
) -> None:
    client = _signing_client(alpha)
    with caplog.at_level(logging.INFO):
        response = _post(client, **change)
    assert response.status_code == status and not _answered_by_the_lane(response)
    assert len([r for r in caplog.records if r.getMessage().startswith("POST sign-form")]) == 1
    attempts = [r for r in caplog.records if r.getMessage().startswith("statement attempt")]
    csrf_refusals = [r for r in caplog.records if r.getMessage().startswith("Forbidden (")]
    # The view counts what reaches it once; a CSRF refusal never reaches it and is logged once.
    assert (len(attempts), len(csrf_refusals)) == ((0, 1) if "csrfmiddlewaretoken" in change else (1, 0))
    with alpha:
        assert not Statement.objects.exists()


def test_a_duplicate_counts_one_attempt_and_is_a_409(alpha: Initiative) -> None:
    client = _signing_client(alpha)
    assert _post(client).status_code == 303
    before = signing_pressure(alpha.pk, "127.0.0.1")
    duplicate = _post(client)
    assert duplicate.status_code == 409 and not _answered_by_the_lane(duplicate)
    with alpha:
        assert Statement.objects.count() == 1
    # One more attempt in the window, not two: the view took the lane's count.
    assert not before.harder_proof
    with override_settings(RATE_LIMIT_ADDRESS_SOFT=2):
        assert not signing_pressure(alpha.pk, "127.0.0.1").harder_proof  # 2 attempts, not 3


def test_a_replayed_proof_is_refused_once_with_the_lanes_count(
    alpha: Initiative, caplog: pytest.LogCaptureFixture
) -> None:
    client = _signing_client(alpha)
    proof = solved_proof(client)
    assert _post(client, altcha=proof).status_code == 303
    caplog.clear()
    with caplog.at_level(logging.INFO):
        replayed = _post(client, altcha=proof, document_number="X2222222")
    assert replayed.status_code == 403 and not _answered_by_the_lane(replayed)
    outcomes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("statement attempt")]
    assert len(outcomes) == 1 and "outcome=proof-replayed" in outcomes[0]
    # The lane's request id is the one Django answered with and logged with.
    of_the_post = [r for r in caplog.records if r.name == "collection.views" or "sign-form" in r.getMessage()]
    ids = {getattr(r, "request_id", None) for r in of_the_post}
    assert ids == {replayed["X-Request-ID"]}


@override_settings(RATE_LIMIT_ADDRESS_HARD=1, RATE_LIMIT_ADDRESS_SOFT=1)
def test_over_the_limit_the_lane_leaves_the_429_to_django(alpha: Initiative) -> None:
    client = _signing_client(alpha)
    assert _post(client).status_code == 303
    limited = _post(client, document_number="X2222222")
    assert limited.status_code == 429 and limited["Retry-After"] and not _answered_by_the_lane(limited)
    with alpha:
        assert Statement.objects.count() == 1


def test_statements_go_to_the_initiative_of_the_host_only(alpha: Initiative, beta: Initiative) -> None:
    # In turn on one database connection: the insert, prepared once, follows each initiative's schema.
    clients = {alpha.slug: _signing_client(alpha), beta.slug: _signing_client(beta)}
    for number, slug in enumerate([beta.slug, alpha.slug, beta.slug, beta.slug, alpha.slug]):
        response = _post(clients[slug], document_number=f"X{number}234567")
        assert response.status_code == 303 and _answered_by_the_lane(response)
    for initiative, count in ((alpha, 2), (beta, 3)):
        with initiative:
            assert Statement.objects.count() == count


@pytest.mark.parametrize(
    "host", ["missing.{domain}", "{domain}", "evil.example"], ids=["unknown", "platform", "not-allowed"]
)
def test_other_hosts_are_djangos_to_answer(alpha: Initiative, host: str) -> None:
    client = Client(HTTP_HOST=host.format(domain=settings.PLATFORM_DOMAIN))
    response = client.post("/sign/AT/", valid_form("AT"))
    assert response.status_code in (400, 404) and not _answered_by_the_lane(response)


def test_a_large_body_or_another_content_type_is_djangos_to_answer(alpha: Initiative) -> None:
    client = _signing_client(alpha)
    as_json = client.post("/sign/AT/", {"a": 1}, content_type="application/json")
    assert as_json.status_code == 403 and not _answered_by_the_lane(as_json)  # no CSRF token in it
    # Over the lane's 16 KB, under Django's own limit: Django takes it, with the same checks.
    large = _post(client, padding="x" * 20_000)
    assert large.status_code == 303 and not _answered_by_the_lane(large)
    with alpha:
        assert Statement.objects.count() == 1


def test_a_failure_in_the_lane_is_djangos_503(
    alpha: Initiative, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django.db import OperationalError

    def unreachable(**kwargs: object) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("collection.views.statement_record", unreachable)
    client = _signing_client(alpha, raise_request_exception=False)
    with caplog.at_level(logging.INFO):
        response = _post(client)
    assert response.status_code == 503 and response["Retry-After"]
    assert not _answered_by_the_lane(response)
    with alpha:
        assert not Statement.objects.exists()


def _variants(country: str) -> list[dict[str, str]]:
    form = valid_form(country)
    variants = [form, {**form, "declaration": ""}, {**form, "email": "not-an-address", "email_consent": "on"}]
    variants += [{**form, name: ""} for name in form]
    variants += [{**form, name: "=" + value} for name, value in form.items()]
    variants += [{**form, name: "x" * 300} for name in form]
    variants += [{**form, "date_of_birth": "2999-01-01"}, {**form, "country_of_residence": "ZZ"}]
    return variants


@pytest.mark.parametrize("language", ["en", "mt", "el"])
def test_the_lanes_form_with_shared_fields_judges_as_the_views_form(language: str) -> None:
    from django.utils import timezone, translation

    from collection.forms import StatementForm
    from regulation.member_states import member_states

    today = timezone.localdate()
    with translation.override(language):
        for country, state in sorted(member_states().items()):
            for data in _variants(country):
                views = StatementForm(data, member_state=state, signing_day=today)
                lanes = StatementForm.to_validate(data, member_state=state, signing_day=today)
                assert lanes.is_valid() == views.is_valid(), (country, data)
                assert lanes.errors == views.errors
                if views.is_valid():
                    assert lanes.personal_data() == views.personal_data()
                    assert lanes.contact_email() == views.contact_email()


@pytest.mark.parametrize(
    ("change", "status"), [({}, "303 See Other"), ({"document_number": ""}, "400 Bad Request")]
)
def test_the_wsgi_application_serves_both_ways_and_ends_each_request_once(
    alpha: Initiative, change: dict[str, str], status: str
) -> None:
    from urllib.parse import urlencode

    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from django.test import RequestFactory

    from eci_platform.wsgi import application

    client = _signing_client(alpha)
    form = {
        **valid_form("AT"),
        "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        "altcha": solved_proof(client),
        **change,
    }
    environ = (
        RequestFactory()
        .post(
            "/sign/AT/",
            urlencode(form),
            content_type="application/x-www-form-urlencoded",
            HTTP_HOST=host_of(alpha),
            HTTP_COOKIE=f"csrftoken={client.cookies['csrftoken'].value}",
        )
        .environ
    )
    started: list[object] = []
    finished: list[object] = []
    answers: list[tuple[str, list[tuple[str, str]]]] = []

    def on_started(sender: object, **kwargs: object) -> None:
        started.append(sender)

    def on_finished(sender: object, **kwargs: object) -> None:
        finished.append(sender)

    # As the test client does: the test's connection (and its transaction) stays open.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    request_started.connect(on_started)
    request_finished.connect(on_finished)
    try:
        answer = application(environ, lambda status, headers: answers.append((status, headers)))
        b"".join(answer)
        answer.close()  # type: ignore[attr-defined]  # what the server does
    finally:
        request_started.disconnect(on_started)
        request_finished.disconnect(on_finished)
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)
    assert started  # connections past their age are closed before the lane uses one
    assert [status for status, _headers in answers] == [status]
    names = {name for name, _value in answers[0][1]}
    assert {"X-Request-ID", "Content-Security-Policy", "X-Frame-Options", "Cache-Control"} <= names
    assert len(finished) == 1  # request_finished once, whoever answered
    with alpha:
        assert Statement.objects.count() == (1 if status.startswith("303") else 0)
