"""Legal holds (REQ-18): the services set and lift a hold with its reason and reference, audited; the
command `legal_hold` is their command-line face. Every refusal names the problem, prints one JSON object
with --json and writes nothing: a blank reason or reference, a second active hold, lifting when none is
active, a destroyed or unknown initiative, both or neither of --set and --lift."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tenants.holds import LegalHoldError, legal_hold_lift, legal_hold_set
from tenants.models import AuditEvent, Initiative, InitiativeState, LegalHold
from tenants.selectors import initiative_active_hold

pytestmark = pytest.mark.django_db


def _command(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("legal_hold", *args, "--json", stdout=out)
    (line,) = out.getvalue().strip().splitlines()
    result: dict[str, Any] = json.loads(line)
    return result


def _refused(*args: str, match: str) -> dict[str, Any]:
    out = StringIO()
    events, holds = AuditEvent.objects.count(), list(LegalHold.objects.values())
    with pytest.raises(CommandError, match=match):
        call_command("legal_hold", *args, "--json", stdout=out)
    assert AuditEvent.objects.count() == events, "a refusal records nothing"
    assert list(LegalHold.objects.values()) == holds, "a refusal changes no hold"
    (line,) = out.getvalue().strip().splitlines()
    refusal: dict[str, Any] = json.loads(line)
    assert refusal["error"]
    return refusal


# -- the services -------------------------------------------------------------------------------------------


def test_a_hold_is_set_and_lifted_with_its_reason_and_reference_audited(alpha: Initiative) -> None:
    hold = legal_hold_set(alpha, reason="  Court order to keep  ", reference=" C-123/26 ", actor="op")
    assert (hold.reason, hold.reference, hold.set_by, hold.is_active) == (
        "Court order to keep",
        "C-123/26",
        "op",
        True,
    )
    assert initiative_active_hold(alpha) == hold
    event = AuditEvent.objects.filter(action="legal_hold.set").get()
    assert (event.actor, event.initiative_id) == ("op", alpha.pk)
    assert event.details == {"hold": hold.pk, "reference": "C-123/26", "reason": "Court order to keep"}

    lifted = legal_hold_lift(alpha, actor="op2", reason="proceedings ended")
    assert lifted.pk == hold.pk and not lifted.is_active
    assert (lifted.lifted_by, lifted.lift_reason) == ("op2", "proceedings ended")
    assert initiative_active_hold(alpha) is None
    event = AuditEvent.objects.filter(action="legal_hold.lifted").get()
    assert event.details == {"hold": hold.pk, "reference": "C-123/26", "reason": "proceedings ended"}

    # After a lift, a new hold may be set; the old one stays on record.
    again = legal_hold_set(alpha, reason="Appeal", reference="C-124/26", actor="op")
    assert again.pk != hold.pk
    assert LegalHold.objects.filter(initiative=alpha).count() == 2


def test_a_hold_on_one_initiative_leaves_the_other_alone(alpha: Initiative, beta: Initiative) -> None:
    legal_hold_set(alpha, reason="Court order", reference="C-1", actor="op")
    assert initiative_active_hold(beta) is None
    with pytest.raises(LegalHoldError, match="no active legal hold"):
        legal_hold_lift(beta, actor="op")
    assert initiative_active_hold(alpha) is not None


@pytest.mark.parametrize(
    ("reason", "reference", "field", "match"),
    [
        ("", "C-1", "reason", "needs a reason"),
        ("   ", "C-1", "reason", "needs a reason"),
        ("Court order", "", "reference", "needs a reference"),
        ("Court order", "x" * 201, "reference", "at most 200"),
        ("x" * 1001, "C-1", "reason", "at most 1000"),
    ],
)
def test_setting_needs_a_reason_and_a_reference(
    alpha: Initiative, reason: str, reference: str, field: str, match: str
) -> None:
    with pytest.raises(LegalHoldError, match=match) as refused:
        legal_hold_set(alpha, reason=reason, reference=reference, actor="op")
    assert refused.value.field == field
    assert (
        not LegalHold.objects.exists() and not AuditEvent.objects.filter(action__startswith="legal").exists()
    )


def test_a_second_active_hold_is_refused_naming_the_first(alpha: Initiative) -> None:
    first = legal_hold_set(alpha, reason="Court order", reference="C-1", actor="op")
    with pytest.raises(LegalHoldError, match=r"already has an active legal hold \(reference C-1"):
        legal_hold_set(alpha, reason="Another", reference="C-2", actor="op")
    assert list(LegalHold.objects.all()) == [first]
    assert AuditEvent.objects.filter(action="legal_hold.set").count() == 1


def test_lifting_without_an_active_hold_is_refused(alpha: Initiative) -> None:
    with pytest.raises(LegalHoldError, match="alpha has no active legal hold"):
        legal_hold_lift(alpha, actor="op")
    legal_hold_set(alpha, reason="Court order", reference="C-1", actor="op")
    legal_hold_lift(alpha, actor="op")
    with pytest.raises(LegalHoldError, match="no active legal hold"):
        legal_hold_lift(alpha, actor="op")
    assert AuditEvent.objects.filter(action="legal_hold.lifted").count() == 1


def test_a_destroyed_initiative_cannot_be_held(alpha: Initiative) -> None:
    Initiative.objects.filter(pk=alpha.pk).update(state=InitiativeState.DESTROYED)
    with pytest.raises(LegalHoldError, match="alpha is destroyed"):
        legal_hold_set(alpha, reason="Court order", reference="C-1", actor="op")
    assert not LegalHold.objects.exists()


# -- the command --------------------------------------------------------------------------------------------


def test_the_command_sets_and_lifts_a_hold(alpha: Initiative) -> None:
    result = _command("--initiative", "alpha", "--set", "--reason", "Court order", "--reference", "C-9")
    hold = LegalHold.objects.get()
    assert result["hold"] == hold.pk and result["active"] is True and result["reference"] == "C-9"
    assert result["set_by"] == "command-line"
    event = AuditEvent.objects.filter(action="legal_hold.set").get()
    assert event.actor == "command-line" and event.details["reference"] == "C-9"

    lifted = _command("--initiative", "alpha", "--lift", "--reason", "judgment final")
    assert lifted["hold"] == hold.pk and lifted["active"] is False and lifted["lifted_by"] == "command-line"
    hold.refresh_from_db()
    assert hold.lift_reason == "judgment final"


def test_the_command_without_json_says_what_it_did(alpha: Initiative) -> None:
    out = StringIO()
    call_command(
        "legal_hold", "--initiative", "alpha", "--set", "--reason", "R", "--reference", "C-5", stdout=out
    )
    assert "alpha: legal hold" in out.getvalue() and "(reference C-5)" in out.getvalue()
    out = StringIO()
    call_command("legal_hold", "--initiative", "alpha", "--lift", stdout=out)
    assert "lifted" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "match", "field"),
    [
        (
            ("--initiative", "nope", "--set", "--reason", "R", "--reference", "C-1"),
            "No initiative",
            "initiative",
        ),
        (("--initiative", "nope", "--lift"), "No initiative with the slug 'nope'", "initiative"),
        (("--initiative", "alpha", "--set", "--reference", "C-1"), "--set needs --reason", "reason"),
        (("--initiative", "alpha", "--set", "--reason", "R"), "--set needs --reference", "reference"),
        (("--initiative", "alpha", "--set"), "--set needs --reason and --reference", "reference"),
        (("--initiative", "alpha", "--set", "--reason", " ", "--reference", "C-1"), "--reason", "reason"),
        (("--initiative", "alpha"), "exactly one of --set and --lift", "set"),
        (
            ("--initiative", "alpha", "--set", "--lift", "--reason", "R", "--reference", "C"),
            "exactly one",
            "set",
        ),
        (("--initiative", "alpha", "--lift"), "no active legal hold", "initiative"),
        (("--initiative", "alpha", "--lift", "--reference", "C-1"), "only for --set", "reference"),
        (
            ("--initiative", "alpha", "--set", "--reason", "R", "--reference", "x" * 201),
            "at most 200",
            "reference",
        ),
    ],
)
def test_the_command_refuses_bad_input_and_writes_nothing(
    alpha: Initiative, args: tuple[str, ...], match: str, field: str
) -> None:
    refusal = _refused(*args, match=match)
    assert field in refusal["errors"]


def test_the_command_refuses_a_second_hold(alpha: Initiative) -> None:
    _command("--initiative", "alpha", "--set", "--reason", "R", "--reference", "C-1")
    refusal = _refused(
        "--initiative",
        "alpha",
        "--set",
        "--reason",
        "R2",
        "--reference",
        "C-2",
        match="already has an active",
    )
    assert "lift it" in refusal["error"]
