from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings

from regulation.member_states import member_states
from tenants.holds import REASON_MAX_LENGTH, REFERENCE_MAX_LENGTH
from tenants.models import Initiative
from tenants.onboarding import OnboardingRequest
from tenants.register import ContactPerson, contact_person_format, contact_person_parse


def contact_persons_parse_lines(text: str) -> tuple[ContactPerson, ...]:
    """One contact person per non-blank line, as Name <email>; the errors name the line, not its text."""
    persons, errors = [], []
    lines = [line for line in text.splitlines() if line.strip()]
    for number, line in enumerate(lines, start=1):
        try:
            persons.append(contact_person_parse(line))
        except ValueError as error:
            errors.append(f"Line {number}: {error}")
    if errors:
        raise forms.ValidationError(errors)
    return tuple(persons)


class OnboardingForm(forms.Form):
    slug = forms.CharField(max_length=63, help_text="Subdomain of the initiative's site.")
    registration_number = forms.CharField(
        max_length=16, help_text="As on the register, e.g. ECI(2026)000001."
    )
    title = forms.CharField(max_length=200, help_text="In the registered language, as on the register.")
    subject = forms.CharField(max_length=200, help_text="In the registered language, as on the register.")
    objectives = forms.CharField(
        max_length=1200,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="In the registered language, as on the register.",
    )
    register_url = forms.URLField(
        max_length=200, assume_scheme="https", help_text="The initiative's page on the Commission's register."
    )
    contact_persons = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, as Name <email>: the representative and the substitute, at least two.",
    )
    registered_on = forms.DateField(help_text="YYYY-MM-DD")
    collection_start = forms.DateField(help_text="YYYY-MM-DD, at most 6 months after registration.")
    language = forms.ChoiceField(choices=settings.LANGUAGES, initial="en")

    def clean_contact_persons(self) -> tuple[ContactPerson, ...]:
        return contact_persons_parse_lines(self.cleaned_data["contact_persons"])

    def onboarding_request(self) -> OnboardingRequest:
        data = self.cleaned_data
        return OnboardingRequest(
            slug=data["slug"].strip().lower(),
            registration_number=data["registration_number"].strip(),
            title=data["title"],
            subject=data["subject"],
            objectives=data["objectives"],
            register_url=data["register_url"],
            contact_persons=data["contact_persons"],
            registered_on=data["registered_on"],
            collection_start=data["collection_start"],
            language=data["language"],
        )


class RegisterCorrectionForm(forms.Form):
    """The operator's audited correction of an initiative's register data (REQ-10); the texts are per
    language, as JSON objects: {"en": "...", "fr": "..."}."""

    registered_language = forms.ChoiceField(choices=settings.LANGUAGES)
    languages = forms.CharField(
        max_length=200,
        help_text="The languages the site offers, as codes separated by commas. Leave it as it is to "
        "take the languages of the texts.",
    )
    title = forms.JSONField(widget=forms.Textarea(attrs={"rows": 3}))
    subject = forms.JSONField(widget=forms.Textarea(attrs={"rows": 3}))
    objectives = forms.JSONField(widget=forms.Textarea(attrs={"rows": 8}))
    register_url = forms.URLField(max_length=200, assume_scheme="https")
    contact_persons = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line, as Name <email>: the representative and the substitute, at least two.",
    )
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why the register data changes (e.g. the Commission's correction of its register); "
        "recorded in the audit log.",
    )

    @classmethod
    def for_initiative(cls, initiative: Initiative, data: Any = None) -> RegisterCorrectionForm:
        initial = {
            "registered_language": initiative.registered_language,
            "languages": ", ".join(initiative.languages or []),
            "title": initiative.title,
            "subject": initiative.subject,
            "objectives": initiative.objectives,
            "register_url": initiative.register_url,
            "contact_persons": "\n".join(
                contact_person_format(person)
                for person in initiative.contact_persons or []
                if isinstance(person, dict)
            ),
        }
        return cls(data, initial=initial)

    def clean_languages(self) -> list[str]:
        return [code for code in re.split(r"[\s,]+", self.cleaned_data["languages"].lower()) if code]

    def clean_contact_persons(self) -> list[dict[str, str]]:
        return [
            person.as_dict() for person in contact_persons_parse_lines(self.cleaned_data["contact_persons"])
        ]

    def clean_reason(self) -> str:
        reason: str = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A correction needs a reason.")
        return reason

    def changes(self) -> dict[str, Any]:
        """The register fields the operator changed, with their new values."""
        return {field: self.cleaned_data[field] for field in self.changed_data if field != "reason"}


class AuthorityRegistrationForm(forms.Form):
    country = forms.ChoiceField(choices=[(code, code) for code in member_states()])
    name = forms.CharField(max_length=200, required=False, help_text="The competent authority's name.")
    certificate = forms.FileField(
        help_text="The authority's X.509 certificate (PEM or DER), RSA of 3072 bits or more.",
    )

    def clean_certificate(self) -> bytes:
        upload = self.cleaned_data["certificate"]
        if upload.size > 64 * 1024:
            raise forms.ValidationError("A certificate is a few kilobytes; this file is too large.")
        data: bytes = upload.read()
        return data


class AuthorityConfirmationForm(forms.Form):
    fingerprint = forms.CharField(
        max_length=200,
        help_text="The SHA-256 fingerprint the authority gave you through another channel (telephone, "
        "signed letter); colons and case do not matter.",
    )


class LegalHoldSetForm(forms.Form):
    reference = forms.CharField(
        max_length=REFERENCE_MAX_LENGTH,
        help_text="The reference of the legal or administrative proceedings, e.g. a case number.",
    )
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Why the statements must be kept past their deadline (REQ-18). Recorded in the audit log: "
        "no personal data.",
    )


class LegalHoldLiftForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Optional: why the hold ends (e.g. the proceedings closed). Recorded in the audit log.",
    )
