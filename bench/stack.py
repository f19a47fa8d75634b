"""The benchmark's own PostgreSQL database and Redis db, and its environment.

Shared by ``bench/ingest.py`` and ``bench/profile_ingest.py``. Nothing here
touches the development or test databases: everything is named ``*_bench``
or lives in Redis db 12 unless overridden by the BENCH_* variables.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
VAR = ROOT / "var"

PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgres://root@127.0.0.1:5432")
DB_NAME = os.environ.get("BENCH_DB_NAME", "flakewatch_bench")
DATABASE_URL = f"{PG_SERVER}/{DB_NAME}"
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12")


def bench_env(**extra: str) -> dict[str, str]:
    """The production-style environment for manage.py, celery and gunicorn."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=DATABASE_URL,
        CELERY_BROKER_URL=BROKER_URL,
        DJANGO_SECRET_KEY="bench-only-secret",
        DJANGO_SETTINGS_MODULE="flakewatch.settings",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    # Never let a caller's PYTHONPATH put bench/ingest.py in front of the
    # ``ingest`` app.
    env.pop("PYTHONPATH", None)
    return env


def connect(**kwargs) -> psycopg.Connection:
    return psycopg.connect(DATABASE_URL, **kwargs)


def reset_database() -> None:
    """Drop and re-create the bench database, then migrate it."""
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    manage("migrate", "--no-input", quiet=True)


def reset_redis() -> None:
    import redis

    client = redis.Redis.from_url(BROKER_URL, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


def manage(*args: str, quiet: bool = False) -> str:
    """Run ``manage.py`` against the bench database; return its stdout."""
    done = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stderr}"
        )
    return "" if quiet else done.stdout


def create_project(slug: str) -> str:
    """Create a project; return its upload token (createproject's last line)."""
    return manage("createproject", slug).strip().splitlines()[-1].strip()


class Processes:
    """Child processes, each in its own process group, all stopped on exit."""

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], log_path: Path, **env: str):
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=bench_env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: killpg reaches children
            )
        self.running.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL it if still there after timeout."""
        if proc.poll() is None:
            killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        killpg(proc.pid, signal.SIGKILL)  # stragglers left in the group
        self.running = [(n, p) for n, p in self.running if p is not proc]

    def stop_all(self) -> None:
        for _, proc in reversed(list(self.running)):
            try:
                self.stop(proc)
            except Exception as exc:  # keep stopping the others
                print(f"warning: could not stop pid {proc.pid}: {exc}", file=sys.stderr)


def killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
