"""``tests?q=``: substring search through the trigram index on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from flakewatch import db, queries
from flakewatch.models import Case
from tests.factories import CaseFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def names(page: queries.Page[queries.CaseRow]) -> list[str]:
    return sorted(row.name for row in page.results)


def test_search_matches_within_one_column_ignoring_case():
    project = ProjectFactory()
    CaseFactory(project=project, suite="api", classname="a.Login", name="test_x")
    CaseFactory(project=project, suite="web", classname="b", name="test_LOGIN_ok")
    CaseFactory(project=project, suite="ab", classname="cd", name="test_none")
    CaseFactory(project=ProjectFactory(), name="test_login_elsewhere")
    assert names(queries.case_list(project, q="login")) == ["test_LOGIN_ok", "test_x"]
    # The searched text joins the columns; a match may not span two of them.
    assert names(queries.case_list(project, q="abcd")) == []
    assert names(queries.case_list(project, q="b\x1fcd")) == []
    assert names(queries.case_list(project, q="_none")) == ["test_none"]
    assert names(queries.case_list(project, q="x_")) == []  # "_" is no wildcard


@pytest.mark.skipif(not db.is_postgresql(), reason="the index is PostgreSQL's")
def test_search_is_served_by_the_trigram_index():
    project = ProjectFactory()
    CaseFactory.create_batch(3, project=project, classname="tests.quokka_api")
    Case.objects.bulk_create(
        CaseFactory.build(project=project, classname="c") for _ in range(30_000)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Case._meta.db_table}")
    with CaptureQueriesContext(connection) as captured:
        page = queries.case_list(project, q="quokka")
    assert len(page.results) == 3
    (query,) = captured.captured_queries
    with transaction.atomic(), connection.cursor() as cursor:
        # At 3,000 tests a scan of the primary key still looked cheaper to
        # the planner; 30,000 and no sequential scan ask only whether the
        # index serves the statement, not exactly when it starts to pay.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {query['sql']}")
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "case_search_trgm_idx" in plan, plan
