"""Page speed: server time of the pages over HTTP, and their weight.

Loads a generated history (the demo loader, at ``--tests``/``--commits``)
into its own database, starts the production server command (gunicorn,
``support/stack.py``), logs in through the form and times ``--requests``
GETs of the overview, a team dashboard, a test page and a search. Prints
p50/p95 per page against the 150 ms target and the page weight: the HTML
and our static files (CSS, chart script, plotly.js), gzip-compressed.

The issue's target size is 100,000 tests and 10 million executions (the
analytics benchmark's data); a smoke run takes a few minutes:
``python -m bench.pages_speed --tests 120 --commits 40 --requests 30``.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import re
import statistics
import time
from pathlib import Path

from bench.environment import VAR, Bench, log_path
from support import stack

TARGET_MS = 150.0
STATIC = ["flakewatch/pages.css", "flakewatch/charts.js", "vendor/plotly.min.js"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=3000, help="Tests in the history.")
    parser.add_argument(
        "--commits", type=int, default=300, help="Default-branch commits."
    )
    parser.add_argument("--requests", type=int, default=100, help="GETs per page.")
    parser.add_argument(
        "--reuse", action="store_true", help="Keep the loaded database."
    )
    args = parser.parse_args()

    bench = Bench.named("flakewatch_bench_pages", "memory://")
    if not args.reuse:
        bench.reset_database()
    bench.setup_django(FLAKEWATCH_LOG_LEVEL="WARNING")
    from django.contrib.auth import get_user_model

    from flakewatch import demo
    from flakewatch.models import CaseState, Project

    if not args.reuse or not Project.objects.filter(slug=demo.DEMO_SLUG).exists():
        demo.DEMO_SCALE = {
            "tests": args.tests,
            "commits": args.commits,
            "branches": 4,
            "incidents": 4,
        }
        started = time.monotonic()
        demo.load_demo()
        print(
            f"loaded {args.tests} tests, {args.commits} commits in "
            f"{time.monotonic() - started:.0f} s"
        )
    users = get_user_model().objects
    if not users.filter(username="bench").exists():
        users.create_user("bench", password="bench-only-password")
    flaky = CaseState.objects.filter(project__slug=demo.DEMO_SLUG, status="flaky")
    case_id = flaky.order_by("-flake_score").values_list("case_id", flat=True).first()
    team = next(slug for slug, _ in demo.DEMO_TEAMS.values())
    pages = {
        "overview": "/p/demo/",
        "team dashboard": f"/p/demo/teams/{team}/",
        "test page": f"/p/demo/tests/{case_id}/",
        "search": "/p/demo/tests/?q=refund",
    }

    port = stack.free_port()
    processes = stack.Processes()
    try:
        processes.add(
            stack.start_gunicorn(
                env=bench.env(), log=log_path("pages-gunicorn.log"), port=port
            )
        )
        cookie = _log_in(port)
        figures = {
            name: _time(port, path, cookie, args.requests)
            for name, path in pages.items()
        }
        weight = _weight(port, cookie, pages["team dashboard"])
    finally:
        processes.stop_all()
    for name, ms in figures.items():
        p95 = ms["p95"]
        verdict = "ok" if p95 < TARGET_MS else "OVER"
        print(
            f"{name:15} p50 {ms['p50']:6.1f} ms  p95 {p95:6.1f} ms  "
            f"(target < {TARGET_MS:.0f} ms: {verdict})"
        )
    print(
        "page weight, gzip: "
        + ", ".join(f"{k} {v / 1024:.0f} kB" for k, v in weight.items())
    )
    out = VAR / "pages_speed.json"
    out.write_text(
        json.dumps({"args": vars(args), "pages": figures, "weight": weight}, indent=2)
    )
    print(f"wrote {out}")


def _request(
    port: int,
    path: str,
    *,
    cookie: str = "",
    method: str = "GET",
    body: bytes | None = None,
    headers: dict | None = None,
):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        all_headers = {"Cookie": cookie, **(headers or {})}
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def _cookies(headers) -> dict[str, str]:
    found = {}
    for key, value in headers:
        if key.lower() == "set-cookie":
            name, _, rest = value.partition("=")
            found[name] = rest.split(";", 1)[0]
    return found


def _log_in(port: int) -> str:
    _, headers, body = _request(port, "/accounts/login/")
    csrf = _cookies(headers)["csrftoken"]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)[1].decode()
    form = f"username=bench&password=bench-only-password&csrfmiddlewaretoken={token}"
    status, headers, _ = _request(
        port,
        "/accounts/login/",
        method="POST",
        body=form.encode(),
        cookie=f"csrftoken={csrf}",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"http://127.0.0.1:{port}/accounts/login/",
        },
    )
    assert status == 302, f"login failed: {status}"
    return f"csrftoken={csrf}; sessionid={_cookies(headers)['sessionid']}"


def _time(port: int, path: str, cookie: str, requests: int) -> dict[str, float]:
    status, _, _ = _request(port, path, cookie=cookie)  # warm up
    assert status == 200, f"{path}: {status}"
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        status, _, _ = _request(port, path, cookie=cookie)
        times.append(1000 * (time.perf_counter() - started))
        assert status == 200
    times.sort()
    return {
        "p50": statistics.median(times),
        "p95": times[max(0, round(0.95 * len(times)) - 1)],
    }


def _weight(port: int, cookie: str, path: str) -> dict[str, int]:
    weight = {"html": len(gzip.compress(_request(port, path, cookie=cookie)[2]))}
    for name in STATIC:
        status, _, body = _request(port, f"/static/{name}")
        assert status == 200, name
        weight[Path(name).name] = len(gzip.compress(body))
    return weight


if __name__ == "__main__":
    main()
