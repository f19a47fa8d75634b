"""The pages: thin views over ``flakewatch.dashboards`` and ``charts``.

Each view reads its filters from the query string (so a view can be shared
as a link), calls one function of ``dashboards`` and renders a template;
figures travel as JSON in ``<script type="application/json">`` and are drawn
by a static script, so the Content-Security-Policy allows no inline script.
Pages need a login unless ``FLAKEWATCH_PUBLIC_PAGES`` is set; they are
read-only, and the only form (log out) posts with its CSRF token.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, render

from flakewatch import charts, dashboards
from flakewatch.dashboards import Filters
from flakewatch.demo import DEMO_SLUG
from flakewatch.models import Project

P = ParamSpec("P")
R = TypeVar("R", bound=HttpResponseBase)
# Our own origin only. Plotly sets element styles from script (allowed) and
# adds <style> rules at run time, hence 'unsafe-inline' for styles alone;
# no script runs inline and nothing loads from elsewhere.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
MAX_QUERY = 200  # characters of a search


def with_policy(response: R) -> R:
    """Add the pages' Content-Security-Policy to ``response``."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def page(view: Callable[P, HttpResponse]) -> Callable[P, HttpResponse]:
    """Require a login (unless pages are public) and set the page policy."""

    @wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        request = args[0]
        assert isinstance(request, HttpRequest)
        public = settings.FLAKEWATCH_PUBLIC_PAGES
        if not public and not request.user.is_authenticated:
            return with_policy(redirect_to_login(request.get_full_path()))
        response = with_policy(view(*args, **kwargs))
        response.headers["Cache-Control"] = "private, no-store"
        return response

    return wrapped


class LoginView(auth_views.LoginView):
    """Django's login, with the pages' template and policy."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def dispatch(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        """Answer as Django's login does, with the page policy."""
        return with_policy(super().dispatch(request, *args, **kwargs))


def _filters(request: HttpRequest) -> Filters:
    """Read the filters from the query string, ignoring invalid values."""
    get = request.GET
    window = get.get("window", "")
    status = get.get("status") or None
    q = get.get("q", "").strip().replace("\x00", "")[:MAX_QUERY]
    return Filters(
        team=get.get("team") or None,
        branch=get.get("branch") or None,
        window_days=int(window)
        if window.isdigit() and int(window) in dashboards.WINDOWS
        else dashboards.DEFAULT_WINDOW,
        status=status if status in dashboards.SEARCH_STATUSES else None,
        q=q,
    )


def _page_number(request: HttpRequest) -> int:
    value = request.GET.get("page", "1")
    return int(value) if value.isdigit() and 1 <= int(value) <= 10_000 else 1


def _context(
    request: HttpRequest, project: Project | None, **extra: Any
) -> dict[str, Any]:
    """Return what every page's template reads, plus ``extra``."""
    filters = _filters(request)
    query = {k: v for k, v in request.GET.items() if k != "page" and v}
    return {
        "project": project,
        "is_demo": project is not None and project.slug == DEMO_SLUG,
        "filters": filters,
        "windows": dashboards.WINDOWS,
        "statuses": dashboards.SEARCH_STATUSES,
        "query": urlencode(query),
        "public": settings.FLAKEWATCH_PUBLIC_PAGES,
        **extra,
    }


def _project(slug: str) -> Project:
    return get_object_or_404(Project, slug=slug)


@page
def home(request: HttpRequest) -> HttpResponse:
    """Show the only project's overview, or the list of projects."""
    cards = dashboards.project_cards()
    if len(cards) == 1:
        return _overview(request, _project(cards[0].slug))
    return render(
        request, "dashboards/projects.html", _context(request, None, cards=cards)
    )


@page
def project_overview(request: HttpRequest, slug: str) -> HttpResponse:
    """Show a project's counts, trends, teams and slowest suites."""
    return _overview(request, _project(slug))


def _overview(request: HttpRequest, project: Project) -> HttpResponse:
    filters = _filters(request)
    data = dashboards.overview(project, filters)
    figures = {
        "trend": charts.figure_json(charts.flake_rate_trend(data.flake_trend)),
        "lost": charts.figure_json(charts.time_lost(data.time_lost)),
    }
    return render(
        request,
        "dashboards/overview.html",
        _context(
            request,
            project,
            nav="overview",
            data=data,
            figures=figures,
            branches=dashboards.branches(project),
        ),
    )


@page
def team_dashboard(request: HttpRequest, slug: str, team: str) -> HttpResponse:
    """Show a team's flaky, broken and slower tests in one project."""
    project = _project(slug)
    found = dashboards.team(project, team)
    if found is None:
        raise Http404("No such team in this project.")
    data = dashboards.team_dashboard(project, found[0], found[1], _filters(request))
    figures = {"trend": charts.figure_json(charts.failure_trend(data.trend))}
    return render(
        request,
        "dashboards/team.html",
        _context(
            request,
            project,
            data=data,
            figures=figures,
            strip_length=dashboards.STRIP_LENGTH,
        ),
    )


@page
def test_detail(request: HttpRequest, slug: str, case_id: int) -> HttpResponse:
    """Show one test: verdict, evidence, history, durations, signatures."""
    project = _project(slug)
    data = dashboards.test_page(project, case_id, _filters(request))
    if data is None:
        raise Http404("No such test in this project.")
    figures = {
        "heatmap": charts.figure_json(charts.history_heatmap(data.runs)),
        "durations": charts.figure_json(
            charts.duration_series(
                data.durations,
                regressed_since=data.line.duration_regressed_since_commit,
            )
        ),
    }
    return render(
        request,
        "dashboards/test.html",
        _context(
            request,
            project,
            data=data,
            figures=figures,
            runs=data.runs[:20],
            branches=dashboards.branches(project),
        ),
    )


@page
def test_search(request: HttpRequest, slug: str) -> HttpResponse:
    """List a project's tests by filters and a text search over names."""
    project = _project(slug)
    number = _page_number(request)
    results = dashboards.search(project, _filters(request), page=number)
    return render(
        request,
        "dashboards/tests.html",
        _context(
            request,
            project,
            nav="tests",
            results=results,
            page_number=number,
            teams=dashboards.team_counts(project),
        ),
    )


@page
def suite_detail(request: HttpRequest, slug: str, suite_id: int) -> HttpResponse:
    """Show a suite's duration trend and its slowest tests."""
    project = _project(slug)
    data = dashboards.suite_page(project, suite_id)
    if data is None:
        raise Http404("No such suite in this project.")
    figures = {
        "durations": charts.figure_json(
            charts.duration_series(
                data.durations, regressed_since=data.regressed_since_commit
            )
        )
    }
    return render(
        request,
        "dashboards/suite.html",
        _context(request, project, data=data, figures=figures),
    )


@page
def ownership(request: HttpRequest, slug: str) -> HttpResponse:
    """Show tests per team and the unowned tests, most-run first."""
    project = _project(slug)
    data = dashboards.ownership(project)
    return render(
        request,
        "dashboards/ownership.html",
        _context(request, project, nav="ownership", data=data),
    )
