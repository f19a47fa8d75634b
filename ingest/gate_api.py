"""HTTP API of the CI gate: POST /api/v1/projects/<slug>/gate.

In ``ingest`` because it reads reports with the ingest parser (``ingest``
may import ``flakewatch``, never the reverse); the judgement itself is
``flakewatch.gate.judge_run``. Nothing is stored.
"""

from __future__ import annotations

import gzip
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiRequest, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from flakewatch import gate
from flakewatch.api_quarantine import request_token
from flakewatch.errors import BadRequest, ErrorSerializer
from flakewatch.models import ApiToken, Project
from ingest import services
from ingest.api import (
    MULTIPART,
    MULTIPART_OVERHEAD,
    MultipartParser,
    UploadAPIView,
    UploadRequestSchema,
)
from ingest.parsing import ParsedExecution, ReportError, parse_report


class GateFailureSerializer(serializers.Serializer[Any]):
    """Document one failed test of the gate's answer."""

    id = serializers.IntegerField(allow_null=True, help_text="Null: never seen.")
    suite = serializers.CharField()
    classname = serializers.CharField()
    name = serializers.CharField()
    verdict = serializers.ChoiceField(choices=gate.VERDICTS)
    detail = serializers.CharField()
    new_signature = serializers.BooleanField(
        required=False, help_text="Quarantined only: a failure never seen before."
    )


class GateSerializer(serializers.Serializer[Any]):
    """Render the gate's answer, ``passed`` as ``pass``."""

    # "pass" is a keyword: the field is renamed in to_representation.
    passed = serializers.BooleanField()
    failures = GateFailureSerializer(many=True)
    counts = serializers.DictField(child=serializers.IntegerField())

    def to_representation(self, instance: gate.GateResult) -> dict[str, Any]:
        """Render ``passed`` as the ``pass`` key, and drop null flags."""
        data = dict(super().to_representation(instance))
        failures = [
            {k: v for k, v in f.items() if not (k == "new_signature" and v is None)}
            for f in data.pop("failures")
        ]
        return {"pass": data.pop("passed"), "failures": failures, **data}


class GateFormSerializer(serializers.Serializer[Any]):
    """Document the gate's multipart body: one or more report files."""

    file = serializers.ListField(
        child=serializers.FileField(),
        min_length=1,
        help_text="JUnit XML reports of one CI run (.gz accepted).",
    )


class GateView(UploadAPIView):
    """Answer whether a CI run should pass."""

    token_scopes = (ApiToken.Scope.UPLOAD, ApiToken.Scope.READ, ApiToken.Scope.MANAGE)
    wrong_method_detail = "Use POST with the run's JUnit files (-F file=@junit.xml)."
    http_method_names = ["post"]
    parser_classes = [MultipartParser]
    schema = UploadRequestSchema()

    @extend_schema(
        operation_id="gate",
        tags=["gate"],
        summary="Should this CI run pass? Judged from its JUnit files; stores nothing.",
        request={
            MULTIPART: OpenApiRequest(
                GateFormSerializer,
                encoding={"file": {"contentType": "application/octet-stream"}},
            )
        },
        responses={
            200: GateSerializer,
            400: OpenApiResponse(ErrorSerializer, "No file, or a file is not JUnit."),
            401: OpenApiResponse(ErrorSerializer, "No token of this project."),
            404: OpenApiResponse(ErrorSerializer, "No such project for this token."),
            413: OpenApiResponse(ErrorSerializer, "The files exceed the size limit."),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        """Judge one CI run's reports against the project's history."""
        project: Project = request_token(request).project
        if slug != project.slug:
            raise exceptions.NotFound(
                f"No project {slug!r} for this token; use a token of that project."
            )
        limit = settings.FLAKEWATCH_MAX_UPLOAD_BYTES
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit + MULTIPART_OVERHEAD:
            raise services.UploadTooLarge(limit)
        reports = request.FILES.getlist("file")
        if not reports:
            raise BadRequest("Send the run's JUnit files as -F file=@junit.xml.")
        executions: list[ParsedExecution] = []
        budget = limit
        for report in reports:
            name = report.name or "report.xml"
            received = services.receive_file(name, report.chunks(), budget=budget)
            budget -= received.size_bytes
            try:
                parsed = parse_report(
                    gzip.decompress(received.payload_gz), filename=received.filename
                )
            except ReportError as exc:
                raise BadRequest(str(exc)) from None
            executions.extend(parsed.executions)
        return Response(GateSerializer(gate.judge_run(project, executions)).data)
