"""The metrics endpoint: a small HTTP server (prometheus-client's) on METRICS_PORT, in gunicorn's master
and in the Celery worker's main process, answering with the sum of every process's files and, on the
web, the platform's state read at scrape time."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from celery import Celery
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from eci_platform.metrics.directory import multiprocess_mode

logger = logging.getLogger(__name__)


class PlatformStateCollector(Collector):
    """Figures read at scrape time: how many messages wait in each Celery queue (from the broker, Redis)
    and, from the public schema, initiatives by state, re-encryption sweeps and destructions (a handful of
    aggregate queries; export jobs live in each initiative's schema and are counted as they change
    instead, in exports/metrics.py)."""

    def __init__(self, celery_app: Celery) -> None:
        self.celery_app = celery_app

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "eci_collector_up", "1 when a figure read at scrape time could be read.", labels=["collector"]
        )
        readers: tuple[tuple[str, Callable[[], Iterator[Metric]]], ...] = (
            ("queues", lambda: _queue_lengths(self.celery_app)),
            ("database", _platform_state),
        )
        for name, read in readers:
            try:
                families = list(read())
            except Exception as error:  # a scrape reports the failure; it must never raise
                logger.warning("metrics: %s not read: %s", name, type(error).__name__)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


class _ThisProcessCollector(Collector):
    """The process's own metrics, where there is no multiprocess directory (development, tests)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def _queue_lengths(app: Celery) -> Iterator[Metric]:
    from kombu.exceptions import ChannelError

    from workers.queues import QUEUES

    lengths = GaugeMetricFamily(
        "eci_celery_queue_length",
        "Messages waiting in a Celery queue (read at scrape time).",
        labels=["queue"],
    )
    with app.connection_for_read() as broker:
        # One try: kombu would otherwise retry for ever, and each scrape would leave a thread waiting.
        broker.ensure_connection(max_retries=1, timeout=2)
        channel: Any = broker.default_channel  # kombu's virtual channel (Redis): queue_declare
        for queue in QUEUES:
            try:
                _name, count, _consumers = channel.queue_declare(queue=queue, passive=True)
            except ChannelError:  # an empty queue has no key in Redis
                count = 0
            lengths.add_metric([queue], count)
    yield lengths


def _platform_state() -> Iterator[Metric]:
    from django.db import connections

    try:
        yield from _public_schema_figures()
    finally:
        # The server answers each scrape in a thread of its own: its connection goes with it.
        connections.close_all()


def _public_schema_figures() -> Iterator[Metric]:
    from django.db.models import Count, F, Sum
    from django_tenants.utils import get_public_schema_name

    from tenants.db import connection
    from tenants.models import (
        DestructionRecord,
        Initiative,
        InitiativeState,
        ReencryptionJob,
        ReencryptionJobState,
    )

    connection.set_schema_to_public()
    initiatives = GaugeMetricFamily("eci_initiatives", "Initiatives by lifecycle state.", labels=["state"])
    by_state = dict(
        Initiative.objects.exclude(schema_name=get_public_schema_name())
        .values_list("state")
        .annotate(number=Count("pk"))
        .values_list("state", "number")
    )
    for state in InitiativeState.values:
        initiatives.add_metric([state], by_state.get(state, 0))
    yield initiatives

    sweeps = GaugeMetricFamily(
        "eci_reencryption_jobs", "Re-encryption sweeps (key rotation) by state.", labels=["state"]
    )
    by_state = dict(
        ReencryptionJob.objects.values_list("state")
        .annotate(number=Count("pk"))
        .values_list("state", "number")
    )
    for state in ReencryptionJobState.values:
        sweeps.add_metric([state], by_state.get(state, 0))
    yield sweeps
    unfinished = ReencryptionJob.objects.filter(
        state__in=[ReencryptionJobState.QUEUED, ReencryptionJobState.RUNNING], records_total__isnull=False
    ).aggregate(left=Sum(F("records_total") - F("records_done")))
    yield GaugeMetricFamily(
        "eci_reencryption_records_remaining",
        "Sealed records the unfinished re-encryption sweeps have still to go through.",
        value=max(unfinished["left"] or 0, 0),
    )

    destructions = GaugeMetricFamily(
        "eci_destructions",
        "Destruction records (REQ-18, REQ-19) by whether their run has finished every step.",
        labels=["finished"],
    )
    unfinished_destructions = DestructionRecord.objects.filter(finished_at__isnull=True).count()
    destructions.add_metric(["false"], unfinished_destructions)
    destructions.add_metric(["true"], DestructionRecord.objects.count() - unfinished_destructions)
    yield destructions


def exposition_registry(*, platform_state_of: Celery | None = None) -> CollectorRegistry:
    """What the endpoint serves: every process's counters (their files in multiprocess mode, this
    process's own otherwise) and, given `platform_state_of` (the Celery app, for its broker), the figures
    read at scrape time."""
    registry = CollectorRegistry()
    if multiprocess_mode():
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcessCollector())
    if platform_state_of is not None:
        registry.register(PlatformStateCollector(platform_state_of))
    return registry


def metrics_server_start(port: int, address: str, *, platform_state_of: Celery | None = None) -> None:
    """Serve the metrics on `address:port` from a thread of this process."""
    start_http_server(port, addr=address, registry=exposition_registry(platform_state_of=platform_state_of))
    logger.info("metrics: serving on port %s", port)


def process_exited(pid: int) -> None:
    """A worker process ended (gunicorn's child_exit, Celery's worker_process_shutdown): drop its
    live gauges' files. Its counters stay counted."""
    if multiprocess_mode():
        mark_process_dead(pid)


def this_process_exited() -> None:
    process_exited(os.getpid())
