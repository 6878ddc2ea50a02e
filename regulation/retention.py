"""REQ-18 and REQ-19: by when statements of support and optional e-mail addresses are destroyed."""

from __future__ import annotations

import datetime

from dateutil.relativedelta import relativedelta

from regulation.periods import collection_end

STATEMENTS_KEPT_AFTER_COLLECTION_START = relativedelta(months=21)
STATEMENTS_KEPT_AFTER_SUBMISSION_OR_WITHDRAWAL = relativedelta(months=1)
EMAILS_KEPT_AFTER_WITHDRAWAL = relativedelta(months=1)
EMAILS_KEPT_AFTER_COLLECTION_OR_SUBMISSION = relativedelta(months=12)


def statements_destruction_deadline(
    *,
    collection_start: datetime.date,
    submitted_on: datetime.date | None = None,
    withdrawn_on: datetime.date | None = None,
) -> datetime.date:
    """REQ-18: 21 months after the start of collection, or a month after submission to the Commission
    or after withdrawal, whichever comes first."""
    deadlines = [collection_start + STATEMENTS_KEPT_AFTER_COLLECTION_START]
    for ended in (submitted_on, withdrawn_on):
        if ended is not None:
            deadlines.append(ended + STATEMENTS_KEPT_AFTER_SUBMISSION_OR_WITHDRAWAL)
    return min(deadlines)


def emails_destruction_deadline(
    *,
    collection_start: datetime.date,
    submitted_on: datetime.date | None = None,
    withdrawn_on: datetime.date | None = None,
    closed_on: datetime.date | None = None,
) -> datetime.date:
    """REQ-19: a month after withdrawal, or 12 months after the end of the collection period (an early
    close ends it on `closed_on`), or 12 months after submission, whichever comes first."""
    period_end = collection_end(collection_start)
    if closed_on is not None:
        period_end = min(period_end, closed_on)
    deadlines = [period_end + EMAILS_KEPT_AFTER_COLLECTION_OR_SUBMISSION]
    if submitted_on is not None:
        deadlines.append(submitted_on + EMAILS_KEPT_AFTER_COLLECTION_OR_SUBMISSION)
    if withdrawn_on is not None:
        deadlines.append(withdrawn_on + EMAILS_KEPT_AFTER_WITHDRAWAL)
    return min(deadlines)
