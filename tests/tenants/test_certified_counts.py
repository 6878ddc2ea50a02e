"""Certified counts (REQ-26) through record_certificate and the service behind it: one per country, a
replacement audited with the previous value, the document kept with its SHA-256, and the REQ-01 check
that marking an initiative submitted depends on. Every refusal says what is wrong and writes nothing."""

from __future__ import annotations

import datetime
import hashlib
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tenants.certification import DOCUMENT_MAX_BYTES, CertificationError, certified_count_record
from tenants.models import AuditEvent, CertifiedCount, Initiative, InitiativeState
from tenants.services import TransitionError, initiative_transition

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
YESTERDAY = TODAY - datetime.timedelta(days=1)
# Seven States exactly at their thresholds of the 720-seat table, and the rest to a million in Germany
# (alpha is registered ten days before the test runs: that table applies).
SEVEN = {"DE": 69120, "FR": 58320, "IT": 54720, "ES": 43920, "PL": 38160, "RO": 23760, "NL": 22320}
SEVEN["DE"] += 1_000_000 - sum(SEVEN.values())


def closed(initiative: Initiative, *, on: datetime.date = YESTERDAY) -> Initiative:
    Initiative.objects.filter(pk=initiative.pk).update(state=InitiativeState.CLOSED, closed_on=on)
    initiative.refresh_from_db()
    return initiative


def record(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("record_certificate", *args, "--json", stdout=out)
    (line,) = out.getvalue().strip().splitlines()
    result: dict[str, Any] = json.loads(line)
    return result


def args_for(country: str, valid: int | str, certified_on: datetime.date | str = TODAY) -> list[str]:
    day = certified_on.isoformat() if isinstance(certified_on, datetime.date) else certified_on
    return ["--initiative", "alpha", "--country", country, "--valid", str(valid), "--certified-on", day]


def refused(*args: str, match: str) -> dict[str, Any]:
    out = StringIO()
    events, counts = AuditEvent.objects.count(), list(CertifiedCount.objects.values_list())
    with pytest.raises(CommandError, match=match):
        call_command("record_certificate", *args, "--json", stdout=out)
    assert AuditEvent.objects.count() == events, "a refusal records nothing"
    assert list(CertifiedCount.objects.values_list()) == counts, "a refusal writes nothing"
    (line,) = out.getvalue().strip().splitlines()
    refusal: dict[str, Any] = json.loads(line)
    assert refusal["error"] and refusal["errors"]
    return refusal


def test_a_count_is_recorded_with_its_document_and_digest_and_audited(
    alpha: Initiative, tmp_path: Path
) -> None:
    closed(alpha)
    document = tmp_path / "certificate-de.pdf"
    document.write_bytes(b"%PDF-1.7 the authority's certificate")
    digest = hashlib.sha256(document.read_bytes()).hexdigest()

    result = record(*args_for("de", 125000), "--document", str(document))
    assert (result["country"], result["valid_statements"], result["certified_on"]) == (
        "DE",
        125000,
        TODAY.isoformat(),
    )
    assert (result["document_name"], result["document_sha256"], result["replaced"]) == (
        "certificate-de.pdf",
        digest,
        None,
    )
    assert result["validity"]["valid"] is False
    assert result["validity"]["total"] == 125000 and result["validity"]["states_reached"] == ["DE"]
    assert result["validity"]["signatories_short"] == 875000 and result["validity"]["states_short"] == 6

    stored = CertifiedCount.objects.get(initiative=alpha, country="DE")
    assert bytes(stored.document) == document.read_bytes() and stored.document_sha256 == digest
    assert (stored.recorded_by, stored.certified_on) == ("command-line", TODAY)
    event = AuditEvent.objects.filter(action="certificate.recorded").latest("id")
    assert event.initiative_id == alpha.pk and event.actor == "command-line"
    assert event.details == {
        "country": "DE",
        "valid_statements": 125000,
        "certified_on": TODAY.isoformat(),
        "sha256": digest,
        "previous": None,
    }


def test_a_second_record_for_a_country_replaces_it_and_the_audit_keeps_the_previous(
    alpha: Initiative,
) -> None:
    closed(alpha)
    record(*args_for("EL", 15000, YESTERDAY))
    result = record(*args_for("EL", 14990))
    assert result["replaced"]["valid_statements"] == 15000
    assert result["replaced"]["certified_on"] == YESTERDAY.isoformat()
    (stored,) = CertifiedCount.objects.filter(initiative=alpha)
    assert (stored.country, stored.valid_statements, stored.certified_on) == ("EL", 14990, TODAY)
    first, second = AuditEvent.objects.filter(action="certificate.recorded", initiative=alpha).order_by("id")
    assert first.details["previous"] is None
    assert second.details["valid_statements"] == 14990
    assert second.details["previous"]["valid_statements"] == 15000
    assert second.details["previous"]["certified_on"] == YESTERDAY.isoformat()


def test_without_json_it_says_what_was_recorded_and_what_is_short(alpha: Initiative) -> None:
    closed(alpha)
    out = StringIO()
    call_command("record_certificate", *args_for("MT", 5000), stdout=out)
    text = out.getvalue()
    assert "alpha: MT certified 5,000 valid statements" in text
    assert "995,000 certified statements short of 1,000,000" in text


def test_a_certificate_may_come_on_the_day_collection_ended_and_after_submission(alpha: Initiative) -> None:
    closed(alpha, on=TODAY)
    record(*args_for("LU", 10, TODAY))
    Initiative.objects.filter(pk=alpha.pk).update(state=InitiativeState.SUBMITTED)
    assert record(*args_for("LU", 12, TODAY))["replaced"]["valid_statements"] == 10


@pytest.mark.parametrize(
    ("country", "valid", "day", "match", "field"),
    [
        ("GR", "10", TODAY.isoformat(), "use EL for Greece", "country"),
        ("UK", "10", TODAY.isoformat(), "'UK' is not the EU code of a Member State", "country"),
        ("", "10", TODAY.isoformat(), "not the EU code of a Member State", "country"),
        ("Deutschland-and-more", "10", TODAY.isoformat(), "The code given is not the EU code", "country"),
        ("DE", "-1", TODAY.isoformat(), "cannot be negative", "valid"),
        ("DE", "12.5", TODAY.isoformat(), "whole number", "valid"),
        ("DE", "many", TODAY.isoformat(), "whole number", "valid"),
        ("DE", "99999999999", TODAY.isoformat(), "at most 2,147,483,647", "valid"),
        ("DE", "10", (TODAY + datetime.timedelta(days=1)).isoformat(), "in the future", "certified_on"),
        (
            "DE",
            "10",
            (YESTERDAY - datetime.timedelta(days=1)).isoformat(),
            "before collection ended",
            "certified_on",
        ),
        ("DE", "10", "31/12/2026", "YYYY-MM-DD", "certified_on"),
    ],
)
def test_bad_input_is_refused_saying_what_and_nothing_is_written(
    alpha: Initiative, country: str, valid: str, day: str, match: str, field: str
) -> None:
    closed(alpha)
    refusal = refused(*args_for(country, valid, day), match=match)
    assert list(refusal["errors"]) == [field]


@pytest.mark.parametrize("state", ["ready", "collecting", "paused", "withdrawn", "destroyed"])
def test_an_initiative_that_has_not_ended_collection_or_was_withdrawn_is_refused(
    alpha: Initiative, state: str
) -> None:
    closed(alpha)
    Initiative.objects.filter(pk=alpha.pk).update(state=state)
    refusal = refused(*args_for("DE", 10), match=f"The initiative is {state}")
    assert "closed or submitted" in refusal["error"]


def test_an_unknown_initiative_is_refused(alpha: Initiative) -> None:
    arguments = args_for("DE", 10)
    arguments[1] = "nobody"
    assert refused(*arguments, match="No initiative")["errors"] == {"initiative": ["Unknown."]}


def test_a_document_too_large_missing_or_empty_is_refused(alpha: Initiative, tmp_path: Path) -> None:
    closed(alpha)
    large = tmp_path / "large.pdf"
    large.write_bytes(b"x" * (DOCUMENT_MAX_BYTES + 1))
    refusal = refused(*args_for("DE", 10), "--document", str(large), match=f"at most {DOCUMENT_MAX_BYTES:,}")
    assert refusal["errors"] == {"document": ["Too large."]}
    refused(*args_for("DE", 10), "--document", str(tmp_path / "missing.pdf"), match="cannot be read")
    refused(*args_for("DE", 10), "--document", str(tmp_path), match="must be a file")
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    refused(*args_for("DE", 10), "--document", str(empty), match="empty")


def test_the_service_refuses_an_oversized_document_naming_the_limit(alpha: Initiative) -> None:
    closed(alpha)
    with pytest.raises(CertificationError, match="10 MiB") as refusal:
        certified_count_record(
            alpha,
            country="DE",
            valid_statements=10,
            certified_on=TODAY,
            document=b"x" * (DOCUMENT_MAX_BYTES + 1),
            document_name="big.pdf",
            actor="tester",
        )
    assert refusal.value.field == "document"
    assert not CertifiedCount.objects.filter(initiative=alpha).exists()


def test_the_document_name_is_only_a_name(alpha: Initiative) -> None:
    closed(alpha)
    recorded = certified_count_record(
        alpha,
        country="fr",
        valid_statements=10,
        certified_on=TODAY,
        document=b"%PDF",
        document_name="../../etc/\x00passwd",
        actor="tester",
    )
    assert (recorded.count.country, recorded.count.document_name) == ("FR", "passwd")


def test_one_initiatives_counts_leave_the_other_alone(alpha: Initiative, beta: Initiative) -> None:
    closed(alpha)
    closed(beta)
    record(*args_for("DE", 10))
    assert not CertifiedCount.objects.filter(initiative=beta).exists()


# -- submission needs REQ-01 ---------------------------------------------------------------------------------


def test_submitting_is_refused_until_the_certified_counts_meet_req_01(alpha: Initiative) -> None:
    closed(alpha)
    with pytest.raises(TransitionError, match="1,000,000 certified statements short") as refusal:
        initiative_transition(alpha, InitiativeState.SUBMITTED, actor="tester")
    assert "7 Member States short of 7" in str(refusal.value)

    for country, valid in SEVEN.items():
        record(*args_for(country, valid))
    record(*args_for("NL", SEVEN["NL"] - 1))  # a correction: one under the Dutch threshold
    events = AuditEvent.objects.count()
    with pytest.raises(
        TransitionError, match=r"1 Member State short of 7 .*\(6 reached: DE, ES, FR, IT, PL, RO\)"
    ):
        initiative_transition(alpha, InitiativeState.SUBMITTED, actor="tester")
    alpha.refresh_from_db()
    assert (alpha.state, alpha.submitted_on, AuditEvent.objects.count()) == (
        InitiativeState.CLOSED,
        None,
        events,
    )

    record(*args_for("NL", SEVEN["NL"]))
    initiative_transition(alpha, InitiativeState.SUBMITTED, actor="tester")
    alpha.refresh_from_db()
    assert (alpha.state, alpha.submitted_on) == (InitiativeState.SUBMITTED, TODAY)


def test_change_state_names_what_is_short(alpha: Initiative) -> None:
    closed(alpha)
    record(*args_for("DE", 2_000_000))
    out = StringIO()
    with pytest.raises(CommandError, match="6 Member States short of 7"):
        call_command("change_state", "--initiative", "alpha", "--to", "submitted", "--json", stdout=out)
    assert "REQ-01" in json.loads(out.getvalue())["error"]
    alpha.refresh_from_db()
    assert alpha.state == InitiativeState.CLOSED
