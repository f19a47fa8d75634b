"""Start, watch and stop real processes: worker, beat, gunicorn, redis-server.

Every child runs in its own session (process group), logs to a file, and is
stopped with its whole group, so a prefork worker's pool children go too.
Every wait is bounded and waits for something observable: a log line, an
answering port, a pool child.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A bounded wait ran out; an AssertionError so that pytest reports it."""


def wait_until(
    condition: Callable[[], T], timeout: float, what: str, *, every: float = 0.2
) -> T:
    """Poll ``condition`` until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    """Tell whether something accepts TCP connections on ``host:port``."""
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return False
    return True


def require_listening(services: dict[str, int]) -> None:
    """Exit with a sentence naming the first service that is not listening."""
    for name, port in services.items():
        if not is_listening(port):
            raise SystemExit(f"{name} is not reachable on 127.0.0.1:{port}.")


class Process:
    """A child process in its own process group, logging to a file."""

    def __init__(
        self, args: list[str], *, env: dict[str, str], log: Path, name: str = ""
    ) -> None:
        self.name = name or Path(args[0]).name
        self.log = log
        with log.open("wb") as log_file:  # the child keeps its own descriptor
            self.popen = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: killpg reaches children
            )

    @property
    def pid(self) -> int:
        """Return the child's pid, which is also its process group's id."""
        return self.popen.pid

    def running(self) -> bool:
        """Return whether the child has not exited yet."""
        return self.popen.poll() is None

    def output(self) -> str:
        """Return the child's log so far."""
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        """Return the last ``lines`` lines of the child's log."""
        try:
            return "\n".join(self.output().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_for(self, condition: Callable[[], T], timeout: float, what: str) -> T:
        """Wait for ``condition``; fail at once, with the log, if the child exits."""

        def met_or_exited() -> T:
            if not self.running():
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            return condition()

        try:
            return wait_until(met_or_exited, timeout, f"{what} ({self.log})")
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n{self.tail()}") from None

    def wait_for_output(self, text: str, timeout: float = 60) -> None:
        """Wait until ``text`` appears in the child's log."""
        self.wait_for(lambda: text in self.output(), timeout, f"{text!r} in the log")

    def wait_ready(
        self, condition: Callable[[], object], timeout: float, what: str
    ) -> Process:
        """Wait for ``condition``; stop the child if the wait fails or is cut short.

        A starter hands its caller a ready process or none: nothing is left
        running unowned when readiness times out or a signal interrupts it.
        """
        try:
            self.wait_for(condition, timeout, what)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Send ``sig`` to the group, then SIGKILL whatever is left after it."""
        if self.running():
            _signal_group(self.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.pid, signal.SIGKILL)  # the child or stragglers
        self.popen.wait(30)

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, not a shutdown."""
        self.stop(signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Processes:
    """Children started together and all stopped together, newest first."""

    def __init__(self) -> None:
        self.running: list[Process] = []

    def add(self, process: Process) -> Process:
        """Track ``process`` for stop_all and return it."""
        self.running.append(process)
        return process

    def stop(self, process: Process, sig: int = signal.SIGTERM) -> None:
        """Stop ``process`` with ``sig`` and stop tracking it."""
        process.stop(sig)
        self.running.remove(process)

    def stop_all(self, sig: int = signal.SIGTERM) -> None:
        """Stop every tracked process, newest first, warning of any that resist."""
        for process in reversed(list(self.running)):
            try:
                self.stop(process, sig)
            except (OSError, subprocess.SubprocessError) as exc:  # stop the rest
                print(f"warning: could not stop {process.name}: {exc}", file=sys.stderr)


# --- flakewatch's processes: the commands docker-compose.yml runs -------------


def worker_command(concurrency: int = 1, *, name: str = "") -> list[str]:
    """Return the Celery worker's command line, on compose's two queues."""
    command = [
        str(BIN / "celery"), "-A", "flakewatch", "worker", "-Q", "ingest,celery",
        f"--concurrency={concurrency}", "--loglevel=INFO",
    ]  # fmt: skip
    return [*command, "-n", name] if name else command


def beat_command(schedule: Path) -> list[str]:
    """Return Celery beat's command line, its schedule file at ``schedule``."""
    return [
        str(BIN / "celery"), "-A", "flakewatch", "beat", "--loglevel=INFO",
        "-s", str(schedule),
    ]  # fmt: skip


def gunicorn_command(bind: str, workers: int) -> list[str]:
    """Return the web server's command line; compose's web service runs it too."""
    return [
        str(BIN / "gunicorn"), "flakewatch.wsgi:application", "--bind", bind,
        "--workers", str(workers), "--timeout", "60",
    ]  # fmt: skip


def pool_children(pid: int) -> list[int]:
    """Return the pool processes of a Celery worker (its direct children)."""
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children.extend(int(c) for c in (task / "children").read_text().split())
    except OSError:
        pass
    return sorted(set(children))


def start_worker(
    *,
    env: dict[str, str],
    log: Path,
    concurrency: int = 1,
    name: str = "",
    timeout: float = 90,
) -> Process:
    """Start a Celery worker; return once it is ready with its pool running."""
    worker = Process(
        worker_command(concurrency, name=name),
        env=env,
        log=log,
        name=f"celery worker (concurrency {concurrency})",
    )
    return worker.wait_ready(
        lambda: (
            " ready." in worker.output()
            and len(pool_children(worker.pid)) >= concurrency
        ),
        timeout,
        "the worker to be ready",
    )


def start_beat(
    *, env: dict[str, str], log: Path, schedule: Path, timeout: float = 60
) -> Process:
    """Start Celery beat; return once it has started its scheduler."""
    beat = Process(beat_command(schedule), env=env, log=log, name="celery beat")
    return beat.wait_ready(
        lambda: "beat: Starting" in beat.output(), timeout, "beat to start"
    )


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[int, bytes]:
    """Send one request to 127.0.0.1:``port``; return (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start_gunicorn(
    *,
    env: dict[str, str],
    log: Path,
    port: int,
    workers: int = 2,
    timeout: float = 60,
) -> Process:
    """Start gunicorn on ``port``; return once Django answers through it."""
    web = Process(
        gunicorn_command(f"127.0.0.1:{port}", workers),
        env=env,
        log=log,
        name="gunicorn",
    )

    def answering() -> bool:
        try:  # 401: up, and answering through Django's token check
            return http_request(port, "GET", "/api/v1/uploads/0", timeout=2)[0] == 401
        except OSError:
            return False

    return web.wait_ready(answering, timeout, f"gunicorn to answer on :{port}")


class RedisServer(Process):
    """A private redis-server on a free port: no persistence, no shared data."""

    def __init__(self, directory: Path, *, timeout: float = 30) -> None:
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(directory),
            ],
            env=dict(os.environ),
            log=directory / "redis.log",
            name=f"redis-server :{self.port}",
        )  # fmt: skip
        self.wait_ready(lambda: is_listening(self.port), timeout, "Redis to listen")

    def url(self, db: int = 0) -> str:
        """Return the broker URL of database ``db`` on this server."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def restart(self, timeout: float = 30) -> None:
        """Start it again on the same port and directory after a stop."""
        assert not self.running(), "stop it first"
        args = self.popen.args
        with self.log.open("ab") as log_file:
            self.popen = subprocess.Popen(
                args,
                cwd=ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.wait_for(lambda: is_listening(self.port), timeout, "Redis to listen")
