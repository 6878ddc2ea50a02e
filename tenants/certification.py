"""Writes for the submission to the Commission: the counts the Member States' authorities certified
(REQ-26) and the funding sources of the Annex VII form (REQ-28). Each refuses bad input with a message
that names what is wrong, writes nothing then, and audits what it changes (counts and digests, never
names of funders or contact persons)."""

from __future__ import annotations

import datetime
import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import PurePath

from django.db import transaction
from django.utils import timezone

from regulation.member_states import member_state
from tenants.audit import audit_record
from tenants.models import CertifiedCount, Initiative, InitiativeState
from tenants.submission import funding_total

# The authority's certificate is a scanned or signed PDF of a page or two; a larger file is a mistake.
DOCUMENT_MAX_BYTES = 10 * 1024 * 1024
DOCUMENT_NAME_MAX_LENGTH = 200  # CertifiedCount.document_name
# The column is a PostgreSQL integer; no Member State has that many citizens anyway.
VALID_STATEMENTS_MAX = 2_147_483_647
# Certificates arrive after collection ended; a correction may still come after the submission.
CERTIFIABLE_STATES = (InitiativeState.CLOSED, InitiativeState.SUBMITTED)

FUNDING_SOURCES_MAX = 200
FUNDING_SOURCE_MAX_LENGTH = 200
FUNDING_AMOUNT_MAX = Decimal("999999999.99")
# Once submitted (or withdrawn, or destroyed) the Annex VII form is what it was.
FUNDING_EDITABLE_STATES = (
    InitiativeState.READY,
    InitiativeState.COLLECTING,
    InitiativeState.PAUSED,
    InitiativeState.CLOSED,
)


class CertificationError(ValueError):
    """Bad input for a certified count; `field` names the input at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CertificateRecorded:
    count: CertifiedCount
    # The record it replaced, as audited (None: the first for this country).
    previous: dict[str, object] | None


def _country(code: str) -> str:
    code = code.strip().upper()
    state = member_state(code) if code.isascii() and code.isalpha() and len(code) == 2 else None
    if state is None:
        if code == "GR":
            raise CertificationError("GR is not an EU country code: use EL for Greece.", field="country")
        shown = repr(code) if len(code) <= 8 else "The code given"
        raise CertificationError(
            f"{shown} is not the EU code of a Member State (two letters such as DE or FR; EL for Greece).",
            field="country",
        )
    return state.code


def _document_name(name: str) -> str:
    # Only the file's own name, printable, as the authority's file was called: never a path.
    name = PurePath(name.replace("\\", "/")).name
    name = "".join(char for char in name if unicodedata.category(char)[0] != "C").strip()
    return name[:DOCUMENT_NAME_MAX_LENGTH] or "certificate"


def _snapshot(count: CertifiedCount) -> dict[str, object]:
    return {
        "valid_statements": count.valid_statements,
        "certified_on": count.certified_on.isoformat(),
        "sha256": count.document_sha256,
        "recorded_by": count.recorded_by,
        "recorded_at": count.recorded_at.isoformat(),
    }


def certified_count_record(
    initiative: Initiative,
    *,
    country: str,
    valid_statements: int,
    certified_on: datetime.date,
    document: bytes | None,
    document_name: str,
    actor: str,
) -> CertificateRecorded:
    """Record the number of valid statements a Member State's authority certified (REQ-26), one per
    country: a second record for the same country replaces the first, and the audit keeps its values.
    A replacement without a document drops the previous document (it certified another number)."""
    code = _country(country)
    if isinstance(valid_statements, bool) or not isinstance(valid_statements, int):
        raise CertificationError("The number of valid statements must be a whole number.", field="valid")
    if valid_statements < 0:
        raise CertificationError("The number of valid statements cannot be negative.", field="valid")
    if valid_statements > VALID_STATEMENTS_MAX:
        raise CertificationError(
            f"The number of valid statements can be at most {VALID_STATEMENTS_MAX:,}.", field="valid"
        )
    if document is not None and len(document) > DOCUMENT_MAX_BYTES:
        raise CertificationError(
            f"The document is {len(document):,} bytes; at most {DOCUMENT_MAX_BYTES:,} bytes "
            f"({DOCUMENT_MAX_BYTES // (1024 * 1024)} MiB) are accepted.",
            field="document",
        )
    if document is not None and not document:
        raise CertificationError("The document is empty.", field="document")
    today = timezone.localdate()
    if certified_on > today:
        raise CertificationError(
            f"The certification date {certified_on.isoformat()} is in the future "
            f"(today is {today.isoformat()}).",
            field="certified_on",
        )
    with transaction.atomic():
        # The initiative's row lock orders this against a state change (submission checks these counts).
        current = Initiative.objects.select_for_update().get(pk=initiative.pk)
        if current.state not in CERTIFIABLE_STATES:
            raise CertificationError(
                f"The initiative is {current.state}: certified counts are recorded only once collection "
                f"has ended, when it is {' or '.join(CERTIFIABLE_STATES)}.",
                field="initiative",
            )
        # Closed by an older release without the date: the collection start is the least we know.
        ended = current.closed_on or current.collection_start
        if certified_on < ended:
            raise CertificationError(
                f"The certification date {certified_on.isoformat()} is before collection ended "
                f"({ended.isoformat()}): an authority certifies statements after they were collected.",
                field="certified_on",
            )
        existing = CertifiedCount.objects.select_for_update().filter(initiative=current, country=code).first()
        previous = _snapshot(existing) if existing is not None else None
        sha256 = hashlib.sha256(document).hexdigest() if document is not None else ""
        values = {
            "valid_statements": valid_statements,
            "certified_on": certified_on,
            "document": document or b"",
            "document_name": _document_name(document_name) if document is not None else "",
            "document_sha256": sha256,
            "recorded_by": actor,
            "recorded_at": timezone.now(),
        }
        count, _created = CertifiedCount.objects.update_or_create(
            initiative=current, country=code, defaults=values
        )
        audit_record(
            actor=actor,
            action="certificate.recorded",
            initiative=current,
            country=code,
            valid_statements=valid_statements,
            certified_on=certified_on.isoformat(),
            sha256=sha256,
            previous=previous,
        )
    return CertificateRecorded(count=count, previous=previous)


class FundingSourcesError(ValueError):
    """Bad funding sources; `messages` says what, row by row (rows count from 1)."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(" ".join(messages))
        self.messages = messages


def _amount(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _funding_sources_clean(sources: Sequence[Mapping[str, object]]) -> list[dict[str, str]]:
    problems: list[str] = []
    cleaned: list[dict[str, str]] = []
    seen: set[str] = set()
    if len(sources) > FUNDING_SOURCES_MAX:
        raise FundingSourcesError([f"At most {FUNDING_SOURCES_MAX} funding sources can be listed."])
    for row, entry in enumerate(sources, start=1):
        raw_source = entry.get("source")
        source = " ".join(raw_source.split()) if isinstance(raw_source, str) else ""
        amount = _amount(entry.get("amount_eur"))
        if not source:
            problems.append(f"Row {row}: name the source.")
        elif len(source) > FUNDING_SOURCE_MAX_LENGTH:
            problems.append(f"Row {row}: the source may be at most {FUNDING_SOURCE_MAX_LENGTH} characters.")
        elif any(unicodedata.category(char)[0] == "C" for char in source):
            problems.append(f"Row {row}: the source contains control characters.")
        elif source.casefold() in seen:
            problems.append(f"Row {row}: this source is listed twice; give it once with the total amount.")
        if amount is None:
            problems.append(f"Row {row}: the amount must be a number of euros, such as 1500 or 1500.50.")
        elif amount < 0:
            problems.append(f"Row {row}: the amount cannot be negative.")
        elif amount > FUNDING_AMOUNT_MAX:
            problems.append(f"Row {row}: the amount can be at most {FUNDING_AMOUNT_MAX:,} euros.")
        elif amount != amount.quantize(Decimal("0.01")):
            problems.append(f"Row {row}: the amount has at most two decimals (cents).")
        if source:
            seen.add(source.casefold())
        if amount is not None and not problems:
            cleaned.append({"source": source, "amount_eur": f"{amount:.2f}"})
    if problems:
        raise FundingSourcesError(problems)
    return cleaned


def initiative_funding_sources_set(
    initiative: Initiative, sources: Sequence[Mapping[str, object]], *, actor: str
) -> Initiative:
    """Replace the initiative's Annex VII funding sources (REQ-28) with `sources`, a list of
    {"source": name, "amount_eur": Decimal, int or string} in the order given. All or nothing."""
    cleaned = _funding_sources_clean(sources)
    with transaction.atomic():
        current = Initiative.objects.select_for_update().get(pk=initiative.pk)
        if current.state not in FUNDING_EDITABLE_STATES:
            raise FundingSourcesError(
                [
                    f"The initiative is {current.state}: its funding sources can change only while it is "
                    f"{', '.join(FUNDING_EDITABLE_STATES)}."
                ]
            )
        previous = list(current.funding_sources or [])
        if previous != cleaned:
            Initiative.objects.filter(pk=current.pk).update(funding_sources=cleaned)
            # Funders may be people: the audit holds how many and how much, not who.
            audit_record(
                actor=actor,
                action="initiative.funding_sources_set",
                initiative=current,
                sources=len(cleaned),
                total_eur=f"{funding_total(cleaned):.2f}",
                previous_sources=len(previous),
                previous_total_eur=f"{funding_total(previous):.2f}",
            )
    initiative.funding_sources = cleaned
    return initiative
