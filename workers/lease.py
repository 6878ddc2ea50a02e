"""Leases on job rows: how a worker claims a job, keeps it while it works and lets it go.

A job row (an export job, a re-encryption job) carries `lease_owner` and `lease_until`. Claiming is one
conditional UPDATE, so of two deliveries of the same message only one wins; the holder renews before
the lease runs out; a beat reconciler re-sends jobs whose lease expired (a killed worker). The database
is the source of truth, the broker only wakes workers.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone


class LeaseLostError(Exception):
    """Another worker took the job over (this one was too slow to renew): stop, write nothing more."""


def lease_free(now: datetime.datetime) -> Q:
    """Jobs nobody holds: never claimed, released, or with an expired lease."""
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def lease_claim(job: QuerySet[Any], *, owner: str, seconds: float, **updates: object) -> bool:
    """Take the job that `job` selects if nobody holds it, setting `updates` with the lease."""
    now = timezone.now()
    claimed = job.filter(lease_free(now)).update(
        lease_owner=owner, lease_until=now + datetime.timedelta(seconds=seconds), **updates
    )
    return claimed == 1


def lease_renew(job: QuerySet[Any], *, owner: str, seconds: float, **updates: object) -> None:
    """Extend the lease by `seconds` from now and record `updates`; only the holder may."""
    renewed = job.filter(lease_owner=owner).update(
        lease_until=timezone.now() + datetime.timedelta(seconds=seconds), **updates
    )
    if renewed != 1:
        raise LeaseLostError


def lease_release(job: QuerySet[Any], *, owner: str | None, **updates: object) -> bool:
    """End the lease with `updates` (the job's end state). Only the holder may, unless `owner` is None
    (the job is ended from outside, e.g. given up). False when the job was not this owner's."""
    if owner is not None:
        job = job.filter(lease_owner=owner)
    return job.update(lease_owner="", lease_until=None, **updates) == 1


def lease_lapse(job: QuerySet[Any], *, owner: str, **updates: object) -> None:
    """Let the lease run out now, so the reconciler re-sends the job at once (after a failure that a
    retry may cure)."""
    job.filter(lease_owner=owner).update(lease_until=timezone.now(), **updates)
