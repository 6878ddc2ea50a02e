"""REQ-18 and REQ-19: destroying statements of support and e-mail addresses when the law says so.

The deadlines come from the initiative's dates (tenants.selectors.initiative_deadlines). One run finds
what is due, skips what a legal hold keeps, and for each initiative and scope works through steps: the
state first (an initiative whose statements go is `destroyed`, so nothing exports or signs meanwhile),
then the apps' erasure steps (rows, export files, cached counts), then the keys. Each step is recorded
on the initiative's DestructionRecord as it ends, so a run killed halfway is finished by the next one,
and a run that finds nothing due does nothing.

The apps that hold the data register their steps here (in their AppConfig.ready()): the shared app
cannot import them, and so does not need to know them.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tenants.audit import SYSTEM_ACTOR, audit_record
from tenants.db import connection
from tenants.keyring.registry import SEALED_TABLES, sealed_tables_outliving_statements
from tenants.keyring.shredding import initiative_keys_destroy, initiative_keys_destroy_keeping
from tenants.models import (
    DestructionRecord,
    DestructionScope,
    Initiative,
    InitiativeState,
    LegalHold,
)
from tenants.selectors import initiative_deadlines
from tenants.services import initiative_transition

logger = logging.getLogger(__name__)

STATE_STEP = "state"
KEYS_STEP = "keys"
# Any constant of our own: two runs (the beat task and an operator's command) never work at once.
RUN_LOCK_KEY = 0x45434944  # "ECID"
REASON = {
    DestructionScope.STATEMENTS: "statements due for destruction (REQ-18)",
    DestructionScope.EMAILS: "e-mail addresses due for destruction (REQ-19)",
}


@dataclass
class ErasureOutcome:
    """What one step removed. `waiting_for` says why it could not finish now (nothing recorded)."""

    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    counts: dict[str, int] | None = None
    waiting_for: str = ""


@dataclass(frozen=True)
class ErasureStep:
    name: str
    scope: str
    order: int  # steps of a scope run in this order; the keys always come last
    erase: Callable[[Initiative], ErasureOutcome]
    # What the step would remove, for a dry run: {"statements": 120}.
    measure: Callable[[Initiative], dict[str, int]]
    # A step that only writes to the database commits its work together with the record of it.
    transactional: bool = True


ERASURE_STEPS: list[ErasureStep] = []


def register_erasure_step(step: ErasureStep) -> None:
    if all(existing.name != step.name for existing in ERASURE_STEPS):
        ERASURE_STEPS.append(step)


def erasure_steps(scope: str) -> list[ErasureStep]:
    return sorted((step for step in ERASURE_STEPS if step.scope == scope), key=lambda step: step.order)


class DestructionRefused(ValueError):
    """A run that may not happen as asked (e.g. evaluating deadlines on another day in production)."""


@dataclass
class DueDestruction:
    initiative: Initiative
    scope: str
    deadline: datetime.date
    hold: LegalHold | None
    resuming: bool  # an earlier run started it and did not finish

    def summary(self) -> dict[str, object]:
        summary: dict[str, object] = {
            "initiative": self.initiative.slug,
            "scope": self.scope,
            "deadline": self.deadline.isoformat(),
        }
        if self.resuming:
            summary["resuming"] = True
        if self.hold is not None:
            summary["hold_reference"] = self.hold.reference
        return summary


@dataclass
class DestructionReport:
    run: str
    as_of: datetime.date
    dry_run: bool
    destroyed: list[dict[str, object]] = field(default_factory=list)
    would_destroy: list[dict[str, object]] = field(default_factory=list)
    held: list[dict[str, object]] = field(default_factory=list)
    waiting: list[dict[str, object]] = field(default_factory=list)
    failed: list[dict[str, object]] = field(default_factory=list)
    another_run_active: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "run": self.run,
            "as_of": self.as_of.isoformat(),
            "dry_run": self.dry_run,
            "destroyed": self.destroyed,
            "would_destroy": self.would_destroy,
            "held": self.held,
            "waiting": self.waiting,
            "failed": self.failed,
            "another_run_active": self.another_run_active,
        }


def destructions_due(as_of: datetime.date, *, only: Initiative | None = None) -> list[DueDestruction]:
    """Every (initiative, scope) whose deadline is on or before `as_of`, or that a run left unfinished;
    statements before e-mail addresses, so one run can do both for an initiative."""
    due: list[DueDestruction] = []
    records = {
        (record.initiative_id, record.scope): record
        for record in DestructionRecord.objects.filter(initiative__isnull=False)
    }
    initiatives = Initiative.objects.exclude(state=InitiativeState.PROVISIONING).order_by("pk")
    if only is not None:
        initiatives = initiatives.filter(pk=only.pk)
    for initiative in initiatives:
        deadlines = initiative_deadlines(initiative)
        for scope, deadline in (
            (DestructionScope.STATEMENTS, deadlines.statements_destruction),
            (DestructionScope.EMAILS, deadlines.emails_destruction),
        ):
            record = records.get((initiative.pk, scope))
            if record is not None and record.is_finished:
                continue
            if record is not None or deadline <= as_of:
                due.append(
                    DueDestruction(initiative, scope, deadline, deadlines.active_hold, record is not None)
                )
    return due


def destroy_due(
    *,
    as_of: datetime.date | None = None,
    dry_run: bool = False,
    actor: str = SYSTEM_ACTOR,
    only: Initiative | None = None,
) -> DestructionReport:
    """Destroy what is due on `as_of` (today by default), for every initiative or `only` one: the daily
    task and `destroy_due` call this."""
    report = DestructionReport(run=uuid.uuid4().hex, as_of=as_of or timezone.localdate(), dry_run=dry_run)
    with _only_run() as alone:
        if not alone:
            report.another_run_active = True
            return report
        due = destructions_due(report.as_of, only=only)
        # Initiatives whose statements were due in this run and did not go: their addresses, due too, wait
        # for them (going first would re-seal every statement under a new key only to destroy it next).
        statements_left: set[int] = set()
        for item in due:
            if item.hold is not None:
                report.held.append(item.summary())
                continue
            if dry_run:
                report.would_destroy.append({**item.summary(), "would_remove": _measure(item)})
                continue
            if item.scope == DestructionScope.EMAILS and item.initiative.pk in statements_left:
                waiting_for = "the statements of this initiative, due in the same run, go first"
                report.waiting.append({**item.summary(), "step": STATE_STEP, "waiting_for": waiting_for})
                continue
            emails_due_too = any(
                other.initiative.pk == item.initiative.pk and other.scope == DestructionScope.EMAILS
                for other in due
            )
            try:
                record = _destroy(item, run=report.run, actor=actor, emails_due_too=emails_due_too)
            except _Waiting as waiting:
                statements_left.add(item.initiative.pk)
                report.waiting.append({**item.summary(), "step": waiting.step, "waiting_for": str(waiting)})
            except Exception as error:  # one initiative's failure must not stop the others
                statements_left.add(item.initiative.pk)
                logger.exception("destruction of %s for initiative %s failed", item.scope, item.initiative.pk)
                message = f"{type(error).__name__}: {error}"[:300]
                audit_record(
                    actor=actor,
                    action="destruction.failed",
                    initiative=item.initiative,
                    scope=item.scope,
                    run=report.run,
                    error=message,
                )
                report.failed.append({**item.summary(), "error": message})
            else:
                report.destroyed.append({**item.summary(), **record_summary(record)})
    return report


def record_summary(record: DestructionRecord) -> dict[str, object]:
    return {
        "rows_deleted": record.rows_deleted,
        "files_deleted": record.files_deleted,
        "keys_destroyed": record.keys_destroyed,
        "counts_kept": record.counts_kept,
        "started_run": record.started_run,
        "finished_run": record.finished_run,
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
    }


@contextlib.contextmanager
def _only_run() -> Iterator[bool]:
    """A session-level advisory lock: released by PostgreSQL itself if the process dies."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [RUN_LOCK_KEY])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [RUN_LOCK_KEY])


class _Waiting(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(reason)
        self.step = step


def _measure(item: DueDestruction) -> dict[str, int]:
    measured: dict[str, int] = {}
    for step in erasure_steps(item.scope):
        measured.update(step.measure(item.initiative))
    return measured


def _destroy(item: DueDestruction, *, run: str, actor: str, emails_due_too: bool) -> DestructionRecord:
    initiative, scope = item.initiative, item.scope
    record = _record_open(item, run=run, actor=actor)
    if scope == DestructionScope.STATEMENTS and STATE_STEP not in record.steps_done:
        _state_destroyed(initiative, actor=actor)
        _step_done(record, STATE_STEP, ErasureOutcome())
    for step in erasure_steps(scope):
        if step.name in record.steps_done:
            continue
        context = transaction.atomic() if step.transactional else contextlib.nullcontext()
        with context:
            outcome = step.erase(initiative)
            if outcome.waiting_for:
                raise _Waiting(step.name, outcome.waiting_for)
            _step_done(record, step.name, outcome)
    if KEYS_STEP not in record.steps_done:
        record.keys_destroyed = _keys_destroy(initiative, scope, actor=actor, emails_due_too=emails_due_too)
        record.save(update_fields=["keys_destroyed"])
        _step_done(record, KEYS_STEP, ErasureOutcome())
    DestructionRecord.objects.filter(pk=record.pk).update(finished_at=timezone.now(), finished_run=run)
    record.refresh_from_db()
    audit_record(
        actor=actor,
        action="destruction.finished",
        initiative=initiative,
        scope=scope,
        record_id=record.pk,
        run=run,
        rows_deleted=record.rows_deleted,
        files_deleted=record.files_deleted,
        keys_destroyed=record.keys_destroyed,
    )
    return record


def _record_open(item: DueDestruction, *, run: str, actor: str) -> DestructionRecord:
    record, created = DestructionRecord.objects.get_or_create(
        initiative_slug=item.initiative.slug,
        scope=item.scope,
        defaults={
            "initiative": item.initiative,
            "registration_number": item.initiative.registration_number,
            "deadline": item.deadline,
            "actor": actor,
            "started_run": run,
            "started_at": timezone.now(),
        },
    )
    audit_record(
        actor=actor,
        action="destruction.started" if created else "destruction.resumed",
        initiative=item.initiative,
        scope=item.scope,
        record_id=record.pk,
        deadline=item.deadline.isoformat(),
        run=run,
    )
    return record


def _state_destroyed(initiative: Initiative, *, actor: str) -> None:
    """Collection and exports stop first; an initiative still open at its deadline is closed on the way."""
    reason = REASON[DestructionScope.STATEMENTS]
    initiative.refresh_from_db()
    if initiative.state in (InitiativeState.READY, InitiativeState.COLLECTING, InitiativeState.PAUSED):
        initiative_transition(initiative, InitiativeState.CLOSED, actor=actor, reason=reason)
    if initiative.state != InitiativeState.DESTROYED:
        initiative_transition(initiative, InitiativeState.DESTROYED, actor=actor, reason=reason)


def _step_done(record: DestructionRecord, name: str, outcome: ErasureOutcome) -> None:
    rows = dict(record.rows_deleted)
    for table, count in outcome.rows.items():
        rows[table] = rows.get(table, 0) + count
    updates: dict[str, object] = {
        "steps_done": [*record.steps_done, name],
        "rows_deleted": rows,
        "files_deleted": F("files_deleted") + outcome.files,
    }
    if outcome.counts is not None:
        updates["counts_kept"] = outcome.counts
    DestructionRecord.objects.filter(pk=record.pk).update(**updates)
    record.refresh_from_db()


def _keys_destroy(
    initiative: Initiative, scope: str, *, actor: str, emails_due_too: bool
) -> dict[str, object]:
    """The keys go with what they sealed; what is still within its time keeps a key of its own. The
    last scope to go takes every remaining key."""
    reason = REASON[DestructionScope(scope)]
    if scope == DestructionScope.STATEMENTS:
        emails_done = DestructionRecord.objects.filter(
            initiative=initiative, scope=DestructionScope.EMAILS, finished_at__isnull=False
        ).exists()
        if emails_due_too or emails_done:
            return initiative_keys_destroy(initiative, actor=actor, reason=reason)
        return initiative_keys_destroy_keeping(
            initiative,
            tables=sealed_tables_outliving_statements(),
            keep_index=False,
            actor=actor,
            reason=reason,
        )
    statements_done = DestructionRecord.objects.filter(
        initiative=initiative, scope=DestructionScope.STATEMENTS, finished_at__isnull=False
    ).exists()
    if statements_done:
        return initiative_keys_destroy(initiative, actor=actor, reason=reason)
    # An early close brings REQ-19's deadline before REQ-18's: the statements (and their duplicate
    # index) move to keys of their own, so the addresses in an older backup no longer open either.
    statement_tables = [table for table in SEALED_TABLES if not table.outlives_statements]
    return initiative_keys_destroy_keeping(
        initiative, tables=statement_tables, keep_index=True, actor=actor, reason=reason
    )
