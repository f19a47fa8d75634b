"""Time ``importowners``: a 200-rule CODEOWNERS over a project of 100,000 tests.

Run: ``.venv/bin/python -m bench.ownership_speed [--tests 100000] [--rules 200]``.

Uses its own PostgreSQL database (``flakewatch_bench_ownership``, dropped and
re-created), stores the tests by COPY, then times the command three ways:
the first import (every test changes team and layer), a re-import of the same
file (nothing changes: the read and the matching alone) and an import of
another file (every test moves). Prints each figure beside the 10 s target.
The rules and paths come from ``bench.codeowners_speed`` (a GitLab file with
sections, the slower dialect).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

TARGET_SECONDS = 10.0


def main() -> None:
    """Set the bench database up, store the tests, time the imports."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=100_000, help="tests stored")
    parser.add_argument("--rules", type=int, default=200, help="CODEOWNERS rules")
    args = parser.parse_args()

    from bench.environment import Bench

    bench = Bench.named("flakewatch_bench_ownership", "memory://")
    bench.reset_database()
    bench.setup_django(FLAKEWATCH_LOG_LEVEL="WARNING")

    from django.core.management import call_command
    from django.db import transaction

    from bench.codeowners_speed import codeowners_text, test_paths
    from flakewatch import db
    from flakewatch.models import Case, OwnershipRule, Project
    from flakewatch.results import identity_hash

    project = Project.objects.create(slug="bench", name="Bench")
    now = datetime.now(UTC)
    paths = test_paths(args.tests)
    names = ["project_id", "identity_hash", "suite", "classname", "name", "file"]
    rows = (
        (
            project.pk,
            identity_hash("bench", "", f"test_{i}", path),
            "bench",
            "",
            f"test_{i}",
            path,
        )
        for i, path in enumerate(paths)
    )
    with transaction.atomic():
        db.copy_rows(Case, [*names, "first_seen_at"], ((*r, now) for r in rows))
    first = codeowners_text(args.rules)
    # The same shapes with other owners: every test moves to another team.
    second = first.replace("@acme/team-", "@acme/squad-")
    with tempfile.TemporaryDirectory() as folder:
        runs = [
            ("first import", first),
            ("same file again", first),
            ("new owners", second),
        ]
        for label, text in runs:
            path = Path(folder) / "CODEOWNERS"
            path.write_text(text)
            out = io.StringIO()
            started, cpu = time.perf_counter(), time.process_time()
            call_command("importowners", "--project", "bench", str(path), stdout=out)
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu
            verdict = "met" if wall < TARGET_SECONDS else "missed"
            unowned = out.getvalue().splitlines()[-1]
            print(
                f"importowners, {label}: {wall:.2f} s ({cpu:.2f} s CPU) for "
                f"{len(paths):,} tests and "
                f"{OwnershipRule.objects.filter(project=project).count()} rules "
                f"(target < {TARGET_SECONDS:.0f} s: {verdict}); {unowned}"
            )


if __name__ == "__main__":
    main()
