"""Forms of the organisers' export pages. English only for now: the organiser pages are not translated yet,
and a gettext message here would have to exist in all 24 languages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import User

from collection.forms import nationality_choices
from exports.downloads import DownloadKind
from exports.selectors import organiser_of
from tenants.models import Initiative

ALL_COUNTRIES = "all"

# One message for an unknown user, a wrong password, an inactive account and a user who does not organise
# this initiative: the page must not tell which.
INVALID_LOGIN = "The e-mail address (or user name) and password do not match an organiser of this initiative."


class OrganiserAuthenticationForm(AuthenticationForm):
    error_messages = {"invalid_login": INVALID_LOGIN, "inactive": INVALID_LOGIN}

    def __init__(self, request: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "E-mail address or user name"
        self.fields["username"].error_messages["required"] = "Enter your e-mail address or user name."
        self.fields["password"].label = "Password"
        self.fields["password"].error_messages["required"] = "Enter your password."

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        # Checked after the password, with the same message: a right password of a non-organiser looks
        # like a wrong one.
        # Roles are kept apart (tenants/roles.py): an operator staff account never signs in here.
        initiative: Initiative = self.request.tenant  # type: ignore[union-attr]
        if user.is_staff or user.is_superuser or not organiser_of(user.pk, initiative.pk):
            raise self.get_invalid_login_error()


def country_choices() -> list[tuple[str, str]]:
    """The choice of all countries first, then the 27 Member States by English name (EL for Greece)."""
    states = [(code, f"{name} ({code})") for code, name in nationality_choices("en")]
    return [("", "Choose"), (ALL_COUNTRIES, "All countries with statements"), *states]


class ExportRequestForm(forms.Form):
    # The messages never repeat what was sent: it may be anything, of any length.
    country = forms.ChoiceField(
        label="Member State",
        choices=country_choices,
        error_messages={
            "required": "Choose a Member State, or all countries.",
            "invalid_choice": "Choose a Member State from the list, or all countries.",
        },
    )


class DownloadLinkForm(forms.Form):
    kind = forms.ChoiceField(
        choices=[(kind.value, kind.value) for kind in DownloadKind],
        error_messages={
            "required": "Say what to download: the file or its manifest.",
            "invalid_choice": "Say what to download: the file or its manifest.",
        },
    )


class FundingSourceForm(forms.Form):
    """One row of the Annex VII funding sources (REQ-28); a blank extra row is left out."""

    source = forms.CharField(
        label="Source of support or funding",
        max_length=200,
        error_messages={
            "required": "Name the source, or leave the whole row empty.",
            "max_length": "The source may be at most 200 characters.",
        },
    )
    amount_eur = forms.DecimalField(
        label="Amount in euros",
        min_value=0,
        max_digits=11,
        decimal_places=2,
        error_messages={
            "required": "Give the amount in euros (0 for support in kind), or leave the whole row empty.",
            "invalid": "The amount must be a number of euros, such as 1500 or 1500.50.",
            "min_value": "The amount cannot be negative.",
            "max_digits": "The amount can be at most 999,999,999.99 euros.",
            "max_decimal_places": "The amount has at most two decimals (cents).",
            "max_whole_digits": "The amount can be at most 999,999,999.99 euros.",
        },
    )


# Two blank rows to add sources; removing one is its "Remove" box. No script: the page works without.
FundingSourceFormSet = forms.formset_factory(
    FundingSourceForm, extra=2, can_delete=True, max_num=200, validate_max=True, absolute_max=200
)
