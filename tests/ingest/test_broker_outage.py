"""An upload accepted while the broker is down, on the real stack.

A redis-server of the test's own, on a free port, is stopped and started
again; the machine's Redis is never touched. The web server (gunicorn) and
the worker run as processes with the default sweep settings.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from flakewatch.models import CaseResult, Upload
from support import stack
from tests.factories import junit_report

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

# The README's promise: done within this long of the broker being back.
RECOVERY_SECONDS = 30


@pytest.fixture
def processes() -> Iterator[list[stack.Process]]:
    started: list[stack.Process] = []
    yield started
    for process in reversed(started):
        process.kill()


def start_redis(port: int, log: Path, processes: list[stack.Process]) -> stack.Process:
    # No persistence: a restart loses every queued message, as a real outage
    # of an in-memory broker would.
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    redis = stack.Process(
        [*command, "--save", "", "--appendonly", "no"],
        env=dict(os.environ),
        log=log,
    )
    processes.append(redis)
    redis.wait_for_output("Ready to accept connections", timeout=30)
    return redis


def is_serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def post_report(url: str, token: str, report: bytes) -> tuple[float, int, dict]:
    request = urllib.request.Request(
        f"{url}/api/v1/uploads?commit=0123abcd&branch=main&build=7&job=unit",
        data=report,
        headers={"Content-Type": "application/xml", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
        return time.monotonic() - started, response.status, body


def test_upload_accepted_while_the_broker_is_down_is_done_soon_after_it_is_back(
    stack_env, upload_token, processes, tmp_path
):
    port = stack.free_port()
    redis = start_redis(port, tmp_path / "redis-1.log", processes)
    env = {**stack_env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    for name in ("FLAKEWATCH_SWEEP_MINUTES", "FLAKEWATCH_REQUEUE_AFTER_SECONDS"):
        env.pop(name, None)  # the defaults: a sweep every 60 s, re-sends after 120 s
    web_port = stack.free_port()
    url = f"http://127.0.0.1:{web_port}"
    gunicorn = [str(stack.BIN / "gunicorn"), "flakewatch.wsgi:application"]
    web = stack.Process(
        [*gunicorn, "--bind", f"127.0.0.1:{web_port}", "--workers", "1"],
        env=env,
        log=tmp_path / "web.log",
    )
    processes.append(web)
    worker = stack.Process(stack.worker_command(), env=env, log=tmp_path / "worker.log")
    processes.append(worker)
    worker.wait_for_output("ready.", timeout=60)
    stack.wait_until(lambda: is_serving(url), 60, "gunicorn to serve")

    redis.stop()
    elapsed, status, body = post_report(
        url, upload_token, junit_report(12, failing={1})
    )
    assert (status, body["status"]) == (202, "queued")
    assert elapsed < 5, f"the upload took {elapsed:.1f}s with the broker down"
    upload = Upload.objects.get(pk=int(body["id"]))
    assert (upload.status, upload.dispatch_failed) == ("queued", True)

    start_redis(port, tmp_path / "redis-2.log", processes)
    back_at = time.monotonic()
    upload = stack.wait_until(
        lambda: (u := Upload.objects.get(pk=upload.pk)).status == "done" and u,
        RECOVERY_SECONDS + 30,
        "the upload to be done",
    )
    recovered = time.monotonic() - back_at
    assert recovered < RECOVERY_SECONDS, f"done {recovered:.1f}s after the broker"
    assert (upload.tests_count, upload.failures_count) == (12, 1)
    assert not upload.dispatch_failed
    assert CaseResult.objects.filter(upload=upload).count() == 12
