"""Change notifications to a real HTTP receiver on 127.0.0.1 started by each test."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flakewatch import notifications
from flakewatch.celery import app
from flakewatch.models import (
    Case,
    CaseState,
    DeliveryStatus,
    NotificationDelivery,
    StatusChange,
    Team,
    TeamWebhook,
)
from ingest import services
from tests.factories import CaseFactory, UploadFactory, junit_report

SECRET = "s3cret-key"
BASE = "https://flakewatch.example.test"

# Registering the tasks warns about analyze_upload_task's priority option.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.CDeprecationWarning")


class Receiver:
    """A webhook receiver: records each POST, answers the statuses it is given."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver(settings):
    settings.FLAKEWATCH_BASE_URL = BASE
    settings.FLAKEWATCH_WEBHOOK_TIMEOUT_SECONDS = 5
    started = Receiver()
    yield started
    started.server.shutdown()
    started.server.server_close()


@pytest.fixture
def eager(monkeypatch):
    """Run sent tasks in-process, as the embedded default does."""
    monkeypatch.setitem(app.conf, "task_always_eager", True)


@pytest.fixture
def team(db):
    return Team.objects.create(slug="payments", name="Payments")


def verify(headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers["X-Flakewatch-Timestamp"]
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and hmac.compare_digest(
        headers["X-Flakewatch-Signature"], f"sha256={expected}"
    )


def ingest(project, commit, attempt, failing, capture):
    meta = services.UploadMetadata(
        commit_sha=commit,
        branch="main",
        build=f"b-{commit}",
        job="unit",
        attempt=attempt,
    )
    report = junit_report(3, failing=failing)
    files = [services.receive_file("j.xml", [report], budget=10**6)]
    with capture(execute=True):
        return services.ingest_now(project, meta=meta, files=files)


def test_tests_turning_flaky_post_one_signed_message_per_batch(
    project, team, receiver, eager, django_capture_on_commit_callbacks
):
    hook = TeamWebhook.objects.create(team=team, url=receiver.url, secret=SECRET)
    ingest(project, "c1", 1, {0, 1}, django_capture_on_commit_callbacks)
    Case.objects.filter(project=project).update(team=team)
    ingest(project, "c1", 2, set(), django_capture_on_commit_callbacks)
    ingest(project, "c2", 1, {0, 1}, django_capture_on_commit_callbacks)
    assert receiver.requests == []
    last = ingest(project, "c2", 2, set(), django_capture_on_commit_callbacks)

    flaky = list(
        CaseState.objects.filter(status="flaky")
        .order_by("case__name")
        .values_list("case_id", flat=True)
    )
    assert len(flaky) == 2
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert headers["Content-Type"] == "application/json"
    assert verify(headers, body)
    assert not verify({**headers, "X-Flakewatch-Timestamp": "1"}, body)
    message = json.loads(body)
    assert message["text"] == "payments: 2 new flaky"
    listed = message["blocks"][1]["text"]["text"]
    for case_id in flaky:
        assert f"<{BASE}/p/payments/tests/{case_id}/|" in listed
    assert listed.count(" is flaky (was ") == 2
    assert set(
        NotificationDelivery.objects.values_list("webhook", "upload", "status")
    ) == {(hook.pk, last.pk, "sent")}

    # A redelivered analysis, a repeated task, the same upload again: no repeat.
    changes = [(case_id, "healthy", "flaky") for case_id in flaky]
    with django_capture_on_commit_callbacks(execute=True):
        notifications.record_changes(last, changes)
    notifications.deliver_notifications(hook.pk, last.pk)
    ingest(project, "c2", 2, set(), django_capture_on_commit_callbacks)
    assert len(receiver.requests) == 1
    assert StatusChange.objects.count() == 2
    assert NotificationDelivery.objects.count() == 2


def owned_change(project, team, name="test_checkout"):
    case = CaseFactory(project=project, team=team, name=name, classname="shop.Cart")
    return case, UploadFactory(project=project)


def test_json_webhook_gets_an_event_and_a_5xx_is_retried_after_backoff(
    project, team, receiver, eager, django_capture_on_commit_callbacks
):
    TeamWebhook.objects.create(
        team=team, url=receiver.url, secret=SECRET, kind=TeamWebhook.Kind.JSON
    )
    case, upload = owned_change(project, team, name="<b>&amp;</b>")
    receiver.answers = [503]
    with django_capture_on_commit_callbacks(execute=True):
        notifications.record_changes(upload, [(case.pk, "flaky", "fixed")])

    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert "503" in delivery.last_error
    assert delivery.retry_at > datetime.now(UTC) + timedelta(minutes=4)
    assert notifications.resend_pending_notifications() == 0  # not due yet
    NotificationDelivery.objects.update(retry_at=datetime.now(UTC))
    assert notifications.resend_pending_notifications() == 1

    assert len(receiver.requests) == 2
    assert all(verify(headers, body) for headers, body in receiver.requests)
    event = receiver.bodies()[1]
    assert event["event"] == "flakewatch.verdicts_changed"
    assert event["team"] == "payments"
    assert event["changes"] == [
        {
            "test_id": case.pk,
            "project": "payments",
            "suite": case.suite,
            "classname": "shop.Cart",
            "name": "<b>&amp;</b>",
            "kind": "fixed",
            "old_status": "flaky",
            "new_status": "fixed",
            "changed_at": upload.run_at.isoformat(),
            "url": f"{BASE}/p/payments/tests/{case.pk}/",
        }
    ]
    assert NotificationDelivery.objects.get().status == DeliveryStatus.SENT
    assert notifications.resend_pending_notifications() == 0


def test_slack_text_escapes_names_so_they_cannot_link_or_mention(
    project, team, receiver, eager, django_capture_on_commit_callbacks
):
    TeamWebhook.objects.create(team=team, url=receiver.url, secret=SECRET)
    case, upload = owned_change(project, team, name="<!channel> <http://x|y> & z")
    with django_capture_on_commit_callbacks(execute=True):
        notifications.record_changes(upload, [(case.pk, "healthy", "broken")])
    listed = receiver.bodies()[0]["blocks"][1]["text"]["text"]
    assert "&lt;!channel&gt; &lt;http://x|y&gt; &amp; z" in listed
    assert "<!channel>" not in listed and " is broken (was healthy)" in listed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refusing_or_unreachable_webhook_never_fails_the_analysis(
    project, team, receiver, eager, django_capture_on_commit_callbacks
):
    gone = TeamWebhook.objects.create(
        team=team, url=f"http://127.0.0.1:{free_port()}/hook", secret=SECRET
    )
    refusing = TeamWebhook.objects.create(team=team, url=receiver.url, secret=SECRET)
    receiver.answers = [404]
    ingest(project, "c1", 1, {0}, django_capture_on_commit_callbacks)
    Case.objects.filter(project=project).update(team=team)
    ingest(project, "c1", 2, set(), django_capture_on_commit_callbacks)
    ingest(project, "c2", 1, {0}, django_capture_on_commit_callbacks)
    last = ingest(project, "c2", 2, set(), django_capture_on_commit_callbacks)

    assert last.analyzed_at is not None
    rows = {d.webhook_id: d for d in NotificationDelivery.objects.all()}
    assert rows[gone.pk].status == "retrying"
    assert "could not be reached" in rows[gone.pk].last_error
    assert rows[refusing.pk].status == "failed"  # a 404 will not improve
    assert "404" in rows[refusing.pk].last_error


def test_only_changes_a_team_acts_on_reach_only_that_teams_webhooks(
    project, team, receiver, eager, django_capture_on_commit_callbacks
):
    other = Team.objects.create(slug="search", name="Search")
    TeamWebhook.objects.create(team=other, url=receiver.url, secret=SECRET)
    mine, upload = owned_change(project, team)
    unowned = CaseFactory(project=project, team=None)
    with django_capture_on_commit_callbacks(execute=True):
        notifications.record_changes(
            upload,
            [
                (mine.pk, "healthy", "flaky"),
                (unowned.pk, "new", "flaky"),
                (CaseFactory(project=project, team=team).pk, "new", "healthy"),
            ],
        )
    assert receiver.requests == []
    assert set(StatusChange.objects.values_list("case", "kind")) == {
        (mine.pk, "new_flaky"),
        (unowned.pk, "new_flaky"),
    }
    assert not NotificationDelivery.objects.exists()


@pytest.mark.parametrize(
    "old, new, kind",
    [
        ("healthy", "flaky", "new_flaky"),
        ("new", "flaky", "new_flaky"),
        ("fixed", "flaky", "new_flaky"),
        ("flaky", "broken", "broken"),
        ("flaky", "fixed", "fixed"),
        ("broken", "fixed", "fixed"),
        ("new", "healthy", None),
        ("healthy", "fixed", None),
        ("flaky", "quarantined", None),
    ],
)
def test_change_kinds(old, new, kind):
    assert notifications.change_kind(old, new) == kind
