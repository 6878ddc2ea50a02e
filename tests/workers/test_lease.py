"""The one lease on job rows (workers.lease), used by export jobs and re-encryption sweeps: one claimant
wins, only the holder renews or releases, an expired lease is free again, a lapsed one at once."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from tenants.models import Initiative, KeyPurpose, ReencryptionJob, ReencryptionJobState
from workers.lease import LeaseLostError, lease_claim, lease_lapse, lease_release, lease_renew


@pytest.fixture
def job(alpha: Initiative) -> ReencryptionJob:
    return ReencryptionJob.objects.create(
        initiative=alpha,
        purpose=KeyPurpose.PERSONAL_DATA,
        target_version=2,
        requested_by="test",
        not_before=timezone.now(),
    )


def _row(job: ReencryptionJob) -> ReencryptionJob:
    return ReencryptionJob.objects.get(pk=job.pk)


def test_of_two_claimants_one_wins_and_only_it_renews(job: ReencryptionJob) -> None:
    rows = ReencryptionJob.objects.filter(pk=job.pk)
    assert lease_claim(rows, owner="a", seconds=60, state=ReencryptionJobState.RUNNING)
    assert not lease_claim(rows, owner="b", seconds=60)
    held = _row(job)
    assert held.lease_owner == "a" and held.state == ReencryptionJobState.RUNNING
    assert held.lease_until is not None and held.lease_until > timezone.now() + datetime.timedelta(seconds=50)

    lease_renew(rows, owner="a", seconds=120, records_done=7)
    assert _row(job).records_done == 7
    with pytest.raises(LeaseLostError):
        lease_renew(rows, owner="b", seconds=120, records_done=99)
    assert _row(job).records_done == 7


def test_an_expired_lease_is_taken_over_and_the_old_holder_loses_it(job: ReencryptionJob) -> None:
    rows = ReencryptionJob.objects.filter(pk=job.pk)
    assert lease_claim(rows, owner="a", seconds=60)
    rows.update(lease_until=timezone.now() - datetime.timedelta(seconds=1))  # a killed worker
    assert lease_claim(rows, owner="b", seconds=60)
    with pytest.raises(LeaseLostError):
        lease_renew(rows, owner="a", seconds=60)
    assert not lease_release(rows, owner="a", state=ReencryptionJobState.FINISHED)
    assert _row(job).state != ReencryptionJobState.FINISHED


def test_release_ends_the_lease_and_lapse_frees_it_at_once(job: ReencryptionJob) -> None:
    rows = ReencryptionJob.objects.filter(pk=job.pk)
    assert lease_claim(rows, owner="a", seconds=60)
    lease_lapse(rows, owner="b")  # not the holder: nothing happens
    assert not lease_claim(rows, owner="b", seconds=60)
    lease_lapse(rows, owner="a")
    assert lease_claim(rows, owner="b", seconds=60)
    assert lease_release(rows, owner="b", state=ReencryptionJobState.FINISHED)
    released = _row(job)
    assert released.lease_owner == "" and released.lease_until is None
    assert released.state == ReencryptionJobState.FINISHED
    # Ended from outside (given up), whoever held it.
    assert lease_claim(rows, owner="c", seconds=60)
    assert lease_release(rows, owner=None, state=ReencryptionJobState.FAILED)
    assert _row(job).state == ReencryptionJobState.FAILED
