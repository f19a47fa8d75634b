"""The embedded default: no env vars, SQLite under the data dir, inline tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support import stack
from tests.factories import junit_report

CONFIG_VARS = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY")


def manage(*args: str, env: dict) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=stack.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_embedded_default_starts_ingests_and_serves(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    env["FLAKEWATCH_DATA_DIR"] = str(tmp_path / "var")
    manage("migrate", "--no-input", env=env)
    token = manage("createproject", "demo", env=env).strip().splitlines()[-1]
    assert (tmp_path / "var" / "flakewatch.sqlite3").exists()

    port = stack.free_port()
    server = stack.Process(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env,
        log=tmp_path / "server.log",
    )
    try:
        server.wait_for_output("Quit the server", timeout=60)
        report = tmp_path / "junit.xml"
        report.write_bytes(junit_report(8, failing={2}))
        url = f"http://127.0.0.1:{port}/api/v1/uploads"
        query = "?commit=abc&branch=main&build=1&job=unit"
        posted = subprocess.run(
            ["curl", "-fsS", "--data-binary", f"@{report}",
             "-H", "Content-Type: application/xml",
             "-H", f"Authorization: Bearer {token}", url + query],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert posted.returncode == 0, posted.stderr + server.output()
        upload_id = json.loads(posted.stdout)["id"]
        status = subprocess.run(
            ["curl", "-fsS", "-H", f"Authorization: Bearer {token}",
             f"{url}/{upload_id}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        answer = json.loads(status.stdout)
        # Tasks run in-process on commit, so the upload is done already.
        assert (answer["status"], answer["tests"], answer["failures"]) == (
            "done",
            8,
            1,
        )
    finally:
        server.kill()
