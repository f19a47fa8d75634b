"""Every read query runs a fixed number of SQL queries, however big the project.

Each read is measured once on a project of 3 tests (or suites, uploads, runs)
and once on one of 60, past the 50-row page: the count must be the same and
must be the one written here, so an ORM call slipped into a loop fails.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flakewatch.layers import LAYERS
from flakewatch.outcomes import Outcome
from tests.factories import (
    CaseFactory,
    CaseResultFactory,
    CaseStateFactory,
    SuiteStateFactory,
    TeamFactory,
    UploadFactory,
)

SIZES = (3, 60)
STATUSES = ("flaky", "broken", "healthy", "fixed", "new")


def queries_of(client, url: str, token: str, **params) -> list[str]:
    """GET ``url`` and return the SQL it ran; the answer must be 200."""
    headers = {"Authorization": f"Bearer {token}"}
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params, headers=headers)
    assert response.status_code == 200, response.content
    return [query["sql"] for query in captured.captured_queries]


@pytest.fixture
def read(client, read_token):
    """Read a URL once to stamp the token's last use, then count a second read."""

    def count(url: str, **params) -> int:
        queries_of(client, url, read_token, **params)
        return len(queries_of(client, url, read_token, **params))

    return count


def add_tests(project, size: int) -> None:
    team = TeamFactory(slug="payments")
    for i in range(size):
        CaseStateFactory(
            case=CaseFactory(
                project=project,
                team=team if i % 2 else None,
                layer=LAYERS[(i // 2) % len(LAYERS)],  # odd i (owned) too
            ),
            status=STATUSES[i % len(STATUSES)],
            flake_score=i / 100,
        )
    CaseFactory.create_batch(size, project=project)  # not judged yet: no state row


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"status": "flaky"},
        {"q": "test_"},
        {"page": "2"},
        {"team": "payments"},
        {"team": "none"},
        {"layer": "unit"},
        {"team": "payments", "layer": "unit", "status": "flaky"},
    ],
    ids=["all", "status", "q", "page-2", "team", "unowned", "layer", "combined"],
)
def test_the_test_list_runs_three_queries_at_any_size(project, read, params):
    counts = []
    for size in SIZES:
        add_tests(project, size)
        counts.append(read("/api/v1/projects/payments/tests", **params))
    # token, page, the page's quarantines (no query for an empty page)
    assert counts[-1] == 3
    assert set(counts) <= {2, 3}


def test_the_suite_list_runs_two_queries_at_any_size(project, read):
    counts = []
    for size in SIZES:
        SuiteStateFactory.create_batch(size, project=project, total_duration_ms=5.0)
        for order in ("slowest", "name"):
            counts.append(read("/api/v1/projects/payments/suites", order=order))
    assert counts == [2, 2, 2, 2]  # token, page


def test_the_project_summary_runs_the_same_queries_at_any_size(project, read):
    counts = []
    for size in SIZES:
        add_tests(project, size)
        UploadFactory.create_batch(size, project=project, reran_for_flakes=True)
        counts.append(read("/api/v1/projects/payments"))
    assert counts == [4, 4]  # token, tests, verdicts, uploads


def test_a_test_detail_runs_four_queries_however_long_its_history(project, read):
    counts = []
    for size in SIZES:
        case = CaseStateFactory(case=CaseFactory(project=project), status="flaky").case
        for i in range(size):
            CaseResultFactory(
                case=case, outcome=Outcome.FAILED if i % 2 else Outcome.PASSED
            )
        counts.append(read(f"/api/v1/projects/payments/tests/{case.pk}"))
    assert counts == [4, 4]  # token, test, history, its quarantine
