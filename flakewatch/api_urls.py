"""Routes of the read API and its OpenAPI schema, under /api/v1/."""

from django.urls import path
from drf_spectacular.views import SpectacularJSONAPIView

from flakewatch import api, api_quarantine

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
    path(
        "projects/<slug:slug>/quarantine",
        api_quarantine.QuarantineListView.as_view(),
        name="api-quarantine",
    ),
    path(
        "projects/<slug:slug>/quarantine/<int:case_id>",
        api_quarantine.QuarantineActionView.as_view(),
        name="api-quarantine-action",
    ),
]
