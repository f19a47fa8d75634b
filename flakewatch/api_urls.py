"""Routes of the read API and its OpenAPI schema, under /api/v1/."""

from django.urls import path
from drf_spectacular.views import SpectacularJSONAPIView

from flakewatch import api

urlpatterns = [
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("projects/<slug:slug>", api.project_summary, name="api-project"),
    path("projects/<slug:slug>/tests", api.case_list, name="api-tests"),
    path(
        "projects/<slug:slug>/tests/<int:case_id>",
        api.case_detail,
        name="api-test",
    ),
    path("projects/<slug:slug>/suites", api.suite_list, name="api-suites"),
]
