"""Weekly digests through a real SMTP server (aiosmtpd) started by each test."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from datetime import UTC, date, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from django.core.management import call_command

from flakewatch import digests
from flakewatch.celery import app
from flakewatch.models import (
    CommitFailure,
    DeliveryStatus,
    DigestDelivery,
    DigestUnsubscribe,
    StatusChange,
    SuiteState,
    Team,
)
from tests.factories import CaseFactory, CaseStateFactory, ProjectFactory, UploadFactory

BASE = "https://flakewatch.example.test"
# A Monday 09:00 UTC digest: the week of Mon 2 to Mon 9 Nov 2026.
WEEK = date(2026, 11, 2)
IN_WEEK = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)
LAST_WEEK = datetime(2026, 10, 28, 12, 0, tzinfo=UTC)
SEND_AT = datetime(2026, 11, 9, 9, 5, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script>&<img src=http://evil.test/x>'


class Inbox:
    """An SMTP handler: keeps every message; refuses the addresses it is told."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(
            envelope.content, policy=email.policy.default
        )
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for rcpts, m in self.messages if address in rcpts]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def inbox(settings):
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "flakewatch@example.test"
    settings.FLAKEWATCH_BASE_URL = BASE
    settings.FLAKEWATCH_DIGEST_DAY, settings.FLAKEWATCH_DIGEST_TIME = "mon", "09:00"
    settings.FLAKEWATCH_DIGEST_TIMEZONE = "UTC"
    settings.FLAKEWATCH_DIGEST_QUIET = "note"
    yield handler
    controller.stop()


@pytest.fixture
def eager(monkeypatch):
    """Run sent tasks in-process, as the embedded default does."""
    monkeypatch.setitem(app.conf, "task_always_eager", True)


# Registering the tasks warns about analyze_upload_task's priority option.
in_process = pytest.mark.filterwarnings("ignore::celery.exceptions.CDeprecationWarning")


def owned_test(project, team, status, **state):
    case = CaseFactory(project=project, team=team)
    CaseStateFactory(case=case, status=status, **state)
    return case


def change(case, kind, old, new, when=IN_WEEK):
    upload = UploadFactory(project=case.project)
    return StatusChange.objects.create(
        project=case.project,
        case=case,
        upload=upload,
        kind=kind,
        old_status=old,
        new_status=new,
        changed_at=when,
    )


def rerun_for(case, ms: float, when: datetime) -> None:
    """A CI re-run of a job whose first attempt failed on ``case`` only."""
    rerun = UploadFactory(
        project=case.project,
        attempt=2,
        reran_for_flakes=True,
        duration_total_ms=ms,
        started_at=when,
    )
    CommitFailure.objects.create(
        project=case.project,
        case=case,
        commit_sha=rerun.commit_sha,
        job=rerun.job,
        on_default_branch=True,
        ran_at=when,
        failed_runs=1,
        passed_runs=1,
        first_failed_upload=rerun,
    )


@pytest.fixture
def payments(db):
    """A team with two addresses and one test in every digest section."""
    team = Team.objects.create(
        slug="payments", name="Payments", emails=["ana@example.test", "Bo@example.test"]
    )
    project = ProjectFactory(slug="shop")
    new_flaky = owned_test(project, team, "flaky", flake_rate=0.2, runs=40)
    new_flaky.name = HOSTILE
    new_flaky.save()
    change(new_flaky, StatusChange.Kind.NEW_FLAKY, "healthy", "flaky")
    old_flaky = owned_test(project, team, "flaky", flake_rate=0.1, runs=300)
    change(old_flaky, StatusChange.Kind.NEW_FLAKY, "healthy", "flaky", LAST_WEEK)
    broken = owned_test(project, team, "broken", broken_since_commit="c0ffee" * 6)
    change(broken, StatusChange.Kind.BROKEN, "healthy", "broken", LAST_WEEK)
    fixed = owned_test(project, team, "fixed")
    change(fixed, StatusChange.Kind.FIXED, "flaky", "fixed")
    owned_test(
        project,
        team,
        "healthy",
        duration_regressed=True,
        duration_p50_ms=4200.0,
        duration_regressed_since_commit="abc123" * 6,
    )
    SuiteState.objects.create(
        project=project, name="unit", duration_regressed=True, duration_p50_ms=90_000
    )
    CaseFactory(project=project, team=None)  # nobody owns it
    rerun_for(new_flaky, 30 * 60_000, IN_WEEK)
    rerun_for(old_flaky, 11 * 60_000, IN_WEEK)
    rerun_for(old_flaky, 20 * 60_000, LAST_WEEK)
    # Another team's test in the same project: not in payments' digest.
    other = Team.objects.create(slug="search", name="Search", emails=[])
    stranger = owned_test(project, other, "flaky", flake_rate=0.5, runs=10)
    change(stranger, StatusChange.Kind.NEW_FLAKY, "healthy", "flaky")
    return {
        "team": team,
        "project": project,
        "new_flaky": new_flaky,
        "old_flaky": old_flaky,
        "broken": broken,
        "fixed": fixed,
        "stranger": stranger,
    }


def parts(message) -> tuple[str, str]:
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text, html


def test_digest_reaches_each_address_once_with_both_parts_and_headers(inbox, payments):
    status = digests.send_weekly_digest(payments["team"].pk, WEEK.isoformat())

    assert status == DeliveryStatus.SENT
    assert sorted(r for rcpts, _ in inbox.messages for r in rcpts) == [
        "ana@example.test",
        "bo@example.test",
    ]
    message = inbox.to("ana@example.test")[0]
    assert (
        message["Subject"]
        == "payments: 1 new flaky test, 1 broken, 1 fixed, 41 min lost"
    )
    assert message["From"] == "flakewatch@example.test"
    assert message["To"] == "ana@example.test"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # A long header is folded; unfolded it is one <URL>.
    link = re.fullmatch(r"<(\S+)>", message["List-Unsubscribe"].strip()).group(1)
    assert link.startswith(f"{BASE}/digests/unsubscribe/")
    text, html = parts(message)
    for case in ("new_flaky", "old_flaky", "broken", "fixed"):
        url = f"{BASE}/p/shop/tests/{payments[case].pk}/"
        assert url in text and f'href="{url}"' in html
    assert f"/tests/{payments['stranger'].pk}/" not in text
    assert "41 min of CI re-runs for flaky failures, 21 min more" in text
    assert "1 test nobody owns" in text and "1 test nobody owns" in html
    assert f"{BASE}/p/shop/teams/payments/" in html
    # Report text is escaped in HTML and kept as it is in the text part.
    assert HOSTILE in text
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    # Every link is absolute, to flakewatch; no remote images, no scripts.
    hrefs = re.findall(r'href="([^"]+)"', html)
    assert len(hrefs) >= 8 and all(h.startswith(BASE) for h in hrefs)
    assert "src=" not in html.replace("src=http://evil", "")
    # Each recipient has a link of their own.
    other = inbox.to("bo@example.test")[0]
    assert other["List-Unsubscribe"] != message["List-Unsubscribe"]


@in_process
def test_repeated_sends_and_beats_send_nothing_twice(inbox, payments, eager):
    team = payments["team"]
    assert digests.send_due_digests(now=SEND_AT) == 1
    assert digests.send_due_digests(now=SEND_AT + timedelta(minutes=15)) == 0
    assert digests.send_weekly_digest(team.pk, WEEK.isoformat()) == "sent"

    assert len(inbox.messages) == 2
    delivery = DigestDelivery.objects.get(team=team)
    assert (delivery.week_start, delivery.attempts) == (WEEK, 1)
    assert sorted(delivery.sent_to) == ["ana@example.test", "bo@example.test"]
    # A day after the moment, a week's digests no longer start.
    DigestDelivery.objects.all().delete()
    assert digests.send_due_digests(now=SEND_AT + timedelta(days=1)) == 0
    assert len(inbox.messages) == 2


def test_a_crashed_sender_is_resumed_only_after_its_lease(inbox, payments):
    team = payments["team"]
    DigestDelivery.objects.create(
        team=team,
        week_start=WEEK,
        status=DeliveryStatus.SENDING,
        sent_to=["ana@example.test"],
        lease_until=datetime.now(UTC) + timedelta(minutes=5),
    )
    assert digests.send_weekly_digest(team.pk, WEEK.isoformat()) == "sending"
    assert inbox.messages == []
    DigestDelivery.objects.update(lease_until=datetime.now(UTC) - timedelta(seconds=1))
    assert digests.send_weekly_digest(team.pk, WEEK.isoformat()) == "sent"
    assert [rcpts for rcpts, _ in inbox.messages] == [["bo@example.test"]]


def test_unsubscribe_link_works_without_login_and_sticks(inbox, payments, client):
    team = payments["team"]
    digests.send_weekly_digest(team.pk, WEEK.isoformat())
    message = inbox.to("bo@example.test")[0]
    _, html = parts(message)
    link = re.search(r'href="([^"]+/digests/unsubscribe/[^"]+)"', html).group(1)
    assert message["List-Unsubscribe"].strip() == f"<{link}>"
    path = link.removeprefix(BASE)

    shown = client.get(path)
    assert shown.status_code == 200 and b'method="post"' in shown.content
    assert not DigestUnsubscribe.objects.exists()  # a link preview changes nothing
    # What a mail client's one-click button sends (RFC 8058).
    done = client.post(
        path,
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert done.status_code == 200 and b"bo@example.test" in done.content
    assert client.post(path).status_code == 200  # twice is fine
    assert list(DigestUnsubscribe.objects.values_list("email", flat=True)) == [
        "bo@example.test"
    ]

    inbox.messages.clear()
    digests.send_weekly_digest(team.pk, (WEEK + timedelta(days=7)).isoformat())
    assert [rcpts for rcpts, _ in inbox.messages] == [["ana@example.test"]]


def test_a_changed_unsubscribe_token_is_refused_with_a_sentence(client, payments):
    token = digests.unsubscribe_token(payments["team"], "ana@example.test")
    answer = client.post(f"/digests/unsubscribe/{token[:-2]}xx/")
    assert answer.status_code == 400
    assert "unsubscribe link" in answer.json()["detail"]
    assert not DigestUnsubscribe.objects.exists()
    wrong = client.delete(f"/digests/unsubscribe/{token}/")
    assert wrong.status_code == 405 and "POST" in wrong.json()["detail"]
    assert wrong["Allow"] == "GET, HEAD, POST"


def backoff_over() -> None:
    DigestDelivery.objects.filter(status="retrying").update(
        lease_until=datetime.now(UTC) - timedelta(seconds=1)
    )


@in_process
def test_one_teams_smtp_failure_does_not_stop_another(inbox, payments, eager):
    inbox.refuse["ana@example.test"] = "451 4.3.0 try again later"
    ops = Team.objects.create(slug="ops", name="Ops", emails=["ops@example.test"])
    owned_test(payments["project"], ops, "healthy")

    assert digests.send_due_digests(now=SEND_AT) == 2

    assert [rcpts for rcpts, _ in inbox.messages] == [["ops@example.test"]]
    failing = DigestDelivery.objects.get(team=payments["team"])
    assert (failing.status, failing.attempts) == ("retrying", 1)
    assert "451" in failing.last_error
    assert failing.lease_until > datetime.now(UTC) + timedelta(minutes=4)
    assert DigestDelivery.objects.get(team=ops).status == DeliveryStatus.SENT
    # Within its backoff a check sends nothing; after it, only the failed team.
    assert digests.send_due_digests(now=SEND_AT + timedelta(minutes=1)) == 0
    del inbox.refuse["ana@example.test"]
    backoff_over()
    assert digests.send_due_digests(now=SEND_AT + timedelta(minutes=15)) == 1
    assert DigestDelivery.objects.get(team=payments["team"]).status == "sent"
    assert sorted(r for rcpts, _ in inbox.messages for r in rcpts) == [
        "ana@example.test",
        "bo@example.test",
        "ops@example.test",
    ]


def test_a_transient_failure_is_retried_without_resending_then_fails_for_good(
    inbox, payments
):
    team = payments["team"]
    inbox.refuse["bo@example.test"] = "421 4.7.0 too busy"
    assert digests.send_weekly_digest(team.pk, WEEK.isoformat()) == "retrying"
    delivery = DigestDelivery.objects.get(team=team)
    assert delivery.sent_to == ["ana@example.test"]
    # Not before its backoff, even when asked.
    assert digests.send_weekly_digest(team.pk, WEEK.isoformat()) == "retrying"
    for _ in range(digests.MAX_ATTEMPTS - 1):
        backoff_over()
        status = digests.send_weekly_digest(team.pk, WEEK.isoformat())
    assert status == DeliveryStatus.FAILED
    delivery.refresh_from_db()
    assert delivery.attempts == digests.MAX_ATTEMPTS and "421" in delivery.last_error
    # ana got one message however often it was retried.
    assert len(inbox.to("ana@example.test")) == 1
    assert inbox.to("bo@example.test") == []


def test_a_refused_address_is_recorded_and_the_others_still_get_it(inbox, payments):
    inbox.refuse["ana@example.test"] = "550 5.1.1 no such mailbox"
    assert digests.send_weekly_digest(payments["team"].pk, WEEK.isoformat()) == "sent"
    delivery = DigestDelivery.objects.get()
    assert list(delivery.refused) == ["ana@example.test"]
    assert "550" in delivery.refused["ana@example.test"]
    assert [rcpts for rcpts, _ in inbox.messages] == [["bo@example.test"]]


def test_unreachable_smtp_server_is_a_recorded_retry(inbox, payments, settings):
    settings.EMAIL_PORT = free_port()  # nothing listens
    assert (
        digests.send_weekly_digest(payments["team"].pk, WEEK.isoformat()) == "retrying"
    )
    delivery = DigestDelivery.objects.get()
    assert delivery.status == "retrying" and "Connection refused" in delivery.last_error


@pytest.mark.parametrize("quiet, sent", [("note", 1), ("skip", 0)])
def test_an_all_quiet_team_gets_a_short_note_or_nothing(
    inbox, db, settings, quiet, sent
):
    settings.FLAKEWATCH_DIGEST_QUIET = quiet
    team = Team.objects.create(slug="calm", name="Calm", emails=["c@example.test"])
    owned_test(ProjectFactory(slug="calm-shop"), team, "healthy")

    status = digests.send_weekly_digest(team.pk, WEEK.isoformat())

    assert status == ("sent" if sent else "skipped")
    assert len(inbox.messages) == sent
    if sent:
        message = inbox.messages[0][1]
        assert message["Subject"] == "calm: all quiet this week"
        text, html = parts(message)
        assert "All quiet" in text and "All quiet" in html
        assert "==" not in text  # no empty sections


def test_digest_command_previews_text_writes_html_and_sends(
    inbox, payments, tmp_path, capsys
):
    out = tmp_path / "digest.html"
    call_command(
        "digest",
        "--team",
        "payments",
        "--week",
        WEEK.isoformat(),
        "--preview",
        "--html",
        str(out),
    )
    printed = capsys.readouterr().out
    assert printed.startswith("Subject: payments: 1 new flaky test")
    assert f"{BASE}/p/shop/tests/{payments['fixed'].pk}/" in printed
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert inbox.messages == []

    call_command("digest", "--team", "payments", "--week", WEEK.isoformat(), "--send")
    call_command("digest", "--team", "payments", "--week", WEEK.isoformat(), "--send")
    assert len(inbox.messages) == 2
    assert "sent (sent to 2, refused 0)" in capsys.readouterr().out


def test_digest_week_follows_day_time_and_zone_across_dst(settings):
    settings.FLAKEWATCH_DIGEST_DAY = "mon"
    settings.FLAKEWATCH_DIGEST_TIME = "09:00"
    settings.FLAKEWATCH_DIGEST_TIMEZONE = "Europe/Berlin"
    # Monday 30 March 2026, 09:30 in Berlin (CEST, UTC+2); the clocks moved
    # on Sunday 29 March, so the week is 167 hours long.
    period = digests.digest_period(datetime(2026, 3, 30, 7, 30, tzinfo=UTC))
    assert period.week_start == date(2026, 3, 23)
    assert period.end == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert period.start == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)
    # Half an hour before the moment, the week before is the latest.
    earlier = digests.digest_period(datetime(2026, 3, 30, 6, 30, tzinfo=UTC))
    assert earlier.week_start == date(2026, 3, 16)


def test_beat_checks_digests_every_quarter_hour_at_the_digest_minute():
    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule
    check = schedule["send due weekly digests"]
    assert check["task"] == "flakewatch.send_due_digests"
    assert check["schedule"].minute == {0, 15, 30, 45}  # 09:00 by default
    assert check["options"]["expires"] == 15 * 60
    resend = schedule["resend pending notifications"]
    assert resend["schedule"].minute == set(range(0, 60, 10))


def test_a_teams_week_costs_the_same_statements_however_many_tests(
    payments, django_assert_num_queries
):
    period = digests.period_of(WEEK)
    with django_assert_num_queries(9):
        small = digests.team_week_for(payments["team"], period)
    for _ in range(30):
        case = owned_test(payments["project"], payments["team"], "flaky", runs=5)
        change(case, StatusChange.Kind.NEW_FLAKY, "healthy", "flaky")
    with django_assert_num_queries(9):
        large = digests.team_week_for(payments["team"], period)
    assert (small.new_flaky.total, large.new_flaky.total) == (1, 31)
    assert len(large.new_flaky.items) == 10 and large.new_flaky.more == 21
