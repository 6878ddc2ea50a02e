"""REQ-01 from certified counts (REQ-26): a million in all and seven Member States at or over the Annex I
minimum of the table in force on the registration date (REQ-02). The thresholds are written out here,
not read from the code under test."""

from __future__ import annotations

import datetime

import pytest

from regulation.validity import initiative_validity

D = datetime.date
TERM_2024 = D(2025, 1, 1)  # registered under the 720-seat table
TERM_2019 = D(2024, 7, 15)  # registered the day before it applied

# The 720-seat table (Delegated Regulation 2024/1082), MEPs x 720.
SEVEN_AT_THRESHOLD = {
    "DE": 69120,
    "FR": 58320,
    "IT": 54720,
    "ES": 43920,
    "PL": 38160,
    "RO": 23760,
    "NL": 22320,
}
SEVEN_TOTAL = sum(SEVEN_AT_THRESHOLD.values())  # 310,320


def exactly_valid() -> dict[str, int]:
    """Exactly 1,000,000 in all, exactly seven States at their threshold: the rest in Belgium, under
    its threshold of 15,840, and in Germany above its own."""
    counts = {**SEVEN_AT_THRESHOLD, "BE": 15839}
    counts["DE"] += 1_000_000 - SEVEN_TOTAL - 15839
    assert sum(counts.values()) == 1_000_000
    return counts


def test_valid_at_exactly_a_million_and_seven_states() -> None:
    validity = initiative_validity(exactly_valid(), TERM_2024)
    assert validity.valid
    assert validity.total == 1_000_000
    assert sorted(validity.states_reached) == sorted(SEVEN_AT_THRESHOLD)
    assert (validity.signatories_short, validity.states_short, validity.shortfalls()) == (0, 0, [])
    belgium = next(state for state in validity.states if state.code == "BE")
    assert (belgium.threshold, belgium.reached) == (15840, False)


def test_one_statement_short_of_the_million_is_invalid_and_says_so() -> None:
    counts = exactly_valid()
    counts["DE"] -= 1
    validity = initiative_validity(counts, TERM_2024)
    assert not validity.valid
    assert (validity.signatories_short, validity.states_short) == (1, 0)
    assert validity.shortfalls() == ["1 certified statements short of 1,000,000 (999,999 certified)"]


def test_one_state_one_statement_under_its_threshold_is_invalid_and_says_so() -> None:
    counts = exactly_valid()
    counts["NL"] -= 1  # 22,319: one under the Netherlands' threshold
    counts["DE"] += 1  # the total stays a million
    validity = initiative_validity(counts, TERM_2024)
    assert validity.total == 1_000_000 and not validity.valid
    assert validity.states_short == 1 and "NL" not in validity.states_reached
    (shortfall,) = validity.shortfalls()
    assert shortfall.startswith("1 Member State short of 7 at or over their threshold (6 reached: ")


def test_a_state_more_than_enough_helps_no_other_state() -> None:
    """A million in one State is still one State."""
    validity = initiative_validity({"DE": 2_000_000}, TERM_2024)
    assert not validity.valid and validity.signatories_short == 0 and validity.states_short == 6


def test_the_threshold_is_the_one_in_force_on_the_registration_date() -> None:
    """The same counts: the Netherlands at 21,000 reach the 2020 table's 20,445 but not 2024's 22,320."""
    counts = {**exactly_valid(), "NL": 21000}
    counts["DE"] += 22320 - 21000
    assert not initiative_validity(counts, TERM_2024).valid
    older = initiative_validity(counts, TERM_2019)
    assert older.valid
    netherlands = next(state for state in older.states if state.code == "NL")
    assert (netherlands.threshold, netherlands.reached) == (20445, True)


def test_no_counts_is_short_of_everything() -> None:
    validity = initiative_validity({}, TERM_2024)
    assert (validity.total, validity.valid, validity.signatories_short, validity.states_short) == (
        0,
        False,
        1_000_000,
        7,
    )
    assert len(validity.shortfalls()) == 2
    assert validity.summary()["shortfalls"] == validity.shortfalls()


@pytest.mark.parametrize("code", ["GR", "UK", "de", "XX", ""])
def test_an_unknown_code_is_refused_not_dropped(code: str) -> None:
    with pytest.raises(ValueError, match="not the EU code"):
        initiative_validity({code: 10}, TERM_2024)


@pytest.mark.parametrize("count", [-1, 1.5, True])
def test_a_count_that_is_not_a_whole_number_of_at_least_zero_is_refused(count: object) -> None:
    with pytest.raises(ValueError, match="whole number"):
        initiative_validity({"EL": count}, TERM_2024)  # type: ignore[dict-item]
