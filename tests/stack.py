"""Start and stop real flakewatch processes (worker, beat, servers) for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class Process:
    """A child process in its own process group, logging to a file."""

    def __init__(self, args: list[str], *, env: dict, log: Path) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60) -> None:
        wait_until(lambda: text in self.output(), timeout, f"{text!r} in {self.log}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker and its children)."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)
        self._log_file.close()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def wait_until(condition: Callable[[], object], timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The same commands docker-compose.yml runs.
def worker_command(concurrency: int = 1) -> list[str]:
    return [
        str(BIN / "celery"), "-A", "flakewatch", "worker", "-Q", "ingest,celery",
        f"--concurrency={concurrency}", "--loglevel=INFO",
    ]  # fmt: skip


def beat_command(schedule: Path) -> list[str]:
    return [
        str(BIN / "celery"), "-A", "flakewatch", "beat", "--loglevel=INFO",
        "-s", str(schedule),
    ]  # fmt: skip


def gunicorn_command(bind: str, workers: int) -> list[str]:
    return [
        str(BIN / "gunicorn"), "flakewatch.wsgi:application", "--bind", bind,
        "--workers", str(workers), "--timeout", "60",
    ]  # fmt: skip


def start_redis() -> None:
    """Start Redis as the machine's services are started (see .ci/run)."""
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
        check=True,
    )


def redis_is_up() -> bool:
    result = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() == "PONG"
