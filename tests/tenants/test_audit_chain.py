"""The audit log's chain: many events verify; an edited, a deleted and two swapped events are each found
by `verify_audit`, which names the first one by sequence number; the database refuses UPDATE, DELETE
and TRUNCATE; appends from two connections at once stay one chain. Tampering is simulated the one way
the application cannot: as the database superuser with triggers off for the statement
(`session_replication_role = replica`), which is the point of those tests."""

from __future__ import annotations

import datetime
import io
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connections, transaction
from pytest_django.plugin import DjangoDbBlocker

from tenants.audit import audit_chain_verify, audit_record
from tenants.audit_chain import chain_verify, event_hmac
from tenants.db import connection
from tenants.keyring.providers import (
    AwsKmsKeyProvider,
    KeyProviderError,
    LocalKeyProvider,
    key_provider,
)
from tenants.models import AuditEvent, Initiative


@pytest.fixture
def fresh_audit_log(db: None) -> None:
    """An empty audit log for this test only: the rows committed before it (by the session's setup and
    by tests that commit) are removed inside the test's transaction, which rolls back."""
    _tamper("DELETE FROM tenants_auditevent")


def _tamper(sql: str, params: list[Any] | None = None) -> None:
    """Run one statement with the triggers off, as only a superuser can: someone with more rights than
    the application."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params or [])
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")


def _events(count: int, initiative: Initiative | None = None) -> list[AuditEvent]:
    return [
        audit_record(actor="test", action="test.event", initiative=initiative, number=number, tags=["a", "é"])
        for number in range(count)
    ]


def _verify() -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    try:
        call_command("verify_audit", "--json", stdout=out)
    except CommandError:
        return 1, json.loads(out.getvalue())
    return 0, json.loads(out.getvalue())


def test_a_long_chain_verifies_and_the_command_prints_its_counts(
    fresh_audit_log: None, alpha: Initiative
) -> None:
    events = _events(150, alpha)
    assert [event.sequence for event in events] == list(range(1, 151))
    assert events[0].previous_hmac == "" and all(
        later.previous_hmac == earlier.hmac for earlier, later in itertools.pairwise(events)
    )
    status, result = _verify()
    assert status == 0
    assert result == {
        "intact": True,
        "events": 150,
        "head_sequence": 150,
        "head_hmac": events[-1].hmac,
    }
    human = io.StringIO()
    call_command("verify_audit", stdout=human)
    assert "intact: 150 events" in human.getvalue()


def test_an_empty_log_verifies(fresh_audit_log: None) -> None:
    assert _verify() == (0, {"intact": True, "events": 0, "head_sequence": None, "head_hmac": ""})


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("details", '{"number": 99, "tags": ["a", "é"]}'),
        ("actor", "someone-else"),
        ("action", "test.other"),
        ("occurred_at", "2020-01-01T00:00:00Z"),
        ("initiative_slug", "beta"),
        ("initiative_id", None),
    ],
)
def test_an_edited_event_is_found(
    fresh_audit_log: None, alpha: Initiative, column: str, value: object
) -> None:
    events = _events(10, alpha)
    _tamper(f"UPDATE tenants_auditevent SET {column} = %s WHERE sequence = 6", [value])  # noqa: S608  (a column of the list above)
    status, result = _verify()
    assert status == 1
    assert result["broken"] == {"kind": "altered", "sequence": 6, "event_id": events[5].id}
    assert f"sequence 6 (id {events[5].id}) was altered" in result["error"]


def test_an_edited_event_with_its_hmac_recomputed_without_the_key_is_found(fresh_audit_log: None) -> None:
    # Someone who rewrites an event and recomputes a plain SHA-256 in its place (no key): the next
    # event no longer follows, and this one does not verify.
    _events(5)
    _tamper("UPDATE tenants_auditevent SET actor = 'x', hmac = md5('x') || md5('y') WHERE sequence = 3")
    status, result = _verify()
    assert status == 1 and result["broken"]["sequence"] == 3


def test_a_deleted_event_is_found(fresh_audit_log: None) -> None:
    events = _events(10)
    _tamper("DELETE FROM tenants_auditevent WHERE sequence = 4")
    status, result = _verify()
    assert status == 1
    assert result["broken"] == {"kind": "missing", "sequence": 4, "event_id": events[4].id}
    assert "sequence 4 missing" in result["error"] and "next present is sequence 5" in result["error"]


def test_deleted_first_events_are_found(fresh_audit_log: None) -> None:
    _events(6)
    _tamper("DELETE FROM tenants_auditevent WHERE sequence <= 2")
    status, result = _verify()
    assert status == 1 and result["broken"]["kind"] == "missing" and result["broken"]["sequence"] == 1
    assert "sequences 1 to 2 missing" in result["error"]


def test_a_deleted_event_with_the_rest_renumbered_is_found(fresh_audit_log: None) -> None:
    events = _events(8)
    _tamper("DELETE FROM tenants_auditevent WHERE sequence = 5")
    _tamper("UPDATE tenants_auditevent SET sequence = sequence - 1 WHERE sequence > 5")
    status, result = _verify()
    # Event 6, now at 5, is intact but stands where it was not recorded.
    assert status == 1
    assert result["broken"] == {"kind": "reordered", "sequence": 5, "event_id": events[5].id}


def test_two_swapped_events_are_found(fresh_audit_log: None) -> None:
    events = _events(10)
    _tamper("UPDATE tenants_auditevent SET sequence = -1 WHERE sequence = 7")
    _tamper("UPDATE tenants_auditevent SET sequence = 7 WHERE sequence = 8")
    _tamper("UPDATE tenants_auditevent SET sequence = 8 WHERE sequence = -1")
    status, result = _verify()
    assert status == 1
    assert result["broken"] == {"kind": "reordered", "sequence": 7, "event_id": events[7].id}
    assert "was recorded as sequence 8" in result["error"]


def test_two_events_with_swapped_contents_are_found(fresh_audit_log: None) -> None:
    # The rows keep their places and sequence numbers; their actors and actions change places.
    _events(6)
    audit_record(actor="op", action="user.changed")
    audit_record(actor="system", action="key.created")
    _tamper(
        "UPDATE tenants_auditevent AS a SET actor = b.actor, action = b.action FROM tenants_auditevent b "
        "WHERE (a.sequence, b.sequence) IN ((7, 8), (8, 7))"
    )
    status, result = _verify()
    assert status == 1 and result["broken"]["kind"] == "altered" and result["broken"]["sequence"] == 7


def test_an_event_recorded_under_another_key_is_found(fresh_audit_log: None, tmp_path: Path) -> None:
    # Someone with write access to the database but not the key appends an event of their own.
    events = _events(3)

    other_key = LocalKeyProvider(b"\x01" * 32, tmp_path).audit_key()
    assert other_key != key_provider().audit_key()
    forged_id, occurred_at = events[-1].id + 1000, events[-1].occurred_at
    forged_hmac = event_hmac(
        other_key,
        sequence=4,
        event_id=forged_id,
        occurred_at=occurred_at,
        actor="op",
        action="user.changed",
        initiative_id=None,
        initiative_slug="",
        details={},
        previous_hmac=events[-1].hmac,
    )
    AuditEvent.objects.create(
        id=forged_id,
        sequence=4,
        occurred_at=occurred_at,
        actor="op",
        action="user.changed",
        details={},
        previous_hmac=events[-1].hmac,
        hmac=forged_hmac,
    )
    status, result = _verify()
    assert status == 1 and result["broken"]["sequence"] == 4 and result["broken"]["kind"] == "altered"


def _refused(statement: str) -> str:
    with pytest.raises(DatabaseError) as refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    return str(refused.value)


def test_the_database_refuses_update_delete_and_truncate_from_the_application(db: None) -> None:
    event = audit_record(actor="test", action="test.event")
    update = r"audit log \(table tenants_auditevent\) is append-only: UPDATE"
    with pytest.raises(DatabaseError, match=update), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(actor="someone-else")
    with (
        pytest.raises(DatabaseError, match=r"tenants_auditevent\) is append-only: DELETE"),
        transaction.atomic(),
    ):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(DatabaseError, match="append-only: DELETE"), transaction.atomic():
        event.delete()
    assert "append-only: TRUNCATE" in _refused("TRUNCATE tenants_auditevent")
    assert "append-only: UPDATE" in _refused("UPDATE tenants_auditevent SET details = '{}'")
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor, stored.hmac) == (event.actor, event.hmac)


def test_deleting_an_initiative_keeps_its_events_and_their_chain(fresh_audit_log: None) -> None:
    initiative = Initiative.objects.create(
        schema_name="i_audit0test0",
        slug="audit-gone",
        registration_number="ECI(2026)000777",
        registered_on=datetime.date(2026, 1, 5),
        collection_start=datetime.date(2026, 2, 5),
        title={"en": "t"},
    )
    event = audit_record(actor="test", action="test.event", initiative=initiative)
    Initiative.objects.filter(pk=initiative.pk).delete()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.initiative_id, stored.initiative_slug) == (initiative.pk, "audit-gone")
    assert _verify()[0] == 0


def test_details_that_would_not_survive_the_database_are_refused(db: None) -> None:
    before = AuditEvent.objects.count()
    with pytest.raises(ValueError, match="no floats"):
        audit_record(actor="test", action="test.event", ratio=0.5)
    with pytest.raises(TypeError):
        audit_record(actor="test", action="test.event", when=object())
    assert AuditEvent.objects.count() == before


@pytest.fixture
def committed(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    with django_db_blocker.unblock():
        yield


def test_concurrent_appends_from_two_connections_stay_one_chain(committed: None) -> None:
    """Two threads, each with its own database connection, append at once, each append in its own
    transaction held open a moment: without the lock both would read the same last event and one
    would fail on the sequence number or fork the chain. (The rows stay: the log is append-only.)"""
    run = uuid.uuid4().hex[:12]
    per_thread, barrier, errors = 20, threading.Barrier(2), []

    def append(name: str) -> None:
        try:
            barrier.wait()
            for number in range(per_thread):
                with transaction.atomic():
                    audit_record(actor="test", action="test.concurrent", run=run, thread=name, n=number)
                    time.sleep(0.002)
        except Exception as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    mine = AuditEvent.objects.filter(action="test.concurrent", details__run=run).order_by("sequence")
    sequences = list(mine.values_list("sequence", flat=True))
    assert len(sequences) == 2 * per_thread
    assert {event.details["thread"] for event in mine} == {"a", "b"}
    # Every event from the first of this run to the last (other tests' events may interleave) is one
    # unbroken piece of the chain, linked to the event before it.
    first, last = sequences[0], sequences[-1]
    segment = list(AuditEvent.objects.filter(sequence__gte=first, sequence__lte=last).order_by("sequence"))
    before = AuditEvent.objects.get(sequence=first - 1).hmac if first > 1 else ""
    report = chain_verify(key_provider().audit_key(), segment, first_sequence=first, previous_hmac=before)
    assert report.broken is None and report.events == last - first + 1


def test_the_whole_chain_is_checked_by_the_selector(fresh_audit_log: None) -> None:
    _events(3)
    report = audit_chain_verify()
    assert (report.events, report.head_sequence, report.broken) == (3, 3, None)


def test_the_local_audit_key_comes_from_the_master_key_alone(tmp_path: Path) -> None:
    master = b"\x02" * 32
    first = LocalKeyProvider(master, tmp_path / "one").audit_key()
    assert first == LocalKeyProvider(master, tmp_path / "two").audit_key()  # not from the key store
    assert len(first) == 32 and first != master
    assert first != LocalKeyProvider(b"\x03" * 32, tmp_path).audit_key()


def test_the_kms_audit_key_is_made_once_and_the_same_for_every_process(
    kms: AwsKmsKeyProvider, moto_endpoint: str
) -> None:
    alias = f"alias/eci-audit-test-{uuid.uuid4().hex[:8]}"
    first = AwsKmsKeyProvider(
        endpoint_url=moto_endpoint, region="eu-west-1", deletion_window_days=7, audit_key_alias=alias
    )
    key = first.audit_key()
    assert len(key) == 32
    AwsKmsKeyProvider._audit_keys.clear()  # another process: nothing cached
    second = AwsKmsKeyProvider(
        endpoint_url=moto_endpoint, region="eu-west-1", deletion_window_days=7, audit_key_alias=alias
    )
    assert second.audit_key() == key
    aliases = [entry["AliasName"] for entry in first._client.list_aliases()["Aliases"]]
    assert aliases.count(alias) == 1
    other = AwsKmsKeyProvider(
        endpoint_url=moto_endpoint,
        region="eu-west-1",
        deletion_window_days=7,
        audit_key_alias=f"alias/eci-audit-test-{uuid.uuid4().hex[:8]}",
    )
    assert other.audit_key() != key


def test_verify_audit_refuses_clearly_when_the_audit_key_cannot_be_had(
    fresh_audit_log: None, kms: AwsKmsKeyProvider
) -> None:
    from django.test import override_settings

    from tenants.keyring.providers import key_provider_reset

    cached = dict(AwsKmsKeyProvider._audit_keys)
    AwsKmsKeyProvider._audit_keys.clear()
    try:
        with override_settings(AWS_KMS_ENDPOINT_URL="http://127.0.0.1:9"):
            key_provider_reset()
            out = io.StringIO()
            with pytest.raises(CommandError, match="audit key is not available"):
                call_command("verify_audit", "--json", stdout=out)
            assert json.loads(out.getvalue())["errors"] == {
                "key": ["KMS refused the audit key: EndpointConnectionError"]
            }
            with pytest.raises(KeyProviderError):
                audit_record(actor="test", action="test.event")  # nothing is recorded unchained
    finally:
        AwsKmsKeyProvider._audit_keys.update(cached)
        key_provider_reset()
    assert not AuditEvent.objects.exists()
