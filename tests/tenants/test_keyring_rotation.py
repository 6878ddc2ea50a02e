"""Rotation at three levels and crypto-shredding. Each test onboards an initiative of its own: rotation
and shredding destroy KEKs at the provider, which a rolled-back test transaction cannot bring back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.test import override_settings

from collection.models import Statement
from collection.sealed import personal_data_decode, statement_identity
from collection.services import DuplicateStatementError, statement_record
from tenants.keyring.index import index_digest
from tenants.keyring.keys import KeyUnavailableError, data_key, process_key_cache
from tenants.keyring.reencryption import reencryption_run
from tenants.keyring.rotation import (
    RotationError,
    data_key_announce,
    data_key_promote,
    kek_rotate,
    reencryption_request,
)
from tenants.keyring.sealing import open_sealed
from tenants.keyring.shredding import initiative_keys_destroy
from tenants.models import (
    AuditEvent,
    DataKey,
    DataKeyState,
    Initiative,
    KeyEncryptionKey,
    KeyPurpose,
    ReencryptionJob,
)
from tenants.onboarding import initiative_onboard
from tests.conftest import onboarding_request

pytestmark = pytest.mark.django_db

IMMEDIATE = override_settings(
    KEY_CACHE_SECONDS=0, KEY_PROPAGATION_SECONDS=0, KEY_WRITE_MARGIN_SECONDS=0, REENCRYPTION_BATCH_SIZE=7
)


def person(number: int) -> dict[str, str]:
    return {
        "first_names": f"Ana {number}",
        "family_names": "Horvat",
        "document_type": "personal.number",
        "document_number": f"{number:011d}",
    }


@pytest.fixture
def fresh(request: pytest.FixtureRequest) -> Initiative:
    serial = 500000 + (abs(hash(request.node.name)) % 99999)
    return initiative_onboard(onboarding_request(f"keys-{serial}", serial), actor="t", provision="now")


def _write(initiative: Initiative, numbers: range) -> list[uuid.UUID]:
    with initiative:
        return [
            statement_record(country="HR", personal_data=person(n), form_revision="t").pk for n in numbers
        ]


def _all_open(initiative: Initiative) -> dict[uuid.UUID, dict[str, str]]:
    with initiative:
        return {
            row.pk: personal_data_decode(
                open_sealed(initiative.pk, row.pk, row.country, bytes(row.sealed_personal_data))
            )
            for row in Statement.objects.all()
        }


def _kek_file(kek: KeyEncryptionKey, keystore: Path) -> Path:
    return keystore / f"{kek.reference.split(':', 1)[1]}.kek"


def test_kek_rotation_rewraps_every_data_key_and_destroys_the_old_kek(
    fresh: Initiative, keystore: Path
) -> None:
    ids = _write(fresh, range(5))
    old_kek = KeyEncryptionKey.objects.get(initiative=fresh)
    wrapped_before = dict(DataKey.objects.filter(initiative=fresh).values_list("pk", "wrapped"))
    assert _kek_file(old_kek, keystore).exists()

    new_kek = kek_rotate(fresh, actor="operator")
    process_key_cache.clear()

    assert not _kek_file(old_kek, keystore).exists()
    old_kek.refresh_from_db()
    assert old_kek.retired_at and old_kek.destroyed_at
    for key in DataKey.objects.filter(initiative=fresh):
        assert key.kek_id == new_kek.pk and bytes(key.wrapped) != bytes(wrapped_before[key.pk])
    assert set(_all_open(fresh)) == set(ids)
    event = AuditEvent.objects.get(initiative=fresh, action="key.kek_rotated")
    assert event.actor == "operator" and event.details["data_keys_rewrapped"] == 2


def test_a_new_primary_waits_for_the_propagation_time(fresh: Initiative) -> None:
    with override_settings(KEY_PROPAGATION_SECONDS=3600):
        pending = data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
        assert pending.state == DataKeyState.PENDING
        with pytest.raises(RotationError, match="already pending"):
            data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
        data_key_promote(pending.pk, actor="t")
        pending.refresh_from_db()
        assert pending.state == DataKeyState.PENDING  # too early: some process may not know it yet
    # Writes still use version 1 while version 2 is pending; every process can already open version 2.
    with fresh:
        statement = statement_record(country="HR", personal_data=person(1), form_revision="t")
    assert statement.key_version == 1
    assert data_key(fresh.pk, KeyPurpose.PERSONAL_DATA, 2).version == 2


@IMMEDIATE
def test_promotion_switches_new_writes_and_keeps_old_records_readable(fresh: Initiative) -> None:
    before = _write(fresh, range(3))
    pending = data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
    data_key_promote(pending.pk, actor="t")
    data_key_promote(pending.pk, actor="t")  # a repeated message changes nothing
    states = dict(
        DataKey.objects.filter(initiative=fresh, purpose=KeyPurpose.PERSONAL_DATA).values_list(
            "version", "state"
        )
    )
    assert states == {1: DataKeyState.DECRYPT_ONLY, 2: DataKeyState.PRIMARY}
    after = _write(fresh, range(3, 5))
    with fresh:
        versions = dict(Statement.objects.values_list("pk", "key_version"))
    assert {versions[pk] for pk in before} == {1} and {versions[pk] for pk in after} == {2}
    assert len(_all_open(fresh)) == 5
    assert AuditEvent.objects.filter(initiative=fresh, action="key.primary_changed").count() == 1


@IMMEDIATE
def test_the_sweep_moves_every_record_and_destroys_the_old_version(fresh: Initiative) -> None:
    ids = _write(fresh, range(30))
    expected = _all_open(fresh)
    target = data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
    data_key_promote(target.pk, actor="t")
    job = reencryption_request(fresh, KeyPurpose.PERSONAL_DATA, target, actor="t")

    outcome = reencryption_run(job.pk)

    assert (outcome.state, outcome.records_done, outcome.records_moved) == ("finished", 30, 30)
    assert outcome.versions_destroyed == [1]
    with fresh:
        assert set(Statement.objects.values_list("key_version", flat=True)) == {2}
    assert _all_open(fresh) == expected and set(expected) == set(ids)
    old = DataKey.objects.get(initiative=fresh, purpose=KeyPurpose.PERSONAL_DATA, version=1)
    assert old.state == DataKeyState.DESTROYED and bytes(old.wrapped) == b""
    actions = set(AuditEvent.objects.filter(initiative=fresh).values_list("action", flat=True))
    assert {"key.sweep_started", "key.sweep_finished", "key.destroyed"} <= actions
    # Running the finished job again does nothing.
    assert reencryption_run(job.pk).records_moved == 30


@IMMEDIATE
def test_the_index_sweep_recomputes_digests_and_duplicates_are_caught_throughout(fresh: Initiative) -> None:
    _write(fresh, range(20))
    target = data_key_announce(fresh, KeyPurpose.INDEX, actor="t")
    data_key_promote(target.pk, actor="t")
    # Before the sweep: old digests under version 1, new writes under 2; a returning signatory is caught.
    with fresh, pytest.raises(DuplicateStatementError):
        statement_record(country="HR", personal_data=person(3), form_revision="t")
    _write(fresh, range(20, 22))

    job = reencryption_request(fresh, KeyPurpose.INDEX, target, actor="t")
    assert reencryption_run(job.pk).state == "finished"

    with fresh:
        rows = list(Statement.objects.all())
        assert {row.index_key_version for row in rows} == {2}
        for row in rows:
            identity = statement_identity(
                open_sealed(fresh.pk, row.pk, row.country, bytes(row.sealed_personal_data)), row.country
            )
            assert bytes(row.index_digest) == index_digest(fresh.pk, identity)[1]
        with pytest.raises(DuplicateStatementError):
            statement_record(country="HR", personal_data=person(7), form_revision="t")
        assert Statement.objects.count() == 22
    old = DataKey.objects.get(initiative=fresh, purpose=KeyPurpose.INDEX, version=1)
    assert old.state == DataKeyState.DESTROYED


@IMMEDIATE
def test_a_record_written_with_a_stale_version_mid_sweep_is_moved_before_the_version_goes(
    fresh: Initiative,
) -> None:
    _write(fresh, range(20))
    old_key = data_key(fresh.pk, KeyPurpose.PERSONAL_DATA, 1)
    target = data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
    data_key_promote(target.pk, actor="t")
    job = reencryption_request(fresh, KeyPurpose.PERSONAL_DATA, target, actor="t")
    reencryption_run(job.pk, max_batches=1)  # as if the worker died after one batch
    # A process that had not yet seen the switch writes with the old key, before the checkpoint.
    from collection.sealed import personal_data_encode
    from tenants.keyring.index import digest_with, identity_part_b
    from tenants.keyring.sealing import seal_with

    early_id = uuid.UUID(int=1)
    data = person(99)
    with fresh:
        Statement.objects.create(
            id=early_id,
            country="HR",
            form_revision="t",
            key_version=1,
            sealed_personal_data=seal_with(old_key, early_id, "HR", personal_data_encode(data)),
            index_digest=digest_with(
                data_key(fresh.pk, KeyPurpose.INDEX, 1),
                identity_part_b(
                    country="HR", document_type="personal.number", document_number=data["document_number"]
                ),
            ),
            index_key_version=1,
        )
    ReencryptionJob.objects.filter(pk=job.pk).update(lease_until=None)  # the dead worker's lease expired

    outcome = reencryption_run(job.pk)
    assert outcome.retry_in_seconds is not None and outcome.versions_destroyed == []
    assert DataKey.objects.get(initiative=fresh, purpose=KeyPurpose.PERSONAL_DATA, version=1).state == (
        DataKeyState.DECRYPT_ONLY
    )
    outcome = reencryption_run(job.pk)
    assert outcome.state == "finished" and outcome.versions_destroyed == [1]
    assert _all_open(fresh)[early_id] == data


def test_a_sweep_waits_until_every_process_stopped_writing_the_old_version(fresh: Initiative) -> None:
    with override_settings(KEY_PROPAGATION_SECONDS=3600):
        target = data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
        job = reencryption_request(fresh, KeyPurpose.PERSONAL_DATA, target, actor="t")
        outcome = reencryption_run(job.pk)
    assert outcome.retry_in_seconds is not None and outcome.retry_in_seconds > 3600
    job.refresh_from_db()
    assert job.state == "queued" and job.records_done == 0


def test_shredding_makes_everything_unreadable_and_is_audited(fresh: Initiative, keystore: Path) -> None:
    ids = _write(fresh, range(3))
    kek = KeyEncryptionKey.objects.get(initiative=fresh)
    with fresh:
        row = Statement.objects.get(pk=ids[0])

    summary = initiative_keys_destroy(fresh, actor="operator-jane", reason="REQ-18 deadline")

    assert not _kek_file(kek, keystore).exists()
    assert set(DataKey.objects.filter(initiative=fresh).values_list("state", flat=True)) == {"destroyed"}
    assert all(
        bytes(wrapped) == b""
        for wrapped in DataKey.objects.filter(initiative=fresh).values_list("wrapped", flat=True)
    )
    with pytest.raises(KeyUnavailableError):
        open_sealed(fresh.pk, row.pk, row.country, bytes(row.sealed_personal_data))
    with pytest.raises(KeyUnavailableError):
        index_digest(fresh.pk, b"B\x1fHR\x1fpersonal.number\x1f00000000001")
    with fresh, pytest.raises(KeyUnavailableError):
        statement_record(country="HR", personal_data=person(50), form_revision="t")
    event = AuditEvent.objects.get(initiative=fresh, action="key.shredded")
    assert event.actor == "operator-jane" and event.occurred_at is not None
    assert event.details["reason"] == "REQ-18 deadline" and summary["keks_destroyed"] == [kek.pk]
    assert AuditEvent.objects.filter(initiative=fresh, action="key.kek_destroyed").exists()


@IMMEDIATE
def test_a_second_rotation_is_refused_while_one_is_under_way(fresh: Initiative) -> None:
    target = data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
    with pytest.raises(RotationError, match="already pending"):
        data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
    data_key_promote(target.pk, actor="t")
    reencryption_request(fresh, KeyPurpose.PERSONAL_DATA, target, actor="t")
    with pytest.raises(RotationError, match="not finished"):
        data_key_announce(fresh, KeyPurpose.INDEX, actor="t")
    kek_count = KeyEncryptionKey.objects.filter(initiative=fresh).count()
    from tenants.keyring.rotation import initiative_keys_rotate

    with pytest.raises(RotationError):
        initiative_keys_rotate(fresh, actor="t", reencrypt=True)
    assert KeyEncryptionKey.objects.filter(initiative=fresh).count() == kek_count, "nothing changed"


@IMMEDIATE
def test_a_sweep_never_moves_a_record_down_to_an_older_version(fresh: Initiative) -> None:
    _write(fresh, range(5))
    first = data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
    data_key_promote(first.pk, actor="t")
    newer = _write(fresh, range(5, 8))  # sealed under version 2
    job = reencryption_request(fresh, KeyPurpose.PERSONAL_DATA, first, actor="t")
    # Version 2 stops being primary behind the job's back (as if a newer rotation had taken over).
    DataKey.objects.filter(initiative=fresh, purpose=KeyPurpose.PERSONAL_DATA, version=2).update(
        state=DataKeyState.DECRYPT_ONLY
    )
    assert reencryption_run(job.pk).state == "failed"
    with fresh:
        assert set(Statement.objects.filter(pk__in=newer).values_list("key_version", flat=True)) == {2}
        assert set(Statement.objects.exclude(pk__in=newer).values_list("key_version", flat=True)) == {1}


@IMMEDIATE
def test_after_a_sweep_the_kek_is_replaced_so_backups_cannot_unwrap_destroyed_versions(
    fresh: Initiative, keystore: Path
) -> None:
    _write(fresh, range(3))
    kek_before = KeyEncryptionKey.objects.get(initiative=fresh, destroyed_at__isnull=True)
    target = data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
    data_key_promote(target.pk, actor="t")
    job = reencryption_request(fresh, KeyPurpose.PERSONAL_DATA, target, actor="t")
    assert reencryption_run(job.pk).versions_destroyed == [1]
    kek_before.refresh_from_db()
    assert kek_before.destroyed_at is not None and not _kek_file(kek_before, keystore).exists()
    assert len(_all_open(fresh)) == 3


def test_a_sweep_gives_up_after_its_attempts_and_says_so(fresh: Initiative) -> None:
    with override_settings(
        KEY_PROPAGATION_SECONDS=0,
        KEY_WRITE_MARGIN_SECONDS=0,
        KEY_CACHE_SECONDS=0,
        REENCRYPTION_MAX_ATTEMPTS=2,
    ):
        target = data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
        data_key_promote(target.pk, actor="t")
        job = reencryption_request(fresh, KeyPurpose.PERSONAL_DATA, target, actor="t")
        ReencryptionJob.objects.filter(pk=job.pk).update(attempts=2)
        outcome = reencryption_run(job.pk)
    assert outcome.state == "failed"
    assert AuditEvent.objects.filter(initiative=fresh, action="key.sweep_failed").exists()


def test_shredding_that_the_provider_refuses_is_audited_and_can_be_run_again(
    fresh: Initiative, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tenants.keyring.providers import KeyProviderError, key_provider

    provider = key_provider()
    real_destroy = provider.destroy_kek

    def refuse(reference: str) -> None:
        raise KeyProviderError("unreachable")

    monkeypatch.setattr(provider, "destroy_kek", refuse)
    with pytest.raises(KeyProviderError):
        initiative_keys_destroy(fresh, actor="op", reason="test")
    assert AuditEvent.objects.filter(initiative=fresh, action="key.shred_incomplete").exists()
    assert KeyEncryptionKey.objects.filter(initiative=fresh, destroyed_at__isnull=True).count() == 1

    monkeypatch.setattr(provider, "destroy_kek", real_destroy)
    initiative_keys_destroy(fresh, actor="op", reason="test")
    assert not KeyEncryptionKey.objects.filter(initiative=fresh, destroyed_at__isnull=True).exists()
    assert AuditEvent.objects.filter(initiative=fresh, action="key.shredded").exists()


@IMMEDIATE
def test_contact_addresses_move_with_the_personal_data_sweep(fresh: Initiative) -> None:
    from collection.models import ContactEmail

    with fresh:
        statement_record(
            country="HR", personal_data=person(1), form_revision="t", contact_email="a@example.org"
        )
    target = data_key_announce(fresh, KeyPurpose.PERSONAL_DATA, actor="t")
    data_key_promote(target.pk, actor="t")
    job = reencryption_request(fresh, KeyPurpose.PERSONAL_DATA, target, actor="t")
    outcome = reencryption_run(job.pk)
    assert outcome.state == "finished" and outcome.records_moved == 2 and outcome.versions_destroyed == [1]
    with fresh:
        contact = ContactEmail.objects.get()
    assert contact.key_version == 2
    assert open_sealed(fresh.pk, contact.pk, "EU", bytes(contact.sealed_email)) == b"a@example.org"
