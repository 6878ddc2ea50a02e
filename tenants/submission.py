"""Reads for the end of an initiative's life: its certified counts (REQ-26), whether they make it valid
(REQ-01), and the Annex VII submission to the Commission built from them (REQ-28). One builder serves
the organisers' page, the operator console and JSON alike."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from regulation.member_states import member_state
from regulation.validity import Validity, initiative_validity
from tenants.models import CertifiedCount, Initiative


def initiative_certified_counts(initiative: Initiative) -> list[CertifiedCount]:
    # The document itself stays in the database: pages and JSON show its digest only.
    return list(CertifiedCount.objects.filter(initiative=initiative).defer("document").order_by("country"))


def initiative_certified_validity(initiative: Initiative) -> Validity:
    """REQ-01 from the counts certified so far."""
    counts = initiative_certified_counts(initiative)
    return initiative_validity(
        {count.country: count.valid_statements for count in counts}, initiative.registered_on
    )


def funding_total(sources: list[dict[str, str]]) -> Decimal:
    return sum((Decimal(source["amount_eur"]) for source in sources), Decimal("0.00"))


def annex_vii_submission(initiative: Initiative) -> dict[str, Any]:
    """The Annex VII form's content (REQ-28) as plain data: dates are dates, amounts strings of euros
    with two decimals. JSON and the printable page both render this one dictionary."""
    counts = initiative_certified_counts(initiative)
    validity = initiative_validity(
        {count.country: count.valid_statements for count in counts}, initiative.registered_on
    )
    by_code = {state.code: state for state in validity.states}
    states = []
    for count in counts:
        state = by_code[count.country]
        known = member_state(count.country)
        states.append(
            {
                "code": count.country,
                "name": known.name if known else count.country,
                "certified": count.valid_statements,
                "certified_on": count.certified_on,
                "threshold": state.threshold,
                "reached": state.reached,
                "document_sha256": count.document_sha256,
            }
        )
    sources = list(initiative.funding_sources or [])
    return {
        "form": "Annex VII, Regulation (EU) 2019/788",
        "initiative": initiative.slug,
        "state": str(initiative.state),
        "title": initiative.text("title", initiative.registered_language),
        "registered_language": initiative.registered_language,
        "registration_number": initiative.registration_number,
        "registered_on": initiative.registered_on,
        "register_url": initiative.register_url,
        "collection_period": {
            "start": initiative.collection_opened_on or initiative.collection_start,
            # The day collection ended: an early close, else the period's last day.
            "end": initiative.closed_on or initiative.collection_end,
        },
        "total_valid": validity.total,
        "member_states": states,
        "validity": validity.summary(),
        "contact_persons": [
            {"name": person.get("name", ""), "email": person.get("email", "")}
            for person in initiative.contact_persons or []
        ],
        "funding_sources": [
            {"source": source["source"], "amount_eur": source["amount_eur"]} for source in sources
        ],
        "funding_total_eur": f"{funding_total(sources):.2f}",
        "submitted_on": initiative.submitted_on,
    }
