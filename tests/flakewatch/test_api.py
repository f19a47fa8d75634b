"""The read API as scripts use it: shapes, filters, pages, scoping, errors."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from flakewatch.models import (
    Case,
    CaseResult,
    CaseState,
    FailureMessage,
    Project,
    SuiteState,
    Upload,
)
from flakewatch.outcomes import Outcome
from flakewatch.tokens import issue_token

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LIST_FIELDS = {
    "id",
    "suite",
    "classname",
    "name",
    "file",
    "team",
    "layer",
    "status",
    "flake_score",
    "flake_rate",
    "runs",
    "failures",
    "first_flaky_commit",
    "duration_p50",
    "duration_p95",
    "duration_regressed",
    "flaky_since",
    "quarantine",
}
DETAIL_FIELDS = LIST_FIELDS | {
    "broken_since_commit",
    "duration_regressed_since_commit",
    "flake_events",
    "total_duration_ms",
    "last_run_at",
    "evidence",
    "top_signatures",
    "history",
}
HISTORY_FIELDS = {
    "upload_id",
    "commit",
    "branch",
    "build",
    "job",
    "attempt",
    "retry_index",
    "outcome",
    "duration_ms",
    "ran_at",
    "message",
}
SUITE_FIELDS = {
    "name",
    "runs",
    "tests",
    "duration_p50",
    "duration_p95",
    "duration_regressed",
    "duration_regressed_since_commit",
    "total_duration_ms",
}
_serial = itertools.count()


def make_case(project: Project, name: str, *, state: dict | None = None, **names):
    fields = {"suite": "unit", "classname": "tests.test_mod", "file": "", **names}
    key = "\0".join((fields["suite"], fields["classname"], name, fields["file"]))
    case = Case.objects.create(
        project=project,
        identity_hash=hashlib.blake2b(key.encode(), digest_size=16).digest(),
        name=name,
        first_seen_at=T0,
        **fields,
    )
    if state is not None:
        CaseState.objects.create(case=case, project=project, **state)
    return case


def make_upload(project: Project, **fields) -> Upload:
    n = next(_serial)
    defaults = {
        "commit_sha": f"{n:040x}",
        "branch": "main",
        "build": str(100 + n),
        "job": "unit",
        "idempotency_key": f"key-{n}",
    }
    return Upload.objects.create(project=project, **{**defaults, **fields})


def get(client, url: str, token: str, **params):
    return client.get(url, params, headers={"Authorization": f"Bearer {token}"})


def assert_detail(response, status: int, phrase: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert list(response.json()) == ["detail"]
    detail = response.json()["detail"]
    assert phrase in detail
    assert detail.endswith(".")


@pytest.fixture
def other_project(db) -> Project:
    return Project.objects.create(slug="other", name="Other")


def test_list_shows_each_test_with_its_verdict_worst_first(client, project, read_token):
    calm = make_case(project, "test_calm", state={"status": "healthy", "runs": 40})
    flaky = make_case(
        project,
        "test_flaky",
        file="tests/test_mod.py",
        state={
            "status": "flaky",
            "flake_score": 7.5,
            "flake_rate": 0.125,
            "runs": 40,
            "failures": 5,
            "first_flaky_commit": "abc123",
            "duration_p50_ms": 120.0,
            "duration_p95_ms": 900.5,
            "duration_regressed": True,
        },
    )
    unjudged = make_case(project, "test_unjudged")

    response = get(client, "/api/v1/projects/payments/tests", read_token)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"results", "next"}
    assert body["next"] is None
    assert [row["id"] for row in body["results"]] == [flaky.pk, calm.pk, unjudged.pk]
    assert all(set(row) == LIST_FIELDS for row in body["results"])
    assert body["results"][0] == {
        "id": flaky.pk,
        "suite": "unit",
        "classname": "tests.test_mod",
        "name": "test_flaky",
        "file": "tests/test_mod.py",
        "team": None,
        "layer": "unknown",
        "status": "flaky",
        "flake_score": 7.5,
        "flake_rate": 0.125,
        "runs": 40,
        "failures": 5,
        "first_flaky_commit": "abc123",
        "duration_p50": 120.0,
        "duration_p95": 900.5,
        "duration_regressed": True,
        "flaky_since": None,
        "quarantine": None,
    }
    assert body["results"][1]["first_flaky_commit"] is None  # stored as ""
    assert body["results"][2] == {
        "id": unjudged.pk,
        "suite": "unit",
        "classname": "tests.test_mod",
        "name": "test_unjudged",
        "file": "",
        "team": None,
        "layer": "unknown",
        "status": "new",
        "flake_score": 0.0,
        "flake_rate": 0.0,
        "runs": 0,
        "failures": 0,
        "first_flaky_commit": None,
        "duration_p50": None,
        "duration_p95": None,
        "duration_regressed": False,
        "flaky_since": None,
        "quarantine": None,
    }


def test_equal_scores_are_ordered_by_id(client, project, read_token):
    ids = [
        make_case(
            project, f"test_{i}", state={"status": "flaky", "flake_score": 1.0}
        ).pk
        for i in range(5)
    ]
    ids.append(make_case(project, "test_none").pk)  # no state: score 0
    ids.insert(0, make_case(project, "test_top", state={"flake_score": 2.0}).pk)
    body = get(client, "/api/v1/projects/payments/tests", read_token).json()
    assert [row["id"] for row in body["results"]] == ids


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(row["name"] for row in response.json()["results"])


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("flaky", ["test_flaky"]),
        ("broken", ["test_broken"]),
        ("healthy", []),
        ("new", ["test_judged_new", "test_unjudged"]),
        ("quarantined", ["test_quarantined"]),
    ],
)
def test_status_filter_keeps_tests_with_that_verdict(
    client, project, read_token, status, expected
):
    make_case(project, "test_flaky", state={"status": "flaky", "flake_score": 3})
    make_case(project, "test_broken", state={"status": "broken"})
    make_case(project, "test_quarantined", state={"status": "quarantined"})
    make_case(project, "test_judged_new", state={"status": "new"})
    make_case(project, "test_unjudged")
    url = "/api/v1/projects/payments/tests"
    assert names(get(client, url, read_token, status=status)) == expected


def test_q_matches_suite_classname_name_or_file_ignoring_case(
    client, project, read_token
):
    make_case(project, "test_Login_works", classname="auth.Session")
    make_case(project, "test_other", file="tests/LOGIN/test_x.py")
    make_case(project, "test_third", suite="Login suite")
    make_case(project, "test_unrelated")
    make_case(project, "test_100%_done")
    url = "/api/v1/projects/payments/tests"
    assert names(get(client, url, read_token, q="login")) == [
        "test_Login_works",
        "test_other",
        "test_third",
    ]
    assert names(get(client, url, read_token, q="session")) == ["test_Login_works"]
    assert names(get(client, url, read_token, q="100%")) == ["test_100%_done"]
    assert names(get(client, url, read_token, q="%")) == ["test_100%_done"]
    assert names(get(client, url, read_token, q="a\x00b")) == []


def test_team_filter_of_an_unknown_team_answers_an_empty_list(
    client, project, read_token
):
    make_case(project, "test_a", state={"status": "flaky"})
    url = "/api/v1/projects/payments/tests"
    assert names(get(client, url, read_token, team="payments-core")) == []
    assert names(get(client, url, read_token, team="none")) == ["test_a"]
    assert get(client, url, read_token).json()["results"][0]["team"] is None


def test_pages_of_50_followed_by_next_cover_every_test_once(
    client, project, read_token
):
    for i in range(120):
        make_case(
            project, f"test_{i:03}", state={"status": "flaky", "flake_score": i % 7}
        )
    make_case(project, "test_healthy", state={"status": "healthy"})

    url, pages, seen = "/api/v1/projects/payments/tests?status=flaky", [], []
    while url is not None:
        response = client.get(url, headers={"Authorization": f"Bearer {read_token}"})
        body = response.json()
        pages.append(len(body["results"]))
        seen.extend((row["flake_score"], row["id"]) for row in body["results"])
        url = body["next"]
        if url is not None:
            parts = urlsplit(url)
            assert (parts.scheme, parts.netloc) == ("http", "testserver")
            assert "status=flaky" in parts.query

    assert pages == [50, 50, 20]
    assert len({case_id for _, case_id in seen}) == 120
    assert seen == sorted(seen, key=lambda pair: (-pair[0], pair[1]))


def test_a_page_past_the_end_is_empty(client, project, read_token):
    make_case(project, "test_a")
    body = get(client, "/api/v1/projects/payments/tests", read_token, page=3).json()
    assert body == {"results": [], "next": None}


def test_list_runs_the_same_few_queries_however_many_tests(
    client, project, read_token, django_assert_max_num_queries
):
    url = "/api/v1/projects/payments/tests"
    get(client, url, read_token)  # the token's last_used_at is written once
    counts = []
    for extra in (2, 80):
        for i in range(extra):
            make_case(project, f"test_{extra}_{i}", state={"status": "flaky"})
            make_case(project, f"test_{extra}_{i}_unjudged")
        # token, page, the page's quarantines
        with django_assert_max_num_queries(3) as captured:
            assert get(client, url, read_token).status_code == 200
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


def test_detail_adds_evidence_and_history_newest_first(client, project, read_token):
    evidence = [
        {"kind": "same_commit", "commit": "c1", "passed": 2, "failed": 1},
        {"kind": "in_run_retry", "upload_id": 7, "note": "failed then passed"},
    ]
    signatures = [{"signature": "TimeoutError: after <n>s", "count": 3}]
    case = make_case(
        project,
        "test_pay",
        state={
            "status": "broken",
            "broken_since_commit": "beef",
            "flake_events": 2,
            "total_duration_ms": 4321.0,
            "last_run_at": T0,
            "evidence": evidence,
            "top_signatures": signatures,
        },
    )
    message = FailureMessage.objects.create(
        project=project, digest=b"m" * 16, kind="AssertionError", message="boom"
    )
    started = make_upload(project, started_at=T0, attempt=2, job="unit (3.11)")
    unstarted = make_upload(project)  # no started_at: its received_at counts
    CaseResult.objects.bulk_create(
        [
            CaseResult(
                case=case,
                upload=started,
                retry_index=0,
                outcome=Outcome.FAILED,
                duration_ms=12.5,
                message=message,
            ),
            CaseResult(
                case=case,
                upload=started,
                retry_index=1,
                outcome=Outcome.PASSED,
                duration_ms=10.0,
            ),
            CaseResult(
                case=case,
                upload=unstarted,
                retry_index=0,
                outcome=Outcome.ERROR,
                duration_ms=None,
            ),
        ]
    )

    response = get(client, f"/api/v1/projects/payments/tests/{case.pk}", read_token)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == DETAIL_FIELDS
    assert body["status"] == "broken"
    assert body["broken_since_commit"] == "beef"
    assert body["duration_regressed_since_commit"] is None
    assert (body["flake_events"], body["total_duration_ms"]) == (2, 4321.0)
    assert body["last_run_at"] == "2026-03-02T09:00:00Z"
    assert body["evidence"] == evidence
    assert body["top_signatures"] == signatures
    assert all(set(run) == HISTORY_FIELDS for run in body["history"])
    newest, retry, first = body["history"]
    assert (newest["upload_id"], newest["outcome"]) == (unstarted.pk, "error")
    assert newest["ran_at"] == unstarted.received_at.isoformat().replace("+00:00", "Z")
    assert newest["duration_ms"] is None
    assert newest["message"] is None
    assert retry == {
        "upload_id": started.pk,
        "commit": started.commit_sha,
        "branch": "main",
        "build": started.build,
        "job": "unit (3.11)",
        "attempt": 2,
        "retry_index": 1,
        "outcome": "passed",
        "duration_ms": 10.0,
        "ran_at": "2026-03-02T09:00:00Z",
        "message": None,
    }
    assert (first["retry_index"], first["outcome"], first["message"]) == (
        0,
        "failed",
        "boom",
    )


def test_detail_history_is_the_last_50_runs_in_three_queries(
    client, project, read_token, django_assert_num_queries
):
    case = make_case(project, "test_long_lived")
    uploads = [make_upload(project) for _ in range(55)]
    CaseResult.objects.bulk_create(
        CaseResult(case=case, upload=u, retry_index=0, outcome=Outcome.SKIPPED)
        for u in uploads
    )
    url = f"/api/v1/projects/payments/tests/{case.pk}"
    get(client, url, read_token)  # the token's last_used_at is written once
    with django_assert_num_queries(4):  # token, test, history, quarantine
        body = get(client, url, read_token).json()
    assert [run["upload_id"] for run in body["history"]] == [
        u.pk for u in reversed(uploads[5:])
    ]
    assert {run["outcome"] for run in body["history"]} == {"skipped"}
    assert body["status"] == "new"


def test_report_text_comes_back_unchanged(client, project, read_token):
    odd = {
        "suite": 'Suite "quoted" › nested',
        "classname": "<script>alert('x')</script>",
        "file": "tests\\windows\\path.py",
    }
    name = "test_ünïcode[é-😀-\t-\n-&amp;-{{ x }}]"
    case = make_case(project, name, state={"status": "flaky"}, **odd)
    text = 'AssertionError: \'a\' != "b"\n  <tag attr="1"/> \\ ends\u2028here'
    message = FailureMessage.objects.create(
        project=project, digest=b"o" * 16, message=text
    )
    CaseResult.objects.create(
        case=case,
        upload=make_upload(project),
        retry_index=0,
        outcome=Outcome.FAILED,
        message=message,
    )

    listed = get(client, "/api/v1/projects/payments/tests", read_token).json()
    detail = get(client, f"/api/v1/projects/payments/tests/{case.pk}", read_token)

    row = listed["results"][0]
    assert (row["name"], row["suite"], row["classname"], row["file"]) == (
        name,
        odd["suite"],
        odd["classname"],
        odd["file"],
    )
    assert detail.json()["name"] == name
    assert detail.json()["history"][0]["message"] == text
    assert b"<script>" in detail.content  # JSON escapes quotes, never HTML


def test_suites_slowest_first_by_default_or_by_name(client, project, read_token):
    for name, total in [("b-api", 500.0), ("c-ui", 9000.0), ("a-db", 20.0)]:
        SuiteState.objects.create(
            project=project,
            name=name,
            runs=10,
            tests=3,
            total_duration_ms=total,
            duration_p50_ms=total / 10,
            duration_regressed=name == "c-ui",
            duration_regressed_since_commit="f00d" if name == "c-ui" else "",
        )
    url = "/api/v1/projects/payments/suites"

    slowest = get(client, url, read_token).json()
    by_name = get(client, url, read_token, order="name").json()

    assert [s["name"] for s in slowest["results"]] == ["c-ui", "b-api", "a-db"]
    assert [s["name"] for s in by_name["results"]] == ["a-db", "b-api", "c-ui"]
    assert get(client, url, read_token, order="slowest").json() == slowest
    assert slowest["next"] is None
    assert all(set(s) == SUITE_FIELDS for s in slowest["results"])
    assert slowest["results"][0] == {
        "name": "c-ui",
        "runs": 10,
        "tests": 3,
        "duration_p50": 900.0,
        "duration_p95": None,
        "duration_regressed": True,
        "duration_regressed_since_commit": "f00d",
        "total_duration_ms": 9000.0,
    }
    assert slowest["results"][1]["duration_regressed_since_commit"] is None


def test_suites_are_paginated_like_tests(client, project, read_token):
    SuiteState.objects.bulk_create(
        SuiteState(project=project, name=f"suite-{i:02}", total_duration_ms=i)
        for i in range(60)
    )
    first = get(client, "/api/v1/projects/payments/suites", read_token, order="name")
    body = first.json()
    assert len(body["results"]) == 50
    assert (
        body["next"]
        == "http://testserver/api/v1/projects/payments/suites?order=name&page=2"
    )
    rest = client.get(body["next"], headers={"Authorization": f"Bearer {read_token}"})
    assert [s["name"] for s in rest.json()["results"]] == [
        f"suite-{i}" for i in range(50, 60)
    ]
    assert rest.json()["next"] is None


def test_project_summary_counts_tests_uploads_and_flaky_time(
    client, project, read_token, other_project
):
    for i, status in enumerate(["flaky", "flaky", "broken", "healthy", "new"]):
        make_case(project, f"test_{i}", state={"status": status})
    make_case(project, "test_unjudged")
    make_upload(project, duration_total_ms=1000.0)
    make_upload(project, duration_total_ms=250.5, reran_for_flakes=True)
    make_upload(project, duration_total_ms=100.0, reran_for_flakes=True)
    make_upload(other_project, duration_total_ms=7.0, reran_for_flakes=True)
    make_case(other_project, "test_elsewhere", state={"status": "flaky"})

    body = get(client, "/api/v1/projects/payments", read_token).json()

    assert body == {
        "slug": "payments",
        "name": "Payments",
        "default_branch": "main",
        "tests": 6,
        "tests_by_status": {
            "new": 2,
            "healthy": 1,
            "flaky": 2,
            "broken": 1,
            "fixed": 0,
            "quarantined": 0,
        },
        "uploads": 3,
        "time_lost_to_flakiness_ms": 350.5,
        "unowned": 6,
        "layers": {
            "unit": {"tests": 0, "flaky": 0, "flake_rate": 0.0},
            "integration": {"tests": 0, "flaky": 0, "flake_rate": 0.0},
            "e2e": {"tests": 0, "flaky": 0, "flake_rate": 0.0},
            "unknown": {"tests": 6, "flaky": 2, "flake_rate": 0.0},
        },
    }


def test_empty_project_summary_is_all_zeros(client, project, read_token):
    body = get(client, "/api/v1/projects/payments", read_token).json()
    assert (body["tests"], body["uploads"], body["time_lost_to_flakiness_ms"]) == (
        0,
        0,
        0.0,
    )
    assert set(body["tests_by_status"].values()) == {0}


@pytest.mark.parametrize(
    "path",
    ["", "/tests", "/tests/1", "/suites"],
    ids=["summary", "tests", "test", "suites"],
)
def test_another_projects_slug_is_404(client, project, read_token, other_project, path):
    make_case(other_project, "test_secret")
    response = get(client, f"/api/v1/projects/other{path}", read_token)
    assert_detail(response, 404, "No project 'other'")


def test_another_projects_test_id_is_404(client, project, read_token, other_project):
    secret = make_case(other_project, "test_secret", state={"status": "flaky"})
    url = f"/api/v1/projects/payments/tests/{secret.pk}"
    assert_detail(get(client, url, read_token), 404, f"No test {secret.pk}")
    assert get(client, "/api/v1/projects/payments/tests", read_token).json() == {
        "results": [],
        "next": None,
    }


def test_unknown_test_id_is_404(client, project, read_token):
    url = "/api/v1/projects/payments/tests/99999999999999"
    assert_detail(get(client, url, read_token), 404, "No test")


def test_read_and_upload_tokens_of_the_project_both_read(
    client, project, read_token, upload_token
):
    make_case(project, "test_a")
    for token in (read_token, upload_token):
        response = get(client, "/api/v1/projects/payments/tests", token)
        assert response.status_code == 200
        assert len(response.json()["results"]) == 1


@pytest.mark.parametrize(
    "path",
    ["", "/tests", "/tests/1", "/suites"],
    ids=["summary", "tests", "test", "suites"],
)
def test_a_missing_or_wrong_token_is_401(client, project, read_token, path):
    url = f"/api/v1/projects/payments{path}"
    missing = client.get(url)
    assert_detail(missing, 401, "Authorization: Bearer")
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert_detail(get(client, url, "fwr_not-a-real-token"), 401, "createtoken")
    basic = client.get(url, headers={"Authorization": f"Basic {read_token}"})
    assert_detail(basic, 401, "createtoken")


def test_a_revoked_token_is_401(client, project, read_token):
    project.tokens.update(revoked_at=T0)
    response = get(client, "/api/v1/projects/payments/tests", read_token)
    assert_detail(response, 401, "revoked")


def test_another_projects_token_sees_only_its_own_project(
    client, project, other_project
):
    make_case(project, "test_payments")
    token = issue_token(other_project, scope="read")
    assert_detail(get(client, "/api/v1/projects/payments", token), 404, "No project")
    assert get(client, "/api/v1/projects/other/tests", token).json()["results"] == []


@pytest.mark.parametrize(
    ("path", "params", "phrase"),
    [
        ("/tests", {"status": "sick"}, "status must be one of new, healthy, flaky"),
        ("/tests", {"status": ""}, "status must be one of"),
        ("/tests", {"page": "0"}, "page must be a whole number"),
        ("/tests", {"page": "-1"}, "page must be a whole number"),
        ("/tests", {"page": "two"}, "page must be a whole number"),
        ("/tests", {"page": "99999999999999999999"}, "page must be a whole number"),
        ("/suites", {"page": "1.5"}, "page must be a whole number"),
        ("/suites", {"order": "fastest"}, "order must be one of slowest, name"),
    ],
)
def test_a_bad_query_value_is_400(client, project, read_token, path, params, phrase):
    response = get(client, f"/api/v1/projects/payments{path}", read_token, **params)
    assert_detail(response, 400, phrase)


def test_writing_methods_are_405_with_a_detail(client, project, read_token):
    response = client.post(
        "/api/v1/projects/payments/tests",
        headers={"Authorization": f"Bearer {read_token}"},
    )
    assert_detail(response, 405, "Use GET: the read API does not accept POST")
    assert "GET" in response["Allow"]


def test_the_upload_api_answers_the_same_token_errors(client, read_token):
    response = client.post(
        "/api/v1/uploads", {}, headers={"Authorization": f"Bearer {read_token}"}
    )
    assert_detail(response, 401, "createtoken")
    assert_detail(client.get("/api/v1/uploads/1"), 401, "Authorization: Bearer")
