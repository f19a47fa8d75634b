"""Quarantine API: the list CI reads, and the actions of a manage token.

``GET /api/v1/projects/<slug>/quarantine`` (a read, upload or manage token)
serves the list as JSON or, with ``?format=``, in a runner's own form
(``flakewatch.runner_filters``), with an ETag: a poll whose
``If-None-Match`` still matches answers 304 after one small query.
``POST /api/v1/projects/<slug>/quarantine/<test id>`` (a manage token)
applies one action through ``flakewatch.quarantine.act``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import serializers
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flakewatch import quarantine, runner_filters
from flakewatch.errors import BadRequest, ErrorSerializer
from flakewatch.models import ApiToken, Project, Quarantine

ALL_SCOPES = (ApiToken.Scope.READ, ApiToken.Scope.UPLOAD, ApiToken.Scope.MANAGE)
FORMATS = ("json", *runner_filters.FORMATS)
LIST_STATES = [s.value for s in quarantine.LISTED]


class QuarantineItemSerializer(serializers.Serializer[Any]):
    """Document one entry of the quarantine list."""

    id = serializers.IntegerField(help_text="The test's id within flakewatch.")
    suite = serializers.CharField()
    classname = serializers.CharField()
    name = serializers.CharField()
    file = serializers.CharField()
    team = serializers.CharField(allow_null=True, help_text="The owning team's slug.")
    state = serializers.ChoiceField(choices=LIST_STATES)
    reason = serializers.CharField(help_text="Why it was suggested, in words.")
    owner = serializers.CharField(help_text="Who fixes it; empty while suggested.")
    since = serializers.DateTimeField(help_text="When it entered this state.")
    expires = serializers.DateTimeField(allow_null=True)
    expired = serializers.BooleanField(
        help_text="Accepted and past its expiry: still on the list until acted on."
    )
    ready_to_release = serializers.BooleanField(
        help_text="It passed the runs that would judge it fixed since acceptance."
    )


class QuarantineListSerializer(serializers.Serializer[Any]):
    """Document the quarantine list's JSON body."""

    results = QuarantineItemSerializer(many=True)


class ActionSerializer(serializers.Serializer[Any]):
    """Read the body of a quarantine action."""

    action = serializers.ChoiceField(choices=quarantine.ACTIONS)
    owner = serializers.CharField(required=False, allow_blank=True, max_length=200)
    note = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    expires = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, help_text="ISO 8601."
    )
    commit = serializers.CharField(required=False, allow_blank=True, max_length=64)


class QuarantineRowSerializer(serializers.Serializer[Any]):
    """Render a test's quarantine after an action."""

    id = serializers.IntegerField(source="case_id")
    state = serializers.CharField()
    owner = serializers.CharField()
    note = serializers.CharField()
    since = serializers.DateTimeField()
    expires = serializers.DateTimeField(source="expires_at", allow_null=True)
    ready_to_release = serializers.BooleanField()
    fix_commit = serializers.CharField()
    fix_result = serializers.JSONField(allow_null=True)


def request_token(request: Request) -> ApiToken:
    """Return the request's token (TokenRequired lets only tokens in)."""
    token = request.auth
    assert isinstance(token, ApiToken)
    return token


def _project(request: Request, slug: str) -> Project:
    project: Project = request_token(request).project
    if slug != project.slug:
        raise NotFound(
            f"No project {slug!r} for this token; use a token of that project."
        )
    return project


class QuarantineAPIView(APIView):
    """A view of the quarantine API: every scope authenticates."""

    token_scopes: ClassVar[tuple[str, ...]] = ALL_SCOPES
    wrong_method_detail: ClassVar[str]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Answer a wrong method with 405 before the token is checked."""
        if request.method and request.method.lower() not in self.http_method_names:
            self.http_method_not_allowed(request, *args, **kwargs)
        super().initial(request, *args, **kwargs)


class JSONOnly(DefaultContentNegotiation):
    """Always JSON: ``?format=`` names a runner here, not a DRF renderer."""

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        """Pick the first (JSON) renderer whatever the query says."""
        first = next(iter(renderers))
        return first, first.media_type


class QuarantineListView(QuarantineAPIView):
    """Serve the list CI reads."""

    wrong_method_detail = "Use GET to read the quarantine list."
    http_method_names = ["get", "head"]
    content_negotiation_class = JSONOnly

    @extend_schema(
        operation_id="quarantine_list",
        tags=["quarantine"],
        parameters=[
            OpenApiParameter("state", enum=LIST_STATES),
            OpenApiParameter("team", description="A team slug, or 'none'."),
            OpenApiParameter(
                "format",
                enum=list(FORMATS),
                description="json (default) or a runner's form of the accepted list.",
            ),
        ],
        responses={
            (200, "application/json"): QuarantineListSerializer,
            # ?format=<runner>: the accepted list in that runner's own form.
            (200, "text/plain"): OpenApiTypes.STR,
            304: OpenApiResponse(description="Unchanged since If-None-Match."),
            400: OpenApiResponse(ErrorSerializer, "A query parameter is not valid."),
            401: OpenApiResponse(ErrorSerializer, "No token of this API."),
            404: OpenApiResponse(ErrorSerializer, "No such project for this token."),
        },
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        """Serve the quarantine list, as JSON or in a runner's form."""
        project = _project(request, slug)
        fmt = request.query_params.get("format", "json")
        if fmt not in FORMATS:
            raise BadRequest(f"format must be one of {', '.join(FORMATS)}.")
        state = request.query_params.get("state")
        if state is not None and state not in LIST_STATES:
            raise BadRequest(f"state must be one of {', '.join(LIST_STATES)}.")
        if fmt != "json":
            state = Quarantine.State.ACCEPTED  # runners skip only accepted tests
        team = request.query_params.get("team")
        etag = quarantine.list_etag(project, f"{fmt}\0{state}\0{team}")
        if etag in _etags(request.headers.get("If-None-Match", "")):
            response = HttpResponse(status=304)
            response["ETag"] = etag
            return response
        items = quarantine.quarantine_list(project, state=state, team=team)
        answer: HttpResponse
        if fmt == "json":
            answer = Response(QuarantineListSerializer({"results": items}).data)
        else:
            text = runner_filters.render(
                fmt,
                [
                    runner_filters.QuarantineItem(
                        name=i.name, classname=i.classname, suite=i.suite, file=i.file
                    )
                    for i in items
                ],
            )
            answer = HttpResponse(text, content_type="text/plain; charset=utf-8")
        answer["ETag"] = etag
        answer["Cache-Control"] = "no-cache"  # revalidate each time: it is cheap
        return answer


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",")}


class QuarantineActionView(QuarantineAPIView):
    """Apply a manage token's action to one test."""

    wrong_method_detail = "Use POST with a JSON action to change a quarantine."
    http_method_names = ["post"]

    @extend_schema(
        operation_id="quarantine_action",
        tags=["quarantine"],
        request=ActionSerializer,
        responses={
            200: QuarantineRowSerializer,
            400: OpenApiResponse(ErrorSerializer, "A bad action or field."),
            401: OpenApiResponse(ErrorSerializer, "No token of this API."),
            403: OpenApiResponse(ErrorSerializer, "Not a manage token."),
            404: OpenApiResponse(ErrorSerializer, "No such project or test."),
        },
    )
    def post(self, request: Request, slug: str, case_id: int) -> Response:
        """Accept, dismiss, release or mark a fix attempt on one test."""
        token = request_token(request)
        if token.scope != ApiToken.Scope.MANAGE:
            raise PermissionDenied(
                f"A {token.scope} token cannot change quarantines; use a manage "
                "token (manage.py createtoken SLUG --scope manage)."
            )
        project = _project(request, slug)
        if not isinstance(request.data, dict):
            raise BadRequest('Send a JSON object such as {"action": "accept", ...}.')
        action = request.data.get("action")
        if action not in quarantine.ACTIONS:
            raise BadRequest(
                f"action must be one of {', '.join(quarantine.ACTIONS)}; got "
                f"{action!r}."
            )
        fields = ActionSerializer(data=request.data)
        fields.is_valid(raise_exception=True)
        data = fields.validated_data
        try:
            row = quarantine.act(
                project,
                case_id=case_id,
                action=data["action"],
                actor=quarantine.token_actor(token),
                owner=data.get("owner") or "",
                note=data.get("note") or "",
                expires=data.get("expires"),
                commit=data.get("commit") or "",
            )
        except quarantine.QuarantineError as exc:
            error = APIException(exc.detail)
            error.status_code = exc.status
            raise error from None
        return Response(QuarantineRowSerializer(row).data)
