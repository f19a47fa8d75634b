"""Read path of the weekly digest: one team's week, as frozen dataclasses.

Reads state and rollups only (``CaseState``, ``SuiteState``, the analysis's
``StatusChange`` log, ``CommitFailure`` and the uploads' totals), never raw
executions. A team spans projects: each query filters by the team's tests
first and reports each item with its project. A fixed number of statements
whatever the team's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from flakewatch.models import (
    Case,
    CommitFailure,
    Project,
    StatusChange,
    SuiteState,
    Team,
    Upload,
)
from flakewatch.outcomes import Status

# Items listed per section; the section says how many more there are.
SECTION_LIMIT = 10


@dataclass(frozen=True, slots=True)
class DigestTest:
    """A test as the digest lists it; durations in milliseconds."""

    id: int
    project: str
    suite: str
    classname: str
    name: str
    status: str
    flake_rate: float
    runs: int
    impact: float  # flake rate x runs: the failing runs to expect
    since_commit: str
    since: datetime | None
    duration_p50_ms: float | None

    @property
    def display_name(self) -> str:
        """Return ``classname::name``, or the name alone."""
        return f"{self.classname}::{self.name}" if self.classname else self.name


@dataclass(frozen=True, slots=True)
class DigestSuite:
    """A suite whose per-run time stepped up."""

    project: str
    name: str
    duration_p50_ms: float | None
    since_commit: str


@dataclass(frozen=True, slots=True)
class Section:
    """A digest section: its first SECTION_LIMIT items and the full count."""

    items: list[DigestTest]
    total: int

    @property
    def more(self) -> int:
        """Return how many items the section leaves out."""
        return self.total - len(self.items)


@dataclass(frozen=True, slots=True)
class TeamWeek:
    """What happened to a team's tests in the week [start, end)."""

    team: str
    team_name: str
    projects: list[str]
    start: datetime
    end: datetime
    new_flaky: Section
    still_flaky: Section
    broken: Section
    fixed: Section
    slower_tests: Section
    slower_suites: list[DigestSuite]
    unowned: dict[str, int]  # project slug -> tests nobody owns
    time_lost_ms: float
    time_lost_previous_ms: float

    @property
    def is_quiet(self) -> bool:
        """Return whether there is nothing to report at all."""
        sections = (
            self.new_flaky,
            self.still_flaky,
            self.broken,
            self.fixed,
            self.slower_tests,
        )
        return (
            not any(s.total for s in sections)
            and not self.slower_suites
            and not self.time_lost_ms
        )


_TEST_FIELDS = {
    "project_slug": F("project__slug"),
    "cur_status": Coalesce(F("state__status"), Value(Status.NEW.value)),
    "flake_rate": Coalesce(F("state__flake_rate"), Value(0.0)),
    "state_runs": Coalesce(F("state__runs"), Value(0)),
    "p50": F("state__duration_p50_ms"),
}


def _tests(cases: list[dict[str, Any]], since_commit: str = "") -> list[DigestTest]:
    return [
        DigestTest(
            id=row["id"],
            project=row["project_slug"],
            suite=row["suite"],
            classname=row["classname"],
            name=row["name"],
            status=row["cur_status"],
            flake_rate=row["flake_rate"],
            runs=row["state_runs"],
            impact=row["flake_rate"] * row["state_runs"],
            since_commit=row.get("since_commit") or since_commit,
            since=row.get("since"),
            duration_p50_ms=row["p50"],
        )
        for row in cases
    ]


def _section(cases: list[dict[str, Any]]) -> Section:
    return Section(items=_tests(cases[:SECTION_LIMIT]), total=len(cases))


def team_week(team: Team, *, start: datetime, end: datetime) -> TeamWeek:
    """Return ``team``'s digest figures for the week [start, end), UTC-aware.

    "New flaky" and "fixed" are verdict changes recorded in the week whose
    verdict still holds; "still flaky" are the other flaky tests, ranked by
    impact (flake rate x runs). Time lost is the test time of CI re-runs in
    the week whose earlier attempt failed on one of the team's tests and
    only on tests that then passed. Read-only.
    """
    owned = Case.objects.filter(team=team)  # Case.team's index
    projects = list(
        Project.objects.filter(Exists(owned.filter(project=OuterRef("pk"))))
        .order_by("slug")
        .values_list("pk", "slug")
    )
    project_ids = [pk for pk, _ in projects]
    columns = ("id", "suite", "classname", "name")

    def changed(kind: str, still: str) -> list[dict[str, Any]]:
        # statuschange_week_idx (project, changed_at); the newest change of a
        # test in the week, if its verdict still says so.
        week = StatusChange.objects.filter(
            project_id__in=project_ids,
            case=OuterRef("pk"),
            kind=kind,
            changed_at__gte=start,
            changed_at__lt=end,
        ).order_by("-changed_at")
        return list(
            owned.filter(state__status=still)
            .annotate(since=Subquery(week.values("changed_at")[:1]))
            .filter(since__isnull=False)
            .order_by("-since", "id")
            .values(*columns, **_TEST_FIELDS, since=F("since"))
        )

    new_flaky = changed(StatusChange.Kind.NEW_FLAKY, Status.FLAKY)
    fixed = changed(StatusChange.Kind.FIXED, Status.FIXED)
    new_ids = {row["id"] for row in new_flaky}
    still_flaky = [
        row
        for row in owned.filter(state__status=Status.FLAKY)
        .annotate(score=F("state__flake_rate") * F("state__runs"))
        .order_by("-score", "id")
        .values(*columns, **_TEST_FIELDS)
        if row["id"] not in new_ids
    ]
    broke_at = StatusChange.objects.filter(
        case=OuterRef("pk"), kind=StatusChange.Kind.BROKEN
    ).order_by("-changed_at")
    broken = list(
        owned.filter(state__status=Status.BROKEN)
        .annotate(since=Subquery(broke_at.values("changed_at")[:1]))
        .order_by(F("since").asc(nulls_first=True), "id")
        .values(
            *columns,
            **_TEST_FIELDS,
            since=F("since"),
            since_commit=F("state__broken_since_commit"),
        )
    )
    slower = list(
        owned.filter(state__duration_regressed=True)
        .order_by("-state__duration_p50_ms", "id")
        .values(
            *columns,
            **_TEST_FIELDS,
            since_commit=F("state__duration_regressed_since_commit"),
        )
    )
    suites = [
        DigestSuite(
            project=row["project__slug"],
            name=row["name"],
            duration_p50_ms=row["duration_p50_ms"],
            since_commit=row["duration_regressed_since_commit"],
        )
        for row in SuiteState.objects.filter(
            Exists(owned.filter(project=OuterRef("project"), suite=OuterRef("name"))),
            project_id__in=project_ids,
            duration_regressed=True,
        )
        .order_by("project__slug", "name")
        .values(
            "project__slug",
            "name",
            "duration_p50_ms",
            "duration_regressed_since_commit",
        )[:SECTION_LIMIT]
    ]
    unowned = dict(
        Case.objects.filter(project_id__in=project_ids, team__isnull=True)
        .values_list("project__slug")
        .annotate(n=Count("pk"))
        .order_by()
    )
    lost = _time_lost(team, project_ids, start, end)
    return TeamWeek(
        team=team.slug,
        team_name=team.name,
        projects=[slug for _, slug in projects],
        start=start,
        end=end,
        new_flaky=_section(new_flaky),
        still_flaky=_section(still_flaky),
        broken=_section(broken),
        fixed=_section(fixed),
        slower_tests=_section(slower),
        slower_suites=suites,
        unowned=unowned,
        time_lost_ms=lost["this"],
        time_lost_previous_ms=lost["previous"],
    )


def _time_lost(
    team: Team, project_ids: list[int], start: datetime, end: datetime
) -> dict[str, float]:
    """Sum the re-run time caused by the team's tests, this week and the last."""
    previous = start - (end - start)
    # The earlier attempt's failures are the (commit, job) failure rows of
    # the re-run: commitfailure_commit_idx (project, commit_sha, job).
    team_failed = CommitFailure.objects.filter(
        project=OuterRef("project"),
        commit_sha=OuterRef("commit_sha"),
        job=OuterRef("job"),
        case__team=team,
    )
    week = Q(run_at__gte=start, run_at__lt=end)
    last_week = Q(run_at__gte=previous, run_at__lt=start)
    return Upload.objects.filter(
        Exists(team_failed),
        project_id__in=project_ids,
        reran_for_flakes=True,
        run_at__gte=previous,
        run_at__lt=end,
    ).aggregate(
        this=Coalesce(Sum("duration_total_ms", filter=week), Value(0.0)),
        previous=Coalesce(Sum("duration_total_ms", filter=last_week), Value(0.0)),
    )
