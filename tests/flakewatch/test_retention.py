"""Retention prunes raw data and leaves every verdict and answer as it was."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from flakewatch import retention
from flakewatch.models import (
    CaseResult,
    CaseState,
    CommitFailure,
    Project,
    Upload,
    UploadFile,
)
from flakewatch.tokens import issue_token
from tests.flakewatch.test_analytics import (
    START,
    analytics_by_name,
    ingest,
    mixed_history,
)

CUTOFF = START + timedelta(hours=30)  # prunes the first 30 commits' uploads


def api_answers(project: Project) -> dict:
    """Every read-API answer about the project; test details split off history."""
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {issue_token(project, scope='read')}"
    )
    base = f"/api/v1/projects/{project.slug}"

    def get(path: str) -> dict:
        response = client.get(path)
        assert response.status_code == 200, response.content
        return response.json()

    answers: dict = {"summary": get(base), "suites": get(f"{base}/suites")}
    answers["tests"] = get(f"{base}/tests")
    for status in ("flaky", "broken", "healthy", "fixed", "new"):
        answers[status] = get(f"{base}/tests?status={status}")
    details, histories = {}, {}
    for case_id in sorted(
        CaseState.objects.filter(project=project).values_list("case_id", flat=True)
    ):
        detail = get(f"{base}/tests/{case_id}")
        histories[case_id] = detail.pop("history")
        details[case_id] = detail
    answers["details"] = details
    return {"answers": answers, "histories": histories}


def evidence_rows(project: Project) -> list:
    return sorted(
        CommitFailure.objects.filter(project=project).values_list(
            "case__name", "commit_sha", "job", "failed_runs", "passed_runs",
            "incident_failures", "in_run_flake", "first_failed_upload_id",
        )
    )  # fmt: skip


def test_pruning_leaves_verdicts_scores_and_api_answers_identical(project):
    uploads = mixed_history(project, analyze=True)
    old = {u.pk for u in uploads if u.run_at < CUTOFF}
    kept = {u.pk for u in uploads} - old
    assert len(old) >= 30 and len(kept) >= 15  # both sides are populated
    flaky = CaseState.objects.filter(project=project, status="flaky").count()
    assert flaky >= 1  # a verdict worth keeping, not an all-healthy history
    kept_rows = CaseResult.objects.filter(upload_id__in=kept).count()
    old_rows = CaseResult.objects.filter(upload_id__in=old).count()
    before = analytics_by_name(project), evidence_rows(project), api_answers(project)

    pruned, executions = retention.prune_results(before=CUTOFF, now=timezone.now())
    files = retention.prune_payloads(before=timezone.now() + timedelta(days=1))

    assert (pruned, executions) == (len(old), old_rows)
    assert files == len(uploads)
    assert not CaseResult.objects.filter(upload_id__in=old).exists()
    assert CaseResult.objects.filter(upload_id__in=kept).count() == kept_rows
    assert not UploadFile.objects.exists()
    assert (
        set(
            Upload.objects.filter(results_pruned_at__isnull=False).values_list(
                "pk", flat=True
            )
        )
        == old
    )
    after = analytics_by_name(project), evidence_rows(project), api_answers(project)
    assert after[0] == before[0]  # states, scores, verdicts, rollups, suites
    assert after[1] == before[1]  # the evidence of the verdicts
    assert after[2]["answers"] == before[2]["answers"]
    # A test's detail lists the runs still stored: the pruned ones drop out.
    for case_id, history in before[2]["histories"].items():
        expected = [run for run in history if run["upload_id"] in kept]
        assert after[2]["histories"][case_id] == expected
        assert len(expected) < len(history)

    # Pruning again finds nothing left to do.
    assert retention.prune_results(before=CUTOFF, now=timezone.now()) == (0, 0)


def test_uploads_after_pruning_get_the_verdicts_of_an_unpruned_history(project):
    mixed_history(project, analyze=True)
    retention.prune_results(before=CUTOFF, now=timezone.now())
    control = Project.objects.create(slug="control", name="Control")
    mixed_history(control, analyze=True)
    for target in (project, control):  # the next commits, pruned history or not
        ingest(target, 45, {"test_flaky": "fail", "test_rerun": "pass",
                            "test_broken": "pass", "test_slow": "pass"})  # fmt: skip
        ingest(target, 46, {"test_flaky": "pass", "test_rerun": "fail",
                            "test_broken": "pass", "test_slow": "pass"})  # fmt: skip
    assert CaseResult.objects.filter(case__project=project).count() < (
        CaseResult.objects.filter(case__project=control).count()
    )
    assert analytics_by_name(project) == analytics_by_name(control)


def test_executions_of_an_upload_not_yet_analysed_are_kept(project):
    waiting = ingest(project, 0, {"test_a": "fail", "test_b": "pass"}, analyze=False)
    assert retention.prune_results(before=CUTOFF, now=timezone.now()) == (0, 0)
    assert CaseResult.objects.filter(upload=waiting).count() == 2


def test_report_files_of_unfinished_uploads_are_kept(project):
    done = ingest(project, 0, {"test_a": "pass"})
    queued = ingest(project, 1, {"test_a": "pass"})
    Upload.objects.filter(pk=queued.pk).update(status=Upload.Status.QUEUED)
    assert retention.prune_payloads(before=timezone.now() + timedelta(days=1)) == 1
    assert not UploadFile.objects.filter(upload=done).exists()
    assert UploadFile.objects.filter(upload=queued).count() == 1


def test_payloads_are_pruned_in_bounded_batches(project):
    for commit in range(5):
        ingest(project, commit, {"test_a": "pass"})
    assert (
        retention.prune_payloads(before=timezone.now() + timedelta(days=1), batch=2)
        == 5
    )
    assert not UploadFile.objects.exists()


def test_results_are_pruned_in_bounded_batches(project):
    for commit in range(5):
        ingest(project, commit, {"test_a": "pass", "test_b": "fail"})
    # Two executions an upload, three a batch at most: one upload a batch.
    assert retention.prune_results(
        before=CUTOFF, now=timezone.now(), max_executions=3
    ) == (5, 10)


@pytest.mark.parametrize(
    ("payload_days", "result_days", "files_left", "results_left"),
    [(0, 0, 2, 2), (30, 0, 0, 2), (0, 90, 2, 0), (30, 90, 0, 0)],
)
def test_prune_command_follows_the_retention_settings(
    project, settings, payload_days, result_days, files_left, results_left
):
    # The history ran in January; the command runs today, over 90 days later.
    ingest(project, 0, {"test_a": "pass"})
    ingest(project, 1, {"test_a": "fail"})
    Upload.objects.update(received_at=timezone.now() - timedelta(days=31))
    settings.FLAKEWATCH_RAW_PAYLOAD_RETENTION_DAYS = payload_days
    settings.FLAKEWATCH_RAW_RESULT_RETENTION_DAYS = result_days
    call_command("prune")
    assert UploadFile.objects.count() == files_left
    assert CaseResult.objects.count() == results_left
