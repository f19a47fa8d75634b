from django.contrib import admin
from django.urls import include, path

from flakewatch import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("ingest.urls")),
    path("api/v1/", include("flakewatch.api_urls")),
    path("healthz", views.healthz, name="healthz"),
]

handler404 = "flakewatch.views.not_found"
handler500 = "flakewatch.views.server_error"
