"""Log lines: JSON with the request's id and the initiative's slug, and nothing a person typed."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from eci_platform.embedded import REPOSITORY_ROOT
from eci_platform.logs import JsonLineFormatter, LogContextFilter, PlainFormatter
from tenants.models import Initiative
from tests.collection.signing import sign, valid_form
from tests.conftest import client_for
from tests.eci_platform.test_settings import FULL, _start

CANARY = {
    "first_names": "Ottoline Canaryquill",
    "family_names": "Finchworth-Canary",
    "document_number": "P7731904",
    "email": "ottoline.canary@canary-inproc.example",
    "email_consent": "on",
}


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict[str, Any]]:
        lines = [line for line in self.text.splitlines() if line.strip()]
        assert lines, "nothing was logged"
        return [json.loads(line) for line in lines]  # each line one JSON object, or this fails


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Every record of every logger, through the production formatter and filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(LogContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_a_statement_signed_with_personal_data_leaves_only_ids_and_the_slug_in_the_logs(
    alpha: Initiative, captured: Captured
) -> None:
    data = {**valid_form("AT"), **CANARY, "document_type": "passport"}
    answer = sign(alpha, "AT", data, HTTP_X_REQUEST_ID="inproc-canary-request-1")
    assert answer.status_code == 303
    assert answer.headers["X-Request-ID"] == "inproc-canary-request-1"
    again = sign(alpha, "AT", data)  # a duplicate: the same person again
    assert again.status_code == 409
    records = captured.records()
    for value in CANARY.values():
        if value != "on":
            assert value not in captured.text
    for record in records:
        assert record.get("request_id"), record
        assert record.get("initiative") == "alpha", record
    outcomes = [record["message"] for record in records if record["logger"] == "collection.views"]
    assert any("outcome=accepted" in line for line in outcomes)
    assert any("outcome=duplicate" in line for line in outcomes)
    ids = {record["request_id"] for record in records}
    assert "inproc-canary-request-1" in ids and len(ids) >= 3  # a challenge and a statement, twice


def test_a_token_in_a_path_is_logged_as_the_views_name(alpha: Initiative, captured: Captured) -> None:
    token = "canarytoken-4fd1c0ffee"
    client_for(alpha).get(f"/manage/invitation/{token}/")
    client_for(alpha).get(f"/receipt/{token}/")  # no such URL (not a UUID): Django logs "Not Found"
    assert token not in captured.text
    lines = captured.records()
    assert any(record.get("view") == "manage-invitation" for record in lines)
    assert any(record["message"] == "Not Found: unrouted" for record in lines)


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("3b1f5e0c9a2d4e6f8a0b1c2d3e4f5a6b", True),
        ("someone@example.org", False),  # not an id: replaced
        ("short", False),
        ("x" * 65, False),
        ("line\nbreak-injected-0001", False),
        ("", False),
    ],
)
def test_a_sane_incoming_request_id_is_kept_and_any_other_replaced(
    alpha: Initiative, incoming: str, kept: bool
) -> None:
    answer = client_for(alpha).get("/api/counts.json", HTTP_X_REQUEST_ID=incoming)
    returned = answer.headers["X-Request-ID"]
    if kept:
        assert returned == incoming
    else:
        assert returned != incoming and len(returned) == 32 and int(returned, 16) >= 0


def test_the_platform_domain_gets_request_ids_too_and_no_slug(
    platform_client: Any, captured: Captured
) -> None:
    answer = platform_client.get("/operator/login/")
    assert answer.headers["X-Request-ID"]
    access = [record for record in captured.records() if record["logger"] == "eci_platform.requests"]
    assert access and all("initiative" not in record for record in access)
    assert access[0]["request_id"] == answer.headers["X-Request-ID"]


def test_only_the_known_fields_leave_the_process() -> None:
    formatter = JsonLineFormatter()
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "something %s", ("happened",), None)
    record.email = "someone@example.org"  # what a library might attach as an extra
    record.request = object()
    line = json.loads(formatter.format(record))
    assert line["message"] == "something happened" and line["level"] == "WARNING"
    assert set(line) <= {"time", "level", "logger", "message"}


def test_the_plain_format_shows_the_same_context() -> None:
    formatter = PlainFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    record.request_id, record.initiative = "abc123abc123", "alpha"
    assert formatter.format(record) == "INFO hello [request_id=abc123abc123 initiative=alpha]"


@pytest.mark.parametrize(("debug", "expected"), [("0", "json"), ("1", "plain")])
def test_json_is_the_default_without_debug(
    debug: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    shown = _start({**FULL, "DEBUG": debug}, "from django.conf import settings; print(settings.LOG_FORMAT)")
    assert shown.stdout.strip().splitlines()[-1:] == [expected], shown.stderr


def test_an_unknown_log_format_stops_start_up_with_a_message() -> None:
    environment = {**os.environ, "DEBUG": "1", "LOG_FORMAT": "xml"}
    shown = subprocess.run(
        [sys.executable, "-c", "import eci_platform.settings"],
        cwd=REPOSITORY_ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert shown.returncode != 0 and "LOG_FORMAT must be json or plain, not 'xml'" in shown.stderr
