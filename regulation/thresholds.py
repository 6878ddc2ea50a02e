"""REQ-01 and REQ-02: what makes an initiative valid, and the dated Annex I tables of minimum
signatories per Member State."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

# REQ-01: at least a million signatories, and in at least seven Member States the Annex I minimum.
SIGNATORIES_REQUIRED = 1_000_000
MEMBER_STATES_REQUIRED = 7


@dataclass(frozen=True)
class ThresholdTable:
    """One Annex I table: in force for initiatives registered from `applies_from`; its values are the
    column `column` of member_states.csv."""

    applies_from: datetime.date
    column: str


# Newest first. The 2024-2029 term's table applies from the term's start (REQ-02); the table of
# February 2020 before it. Older initiatives than that are not collected on this platform.
THRESHOLD_TABLES = (
    ThresholdTable(datetime.date(2024, 7, 16), "threshold_from_2024_term"),
    ThresholdTable(datetime.date(2020, 2, 1), "threshold_2020_to_2024"),
)


def threshold_table(registered_on: datetime.date) -> ThresholdTable:
    """The table in force on an initiative's registration date (the oldest one before it begins)."""
    for table in THRESHOLD_TABLES:
        if registered_on >= table.applies_from:
            return table
    return THRESHOLD_TABLES[-1]
