"""REQ-01: whether an initiative is valid, from the numbers of valid statements the Member States'
authorities certified (REQ-26): at least a million in all, and in at least seven Member States at least
the Annex I minimum in force on the registration date (REQ-02)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from regulation.member_states import member_state, member_states
from regulation.thresholds import MEMBER_STATES_REQUIRED, SIGNATORIES_REQUIRED


@dataclass(frozen=True)
class StateCount:
    """One Member State's certified count against its Annex I minimum."""

    code: str  # EU code: EL for Greece
    name: str
    certified: int
    threshold: int

    @property
    def reached(self) -> bool:
        return self.certified >= self.threshold


@dataclass(frozen=True)
class Validity:
    total: int
    states: tuple[StateCount, ...]  # the States with a certified count, by code
    registered_on: datetime.date

    @property
    def states_reached(self) -> tuple[str, ...]:
        return tuple(state.code for state in self.states if state.reached)

    @property
    def signatories_short(self) -> int:
        return max(0, SIGNATORIES_REQUIRED - self.total)

    @property
    def states_short(self) -> int:
        return max(0, MEMBER_STATES_REQUIRED - len(self.states_reached))

    @property
    def valid(self) -> bool:
        return self.signatories_short == 0 and self.states_short == 0

    def shortfalls(self) -> list[str]:
        """What keeps the initiative from being valid, one sentence each; empty when it is valid."""
        short = []
        if self.signatories_short:
            short.append(
                f"{self.signatories_short:,} certified statements short of {SIGNATORIES_REQUIRED:,} "
                f"({self.total:,} certified)"
            )
        if self.states_short:
            plural = "s" if self.states_short > 1 else ""
            short.append(
                f"{self.states_short} Member State{plural} short of {MEMBER_STATES_REQUIRED} at or over "
                f"their threshold ({len(self.states_reached)} reached"
                + (f": {', '.join(self.states_reached)})" if self.states_reached else ")")
            )
        return short

    def summary(self) -> dict[str, object]:
        """As plain data, for JSON."""
        return {
            "valid": self.valid,
            "total": self.total,
            "signatories_required": SIGNATORIES_REQUIRED,
            "member_states_required": MEMBER_STATES_REQUIRED,
            "states_reached": list(self.states_reached),
            "signatories_short": self.signatories_short,
            "states_short": self.states_short,
            "shortfalls": self.shortfalls(),
            "thresholds_of": self.registered_on.isoformat(),
        }


def initiative_validity(certified: Mapping[str, int], registered_on: datetime.date) -> Validity:
    """REQ-01 from the certified counts per Member State (EU codes) of an initiative registered on
    `registered_on`. An unknown code or a negative count is a ValueError: it is never silently dropped."""
    states = []
    for code, count in sorted(certified.items()):
        state = member_state(code) if code == code.upper() else None
        if state is None:
            codes = ", ".join(sorted(member_states()))
            raise ValueError(f"{code!r} is not the EU code of a Member State (codes: {codes}).")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"The certified count of {code} must be a whole number of at least 0.")
        states.append(StateCount(state.code, state.name, count, state.threshold(registered_on)))
    return Validity(
        total=sum(state.certified for state in states), states=tuple(states), registered_on=registered_on
    )
