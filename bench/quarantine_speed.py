"""Time the quarantine list CI polls and the CI gate.

Run: ``.venv/bin/python -m bench.quarantine_speed [--tests 100000]
[--quarantined 1000] [--requests 200] [--gate-testcases 10000]``.

A project of ``--tests`` tests, of which ``--quarantined`` are accepted and
as many suggested, in its own database (``flakewatch_bench_quarantine``).
Requests go through Django's whole stack (middleware, token lookup, view,
rendering) in this process, without a network hop. Prints p50/p95 of the
JSON list, the pytest form and a 304 revalidation, and the gate's time on a
``--gate-testcases`` report with 100 failures (half of them quarantined),
each beside its target.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import timedelta

from bench.environment import Bench
from support.figures import percentile

LIST_P95_MS, NOT_MODIFIED_P95_MS, GATE_S = 20.0, 5.0, 1.0


def _timed(call: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)


def _populate(tests: int, quarantined: int) -> tuple[str, bytes]:
    """Create the project, its tests and quarantines; return (token, report)."""
    from django.utils import timezone

    from flakewatch.models import Case, CaseState, Project, Quarantine
    from flakewatch.results import identity_hash
    from flakewatch.tokens import issue_token

    project = Project.objects.create(slug="bench", name="Bench")
    now = timezone.now()
    Case.objects.bulk_create(
        (
            Case(
                project=project,
                suite="unit",
                classname=f"tests.test_mod{i // 100}",
                name=f"test_{i}[param-{i % 7}]",
                identity_hash=identity_hash(
                    "unit", f"tests.test_mod{i // 100}", f"test_{i}[param-{i % 7}]", ""
                ),
                first_seen_at=now,
            )
            for i in range(tests)
        ),
        batch_size=5000,
    )
    ids = list(
        Case.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)
    )
    step = max(len(ids) // (2 * quarantined), 1)
    chosen = ids[::step][: 2 * quarantined]
    rows, states = [], []
    for n, case_id in enumerate(chosen):
        accepted = n % 2 == 0
        rows.append(
            Quarantine(
                case_id=case_id,
                project=project,
                state="accepted" if accepted else "suggested",
                reason="failed then passed on retry in 7 of its last 120 runs",
                owner="team" if accepted else "",
                since=now,
                expires_at=now + timedelta(days=30) if accepted else None,
            )
        )
        states.append(
            CaseState(
                case_id=case_id,
                project=project,
                status="quarantined" if accepted else "flaky",
                verdict="flaky",
                quarantined=accepted,
                flake_score=0.05,
            )
        )
    Quarantine.objects.bulk_create(rows, batch_size=5000)
    CaseState.objects.bulk_create(states, batch_size=5000)
    index = {case_id: i for i, case_id in enumerate(ids)}
    failing = {index[c] for c in chosen[:100]}  # half accepted, half suggested
    return issue_token(project, scope="upload"), _report(min(tests, 10_000), failing)


def _report(testcases: int, failing: set[int]) -> bytes:
    lines = ['<?xml version="1.0" encoding="utf-8"?>', '<testsuite name="unit">']
    for i in range(testcases):
        attrs = (
            f'classname="tests.test_mod{i // 100}" name="test_{i}[param-{i % 7}]" '
            'time="0.01"'
        )
        if i in failing:
            lines.append(
                f'<testcase {attrs}><failure message="timeout after 3s"/></testcase>'
            )
        else:
            lines.append(f"<testcase {attrs}/>")
    lines.append("</testsuite>")
    return "\n".join(lines).encode()


def main() -> None:
    """Build the project, time the list, the 304 and the gate, print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=100_000, help="tests")
    parser.add_argument("--quarantined", type=int, default=1000, help="accepted")
    parser.add_argument("--requests", type=int, default=200, help="per figure")
    parser.add_argument("--gate-runs", type=int, default=5, help="gate requests")
    args = parser.parse_args()
    bench = Bench.named("flakewatch_bench_quarantine", "memory://")
    bench.reset_database()
    bench.setup_django(DJANGO_ALLOWED_HOSTS="testserver")
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    token, report = _populate(args.tests, args.quarantined)
    client = Client(headers={"Authorization": f"Bearer {token}"})
    url = "/api/v1/projects/bench/quarantine"
    first = client.get(url)
    assert first.status_code == 200, first.content
    listed = len(first.json()["results"])
    etag = client.get(url, {"format": "pytest"})["ETag"]

    def revalidate() -> None:
        answer = client.get(url, {"format": "pytest"}, HTTP_IF_NONE_MATCH=etag)
        assert answer.status_code == 304

    figures = {
        f"JSON list ({listed} entries)": (
            _timed(lambda: client.get(url), args.requests),
            LIST_P95_MS,
        ),
        f"pytest form ({args.quarantined} accepted)": (
            _timed(lambda: client.get(url, {"format": "pytest"}), args.requests),
            LIST_P95_MS,
        ),
        "304 revalidation": (_timed(revalidate, args.requests), NOT_MODIFIED_P95_MS),
    }
    for label, (times, target) in figures.items():
        p95 = percentile(times, 95) or 0.0
        verdict = "met" if p95 < target else "missed"
        print(
            f"{label}: p50 {percentile(times, 50):.1f} ms, p95 {p95:.1f} ms "
            f"(target p95 < {target:.0f} ms: {verdict})"
        )

    def gate() -> None:
        answer = client.post(
            "/api/v1/projects/bench/gate",
            {"file": SimpleUploadedFile("junit.xml", report)},
        )
        assert answer.status_code == 200, answer.content
        assert answer.json()["counts"]["failed"] == 100

    times = _timed(gate, args.gate_runs)
    worst = times[-1] / 1000
    print(
        f"gate, {report.count(b'<testcase'):,}-testcase report ({len(report) / 1e6:.1f}"
        f" MB, 100 failures): median {percentile(times, 50) / 1000:.2f} s, worst "
        f"{worst:.2f} s (target < {GATE_S:.0f} s: {'met' if worst < GATE_S else 'missed'})"
    )


if __name__ == "__main__":
    main()
