"""The CI gate through the HTTP API: pass only when every failure is quarantined."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from flakewatch.models import Upload
from flakewatch.tokens import issue_token
from tests.flakewatch.test_quarantine import (
    CLASS,
    FAIL,
    FLAKE,
    PASS,
    case,
    history,
    post,
    report,
)


def gate(client, token: str, *files: bytes):
    return client.post(
        "/api/v1/projects/payments/gate",
        {"file": [SimpleUploadedFile(f"r{i}.xml", f) for i, f in enumerate(files)]},
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture
def quarantined(project):
    """A history with test_flaky in an accepted quarantine."""
    history(project)
    return project


@pytest.fixture
def accepted(client, quarantined):
    token = issue_token(quarantined, scope="manage")
    response = post(
        client, token, case(quarantined, "test_flaky").pk, action="accept", owner="a"
    )
    assert response.status_code == 200
    return quarantined


def test_run_whose_only_failure_is_quarantined_passes(client, accepted, upload_token):
    uploads = Upload.objects.count()
    body = report({"test_flaky": FAIL, "test_ok": PASS})

    response = gate(client, upload_token, body)

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["pass"] is True
    assert answer["failures"] == [
        {
            "id": case(accepted, "test_flaky").pk,
            "suite": "unit",
            "classname": CLASS,
            "name": "test_flaky",
            "verdict": "quarantined",
            "detail": "Quarantined (owner a): does not fail the run.",
            "new_signature": False,
        }
    ]
    assert answer["counts"]["quarantined"] == 1 and answer["counts"]["tests"] == 2
    assert Upload.objects.count() == uploads  # nothing stored


def test_run_with_a_new_failure_does_not_pass(client, accepted, upload_token):
    body = report({"test_flaky": FAIL, "test_ok": FAIL, "test_unseen": FAIL})
    answer = gate(client, upload_token, body).json()
    assert answer["pass"] is False
    verdicts = {f["name"]: (f["verdict"], f["id"]) for f in answer["failures"]}
    assert verdicts == {
        "test_flaky": ("quarantined", case(accepted, "test_flaky").pk),
        "test_ok": ("new_failure", case(accepted, "test_ok").pk),
        "test_unseen": ("new_failure", None),
    }
    assert answer["counts"]["new_failure"] == 2


def test_known_flaky_and_broken_tests_fail_the_run_with_their_verdicts(
    client, quarantined, read_token
):
    body = report({"test_mild": FAIL, "test_broken": FAIL})
    answer = gate(client, read_token, body).json()
    assert answer["pass"] is False
    verdicts = {f["name"]: f["verdict"] for f in answer["failures"]}
    assert verdicts == {"test_mild": "known_flaky", "test_broken": "broken"}
    assert all("new_signature" not in f for f in answer["failures"])


def test_in_run_rerun_that_passed_is_not_a_failure(client, quarantined, upload_token):
    body = report({"test_ok": FLAKE, "test_mild": FLAKE})
    answer = gate(client, upload_token, body).json()
    assert answer["pass"] is True
    assert answer["failures"] == []
    assert answer["counts"]["passed_on_rerun"] == 2


def test_several_files_are_judged_together(client, accepted, upload_token):
    ok = report({"test_ok": PASS})
    bad = report({"test_broken": FAIL})
    assert gate(client, upload_token, ok).json()["pass"] is True
    assert gate(client, upload_token, ok, bad).json()["pass"] is False


def test_quarantined_failure_with_a_new_signature_is_flagged_and_strict_fails(
    client, accepted, upload_token
):
    body = report({"test_flaky": FAIL}, message="KeyError: 'user_id'")
    answer = gate(client, upload_token, body).json()
    assert answer["pass"] is True
    assert answer["failures"][0]["new_signature"] is True
    assert "new to it" in answer["failures"][0]["detail"]

    accepted.gate_fails_on_new_signature = True
    accepted.save(update_fields=["gate_fails_on_new_signature"])
    strict = gate(client, upload_token, body).json()
    assert strict["pass"] is False
    known = report({"test_flaky": FAIL}, message="boom: timeout 12s")
    assert gate(client, upload_token, known).json()["pass"] is True


def test_bad_file_is_400_with_the_parsers_message_and_line(
    client, quarantined, upload_token
):
    body = b'<?xml version="1.0"?>\n<testsuite>\n<testcase name="a">\n</testsuite>'
    response = gate(client, upload_token, body)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "r0.xml" in detail and "line 4" in detail


def test_gate_needs_a_file_and_a_token_of_the_project(client, quarantined, read_token):
    response = client.post(
        "/api/v1/projects/payments/gate",
        {},
        headers={"Authorization": f"Bearer {read_token}"},
    )
    assert response.status_code == 400
    assert "file=@junit.xml" in response.json()["detail"]
    assert client.post("/api/v1/projects/payments/gate", {}).status_code == 401
