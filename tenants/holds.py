"""REQ-18: legal holds. A hold keeps an initiative's statements past their destruction deadline for legal or
administrative proceedings; the destruction run skips an initiative while it has an active hold
(`tenants.selectors.initiative_active_hold`). Setting and lifting are the only writes, both audited with the
hold's id, the proceedings' reference and the reason."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.audit import audit_record
from tenants.models import Initiative, InitiativeState, LegalHold

REFERENCE_MAX_LENGTH = LegalHold._meta.get_field("reference").max_length or 200
REASON_MAX_LENGTH = 1000


class LegalHoldError(ValueError):
    """A hold that cannot be set or lifted now; `field` names the input at fault, if one is."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _checked_text(value: str, *, field: str, label: str, limit: int, required: bool) -> str:
    value = value.strip()
    if required and not value:
        raise LegalHoldError(f"A legal hold needs a {label}.", field=field)
    if len(value) > limit:
        raise LegalHoldError(f"The {label} may be at most {limit} characters long.", field=field)
    return value


def legal_hold_set(initiative: Initiative, *, reason: str, reference: str, actor: str) -> LegalHold:
    """Put the initiative's statements on hold. Refused for a blank reason or reference, while another
    hold is active (lift it first) and once the initiative is destroyed (nothing is left to hold)."""
    reason = _checked_text(reason, field="reason", label="reason", limit=REASON_MAX_LENGTH, required=True)
    reference = _checked_text(
        reference,
        field="reference",
        label="reference of the proceedings",
        limit=REFERENCE_MAX_LENGTH,
        required=True,
    )
    with transaction.atomic():
        # The initiative's row serialises two holds set at once; the partial unique index backs it up.
        current = Initiative.objects.select_for_update().get(pk=initiative.pk)
        if current.state == InitiativeState.DESTROYED:
            raise LegalHoldError(
                f"{current.slug} is destroyed: its statements no longer exist and cannot be held."
            )
        active = LegalHold.objects.filter(initiative=current, lifted_at__isnull=True).first()
        if active is not None:
            raise LegalHoldError(
                f"{current.slug} already has an active legal hold (reference {active.reference}, set on "
                f"{active.set_at:%Y-%m-%d}); lift it before setting another."
            )
        try:
            with transaction.atomic():
                hold = LegalHold.objects.create(
                    initiative=current,
                    reason=reason,
                    reference=reference,
                    set_by=actor,
                    set_at=timezone.now(),
                )
        except IntegrityError:
            raise LegalHoldError(f"{current.slug} already has an active legal hold.") from None
        audit_record(
            actor=actor,
            action="legal_hold.set",
            initiative=current,
            hold=hold.pk,
            reference=reference,
            reason=reason,
        )
    return hold


def legal_hold_lift(initiative: Initiative, *, actor: str, reason: str = "") -> LegalHold:
    """End the initiative's active hold: the destruction run acts on the deadline again (at once if it has
    passed). Refused when no hold is active."""
    reason = _checked_text(reason, field="reason", label="reason", limit=REASON_MAX_LENGTH, required=False)
    with transaction.atomic():
        current = Initiative.objects.select_for_update().get(pk=initiative.pk)
        hold = (
            LegalHold.objects.select_for_update().filter(initiative=current, lifted_at__isnull=True).first()
        )
        if hold is None:
            raise LegalHoldError(f"{current.slug} has no active legal hold to lift.")
        hold.lifted_by = actor
        hold.lifted_at = timezone.now()
        hold.lift_reason = reason
        hold.save(update_fields=["lifted_by", "lifted_at", "lift_reason"])
        audit_record(
            actor=actor,
            action="legal_hold.lifted",
            initiative=current,
            hold=hold.pk,
            reference=hold.reference,
            reason=reason,
        )
    return hold
