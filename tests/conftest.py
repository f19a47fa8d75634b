"""Shared fixtures: a project with tokens, fixture files, no outside network."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests import stack

FIXTURES = Path(__file__).parent / "fixtures"
JUNIT = FIXTURES / "junit"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def _block_outside_network(monkeypatch):
    """Fail any test that reaches beyond this machine."""
    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in LOOPBACK:
            raise OSError(f"test tried to reach {host}: tests stay on loopback")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


def junit_bytes(relative: str) -> bytes:
    return (JUNIT / relative).read_bytes()


@pytest.fixture
def project(db):
    from flakewatch.models import Project

    return Project.objects.create(slug="payments", name="Payments")


@pytest.fixture
def upload_token(project) -> str:
    from flakewatch.tokens import issue_token

    return issue_token(project, scope="upload")


@pytest.fixture
def read_token(project) -> str:
    from flakewatch.tokens import issue_token

    return issue_token(project, scope="read")


# --- The real stack: Celery worker and beat processes (tests marked "stack") ---


@pytest.fixture
def stack_env(transactional_db) -> dict:
    """Environment for worker and beat: this test database, the test broker."""
    import redis

    db = connection.settings_dict
    broker = settings.CELERY_BROKER_URL
    assert broker.startswith("redis://"), "the stack tests need the real Redis"
    redis.Redis.from_url(broker).flushdb()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        CELERY_BROKER_URL=broker,
        DJANGO_SECRET_KEY="test-only-secret",
        FLAKEWATCH_REQUEUE_AFTER_SECONDS="3",
    )
    return env


@pytest.fixture
def start_worker(stack_env, tmp_path):
    started: list[stack.Process] = []

    def start() -> stack.Process:
        log = tmp_path / f"worker-{len(started)}.log"
        worker = stack.Process(stack.worker_command(), env=stack_env, log=log)
        started.append(worker)
        worker.wait_for_output("ready.", timeout=60)
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
def beat(stack_env, tmp_path):
    process = stack.Process(
        stack.beat_command(tmp_path / "beat-schedule"),
        env=stack_env,
        log=tmp_path / "beat.log",
    )
    process.wait_for_output("beat: Starting", timeout=60)
    yield process
    process.kill()
