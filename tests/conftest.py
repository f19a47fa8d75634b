"""Shared fixtures: a project with tokens, fixture files, no outside network."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from support import stack

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
    from tests.factories import ProjectFactory

    return ProjectFactory(slug="payments", name="Payments")


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
def processes():
    """Children a test starts; all stopped when it ends, pass or fail."""
    started = stack.Processes()
    yield started
    started.stop_all(signal.SIGKILL)  # nothing to finish: the test is over


@pytest.fixture
def start_worker(stack_env, tmp_path, processes):
    """Start a worker (on ``env``, by default the test's) once it is ready."""
    count = 0

    def start(env: dict | None = None) -> stack.Process:
        nonlocal count
        count += 1
        log = tmp_path / f"worker-{count}.log"
        return processes.add(stack.start_worker(env=env or stack_env, log=log))

    return start


@pytest.fixture
def start_beat(stack_env, tmp_path, processes):
    """Start beat (on ``env``, by default the test's) once it schedules."""

    def start(env: dict | None = None) -> stack.Process:
        return processes.add(
            stack.start_beat(
                env=env or stack_env,
                log=tmp_path / "beat.log",
                schedule=tmp_path / "beat-schedule",
            )
        )

    return start


@pytest.fixture
def beat(start_beat):
    return start_beat()
