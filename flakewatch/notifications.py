"""Change notifications: post a team's verdict changes to its webhooks.

The analysis hands ``record_changes`` the verdicts a batch changed, inside
the batch's transaction: the changes a team acts on (new flaky, became
broken, fixed) become ``StatusChange`` rows, and one ``NotificationDelivery``
row per change and webhook, both under unique constraints, so a redelivered
analysis writes nothing twice. On commit, one task per webhook and batch
(``deliver_notifications``) posts all of the batch's changes in one message:
a red build sends one message, not a hundred, and ingestion never waits on a
webhook.

Each message is signed: ``X-Flakewatch-Timestamp`` (Unix seconds) and
``X-Flakewatch-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``
keyed with the webhook's secret, so a receiver can check both origin and
freshness.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from flakewatch import dispatch
from flakewatch.models import (
    Case,
    DeliveryStatus,
    NotificationDelivery,
    StatusChange,
    TeamWebhook,
    Upload,
)
from flakewatch.outcomes import Status

logger = logging.getLogger(__name__)

# A webhook still failing after this many attempts is marked failed for good.
MAX_ATTEMPTS = 6
# Statuses a receiver answers when trying again may help; other 4xx never will.
RETRYABLE_HTTP = {408, 425, 429}
# Pending deliveries older than this are re-sent by the sweep (a lost task).
RESEND_AFTER = timedelta(minutes=5)
# The wait before the first retry, doubled for each later one (the sweep runs
# every 10 minutes): 5 minutes, then 10, 20, 40 and 80.
RETRY_AFTER = timedelta(minutes=5)
SIGNATURE_HEADER = "X-Flakewatch-Signature"
TIMESTAMP_HEADER = "X-Flakewatch-Timestamp"

PENDING = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)

KIND_TEXT: dict[str, str] = {
    StatusChange.Kind.NEW_FLAKY: "is flaky",
    StatusChange.Kind.BROKEN: "is broken",
    StatusChange.Kind.FIXED: "is fixed",
}


def change_kind(old: str, new: str) -> str | None:
    """Return the kind of change a team acts on, or None for the others."""
    if new == Status.FLAKY and old != Status.FLAKY:
        return StatusChange.Kind.NEW_FLAKY
    if new == Status.BROKEN and old != Status.BROKEN:
        return StatusChange.Kind.BROKEN
    if new == Status.FIXED and old in (Status.FLAKY, Status.BROKEN):
        return StatusChange.Kind.FIXED
    return None


def record_changes(last: Upload, changes: Sequence[tuple[int, str, str]]) -> None:
    """Record a batch's verdict changes and queue their webhook messages.

    ``last`` is the batch's newest upload and ``changes`` its (case id, old
    status, new status) triples. The caller owns the transaction (the
    batch's); the messages are sent on its commit. Idempotent: the unique
    constraints keep one row per change and per change and webhook.
    """
    rows = [
        StatusChange(
            project_id=last.project_id,
            case_id=case_id,
            upload_id=last.pk,
            kind=kind,
            old_status=old,
            new_status=new,
            changed_at=last.run_at,
        )
        for case_id, old, new in changes
        if (kind := change_kind(old, new)) is not None
    ]
    if not rows:
        return
    StatusChange.objects.bulk_create(rows, ignore_conflicts=True)  # statuschange_uniq
    recorded = StatusChange.objects.filter(upload_id=last.pk).values_list(
        "pk", "case__team_id"
    )
    teams = {team_id for _, team_id in recorded if team_id is not None}
    if not teams:
        return
    hooks: dict[int, list[int]] = {}
    for hook_id, team_id in TeamWebhook.objects.filter(
        team_id__in=teams, active=True
    ).values_list("pk", "team_id"):
        hooks.setdefault(team_id, []).append(hook_id)
    deliveries = [
        NotificationDelivery(webhook_id=hook_id, change_id=change_id, upload_id=last.pk)
        for change_id, team_id in recorded
        for hook_id in hooks.get(team_id, [])
    ]
    NotificationDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    for hook_id in {d.webhook_id for d in deliveries}:
        transaction.on_commit(partial(_send_delivery, hook_id, last.pk))


def _send_delivery(webhook_id: int, upload_id: int) -> None:
    # A broker that is down leaves the rows pending: the resend sweep finds them.
    dispatch.send(dispatch.DELIVER_NOTIFICATIONS, webhook_id, upload_id)


@dataclass(frozen=True, slots=True)
class ChangeItem:
    """One change as a message tells it."""

    test_id: int
    project: str
    suite: str
    classname: str
    name: str
    kind: str
    old_status: str
    new_status: str
    changed_at: str
    url: str


def case_url(project_slug: str, case_id: int) -> str:
    """Return the absolute URL of a test's dashboard page."""
    path = reverse("test", kwargs={"slug": project_slug, "case_id": case_id})
    return f"{settings.FLAKEWATCH_BASE_URL}{path}"


def deliver_notifications(webhook_id: int, upload_id: int) -> None:
    """Post one batch's pending changes for one webhook, in one message.

    Idempotent: rows already sent are skipped, and the rows are locked while
    the message is posted, so a duplicate task sends nothing. A crash after
    the post and before the commit sends that message again on the retry
    (at least once in that window; at most once otherwise). A failure is
    recorded, never raised: one a retry may cure (refused connection,
    timeout, 5xx, 429) waits for ``resend_pending_notifications`` after a
    doubling backoff, until MAX_ATTEMPTS; then the rows are failed.
    """
    with transaction.atomic():
        rows = list(
            # notification_batch_idx (webhook, upload, status). of=self: a
            # lock on the joined project row would stall the project's new
            # uploads (their foreign key check) for the whole POST.
            NotificationDelivery.objects.select_for_update(
                skip_locked=True, of=("self",)
            )
            .filter(webhook_id=webhook_id, upload_id=upload_id, status__in=PENDING)
            .select_related("change", "change__case", "change__project", "webhook")
            .select_related("webhook__team")
            .order_by("change_id")
        )
        if not rows:
            return
        hook = rows[0].webhook
        items = [_item(row.change, row.change.case) for row in rows]
        body = json.dumps(
            build_payload(hook, items), separators=(",", ":"), ensure_ascii=False
        ).encode()
        error, retryable = _post(hook, body)
        attempts = rows[0].attempts + 1
        now = timezone.now()
        retry_at = None
        if error is None:
            status = DeliveryStatus.SENT
        elif retryable and attempts < MAX_ATTEMPTS:
            status = DeliveryStatus.RETRYING
            retry_at = now + RETRY_AFTER * 2 ** (attempts - 1)
        else:
            status = DeliveryStatus.FAILED
        NotificationDelivery.objects.filter(pk__in=[row.pk for row in rows]).update(
            status=status,
            attempts=F("attempts") + 1,
            last_error=error or "",
            retry_at=retry_at,
            sent_at=now if error is None else None,
        )
    if status == DeliveryStatus.FAILED:
        logger.error(
            "webhook %s failed for good for upload %s: %s", webhook_id, upload_id, error
        )
    elif status == DeliveryStatus.RETRYING:
        logger.warning(
            "webhook %s will be retried for upload %s: %s", webhook_id, upload_id, error
        )


def resend_pending_notifications() -> int:
    """Send the retries that are due and the lost tasks; return how many batches.

    A delivery still pending after RESEND_AFTER had its on-commit task lost
    (the broker was down); a retrying one is due at its ``retry_at``.
    """
    now = timezone.now()
    due = Q(status=DeliveryStatus.PENDING, created_at__lt=now - RESEND_AFTER) | Q(
        status=DeliveryStatus.RETRYING, retry_at__lte=now
    )
    batches = set(
        NotificationDelivery.objects.filter(due).values_list("webhook_id", "upload_id")
    )
    for webhook_id, upload_id in batches:
        dispatch.send(dispatch.DELIVER_NOTIFICATIONS, webhook_id, upload_id)
    return len(batches)


def _item(change: StatusChange, case: Case) -> ChangeItem:
    return ChangeItem(
        test_id=case.pk,
        project=change.project.slug,
        suite=case.suite,
        classname=case.classname,
        name=case.name,
        kind=change.kind,
        old_status=change.old_status,
        new_status=change.new_status,
        changed_at=change.changed_at.isoformat(),
        url=case_url(change.project.slug, case.pk),
    )


def build_payload(hook: TeamWebhook, items: list[ChangeItem]) -> dict[str, Any]:
    """Return the message body: Slack/Mattermost blocks or a plain JSON event."""
    team = hook.team.slug
    if hook.kind == TeamWebhook.Kind.JSON:
        return {
            "event": "flakewatch.verdicts_changed",
            "team": team,
            "changes": [
                {
                    "test_id": i.test_id,
                    "project": i.project,
                    "suite": i.suite,
                    "classname": i.classname,
                    "name": i.name,
                    "kind": i.kind,
                    "old_status": i.old_status,
                    "new_status": i.new_status,
                    "changed_at": i.changed_at,
                    "url": i.url,
                }
                for i in items
            ],
        }
    counts: dict[str, int] = {}
    for item in items:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    summary = ", ".join(
        f"{n} {StatusChange.Kind(kind).label}" for kind, n in counts.items()
    )
    headline = f"{team}: {summary}"
    lines = [
        f"• <{item.url}|{_mrkdwn(_display_name(item))}> {KIND_TEXT[item.kind]}"
        f" (was {item.old_status}) in {_mrkdwn(item.project)}"
        for item in items
    ]
    return {
        "text": headline,  # what notifications and clients without blocks show
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(headline)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        ],
    }


def _display_name(item: ChangeItem) -> str:
    return f"{item.classname}::{item.name}" if item.classname else item.name


def _mrkdwn(text: str) -> str:
    # Slack's only escapes: a test name must not open a link or a mention.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def _post(hook: TeamWebhook, body: bytes) -> tuple[str | None, bool]:
    """POST ``body``; return (error or None, whether a retry may help)."""
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        hook.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "flakewatch",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(hook.secret, timestamp, body),
        },
    )
    timeout = settings.FLAKEWATCH_WEBHOOK_TIMEOUT_SECONDS
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        retryable = exc.code >= 500 or exc.code in RETRYABLE_HTTP
        return f"the webhook answered HTTP {exc.code} {exc.reason}", retryable
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout
        return f"the webhook could not be reached: {exc}", True
    return None, False
