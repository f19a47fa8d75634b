"""Read API: a project's tests, one test's history, its suites, a summary.

Views check the token's project and the query string, call one function of
``flakewatch.queries`` and render its dataclasses through the serializers
below, which exist to fix the JSON shape and to document it in the OpenAPI
schema at /api/v1/openapi.json; they hold no logic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from flakewatch import quarantine, queries
from flakewatch.errors import BadRequest, ErrorSerializer
from flakewatch.layers import LAYERS
from flakewatch.models import ApiToken, Project
from flakewatch.outcomes import VERDICTS, Outcome

# Far beyond any project (50 million tests), and it keeps OFFSET in range.
MAX_PAGE = 1_000_000
PAGE_DIGITS = re.compile(r"[0-9]{1,7}")
OUTCOMES = [o.name.lower() for o in Outcome]


# --- Response shapes ----------------------------------------------------------


def _commit(help_text: str) -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text=help_text)


def _ms(help_text: str) -> serializers.FloatField:
    return serializers.FloatField(allow_null=True, help_text=help_text)


class QuarantineFieldSerializer(serializers.Serializer[dict[str, Any]]):
    """A test's suggested or accepted quarantine, beside its verdict."""

    state = serializers.ChoiceField(choices=["suggested", "accepted"])
    verdict = serializers.ChoiceField(
        choices=VERDICTS, help_text="The verdict under the quarantine."
    )
    owner = serializers.CharField()
    since = serializers.DateTimeField()
    expires = serializers.DateTimeField(allow_null=True)
    expired = serializers.BooleanField()
    ready_to_release = serializers.BooleanField()


class CaseSerializer(serializers.Serializer[queries.CaseRow]):
    """A test of the list: its identity, verdict and figures."""

    id = serializers.IntegerField(help_text="The test's id within flakewatch.")
    suite = serializers.CharField(help_text="As reported; may be empty.")
    classname = serializers.CharField(help_text="As reported; may be empty.")
    name = serializers.CharField(help_text="As reported.")
    file = serializers.CharField(help_text="As reported; may be empty.")
    team = serializers.CharField(
        allow_null=True,
        help_text="The owning team's slug; null when no ownership rule owns it.",
    )
    layer = serializers.ChoiceField(
        choices=list(LAYERS),
        help_text="Its layer of the test pyramid, from the project's layer rules.",
    )
    status = serializers.ChoiceField(
        choices=VERDICTS,
        help_text="The verdict; 'new' until the analytics has judged the test.",
    )
    flake_score = serializers.FloatField(help_text="Higher is flakier; 0 if none.")
    flake_rate = serializers.FloatField(help_text="Share of runs that flaked, 0..1.")
    runs = serializers.IntegerField(help_text="Runs in the analysis window.")
    failures = serializers.IntegerField(help_text="Failed runs in the window.")
    first_flaky_commit = _commit("The first commit it flaked on, if any.")
    duration_p50 = _ms("Median duration, milliseconds; null if never timed.")
    duration_p95 = _ms("95th percentile duration, milliseconds.")
    duration_regressed = serializers.BooleanField(
        help_text="Whether its duration rose significantly."
    )
    flaky_since = _commit(
        "With first_flaky_commit, the range its flakiness began in: after this"
        " commit and at or before first_flaky_commit, with 95% probability at"
        " its flake rate (the commit before enough clean runs that the flake"
        " would have shown). Null unless flaky."
    )
    quarantine = serializers.SerializerMethodField(
        help_text="Null, or its suggested or accepted quarantine."
    )

    @extend_schema_field(QuarantineFieldSerializer(allow_null=True))
    def get_quarantine(self, case: queries.CaseRow) -> dict[str, Any] | None:
        """Return the test's quarantine, read once per page by the view."""
        found: dict[int, dict[str, Any]] = self.context.get("quarantine", {})
        return found.get(case.id)


class ExecutionSerializer(serializers.Serializer[queries.Execution]):
    """One run of a test in its history."""

    upload_id = serializers.IntegerField()
    commit = serializers.CharField()
    branch = serializers.CharField()
    build = serializers.CharField()
    job = serializers.CharField()
    attempt = serializers.IntegerField(help_text="The CI re-run counter of the job.")
    retry_index = serializers.IntegerField(help_text="The run within one upload.")
    outcome = serializers.ChoiceField(choices=OUTCOMES)
    duration_ms = _ms("Null when the report gave no usable time.")
    ran_at = serializers.DateTimeField(
        help_text="When the CI job started, or else when its upload arrived."
    )
    message = serializers.CharField(
        allow_null=True, help_text="The failure, error or skip message as reported."
    )


@extend_schema_field(
    {"type": "array", "items": {}, "description": "As stored by the analytics."}
)
class PassThroughListField(serializers.JSONField):
    """A stored JSON list passed through as it is, documented as an array."""


class CaseDetailSerializer(CaseSerializer):
    """One test: the list's figures, its evidence and its history."""

    broken_since_commit = _commit("The commit since which it fails, if broken.")
    duration_regressed_since_commit = _commit("The commit its slowdown began at.")
    flake_events = serializers.IntegerField(help_text="Flaky runs in the window.")
    total_duration_ms = serializers.FloatField(help_text="CI time in the window.")
    last_run_at = serializers.DateTimeField(allow_null=True)
    evidence = serializers.ListField(
        child=serializers.DictField(),
        help_text="The observations behind the verdict, as stored.",
    )
    top_signatures = PassThroughListField(
        help_text="Its most frequent failure signatures, as stored."
    )
    history = ExecutionSerializer(
        many=True, help_text="The last 50 executions, newest first."
    )


class CasePageSerializer(serializers.Serializer[Mapping[str, object]]):
    """A page of tests and the next page's URL."""

    results = CaseSerializer(many=True)
    next = serializers.URLField(
        allow_null=True, help_text="The next page's absolute URL; null on the last."
    )


class SuiteSerializer(serializers.Serializer[queries.SuiteRow]):
    """A suite's run counts and durations."""

    name = serializers.CharField()
    runs = serializers.IntegerField()
    tests = serializers.IntegerField()
    duration_p50 = _ms("Median duration of a run of the suite, milliseconds.")
    duration_p95 = _ms("95th percentile duration, milliseconds.")
    duration_regressed = serializers.BooleanField()
    duration_regressed_since_commit = _commit("The commit its slowdown began at.")
    total_duration_ms = serializers.FloatField(help_text="CI time in the window.")


class SuitePageSerializer(serializers.Serializer[Mapping[str, object]]):
    """A page of suites and the next page's URL."""

    results = SuiteSerializer(many=True)
    next = serializers.URLField(allow_null=True)


class TestsByStatusSerializer(serializers.Serializer[dict[str, int]]):
    """The number of tests of each verdict."""

    # DRF declares get_fields with an unparameterised Field: any field goes.
    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        """Return one integer field per verdict, so the schema lists them all."""
        return {status: serializers.IntegerField() for status in VERDICTS}


class LayerFiguresSerializer(serializers.Serializer[dict[str, float]]):
    """One layer's figures: its tests, the flaky ones and their flake rate."""

    tests = serializers.IntegerField(help_text="Tests in the layer.")
    flaky = serializers.IntegerField(help_text="Tests judged flaky.")
    flake_rate = serializers.FloatField(
        help_text="Flaky runs over runs of the layer's tests, 0..1."
    )


class LayersSerializer(serializers.Serializer[dict[str, dict[str, float]]]):
    """The figures of each test layer, keyed by layer."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        """Return one field per layer."""
        return {layer: LayerFiguresSerializer() for layer in LAYERS}


class ProjectSummarySerializer(serializers.Serializer[queries.ProjectSummary]):
    """A project's summary: tests per verdict, uploads, time lost to flakes."""

    slug = serializers.CharField()
    name = serializers.CharField()
    default_branch = serializers.CharField()
    tests = serializers.IntegerField(help_text="Tests seen in the project.")
    tests_by_status = TestsByStatusSerializer(
        help_text="Tests per verdict; tests not judged yet count as 'new'."
    )
    uploads = serializers.IntegerField(help_text="Uploads received.")
    time_lost_to_flakiness_ms = serializers.FloatField(
        help_text="Test time of CI jobs re-run because of flaky failures."
    )
    unowned = serializers.IntegerField(help_text="Tests no team owns.")
    layers = LayersSerializer(help_text="Tests, flaky tests and flake rate per layer.")


# --- Views --------------------------------------------------------------------

ERRORS = {
    401: OpenApiResponse(ErrorSerializer, "No token, or not a token of this API."),
    404: OpenApiResponse(ErrorSerializer, "No such project or test for this token."),
}
BAD_QUERY = {400: OpenApiResponse(ErrorSerializer, "A query parameter is not valid.")}
SLUG = OpenApiParameter(
    "slug",
    {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
    OpenApiParameter.PATH,
    description="The project of the token.",
)
PAGE = OpenApiParameter(
    "page",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    description=f"1-based page number; {queries.PAGE_SIZE} items a page.",
)


def _project(request: Request, slug: str) -> Project:
    # TokenRequired lets a request through only with an ApiToken as its auth.
    project = cast(ApiToken, request.auth).project
    if slug != project.slug:
        # Another project's slug reads exactly like an unknown one.
        raise NotFound(
            f"No project {slug!r} for this token; use a token of that project."
        )
    return project


def _choice(request: Request, name: str, choices: Sequence[str]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in choices:
        raise BadRequest(f"{name} must be one of {', '.join(choices)}.")
    return value


def _page(request: Request) -> int:
    value = request.query_params.get("page", "1")
    if not PAGE_DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_PAGE:
        raise BadRequest(f"page must be a whole number from 1 to {MAX_PAGE}.")
    return int(value)


def _next_url(request: Request, page: int, has_next: bool) -> str | None:
    if not has_next:
        return None
    return replace_query_param(request.build_absolute_uri(), "page", page + 1)


@extend_schema(
    operation_id="project_summary",
    tags=["read"],
    parameters=[SLUG],
    responses={200: ProjectSummarySerializer, **ERRORS},
)
@api_view(["GET"])
def project_summary(request: Request, slug: str) -> Response:
    """Summarise a project: tests per verdict, uploads, time lost to flakes."""
    summary = queries.project_summary(_project(request, slug))
    return Response(ProjectSummarySerializer(summary).data)


@extend_schema(
    operation_id="list_tests",
    tags=["read"],
    parameters=[
        SLUG,
        OpenApiParameter(
            "status", enum=VERDICTS, description="Only tests with this verdict."
        ),
        OpenApiParameter(
            "team",
            description=(
                "Only tests owned by the team with this slug; 'none': the tests "
                "nobody owns."
            ),
        ),
        OpenApiParameter(
            "layer", enum=list(LAYERS), description="Only tests of this layer."
        ),
        OpenApiParameter(
            "q",
            description="Only tests whose suite, classname, name or file contains "
            "this text (case-insensitive).",
        ),
        PAGE,
    ],
    responses={200: CasePageSerializer, **BAD_QUERY, **ERRORS},
)
@api_view(["GET"])
def case_list(request: Request, slug: str) -> Response:
    """List a project's tests, highest flake score first (then by id)."""
    project = _project(request, slug)
    status = _choice(request, "status", VERDICTS)
    layer = _choice(request, "layer", list(LAYERS))
    number = _page(request)
    page = queries.case_list(
        project,
        status=status,
        team=request.query_params.get("team"),
        layer=layer,
        q=request.query_params.get("q"),
        page=number,
    )
    body = {"results": page.results, "next": _next_url(request, number, page.has_next)}
    held = quarantine.quarantine_of(project, [row.id for row in page.results])
    return Response(CasePageSerializer(body, context={"quarantine": held}).data)


@extend_schema(
    operation_id="get_test",
    tags=["read"],
    parameters=[SLUG],
    responses={200: CaseDetailSerializer, **ERRORS},
)
@api_view(["GET"])
def case_detail(request: Request, slug: str, case_id: int) -> Response:
    """Show one test: its verdict, the evidence, its last 50 executions."""
    project = _project(request, slug)
    case = queries.case_detail(project, case_id=case_id)
    if case is None:
        raise NotFound(f"No test {case_id} in project {project.slug}.")
    held = quarantine.quarantine_of(project, [case.id])
    return Response(CaseDetailSerializer(case, context={"quarantine": held}).data)


@extend_schema(
    operation_id="list_suites",
    tags=["read"],
    parameters=[
        SLUG,
        OpenApiParameter(
            "order",
            enum=list(queries.SUITE_ORDERS),
            default="slowest",
            description="'slowest': most CI time first; 'name': alphabetical.",
        ),
        PAGE,
    ],
    responses={200: SuitePageSerializer, **BAD_QUERY, **ERRORS},
)
@api_view(["GET"])
def suite_list(request: Request, slug: str) -> Response:
    """List a project's suites, slowest first or by name."""
    project = _project(request, slug)
    order = _choice(request, "order", list(queries.SUITE_ORDERS)) or "slowest"
    number = _page(request)
    page = queries.suite_list(project, order=order, page=number)
    body = {"results": page.results, "next": _next_url(request, number, page.has_next)}
    return Response(SuitePageSerializer(body).data)
