"""The Member States' choices under Annex III, as data (collection/data/member_states.csv, taken from
the regulation's tables): Part A or B, the accepted documents, the minimum age, the thresholds."""

from __future__ import annotations

import csv
import datetime
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).with_name("data") / "member_states.csv"
# REQ-02: the Annex I table of the 2024-2029 term applies to initiatives registered from its start.
THRESHOLDS_2024_TERM_FROM = datetime.date(2024, 7, 16)
THRESHOLDS_2020_TABLE_FROM = datetime.date(2020, 2, 1)


@dataclass(frozen=True)
class MemberState:
    code: str  # as in EU documents: EL for Greece
    name: str
    annex_iii_part: str  # "A" or "B"
    accepted_documents: tuple[str, ...]  # Part B only
    minimum_age: int  # REQ-03
    threshold_from_2024_term: int
    threshold_2020_to_2024: int

    @property
    def is_part_a(self) -> bool:
        return self.annex_iii_part == "A"

    def threshold(self, registered_on: datetime.date) -> int:
        """REQ-02: the Annex I minimum in force on the initiative's registration date."""
        if registered_on >= THRESHOLDS_2024_TERM_FROM:
            return self.threshold_from_2024_term
        return self.threshold_2020_to_2024


@cache
def member_states() -> dict[str, MemberState]:
    with DATA.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    states = {
        row["code"]: MemberState(
            code=row["code"],
            name=row["name"],
            annex_iii_part=row["annex_iii_part"],
            accepted_documents=tuple(doc for doc in row["accepted_documents"].split(";") if doc),
            minimum_age=int(row["min_age"]),
            threshold_from_2024_term=int(row["threshold_from_2024_term"]),
            threshold_2020_to_2024=int(row["threshold_2020_to_2024"]),
        )
        for row in rows
    }
    for state in states.values():
        documents_as_expected = (state.annex_iii_part == "B") == bool(state.accepted_documents)
        if state.annex_iii_part not in ("A", "B") or not documents_as_expected:
            raise ValueError(f"member_states.csv: inconsistent row for {state.code}")
    return states


def member_state(code: str) -> MemberState | None:
    return member_states().get(code.upper())


def iso_code(code: str) -> str:
    """EU documents say EL for Greece; ISO 3166 (and Babel) say GR."""
    return "GR" if code == "EL" else code
