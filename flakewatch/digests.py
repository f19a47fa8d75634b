"""The weekly team digest: build one team's email, send it once per week.

A digest covers the 7 days before the digest moment (FLAKEWATCH_DIGEST_DAY
at FLAKEWATCH_DIGEST_TIME in FLAKEWATCH_DIGEST_TIMEZONE); its week is named
by the first day of those 7 (``week_start``, a local date).

Sending is claimed before anything is sent: ``send_due_digests`` (beat)
writes one ``DigestDelivery(team, week_start)`` row per team under a unique
constraint and sends a task per team; ``send_weekly_digest`` takes the row
with a compare-and-set (status and lease), so two beats, a beat firing
twice or a redelivered task find it taken or done and send nothing. Each
address gets its own message (its own unsubscribe link), recorded on the
row as it goes: a retry after an SMTP failure skips those already sent. A
crash between an accepted message and that record sends that one message
again on the retry; nothing else is ever sent twice.

Failures are recorded on the row, never raised: a failure a retry may cure
is retried by beat's next check after a doubling backoff; after
MAX_ATTEMPTS the row says failed (admin lists it, with the server's answer).
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from flakewatch import digest_queries, dispatch
from flakewatch.digest_queries import DigestTest, TeamWeek
from flakewatch.models import DeliveryStatus, DigestDelivery, DigestUnsubscribe, Team
from flakewatch.notifications import case_url

logger = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
QUIET_CHOICES = ("note", "skip")
# A team still failing after this many attempts is marked failed for good.
MAX_ATTEMPTS = 6
# A sender holds a claimed row this long; past it, a crashed send resumes.
LEASE = timedelta(minutes=15)
# The wait before the first retry, doubled for each later one: 5, 10, 20,
# 40 and 80 minutes, all within CATCH_UP.
RETRY_AFTER = timedelta(minutes=5)
# Beat checks hourly; a week's digests start only this soon after its moment
# (a beat down all Monday still sends on Monday night, a week-old one never).
CATCH_UP = timedelta(days=1)
UNSUBSCRIBE_SALT = "flakewatch.digests.unsubscribe"


@dataclass(frozen=True, slots=True)
class Period:
    """A digest's week: [start, end) in UTC, named by its first local day."""

    week_start: date
    start: datetime
    end: datetime


def _moment() -> tuple[ZoneInfo, time]:
    hours, minutes = settings.FLAKEWATCH_DIGEST_TIME.split(":")
    return ZoneInfo(settings.FLAKEWATCH_DIGEST_TIMEZONE), time(int(hours), int(minutes))


def period_of(week_start: date) -> Period:
    """Return the digest week that begins on the local day ``week_start``."""
    zone, at = _moment()
    # Local wall-clock times: a week across a DST change is 167 or 169 hours.
    start = datetime.combine(week_start, at, zone)
    end = datetime.combine(week_start + timedelta(days=7), at, zone)
    return Period(week_start, start.astimezone(UTC), end.astimezone(UTC))


def digest_period(now: datetime | None = None) -> Period:
    """Return the week whose digest moment is the latest at or before ``now``."""
    zone, at = _moment()
    local = (now or timezone.now()).astimezone(zone)
    weekday = DAYS.index(settings.FLAKEWATCH_DIGEST_DAY)
    day = local.date() - timedelta(days=(local.weekday() - weekday) % 7)
    if datetime.combine(day, at, zone) > local:
        day -= timedelta(days=7)
    return period_of(day - timedelta(days=7))


# --- Building -------------------------------------------------------------------


def team_url(project: str, team: str) -> str:
    """Return the absolute URL of a team's page in a project."""
    path = reverse("team", kwargs={"slug": project, "team": team})
    return f"{settings.FLAKEWATCH_BASE_URL}{path}"


def unsubscribe_token(team: Team, address: str) -> str:
    """Return the signed token that unsubscribes ``address`` from ``team``."""
    return signing.dumps([team.pk, address.lower()], salt=UNSUBSCRIBE_SALT)


def read_unsubscribe_token(token: str) -> tuple[int, str] | None:
    """Return the (team id, address) a token names, or None if it is not ours."""
    try:
        team_id, address = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not isinstance(team_id, int) or not isinstance(address, str):
        return None
    return team_id, address


def unsubscribe_url(team: Team, address: str) -> str:
    """Return the absolute one-click unsubscribe URL for one recipient."""
    path = reverse("digest-unsubscribe", args=[unsubscribe_token(team, address)])
    return f"{settings.FLAKEWATCH_BASE_URL}{path}"


def minutes(ms: float) -> int:
    """Return milliseconds as whole minutes, rounded."""
    return round(ms / 60_000)


def subject_of(week: TeamWeek) -> str:
    """Return the subject line: the week's headline."""
    if week.is_quiet:
        return f"{week.team}: all quiet this week"
    new = week.new_flaky.total
    parts = [f"{new} new flaky test{'s' if new != 1 else ''}"]
    if week.broken.total:
        parts.append(f"{week.broken.total} broken")
    parts.append(f"{week.fixed.total} fixed")
    parts.append(f"{minutes(week.time_lost_ms)} min lost")
    return f"{week.team}: {', '.join(parts)}"


def _test_item(test: DigestTest, detail: str) -> dict[str, Any]:
    return {
        "name": test.display_name,
        "project": test.project,
        "url": case_url(test.project, test.id),
        "detail": detail,
    }


def _percent(rate: float) -> str:
    return f"{rate * 100:.0f}%"


def _sections(week: TeamWeek) -> list[dict[str, Any]]:
    """Return the digest's sections in reading order, empty ones left out.

    Each is a title, items (name, project, url, detail) and how many more;
    a new kind of item (quarantine suggestions, expiring quarantines) is one
    more entry here, and both templates render it unchanged.
    """

    def since(test: DigestTest) -> str:
        parts = []
        if test.since is not None:
            parts.append(f"since {test.since:%a %d %b}")
        if test.since_commit:
            parts.append(f"commit {test.since_commit[:12]}")
        return ", ".join(parts)

    def slower(test: DigestTest) -> str:
        p50 = (
            ""
            if test.duration_p50_ms is None
            else f"median {test.duration_p50_ms / 1000:.1f} s"
        )
        step = f"slower since {test.since_commit[:12]}" if test.since_commit else ""
        return ", ".join(p for p in (p50, step) if p)

    sections = [
        (
            "New flaky tests",
            [
                _test_item(t, f"fails {_percent(t.flake_rate)} of {t.runs} runs")
                for t in week.new_flaky.items
            ],
            week.new_flaky.more,
        ),
        (
            "Broken",
            [_test_item(t, since(t)) for t in week.broken.items],
            week.broken.more,
        ),
        (
            "Still flaky, most failing runs first",
            [
                _test_item(
                    t,
                    f"fails {_percent(t.flake_rate)} of {t.runs} runs "
                    f"(about {t.impact:.0f} failed runs)",
                )
                for t in week.still_flaky.items
            ],
            week.still_flaky.more,
        ),
        (
            "Fixed this week: well done",
            [_test_item(t, "no longer flaky or broken") for t in week.fixed.items],
            week.fixed.more,
        ),
        (
            "Tests that got slower",
            [_test_item(t, slower(t)) for t in week.slower_tests.items],
            week.slower_tests.more,
        ),
        (
            "Suites that got slower",
            [
                {
                    "name": s.name,
                    "project": s.project,
                    "url": team_url(s.project, week.team),
                    "detail": (
                        ""
                        if s.duration_p50_ms is None
                        else f"median {s.duration_p50_ms / 1000:.1f} s a run"
                    ),
                }
                for s in week.slower_suites
            ],
            0,
        ),
    ]
    return [
        {"title": title, "items": items, "more": more}
        for title, items, more in sections
        if items
    ]


def _time_lost_text(week: TeamWeek) -> str:
    now, before = minutes(week.time_lost_ms), minutes(week.time_lost_previous_ms)
    if now == before:
        change = "the same as the week before"
    elif now > before:
        change = f"{now - before} min more than the week before ({before} min)"
    else:
        change = f"{before - now} min less than the week before ({before} min)"
    return f"{now} min of CI re-runs for flaky failures, {change}"


def render_digest(week: TeamWeek, team: Team, address: str) -> tuple[str, str]:
    """Return the (text, HTML) parts of ``week``'s digest for ``address``."""
    context = {
        "week": week,
        "subject": subject_of(week),
        "sections": _sections(week),
        "time_lost": _time_lost_text(week),
        "unowned_total": sum(week.unowned.values()),
        "unowned": sorted(week.unowned.items()),
        "team_pages": [(p, team_url(p, week.team)) for p in week.projects],
        "start": week.start.astimezone(ZoneInfo(settings.FLAKEWATCH_DIGEST_TIMEZONE)),
        "end": week.end.astimezone(ZoneInfo(settings.FLAKEWATCH_DIGEST_TIMEZONE)),
        "unsubscribe_url": unsubscribe_url(team, address),
    }
    text = render_to_string("emails/weekly_digest.txt", context)
    html = render_to_string("emails/weekly_digest.html", context)
    return text, html


def build_message(
    week: TeamWeek,
    team: Team,
    address: str,
    connection: BaseEmailBackend | None = None,
) -> EmailMultiAlternatives:
    """Return the digest email for one recipient, with both parts."""
    text, html = render_digest(week, team, address)
    link = unsubscribe_url(team, address)
    message = EmailMultiAlternatives(
        subject=subject_of(week),
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address],
        connection=connection,
        headers={
            "List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",  # RFC 8058
            "Auto-Submitted": "auto-generated",  # RFC 3834: no vacation replies
        },
    )
    message.attach_alternative(html, "text/html")
    return message


def team_week_for(team: Team, period: Period) -> TeamWeek:
    """Return ``team``'s figures for the digest week ``period``."""
    return digest_queries.team_week(team, start=period.start, end=period.end)


# --- Sending --------------------------------------------------------------------


def send_due_digests(now: datetime | None = None) -> int:
    """Claim the week's digest rows and send a task per team; return how many.

    ``now`` (default: the clock) picks the digest week.

    Beat runs this every 15 minutes (flakewatch/celery.py); it does
    something only in the CATCH_UP after the digest moment. Idempotent: rows
    are created once (digestdelivery_uniq); a task goes to new rows, to
    retries whose backoff is over and to sends whose sender died, and the
    task's claim sends each at most once.
    """
    now = now or timezone.now()
    period = digest_period(now)
    if now - period.end >= CATCH_UP:
        return 0
    teams = [team.pk for team in Team.objects.order_by("slug") if team.emails]
    DigestDelivery.objects.bulk_create(
        [DigestDelivery(team_id=pk, week_start=period.week_start) for pk in teams],
        ignore_conflicts=True,
    )
    # New rows, retries whose backoff is over, and sends whose sender died
    # (leases are on the real clock; ``now`` only picks the week).
    due = Q(status=DeliveryStatus.PENDING) | Q(
        status__in=[DeliveryStatus.RETRYING, DeliveryStatus.SENDING],
        lease_until__lte=timezone.now(),
    )
    waiting = list(
        DigestDelivery.objects.filter(
            due, week_start=period.week_start, team_id__in=teams
        ).values_list("team_id", flat=True)
    )
    for team_id in waiting:
        dispatch.send(
            dispatch.SEND_WEEKLY_DIGEST, team_id, period.week_start.isoformat()
        )
    return len(waiting)


def _claim(delivery_id: int, now: datetime) -> bool:
    """Take the row for one send; False if a sender has it or it is done."""
    claimable = Q(status=DeliveryStatus.PENDING) | Q(
        status__in=[DeliveryStatus.RETRYING, DeliveryStatus.SENDING],
        lease_until__lte=now,
    )
    return bool(
        DigestDelivery.objects.filter(claimable, pk=delivery_id).update(
            status=DeliveryStatus.SENDING,
            lease_until=now + LEASE,
            attempts=F("attempts") + 1,
        )
    )


def _refusal(exc: smtplib.SMTPException, address: str) -> str | None:
    """Return the server's permanent refusal of ``address``, or None."""
    answer: bytes | str
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, answer = exc.recipients.get(address, (0, b""))
    elif isinstance(exc, smtplib.SMTPDataError | smtplib.SMTPResponseException):
        code, answer = exc.smtp_code, exc.smtp_error
    else:
        return None
    if not 500 <= code < 600:
        return None  # 4xx: try again later
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else answer
    return f"{code} {text}"


def send_weekly_digest(team_id: int, week_start: str) -> str:
    """Send ``team_id``'s digest for the week beginning ``week_start`` once.

    ``week_start`` is an ISO date. Claims the team's DigestDelivery row
    first and returns its status without sending if another sender has it
    or it is done. Records each sent address, each address the server
    refuses for good, and a failure: one a retry may cure (connection,
    timeout, 4xx) is retried by the next ``send_due_digests`` after a
    doubling backoff (RETRY_AFTER), until MAX_ATTEMPTS; then the delivery is
    recorded failed. Never raises for a mail server's failure, so one
    team's failure never stops another's. Owns its transactions.
    """
    week_day = date.fromisoformat(week_start)
    delivery, _ = DigestDelivery.objects.get_or_create(
        team_id=team_id, week_start=week_day
    )
    now = timezone.now()
    if not _claim(delivery.pk, now):
        delivery.refresh_from_db()
        return delivery.status
    delivery.refresh_from_db()
    team = delivery.team
    week = team_week_for(team, period_of(week_day))
    delivery.subject = subject_of(week)
    if week.is_quiet and settings.FLAKEWATCH_DIGEST_QUIET == "skip":
        return _finish(delivery, DeliveryStatus.SKIPPED)
    error = _send_all(delivery, team, week)
    if error is None:
        if delivery.sent_to:
            return _finish(delivery, DeliveryStatus.SENT)
        refused = bool(delivery.refused)
        return _finish(
            delivery, DeliveryStatus.FAILED if refused else DeliveryStatus.SKIPPED
        )
    delivery.last_error = error
    if delivery.attempts >= MAX_ATTEMPTS:
        logger.error("digest of team %s failed for good: %s", team.slug, error)
        return _finish(delivery, DeliveryStatus.FAILED)
    logger.warning("digest of team %s will be retried: %s", team.slug, error)
    return _finish(
        delivery,
        DeliveryStatus.RETRYING,
        retry_at=now + RETRY_AFTER * 2 ** (delivery.attempts - 1),
    )


def _send_all(delivery: DigestDelivery, team: Team, week: TeamWeek) -> str | None:
    """Send to every address not yet done; return the error that stopped it."""
    unsubscribed = set(
        DigestUnsubscribe.objects.filter(team=team).values_list("email", flat=True)
    )
    done = {*delivery.sent_to, *delivery.refused}
    addresses = []
    for address in team.emails:
        address = address.strip().lower()
        if address and address not in unsubscribed and address not in done:
            addresses.append(address)
            done.add(address)
    if not addresses:
        return None
    try:
        with get_connection() as connection:
            for address in addresses:
                try:
                    build_message(week, team, address, connection).send()
                except smtplib.SMTPException as exc:
                    refusal = _refusal(exc, address)
                    if refusal is None:
                        raise
                    delivery.refused[address] = refusal
                    delivery.save(update_fields=["refused"])
                    continue
                delivery.sent_to.append(address)
                delivery.save(update_fields=["sent_to"])
    except (smtplib.SMTPException, OSError) as exc:  # OSError: refused, timed out
        return f"{type(exc).__name__}: {exc}"
    return None


def _finish(
    delivery: DigestDelivery, status: str, *, retry_at: datetime | None = None
) -> str:
    delivery.status = status
    delivery.lease_until = retry_at  # a retry waits for it
    if status == DeliveryStatus.SENT:
        delivery.sent_at = timezone.now()
    delivery.save(
        update_fields=["status", "lease_until", "sent_at", "subject", "last_error"]
    )
    return status


def unsubscribe(team_id: int, address: str) -> bool:
    """Stop ``team_id``'s digests to ``address``; False if the team is gone.

    Idempotent: unsubscribing twice keeps one row (digestunsubscribe_uniq).
    """
    if not Team.objects.filter(pk=team_id).exists():
        return False
    DigestUnsubscribe.objects.get_or_create(team_id=team_id, email=address.lower())
    return True
