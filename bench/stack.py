"""The benchmark's own PostgreSQL database and Redis db, and its environment.

Shared by ``bench/ingest.py`` and ``bench/profile_ingest.py``. Nothing here
touches the development or test databases: everything is named ``*_bench``
or lives in Redis db 12 unless overridden by the BENCH_* variables.
"""

from __future__ import annotations

import os
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
