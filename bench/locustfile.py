"""Locust load for ``bench.ingest_speed``: CI jobs uploading ~1 MB JUnit reports.

Each simulated client posts the same report as ``curl -F file=@junit.xml``
would (multipart, with commit/branch/build/job fields) under a new build id
every time, so every request is a distinct upload; anything but a 202 counts
as an error. Configured by environment variables, which bench.ingest_speed sets:

    BENCH_TOKEN    upload token (required)
    BENCH_REPORT   path of the report to send (required)
    BENCH_PACING   seconds between the starts of one client's uploads;
                   0 (default) sends back to back
    BENCH_RUN      prefix for build ids (default: a random one)
    BENCH_STATS    where to write exact per-request figures as JSON on exit
                   (count, errors, sorted latencies in ms, first/last times)

    BENCH_TOKEN=... BENCH_REPORT=var/bench/load-report.xml \\
      .venv/bin/locust -f bench/locustfile.py --headless -u 16 -r 16 -t 60s \\
      --host http://127.0.0.1:8000
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid

from locust import FastHttpUser, constant, constant_pacing, events, task

# locust puts its working directory (the repository root) on sys.path.
from bench.reports import MULTIPART_BOUNDARY, multipart_body

TOKEN = os.environ.get("BENCH_TOKEN", "")
REPORT = os.environ.get("BENCH_REPORT", "")
PACING = float(os.environ.get("BENCH_PACING", "0") or 0)
RUN = os.environ.get("BENCH_RUN") or uuid.uuid4().hex[:8]
STATS = os.environ.get("BENCH_STATS", "")

_payload = b""
_counter = itertools.count(1)


def _report() -> bytes:
    global _payload
    if not _payload:
        if not (TOKEN and REPORT):
            raise SystemExit("BENCH_TOKEN and BENCH_REPORT must be set")
        with open(REPORT, "rb") as handle:
            _payload = handle.read()
    return _payload


_latencies_ms: list[float] = []
_errors: list[str] = []
_span = [float("inf"), 0.0]  # first request start, last request end (epoch s)


@events.request.add_listener
def _record(response_time, exception, **kwargs) -> None:
    now = time.time()
    _span[0] = min(_span[0], now - response_time / 1000)
    _span[1] = max(_span[1], now)
    _latencies_ms.append(response_time)
    if exception is not None:
        _errors.append(str(exception)[:200])


@events.quitting.add_listener
def _write_stats(**kwargs) -> None:
    if not STATS:
        return
    with open(STATS, "w") as handle:
        json.dump(
            {
                "requests": len(_latencies_ms),
                "errors": len(_errors),
                "error_samples": _errors[:5],
                "latencies_ms": sorted(_latencies_ms),
                "first_start": _span[0] if _latencies_ms else None,
                "last_end": _span[1] if _latencies_ms else None,
            },
            handle,
        )


class CIJob(FastHttpUser):
    wait_time = constant_pacing(PACING) if PACING > 0 else constant(0)
    network_timeout = 60.0
    connection_timeout = 10.0

    @task
    def upload(self) -> None:
        n = next(_counter)
        body = multipart_body(
            {
                "commit": f"{n:040x}",
                "branch": "main",
                "build": f"load-{RUN}-{n}",
                "job": "pytest",
                "attempt": "1",
            },
            "junit.xml",
            _report(),
        )
        with self.client.post(
            "/api/v1/uploads",
            data=body,
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "Content-Type": f"multipart/form-data; boundary={MULTIPART_BOUNDARY}",
            },
            name="POST /api/v1/uploads",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(
                    f"HTTP {response.status_code}: {(response.text or '')[:200]}"
                )
