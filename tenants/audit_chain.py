"""The audit log's chain, without Django: the canonical content of an event, its HMAC, and the check of
a run of events. tenants/audit.py appends and reads; migration 0005 chains the events it finds with the
same functions.

An event's HMAC-SHA256 (key from the key provider, never in the database) covers its sequence number, id,
time, actor, action, initiative id and slug, its details as canonical JSON, and the previous event's
HMAC. So an edited event fails its own HMAC, a deleted one leaves a gap in the sequence and a link that
points nowhere, and a moved one fails its HMAC where it now stands (its sequence number is inside it).
A chain cannot show that events were cut off its end: keep the head that verify_audit prints somewhere
else (a log, a ticket) and compare.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class ChainedEvent(Protocol):
    id: int
    sequence: int
    occurred_at: datetime.datetime
    actor: str
    action: str
    initiative_id: int | None
    initiative_slug: str
    details: Any
    hmac: str
    previous_hmac: str


def details_canonical(details: Mapping[str, object]) -> str:
    """Details as canonical JSON (sorted keys, no spaces, ASCII). Floats and non-finite numbers are
    refused: jsonb may write a float back differently than Python did, and the HMAC must survive the
    round trip."""
    _refuse_floats(details)
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _refuse_floats(value: object) -> None:
    if isinstance(value, float):
        raise ValueError("Audit details take no floats: record a string or an integer.")
    if isinstance(value, Mapping):
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_floats(item)


def event_content(
    *,
    sequence: int,
    event_id: int,
    occurred_at: datetime.datetime,
    actor: str,
    action: str,
    initiative_id: int | None,
    initiative_slug: str,
    details: Mapping[str, object],
    previous_hmac: str,
) -> bytes:
    content = {
        "sequence": sequence,
        "id": event_id,
        "occurred_at": occurred_at.astimezone(datetime.UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "initiative_id": initiative_id,
        "initiative_slug": initiative_slug,
        "details": details_canonical(details),
        "previous_hmac": previous_hmac,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def event_hmac(key: bytes, **content: Any) -> str:
    return hmac.new(key, event_content(**content), hashlib.sha256).hexdigest()


def _hmac_of(key: bytes, event: ChainedEvent, *, sequence: int) -> str:
    if not isinstance(event.details, Mapping):
        return ""  # details no event could have been recorded with: an edit
    try:
        return event_hmac(
            key,
            sequence=sequence,
            event_id=event.id,
            occurred_at=event.occurred_at,
            actor=event.actor,
            action=event.action,
            initiative_id=event.initiative_id,
            initiative_slug=event.initiative_slug,
            details=event.details,
            previous_hmac=event.previous_hmac,
        )
    except ValueError:
        return ""  # details no event could have been recorded with: an edit


@dataclass(frozen=True)
class ChainBreak:
    """The first event where the chain does not hold. `kind` is `altered` (its HMAC does not match its
    content), `missing` (one or more sequence numbers are absent before it), `reordered` (it is intact
    but stands at the wrong place) or `unlinked` (intact but does not follow the event before it)."""

    kind: str
    sequence: int
    event_id: int
    message: str


@dataclass(frozen=True)
class ChainReport:
    events: int
    head_sequence: int | None
    head_hmac: str
    broken: ChainBreak | None


def chain_verify(
    key: bytes,
    events: Iterable[ChainedEvent],
    *,
    sequence_of_hmac: Any = None,
    first_sequence: int = 1,
    previous_hmac: str = "",
) -> ChainReport:
    """Check events given in ascending sequence order, from `first_sequence` (1: the whole chain; a
    later one, with the HMAC of the event before it, checks a part). `sequence_of_hmac(hmac)` (the
    sequence of the stored event with that HMAC, or None) tells where an intact but misplaced event
    belongs."""
    expected_sequence, previous, count = first_sequence, previous_hmac, 0
    last: ChainedEvent | None = None
    for event in events:
        count += 1
        if event.sequence != expected_sequence:
            missing = (
                f"sequence {expected_sequence}"
                if event.sequence == expected_sequence + 1
                else f"sequences {expected_sequence} to {event.sequence - 1}"
            )
            return ChainReport(
                count,
                None,
                "",
                ChainBreak(
                    "missing",
                    expected_sequence,
                    event.id,
                    f"Event {missing} missing: the next present is sequence {event.sequence} "
                    f"(id {event.id}).",
                ),
            )
        if not hmac.compare_digest(_hmac_of(key, event, sequence=event.sequence), event.hmac):
            return ChainReport(count, None, "", _misplaced_or_altered(key, event, sequence_of_hmac))
        if not hmac.compare_digest(event.previous_hmac, previous):
            return ChainReport(
                count,
                None,
                "",
                ChainBreak(
                    "unlinked",
                    event.sequence,
                    event.id,
                    f"Event sequence {event.sequence} (id {event.id}) does not follow the event before it.",
                ),
            )
        previous, last = event.hmac, event
        expected_sequence += 1
    return ChainReport(count, last.sequence if last else None, last.hmac if last else "", None)


# How far from where it stands a moved event is looked for, beside right after its predecessor.
_MOVED_WINDOW = 16


def _misplaced_or_altered(key: bytes, event: ChainedEvent, sequence_of_hmac: Any) -> ChainBreak:
    # An intact event moved elsewhere still verifies under the sequence number it was recorded with:
    # right after the event it names as its predecessor, or (when that one moved too) close by.
    candidates = list(range(max(1, event.sequence - _MOVED_WINDOW), event.sequence + _MOVED_WINDOW + 1))
    if not event.previous_hmac:
        candidates.insert(0, 1)
    elif sequence_of_hmac is not None and (predecessor := sequence_of_hmac(event.previous_hmac)) is not None:
        candidates.insert(0, predecessor + 1)
    for recorded in candidates:
        if recorded != event.sequence and hmac.compare_digest(
            _hmac_of(key, event, sequence=recorded), event.hmac
        ):
            return ChainBreak(
                "reordered",
                event.sequence,
                event.id,
                f"Event sequence {event.sequence} (id {event.id}) is out of order: it was recorded as "
                f"sequence {recorded}.",
            )
    return ChainBreak(
        "altered",
        event.sequence,
        event.id,
        f"Event sequence {event.sequence} (id {event.id}) was altered: its HMAC does not match.",
    )
