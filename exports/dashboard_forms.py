"""Forms of the organisers' dashboard: pausing, resuming or closing collection, and the audit trail's
filter. Translated: the dashboard is shown in the 24 official languages."""

from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from collection.forms import DATE_MESSAGES, FIELD_MESSAGES
from collection.validation import clean_text
from tenants.models import InitiativeState

REASON_MAX_LENGTH = 500

# What an organiser may do with collection: the state it goes to, and the states it may start from
# (closing before collection started would be a withdrawal: the operator's business).
COLLECTION_ACTIONS: dict[str, tuple[str, frozenset[str]]] = {
    "pause": (InitiativeState.PAUSED, frozenset({InitiativeState.COLLECTING})),
    "resume": (InitiativeState.COLLECTING, frozenset({InitiativeState.PAUSED})),
    "close": (InitiativeState.CLOSED, frozenset({InitiativeState.COLLECTING, InitiativeState.PAUSED})),
}


class CollectionControlForm(forms.Form):
    action = forms.ChoiceField(
        choices=[(name, name) for name in COLLECTION_ACTIONS],
        error_messages=FIELD_MESSAGES,
        widget=forms.HiddenInput,
    )
    reason = forms.CharField(
        label=_("Reason"),
        help_text=_(
            "Recorded in the audit trail, which the organisers and the operator see. No personal data."
        ),
        max_length=REASON_MAX_LENGTH,
        error_messages={**FIELD_MESSAGES, "required": _("Give a reason.")},
        widget=forms.Textarea(attrs={"rows": 2, "cols": 40}),
    )
    confirm = forms.BooleanField(
        label=_("I understand that closing cannot be undone."),
        required=False,
    )

    def clean_reason(self) -> str:
        reason = clean_text(self.cleaned_data["reason"], max_length=REASON_MAX_LENGTH)
        if not reason:
            raise forms.ValidationError(_("Give a reason."), code="required")
        return reason

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("action") == "close" and not cleaned.get("confirm"):
            self.add_error("confirm", _("Confirm that closing cannot be undone."))
        return cleaned


class AuditFilterForm(forms.Form):
    """GET parameters of the audit trail: `action`, `since` and `until` (YYYY-MM-DD), all optional."""

    action = forms.ChoiceField(label=_("Action"), required=False, error_messages=FIELD_MESSAGES)
    since = forms.DateField(
        label=_("From"),
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages=DATE_MESSAGES,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    until = forms.DateField(
        label=_("To"),
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages=DATE_MESSAGES,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args: Any, actions: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["action"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", _("All actions")), *((action, action) for action in actions)]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since: datetime.date | None = cleaned.get("since")
        until: datetime.date | None = cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", _("The end date must not be before the start date."))
        return cleaned
