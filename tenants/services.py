"""Writes on initiatives after onboarding: the lifecycle (the one place that changes `state`) and the
details an operator may edit. Every change is recorded in the audit log."""

from __future__ import annotations

import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from regulation.languages import OFFICIAL_LANGUAGE_CODES
from regulation.periods import COLLECTION_PERIOD
from tenants.audit import SYSTEM_ACTOR, audit_record
from tenants.models import (
    AuditEvent,
    Initiative,
    InitiativeState,
)
from tenants.register import (
    REGISTER_FIELDS,
    TEXT_FIELDS,
    ContactPerson,
    register_data_missing,
    register_data_problems,
)
from tenants.submission import initiative_certified_validity

# The lifecycle, in one place: from each state, the states it may move to.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    InitiativeState.PROVISIONING: frozenset({InitiativeState.READY}),
    InitiativeState.READY: frozenset(
        {InitiativeState.COLLECTING, InitiativeState.CLOSED, InitiativeState.WITHDRAWN}
    ),
    InitiativeState.COLLECTING: frozenset(
        {InitiativeState.PAUSED, InitiativeState.CLOSED, InitiativeState.WITHDRAWN}
    ),
    InitiativeState.PAUSED: frozenset(
        {InitiativeState.COLLECTING, InitiativeState.CLOSED, InitiativeState.WITHDRAWN}
    ),
    InitiativeState.CLOSED: frozenset(
        {InitiativeState.SUBMITTED, InitiativeState.WITHDRAWN, InitiativeState.DESTROYED}
    ),
    InitiativeState.SUBMITTED: frozenset({InitiativeState.DESTROYED}),
    InitiativeState.WITHDRAWN: frozenset({InitiativeState.DESTROYED}),
    InitiativeState.DESTROYED: frozenset(),
}


class TransitionError(Exception):
    """A state change the lifecycle does not allow now; the message names the states that are."""


class RegisterTextsFrozenError(ValueError):
    """A change to the register data after collection opened, other than an audited correction."""


class RegisterCorrectionError(ValueError):
    """A register correction that is incomplete or invalid; nothing was changed."""


def initiative_transition(
    initiative: Initiative,
    to_state: str,
    *,
    actor: str,
    reason: str = "",
    expected_from: frozenset[str] | None = None,
) -> Initiative:
    """Move an initiative along its lifecycle; the only place that changes `state`. `expected_from`
    narrows the states the change may start from (an organiser pauses only what is collecting), checked
    under the same lock as the rest."""
    to_state = InitiativeState(to_state)
    with transaction.atomic():
        current = Initiative.objects.select_for_update().get(pk=initiative.pk)
        if expected_from is not None and current.state not in expected_from:
            raise TransitionError(
                f"The initiative is {current.state}; this change starts only from "
                f"{', '.join(sorted(expected_from))}."
            )
        allowed = ALLOWED_TRANSITIONS[current.state]
        if to_state not in allowed:
            raise TransitionError(
                f"The initiative is {current.state} and cannot become {to_state}; "
                + (
                    f"from {current.state} it can become {', '.join(sorted(allowed))}."
                    if allowed
                    else f"{current.state} is final."
                )
            )
        today = timezone.localdate()
        updates: dict[str, object] = {"state": to_state, "state_changed_at": timezone.now()}
        if to_state == InitiativeState.COLLECTING and not (
            current.collection_start <= today <= current.collection_end
        ):
            raise TransitionError("Collection can only run within the collection period (REQ-07, REQ-08).")
        missing = register_data_missing(current) if to_state == InitiativeState.COLLECTING else []
        if missing:
            raise TransitionError(
                "Collection cannot open before the register data is complete (REQ-10); missing: "
                + "; ".join(missing)
                + "."
            )
        if to_state == InitiativeState.COLLECTING and current.collection_opened_on is None:
            updates["collection_opened_on"] = today
        if to_state == InitiativeState.CLOSED:
            updates["closed_on"] = min(today, current.collection_end)
        if to_state == InitiativeState.SUBMITTED:
            # REQ-01: only a valid initiative goes to the Commission; the counts are read under the
            # initiative's lock, which recording a certificate takes too.
            validity = initiative_certified_validity(current)
            if not validity.valid:
                raise TransitionError(
                    "The certified counts do not meet REQ-01 yet: "
                    + "; ".join(validity.shortfalls())
                    + ". Record each authority's certificate (record_certificate) first."
                )
            updates["submitted_on"] = today
        if to_state == InitiativeState.WITHDRAWN:
            updates["withdrawn_on"] = today
        Initiative.objects.filter(pk=current.pk).update(**updates)
        audit_record(
            actor=actor,
            action="initiative.state_changed",
            initiative=current,
            from_state=str(current.state),
            to_state=str(to_state),
            reason=reason,
        )
    for field, value in updates.items():
        setattr(initiative, field, value)
    return initiative


def initiatives_follow_calendar(*, today: datetime.date | None = None) -> dict[str, int]:
    """Open initiatives whose collection period has begun and close those whose period has ended.

    One whose register data is incomplete stays ready and counts as `blocked`; the refusal is audited
    once a day (the task runs hourly), so the operator sees it without a flood of identical rows."""
    today = today or timezone.localdate()
    opened = closed = blocked = 0
    for initiative in Initiative.objects.filter(state=InitiativeState.READY, collection_start__lte=today):
        if today <= initiative.collection_end:
            missing = register_data_missing(initiative)
            if missing:
                blocked += 1
                _collection_blocked_audit(initiative, missing, today=today)
                continue
            initiative_transition(
                initiative, InitiativeState.COLLECTING, actor=SYSTEM_ACTOR, reason="collection period began"
            )
            opened += 1
    for initiative in Initiative.objects.filter(
        state__in=[InitiativeState.READY, InitiativeState.COLLECTING, InitiativeState.PAUSED],
        collection_start__lte=today - COLLECTION_PERIOD,
    ):
        if initiative.collection_end < today:
            initiative_transition(
                initiative, InitiativeState.CLOSED, actor=SYSTEM_ACTOR, reason="collection period ended"
            )
            closed += 1
    return {"opened": opened, "closed": closed, "blocked": blocked}


def _collection_blocked_audit(initiative: Initiative, missing: list[str], *, today: datetime.date) -> None:
    already = AuditEvent.objects.filter(
        initiative=initiative, action="initiative.collection_blocked", details__day=today.isoformat()
    ).exists()
    if not already:
        audit_record(
            actor=SYSTEM_ACTOR,
            action="initiative.collection_blocked",
            initiative=initiative,
            day=today.isoformat(),
            missing=missing,
        )


# What the operator may edit on an initiative after onboarding; identity, schema and state are not here.
# The register fields among them (tenants.register.REGISTER_FIELDS) are frozen once collection opened.
EDITABLE_DETAILS = (*REGISTER_FIELDS, "website_url", "altcha_cost")


def _frozen_error(initiative: Initiative, fields: list[str]) -> RegisterTextsFrozenError:
    return RegisterTextsFrozenError(
        f"The register data is frozen since collection opened on {initiative.collection_opened_on} "
        f"(REQ-10): {', '.join(fields)} can change only by an audited register correction."
    )


def initiative_details_save(initiative: Initiative, *, actor: str, fields: list[str]) -> Initiative:
    """Save the named, already-set fields of `initiative` and audit the ones whose value changed.
    Refused (RegisterTextsFrozenError, nothing saved) for register fields once collection opened."""
    not_editable = sorted(set(fields) - set(EDITABLE_DETAILS))
    if not_editable:
        raise ValueError(f"Not editable after onboarding: {', '.join(not_editable)}.")
    with transaction.atomic():
        stored = Initiative.objects.select_for_update().get(pk=initiative.pk)
        changed = sorted(
            field for field in set(fields) if getattr(stored, field) != getattr(initiative, field)
        )
        frozen = sorted(set(changed) & set(REGISTER_FIELDS)) if stored.register_texts_frozen else []
        if frozen:
            raise _frozen_error(stored, frozen)
        if not changed:
            return initiative
        initiative.save(update_fields=changed)
        audit_record(actor=actor, action="initiative.details_updated", initiative=initiative, fields=changed)
    return initiative


def initiative_register_texts_update(
    initiative: Initiative,
    *,
    actor: str,
    title: dict[str, str],
    subject: dict[str, str],
    objectives: dict[str, str],
    register_url: str = "",
) -> Initiative:
    """Set the register's texts per language (REQ-10: they must match the Commission's register) before
    collection opens; afterwards only initiative_register_correct changes them."""
    stored = Initiative.objects.get(pk=initiative.pk)
    if stored.register_texts_frozen:  # checked before `initiative` is touched; details_save re-checks
        raise _frozen_error(stored, ["title", "subject", "objectives", "register_url", "languages"])
    languages = sorted(set(title) | set(subject) | set(objectives))
    unknown = [code for code in languages if code not in OFFICIAL_LANGUAGE_CODES]
    if unknown:
        raise ValueError(f"Not official EU languages: {', '.join(unknown)}.")
    if initiative.registered_language not in title:
        raise ValueError("The title in the registered language is required.")
    initiative.languages = languages
    initiative.title, initiative.subject, initiative.objectives = title, subject, objectives
    initiative.register_url = register_url
    return initiative_details_save(
        initiative, actor=actor, fields=["languages", "title", "subject", "objectives", "register_url"]
    )


REASON_MAX_LENGTH = 500


def initiative_register_correct(
    initiative: Initiative, *, actor: str, reason: str, **changes: Any
) -> Initiative:
    """The operator's audited correction of the register data (REQ-10), allowed also once collection has
    opened: e.g. to follow a correction the Commission made in its register. `changes` are register
    fields (tenants.register.REGISTER_FIELDS) with their new values; the result must be valid and
    complete, and a reason is required. Raises RegisterCorrectionError and changes nothing otherwise.

    When texts change and `languages` is not given, the languages become those the texts are in. The
    audit row names the changed fields and the reason, not the values: the contact persons are personal
    data, and the append-only audit log could never forget them; the register keeps the texts' history.
    """
    reason = reason.strip()
    if not reason:
        raise RegisterCorrectionError("A register correction needs a reason.")
    if len(reason) > REASON_MAX_LENGTH:
        raise RegisterCorrectionError(f"The reason may be at most {REASON_MAX_LENGTH} characters long.")
    unknown = sorted(set(changes) - set(REGISTER_FIELDS))
    if unknown:
        raise RegisterCorrectionError(f"Not register data: {', '.join(unknown)}.")
    with transaction.atomic():
        stored = Initiative.objects.select_for_update().get(pk=initiative.pk)
        before = {field: getattr(stored, field) for field in REGISTER_FIELDS}
        for field, value in changes.items():
            if field in TEXT_FIELDS and isinstance(value, dict) and all(map(_is_text, value.values())):
                value = {code: text.strip() for code, text in value.items() if text.strip()}
            if field == "contact_persons" and isinstance(value, list | tuple):
                value = [
                    person.as_dict() if isinstance(person, ContactPerson) else person for person in value
                ]
            if field == "register_url" and isinstance(value, str):
                value = value.strip()
            setattr(stored, field, value)
        if "languages" not in changes and any(field in changes for field in TEXT_FIELDS):
            stored.languages = _languages_of_texts(stored)
        problems = register_data_problems(stored)
        if problems:
            raise RegisterCorrectionError("Correction refused. " + " ".join(problems))
        changed = [field for field in REGISTER_FIELDS if getattr(stored, field) != before[field]]
        if not changed:
            raise RegisterCorrectionError("The correction changes nothing.")
        stored.save(update_fields=changed)
        audit_record(
            actor=actor,
            action="initiative.register_corrected",
            initiative=stored,
            fields=changed,
            reason=reason,
            frozen=stored.register_texts_frozen,
        )
    for field in changed:
        setattr(initiative, field, getattr(stored, field))
    return initiative


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _languages_of_texts(initiative: Initiative) -> list[str]:
    codes = {initiative.registered_language}
    for field in TEXT_FIELDS:
        texts = getattr(initiative, field)
        if isinstance(texts, dict):
            codes.update(texts)
    return sorted(codes)
