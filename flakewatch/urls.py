"""The project's URLs: admin, health checks and both apps' routes."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from flakewatch import digest_views, health, views

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
    # The pages (flakewatch/views.py).
    path("", views.home, name="home"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("p/<slug:slug>/", views.project_overview, name="overview"),
    path("p/<slug:slug>/tests/", views.test_search, name="tests"),
    path("p/<slug:slug>/tests/<int:case_id>/", views.test_detail, name="test"),
    path("p/<slug:slug>/suites/<int:suite_id>/", views.suite_detail, name="suite"),
    path("p/<slug:slug>/teams/<slug:team>/", views.team_dashboard, name="team"),
    path("p/<slug:slug>/ownership/", views.ownership, name="ownership"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
]

handler404 = "flakewatch.errors.not_found"
handler500 = "flakewatch.errors.server_error"
