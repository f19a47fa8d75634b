"""Send Celery tasks by their wire names, and the retry policy of every task.

The function modules name a task by its wire name and never import the task
modules, whose tasks import them: no import circle, and a renamed task
function cannot silently change what is sent. Task names are wire format:
never rename one without leaving an alias.
"""

from __future__ import annotations

import logging
from typing import TypedDict

from django.db import OperationalError
from kombu.exceptions import OperationalError as BrokerError

from flakewatch.celery import app

logger = logging.getLogger(__name__)

PROCESS_UPLOAD = "ingest.process_upload"
REQUEUE_STALE_UPLOADS = "ingest.requeue_stale_uploads"
ANALYZE_UPLOAD = "flakewatch.analyze_upload"
SEND_DUE_DIGESTS = "flakewatch.send_due_digests"
SEND_WEEKLY_DIGEST = "flakewatch.send_weekly_digest"
DELIVER_NOTIFICATIONS = "flakewatch.deliver_notifications"
RESEND_PENDING_NOTIFICATIONS = "flakewatch.resend_pending_notifications"
PRUNE_RAW_DATA = "flakewatch.prune_raw_data"

# Redis serves two priority levels (settings: priority_steps) and takes 0
# first: analyses go last, so a worker ingests every waiting upload first.
ANALYSIS_PRIORITY = 9


class SendOptions(TypedDict, total=False):
    """The options of ``send_task`` a task is sent with."""

    priority: int


class RetryPolicy(TypedDict):
    """The retry options every task is declared with."""

    autoretry_for: tuple[type[BaseException], ...]
    retry_backoff: bool
    retry_jitter: bool
    max_retries: int


SEND_OPTIONS: dict[str, SendOptions] = {ANALYZE_UPLOAD: {"priority": ANALYSIS_PRIORITY}}

# Every task's retry policy: only transient database errors retry. The
# functions are idempotent, and unreadable input is recorded on the upload,
# never raised.
RETRY_POLICY: RetryPolicy = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_jitter": True,
    "max_retries": 5,
}

# What a publish raises when the broker is down or unreachable.
BROKER_ERRORS = (BrokerError, ConnectionError, TimeoutError)


def send(name: str, *args: int | str) -> bool:
    """Send the task named ``name`` with ``args``; False if the broker is down.

    Never retries and never raises for a broker that is down: a request must
    not wait on it. The caller records the failure, and the sweeper re-sends.
    With eager tasks (the embedded default) the task runs here and now.
    """
    if app.conf.task_always_eager:
        # send_task ignores eager mode; registering the apps' task modules is
        # a dictionary lookup once they are imported.
        app.loader.import_default_modules()
        app.tasks[name].apply(args=args)
        return True
    try:
        app.send_task(name, args=args, retry=False, **SEND_OPTIONS.get(name, {}))
    except BROKER_ERRORS as exc:
        logger.warning("task %s%r not sent, the broker is down: %s", name, args, exc)
        return False
    return True
