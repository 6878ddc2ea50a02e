from __future__ import annotations

from django import forms
from django.conf import settings

from regulation.member_states import member_states
from tenants.holds import REASON_MAX_LENGTH, REFERENCE_MAX_LENGTH
from tenants.onboarding import OnboardingRequest


class OnboardingForm(forms.Form):
    slug = forms.CharField(max_length=63, help_text="Subdomain of the initiative's site.")
    registration_number = forms.CharField(
        max_length=16, help_text="As on the register, e.g. ECI(2026)000001."
    )
    title = forms.CharField(max_length=200)
    registered_on = forms.DateField(help_text="YYYY-MM-DD")
    collection_start = forms.DateField(help_text="YYYY-MM-DD, at most 6 months after registration.")
    language = forms.ChoiceField(choices=settings.LANGUAGES, initial="en")
    organiser_email = forms.EmailField(required=False, help_text="The first organiser's account.")

    def onboarding_request(self) -> OnboardingRequest:
        data = self.cleaned_data
        return OnboardingRequest(
            slug=data["slug"].strip().lower(),
            registration_number=data["registration_number"].strip(),
            title=data["title"],
            registered_on=data["registered_on"],
            collection_start=data["collection_start"],
            language=data["language"],
            organiser_email=data.get("organiser_email") or "",
        )


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
