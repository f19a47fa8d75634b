"""What every response says to browsers, tokens outside the header, admin."""

from __future__ import annotations

import pytest

from tests.factories import junit_report


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/projects/payments/tests"),  # 200
        ("get", "/api/v1/projects/payments"),  # 200
        ("get", "/api/v1/uploads/1"),  # 404
        ("post", "/api/v1/uploads"),  # 400: no report
        ("get", "/api/v1/nothing-here"),  # the JSON 404 handler
        ("get", "/api/v1/openapi.json"),
        ("get", "/healthz"),
        ("get", "/admin/"),
    ],
)
def test_every_response_carries_nosniff_and_a_referrer_policy(
    client, upload_token, method, path
):
    response = getattr(client, method)(
        path, headers={"Authorization": f"Bearer {upload_token}"}
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_error_answers_carry_the_headers_too(client, db):
    response = client.get("/api/v1/projects/payments")
    assert response.status_code == 401
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.parametrize("name", ["token", "access_token", "authorization"])
def test_a_token_in_the_query_string_is_not_accepted(
    client, upload_token, read_token, name
):
    upload = client.post(
        f"/api/v1/uploads?{name}={upload_token}&commit=c&branch=b&build=1&job=j",
        junit_report(1),
        content_type="application/xml",
    )
    assert upload.status_code == 401
    read = client.get(f"/api/v1/projects/payments?{name}={read_token}")
    assert read.status_code == 401


def test_admin_asks_for_a_login(client, db):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
