"""Liveness, readiness and metrics endpoints for operators and orchestrators.

``/healthz`` says the process serves requests (no dependency is asked, so a
database outage does not get every web process restarted). ``/readyz`` says
it can do its work: the database answers, every migration is applied, the
broker accepts connections. ``/metrics`` is Prometheus's scrape
(``flakewatch.metrics``), for a bearer token or allowed networks.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from kombu.exceptions import OperationalError as BrokerError

from flakewatch import metrics
from flakewatch.celery import app

BROKER_TIMEOUT_SECONDS = 2

View = Callable[[HttpRequest], HttpResponse]


def get_only(view: View) -> View:
    """Answer methods other than GET and HEAD with a JSON 405."""

    @wraps(view)
    def guarded(request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            return view(request)
        response = JsonResponse(
            {"detail": f"{request.path} answers GET only."}, status=405
        )
        response["Allow"] = "GET, HEAD"
        return response

    # No session or form here: a POST gets the 405, not a CSRF page.
    return csrf_exempt(guarded)


@get_only
def healthz(request: HttpRequest) -> HttpResponse:
    """Answer 200 while the process serves requests."""
    return JsonResponse({"status": "ok"})


def check_database() -> str | None:
    """Return why the database cannot be used, or None if it answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return f"The database does not answer ({exc.__class__.__name__}: {exc})."
    return None


def check_migrations() -> str | None:
    """Return which migrations are not applied, or None if all are."""
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        return f"The migration state cannot be read ({exc.__class__.__name__})."
    if not plan:
        return None
    names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
    return (
        f"{len(plan)} migrations are not applied ({names}); run "
        "`python manage.py migrate`."
    )


def check_broker() -> str | None:
    """Return why the broker cannot be reached, or None if it accepts us."""
    if app.conf.task_always_eager:
        return None  # the embedded default: tasks run in-process
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except (BrokerError, ConnectionError, TimeoutError, OSError) as exc:
        return f"The broker does not answer ({exc.__class__.__name__}: {exc})."
    return None


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "migrations": check_migrations,
    "broker": check_broker,
}


@get_only
def readyz(request: HttpRequest) -> HttpResponse:
    """Answer 200 if database, migrations and broker are ready, else 503."""
    problems: dict[str, str | None] = {}
    for name, check in CHECKS.items():
        # Migrations cannot be read from a database that does not answer.
        if name == "migrations" and problems.get("database"):
            problems[name] = "Not checked: the database does not answer."
            continue
        problems[name] = check()
    checks = {name: problem or "ok" for name, problem in problems.items()}
    failed = [problem for problem in problems.values() if problem]
    if failed:
        return JsonResponse(
            {"detail": " ".join(failed), "status": "unavailable", "checks": checks},
            status=503,
        )
    return JsonResponse({"status": "ok", "checks": checks})


def scrape_refusal(request: HttpRequest) -> JsonResponse | None:
    """Return the answer refusing this scrape, or None if it is allowed."""
    token = settings.FLAKEWATCH_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, sent = header.partition(" ")
        if (
            token
            and scheme.lower() == "bearer"
            and hmac.compare_digest(sent.strip().encode(), token.encode())
        ):
            return None
        return JsonResponse(
            {"detail": "The metrics token is wrong; send FLAKEWATCH_METRICS_TOKEN."},
            status=401,
        )
    if _client_allowed(request.META.get("REMOTE_ADDR", "")):
        return None
    return JsonResponse(
        {
            "detail": "Scraping /metrics needs 'Authorization: Bearer "
            "<FLAKEWATCH_METRICS_TOKEN>' or a client address in "
            "FLAKEWATCH_METRICS_ALLOW_NETWORKS."
        },
        status=403,
    )


def _client_allowed(address: str) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    for network in settings.FLAKEWATCH_METRICS_ALLOW_NETWORKS:
        if client in ipaddress.ip_network(network, strict=False):
            return True
    return False


@get_only
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Serve the Prometheus exposition text to an allowed scraper."""
    refusal = scrape_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(metrics.render_metrics(), content_type=metrics.CONTENT_TYPE)
