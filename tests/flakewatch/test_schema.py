"""The OpenAPI schema at /api/v1/openapi.json, and the API held to it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, assume, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
)

from flakewatch.models import (
    ApiToken,
    Case,
    CaseResult,
    CaseState,
    FailureMessage,
    SuiteState,
    Upload,
)
from flakewatch.outcomes import Outcome
from flakewatch.tokens import hash_token
from flakewatch.wsgi import application

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# Known before the schema loads, so schemathesis applies it as the bearerToken
# scheme itself: then it knows when a request it draws lacks credentials.
READ_TOKEN = "fwr_schemathesis-read-token"
UPLOAD_TOKEN = "fwu_schemathesis-upload-token"
# Fixed ids, far above what the sequences reach in a test run, so that the
# schema's path parameters can name real rows; each test's rows roll back.
CASE_IDS = [900_001, 900_002, 900_003, 900_004]
UPLOAD_IDS = [900_001, 900_002, 900_003]
SCHEMATHESIS = {
    "auth": {"openapi": {"bearerToken": {"bearer": READ_TOKEN}}},
    # Most drawn requests name the seeded project and its rows; the rest
    # draw any value, for the 404 answers.
    "dictionaries": {
        "slug": {"values": ["payments"]},  # conftest's project
        "case_id": {"values": CASE_IDS},
        "upload_id": {"values": UPLOAD_IDS},
    },
    "parameters": {
        f"path.{name}": {"dictionary": name, "probability": 0.8}
        for name in ("slug", "case_id", "upload_id")
    },
}
OPERATIONS = {
    ("get", "/api/v1/projects/{slug}"),
    ("get", "/api/v1/projects/{slug}/tests"),
    ("get", "/api/v1/projects/{slug}/tests/{case_id}"),
    ("get", "/api/v1/projects/{slug}/suites"),
    ("post", "/api/v1/uploads"),
    ("get", "/api/v1/uploads/{upload_id}"),
    ("get", "/api/v1/projects/{slug}/quarantine"),
    ("post", "/api/v1/projects/{slug}/quarantine/{case_id}"),
    ("post", "/api/v1/projects/{slug}/gate"),
}


def test_schema_is_public_and_lists_every_endpoint(client, db):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    operations = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert operations == OPERATIONS
    tests = document["paths"]["/api/v1/projects/{slug}/tests"]["get"]
    team = next(p for p in tests["parameters"] if p["name"] == "team")
    assert "'none'" in team["description"]
    layer = next(p for p in tests["parameters"] if p["name"] == "layer")
    assert set(layer["schema"]["enum"]) == {"unit", "integration", "e2e", "unknown"}
    case = document["components"]["schemas"]["Case"]
    assert case["properties"]["team"]["nullable"] is True
    assert case["properties"]["duration_p50"]["nullable"] is True


def test_upload_fields_in_the_schema_are_the_limits_the_api_enforces(client, db):
    from ingest.serializers import UploadMetadataSerializer

    document = client.get("/api/v1/openapi.json").json()
    post = document["paths"]["/api/v1/uploads"]["post"]
    query = {p["name"]: p for p in post["parameters"] if p["in"] == "query"}
    form = document["components"]["schemas"]["UploadForm"]
    fields = UploadMetadataSerializer().fields
    assert set(query) == set(fields)
    assert not any(p.get("required") for p in query.values())  # raw bodies only
    assert set(form["required"]) == {"commit", "branch", "build", "job", "file"}
    for name in ("commit", "branch", "build", "job"):
        limit = fields[name].max_length
        assert query[name]["schema"]["maxLength"] == limit
        assert form["properties"][name]["maxLength"] == limit
    assert query["attempt"]["schema"]["maximum"] == fields["attempt"].max_value


@pytest.fixture
def wsgi_requests_share_the_test_transaction(db):
    """Keep Django from closing the test's connection around each request.

    Django's test client does the same; schemathesis calls the WSGI app
    directly, and close_old_connections would otherwise drop the connection
    that holds the test's open transaction.
    """
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def seeded(project):
    """Give the project tokens, tests, runs and suites to answer with."""
    for scope, token in (
        (ApiToken.Scope.READ, READ_TOKEN),
        (ApiToken.Scope.UPLOAD, UPLOAD_TOKEN),
    ):
        ApiToken.objects.create(
            project=project,
            scope=scope,
            prefix=token[:12],
            token_hash=hash_token(token),
        )
    message = FailureMessage.objects.create(
        project=project, digest=b"d" * 16, kind="Error", message="timeout <1s>"
    )
    uploads = [
        Upload.objects.create(
            pk=UPLOAD_IDS[n],
            project=project,
            commit_sha=f"{n:040x}",
            branch="main",
            build=str(n),
            job="unit",
            idempotency_key=f"k{n}",
            started_at=T0 if n else None,
            reran_for_flakes=n == 1,
            duration_total_ms=1500.0,
        )
        for n in range(3)
    ]
    for i, status in enumerate(["flaky", "broken", "healthy", None]):
        case = Case.objects.create(
            pk=CASE_IDS[i],
            project=project,
            identity_hash=bytes([i]) * 16,
            suite="unit",
            classname="tests.test_mod",
            name=f"test_{i}",
            first_seen_at=T0,
        )
        if status is not None:
            CaseState.objects.create(
                case=case,
                project=project,
                status=status,
                flake_score=i / 2,
                first_flaky_commit="c0ffee" if status == "flaky" else "",
                duration_p50_ms=10.0,
                last_run_at=T0,
                evidence=[{"kind": "same_commit", "commit": "c0ffee"}],
                top_signatures=[{"signature": "timeout <n>s", "count": 2}],
            )
        CaseResult.objects.bulk_create(
            CaseResult(
                case=case,
                upload=upload,
                retry_index=0,
                outcome=Outcome.FAILED if n == 1 else Outcome.PASSED,
                duration_ms=None if n == 2 else 12.0,
                message=message if n == 1 else None,
            )
            for n, upload in enumerate(uploads)
        )
    SuiteState.objects.create(project=project, name="unit", runs=3, tests=4)


# Loaded once at collection, over WSGI as a client would; serving the schema
# touches no database. (schemathesis.pytest.from_fixture would load it per
# test, but sets pytest's private Function._nodeid, gone in pytest 9.)
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json",
    application,
    config=SchemathesisConfig.from_dict(SCHEMATHESIS),
)
# The upload endpoints again with an upload token: uploads of drawn fields
# and files are accepted or refused, never a 5xx.
upload_schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json",
    application,
    config=SchemathesisConfig.from_dict(
        {**SCHEMATHESIS, "auth": {"openapi": {"bearerToken": {"bearer": UPLOAD_TOKEN}}}}
    ),
).include(tag="upload")


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    database=None,  # no example database: a failure prints its curl to replay
    # The same examples every run: a finding fails every run, not one in ten.
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_answer_matches_the_schema(
    case, seeded, wsgi_requests_share_the_test_transaction
):
    # A drawn file is no JUnit report: the gate rightly refuses it (400);
    # tests/ingest/test_gate.py covers real reports.
    gate = case.path.endswith("/gate")
    case.call_and_validate(excluded_checks=[positive_data_acceptance] if gate else [])


def _holds_nul(body: object) -> bool:
    if isinstance(body, dict):
        return any(isinstance(v, str) and "\x00" in v for v in body.values())
    return False


@upload_schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,  # as above
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_upload_answer_matches_the_schema(
    case, seeded, wsgi_requests_share_the_test_transaction
):
    # OpenAPI cannot say that the query parameters are read only with a raw
    # body: required there (and a drawn string is no XML report), ignored
    # with a multipart one. tests/ingest/test_api.py covers both by hand.
    if case.media_type == "multipart/form-data":
        # Schemathesis draws multipart text that breaks the fields' no-NUL
        # pattern and still calls it schema-valid; such a draw is no valid case.
        assume(not _holds_nul(case.body))
        excluded = [negative_data_rejection]
    else:
        excluded = [positive_data_acceptance]
    case.call_and_validate(excluded_checks=excluded)
