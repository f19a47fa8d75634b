"""Each test's and suite's current figures: fold new runs in, judge, write.

``update_case_states`` folds a batch's runs into each test's ``CaseState``
(counters, duration series) and judges it once (``verdicts.judge``) on its
failure cells; ``update_suite_states`` folds one upload into its suites'
``SuiteState``. The caller owns the transaction and applies each upload
once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import field, make_dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from django.conf import settings
from django.db.models import Q

from flakewatch import db, evidence
from flakewatch.analytics import durations
from flakewatch.analytics.runs import CaseRun
from flakewatch.analytics.verdicts import judge
from flakewatch.models import CaseState, SuiteState, Upload
from flakewatch.outcomes import Status

# A test's verdict reads its failures in the 90 days before its newest run.
WINDOW = timedelta(days=90)
MAX_TOP_SIGNATURES = 5

# A test's runs in a batch, in run order: (upload id, run, when).
Appearances = list[tuple[int, CaseRun, datetime]]
# A run as the duration series takes it: (upload id, ms of a passing run or
# None, whether it failed).
TimedRun = tuple[int, "float | None", bool]


def _state_row_class() -> type:
    """Build StateRow: a CaseState row as plain data, fields from the model.

    Model instances cost 50 µs apiece, and a 100,000-test upload makes as
    many states; a slotted dataclass costs a fraction of that.
    """
    spec: list[Any] = []
    for model_field in CaseState._meta.concrete_fields:
        name = model_field.attname
        if model_field.is_relation and not model_field.has_default():
            spec.append((name, int))  # case_id, project_id: always given
        elif model_field.has_default() and callable(model_field.default):
            spec.append((name, Any, field(default_factory=model_field.default)))
        else:
            spec.append((name, Any, field(default=model_field.get_default())))
    return make_dataclass("StateRow", spec, slots=True)


# Built at import, so its fields are known only at run time: typed Any.
StateRow: Any = _state_row_class()
STATE_COLUMNS = db.columns(CaseState)
# Kept on an existing row: the key, and an accepted quarantine.
KEPT = ("case_id", "project_id", "quarantined")
# Read back to fold into: the counters and the duration series.
FOLDED = ("runs", "failures", "total_duration_ms", "last_run_at", "recent_durations")


def update_case_states(
    last: Upload, appearances: Mapping[int, Appearances], visible: Q
) -> list[tuple[int, str, str]]:
    """Fold each test's runs into its state, then judge it once.

    ``last`` is the batch's newest upload and ``visible`` the uploads whose
    results the verdicts may read (those applied so far). Return the
    verdicts that changed as (case id, old status, new status).
    """
    changes = []
    states = _load_states(list(appearances))
    since = {case_id: runs[-1][2] - WINDOW for case_id, runs in appearances.items()}
    cells, signatures = evidence.cells_by_case(since)
    jobs = evidence.job_positions(
        last,
        {cell.job for rows in cells.values() for cell in rows},
        visible,
        min(since.values()),
    )
    timed = []
    for case_id, runs in appearances.items():
        state = states.get(case_id)
        if state is None:
            state = states[case_id] = StateRow(case_id, last.project_id)
        points = []
        for upload_id, run, when in runs:
            state.runs += 1
            state.failures += int(run.first_failed)
            if state.last_run_at is None or when > state.last_run_at:
                state.last_run_at = when
            # Only passing runs are timed: a failure's time (a timeout, a
            # refused connection in 10 ms) says nothing about how long the
            # test takes; failures count towards its failed share.
            if not run.skipped_only:
                timed_ms = run.duration_ms if run.passed and not run.failed else None
                points.append((upload_id, timed_ms, run.failed))
            if run.duration_ms is not None and not run.skipped_only:
                state.total_duration_ms += run.duration_ms  # CI time, failures too
        timed.append((state, points))

        latest = state.last_run_at
        test_cells = cells.get(case_id, [])
        test_jobs = {
            job: [p for p in jobs.get(job, []) if p.ran_at <= latest]
            for job in {cell.job for cell in test_cells}
        }
        verdict = judge(test_cells, test_jobs, runs=state.runs)
        if verdict.status.value != state.verdict:
            changes.append((case_id, state.verdict, verdict.status.value))
        # The verdict stays readable under an accepted quarantine.
        state.verdict = verdict.status.value
        state.status = Status.QUARANTINED.value if state.quarantined else state.verdict
        state.flake_events = verdict.flake_events
        state.flake_rate = verdict.flake_rate
        state.flake_score = verdict.flake_score
        state.first_flaky_commit = verdict.first_flaky_commit
        state.broken_since_commit = verdict.broken_since_commit
        state.evidence = verdict.evidence
        state.flaky_since = verdict.flaky_since
        state.top_signatures = _top_signatures(signatures.get(case_id))
    _fold_durations(timed)
    _save_states(list(states.values()))
    return changes


def _top_signatures(counted: Counter[str] | None) -> list[dict[str, Any]]:
    """Return the most frequent signatures with their counts."""
    if not counted:
        return []
    return [
        {"signature": signature, "count": count}
        for signature, count in counted.most_common(MAX_TOP_SIGNATURES)
    ]


def _load_states(case_ids: list[int]) -> dict[int, Any]:
    """Load these tests' CaseState rows (only the fields folded into)."""
    names = [*KEPT, *FOLDED, "status"]  # status: to tell a changed verdict
    rows = db.select_by_ids(
        f"SELECT {', '.join(names)} FROM {db.table(CaseState)} WHERE case_id {{ids}}",
        case_ids,
    )
    states = {}
    for row in rows:
        values = dict(zip(names, row, strict=True))
        values["quarantined"] = bool(values["quarantined"])
        values["last_run_at"] = db.as_datetime(values["last_run_at"])
        values["recent_durations"] = db.as_json(values["recent_durations"])
        states[values["case_id"]] = StateRow(**values)
    return states


def _save_states(states: list[Any]) -> None:
    """Write the states whole, the accepted quarantine kept as it was."""
    row_of = attrgetter(*STATE_COLUMNS)
    json_columns = db.json_columns(CaseState)
    encoded = [i for i, name in enumerate(STATE_COLUMNS) if name in json_columns]

    def rows() -> Iterator[list[Any]]:
        for state in states:
            row = list(row_of(state))
            for i in encoded:
                row[i] = db.encode_json(row[i])
            yield row

    db.upsert(
        CaseState,
        STATE_COLUMNS,
        rows(),
        key=["case_id"],
        update=db.set_excluded(c for c in STATE_COLUMNS if c not in KEPT),
    )


def _fold_durations(timed: list[tuple[Any, list[TimedRun]]]) -> None:
    """Fold new runs into each test's or suite's duration series.

    Each row (StateRow or SuiteState) gets its series, p50/p95 and regression
    fields updated; no runs leave the series as it was.
    """
    min_regression_ms = float(settings.FLAKEWATCH_MIN_REGRESSION_MS)
    for row, points in timed:
        series = row.recent_durations
        if not isinstance(series, list) or len(series) < durations.HEADER:
            series = row.recent_durations = durations.new_series()
        for upload_id, duration_ms, failed in points:
            durations.add_run(series, failed=failed)
            if duration_ms is not None:
                durations.add_point(
                    series,
                    upload_id,
                    duration_ms,
                    min_regression_ms=min_regression_ms,
                )
        row.duration_p50_ms, row.duration_p95_ms = durations.percentiles(series)
    since_uploads = {
        durations.regressed_since(row.recent_durations) for row, _ in timed
    }
    since_uploads.discard(None)
    commits: dict[int | None, str] = dict(
        Upload.objects.filter(pk__in=since_uploads).values_list("pk", "commit_sha")
    )
    for row, _ in timed:
        since = durations.regressed_since(row.recent_durations)
        row.duration_regressed = since is not None
        row.duration_regressed_since_commit = (
            "" if since is None else commits.get(since, "")
        )


# SuiteState fields a new run rewrites: all but its identity.
SUITE_FOLDED = [
    f.name
    for f in SuiteState._meta.concrete_fields
    if not f.primary_key and f.name not in ("project", "name")
]


def update_suite_states(
    upload: Upload, suite_durations: dict[str, tuple[float, int]], when: datetime
) -> None:
    """Fold one upload's suite totals (name -> (ms, tests)) into SuiteState."""
    if not suite_durations:
        return
    states = {
        s.name: s
        for s in SuiteState.objects.filter(
            project_id=upload.project_id, name__in=list(suite_durations)
        )
    }
    timed: list[tuple[Any, list[TimedRun]]] = []
    for name, (total_ms, tests) in suite_durations.items():
        state = states.get(name)
        if state is None:
            state = states[name] = SuiteState(project_id=upload.project_id, name=name)
        state.runs += 1
        state.tests = tests
        state.total_duration_ms += total_ms
        if state.last_run_at is None or when > state.last_run_at:
            state.last_run_at = when
        timed.append((state, [(upload.pk, total_ms, False)]))
    _fold_durations(timed)
    SuiteState.objects.bulk_create(
        states.values(),
        update_conflicts=True,
        unique_fields=["project", "name"],  # suitestate_uniq
        update_fields=SUITE_FOLDED,
    )
