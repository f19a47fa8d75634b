"""Error answers: ``{"detail": "<a sentence>"}`` from every API endpoint.

``exception_handler`` renders the DRF views' errors (REST_FRAMEWORK's
EXCEPTION_HANDLER); ``not_found`` and ``server_error`` are the project's
handler404 and handler500, JSON under /api/ and Django's pages elsewhere.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import serializers
from rest_framework import views as drf_views
from rest_framework.exceptions import APIException, MethodNotAllowed, NotAuthenticated
from rest_framework.response import Response

from flakewatch.api_auth import MISSING_TOKEN


class BadRequest(APIException):
    """A request the API cannot read; its detail says what to fix."""

    status_code = 400


class ErrorSerializer(serializers.Serializer[dict[str, str]]):
    """Document the error body in the OpenAPI schema."""

    detail = serializers.CharField(help_text="What went wrong and what to do.")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Answer every API error as ``{"detail": "<sentence>"}``.

    A view answers a wrong method with its ``wrong_method_detail`` sentence;
    the read API's function views have none and get theirs.
    """
    response = drf_views.exception_handler(exc, context)
    if response is None:
        return None  # not an API error: handler500 answers
    if isinstance(exc, NotAuthenticated):
        detail = MISSING_TOKEN
    elif isinstance(exc, MethodNotAllowed):
        detail = getattr(context["view"], "wrong_method_detail", None) or (
            f"Use GET: the read API does not accept {context['request'].method}."
        )
    else:
        detail = " ".join(_messages(response.data))
    response.data = {"detail": detail}
    return response


def _messages(data: object) -> list[str]:
    # DRF's error data is a message, or a list or dict of them (field errors).
    if isinstance(data, dict):
        if set(data) == {"detail"}:
            return _messages(data["detail"])
        return [f"{key}: {m}" for key, value in data.items() for m in _messages(value)]
    if isinstance(data, list):
        return [m for item in data for m in _messages(item)]
    return [str(data)]


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Answer an unknown path: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {
                "detail": f"No API endpoint at {request.path}; see README.md for the API."
            },
            status=404,
        )
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Answer a crash: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {
                "detail": "flakewatch failed on this request; retry, and if it persists "
                "check the server log."
            },
            status=500,
        )
    return defaults.server_error(request)
