"""HTTP API for CI: POST /api/v1/uploads and GET /api/v1/uploads/<id>.

DRF views on the read API's stack (its token authentication, error handler
and schema); they read the request, call ``ingest.services`` and map its
domain errors to status codes. Report bodies are read in chunks into the
service, which stops at the size limit: nothing buffers a whole body.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import IO, Any, ClassVar, cast

from django.conf import settings
from django.core.exceptions import (
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.files.uploadedfile import UploadedFile
from django.http import QueryDict
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from django.utils.datastructures import MultiValueDict
from django.utils.http import parse_header_parameters
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiRequest, OpenApiResponse, extend_schema
from rest_framework import exceptions, parsers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flakewatch.errors import BadRequest, ErrorSerializer
from flakewatch.models import ApiToken, Upload
from ingest import services
from ingest.serializers import (
    UploadFormSerializer,
    UploadQuerySerializer,
    UploadSerializer,
    read_metadata,
)

MULTIPART = "multipart/form-data"
RAW_CONTENT_TYPES = {
    "application/xml",
    "text/xml",
    "application/gzip",
    "application/x-gzip",
    "application/octet-stream",
}
# Multipart framing and form fields on top of the reports themselves.
MULTIPART_OVERHEAD = 1024 * 1024
ERROR_STATUS = {services.InvalidUpload: 400, services.UploadTooLarge: 413}


class MultipartParser(parsers.MultiPartParser):
    """Django's multipart parser (files spool to disk), its errors in sentences."""

    # DRF's stubs promise an _ImmutableQueryDict, a stub-only name for the
    # QueryDict that Django's parser returns.
    def parse(  # type: ignore[override]
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> parsers.DataAndFiles[QueryDict, MultiValueDict[str, UploadedFile]]:
        """Return the form fields and files of a multipart body.

        Raise BadRequest or UploadTooLarge with a sentence for a body that
        cannot be read.
        """
        assert parser_context is not None  # DRF always passes the request
        request = parser_context["request"]
        meta = {**request.META, "CONTENT_TYPE": media_type}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            data, files = DjangoMultiPartParser(
                meta, stream, request.upload_handlers, encoding
            ).parse()
        except MultiPartParserError as exc:
            raise BadRequest(f"The multipart body could not be read ({exc}).") from None
        except RequestDataTooBig:  # the form fields alone pass Django's limit
            raise services.UploadTooLarge(
                settings.FLAKEWATCH_MAX_UPLOAD_BYTES
            ) from None
        except TooManyFilesSent:
            raise BadRequest(
                "Too many files in one upload; send them in several requests."
            ) from None
        except TooManyFieldsSent:
            raise BadRequest(
                "Too many form fields: send commit, branch, build, job, attempt, "
                "build_url, started_at and the files."
            ) from None
        return parsers.DataAndFiles(data, files)


class ReportBody:
    """The raw request body as one report, read in chunks when received."""

    name = "report.xml"

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def chunks(self) -> Iterator[bytes]:
        """Yield the body in chunks of READ_CHUNK bytes."""
        return iter(lambda: self.stream.read(services.READ_CHUNK), b"")


class RawBodyParser(parsers.BaseParser):
    """Hand the raw body on unread, as the one report file of the upload.

    Any media type: ``UploadsView`` has admitted only RAW_CONTENT_TYPES.
    """

    media_type = "*/*"

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> parsers.DataAndFiles[dict[str, str], MultiValueDict[str, ReportBody]]:
        """Return no fields and the unread body as the one file."""
        return parsers.DataAndFiles({}, MultiValueDict({"file": [ReportBody(stream)]}))


class UploadAPIView(APIView):
    """A view of the upload API: its token scopes, its wrong-method sentence."""

    token_scopes: ClassVar[tuple[str, ...]]
    wrong_method_detail: ClassVar[str]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Refuse a wrong method, then check the token as every view does."""
        # A wrong method answers 405 before the token is checked, as it
        # always has: the Allow header tells a script what to fix.
        if (request.method or "").lower() not in self.http_method_names:
            self.http_method_not_allowed(request, *args, **kwargs)
        super().initial(request, *args, **kwargs)

    def handle_exception(self, exc: Exception) -> Response:
        """Answer a service's domain error with its status code."""
        if isinstance(exc, services.UploadError):
            error = exceptions.APIException(exc.detail)
            error.status_code = ERROR_STATUS[type(exc)]
            exc = error
        return super().handle_exception(exc)


class UploadRequestSchema(AutoSchema):
    """The upload's schema, its request body required.

    drf-spectacular calls a body optional when one of its media types is a
    plain string (the raw report); every upload needs one.
    """

    def _get_request_body(self, direction: str = "request") -> dict[str, Any] | None:
        # drf-spectacular leaves this method unannotated.
        body: dict[str, Any] | None = super()._get_request_body(direction)  # type: ignore[no-untyped-call]
        if body is not None:
            body["required"] = True
        return body


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description)


class UploadsView(UploadAPIView):
    """POST /api/v1/uploads: accept one CI job's reports."""

    token_scopes = (ApiToken.Scope.UPLOAD,)
    wrong_method_detail = "Use POST to upload reports."
    http_method_names = ["post"]
    parser_classes = [MultipartParser, RawBodyParser]
    schema = UploadRequestSchema()

    @extend_schema(
        operation_id="create_upload",
        tags=["upload"],
        summary="Upload JUnit XML reports of one CI job (an upload token).",
        description=(
            "Multipart form fields and 'file' parts (.gz accepted), or one report "
            "as the raw body with the fields as query parameters (query parameters "
            "are read only for a raw body). A raw body may be gzip: send "
            "'Content-Encoding: gzip', or a content type of application/gzip, "
            "application/x-gzip or application/octet-stream. Also accepted as a "
            "raw body: text/xml."
        ),
        parameters=[UploadQuerySerializer],
        request={
            # The encoding marks the file parts as files (with a filename).
            MULTIPART: OpenApiRequest(
                UploadFormSerializer,
                encoding={"file": {"contentType": "application/octet-stream"}},
            ),
            "application/xml": OpenApiTypes.STR,
            "application/octet-stream": OpenApiTypes.BINARY,
        },
        responses={
            200: OpenApiResponse(
                UploadSerializer, "The same reports again: the first upload."
            ),
            202: OpenApiResponse(UploadSerializer, "Stored and queued for processing."),
            400: _error("A field is missing or malformed, or no file."),
            401: _error("No token, or not an upload token."),
            413: _error("The reports exceed the size limit."),
            415: _error("Not multipart, XML or gzip."),
        },
    )
    def post(self, request: Request) -> Response:
        """Accept a JUnit XML upload: multipart files or a raw XML body."""
        limit = settings.FLAKEWATCH_MAX_UPLOAD_BYTES
        if _content_length(request) > limit + MULTIPART_OVERHEAD:
            raise services.UploadTooLarge(limit)
        media_type = parse_header_parameters(request.content_type or "")[0]
        if media_type == MULTIPART:
            meta = read_metadata(request.POST)
        elif media_type in RAW_CONTENT_TYPES:
            meta = read_metadata(request.query_params)
            encoding = request.headers.get("Content-Encoding", "identity").lower()
            if encoding not in ("identity", "gzip"):
                raise exceptions.UnsupportedMediaType(
                    media_type, "Content-Encoding must be gzip or absent."
                )
        else:
            raise exceptions.UnsupportedMediaType(
                media_type,
                f"Content type {media_type or '(none)'!r} is not accepted: send "
                "multipart/form-data (curl -F file=@junit.xml) or a raw body with "
                "'Content-Type: application/xml'.",
            )
        files = []
        budget = limit
        for report in request.FILES.getlist("file"):
            received = services.receive_file(
                report.name or "report.xml", report.chunks(), budget=budget
            )
            budget -= received.size_bytes
            files.append(received)
        upload, created = services.accept_upload(
            project=cast(ApiToken, request.auth).project, meta=meta, files=files
        )
        return Response(UploadSerializer(upload).data, status=202 if created else 200)


def _content_length(request: Request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class UploadStatusView(UploadAPIView):
    """GET /api/v1/uploads/<id>: an upload's processing status."""

    token_scopes = (ApiToken.Scope.UPLOAD, ApiToken.Scope.READ)
    wrong_method_detail = "Use GET to read an upload's status."
    http_method_names = ["get", "head"]

    @extend_schema(
        operation_id="get_upload",
        tags=["upload"],
        summary="An upload's processing status and counts.",
        responses={
            200: OpenApiResponse(UploadSerializer, "The upload."),
            401: _error("No token, or not a token of this API."),
            404: _error("No such upload in the token's project."),
        },
    )
    def get(self, request: Request, upload_id: int) -> Response:
        """Report an upload's processing status and counts."""
        project = cast(ApiToken, request.auth).project  # TokenRequired saw to it
        upload = Upload.objects.filter(pk=upload_id, project=project).first()
        if upload is None:
            raise exceptions.NotFound(
                f"No upload {upload_id} in project {project.slug}."
            )
        return Response(UploadSerializer(upload).data)
