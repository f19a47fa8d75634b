"""Prometheus metrics: what processes count, and what the tables hold.

Two kinds, because the truth lives in two places:

- **Counted where the work happens** (worker processes, mostly): the ingest
  and analysis duration histograms, digests and notifications sent and
  failed. The web server that answers ``/metrics`` never sees a worker's
  memory, so with ``PROMETHEUS_MULTIPROC_DIR`` set (a directory every web and
  worker process shares; docker-compose.yml mounts one volume) they use
  prometheus_client's multiprocess mode: each process writes its own
  memory-mapped file there and a scrape sums them. Files are named by host
  name and pid, so workers in separate containers (whose pids repeat) never
  share one. Without it (the embedded default: tasks run in the web process)
  they live in the process.
- **Read from the tables and the broker at scrape time**
  (``StateCollector``): uploads by status, executions ingested, the age of
  the oldest upload waiting for ingest or analysis, queue depth. Counts that
  live in tables are exact there, survive restarts and need no process to
  have seen the event, so they are not counted twice.

For other modules, the API is the objects below, used as prometheus_client
documents them::

    from flakewatch import metrics
    metrics.DIGESTS_SENT.inc()            # one digest email handed to SMTP
    metrics.DIGESTS_FAILED.inc()          # a digest given up on (permanent)
    metrics.NOTIFICATIONS_SENT.inc()      # one webhook message delivered
    metrics.NOTIFICATIONS_FAILED.inc()    # one given up on after its retries
    with metrics.INGEST_SECONDS.time(): ...

``render_metrics()`` returns the exposition text of a scrape.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import datetime

import redis
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flakewatch.celery import app
from flakewatch.models import Upload

CONTENT_TYPE = CONTENT_TYPE_LATEST


def _process_identifier() -> str:
    # Pids repeat across containers that share the multiprocess directory.
    # The file name's underscores separate its parts: none in the host name.
    return f"{socket.gethostname().replace('_', '-')}-{os.getpid()}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Before any metric exists: each takes its value class when created.
    values.ValueClass = values.MultiProcessValue(_process_identifier)  # type: ignore[no-untyped-call]

# The process-counted metrics; not in prometheus_client's global registry,
# so a scrape chooses between them and the multiprocess files.
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)
# An upload of 100,000 tests ingests in a few seconds; analyses of a
# backlog batch take up to minutes.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

INGEST_SECONDS = Histogram(
    "flakewatch_ingest_duration_seconds",
    "Time to parse and store one upload's reports.",
    buckets=DURATION_BUCKETS,
    registry=PROCESS_REGISTRY,
)
ANALYSIS_SECONDS = Histogram(
    "flakewatch_analysis_duration_seconds",
    "Time of one analysis task: the upload and the backlog it takes along.",
    buckets=DURATION_BUCKETS,
    registry=PROCESS_REGISTRY,
)
DIGESTS_SENT = Counter(
    "flakewatch_digests_sent",
    "Weekly digest emails handed to the mail server.",
    registry=PROCESS_REGISTRY,
)
DIGESTS_FAILED = Counter(
    "flakewatch_digests_failed",
    "Weekly digests given up on after their retries.",
    registry=PROCESS_REGISTRY,
)
NOTIFICATIONS_SENT = Counter(
    "flakewatch_notifications_sent",
    "Change notifications delivered to a webhook.",
    registry=PROCESS_REGISTRY,
)
NOTIFICATIONS_FAILED = Counter(
    "flakewatch_notifications_failed",
    "Change notifications given up on after their retries.",
    registry=PROCESS_REGISTRY,
)

# kombu's Redis transport keeps one list per queue and priority step; a step
# other than 0 is the queue name, this separator and the step.
PRIORITY_SEPARATOR = "\x06\x16"


class StateCollector(Collector):
    """Read the gauges that live in the tables and the broker, per scrape."""

    def collect(self) -> Iterator[Metric]:
        """Yield the table-derived metrics, then the broker's queue depths."""
        yield from self._table_metrics()
        yield from self._queue_metrics()

    def _table_metrics(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "flakewatch_database_up", "1 if the database answered this scrape."
        )
        try:
            by_status, oldest = _upload_figures()
        except DatabaseError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        uploads = GaugeMetricFamily(
            "flakewatch_uploads", "Uploads by status.", labels=["status"]
        )
        for status in Upload.Status.values:
            uploads.add_metric([status], by_status.get(status, (0, 0))[0])
        yield uploads
        executions = CounterMetricFamily(
            "flakewatch_executions_ingested",
            "Test executions (testcases) stored from done uploads.",
        )
        executions.add_metric([], by_status.get(Upload.Status.DONE, (0, 0))[1])
        yield executions
        age = GaugeMetricFamily(
            "flakewatch_oldest_waiting_upload_age_seconds",
            "Seconds since the oldest upload still waiting for a stage arrived "
            "(0: none waits).",
            labels=["stage"],
        )
        now = timezone.now()
        for stage, received_at in oldest.items():
            seconds = (now - received_at).total_seconds() if received_at else 0.0
            age.add_metric([stage], max(seconds, 0.0))
        yield age

    def _queue_metrics(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "flakewatch_broker_up", "1 if the broker answered this scrape."
        )
        depth = GaugeMetricFamily(
            "flakewatch_queue_depth",
            "Tasks waiting in a broker queue, per priority step (0 is taken first).",
            labels=["queue", "priority"],
        )
        broker_url = settings.CELERY_BROKER_URL
        if not broker_url.startswith(("redis://", "rediss://")):
            return  # the embedded default runs tasks inline: no queue
        try:
            lengths = _queue_lengths(broker_url)
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for (queue, priority), length in lengths.items():
            depth.add_metric([queue, str(priority)], length)
        yield depth


def _upload_figures() -> tuple[dict[str, tuple[int, int]], dict[str, datetime | None]]:
    """Return {status: (uploads, testcases)} and the oldest waiting arrivals."""
    # One sequential scan of the upload table (narrow rows, one per CI job).
    totals = Upload.objects.values("status").annotate(
        n=Count("pk"), tests=Sum("tests_count")
    )
    by_status = {row["status"]: (row["n"], row["tests"] or 0) for row in totals}
    oldest = Upload.objects.aggregate(
        # Uses upload_unfinished_idx (partial: queued or processing).
        ingest=Min(
            "received_at",
            filter=Q(status__in=[Upload.Status.QUEUED, Upload.Status.PROCESSING]),
        ),
        # Uses upload_unanalyzed_idx (partial: done, not analysed).
        analysis=Min(
            "received_at",
            filter=Q(status=Upload.Status.DONE, analyzed_at__isnull=True),
        ),
    )
    return by_status, oldest


def _queue_lengths(broker_url: str) -> dict[tuple[str, int], int]:
    """Return the length of every queue's list at every priority step."""
    options = app.conf.broker_transport_options or {}
    steps = options.get("priority_steps", [0])
    queues = [queue.name for queue in app.conf.task_queues or []]
    client = redis.Redis.from_url(
        broker_url, socket_connect_timeout=2, socket_timeout=2
    )
    try:
        with client.pipeline(transaction=False) as pipe:
            keys = [(queue, step) for queue in queues for step in steps]
            for queue, step in keys:
                pipe.llen(f"{queue}{PRIORITY_SEPARATOR}{step}" if step else queue)
            return dict(zip(keys, pipe.execute(), strict=True))
    finally:
        client.close()


def render_metrics() -> bytes:
    """Return the exposition text of one scrape: processes, tables, broker."""
    registry = CollectorRegistry()
    if settings.PROMETHEUS_MULTIPROC_DIR:
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_InProcess())
    registry.register(StateCollector())
    return generate_latest(registry)


class _InProcess(Collector):
    """This process's own counters, when no multiprocess directory is set."""

    def collect(self) -> Iterator[Metric]:
        """Yield the process registry's metrics."""
        yield from PROCESS_REGISTRY.collect()
