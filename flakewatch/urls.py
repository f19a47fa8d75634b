from django.contrib import admin
from django.urls import include, path

from flakewatch import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("ingest.urls")),
    path("api/v1/", include("flakewatch.api_urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
]

handler404 = "flakewatch.errors.not_found"
handler500 = "flakewatch.errors.server_error"
