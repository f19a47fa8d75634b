"""The pages: login, each page's status and numbers, escaping, query counts."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from flakewatch import demo
from flakewatch.models import CaseResult, Project, Team, Upload
from flakewatch.views import CONTENT_SECURITY_POLICY
from tests.factories import ProjectFactory
from tests.pages_data import populate

ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("lead", password="a-long-test-password")


@pytest.fixture
def client_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def pages(project):
    return populate(project, 12)


def page_urls(ids: dict) -> dict[str, str]:
    return {
        "overview": "/p/payments/",
        "team": "/p/payments/teams/checkout/",
        "unowned": "/p/payments/teams/unowned/",
        "test": f"/p/payments/tests/{ids['flaky']}/",
        "search": "/p/payments/tests/?q=case&status=healthy",
        "suite": f"/p/payments/suites/{ids['suite']}/",
        "ownership": "/p/payments/ownership/",
    }


def test_pages_need_a_login(client, pages):
    for url in ["/", *page_urls(pages).values()]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next=")


def test_a_setting_makes_the_read_only_pages_public(client, pages, settings):
    settings.FLAKEWATCH_PUBLIC_PAGES = True
    for url in page_urls(pages).values():
        assert client.get(url).status_code == 200, url


def test_logging_in_with_the_form_opens_the_only_project(client, user, pages):
    login = client.get("/accounts/login/")
    assert login.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in login.content.decode()
    wrong = client.post("/accounts/login/", {"username": "lead", "password": "no"})
    assert b"do not match" in wrong.content
    response = client.post(
        "/accounts/login/",
        {"username": "lead", "password": "a-long-test-password", "next": "/"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/"
    assert b"Payments" in response.content


def test_logout_is_a_post_with_csrf(client, user):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post("/accounts/logout/").status_code == 403
    page = strict.get("/")
    token = re.search(
        r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()
    )
    assert token
    assert (
        strict.post("/accounts/logout/", {"csrfmiddlewaretoken": token[1]}).status_code
        == 302
    )


def test_every_page_answers_with_the_policy_and_no_inline_script(client_in, pages):
    for name, url in page_urls(pages).items():
        response = client_in.get(url)
        assert response.status_code == 200, name
        assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        html = response.content.decode()
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (name, tag)
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY


def test_overview_shows_the_counts(client_in, pages):
    html = client_in.get("/p/payments/").content.decode()
    # 12 tests cycling flaky, broken, healthy, fixed: 3 flaky and 3 broken;
    # every fourth from the second has a team of its own, even ones Checkout.
    assert re.search(r'data-kpi="flaky">3<', html)
    assert re.search(r'data-kpi="broken">3<', html)
    assert re.search(r'data-kpi="unowned">3<', html)
    assert re.search(r'data-kpi="slow">3<', html)  # tests 0, 5 and 10
    assert "1.5 min" in html  # one re-run of 90 s in the window
    assert 'href="/p/payments/teams/checkout/"' in html


def test_the_only_project_is_the_home_page_and_several_are_listed(client_in, pages):
    assert b'data-kpi="flaky"' in client_in.get("/").content
    ProjectFactory(slug="ledger", name="Ledger")
    html = client_in.get("/").content.decode()
    assert "Ledger" in html and "Payments" in html and "data-kpi" not in html


def test_a_project_without_uploads_shows_the_curl_line(client_in, project):
    html = client_in.get("/p/payments/").content.decode()
    assert "No uploads yet" in html
    assert "curl -fsS -X POST" in html
    assert "createtoken payments --scope upload" in html


def test_team_dashboard_ranks_flaky_tests_with_their_history(client_in, pages):
    html = client_in.get("/p/payments/teams/checkout/").content.decode()
    assert 'data-count="flaky">3 flaky<' in html  # tests 0, 4 and 8
    assert html.count('class="strip"') == 3
    # 8 runs: two failures, the first passed on a retry in the same run.
    strip = html.split('class="strip"', 1)[1].split("</td>", 1)[0]
    assert strip.count("c-passed") == 6
    assert strip.count("c-retried") == 1
    assert strip.count("c-failed") == 1
    assert "Nothing broken" in html  # the broken ones (1, 5, 9) are not Checkout's
    web = client_in.get("/p/payments/teams/web/").content.decode()
    assert "Broken since" in web and "<code>0000005</code>" in web


def test_an_unknown_team_project_or_test_is_a_404(client_in, pages):
    assert client_in.get("/p/payments/teams/nobody/").status_code == 404
    assert client_in.get("/p/nothing/").status_code == 404
    assert client_in.get("/p/payments/tests/999999/").status_code == 404
    other = ProjectFactory(slug="other")
    populate(other, 1, xss=False)
    theirs = other.cases.get().pk
    assert client_in.get(f"/p/payments/tests/{theirs}/").status_code == 404


def test_test_page_links_its_evidence_to_the_build(client_in, pages):
    html = client_in.get(f"/p/payments/tests/{pages['flaky']}/").content.decode()
    assert 'href="https://ci.example.com/builds/502"' in html
    assert "same-commit rerun" in html
    assert 'owner: <a href="/p/payments/teams/checkout/">Checkout</a>' in html
    assert 'id="figure-heatmap"' in html and 'id="figure-durations"' in html


def test_report_text_is_escaped_in_html_and_in_chart_data(client_in, pages):
    for url in [
        "/p/payments/teams/checkout/",
        f"/p/payments/tests/{pages['flaky']}/",
        "/p/payments/tests/?q=img",
        "/p/payments/ownership/",
    ]:
        html = client_in.get(url).content.decode()
        assert "<img" not in html, url
    test_page = client_in.get(f"/p/payments/tests/{pages['flaky']}/").content.decode()
    assert ESCAPED in test_page  # the name, and the failure message
    assert test_page.count(ESCAPED) >= 2


def test_search_matches_names_and_filters_by_status_and_team(client_in, pages):
    html = client_in.get("/p/payments/tests/?q=CASE_1&status=broken").content.decode()
    found = re.findall(r'class="test-name"[^>]*>([^<]+)<', html)
    assert found == ["test_case_1"]  # 1 is broken; 10 and 11 are not
    team = client_in.get("/p/payments/tests/?team=web").content.decode()
    assert re.findall(r'class="test-name"[^>]*>([^<]+)<', team) == [
        "test_case_1", "test_case_5", "test_case_9"
    ]  # fmt: skip
    none = client_in.get("/p/payments/tests/?q=zzz").content.decode()
    assert "No test matches" in none


# Statements per page, the same at both sizes: login session and user (2),
# then the page's own.
QUERIES = {
    "overview": 13,
    "team": 10,
    "unowned": 8,  # no team to look up
    "test": 9,
    "search": 5,
    "suite": 6,
    "ownership": 6,
}


@pytest.mark.parametrize("tests", [4, 40])
@pytest.mark.parametrize("page", sorted(QUERIES))
def test_a_page_runs_a_fixed_number_of_queries(
    client_in, project, django_assert_num_queries, tests, page
):
    url = page_urls(populate(project, tests))[page]
    with django_assert_num_queries(QUERIES[page]):
        assert client_in.get(url).status_code == 200


def test_loaddemo_loads_and_removes_only_the_demo(db, monkeypatch, capsys):
    monkeypatch.setattr(
        demo, "DEMO_SCALE", {"tests": 40, "commits": 20, "branches": 1, "incidents": 1}
    )
    other = ProjectFactory(slug="mine")
    populate(other, 3, xss=False)
    Team.objects.create(slug="demo-checkout-real", name="Not a demo team")
    mine = CaseResult.objects.filter(upload__project=other).count()
    call_command("loaddemo")
    project = Project.objects.get(slug=demo.DEMO_SLUG)
    assert (
        Upload.objects.filter(project=project, analyzed_at__isnull=False).count() > 40
    )
    assert project.cases.filter(team__slug="demo-checkout").exists()
    assert project.cases.filter(team__isnull=True).exists()
    call_command("loaddemo")  # again: afresh, not twice
    assert Project.objects.filter(slug=demo.DEMO_SLUG).count() == 1
    call_command("loaddemo", "--remove")
    assert not Project.objects.filter(slug=demo.DEMO_SLUG).exists()
    assert not Team.objects.filter(
        slug__in=[s for s, _ in demo.DEMO_TEAMS.values()]
    ).exists()
    assert CaseResult.objects.filter(upload__project=other).count() == mine
    assert CaseResult.objects.count() == mine  # the demo's executions went too
    assert (
        Team.objects.filter(slug__in=["checkout", "web", "demo-checkout-real"]).count()
        == 3
    )
    assert Project.objects.filter(slug="mine").exists()


def test_no_demo_login_on_postgresql(db):
    from django.db import connection

    assert connection.vendor == "postgresql"  # the suite runs on the production stack
    with pytest.raises(demo.DemoLoginRefused):
        demo.ensure_demo_login()
    call_command("loaddemo", "--first-start")  # make run's line: nothing on PostgreSQL
    assert not get_user_model().objects.filter(username=demo.DEMO_USER).exists()
    assert not Project.objects.exists()
