"""Verdict accuracy on a synthetic CI history with known ground truth.

The small history of flakewatch/synthetic_history.py goes through the real stack:
POST /api/v1/uploads on a live server, a real Celery worker process, the
analytics in the worker's transaction, and the read API. The scores are
held to the issue's targets (issue 9's table, figure by figure, over
populations of known size for the seed); ``pytest -s`` prints them and the
table, and on a miss the assertion lists every misjudged test with its
evidence. Beyond the targets it holds the figures README.md's "Measured"
reports: no test misjudged but for a first_flaky_commit outside the first 3
flaky runs (at most 5 %) or a flaky_since range missing the true start (at
most 10 %). tests/test_synthetic_history.py checks the shape of this same seed's
history, and ``python -m bench.accuracy`` runs the full-size one.
"""

from __future__ import annotations

import http.client
import io
import json
import time
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from django.core.management import call_command
from django.db.models import Q
from django.utils import timezone

from flakewatch.models import Project, Upload
from flakewatch.synthetic_history import (
    SCALES,
    SEED,
    Verdict,
    generate_history,
    score,
)
from flakewatch.tokens import issue_token
from support import stack
from tests.factories import ProjectFactory

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

FEED_TIMEOUT = 300
COMPARED = (
    "status",
    "flake_score",
    "flake_rate",
    "runs",
    "failures",
    "first_flaky_commit",
    "flaky_since",
    "duration_regressed",
)


@pytest.fixture
def worker(start_worker):
    return start_worker()


def _request(url: str, method: str, path: str, *, token: str, body=None, headers=()):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(
            method,
            path,
            body=body,
            headers={"Authorization": f"Bearer {token}", **dict(headers)},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def feed(url: str, token: str, uploads) -> None:
    """POST every upload as a raw XML body with its fields as query params."""
    for upload in uploads:
        status, body = _request(
            url,
            "POST",
            f"/api/v1/uploads?{urlencode(upload.params())}",
            token=token,
            body=upload.body,
            headers={"Content-Type": "application/xml"},
        )
        assert status == 202, (status, body)


def wait_until_processed(project: Project, expected: int, worker) -> None:
    def finished() -> bool:
        uploads = Upload.objects.filter(project=project)
        # Done and analysed: the analytics follow in their own task.
        pending = uploads.filter(
            Q(status__in=(Upload.Status.QUEUED, Upload.Status.PROCESSING))
            | Q(status=Upload.Status.DONE, analyzed_at__isnull=True)
        )
        return uploads.count() == expected and not pending.exists()

    try:
        stack.wait_until(finished, FEED_TIMEOUT, "every upload to be processed")
    except AssertionError:
        raise AssertionError(worker.output()[-3000:]) from None
    failed = Upload.objects.filter(project=project, status=Upload.Status.FAILED)
    assert not failed.exists(), list(failed.values_list("job", "errors")[:3])


def read_verdicts(url: str, token: str, slug: str) -> dict[tuple, Verdict]:
    """Read every test's verdict through GET /api/v1/projects/<slug>/tests."""
    verdicts: dict[tuple, Verdict] = {}
    path = f"/api/v1/projects/{slug}/tests?page=1"
    while path:
        status, body = _request(url, "GET", path, token=token)
        assert status == 200, (status, body)
        for row in body["results"]:
            key = (row["suite"], row["classname"], row["name"], row["file"])
            assert key not in verdicts, f"{key} listed twice"
            verdicts[key] = Verdict(
                status=row["status"],
                flake_score=row["flake_score"],
                flake_rate=row["flake_rate"],
                runs=row["runs"],
                failures=row["failures"],
                first_flaky_commit=row["first_flaky_commit"] or "",
                duration_regressed=row["duration_regressed"],
                flaky_since=row["flaky_since"] or "",
            )
        path = body["next"] and _path(body["next"])
    return verdicts


def _path(absolute: str) -> str:
    parts = urlsplit(absolute)
    return f"{parts.path}?{parts.query}"


def _differences(before: dict, after: dict) -> list[str]:
    lines = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old is None or new is None:
            lines.append(f"{key}: {old} -> {new}")
            continue
        changed = [
            f"{field} {getattr(old, field)!r} -> {getattr(new, field)!r}"
            for field in COMPARED
            if getattr(old, field) != getattr(new, field)
        ]
        if changed:
            lines.append(f"{key[1]}::{key[2]}: " + ", ".join(changed))
    return lines


def test_verdicts_on_a_synthetic_history_meet_the_targets(live_server, worker):
    history = generate_history(
        **SCALES["small"],
        seed=SEED,
        end_at=timezone.now().replace(microsecond=0) - timedelta(hours=1),
    )
    project = ProjectFactory(slug="accuracy", default_branch=history.default_branch)
    upload_token = issue_token(project, scope="upload")
    read_token = issue_token(project, scope="read")

    started = time.monotonic()
    feed(live_server.url, upload_token, history.uploads)
    posted = time.monotonic()
    wait_until_processed(project, len(history.uploads), worker)
    processed = time.monotonic()

    incremental = read_verdicts(live_server.url, read_token, project.slug)
    scores = score(history.truth, incremental, positions=history.positions)
    print(
        f"\n{history.summary()}\nposted in {posted - started:.1f}s, all processed "
        f"after {processed - started:.1f}s\n{scores.report()}\n{scores.table()}"
    )

    call_command("recompute", "--project", project.slug, stderr=io.StringIO())
    print(f"recompute took {time.monotonic() - processed:.1f}s")
    recomputed = read_verdicts(live_server.url, read_token, project.slug)
    differences = _differences(incremental, recomputed)

    assert not differences, (
        f"recompute changed {len(differences)} verdicts:\n" + "\n".join(differences)
    )
    assert not scores.target_failures(), scores.report()
    # The issue's table, figure by figure, with the populations they are over.
    assert scores.populations() == {
        "recall": 17,
        "recall_all": 19,
        "fixed": 6,
        "broken_then_fixed": 2,
        "first_flaky_commit": 17,
        "duration_regressed": 6,
        "broken_window": 4,
        "branch_broken": 2,
        "config_only": 1,
        "incident_victim_only": 49,
    }, scores.table()
    assert scores.flaky_precision >= 0.95
    assert scores.flaky_recall_any_rate >= 0.9
    assert scores.flaky_f1 >= 0.95
    assert scores.flaky_recall >= 0.95  # rates >= 3 %
    assert scores.wrongly_flaky.get("incident_victim_only", 0) == 0
    assert scores.wrongly_fixed == 0
    assert scores.wrongly_flaky.get("broken_window", 0) == 0
    assert scores.wrongly_flaky.get("branch_broken", 0) == 0
    assert scores.until_still_flaky == 0
    assert scores.broken_fixed_ok == 1.0
    assert scores.duration_precision >= 0.9 and scores.duration_recall >= 0.9
    assert scores.flaky_since_coverage >= 0.9
    # The range is as narrow as the rates allow: well under the history.
    assert 0 < scores.flaky_since_median_width < 40
    assert scores.first_flaky_within_3 >= 0.6  # of the introduced flakes
    # target_failures() holds first_flaky_commit misses to FIRST_FLAKY_TARGET.
    others = [
        m.line()
        for m in scores.misjudged
        if not m.expected.startswith(("first_flaky_commit", "flaky_since"))
    ]
    assert not others, "misjudged beyond first_flaky_commit:\n" + "\n".join(others)
