"""A populated project for the page tests: teams, verdicts, runs and rollups.

Written straight into the tables the pages read (states, rollups, failure
rows, executions), with ``tests`` tests over a fixed number of uploads, so
the view tests can compare two project sizes and the browser tests have a
flaky test to follow.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from flakewatch.analytics import durations
from flakewatch.models import (
    CaseResult,
    CaseState,
    CommitFailure,
    DailyCaseStat,
    FailureMessage,
    SuiteState,
    Team,
    Upload,
)
from flakewatch.outcomes import Outcome
from tests.factories import CaseFactory, UploadFactory

XSS_NAME = "<img src=x onerror=alert(1)>"
UPLOADS = 8
STATUSES = ["flaky", "broken", "healthy", "fixed"]


def populate(project, tests: int, *, xss: bool = True) -> dict:
    """Fill ``project`` with ``tests`` tests (the first flaky) and return ids."""
    now = timezone.now()
    checkout, _ = Team.objects.get_or_create(
        slug="checkout", defaults={"name": "Checkout"}
    )
    web, _ = Team.objects.get_or_create(slug="web", defaults={"name": "Web"})
    uploads = [
        UploadFactory(
            project=project,
            commit_sha=f"{i:07x}{'a' * 33}",
            build=str(500 + i),
            job="unit" if i % 2 else "integration",
            build_url=f"https://ci.example.com/builds/{500 + i}",
            started_at=now - timedelta(days=UPLOADS - i),
            reran_for_flakes=i == 3,
            duration_total_ms=90_000.0,
            status=Upload.Status.DONE,
            analyzed_at=now,
        )
        for i in range(UPLOADS)
    ]
    message = FailureMessage.objects.create(
        project=project,
        digest=b"d" * 16,
        message=f"TimeoutError: {XSS_NAME} after 31 s",
        signature=f"TimeoutError: {XSS_NAME} after % s",
    )
    existing = project.cases.count()
    cases = []
    for i in range(existing, existing + tests):
        name = XSS_NAME if xss and i == 0 else f"test_case_{i}"
        cases.append(
            CaseFactory(
                project=project,
                suite="unit" if i % 3 else "integration",
                classname="tests.test_pages",
                name=name,
                team=checkout if i % 2 == 0 else (web if i % 4 == 1 else None),
            )
        )
    states, results, stats, failures = [], [], [], []
    for i, case in enumerate(cases, existing):
        status = STATUSES[i % len(STATUSES)]
        series = durations.new_series()
        for upload in uploads:
            series += [upload.pk, 100.0 + (400.0 if upload.pk == uploads[-1].pk else 0)]
        states.append(
            CaseState(
                case=case,
                project=project,
                status=status,
                flake_score=0.5 / (i + 1),
                flake_rate=0.25,
                runs=UPLOADS,
                failures=2,
                flake_events=2 if status == "flaky" else 0,
                broken_since_commit=uploads[5].commit_sha if status == "broken" else "",
                duration_p50_ms=100.0,
                duration_regressed=i % 5 == 0,
                duration_regressed_since_commit=uploads[-1].commit_sha
                if i % 5 == 0
                else "",
                last_run_at=uploads[-1].started_at,
                evidence=[
                    {
                        "kind": "same-commit rerun",
                        "commit": uploads[2].commit_sha,
                        "job": uploads[2].job,
                        "ran_at": uploads[2].started_at.isoformat(),
                        "failed_runs": 1,
                        "passed_runs": 1,
                        "upload_id": uploads[2].pk,
                        "build": uploads[2].build,
                        "message": message.message,
                    }
                ]
                if status == "flaky"
                else [],
                top_signatures=[{"signature": message.signature, "count": 2}]
                if status == "flaky"
                else [],
                recent_durations=series,
            )
        )
        for j, upload in enumerate(uploads):
            failed = (status == "broken" and j >= 5) or (
                status == "flaky" and j in (2, 6)
            )
            results.append(
                CaseResult(
                    case=case,
                    upload=upload,
                    retry_index=0,
                    outcome=Outcome.FAILED if failed else Outcome.PASSED,
                    duration_ms=100.0,
                    message=message if failed else None,
                )
            )
            if status == "flaky" and j == 2:  # then passed on a retry
                results.append(
                    CaseResult(
                        case=case,
                        upload=upload,
                        retry_index=1,
                        outcome=Outcome.PASSED,
                        duration_ms=100.0,
                    )
                )
                failures.append(
                    CommitFailure(
                        project=project,
                        case=case,
                        commit_sha=upload.commit_sha,
                        job=upload.job,
                        on_default_branch=True,
                        ran_at=upload.started_at,
                        failed_runs=1,
                        passed_runs=1,
                        first_failed_upload=upload,
                    )
                )
            stats.append(
                DailyCaseStat(
                    case=case,
                    day=upload.started_at.date(),
                    runs=1,
                    failures=int(failed),
                    duration_total_ms=100.0,
                )
            )
    CaseState.objects.bulk_create(states)
    CaseResult.objects.bulk_create(results)
    DailyCaseStat.objects.bulk_create(stats)
    CommitFailure.objects.bulk_create(failures)
    suite, _ = SuiteState.objects.get_or_create(
        project=project,
        name="unit",
        defaults={
            "runs": UPLOADS,
            "tests": tests,
            "duration_p50_ms": 1200.0,
            "total_duration_ms": 9600.0,
            "recent_durations": states[0].recent_durations,
        },
    )
    return {"flaky": cases[0].pk, "suite": suite.pk, "cases": [c.pk for c in cases]}
