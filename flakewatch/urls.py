"""The project's URLs: admin, health checks and both apps' routes."""

from django.contrib import admin
from django.urls import include, path

from flakewatch import digest_views, health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("ingest.urls")),
    path("api/v1/", include("flakewatch.api_urls")),
    path("healthz", health.healthz, name="healthz"),
    path(
        "digests/unsubscribe/<str:token>/",
        digest_views.unsubscribe,
        name="digest-unsubscribe",
    ),
]

handler404 = "flakewatch.errors.not_found"
handler500 = "flakewatch.errors.server_error"
