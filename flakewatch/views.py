"""Project-wide error views: JSON under /api/, Django's defaults elsewhere."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(
            {
                "detail": f"No API endpoint at {request.path}; see README.md for the API."
            },
            status=404,
        )
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(
            {
                "detail": "flakewatch failed on this request; retry, and if it persists "
                "check the server log."
            },
            status=500,
        )
    return defaults.server_error(request)


def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database answers: the compose healthcheck."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
