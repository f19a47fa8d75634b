"""``tests?q=`` substring search on 100,000 tests, with and without its index.

    .venv/bin/python -m bench.search_speed [--tests 100000] [--requests 200]

Loads 100,000 test identities shaped as the analytics benchmark's (ten
jobs of 100 modules of ten classes of ten tests) into a database of its own, then times ``queries.case_list(project, q=...)``
(the API's query, in-process: no HTTP) for a few searches: first with
``case_search_trgm_idx`` dropped inside a transaction that is rolled back
(the plan the search had before the index: a scan of the project's tests),
then with it. Prints p50/p95 per search beside the 50 ms target of issue 13.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from bench.environment import Bench
from support.figures import percentile

BENCH = Bench.named("flakewatch_bench_search", "redis://127.0.0.1:6379/14")
SEARCHES = ["module_7", "module_77", "TestGroup3", "load_17", "nothing_matches"]
TARGET_P95_MS = 50.0
WARMUP = 10
# The analytics benchmark's shape: 10 jobs x 100 modules x 10 classes x 10.
VERBS = ("parse", "load", "save", "render", "merge", "sort", "scan", "fetch")


def test_identity(index: int) -> tuple[str, str, str, str]:
    """Return (suite, classname, name, file) of test ``index``."""
    job, local = divmod(index, 10_000)
    module, rest = divmod(local, 100)
    group, case = divmod(rest, 10)
    return (
        f"job-{job:02d}.module_{module}",
        f"tests.module_{module}.TestGroup{group}",
        f"test_{VERBS[(group * 10 + case) % len(VERBS)]}_{index % 100}",
        f"tests/module_{module}.py",
    )


def load(tests: int) -> int:
    """Create the project and its tests; return the project id."""
    from flakewatch.results import identity_hash

    with BENCH.connect() as db:
        project_id = db.execute(
            "INSERT INTO flakewatch_project (slug, name, default_branch, created_at)"
            " VALUES ('search', 'Search speed', 'main', now()) RETURNING id"
        ).fetchone()[0]
        with db.cursor() as cur:
            with cur.copy(
                "COPY flakewatch_case (project_id, identity_hash, suite, classname,"
                " name, file, first_seen_at) FROM STDIN"
            ) as copy:
                now = datetime.now(UTC)
                for index in range(tests):
                    identity = test_identity(index)
                    key = identity_hash(*identity)
                    copy.write_row((project_id, key, *identity, now))
            cur.execute("ANALYZE flakewatch_case")
    return project_id


def measure(project_id: int, requests: int) -> dict[str, tuple[float, float, int]]:
    """Time each search; return (p50 ms, p95 ms, results on page 1) by search."""
    from flakewatch import queries
    from flakewatch.models import Project

    project = Project.objects.get(pk=project_id)
    figures = {}
    for q in SEARCHES:
        times = []
        for n in range(WARMUP + requests):
            began = time.perf_counter()
            page = queries.case_list(project, q=q)
            if n >= WARMUP:
                times.append((time.perf_counter() - began) * 1000.0)
        times.sort()
        figures[q] = (percentile(times, 50), percentile(times, 95), len(page.results))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=100_000, help="Tests to load.")
    parser.add_argument(
        "--requests", type=int, default=200, help="Timed searches per query."
    )
    args = parser.parse_args()
    BENCH.reset_database()
    BENCH.setup_django()
    from django.db import connection, transaction

    project_id = load(args.tests)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX case_search_trgm_idx")
        before = measure(project_id, args.requests)
        transaction.set_rollback(True)  # the index comes back
    after = measure(project_id, args.requests)
    print(f"tests?q= on {args.tests:,} tests, {args.requests} timed searches each")
    print(f"  {'q':<18} {'no index p50/p95':>20} {'index p50/p95':>20} {'rows':>5}")
    for q in SEARCHES:
        b50, b95, rows = before[q]
        a50, a95, _ = after[q]
        mark = "[OK]  " if a95 < TARGET_P95_MS else "[MISS]"
        print(
            f"  {q:<18} {b50:8.1f} / {b95:6.1f} ms {a50:8.1f} / {a95:6.1f} ms "
            f"{rows:>5}  {mark} p95 < {TARGET_P95_MS:.0f} ms"
        )


if __name__ == "__main__":
    main()
