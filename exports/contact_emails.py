"""REQ-19: the organisers' download of the optional e-mail addresses signatories gave with their consent.
Only until the addresses' destruction deadline (inclusive) and only while they have not been destroyed;
every download is audited with the number of addresses, never an address."""

from __future__ import annotations

import csv
import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from collection.selectors import contact_emails_count, contact_emails_opened
from tenants.audit import audit_record
from tenants.models import DestructionRecord, Initiative
from tenants.selectors import initiative_deadlines

CSV_HEADER = "email"
# Rows written per chunk of the response: fewer, larger writes to the client.
ROWS_PER_CHUNK = 500
# A cell a spreadsheet would run as a formula (CSV injection). An address may begin with "=", "+" or "-".
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ContactEmailsStatus:
    """Whether the addresses can be downloaded, and why not."""

    count: int
    deadline: datetime.date  # REQ-19, the last day they may be used
    # The finished destruction that took them.
    destroyed: DestructionRecord | None
    past_deadline: bool

    @property
    def available(self) -> bool:
        return self.destroyed is None and not self.past_deadline


class ContactEmailsGoneError(Exception):
    """The addresses were destroyed or are past their deadline: nothing may be downloaded."""

    def __init__(self, status: ContactEmailsStatus) -> None:
        super().__init__("The e-mail addresses are destroyed or due for destruction (REQ-19).")
        self.status = status


@dataclass(frozen=True)
class ContactEmailsDownload:
    count: int  # when the download began
    filename: str
    lines: Iterator[str]  # the CSV, in chunks of lines


def contact_emails_status(initiative: Initiative, *, today: datetime.date) -> ContactEmailsStatus:
    """Run with the initiative's schema active."""
    deadlines = initiative_deadlines(initiative)
    # Destroying the statements first moves the addresses to a key of their own: they stay usable.
    destroyed = deadlines.emails_destroyed
    return ContactEmailsStatus(
        count=0 if destroyed is not None else contact_emails_count(),
        deadline=deadlines.emails_destruction,
        destroyed=destroyed,
        past_deadline=today > deadlines.emails_destruction,
    )


def contact_emails_download(
    initiative: Initiative, *, actor: str, today: datetime.date
) -> ContactEmailsDownload:
    """The addresses as a CSV stream (header "email", oldest first), audited as "emails.downloaded" with
    their number. Run with the initiative's schema active."""
    status = contact_emails_status(initiative, today=today)
    if not status.available:
        raise ContactEmailsGoneError(status)
    audit_record(actor=actor, action="emails.downloaded", initiative=initiative, count=status.count)
    return ContactEmailsDownload(
        count=status.count,
        filename=f"{initiative.slug}-email-addresses-{today:%Y-%m-%d}.csv",
        lines=contact_emails_csv(contact_emails_opened(initiative.pk)),
    )


class _Echo:
    """A file for csv.writer that hands each formatted row back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _spreadsheet_safe(address: str) -> str:
    # OWASP's advice against CSV injection: a leading apostrophe keeps a spreadsheet from running it.
    return f"'{address}" if address.startswith(_FORMULA_STARTS) else address


def contact_emails_csv(addresses: Iterable[str]) -> Iterator[str]:
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    chunk = [writer.writerow([CSV_HEADER])]
    for address in addresses:
        chunk.append(writer.writerow([_spreadsheet_safe(address)]))
        if len(chunk) >= ROWS_PER_CHUNK:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)
