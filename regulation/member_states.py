"""The Member States' choices under Annex III, as data (regulation/data/member_states.csv, taken from
the regulation's tables): Part A or B, the accepted documents, the minimum age, the thresholds."""

from __future__ import annotations

import csv
import datetime
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from regulation.annex_iii import DOCUMENT_TYPES
from regulation.thresholds import THRESHOLD_TABLES, threshold_table

DATA = Path(__file__).with_name("data") / "member_states.csv"


@dataclass(frozen=True)
class MemberState:
    code: str  # as in EU documents: EL for Greece
    name: str
    annex_iii_part: str  # "A" or "B"
    accepted_documents: tuple[str, ...]  # Part B only
    minimum_age: int  # REQ-03
    thresholds: dict[str, int]  # REQ-02: by the CSV column of each dated Annex I table

    def __hash__(self) -> int:
        return hash(self.code)

    @property
    def is_part_a(self) -> bool:
        return self.annex_iii_part == "A"

    def threshold(self, registered_on: datetime.date) -> int:
        """REQ-02: the Annex I minimum in force on the initiative's registration date."""
        return self.thresholds[threshold_table(registered_on).column]


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
            thresholds={table.column: int(row[table.column]) for table in THRESHOLD_TABLES},
        )
        for row in rows
    }
    for state in states.values():
        documents_as_expected = (state.annex_iii_part == "B") == bool(state.accepted_documents)
        unknown_documents = set(state.accepted_documents) - DOCUMENT_TYPES
        if state.annex_iii_part not in ("A", "B") or not documents_as_expected or unknown_documents:
            raise ValueError(f"member_states.csv: inconsistent row for {state.code}")
    return states


def member_state(code: str) -> MemberState | None:
    return member_states().get(code.upper())


def iso_code(code: str) -> str:
    """EU documents say EL for Greece; ISO 3166 (and Babel) say GR."""
    return "GR" if code == "EL" else code
