"""Panels of the organisers' pages that any of them can include with one line (e.g. manage/_deadlines.html),
without each view gathering their data."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from exports.contact_emails import contact_emails_status
from tenants.deadlines import initiative_deadline_panel

register = template.Library()


@register.simple_tag(takes_context=True)
def manage_deadlines(context: template.Context) -> dict[str, Any]:
    """The current initiative's deadlines, holds, destruction records and e-mail addresses: only its own
    (request.tenant), on a page behind organiser_required."""
    initiative = context["request"].tenant
    today = timezone.localdate()
    return {
        "panel": initiative_deadline_panel(initiative, today=today),
        "emails": contact_emails_status(initiative, today=today),
    }
