"""The law as data (regulation/): dated thresholds, the collection period, the submission and
destruction deadlines, the official languages and the Member States' data, checked against the
requirements they come from. No database: the package imports no framework."""

from __future__ import annotations

import csv
import datetime
from pathlib import Path

import pytest

import regulation.member_states as module
from regulation.annex_iii import DOCUMENT_TYPES, FORM_REVISION, FORM_REVISION_NUMBERS
from regulation.languages import OFFICIAL_LANGUAGE_CODES, OFFICIAL_LANGUAGES
from regulation.member_states import DATA, member_state, member_states
from regulation.periods import authorities_submission_deadline, collection_end, latest_collection_start
from regulation.retention import emails_destruction_deadline, statements_destruction_deadline
from regulation.thresholds import MEMBER_STATES_REQUIRED, SIGNATORIES_REQUIRED, threshold_table

D = datetime.date


def test_the_annex_i_table_is_the_one_in_force_on_the_registration_date() -> None:
    """REQ-02: the 720-seat table from the 2024 term's start, the table of 2020 before it."""
    germany = member_state("DE")
    assert germany is not None
    assert threshold_table(D(2024, 7, 16)).column == "threshold_from_2024_term"
    assert threshold_table(D(2024, 7, 15)).column == "threshold_2020_to_2024"
    assert germany.threshold(D(2025, 1, 1)) == 69120  # 96 MEPs x 720
    assert germany.threshold(D(2024, 7, 15)) == 67680  # 96 MEPs x 705, the table of February 2020
    assert (SIGNATORIES_REQUIRED, MEMBER_STATES_REQUIRED) == (1_000_000, 7)  # REQ-01


def test_every_state_has_a_threshold_in_every_table_and_27_states_are_known() -> None:
    states = member_states()
    assert len(states) == 27 and "EL" in states and "GR" not in states
    for state in states.values():
        for registered in (D(2021, 1, 1), D(2025, 1, 1)):
            assert state.threshold(registered) > 0


def test_the_collection_period_lasts_twelve_months_to_the_day_before() -> None:
    """REQ-07: at most 12 months, starting at most 6 months after registration."""
    assert collection_end(D(2026, 3, 1)) == D(2027, 2, 28)
    assert collection_end(D(2024, 2, 29)) == D(2025, 2, 27)
    assert latest_collection_start(D(2026, 1, 31)) == D(2026, 7, 31)


def test_the_statements_go_to_the_authorities_within_three_months() -> None:
    """REQ-25: counted from the day collection ended."""
    assert authorities_submission_deadline(D(2027, 2, 28)) == D(2027, 5, 28)


@pytest.mark.parametrize(
    ("submitted_on", "withdrawn_on", "expected"),
    [
        (None, None, D(2027, 12, 1)),  # 21 months after the start
        (D(2027, 6, 10), None, D(2027, 7, 10)),  # a month after submission comes first
        (None, D(2026, 5, 20), D(2026, 6, 20)),  # a month after withdrawal
        (D(2027, 11, 15), None, D(2027, 12, 1)),  # submitted late: 21 months still bound it
    ],
)
def test_statements_are_destroyed_by_the_first_deadline_of_req_18(
    submitted_on: D | None, withdrawn_on: D | None, expected: D
) -> None:
    assert (
        statements_destruction_deadline(
            collection_start=D(2026, 3, 1), submitted_on=submitted_on, withdrawn_on=withdrawn_on
        )
        == expected
    )


@pytest.mark.parametrize(
    ("submitted_on", "withdrawn_on", "expected"),
    [
        (None, None, D(2028, 2, 28)),  # 12 months after the end of collection (2027-02-28)
        (D(2027, 5, 1), None, D(2028, 2, 28)),  # 12 months after submission is later here
        (None, D(2026, 5, 20), D(2026, 6, 20)),  # a month after withdrawal
    ],
)
def test_email_addresses_are_destroyed_by_the_first_deadline_of_req_19(
    submitted_on: D | None, withdrawn_on: D | None, expected: D
) -> None:
    assert (
        emails_destruction_deadline(
            collection_start=D(2026, 3, 1), submitted_on=submitted_on, withdrawn_on=withdrawn_on
        )
        == expected
    )


def test_the_24_official_languages_once_each() -> None:
    codes = [code for code, _name in OFFICIAL_LANGUAGES]
    assert len(codes) == 24 == len(OFFICIAL_LANGUAGE_CODES) == len(set(codes))
    assert {"en", "ga", "mt", "hr"} <= OFFICIAL_LANGUAGE_CODES


def test_the_form_revision_has_its_number_and_every_document_of_the_data_is_known() -> None:
    assert FORM_REVISION_NUMBERS[FORM_REVISION] == 1
    accepted = {doc for state in member_states().values() for doc in state.accepted_documents}
    assert accepted <= DOCUMENT_TYPES


def test_a_row_naming_an_unknown_document_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path
    with DATA.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows[0]["accepted_documents"] = "passport;library.card"
    altered = folder / "member_states.csv"
    with altered.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    monkeypatch.setattr(module, "DATA", altered)
    module.member_states.cache_clear()
    try:
        with pytest.raises(ValueError, match=rows[0]["code"]):
            module.member_states()
    finally:
        monkeypatch.undo()
        module.member_states.cache_clear()
