"""REQ-05, REQ-07 and REQ-25: when collection may start, how long it lasts, and by when the statements
go to the authorities."""

from __future__ import annotations

import datetime

from dateutil.relativedelta import relativedelta

# REQ-07: at most 12 months of collection, starting no later than 6 months after registration.
COLLECTION_PERIOD = relativedelta(months=12)
LATEST_START_AFTER_REGISTRATION = relativedelta(months=6)
# REQ-25: the statements go to the competent authorities within 3 months of the end of collection.
SUBMISSION_TO_AUTHORITIES_PERIOD = relativedelta(months=3)


def collection_end(collection_start: datetime.date) -> datetime.date:
    """The last day (inclusive) of a collection period that starts on `collection_start`."""
    return collection_start + COLLECTION_PERIOD - datetime.timedelta(days=1)


def latest_collection_start(registered_on: datetime.date) -> datetime.date:
    return registered_on + LATEST_START_AFTER_REGISTRATION


def authorities_submission_deadline(collection_ended_on: datetime.date) -> datetime.date:
    """REQ-25: the last day to submit the statements to the authorities, counted from the day
    collection ended (the period's end, or an earlier close)."""
    return collection_ended_on + SUBMISSION_TO_AUTHORITIES_PERIOD
