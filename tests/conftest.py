"""Shared fixtures: a project with tokens, fixture files, no outside network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

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
