"""A benchmark's own PostgreSQL database and Redis db, and its environment.

Every benchmark names its database and broker; ``BENCH_PG_SERVER``,
``BENCH_DB_NAME`` and ``BENCH_BROKER_URL`` override them. Nothing here
touches the development or test databases: every name is ``flakewatch_bench*``
or a Redis db of 12 and up. Process and timing helpers live in ``support/``,
shared with the tests; benchmarks import from there and from the apps, never
from ``tests/``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from support.stack import BIN, ROOT

VAR = ROOT / "var"
LOG_DIR = VAR / "bench"
PYTHON = str(BIN / "python")


@dataclass(frozen=True)
class Bench:
    """Where one benchmark keeps its data: a database and a broker URL."""

    db_name: str = "flakewatch_bench"
    broker_url: str = "redis://127.0.0.1:6379/12"

    @classmethod
    def named(cls, db_name: str, broker_url: str) -> Bench:
        """Return the benchmark's defaults, overridden by BENCH_* variables."""
        return cls(
            db_name=os.environ.get("BENCH_DB_NAME", db_name),
            broker_url=os.environ.get("BENCH_BROKER_URL", broker_url),
        )

    @property
    def pg_server(self) -> str:
        return os.environ.get("BENCH_PG_SERVER", "postgres://root@127.0.0.1:5432")

    @property
    def database_url(self) -> str:
        return f"{self.pg_server}/{self.db_name}"

    def env(self, **extra: str) -> dict[str, str]:
        """Return the production-style environment for manage.py, celery, gunicorn."""
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.broker_url,
            DJANGO_SECRET_KEY="bench-only-secret",
            DJANGO_SETTINGS_MODULE="flakewatch.settings",
            PYTHONUNBUFFERED="1",
            **extra,
        )
        return env

    def setup_django(self, **extra: str) -> None:
        """Point this process at the bench database and set Django up."""
        import django

        os.environ.update(self.env(**extra))
        django.setup()

    def connect(self, **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(self.database_url, **kwargs)

    def reset_database(self) -> None:
        """Drop and re-create the bench database, then migrate it."""
        with psycopg.connect(f"{self.pg_server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self.manage("migrate", "--no-input", quiet=True)

    def reset_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.broker_url, socket_timeout=5)
        try:
            client.flushdb()
        finally:
            client.close()

    def manage(self, *args: str, quiet: bool = False) -> str:
        """Run ``manage.py`` against the bench database; return its stdout."""
        done = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stderr}"
            )
        return "" if quiet else done.stdout

    def create_project(self, slug: str, *args: str) -> str:
        """Create a project; return its upload token (createproject's last line)."""
        return self.manage("createproject", slug, *args).strip().splitlines()[-1]


def log_path(name: str) -> Path:
    """Return the path of a process log under var/bench/, creating the folder."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / name
