"""Writes on initiatives after onboarding: the lifecycle (the one place that changes `state`) and the
details an operator may edit. Every change is recorded in the audit log."""

from __future__ import annotations

import datetime

from django.db import transaction
from django.utils import timezone

from regulation.languages import OFFICIAL_LANGUAGE_CODES
from regulation.periods import COLLECTION_PERIOD
from tenants.audit import SYSTEM_ACTOR, audit_record
from tenants.models import (
    Initiative,
    InitiativeState,
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


def initiative_transition(
    initiative: Initiative, to_state: str, *, actor: str, reason: str = ""
) -> Initiative:
    """Move an initiative along its lifecycle; the only place that changes `state`."""
    to_state = InitiativeState(to_state)
    with transaction.atomic():
        current = Initiative.objects.select_for_update().get(pk=initiative.pk)
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
    """Open initiatives whose collection period has begun and close those whose period has ended."""
    today = today or timezone.localdate()
    opened = closed = 0
    for initiative in Initiative.objects.filter(state=InitiativeState.READY, collection_start__lte=today):
        if today <= initiative.collection_end:
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
    return {"opened": opened, "closed": closed}


# What the operator may edit on an initiative after onboarding; identity, schema and state are not here.
EDITABLE_DETAILS = (
    "registered_language",
    "languages",
    "title",
    "subject",
    "objectives",
    "register_url",
    "website_url",
    "contact_persons",
    "altcha_cost",
)


def initiative_details_save(initiative: Initiative, *, actor: str, fields: list[str]) -> Initiative:
    """Save the named, already-set fields of `initiative` and audit the ones whose value changed."""
    not_editable = sorted(set(fields) - set(EDITABLE_DETAILS))
    if not_editable:
        raise ValueError(f"Not editable after onboarding: {', '.join(not_editable)}.")
    with transaction.atomic():
        stored = Initiative.objects.select_for_update().get(pk=initiative.pk)
        changed = sorted(
            field for field in set(fields) if getattr(stored, field) != getattr(initiative, field)
        )
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
    """Set the register's texts per language (REQ-10: they must match the Commission's register)."""
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
