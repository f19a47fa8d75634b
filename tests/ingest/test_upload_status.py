"""``GET /api/v1/uploads/<id>``: whether the verdicts include the upload."""

from __future__ import annotations

from flakewatch.analysis import analyze_upload
from ingest.services import process_upload
from tests.factories import junit_report

FIELDS = {"commit": "c0ffee", "branch": "main", "build": "1", "job": "unit"}


def test_status_says_analyzed_once_the_verdicts_include_the_upload(
    client, upload_token
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    auth = {"Authorization": f"Bearer {upload_token}"}
    report = SimpleUploadedFile("junit.xml", junit_report(3, failing={1}))
    posted = client.post("/api/v1/uploads", {**FIELDS, "file": [report]}, headers=auth)
    assert posted.status_code == 202
    body = posted.json()
    assert (body["status"], body["analyzed"]) == ("queued", False)

    upload_id = int(body["id"])
    process_upload(upload_id, enqueue_analysis=False)
    status = client.get(body["status_url"], headers=auth).json()
    assert (status["status"], status["analyzed"]) == ("done", False)

    analyze_upload(upload_id)
    status = client.get(body["status_url"], headers=auth).json()
    assert (status["status"], status["analyzed"]) == ("done", True)


def test_the_schema_documents_analyzed_as_a_required_boolean(client):
    schema = client.get("/api/v1/openapi.json").json()
    upload = schema["components"]["schemas"]["Upload"]
    assert upload["properties"]["analyzed"]["type"] == "boolean"
    assert "analyzed" in upload["required"]
