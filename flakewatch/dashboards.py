"""Read path of the pages: what each dashboard shows, as frozen dataclasses.

Every function takes the project and filters by it first, reads the
per-test state and the daily rollups (``CaseState``, ``SuiteState``,
``DailyCaseStat``, ``CommitFailure``, ``Upload``) and runs a fixed number of
statements whatever the size of the project; raw executions are read only
for the tests a page lists, newest first and bounded. Read-only; the caller
owns nothing (autocommit reads).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

from django.db.models import Count, F, Max, Q, QuerySet, Sum, Value, Window
from django.db.models.functions import Coalesce, RowNumber, TruncDate
from django.utils import timezone

from flakewatch import queries
from flakewatch.analytics import durations
from flakewatch.models import (
    Case,
    CaseResult,
    CaseState,
    CommitFailure,
    DailyCaseStat,
    Project,
    SuiteState,
    Team,
    Upload,
)
from flakewatch.outcomes import VERDICTS, Outcome, Status

WINDOWS = (7, 14, 30, 90)  # days a page may look back
DEFAULT_WINDOW = 30
STRIP_LENGTH = 50  # executions in a history strip
LIST_LENGTH = 25  # rows in each dashboard table
SEARCH_PAGE = 50
HEATMAP_EXECUTIONS = 400  # a test page's heatmap: this many newest executions
UNOWNED = "unowned"  # the team slug of tests without an owner
SEARCH_STATUSES = (*VERDICTS, "slow")


@dataclass(frozen=True, slots=True)
class Filters:
    """What a page is narrowed to; every field comes from the query string."""

    team: str | None = None
    branch: str | None = None
    window_days: int = DEFAULT_WINDOW
    status: str | None = None
    q: str = ""

    def since(self, now: datetime) -> datetime:
        """Return the start of the window that ends at ``now``."""
        return now - timedelta(days=self.window_days)


@dataclass(frozen=True, slots=True)
class ProjectCard:
    """A project in the project list, with its verdict counts."""

    slug: str
    name: str
    tests: int
    flaky: int
    broken: int


@dataclass(frozen=True, slots=True)
class DayRate:
    """One day of the flake-rate trend: builds, and builds with a flake."""

    day: date
    builds: int
    flaky_builds: int


@dataclass(frozen=True, slots=True)
class WeekTotal:
    """Milliseconds of CI time spent in one week (Monday) on re-runs."""

    week: date
    ms: float


@dataclass(frozen=True, slots=True)
class TeamCount:
    """A team's tests in one project, by verdict."""

    slug: str
    name: str
    tests: int
    flaky: int
    broken: int


@dataclass(frozen=True, slots=True)
class SuiteLine:
    """A suite with its per-run duration figures, milliseconds."""

    id: int
    name: str
    runs: int
    tests: int
    duration_p50_ms: float | None
    duration_p95_ms: float | None
    duration_regressed: bool
    total_duration_ms: float


@dataclass(frozen=True, slots=True)
class Overview:
    """The project overview: counts first, then trends and rankings."""

    tests: int
    uploads: int
    by_status: dict[str, int]
    unowned: int
    slower: int
    flake_trend: list[DayRate]
    time_lost: list[WeekTotal]
    time_lost_ms: float
    teams: list[TeamCount]
    slowest_suites: list[SuiteLine]


@dataclass(frozen=True, slots=True)
class StripCell:
    """One execution of a test in a history strip.

    ``kind`` is passed, failed, retried (failed, then passed on a retry in
    the same run) or skipped.
    """

    kind: str
    commit: str
    job: str
    ran_at: datetime


@dataclass(frozen=True, slots=True)
class TestLine:
    """A test in a dashboard table; durations in milliseconds."""

    __test__ = False  # not a pytest test class

    id: int
    suite: str
    classname: str
    name: str
    team: str | None
    status: str
    flake_score: float
    flake_rate: float
    runs: int
    failures: int
    last_flaky_at: datetime | None
    broken_since_commit: str
    duration_p50_ms: float | None
    duration_regressed_since_commit: str
    strip: list[StripCell] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DayFailures:
    """A day of a team's runs and first-attempt failures (DailyCaseStat)."""

    day: date
    runs: int
    failures: int


@dataclass(frozen=True, slots=True)
class TeamDashboard:
    """A team's flaky, broken and slower tests and its daily trend."""

    slug: str
    name: str
    tests: int
    by_status: dict[str, int]
    flaky: list[TestLine]
    broken: list[TestLine]
    slower: list[TestLine]
    trend: list[DayFailures]


@dataclass(frozen=True, slots=True)
class Run:
    """One execution with its upload: the test page's heatmap and evidence."""

    upload_id: int
    commit: str
    branch: str
    build: str
    build_url: str
    job: str
    attempt: int
    retry_index: int
    outcome: str
    duration_ms: float | None
    ran_at: datetime
    message: str | None
    signature: str | None


@dataclass(frozen=True, slots=True)
class Evidence:
    """One observation behind a verdict, linked to its build when known."""

    kind: str
    commit: str
    job: str
    ran_at: datetime | None
    failed_runs: int
    passed_runs: int
    build: str
    build_url: str
    message: str


@dataclass(frozen=True, slots=True)
class Signature:
    """A failure signature, how often it was seen, and example messages."""

    signature: str
    count: int
    examples: list[str]


@dataclass(frozen=True, slots=True)
class TestPage:
    """Everything the test page shows about one test."""

    __test__ = False

    line: TestLine
    file: str
    team_name: str | None
    quarantined: bool
    flake_events: int
    first_flaky_commit: str
    duration_p95_ms: float | None
    duration_regressed: bool
    total_duration_ms: float
    last_run_at: datetime | None
    evidence: list[Evidence]
    signatures: list[Signature]
    runs: list[Run]  # newest first
    durations: list[tuple[str, float]]  # (commit, ms), oldest first
    suite_id: int | None


@dataclass(frozen=True, slots=True)
class SuitePage:
    """A suite's figures, its duration series and its slowest tests."""

    suite: SuiteLine
    regressed_since_commit: str
    durations: list[tuple[str, float]]
    slowest: list[TestLine]


@dataclass(frozen=True, slots=True)
class Ownership:
    """Who owns the project's tests, and the unowned ones most-run first."""

    teams: list[TeamCount]
    unowned_count: int
    unowned: list[TestLine]


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of a test search, worst flake score first."""

    results: list[TestLine]
    has_next: bool


# --- Shared pieces --------------------------------------------------------------

_LINE_FIELDS = {
    "status": F("state__status"),
    "flake_score": F("state__flake_score"),
    "flake_rate": F("state__flake_rate"),
    "runs": F("state__runs"),
    "failures": F("state__failures"),
    "evidence": F("state__evidence"),
    "broken_since_commit": F("state__broken_since_commit"),
    "duration_p50_ms": F("state__duration_p50_ms"),
    "duration_regressed_since_commit": F("state__duration_regressed_since_commit"),
    "team_slug": F("team__slug"),
}


def _line(row: dict[str, Any], strip: list[StripCell] | None = None) -> TestLine:
    """Build a TestLine from a ``_lines`` row (a test without state is new)."""
    evidence = row["evidence"] or []
    last = max((e.get("ran_at", "") for e in evidence), default="")
    return TestLine(
        id=row["id"],
        suite=row["suite"],
        classname=row["classname"],
        name=row["name"],
        team=row["team_slug"],
        status=row["status"] or Status.NEW.value,
        flake_score=row["flake_score"] or 0.0,
        flake_rate=row["flake_rate"] or 0.0,
        runs=row["runs"] or 0,
        failures=row["failures"] or 0,
        last_flaky_at=datetime.fromisoformat(last) if last else None,
        broken_since_commit=row["broken_since_commit"] or "",
        duration_p50_ms=row["duration_p50_ms"],
        duration_regressed_since_commit=row["duration_regressed_since_commit"] or "",
        strip=strip or [],
    )


def _lines(cases: QuerySet[Case], *, strips: bool = False) -> list[TestLine]:
    """Evaluate ``cases`` (already ordered and sliced) as TestLines.

    One statement, and one more for the strips of all the rows together.
    """
    rows: list[dict[str, Any]] = [
        dict(row)
        for row in cases.values("id", "suite", "classname", "name", **_LINE_FIELDS)
    ]
    by_case = history_strips([row["id"] for row in rows]) if strips else {}
    return [_line(row, by_case.get(row["id"])) for row in rows]


def _team_cases(project: Project, team: str | None) -> QuerySet[Case]:
    cases = Case.objects.filter(project=project)
    if team == UNOWNED:
        return cases.filter(team__isnull=True)
    if team:
        return cases.filter(team__slug=team)
    return cases


def _status_counts(cases: QuerySet[Case]) -> dict[str, int]:
    """Count ``cases`` per verdict; tests without a state count as new."""
    rows = cases.values_list("state__status").annotate(n=Count("id")).order_by()
    counts = dict.fromkeys(VERDICTS, 0)
    for status, n in rows:
        counts[status or Status.NEW.value] += n
    return counts


def history_strips(case_ids: list[int]) -> dict[int, list[StripCell]]:
    """Return the last ``STRIP_LENGTH`` runs of each test, oldest first.

    A run is one upload of the test: retried when a failure was followed by
    a pass within it. One statement over the primary key (case_id,
    upload_id, retry_index) of each listed test, newest first, stopped per
    test by a row number; it reads at most a few rows per run.
    """
    if not case_ids:
        return {}
    # Retries are rare, so 3 rows per run bounds what one test reads.
    limit = STRIP_LENGTH * 3
    rows = (
        CaseResult.objects.filter(case_id__in=case_ids)
        .annotate(
            n=Window(
                RowNumber(),
                partition_by=[F("case_id")],
                order_by=[F("upload_id").desc(), F("retry_index").desc()],
            )
        )
        .filter(n__lte=limit)
        .values(
            "case_id",
            "upload_id",
            "retry_index",
            "outcome",
            commit=F("upload__commit_sha"),
            job=F("upload__job"),
            ran_at=F("upload__run_at"),
        )
        .order_by("case_id", "upload_id", "retry_index")
    )
    runs: dict[int, dict[int, list[dict[str, Any]]]] = defaultdict(dict)
    for row in rows:
        runs[row["case_id"]].setdefault(row["upload_id"], []).append(row)
    return {
        case_id: [_strip_cell(results) for results in uploads.values()][-STRIP_LENGTH:]
        for case_id, uploads in runs.items()
    }


def _strip_cell(results: list[dict[str, Any]]) -> StripCell:
    outcomes = [Outcome(r["outcome"]) for r in results]
    final = outcomes[-1]
    if final.is_failure:
        kind = "failed"
    elif any(o.is_failure for o in outcomes):
        kind = "retried"
    elif final == Outcome.SKIPPED:
        kind = "skipped"
    else:
        kind = "passed"
    last = results[-1]
    return StripCell(kind, last["commit"], last["job"], last["ran_at"])


# --- Pages ----------------------------------------------------------------------


def project_cards() -> list[ProjectCard]:
    """Return every project with its test and verdict counts, by name.

    Two statements.
    """
    projects = list(Project.objects.order_by("name", "id").values("id", "slug", "name"))
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for project_id, status, n in (
        Case.objects.values_list("project_id", "state__status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        counts[project_id][status or Status.NEW.value] += n
    return [
        ProjectCard(
            slug=p["slug"],
            name=p["name"],
            tests=sum(counts[p["id"]].values()),
            flaky=counts[p["id"]][Status.FLAKY.value],
            broken=counts[p["id"]][Status.BROKEN.value],
        )
        for p in projects
    ]


def overview(
    project: Project, filters: Filters, *, now: datetime | None = None
) -> Overview:
    """Return the project overview for the window of ``filters``.

    The flake-rate trend counts per day the builds that ran (Upload) and
    those with a failure of a test now judged flaky (CommitFailure, one row
    per failing commit and job); time lost sums CI re-runs caused by flaky
    failures per week. ``filters.branch`` narrows both; ``filters.team``
    the counts. Nine statements.
    """
    since = filters.since(now or timezone.now())
    cases = _team_cases(project, filters.team)
    by_status = _status_counts(cases)
    unowned = Case.objects.filter(project=project, team__isnull=True).count()
    slower = CaseState.objects.filter(
        project=project, duration_regressed=True, case__in=cases
    ).count()
    uploads = Upload.objects.filter(project=project, run_at__gte=since)
    if filters.branch:
        uploads = uploads.filter(branch=filters.branch)
    builds = dict(
        uploads.annotate(day=TruncDate("run_at"))
        .values_list("day")
        .annotate(n=Count("build", distinct=True))
        .order_by()
    )
    failures = CommitFailure.objects.filter(
        project=project, ran_at__gte=since, case__state__status=Status.FLAKY
    )
    if filters.branch:
        failures = failures.filter(first_failed_upload__branch=filters.branch)
    flaky_builds = dict(
        failures.annotate(day=TruncDate("ran_at"))
        .values_list("day")
        .annotate(n=Count("first_failed_upload__build", distinct=True))
        .order_by()
    )
    trend = [
        DayRate(day, builds[day], min(flaky_builds.get(day, 0), builds[day]))
        for day in sorted(builds)
    ]
    lost = _time_lost(uploads)
    return Overview(
        tests=sum(by_status.values()),
        uploads=Upload.objects.filter(project=project).count(),
        by_status=by_status,
        unowned=unowned,
        slower=slower,
        flake_trend=trend,
        time_lost=lost,
        time_lost_ms=sum(w.ms for w in lost),
        teams=team_counts(project),
        slowest_suites=_suites(project)[:10],
    )


def _time_lost(uploads: QuerySet[Upload]) -> list[WeekTotal]:
    """Sum re-run time per ISO week (Monday), in Python: SQLite has no week."""
    weeks: dict[date, float] = defaultdict(float)
    for day, ms in (
        uploads.filter(reran_for_flakes=True)
        .annotate(day=TruncDate("run_at"))
        .values_list("day")
        .annotate(ms=Sum("duration_total_ms"))
        .order_by()
    ):
        weeks[day - timedelta(days=day.weekday())] += ms or 0.0
    return [WeekTotal(week, weeks[week]) for week in sorted(weeks)]


def team_counts(project: Project) -> list[TeamCount]:
    """Return the project's teams with tests, most flaky tests first.

    Tests without an owner come as the team ``UNOWNED``. One statement.
    """
    rows = (
        Case.objects.filter(project=project)
        .values_list("team__slug", "team__name")
        .annotate(
            tests=Count("id"),
            flaky=Count("id", filter=Q(state__status=Status.FLAKY)),
            broken=Count("id", filter=Q(state__status=Status.BROKEN)),
        )
        .order_by()
    )
    teams = [
        TeamCount(slug or UNOWNED, name or "No owner", tests, flaky, broken)
        for slug, name, tests, flaky, broken in rows
    ]
    return sorted(teams, key=lambda t: (-t.flaky, -t.broken, t.slug == UNOWNED, t.name))


def _suites(project: Project) -> list[SuiteLine]:
    # suitestate_slowest_idx (project, -total_duration_ms).
    rows = SuiteState.objects.filter(project=project).order_by(
        "-total_duration_ms", "id"
    )[:50]
    return [
        SuiteLine(
            id=s.pk,
            name=s.name,
            runs=s.runs,
            tests=s.tests,
            duration_p50_ms=s.duration_p50_ms,
            duration_p95_ms=s.duration_p95_ms,
            duration_regressed=s.duration_regressed,
            total_duration_ms=s.total_duration_ms,
        )
        for s in rows
    ]


def team(project: Project, slug: str) -> tuple[str, str] | None:
    """Return the (slug, name) of a team with tests in ``project``, or None.

    ``UNOWNED`` names the tests without an owner. One statement.
    """
    if slug == UNOWNED:
        return UNOWNED, "No owner"
    row = (
        Team.objects.filter(slug=slug, cases__project=project)
        .values_list("slug", "name")
        .first()
    )
    return (row[0], row[1]) if row else None


def team_dashboard(
    project: Project,
    team_slug: str,
    team_name: str,
    filters: Filters,
    *,
    now: datetime | None = None,
) -> TeamDashboard:
    """Return a team's dashboard: flaky, broken, slower tests and its trend.

    Each table holds at most ``LIST_LENGTH`` tests, the flaky ones with
    their history strips. Six statements whatever the team's size.
    """
    since = filters.since(now or timezone.now())
    cases = _team_cases(project, team_slug)
    flaky = _lines(
        cases.filter(state__project=project, state__status=Status.FLAKY).order_by(
            "-state__flake_score", "id"
        )[:LIST_LENGTH],
        strips=True,
    )
    broken = _lines(
        cases.filter(state__project=project, state__status=Status.BROKEN).order_by(
            "-state__last_run_at", "id"
        )[:LIST_LENGTH]
    )
    slower = _lines(
        cases.filter(state__project=project, state__duration_regressed=True).order_by(
            "-state__duration_p50_ms", "id"
        )[:LIST_LENGTH]
    )
    stats = DailyCaseStat.objects.filter(case__in=cases, day__gte=since.date())
    trend = [
        DayFailures(day, runs or 0, failures or 0)
        for day, runs, failures in stats.values_list("day")
        .annotate(runs=Sum("runs"), failures=Sum("failures"))
        .order_by("day")
    ]
    by_status = _status_counts(cases)
    return TeamDashboard(
        slug=team_slug,
        name=team_name,
        tests=sum(by_status.values()),
        by_status=by_status,
        flaky=flaky,
        broken=broken,
        slower=slower,
        trend=trend,
    )


def test_page(
    project: Project, case_id: int, filters: Filters | None = None
) -> TestPage | None:
    """Return one test of ``project`` with its runs and evidence, or None.

    ``runs`` holds the newest ``HEATMAP_EXECUTIONS`` executions (of
    ``filters.branch`` when set); evidence is linked to the build URL of the
    upload that failed. Five statements.
    """
    # The stubs' TypedDict for values() knows no F() names: typed by hand.
    found = (
        Case.objects.filter(project=project, pk=case_id)
        .values(
            "id",
            "suite",
            "classname",
            "name",
            "file",
            team_name=F("team__name"),
            quarantined=F("state__quarantined"),
            flake_events=F("state__flake_events"),
            first_flaky_commit=F("state__first_flaky_commit"),
            duration_p95_ms=F("state__duration_p95_ms"),
            duration_regressed=F("state__duration_regressed"),
            total_duration_ms=F("state__total_duration_ms"),
            last_run_at=F("state__last_run_at"),
            top_signatures=F("state__top_signatures"),
            recent_durations=F("state__recent_durations"),
            **_LINE_FIELDS,
        )
        .first()
    )
    row = cast("dict[str, Any] | None", found)
    if row is None:
        return None
    runs = _runs(case_id, filters.branch if filters else None)
    evidence = _evidence(project, row["evidence"] or [])
    suite_id = (
        SuiteState.objects.filter(project=project, name=row["suite"])
        .values_list("id", flat=True)
        .first()
    )
    return TestPage(
        line=_line(row),
        file=row["file"],
        team_name=row["team_name"],
        quarantined=bool(row["quarantined"]),
        flake_events=row["flake_events"] or 0,
        first_flaky_commit=row["first_flaky_commit"] or "",
        duration_p95_ms=row["duration_p95_ms"],
        duration_regressed=bool(row["duration_regressed"]),
        total_duration_ms=row["total_duration_ms"] or 0.0,
        last_run_at=row["last_run_at"],
        evidence=evidence,
        signatures=_signatures(row["top_signatures"] or [], runs),
        runs=runs,
        durations=_durations(row["recent_durations"] or []),
        suite_id=suite_id,
    )


def _runs(case_id: int, branch: str | None) -> list[Run]:
    """Return the test's newest runs (queries.executions) for its page."""
    rows = queries.executions(case_id, branch=branch or "")[:HEATMAP_EXECUTIONS]
    runs = []
    for row in rows:
        outcome = Outcome(row.pop("outcome")).name.lower()
        message = row.pop("message_text")
        runs.append(Run(**row, outcome=outcome, message=message))
    return runs


def _evidence(project: Project, entries: list[dict[str, Any]]) -> list[Evidence]:
    """Link each evidence entry, newest first, to its upload's build URL."""
    ids = [e["upload_id"] for e in entries if isinstance(e.get("upload_id"), int)]
    urls = dict(
        Upload.objects.filter(project=project, pk__in=ids).values_list(
            "pk", "build_url"
        )
        if ids
        else []
    )
    return [
        Evidence(
            kind=str(e.get("kind", "")),
            commit=str(e.get("commit", "")),
            job=str(e.get("job", "")),
            ran_at=_datetime(e.get("ran_at")),
            failed_runs=int(e.get("failed_runs", 0)),
            passed_runs=int(e.get("passed_runs", 0)),
            build=str(e.get("build", "")),
            build_url=urls.get(e.get("upload_id"), ""),
            message=str(e.get("message") or ""),
        )
        for e in reversed(entries)
    ]


def _signatures(top: list[dict[str, Any]], runs: list[Run]) -> list[Signature]:
    """Attach up to three of this test's own messages to each signature."""
    examples: dict[str, list[str]] = defaultdict(list)
    for run in runs:
        if run.signature and run.message:
            seen = examples[run.signature]
            if run.message not in seen and len(seen) < 3:
                seen.append(run.message)
    return [
        Signature(
            str(s.get("signature", "")),
            int(s.get("count", 0)),
            examples.get(str(s.get("signature", "")), []),
        )
        for s in top
    ]


def _datetime(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _durations(series: list[Any]) -> list[tuple[str, float]]:
    """Return a duration series' points as (commit, ms), oldest first.

    The series is ``analytics.durations``' flat state: a header, then
    (upload_id, ms) pairs. One statement finds the uploads' commits.
    """
    points = series[durations.HEADER :]
    uploads = [int(u) for u in points[0::2]]
    commits = dict(
        Upload.objects.filter(pk__in=uploads).values_list("pk", "commit_sha")
    )
    return [
        (commits.get(upload, ""), float(ms))
        for upload, ms in zip(uploads, points[1::2], strict=True)
    ]


def suite_page(project: Project, suite_id: int) -> SuitePage | None:
    """Return a suite of ``project`` with its slowest tests, or None.

    Three statements; the second reads the project's tests of that suite.
    """
    suite = SuiteState.objects.filter(project=project, pk=suite_id).first()
    if suite is None:
        return None
    slowest = _lines(
        Case.objects.filter(project=project, suite=suite.name)
        .filter(state__duration_p50_ms__isnull=False)
        .order_by(F("state__duration_p50_ms").desc(), "id")[:LIST_LENGTH]
    )
    return SuitePage(
        suite=SuiteLine(
            id=suite.pk,
            name=suite.name,
            runs=suite.runs,
            tests=suite.tests,
            duration_p50_ms=suite.duration_p50_ms,
            duration_p95_ms=suite.duration_p95_ms,
            duration_regressed=suite.duration_regressed,
            total_duration_ms=suite.total_duration_ms,
        ),
        regressed_since_commit=suite.duration_regressed_since_commit,
        durations=_durations(suite.recent_durations or []),
        slowest=slowest,
    )


def ownership(project: Project) -> Ownership:
    """Return the tests per team and the unowned tests, most-run first.

    Three statements.
    """
    unowned = Case.objects.filter(project=project, team__isnull=True)
    return Ownership(
        teams=team_counts(project),
        unowned_count=unowned.count(),
        unowned=_lines(
            unowned.order_by(Coalesce("state__runs", Value(0)).desc(), "id")[
                :SEARCH_PAGE
            ]
        ),
    )


def search(project: Project, filters: Filters, *, page: int = 1) -> SearchPage:
    """Return a page of ``project``'s tests matching ``filters``.

    ``filters.q`` matches a test's suite, classname, name or file, ignoring
    case, as the API's ``q=`` does (``queries.contains_text``: on PostgreSQL
    the trigram index case_search_trgm_idx serves it); ``status`` "slow" keeps
    tests whose duration regressed. One statement.
    """
    cases = _team_cases(project, filters.team)
    if filters.q:
        cases = cases.filter(queries.contains_text(filters.q))
    if filters.status == "slow":
        cases = cases.filter(state__duration_regressed=True)
    elif filters.status == Status.NEW:
        cases = cases.filter(Q(state__isnull=True) | Q(state__status=Status.NEW))
    elif filters.status:
        cases = cases.filter(state__status=filters.status)
    offset = (page - 1) * SEARCH_PAGE
    lines = _lines(
        cases.order_by(Coalesce("state__flake_score", Value(0.0)).desc(), "id")[
            offset : offset + SEARCH_PAGE + 1
        ]
    )
    return SearchPage(results=lines[:SEARCH_PAGE], has_next=len(lines) > SEARCH_PAGE)


def branches(project: Project) -> list[str]:
    """Return the project's branches, most recently run first (at most 30).

    One statement over the project's uploads (one row per CI job).
    """
    return list(
        Upload.objects.filter(project=project)
        .values_list("branch", flat=True)
        .annotate(last=Max("run_at"))
        .order_by("-last")[:30]
    )
