"""What each check of an accepted statement costs in CPU, measured in one process without a server or a
load generator: the whole signing lane and the Python floor (bench/signing_floor.py) with the same
database and Redis, and each check the lane keeps that the floor does not. It says how much of the gap
between the two the kept checks explain (issue 16's target of 0.8 of the floor).

CPU time is the process's own (time.process_time): waiting for PostgreSQL or Redis is not in it.
Run with `make bench`; BENCH_CHECK_ROUNDS (default 2,000) sets the rounds per measurement.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.middleware.csrf import get_token
from django.test import RequestFactory
from django.utils import timezone
from pytest_django.plugin import DjangoDbBlocker

from bench import signing_floor
from collection.antibot import Proof, proof_verify
from collection.forms import StatementForm
from collection.models import Statement
from collection.ratelimit import signing_attempt_register
from collection.services import statement_record
from collection.views import log_attempt, sign_form
from eci_platform.request_observation import request_observation_begin, request_observation_end
from eci_platform.signing_lane import SigningLane
from regulation.member_states import member_state, member_states
from tenants.db import connection
from tenants.models import Initiative
from tests.signing_load import person, solved_proof

pytestmark = pytest.mark.bench

ROUNDS = int(os.environ.get("BENCH_CHECK_ROUNDS", "2000"))
PROOF_COST = 1000


def _cpu_microseconds(run: Callable[[int], object], rounds: int = ROUNDS) -> float:
    """The process's CPU time per call of run(number), after a warm-up."""
    for number in range(20):
        run(10_000_000 + number)
    started = time.process_time()
    for number in range(rounds):
        run(number)
    return (time.process_time() - started) / rounds * 1e6


@pytest.fixture
def signing_setup(initiative: Initiative, django_db_blocker: DjangoDbBlocker) -> Iterator[dict[str, Any]]:
    host = f"{initiative.slug}.{settings.PLATFORM_DOMAIN}"
    cookie_request = RequestFactory().get("/")
    token = get_token(cookie_request)
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        statements = f"{initiative.schema_name}.{Statement._meta.db_table}"
        cursor.execute(f"CREATE TABLE {signing_floor.FLOOR_TABLE} (LIKE {statements} INCLUDING ALL)")
    os.environ["FLOOR_DATABASE_URL"] = _database_url()
    os.environ["FLOOR_REDIS_URL"] = settings.REDIS_URL
    with django_db_blocker.unblock():
        yield {
            "initiative": initiative,
            "host": host,
            "token": token,
            "cookie": cookie_request.META["CSRF_COOKIE"],
        }
        # The floor's own connection, made in this process: the test database is dropped after.
        for opened in signing_floor._connections.values():
            if isinstance(opened, psycopg.Connection):
                opened.close()
        signing_floor._connections.clear()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {signing_floor.FLOOR_TABLE}")


def _database_url() -> str:
    database = connection.settings_dict
    return (
        f"postgresql://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
        f"/{database['NAME']}"
    )


def test_what_each_check_of_an_accepted_statement_costs(signing_setup: dict[str, Any]) -> None:
    initiative: Initiative = signing_setup["initiative"]
    with settings_unlimited():
        proofs = [solved_proof(initiative.pk, PROOF_COST) for _ in range(2 * ROUNDS + 100)]
        bodies = iter(
            [
                urlencode(
                    {
                        "csrfmiddlewaretoken": signing_setup["token"],
                        **person("AT", number),
                        "declaration": "on",
                        "altcha": proof,
                    }
                ).encode()
                for number, proof in enumerate(proofs)
            ]
        )

        def environ(body: bytes) -> dict[str, Any]:
            return {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/sign/AT/",
                "QUERY_STRING": "",
                "CONTENT_TYPE": "application/x-www-form-urlencoded",
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_HOST": signing_setup["host"],
                "HTTP_COOKIE": f"csrftoken={signing_setup['cookie']}",
                "REMOTE_ADDR": "127.0.0.1",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "80",
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(body),
            }

        lane = SigningLane()

        def lane_run(_number: int) -> None:
            response = lane.respond(environ(next(bodies)))
            assert response is not None and response.status_code == 303

        def floor_run(_number: int) -> None:
            signing_floor.application(environ(next(bodies)), lambda *args: None)

        # One request's parts, on one prepared request.
        body = next(bodies)
        request = WSGIRequest(environ(body))
        request.POST  # noqa: B018  (parsed once, as the lane does before the checks)
        state = member_state("AT")
        assert state is not None
        today = timezone.localdate()
        proof = request.POST["altcha"]

        costs = {
            "the signing lane, whole (AT)": _cpu_microseconds(lane_run),
            "the Python floor, whole": _cpu_microseconds(floor_run),
            "the request object and its form body": _cpu_microseconds(
                lambda _n: WSGIRequest(environ(body)).POST
            ),
            "CSRF check (Django's middleware)": _cpu_microseconds(
                lambda _n: lane.csrf.process_view(
                    WSGIRequest(environ(body)), sign_form, (), {"country": "AT"}
                )
            ),
            "form validation, fields shared (the lane)": _cpu_microseconds(
                lambda _n: StatementForm.to_validate(
                    request.POST, member_state=state, signing_day=today
                ).is_valid()
            ),
            "form validation, fields built (the view)": _cpu_microseconds(
                lambda _n: StatementForm(request.POST, member_state=state, signing_day=today).is_valid()
            ),
            "proof of work verification": _cpu_microseconds(lambda _n: proof_verify(initiative.pk, proof)),
            "attempt log line and count": _cpu_microseconds(
                lambda _n: log_attempt(initiative, "AT", "accepted", "127.0.0.1")
            ),
            "request id, latency and access line": _cpu_microseconds(_observation(request)),
            # The I/O the floor does too, as the platform does it.
            "rate limits and the proof's single use (one Redis script)": _cpu_microseconds(
                lambda number: signing_attempt_register(
                    initiative.pk,
                    "127.0.0.1",
                    proof=Proof("ok", PROOF_COST, f"bench-spent:{uuid.uuid4().hex}"),
                )
            ),
            "statement_record: seal, index digest, insert": _on_schema(initiative, _recording(initiative)),
        }
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {signing_floor.FLOOR_TABLE}")  # noqa: S608  (a constant)
        (floor_rows,) = cursor.fetchone()
    assert floor_rows >= ROUNDS
    # The CSRF line made its own request object: that part is counted once, on its own line.
    costs["CSRF check (Django's middleware)"] -= costs["the request object and its form body"]
    kept = sum(
        value
        for name, value in costs.items()
        if not name.startswith(
            ("the signing lane", "the Python", "form validation, fields built", "rate", "statement_record")
        )
    )
    print(
        "\nsigning check costs:",
        json.dumps(
            {
                "rounds": ROUNDS,
                "cpu_microseconds": {name: round(value, 1) for name, value in costs.items()},
                "kept_checks_the_floor_does_not_do": round(kept, 1),
                "lane_minus_floor": round(
                    costs["the signing lane, whole (AT)"] - costs["the Python floor, whole"], 1
                ),
            },
            ensure_ascii=False,
        ),
    )


def _on_schema(initiative: Initiative, run: Callable[[int], None]) -> float:
    with initiative:  # once: the lane's requests find the schema set by the one before
        return _cpu_microseconds(run)


def _recording(initiative: Initiative) -> Callable[[int], None]:
    form = StatementForm.to_validate(
        {**person("AT", 0), "declaration": "on"},
        member_state=member_states()["AT"],
        signing_day=timezone.localdate(),
    )
    assert form.is_valid()
    personal_data = form.personal_data()

    def run(number: int) -> None:
        statement_record(
            country="AT",
            personal_data={
                **personal_data,
                "document_number": f"R{number:08d}{uuid.uuid4().hex[:6].upper()}",
            },
            form_revision="bench",
        )

    return run


def _observation(request: WSGIRequest) -> Callable[[int], None]:
    from django.http import HttpResponse

    def run(_number: int) -> None:
        started, request_id = request_observation_begin(request)
        request_observation_end(request, HttpResponse(status=303), started, request_id, view="sign-form")

    return run


def settings_unlimited() -> Any:
    from django.test import override_settings

    from tests.processes import UNLIMITED_SIGNING

    return override_settings(
        ALTCHA_COST=PROOF_COST, **{name: int(value) for name, value in UNLIMITED_SIGNING.items()}
    )
