"""Liveness, readiness and the guard on /metrics."""

from __future__ import annotations

import json

from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from support import stack
from tests.flakewatch.test_settings import run_python


def test_healthz_answers_without_asking_any_dependency(client):
    # No db fixture: a query here would fail the test.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_with_database_migrations_and_broker(db, client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "broker": "ok"},
    }


def test_readyz_names_a_migration_not_applied(db, client):
    (_, latest), *_ = MigrationLoader(connection).graph.leaf_nodes("flakewatch")
    MigrationRecorder.Migration.objects.filter(
        app="flakewatch", name=latest
    ).delete()  # rolled back with the test
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["migrations"].startswith("1 migrations are not applied")
    assert f"flakewatch.{latest}" in body["detail"]
    assert "manage.py migrate" in body["detail"]
    assert body["checks"]["database"] == body["checks"]["broker"] == "ok"


READYZ = """
import json, django
django.setup()
from django.test.utils import setup_test_environment
setup_test_environment()
from django.test import Client
response = Client().get("/readyz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


def readyz_in_a_process(env_changes: dict[str, str | None]) -> dict:
    result = run_python(
        READYZ, {"DJANGO_SECRET_KEY": "test-only-secret", **env_changes}
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_readyz_fails_while_its_broker_is_stopped(db, tmp_path):
    settings_dict = connection.settings_dict
    database = (
        f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:"
        f"{settings_dict['PORT']}/{settings_dict['NAME']}"
    )
    redis = stack.RedisServer(tmp_path / "redis")
    env = {"DATABASE_URL": database, "CELERY_BROKER_URL": redis.url()}
    try:
        ready = readyz_in_a_process(env)
        assert ready["status"] == 200, ready
        redis.stop()
        answer = readyz_in_a_process(env)
    finally:
        redis.stop()
    assert answer["status"] == 503
    checks = answer["body"]["checks"]
    assert checks["broker"].startswith("The broker does not answer")
    assert (checks["database"], checks["migrations"]) == ("ok", "ok")
    assert answer["body"]["detail"] == checks["broker"]


def test_readyz_fails_when_the_database_is_unreachable():
    closed = stack.free_port()  # nothing listens there
    answer = readyz_in_a_process(
        {"DATABASE_URL": f"postgres://root@127.0.0.1:{closed}/flakewatch",
         "CELERY_BROKER_URL": None}
    )  # fmt: skip
    assert answer["status"] == 503
    checks = answer["body"]["checks"]
    assert checks["database"].startswith("The database does not answer")
    assert checks["migrations"] == "Not checked: the database does not answer."
    assert answer["body"]["detail"].startswith("The database does not answer")


def test_health_endpoints_refuse_other_methods_with_json(client):
    for path in ("/healthz", "/readyz", "/metrics"):
        response = client.post(path)
        assert response.status_code == 405
        assert response["Allow"] == "GET, HEAD"
        assert response.json() == {"detail": f"{path} answers GET only."}


# --- /metrics: who may scrape --------------------------------------------------


def test_metrics_serve_a_loopback_scraper_without_a_token(db, client):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b'flakewatch_uploads{status="queued"} 0.0' in response.content


def test_metrics_refuse_a_scraper_outside_the_allowed_networks(db, client):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert "FLAKEWATCH_METRICS_ALLOW_NETWORKS" in response.json()["detail"]


def test_metrics_allow_a_configured_network(db, client, settings):
    settings.FLAKEWATCH_METRICS_ALLOW_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_metrics_take_the_bearer_token_from_anywhere(db, client, settings):
    settings.FLAKEWATCH_METRICS_TOKEN = "s3cret-scrape-token"
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    ok = client.get(
        "/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token", **outside
    )
    assert ok.status_code == 200
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope", **outside)
    assert wrong.status_code == 401
    assert "FLAKEWATCH_METRICS_TOKEN" in wrong.json()["detail"]
    # A wrong token is refused even from an allowed network: it is a mistake.
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401


def test_a_token_is_refused_when_none_is_configured(db, client):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    assert response.status_code == 401
