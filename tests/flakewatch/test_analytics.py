"""Verdicts from histories fed through the real processing path (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.core.management import call_command

from flakewatch import analysis, states
from flakewatch.analytics import durations
from flakewatch.models import CaseResult, CaseState, DailyCaseStat, SuiteState, Upload
from ingest import services

START = datetime(2026, 1, 1, tzinfo=UTC)


def report(results: dict[str, str], *, times: dict[str, float] | None = None) -> bytes:
    """A pytest report; results maps test name to pass|fail|infra|flaky|skip."""
    lines = ['<testsuites><testsuite name="pytest">']
    for name, outcome in results.items():
        seconds = (times or {}).get(name, 0.01)
        attrs = f'classname="tests.test_app" name="{name}" time="{seconds}"'
        body = {
            "pass": "",
            "skip": "<skipped/>",
            "fail": f'<failure message="assert {name} 0x7f00{len(name)}">AssertionError</failure>',
            "infra": '<error message="ConnectionRefusedError: [Errno 111] 10.0.0.7:5432"/>',
            "flaky": '<flakyFailure message="timed out after 31s"/>',
        }[outcome]
        lines.append(f"<testcase {attrs}>{body}</testcase>")
    lines.append("</testsuite></testsuites>")
    return "\n".join(lines).encode()


def ingest(project, commit: int, results: dict, *, job="unit", branch="main",
           attempt=1, build=None, times=None, analyze=True) -> Upload:  # fmt: skip
    meta = services.UploadMetadata(
        commit_sha=f"c{commit:04d}",
        branch=branch,
        build=str(build if build is not None else commit),
        job=job,
        attempt=attempt,
        started_at=START + timedelta(hours=commit, minutes=attempt),
    )
    data = report(results, times=times)
    received = services.receive_file("junit.xml", [data], budget=10**8)
    upload, _ = services.accept_upload(project=project, meta=meta, files=[received])
    services.process_upload(upload.pk)
    if analyze:
        analysis.analyze_upload(upload.pk)
    upload.refresh_from_db()
    assert upload.status == "done", upload.errors
    assert (upload.analyzed_at is not None) == analyze
    return upload


def state(name: str) -> CaseState:
    return CaseState.objects.select_related("case").get(case__name=name)


def test_isolated_default_branch_failures_make_a_test_flaky(project):
    for commit in range(40):
        outcome = "fail" if commit in (5, 14, 22, 30) else "pass"
        ingest(project, commit, {"test_flaky": outcome, "test_ok": "pass"})
    flaky, ok = state("test_flaky"), state("test_ok")
    assert flaky.status == "flaky"
    assert flaky.first_flaky_commit == "c0005"
    assert {e["kind"] for e in flaky.evidence} == {"isolated failure"}
    assert [e["commit"] for e in flaky.evidence] == ["c0005", "c0014", "c0022", "c0030"]
    assert flaky.flake_score > 0
    assert (ok.status, ok.flake_score) == ("healthy", 0)


def test_a_failure_at_the_window_start_is_judged_with_the_run_before_it(project):
    # The window is the last 90 days (2,160 hours) before the newest run:
    # commit 1 sits exactly on its start and commit 0, just before it, is
    # the pass that makes commit 1's failure isolated rather than hard.
    for commit in (0, 1, 2, 2161):
        ingest(project, commit, {"test_x": "fail" if commit == 1 else "pass"})
    x = state("test_x")
    assert states.WINDOW == timedelta(hours=2160)
    assert x.flake_events == 1
    assert [(e["kind"], e["commit"]) for e in x.evidence] == [
        ("isolated failure", "c0001")
    ]


def test_failure_then_pass_in_a_rerun_is_flaky_evidence(project):
    for commit in range(10):
        ingest(project, commit, {"test_x": "flaky" if commit in (2, 6) else "pass"})
    x = state("test_x")
    assert x.status == "flaky"
    assert {e["kind"] for e in x.evidence} == {"in-run rerun"}


def test_ci_rerun_passing_on_the_same_commit_is_flaky_evidence(project):
    for commit in range(12):
        if commit in (3, 8):
            ingest(project, commit, {"test_x": "fail"})
            ingest(project, commit, {"test_x": "pass"}, attempt=2)
        else:
            ingest(project, commit, {"test_x": "pass"})
    x = state("test_x")
    assert x.status == "flaky"
    assert [e["kind"] for e in x.evidence] == ["same-commit rerun"] * 2
    reruns = Upload.objects.filter(attempt=2)
    assert all(u.reran_for_flakes for u in reruns)


def test_test_failing_every_run_since_a_commit_is_broken_not_flaky(project):
    for commit in range(20):
        ingest(project, commit, {"test_b": "fail" if commit >= 12 else "pass"})
        if commit >= 12:  # a CI re-run fails again
            ingest(project, commit, {"test_b": "fail"}, attempt=2)
    b = state("test_b")
    assert (b.status, b.broken_since_commit, b.flake_score) == ("broken", "c0012", 0)


def test_broken_then_repaired_test_ends_fixed(project):
    for commit in range(30):
        ingest(project, commit, {"test_b": "fail" if 8 <= commit < 15 else "pass"})
    assert state("test_b").status == "fixed"


def test_flaky_until_a_commit_then_stable_ends_fixed(project):
    for commit in range(120):
        flaky = commit < 40 and commit % 5 == 2
        ingest(project, commit, {"test_f": "fail" if flaky else "pass"})
    assert state("test_f").status == "fixed"


def test_failing_only_on_a_feature_branch_is_not_flaky(project):
    for commit in range(15):
        ingest(project, commit, {"test_b": "pass"})
    for commit in range(100, 106):
        ingest(project, commit, {"test_b": "fail"}, branch="feature/x")
        ingest(project, commit, {"test_b": "fail"}, branch="feature/x", attempt=2)
    assert state("test_b").status == "healthy"


def test_failing_in_one_configuration_only_is_not_flaky(project):
    for commit in range(15):
        ingest(project, commit, {"test_m": "fail"}, job="unit-py311")
        ingest(project, commit, {"test_m": "pass"}, job="unit-py312")
    m = state("test_m")
    assert m.status == "broken"
    assert m.flake_events == 0


def test_many_tests_failing_with_one_signature_are_an_incident(project):
    names = [f"test_{i}" for i in range(12)]
    for commit in range(15):
        if commit == 7:
            ingest(project, commit, dict.fromkeys(names, "infra"))
            ingest(project, commit, dict.fromkeys(names, "pass"), attempt=2)
        else:
            ingest(project, commit, dict.fromkeys(names, "pass"))
    statuses = set(CaseState.objects.values_list("status", flat=True))
    assert statuses == {"healthy"}
    rerun = Upload.objects.get(attempt=2)
    assert not rerun.reran_for_flakes  # an incident, not flaky tests


def test_fourfold_slowdown_is_a_duration_regression_from_its_commit(project):
    for commit in range(60):
        seconds = 0.4 if commit >= 35 else 0.1
        jitter = 1 + (commit % 5) / 50
        ingest(project, commit, {"test_s": "pass"}, times={"test_s": seconds * jitter})
    s = state("test_s")
    assert s.duration_regressed
    assert s.duration_regressed_since_commit == "c0035"
    assert 390 < s.duration_p50_ms < 420
    suite = SuiteState.objects.get(name="pytest")
    assert suite.duration_regressed and suite.runs == 60


def test_few_runs_are_new(project):
    for commit in range(3):
        ingest(project, commit, {"test_n": "pass"})
    assert state("test_n").status == "new"


def test_recompute_gives_the_incremental_answers(project):
    for commit in range(50):
        results = {
            "test_flaky": "fail" if commit % 7 == 3 else "pass",
            "test_rerun": "flaky" if commit % 9 == 4 else "pass",
            "test_broken": "fail" if commit > 40 else "pass",
            "test_ok": "pass",
        }
        ingest(project, commit, results, times={"test_ok": 0.1 * (1 + commit // 30)})
        if commit % 7 == 3:
            ingest(project, commit, {**results, "test_flaky": "pass"}, attempt=2)
    fields = [f.name for f in CaseState._meta.fields]
    before = list(CaseState.objects.order_by("case_id").values_list(*fields))
    suites_before = list(SuiteState.objects.values_list("name", "recent_durations"))
    call_command("recompute", "--project", project.slug)
    assert list(CaseState.objects.order_by("case_id").values_list(*fields)) == before
    assert list(SuiteState.objects.values_list("name", "recent_durations")) == (
        suites_before
    )
    assert {
        s.case.name: s.status for s in CaseState.objects.select_related("case")
    } == {
        "test_flaky": "flaky",
        "test_rerun": "flaky",
        "test_broken": "broken",
        "test_ok": "healthy",
    }


def mixed_history(project, *, analyze: bool) -> list[Upload]:
    uploads = []
    for commit in range(45):
        results = {
            "test_flaky": "fail" if commit % 7 == 3 else "pass",
            "test_rerun": "flaky" if commit % 9 == 4 else "pass",
            "test_broken": "fail" if commit > 38 else "pass",
            "test_slow": "pass",
        }
        times = {"test_slow": 0.4 if commit >= 30 else 0.1}
        uploads.append(ingest(project, commit, results, times=times, analyze=analyze))
        if commit % 7 == 3:
            retry = {**results, "test_flaky": "pass"}
            uploads.append(ingest(project, commit, retry, attempt=2, analyze=analyze))
    return uploads


def analytics_by_name(project) -> dict:
    """The project's analytics keyed by test name, upload ids left out (they
    differ between projects)."""
    names = [
        f.name for f in CaseState._meta.fields if f.name not in ("case", "project")
    ]
    states = {}
    for s in CaseState.objects.filter(project=project).select_related("case"):
        values = {name: getattr(s, name) for name in names}
        values["evidence"] = without_upload_ids(values["evidence"])
        values["recent_durations"] = durations_only(values["recent_durations"])
        states[s.case.name] = values
    return {
        "states": states,
        "daily": sorted(
            DailyCaseStat.objects.filter(case__project=project).values_list(
                "case__name", "day", "runs", "failures", "skipped", "duration_total_ms"
            )
        ),
        "suites": list(
            SuiteState.objects.filter(project=project).values_list(
                "name", "runs", "duration_p50_ms", "duration_regressed"
            )
        ),
    }


def without_upload_ids(value):
    if isinstance(value, dict):
        return {k: without_upload_ids(v) for k, v in value.items() if k != "upload_id"}
    if isinstance(value, list):
        return [without_upload_ids(v) for v in value]
    return value


def durations_only(series: list) -> list:
    """A duration series without its upload ids: baseline, whether regressed
    and for how many runs, the failed share and the recent times."""
    return [
        series[0],
        series[1],
        series[2] is None,
        series[3],
        series[4],
        *durations.durations(series),
    ]


def refreshed(uploads: list[Upload]) -> list[Upload]:
    return list(Upload.objects.filter(pk__in=[u.pk for u in uploads]).order_by("pk"))


def test_a_backlog_analysed_in_one_batch_gives_the_one_by_one_answers(project):
    from flakewatch.models import Project

    one_by_one = mixed_history(project, analyze=True)
    backlog_project = Project.objects.create(slug="backlog", name="Backlog")
    backlog = mixed_history(backlog_project, analyze=False)

    analysis.analyze_upload(backlog[-1].pk)  # takes every waiting upload along
    assert not Upload.objects.filter(
        project=backlog_project, analyzed_at__isnull=True
    ).exists()
    for upload in backlog:  # the tasks queued behind it: nothing left to do
        analysis.analyze_upload(upload.pk)

    expected, got = analytics_by_name(project), analytics_by_name(backlog_project)
    assert got == expected
    states = expected["states"]
    assert states["test_flaky"]["status"] == "flaky"
    assert states["test_broken"]["status"] == "broken"
    assert states["test_slow"]["duration_regressed"] is True
    assert [u.reran_for_flakes for u in refreshed(backlog)] == [
        u.reran_for_flakes for u in refreshed(one_by_one)
    ]
    assert any(u.reran_for_flakes for u in refreshed(backlog))


def test_a_backlog_is_cut_into_bounded_batches(project, monkeypatch):
    monkeypatch.setattr(analysis, "MAX_BATCH_UPLOADS", 4)
    uploads = mixed_history(project, analyze=False)
    analysis.analyze_upload(uploads[0].pk)  # the oldest: in the first batch
    assert Upload.objects.filter(analyzed_at__isnull=False).count() == 4
    analysis.analyze_upload(uploads[-1].pk)  # the newest: batch after batch
    assert not Upload.objects.filter(analyzed_at__isnull=True).exists()
    assert state("test_slow").runs == len(uploads)


def test_analysing_an_upload_twice_counts_it_once(project):
    upload = ingest(project, 1, {"test_a": "fail", "test_b": "pass"})
    analysis.analyze_upload(upload.pk)  # a redelivered task
    a = state("test_a")
    assert (a.runs, a.failures) == (1, 1)
    assert sum(DailyCaseStat.objects.values_list("runs", flat=True)) == 2


def test_uploads_are_stored_once_without_a_unique_index(project):
    upload = ingest(project, 1, {"test_a": "pass", "test_b": "flaky"})
    services.process_upload(upload.pk)  # redelivered after DONE
    rows = list(
        CaseResult.objects.filter(upload=upload).values_list(
            "case__name", "retry_index"
        )
    )
    assert sorted(rows) == [("test_a", 0), ("test_b", 0), ("test_b", 1)]


def test_a_run_ending_in_failure_is_not_an_in_run_flake(project):
    # pytest-rerunfailures writes rerun attempts as testcases without a
    # result: "failed three times" reads pass, pass, fail.
    repeated = (
        b'<testsuite name="pytest">'
        b'<testcase classname="c" name="test_b"/><testcase classname="c" name="test_b"/>'
        b'<testcase classname="c" name="test_b"><failure message="boom"/></testcase>'
        b"</testsuite>"
    )
    for commit in range(12):
        meta = services.UploadMetadata(
            commit_sha=f"c{commit:04d}", branch="main", build=str(commit), job="unit",
            started_at=START + timedelta(hours=commit),
        )  # fmt: skip
        received = services.receive_file("j.xml", [repeated], budget=10**6)
        upload, _ = services.accept_upload(project=project, meta=meta, files=[received])
        services.process_upload(upload.pk)
        analysis.analyze_upload(upload.pk)
    b = state("test_b")
    assert (b.status, b.flake_events) == ("broken", 0)


def test_analysis_locks_only_its_upload_row(project):
    # A new upload's foreign-key check takes a share lock on the project row;
    # if the analytics held FOR UPDATE on it, every upload would stall behind
    # a long analysis (it did: 202 answers took 16 s).
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    upload = ingest(project, 1, {"test_a": "pass"})
    Upload.objects.filter(pk=upload.pk).update(analyzed_at=None)
    with CaptureQueriesContext(connection) as queries:
        analysis.analyze_upload(upload.pk)
    locking = [q["sql"] for q in queries.captured_queries if "FOR UPDATE" in q["sql"]]
    assert locking and all('FOR UPDATE OF "flakewatch_upload"' in q for q in locking)


def test_uploads_are_analysed_in_the_order_their_tests_ran(project):
    # The later run's report arrives first: its started_at, not its arrival,
    # places it.
    later = ingest(project, 2, {"test_t": "pass"}, times={"test_t": 0.2}, analyze=False)
    earlier = ingest(
        project, 1, {"test_t": "pass"}, times={"test_t": 0.1}, analyze=False
    )
    assert later.received_at < earlier.received_at
    assert earlier.run_at == earlier.started_at < later.started_at == later.run_at
    analysis.analyze_upload(later.pk)  # takes the waiting one along
    series = state("test_t").recent_durations
    assert series[durations.HEADER :: 2] == [earlier.pk, later.pk]
    assert state("test_t").last_run_at == later.started_at
    call_command("recompute", "--project", project.slug)
    assert state("test_t").recent_durations == series


def test_an_upload_without_a_start_time_runs_when_it_arrived(project):
    meta = services.UploadMetadata(commit_sha="c1", branch="main", build="1", job="u")
    received = services.receive_file(
        "j.xml", [report({"test_a": "pass"})], budget=10**6
    )
    upload, _ = services.accept_upload(project=project, meta=meta, files=[received])
    upload.refresh_from_db()
    assert upload.started_at is None
    assert upload.run_at == upload.received_at
