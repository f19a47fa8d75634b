"""HTTP API for CI: POST /api/v1/uploads and GET /api/v1/uploads/<id>."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from flakewatch.models import ApiToken, Upload
from flakewatch.tokens import authenticate
from ingest import services
from ingest.services import UploadRejected

RAW_CONTENT_TYPES = {
    "application/xml",
    "text/xml",
    "application/gzip",
    "application/x-gzip",
    "application/octet-stream",
}
# Multipart framing and form fields on top of the reports themselves.
MULTIPART_OVERHEAD = 1024 * 1024


def error(status: int, detail: str, *, allow: str = "") -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=status)
    if allow:
        response["Allow"] = allow
    return response


def _token(request: HttpRequest, scopes: tuple[str, ...]) -> ApiToken | JsonResponse:
    header = request.headers.get("Authorization", "")
    if not header:
        return error(
            401, "Authentication required: send 'Authorization: Bearer <token>'."
        )
    token = authenticate(header, scopes=scopes)
    if token is None:
        return error(
            401,
            "The token is not valid for this endpoint (unknown, revoked or of the wrong "
            "scope); create one with 'manage.py createtoken'.",
        )
    return token


def upload_body(upload: Upload) -> dict:
    return {
        "id": str(upload.pk),
        "status": upload.status,
        "status_url": f"/api/v1/uploads/{upload.pk}",
        "tests": upload.tests_count,
        "failures": upload.failures_count,
        "errors": upload.errors,
        "warnings": upload.warnings,
    }


def _received_files(request: HttpRequest) -> list[services.ReceivedFile]:
    budget = settings.FLAKEWATCH_MAX_UPLOAD_BYTES
    files = []
    if request.content_type == "multipart/form-data":
        for uploaded in request.FILES.getlist("file"):
            received = services.receive_file(
                uploaded.name or "report.xml", uploaded.chunks(), budget=budget
            )
            budget -= received.size_bytes
            files.append(received)
        return files
    if request.headers.get("Content-Encoding", "identity").lower() not in (
        "identity",
        "gzip",
    ):
        raise UploadRejected(415, "Content-Encoding must be gzip or absent.")
    body = request.read()
    if body:
        files.append(services.receive_file("report.xml", [body], budget=budget))
    return files


@csrf_exempt
def uploads(request: HttpRequest) -> JsonResponse:
    """Accept a JUnit XML upload: multipart files or a raw XML body."""
    if request.method != "POST":
        return error(405, "Use POST to upload reports.", allow="POST")
    token = _token(request, (ApiToken.Scope.UPLOAD,))
    if isinstance(token, JsonResponse):
        return token
    limit = settings.FLAKEWATCH_MAX_UPLOAD_BYTES
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit + MULTIPART_OVERHEAD:
        return services_error(services.too_large(limit))
    if (
        request.content_type != "multipart/form-data"
        and request.content_type not in RAW_CONTENT_TYPES
    ):
        return error(
            415,
            f"Content type {request.content_type or '(none)'!r} is not accepted: send "
            "multipart/form-data (curl -F file=@junit.xml) or a raw body with "
            "'Content-Type: application/xml'.",
        )
    try:
        fields = (
            request.POST
            if request.content_type == "multipart/form-data"
            else request.GET
        )
        meta = services.read_metadata(fields)
        files = _received_files(request)
        upload, created = services.accept_upload(
            project=token.project, meta=meta, files=files
        )
    except UploadRejected as exc:
        return services_error(exc)
    except RequestDataTooBig:
        return services_error(services.too_large(limit))
    except TooManyFilesSent:
        return error(
            400, "Too many files in one upload; send them in several requests."
        )
    except MultiPartParserError as exc:
        return error(400, f"The multipart body could not be read ({exc}).")
    return JsonResponse(upload_body(upload), status=202 if created else 200)


def services_error(exc: UploadRejected) -> JsonResponse:
    return error(exc.status, exc.detail)


@csrf_exempt  # token-authenticated; and so that other methods get JSON, not CSRF HTML
def upload_status(request: HttpRequest, upload_id: int) -> JsonResponse:
    """Report an upload's processing status and counts."""
    if request.method not in ("GET", "HEAD"):
        return error(405, "Use GET to read an upload's status.", allow="GET, HEAD")
    token = _token(request, (ApiToken.Scope.UPLOAD, ApiToken.Scope.READ))
    if isinstance(token, JsonResponse):
        return token
    upload = Upload.objects.filter(pk=upload_id, project=token.project).first()
    if upload is None:
        return error(404, f"No upload {upload_id} in project {token.project.slug}.")
    return JsonResponse(upload_body(upload))
