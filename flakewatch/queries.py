"""Read path of the API: a project's tests, one test's history, its suites.

Every query takes the project and filters by it first (no id is looked up
outside its project), runs a fixed number of statements whatever the number
of rows, and returns frozen dataclasses rather than model instances. A test
the analytics has not judged yet (no ``CaseState`` row) reads as the model's
defaults: status "new", zero counts, null durations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.db.models import BooleanField, Count, F, Field, Q, QuerySet, Sum, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, NullIf

from flakewatch import db
from flakewatch.layers import LAYERS
from flakewatch.models import Case, CaseResult, CaseState, Project, SuiteState, Upload
from flakewatch.outcomes import VERDICTS, Outcome, Status

PAGE_SIZE = 50
HISTORY_LENGTH = 50
SUITE_ORDERS = ("slowest", "name")
# The searched text of a test, exactly as case_search_trgm_idx (migration
# 0005_trigram) indexes it: the four columns joined by a unit separator.
_CASE = f'"{Case._meta.db_table}"'
SEARCH_TEXT = " || E'\\x1f' || ".join(
    f"{_CASE}.{column}" for column in ("suite", "classname", "name", "file")
)
_LIKE_ESCAPES = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list query's results, and whether another follows."""

    results: list[T]
    has_next: bool


@dataclass(frozen=True, slots=True)
class CaseRow:
    """A test and its verdict; durations in milliseconds."""

    id: int
    suite: str
    classname: str
    name: str
    file: str
    team: str | None
    layer: str
    status: str
    flake_score: float
    flake_rate: float
    runs: int
    failures: int
    first_flaky_commit: str | None
    duration_p50: float | None
    duration_p95: float | None
    duration_regressed: bool
    flaky_since: str | None


@dataclass(frozen=True, slots=True)
class Execution:
    """One run of a test, with its upload's commit, job and time."""

    upload_id: int
    commit: str
    branch: str
    build: str
    job: str
    attempt: int
    retry_index: int
    outcome: str  # passed, failed, error or skipped
    duration_ms: float | None
    ran_at: datetime
    message: str | None


@dataclass(frozen=True, slots=True)
class CaseDetail(CaseRow):
    """A test's verdict with its evidence and newest executions first."""

    broken_since_commit: str | None
    duration_regressed_since_commit: str | None
    flake_events: int
    total_duration_ms: float
    last_run_at: datetime | None
    evidence: list[dict[str, Any]]
    top_signatures: list[Any]
    history: list[Execution]


@dataclass(frozen=True, slots=True)
class SuiteRow:
    """A suite's duration figures per run, in milliseconds."""

    name: str
    runs: int
    tests: int
    duration_p50: float | None
    duration_p95: float | None
    duration_regressed: bool
    duration_regressed_since_commit: str | None
    total_duration_ms: float


@dataclass(frozen=True, slots=True)
class LayerFigures:
    """One layer's tests, flaky tests and flake rate (flaky runs / runs)."""

    tests: int
    flaky: int
    flake_rate: float


@dataclass(frozen=True, slots=True)
class ProjectSummary:
    """A project's test counts per verdict, uploads and time lost to flakes."""

    slug: str
    name: str
    default_branch: str
    tests: int
    tests_by_status: dict[str, int]
    uploads: int
    time_lost_to_flakiness_ms: float
    unowned: int
    layers: dict[str, LayerFigures]


# CaseState columns read for a list row, under the names the API uses. A
# commit column holds "" when there is none; the API says null.
_ROW_STATE = {
    "status": "status",
    "flake_score": "flake_score",
    "flake_rate": "flake_rate",
    "runs": "runs",
    "failures": "failures",
    "first_flaky_commit": "first_flaky_commit",
    "duration_p50": "duration_p50_ms",
    "duration_p95": "duration_p95_ms",
    "duration_regressed": "duration_regressed",
    "flaky_since": "flaky_since",
}
_DETAIL_STATE = {
    **_ROW_STATE,
    "broken_since_commit": "broken_since_commit",
    "duration_regressed_since_commit": "duration_regressed_since_commit",
    "flake_events": "flake_events",
    "total_duration_ms": "total_duration_ms",
    "last_run_at": "last_run_at",
    "evidence": "evidence",
    "top_signatures": "top_signatures",
}
_COMMITS = {
    "first_flaky_commit",
    "flaky_since",
    "broken_since_commit",
    "duration_regressed_since_commit",
}
_CASE_COLUMNS = ("id", "suite", "classname", "name", "file", "layer")
# The owning team's slug, through a LEFT JOIN by Team's primary key (an
# alias may not reuse the field's own name; _with_state_defaults renames it).
_TEAM = {"team_slug": F("team__slug")}
# team= value that keeps the tests nobody owns.
UNOWNED = "none"


def _state_columns(columns: dict[str, str]) -> dict[str, Any]:
    # Through the LEFT JOIN a missing CaseState reads as NULL in every column;
    # _with_state_defaults turns those back into the model's defaults.
    return {
        api: NullIf(F(f"state__{column}"), Value(""))
        if api in _COMMITS
        else F(f"state__{column}")
        for api, column in columns.items()
    }


def _with_state_defaults(
    row: dict[str, Any], columns: dict[str, str]
) -> dict[str, Any]:
    row["team"] = row.pop("team_slug")
    if row["status"] is None:  # no CaseState row: status is never NULL in one
        for api, column in columns.items():
            if api not in _COMMITS:
                field = CaseState._meta.get_field(column)
                assert isinstance(field, Field)  # state columns are concrete
                row[api] = field.get_default()
    return row


def case_list(
    project: Project,
    *,
    status: str | None = None,
    team: str | None = None,
    layer: str | None = None,
    q: str | None = None,
    page: int = 1,
) -> Page[CaseRow]:
    """Return one page of ``project``'s tests, worst flake score first.

    ``status`` keeps tests with that verdict ("new" includes tests without a
    verdict yet); ``q`` keeps tests whose suite, classname, name or file
    contains it, ignoring case; ``team`` keeps the tests of the team with
    that slug (``UNOWNED``: the tests nobody owns); ``layer`` those of one
    layer. Ties on the score go by id, so pages are stable. One statement
    (none when nothing can match); read-only.
    """
    if q is not None and "\x00" in q:
        # PostgreSQL text cannot hold NUL: no test can match, so the
        # database need not be asked.
        return Page(results=[], has_next=False)
    cases = Case.objects.filter(project=project)
    # case_team_idx (project, team) and case_layer_idx (project, layer)
    # narrow the project's tests before the sort below.
    if team == UNOWNED:
        cases = cases.filter(team__isnull=True)
    elif team is not None:
        cases = cases.filter(team__slug=team)
    if layer is not None:
        cases = cases.filter(layer=layer)
    if status is None or status == Status.NEW:
        if status == Status.NEW:
            cases = cases.filter(Q(state__isnull=True) | Q(state__status=Status.NEW))
        # A LEFT JOIN sorted on an expression: no index gives this order, so
        # PostgreSQL reads all the project's tests and sorts them (tens of ms
        # for 10k tests); casestate_score_idx would serve only if every test
        # had a CaseState row and missing ones were not listed.
        order = Coalesce(F("state__flake_score"), Value(0.0)).desc()
        tie = "id"
    else:
        # casestate_status_idx (project, status, -flake_score, case) gives
        # this whole order, ties included, so a page reads only its rows; the
        # join to Case is by primary key.
        cases = cases.filter(state__project=project, state__status=status)
        order = F("state__flake_score").desc()
        tie = "state__case"
    if q:
        cases = cases.filter(contains_text(q))
    offset = (page - 1) * PAGE_SIZE
    # One row beyond the page says whether another page follows, without a
    # COUNT over the project.
    rows = list(
        cases.order_by(order, tie).values(
            *_CASE_COLUMNS, **_TEAM, **_state_columns(_ROW_STATE)
        )[offset : offset + PAGE_SIZE + 1]
    )
    results = [
        CaseRow(**_with_state_defaults(row, _ROW_STATE)) for row in rows[:PAGE_SIZE]
    ]
    return Page(results=results, has_next=len(rows) > PAGE_SIZE)


def contains_text(q: str) -> Q:
    """Return a filter for tests whose suite, classname, name or file has ``q``.

    On PostgreSQL, ``SEARCH_TEXT ILIKE '%q%'`` is served by
    case_search_trgm_idx (a bitmap scan of the matching tests, then the
    project filter); the per-column test after it keeps a match from
    spanning two columns. SQLite reads the project's tests.
    """
    per_column = (
        Q(name__icontains=q)
        | Q(classname__icontains=q)
        | Q(suite__icontains=q)
        | Q(file__icontains=q)
    )
    if not db.is_postgresql():
        return per_column
    pattern = "%" + q.translate(_LIKE_ESCAPES) + "%"
    indexed = RawSQL(f"({SEARCH_TEXT}) ILIKE %s", [pattern], BooleanField())
    return Q(indexed) & per_column


def case_detail(project: Project, *, case_id: int) -> CaseDetail | None:
    """Return one test of ``project`` with its newest executions, or None.

    ``history`` holds the last ``HISTORY_LENGTH`` executions, newest upload
    first and, within an upload, the last retry first. Two statements;
    read-only.
    """
    row = (
        Case.objects.filter(project=project, pk=case_id)
        .values(*_CASE_COLUMNS, **_TEAM, **_state_columns(_DETAIL_STATE))
        .first()
    )
    if row is None:
        return None
    return CaseDetail(
        history=_history(case_id),
        **_with_state_defaults(row, _DETAIL_STATE),
    )


def executions(case_id: int, *, branch: str = "") -> QuerySet[CaseResult, Any]:
    """Return a test's executions newest first, as rows with their run's fields.

    A backward range scan of CaseResult's key (case_id, upload_id,
    retry_index), which the caller slices; each row then joins its Upload
    and FailureMessage by primary key. No project filter here: the caller
    found the case in the project, a case's results are only ever written
    from its project's uploads, and a condition on Upload could tempt the
    planner to walk the project's uploads instead.
    """
    results = CaseResult.objects.filter(case_id=case_id)
    if branch:
        results = results.filter(upload__branch=branch)
    return results.order_by("-upload_id", "-retry_index").values(
        "upload_id",
        "retry_index",
        "outcome",
        "duration_ms",
        commit=F("upload__commit_sha"),
        branch=F("upload__branch"),
        build=F("upload__build"),
        build_url=F("upload__build_url"),
        job=F("upload__job"),
        attempt=F("upload__attempt"),
        ran_at=F("upload__run_at"),
        message_text=F("message__message"),
        signature=F("message__signature"),
    )


def _history(case_id: int) -> list[Execution]:
    rows = executions(case_id)[:HISTORY_LENGTH]
    return [
        Execution(
            upload_id=row["upload_id"],
            commit=row["commit"],
            branch=row["branch"],
            build=row["build"],
            job=row["job"],
            attempt=row["attempt"],
            retry_index=row["retry_index"],
            outcome=Outcome(row["outcome"]).name.lower(),
            duration_ms=row["duration_ms"],
            ran_at=row["ran_at"],
            message=row["message_text"],
        )
        for row in rows
    ]


def suite_list(
    project: Project, *, order: str = "slowest", page: int = 1
) -> Page[SuiteRow]:
    """Return one page of ``project``'s suites.

    ``order`` is "slowest" (most CI time in the window first) or "name".
    One statement; read-only.
    """
    if order not in SUITE_ORDERS:
        raise ValueError(f"order must be one of {', '.join(SUITE_ORDERS)}")
    suites = SuiteState.objects.filter(project=project)
    if order == "slowest":
        # suitestate_slowest_idx (project, -total_duration_ms).
        suites = suites.order_by("-total_duration_ms", "id")
    else:
        # suitestate_uniq (project, name); names are unique per project.
        suites = suites.order_by("name", "id")
    offset = (page - 1) * PAGE_SIZE
    rows = list(
        suites.values(
            "name",
            "runs",
            "tests",
            "duration_regressed",
            "total_duration_ms",
            duration_p50=F("duration_p50_ms"),
            duration_p95=F("duration_p95_ms"),
            # An alias may not reuse the column's own name.
            regressed_since=NullIf("duration_regressed_since_commit", Value("")),
        )[offset : offset + PAGE_SIZE + 1]
    )
    return Page(
        results=[
            # django-stubs types values() rows as TypedDicts, whose keys pop() refuses.
            SuiteRow(duration_regressed_since_commit=row.pop("regressed_since"), **row)  # type: ignore[misc]
            for row in rows[:PAGE_SIZE]
        ],
        has_next=len(rows) > PAGE_SIZE,
    )


def project_summary(project: Project) -> ProjectSummary:
    """Return ``project``'s test counts per status and layer, uploads, flaky time.

    ``time_lost_to_flakiness_ms`` sums the test time of uploads that re-ran a
    job because of flaky failures; ``layers`` gives each layer's tests,
    flaky tests and flake rate (flaky runs over runs, 0 without runs);
    ``unowned`` counts the tests no team owns. Three statements; read-only.
    """
    # Reads the project's tests (case_layer_idx finds them) with their
    # CaseState by primary key.
    per_layer = (
        Case.objects.filter(project=project)
        .values_list("layer")
        .annotate(
            tests=Count("pk"),
            flaky=Count("pk", filter=Q(state__status=Status.FLAKY)),
            unowned=Count("pk", filter=Q(team__isnull=True)),
            events=Coalesce(Sum("state__flake_events"), 0),
            runs=Coalesce(Sum("state__runs"), 0),
        )
        .order_by()
    )
    layers: dict[str, LayerFigures] = {
        value: LayerFigures(tests=0, flaky=0, flake_rate=0.0) for value in LAYERS
    }
    tests = unowned = 0
    for layer, n, flaky, layer_unowned, events, runs in per_layer:
        layers[layer] = LayerFigures(
            tests=n, flaky=flaky, flake_rate=events / runs if runs else 0.0
        )
        tests += n
        unowned += layer_unowned
    # casestate_status_idx (project, status, ...): an index-only count.
    judged = dict(
        CaseState.objects.filter(project=project)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    by_status = {value: judged.get(value, 0) for value in VERDICTS}
    by_status[Status.NEW] += tests - sum(judged.values())  # no verdict yet
    # Reads the project's upload rows (upload_project_commit_idx finds them):
    # one row per CI job, small next to the results.
    uploads = Upload.objects.filter(project=project).aggregate(
        count=Count("pk"),
        lost=Coalesce(
            Sum("duration_total_ms", filter=Q(reran_for_flakes=True)), Value(0.0)
        ),
    )
    return ProjectSummary(
        slug=project.slug,
        name=project.name,
        default_branch=project.default_branch,
        tests=tests,
        tests_by_status=by_status,
        uploads=uploads["count"],
        time_lost_to_flakiness_ms=uploads["lost"],
        unowned=unowned,
        layers=layers,
    )
