"""The upload API as CI uses it: the contract scripts depend on."""

from __future__ import annotations

import gzip
from urllib.parse import urlencode

import pytest
from django.test import override_settings

from flakewatch.models import CaseResult, Upload
from ingest.services import process_upload
from tests.conftest import junit_bytes
from tests.factories import junit_report

FIELDS = {"commit": "c0ffee", "branch": "main", "build": "101", "job": "unit"}
RAW_QUERY = "?commit=c0ffee&branch=main&build=101&job=unit"


def post_multipart(client, token, files, **fields):
    data = {**FIELDS, **fields, "file": files}
    return client.post(
        "/api/v1/uploads", data, headers={"Authorization": f"Bearer {token}"}
    )


def post_raw(client, token, body, query=RAW_QUERY, **headers):
    headers.setdefault("Content-Type", "application/xml")
    content_type = headers.pop("Content-Type")
    return client.post(
        f"/api/v1/uploads{query}",
        body,
        content_type=content_type,
        headers={"Authorization": f"Bearer {token}", **headers},
    )


def as_file(name: str, content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content)


def assert_detail(response, status: int, phrase: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert phrase in detail
    assert detail.endswith(".")


def test_multipart_upload_is_queued_then_processed_with_counts(client, upload_token):
    report = junit_report(5, failing={1, 3})
    response = post_multipart(client, upload_token, [as_file("junit.xml", report)])
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["status_url"] == f"/api/v1/uploads/{body['id']}"

    process_upload(int(body["id"]))
    status = client.get(
        body["status_url"], headers={"Authorization": f"Bearer {upload_token}"}
    ).json()
    assert status["status"] == "done"
    assert (status["tests"], status["failures"], status["errors"]) == (5, 2, [])
    assert CaseResult.objects.filter(upload_id=int(body["id"])).count() == 5


def test_several_files_plain_and_gzip_make_one_upload(client, upload_token):
    files = [
        as_file("unit.xml", junit_report(3, module="tests.unit")),
        as_file(
            "integration.xml.gz", gzip.compress(junit_report(4, module="tests.it"))
        ),
    ]
    response = post_multipart(client, upload_token, files, attempt="2")
    upload_id = int(response.json()["id"])
    process_upload(upload_id)
    upload = Upload.objects.get(pk=upload_id)
    assert (upload.status, upload.tests_count, upload.attempt) == ("done", 7, 2)
    assert sorted(upload.files.values_list("filename", flat=True)) == [
        "integration.xml",
        "unit.xml",
    ]


def test_raw_body_with_gzip_content_encoding_is_accepted(client, upload_token):
    body = gzip.compress(junit_report(2))
    response = post_raw(client, upload_token, body, **{"Content-Encoding": "gzip"})
    assert response.status_code == 202
    process_upload(int(response.json()["id"]))
    assert Upload.objects.get().tests_count == 2


def test_same_reports_from_same_job_attempt_are_one_upload(client, upload_token):
    report = junit_report(4, failing={0})
    first = post_multipart(client, upload_token, [as_file("junit.xml", report)])
    process_upload(int(first.json()["id"]))
    # The same content as a raw gzip body: other HTTP bytes, same reports.
    again = post_raw(client, upload_token, gzip.compress(report))
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "done"
    assert Upload.objects.count() == 1
    assert CaseResult.objects.count() == 4


def test_same_reports_from_another_attempt_are_a_new_upload(client, upload_token):
    report = junit_report(2)
    first = post_multipart(client, upload_token, [as_file("junit.xml", report)])
    second = post_multipart(
        client, upload_token, [as_file("junit.xml", report)], attempt="2"
    )
    assert second.status_code == 202
    assert second.json()["id"] != first.json()["id"]


def test_missing_token_is_401(client, project):
    response = client.post("/api/v1/uploads", FIELDS)
    assert_detail(response, 401, "Authorization: Bearer")


def test_wrong_or_read_scoped_token_cannot_upload(client, read_token):
    for token in ("fwu_not-a-real-token", read_token):
        response = post_multipart(client, token, [as_file("j.xml", junit_report(1))])
        assert_detail(response, 401, "createtoken")
    assert Upload.objects.count() == 0


@pytest.mark.parametrize("missing", ["commit", "branch", "build", "job"])
def test_missing_field_is_400_naming_it(client, upload_token, missing):
    data = {k: v for k, v in FIELDS.items() if k != missing}
    data["file"] = as_file("j.xml", junit_report(1))
    response = client.post(
        "/api/v1/uploads", data, headers={"Authorization": f"Bearer {upload_token}"}
    )
    assert_detail(response, 400, missing)


def test_no_file_is_400(client, upload_token):
    response = client.post(
        "/api/v1/uploads", FIELDS, headers={"Authorization": f"Bearer {upload_token}"}
    )
    assert_detail(response, 400, "No report attached")


@pytest.mark.parametrize(
    ("field", "value"),
    [("attempt", "zero"), ("started_at", "yesterday"), ("build_url", "ftp://x")],
)
def test_malformed_optional_field_is_400(client, upload_token, field, value):
    response = post_multipart(
        client, upload_token, [as_file("j.xml", junit_report(1))], **{field: value}
    )
    assert_detail(response, 400, field)


def test_unsupported_content_type_is_415(client, upload_token):
    response = post_raw(
        client, upload_token, b'{"tests": 1}', **{"Content-Type": "application/json"}
    )
    assert_detail(response, 415, "application/xml")


@override_settings(FLAKEWATCH_MAX_UPLOAD_BYTES=64 * 1024)
def test_report_over_the_limit_is_413_and_stores_nothing(client, upload_token):
    response = post_raw(client, upload_token, junit_report(2000))
    assert_detail(response, 413, "MB limit")
    assert Upload.objects.count() == 0


@override_settings(FLAKEWATCH_MAX_UPLOAD_BYTES=1024 * 1024)
def test_gzip_bomb_is_stopped_while_decompressing(client, upload_token):
    bomb = gzip.compress(b"<testsuites>" + b" " * (200 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 1024 * 1024  # small on the wire, 200 MB inflated
    response = post_multipart(client, upload_token, [as_file("bomb.xml.gz", bomb)])
    assert_detail(response, 413, "MB limit")
    assert Upload.objects.count() == 0


def test_corrupt_gzip_is_400(client, upload_token):
    response = post_multipart(
        client, upload_token, [as_file("x.xml.gz", b"\x1f\x8b\x08\x00garbage")]
    )
    assert_detail(response, 400, "gzip")


def test_status_of_another_projects_upload_is_404(client, upload_token, db):
    from flakewatch.models import Project
    from flakewatch.tokens import issue_token

    other = Project.objects.create(slug="other", name="Other")
    other_token = issue_token(other, scope="upload")
    response = post_multipart(client, upload_token, [as_file("j.xml", junit_report(1))])
    status = client.get(
        response.json()["status_url"],
        headers={"Authorization": f"Bearer {other_token}"},
    )
    assert_detail(status, 404, "No upload")


def test_unknown_api_path_answers_json_404(client):
    assert_detail(client.get("/api/v1/nothing-here"), 404, "No API endpoint")


def test_wrong_method_answers_json_405(client, upload_token):
    response = client.get(
        "/api/v1/uploads", headers={"Authorization": f"Bearer {upload_token}"}
    )
    assert_detail(response, 405, "POST")


def test_wrong_method_is_405_with_allow_even_without_a_token(client, db):
    for method, url, allow in [
        ("get", "/api/v1/uploads", "POST"),
        ("options", "/api/v1/uploads", "POST"),
        ("delete", "/api/v1/uploads/1", "GET, HEAD"),
        ("post", "/api/v1/uploads/1", "GET, HEAD"),
    ]:
        response = getattr(client, method)(url)
        assert_detail(response, 405, "Use ")
        assert response["Allow"] == allow


def test_status_answers_head_like_get(client, upload_token):
    response = post_multipart(client, upload_token, [as_file("j.xml", junit_report(1))])
    head = client.head(
        response.json()["status_url"],
        headers={"Authorization": f"Bearer {upload_token}"},
    )
    assert head.status_code == 200
    assert head.content == b""


def test_status_takes_a_read_token_of_the_project(client, upload_token, read_token):
    response = post_multipart(client, upload_token, [as_file("j.xml", junit_report(1))])
    status = client.get(
        response.json()["status_url"],
        headers={"Authorization": f"Bearer {read_token}"},
    )
    assert (status.status_code, status.json()["id"]) == (200, response.json()["id"])


def test_empty_optional_fields_take_their_defaults(client, upload_token):
    response = post_multipart(
        client,
        upload_token,
        [as_file("j.xml", junit_report(1))],
        attempt="",
        build_url=" ",
        started_at="",
    )
    assert response.status_code == 202
    upload = Upload.objects.get()
    assert (upload.attempt, upload.build_url, upload.started_at) == (1, "", None)


def test_fields_are_read_without_surrounding_whitespace(client, upload_token):
    response = post_multipart(
        client,
        upload_token,
        [as_file("j.xml", junit_report(1))],
        commit=" c0ffee\n",
        attempt=" 3 ",
        started_at="2026-05-01T10:00:00",
    )
    assert response.status_code == 202
    upload = Upload.objects.get()
    assert (upload.commit_sha, upload.attempt) == ("c0ffee", 3)
    assert upload.started_at.isoformat() == "2026-05-01T10:00:00+00:00"


@pytest.mark.parametrize(
    ("field", "value", "phrase"),
    [
        ("commit", "a" * 65, "commit is longer than 64 characters"),
        ("job", "j" * 256, "job is longer than 255 characters"),
        ("attempt", "2.0", "attempt must be a whole number"),
        ("attempt", "99999999999999999999", "attempt must be a whole number"),
        ("attempt", "-1", "attempt must be a whole number"),
        ("build_url", "https://" + "x" * 1000, "build_url must be an http(s) URL"),
        ("branch", "main\x00", "branch"),
    ],
)
def test_field_over_its_limit_or_malformed_is_400_naming_it(
    client, upload_token, field, value, phrase
):
    response = post_raw(
        client,
        upload_token,
        junit_report(1),
        query="?" + urlencode({**FIELDS, field: value}),
    )
    assert_detail(response, 400, phrase)
    assert Upload.objects.count() == 0


def test_more_files_than_django_reads_is_400(client, upload_token):
    files = [as_file(f"j{i}.xml", junit_report(1)) for i in range(101)]
    response = post_multipart(client, upload_token, files)
    assert_detail(response, 400, "Too many files")
    assert Upload.objects.count() == 0


def test_file_names_keep_no_path_and_no_nul(client, upload_token):
    files = [as_file("../../etc/unit\x00.xml", junit_report(1))]
    response = post_multipart(client, upload_token, files)
    assert response.status_code == 202
    assert Upload.objects.get().files.get().filename == "unit.xml"


def test_content_encoding_other_than_gzip_is_415(client, upload_token):
    response = post_raw(
        client, upload_token, junit_report(1), **{"Content-Encoding": "br"}
    )
    assert_detail(response, 415, "Content-Encoding must be gzip")


def test_a_file_that_is_not_xml_fails_the_upload_with_line(client, upload_token):
    response = post_multipart(
        client,
        upload_token,
        [as_file("junit.xml", b"Tests: 3 passed\n<oops")],
    )
    upload_id = int(response.json()["id"])
    process_upload(upload_id)
    status = client.get(
        f"/api/v1/uploads/{upload_id}",
        headers={"Authorization": f"Bearer {upload_token}"},
    ).json()
    assert status["status"] == "failed"
    assert "junit.xml: The file is not well-formed XML" in status["errors"][0]
    assert "line 1" in status["errors"][0]
    assert CaseResult.objects.count() == 0


def test_bad_input_leaves_stored_results_unchanged(client, upload_token):
    good = post_multipart(client, upload_token, [as_file("j.xml", junit_report(3))])
    process_upload(int(good.json()["id"]))
    before = list(CaseResult.objects.order_by("case_id").values_list())

    post_multipart(client, upload_token, [as_file("bad.xml", b"<testsuites><x>")])
    post_raw(client, upload_token, junit_report(1), query="?commit=c0ffee")
    post_multipart(client, "fwu_wrong", [as_file("j.xml", junit_report(9))])
    for upload in Upload.objects.exclude(pk=int(good.json()["id"])):
        process_upload(upload.pk)

    assert list(CaseResult.objects.order_by("case_id").values_list()) == before
    assert Upload.objects.get(pk=int(good.json()["id"])).tests_count == 3


def test_corpus_report_with_reruns_stores_each_execution(client, upload_token):
    report = junit_bytes(
        "action-junit-report/test_results/maven_surefire_flaky/surefire-report.xml"
    )
    response = post_multipart(client, upload_token, [as_file("TEST-x.xml", report)])
    process_upload(int(response.json()["id"]))
    outcomes = list(
        CaseResult.objects.order_by("retry_index").values_list("retry_index", "outcome")
    )
    assert outcomes == [(0, 1), (1, 0)]  # failed, then passed on the rerun
    status = Upload.objects.get()
    assert (status.tests_count, status.failures_count) == (1, 0)


def test_healthz_answers_when_the_database_does(client, db):
    assert client.get("/healthz").json() == {"status": "ok"}
