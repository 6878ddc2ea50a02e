"""Reads for the deadline panels of the operator console and the organisers' pages: an initiative's legal
deadlines (REQ-18, REQ-19, REQ-25), its legal holds and its destruction records, in one place."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from tenants.models import DestructionRecord, Initiative, LegalHold
from tenants.selectors import InitiativeDeadlines, initiative_deadlines


@dataclass(frozen=True)
class DeadlinePanel:
    deadlines: InitiativeDeadlines
    today: datetime.date
    holds: list[LegalHold]  # newest first, lifted ones too
    destruction_records: list[DestructionRecord]  # newest first, unfinished ones too

    @property
    def submission_due_soon(self) -> bool:
        """REQ-25: the statements are due at the authorities soon (or overdue)."""
        return self.deadlines.submission_due_soon(self.today)

    @property
    def submission_overdue(self) -> bool:
        submission = self.deadlines.authorities_submission
        return self.submission_due_soon and submission is not None and self.today > submission

    @property
    def statements_overdue(self) -> bool:
        """Past the REQ-18 deadline and not destroyed yet (a hold, or the daily run has not come by)."""
        return (
            self.deadlines.statements_destroyed is None and self.today > self.deadlines.statements_destruction
        )

    @property
    def emails_overdue(self) -> bool:
        return self.deadlines.emails_destroyed is None and self.today > self.deadlines.emails_destruction


def initiative_deadline_panel(initiative: Initiative, *, today: datetime.date) -> DeadlinePanel:
    return DeadlinePanel(
        deadlines=initiative_deadlines(initiative),
        today=today,
        holds=list(LegalHold.objects.filter(initiative=initiative).order_by("-set_at", "-pk")),
        destruction_records=list(
            DestructionRecord.objects.filter(initiative=initiative).order_by("-started_at", "-pk")
        ),
    )
