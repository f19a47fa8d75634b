"""The whole path on the real stack: curl -> web -> Redis -> worker -> PostgreSQL.

These tests start real Celery worker and beat processes (the commands of
docker-compose.yml) against the test database, and post with the real curl
command of README.md. The one that stops Redis stops a redis-server of its
own, with its own web server, worker and beat, never the machine's.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import time

import pytest
from django.db import DatabaseError, transaction

from flakewatch.models import CaseResult, Upload
from support import stack
from tests.factories import junit_report

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def curl_upload(url: str, token: str, *files, build="1", job="unit", attempt="1"):
    """Run README.md's multipart curl command; return (seconds, JSON body)."""
    command = [
        "curl", "-fsS", "-X", "POST", f"{url}/api/v1/uploads",
        "-H", f"Authorization: Bearer {token}",
        "-F", "commit=0123abcd", "-F", "branch=main", "-F", f"build={build}",
        "-F", f"job={job}", "-F", f"attempt={attempt}",
        "-F", "build_url=https://ci.example/jobs/1",
    ]  # fmt: skip
    for path in files:
        command += ["-F", f"file=@{path}"]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    return elapsed, json.loads(result.stdout)


def upload_status(upload_id) -> Upload:
    return Upload.objects.get(pk=int(upload_id))


def wait_for_status(upload_id, wanted: str, timeout: float) -> Upload:
    return stack.wait_until(
        lambda: (u := upload_status(upload_id)).status == wanted and u,
        timeout,
        f"upload {upload_id} to be {wanted}",
    )


def is_locked(upload_id) -> bool:
    """Tell whether a worker holds the upload's row lock (its write transaction)."""
    try:
        with transaction.atomic():
            Upload.objects.select_for_update(nowait=True).filter(pk=upload_id).exists()
    except DatabaseError:
        return True
    return False


def test_curl_upload_is_processed_by_a_worker(
    live_server, upload_token, start_worker, tmp_path
):
    start_worker()
    unit = tmp_path / "junit.xml"
    unit.write_bytes(junit_report(30, failing={4, 5, 6}))
    integration = tmp_path / "integration.xml.gz"
    integration.write_bytes(gzip.compress(junit_report(20, module="tests.it")))

    _, body = curl_upload(live_server.url, upload_token, unit, integration)
    assert body["status"] == "queued"
    wait_for_status(body["id"], "done", timeout=60)

    status = subprocess.run(
        ["curl", "-fsS", "-H", f"Authorization: Bearer {upload_token}",
         f"{live_server.url}{body['status_url']}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    answer = json.loads(status.stdout)
    assert (answer["status"], answer["tests"], answer["failures"]) == ("done", 50, 3)
    assert CaseResult.objects.filter(upload_id=int(body["id"])).count() == 50

    # CI retries the same step: same id, nothing counted twice.
    _, again = curl_upload(live_server.url, upload_token, unit, integration)
    assert again["id"] == body["id"]
    assert CaseResult.objects.count() == 50


def test_worker_killed_mid_ingest_is_recovered_with_exact_counts(
    live_server, upload_token, start_worker, beat, tmp_path
):
    count = 300_000
    report = tmp_path / "huge.xml.gz"
    report.write_bytes(gzip.compress(junit_report(count, failing={7, 70, 700}), 1))
    first = start_worker()
    _, body = curl_upload(live_server.url, upload_token, report)
    # Processing commits its mark, then parses and writes under the row lock:
    # a locked processing row is a worker inside that write, before its commit.
    stack.wait_until(
        lambda: (
            upload_status(body["id"]).status == "processing" and is_locked(body["id"])
        ),
        60,
        "the worker to lock the upload for its write",
    )

    first.kill()  # SIGKILL to the worker and its pool children
    killed_at = time.monotonic()
    upload = upload_status(body["id"])
    assert upload.status == "processing", "the kill came too late to test anything"
    assert CaseResult.objects.count() == 0  # nothing half-written is visible

    start_worker()
    upload = wait_for_status(body["id"], "done", timeout=120)
    assert time.monotonic() - killed_at < 120
    assert (upload.tests_count, upload.failures_count) == (count, 3)
    assert upload.process_attempts == 2
    assert CaseResult.objects.filter(upload_id=upload.pk).count() == count


def test_upload_while_redis_is_down_is_processed_once_it_is_back(
    stack_env, upload_token, start_worker, start_beat, processes, tmp_path
):
    redis = processes.add(stack.RedisServer(tmp_path / "redis"))
    env = {**stack_env, "CELERY_BROKER_URL": redis.url()}
    port = stack.free_port()
    web = processes.add(
        stack.start_gunicorn(env=env, log=tmp_path / "web.log", port=port)
    )
    start_worker(env)
    start_beat(env)
    report = tmp_path / "junit.xml"
    report.write_bytes(junit_report(12, failing={1}))

    redis.stop()
    assert not stack.is_listening(redis.port)
    elapsed, body = curl_upload(f"http://127.0.0.1:{port}", upload_token, report)
    assert elapsed < 5, f"the upload took {elapsed:.1f}s with Redis down"
    assert body["status"] == "queued"
    web.wait_for_output("not sent, the broker is down", timeout=30)
    assert upload_status(body["id"]).status == "queued"

    redis.restart()
    upload = wait_for_status(body["id"], "done", timeout=90)
    assert (upload.tests_count, upload.failures_count) == (12, 1)
    assert CaseResult.objects.count() == 12
