"""Teams and layers as operators and scripts use them: commands, then the API.

Reports go in through the real ingest path (``ingest_now``), rules through
the management commands (and admin), and every answer is read back over the
HTTP API on PostgreSQL.
"""

from __future__ import annotations

import itertools
from xml.sax.saxutils import quoteattr

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from flakewatch import ownership
from flakewatch.codeowners import parse_codeowners
from flakewatch.models import Case, LayerRule, OwnershipRule, Team
from ingest import services
from tests.flakewatch.test_codeowners import (
    GITHUB_EXAMPLE,
    GITLAB_EXAMPLE,
    _real_world_file,
)

_builds = itertools.count(1)


def report(
    tests: list[tuple[str, str, str]], *, failing: frozenset[str] = frozenset()
) -> bytes:
    """Return a JUnit report of (classname, name, file) testcases."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>', '<testsuite name="suite">']
    for classname, name, file in tests:
        attrs = f"classname={quoteattr(classname)} name={quoteattr(name)}"
        if file:
            attrs += f" file={quoteattr(file)}"
        body = '<failure message="boom">boom</failure>' if name in failing else ""
        lines.append(f"<testcase {attrs} time='0.01'>{body}</testcase>")
    lines.append("</testsuite>")
    return "\n".join(lines).encode()


def ingest(project, tests: list[tuple[str, str, str]], **kwargs) -> None:
    """Ingest one report of ``tests`` through the real write path."""
    n = next(_builds)
    meta = services.UploadMetadata(
        commit_sha=f"{n:040x}", branch="main", build=str(n), job="unit"
    )
    files = [services.receive_file("r.xml", [report(tests, **kwargs)], budget=10**8)]
    upload = services.ingest_now(project, meta=meta, files=files)
    assert upload.status == "done", upload.errors


def by_file(paths) -> list[tuple[str, str, str]]:
    """One test per path, named after it, with no classname."""
    return [("", f"test {path}", path) for path in paths]


def api(client, token: str, url: str, **params) -> dict:
    response = client.get(url, params, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    return response.json()


def all_tests(client, token: str, **params) -> list[dict]:
    """Every test of the project over the API, following ``next`` links."""
    rows, page = [], 1
    while True:
        body = api(
            client, token, "/api/v1/projects/payments/tests", page=page, **params
        )
        rows += body["results"]
        if body["next"] is None:
            return rows
        page += 1


def teams_by_name(client, token: str, **params) -> dict[str, str | None]:
    return {row["name"]: row["team"] for row in all_tests(client, token, **params)}


def import_file(tmp_path, text: str, *maps: str) -> str:
    """Run importowners on ``text``; return what it printed."""
    path = tmp_path / "CODEOWNERS"
    path.write_text(text, encoding="utf-8")
    args = ["importowners", "--project", "payments", str(path)]
    for m in maps:
        args += ["--map", m]
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def expected_slug(owners: tuple[str, ...], maps: dict[str, str]) -> str | None:
    if not owners:
        return None
    return maps.get(owners[0]) or ownership.team_slug_for(owners[0])


# --- Glob semantics from GitHub's and GitLab's documentation -----------------

GITHUB_TABLE = {
    # path -> the team of the owner GitHub's documentation names for it.
    "README.md": "global-owner1",
    "src/app.js": "js-owner",
    "main.go": "docs-example-com",
    "notes/todo.txt": "octo-org-octocats",
    "build/logs/today.log": "octocat",
    "build/out.bin": "global-owner1",
    "docs/getting-started.md": "doctocat",
    "docs/build-app/troubleshooting.md": "doctocat",
    "web/apps/index.html": "octocat",
    "scripts/deploy.sh": "doctocat",
    "deeply/nested/logs/x.log": "octocat",
    "apps/github/readme.md": "doctocat",
    "apps/web/readme.md": "octocat",
}


def test_github_documented_example_owns_tests_by_file(
    client, project, read_token, tmp_path
):
    ingest(project, by_file(GITHUB_TABLE))
    import_file(tmp_path, GITHUB_EXAMPLE)
    got = teams_by_name(client, read_token)
    assert got == {f"test {path}": team for path, team in GITHUB_TABLE.items()}


GITLAB_TABLE = {
    # The last matching line of the whole file, as flakewatch reads GitLab.
    "app/models/user.rb": "ruby-owner",
    "#file_with_pound.rb": "owner-file-with-pound",
    "LICENSE": "legal",
    "docs/index.md": "docs",  # [Documentation] docs matches at any depth
    "src/docs/guide.md": "docs",
    "vendor/lib/x.c": "lib-owner",
    "config/app.yml": "config-owner",
    "src/config/app.yml": "multiple",
    "a/path with spaces/b.txt": "space-owner",
    "ee/docs/x.md": "docs",
    "model/db/schema.sql": "database-team",  # the section's default owner
    "deep/model/db/x.sql": "database-team",  # GitLab: relative at any depth
    "config/db/database-setup.md": "docs-team",
}


def test_gitlab_documented_example_owns_tests_by_file(
    client, project, read_token, tmp_path
):
    ingest(project, by_file(GITLAB_TABLE))
    import_file(tmp_path, GITLAB_EXAMPLE)
    got = teams_by_name(client, read_token)
    assert got == {f"test {path}": team for path, team in GITLAB_TABLE.items()}


@pytest.mark.parametrize(
    "text",
    [GITHUB_EXAMPLE, GITLAB_EXAMPLE, _real_world_file()[0]],
    ids=["github", "gitlab", "real-world"],
)
def test_stored_rules_own_exactly_what_the_file_means(
    client, project, read_token, tmp_path, text
):
    # The rules go through the database (GitLab patterns rewritten to
    # GitHub's reading, sections, un-owning lines); the pure parser of the
    # file itself is the reference.
    paths = list(GITHUB_TABLE) + list(GITLAB_TABLE) + list(_real_world_file()[1])
    ingest(project, by_file(paths))
    import_file(tmp_path, text)
    parsed = parse_codeowners(text)
    expected = {f"test {p}": expected_slug(parsed.owners_of(p), {}) for p in paths}
    assert teams_by_name(client, read_token) == expected


def test_gitlab_exclusions_take_a_path_out_of_its_section(
    client, project, read_token, tmp_path
):
    text = "* @all\n[Ruby]\n*.rb @ruby\n!/vendor/**/*.rb\n"
    ingest(project, by_file(["app/a.rb", "vendor/x/b.rb", "README"]))
    import_file(tmp_path, text)
    assert teams_by_name(client, read_token) == {
        "test app/a.rb": "ruby",
        "test vendor/x/b.rb": "all",
        "test README": "all",
    }


# --- A real-world-shaped CODEOWNERS through the command ----------------------


def test_importowners_reads_a_200_rule_file_and_reports_what_each_team_owns(
    client, project, read_token, tmp_path
):
    text, expected = _real_world_file()
    assert len(parse_codeowners(text).rules) >= 200
    ingest(project, by_file(expected))
    maps = {"@acme/platform": "platform", "@acme/docs": "documentation"}
    out = import_file(tmp_path, text, *(f"{k}={v}" for k, v in maps.items()))

    want = {f"test {p}": expected_slug(owners, maps) for p, owners in expected.items()}
    assert teams_by_name(client, read_token) == want
    counts: dict[str, int] = {}
    for slug in want.values():
        if slug is not None:
            counts[slug] = counts.get(slug, 0) + 1
    unowned = sum(1 for slug in want.values() if slug is None)
    assert unowned == 60  # the generated/ folders
    lines = out.splitlines()
    rules = len(parse_codeowners(text).rules)
    assert lines[0] == f"{rules} rules, {len(counts)} teams"
    assert lines[1:-1] == [f"{slug}: {n} tests" for slug, n in sorted(counts.items())]
    assert lines[-1] == "unowned: 60 tests"
    # --map created the mapped teams; the others are named after the handle.
    assert Team.objects.get(slug="platform").name == "acme/platform"
    assert Team.objects.filter(slug="acme-team-0").exists()
    summary = api(client, read_token, "/api/v1/projects/payments")
    assert summary["unowned"] == 60
    unowned_rows = all_tests(client, read_token, team="none")
    assert len(unowned_rows) == 60
    assert all("/generated/" in row["file"] for row in unowned_rows)


def test_map_to_an_existing_team_keeps_its_name_and_addresses(project, tmp_path):
    call_command("team", "payments", "--name", "Payments", "--email", "p@acme.example")
    import_file(tmp_path, "* @acme/pay\n", "@acme/pay=payments")
    team = Team.objects.get(slug="payments")
    assert (team.name, team.emails) == ("Payments", ["p@acme.example"])
    assert not Team.objects.filter(slug="acme-pay").exists()


def test_a_bad_map_argument_is_refused_with_the_form_to_use(project, tmp_path):
    (tmp_path / "CODEOWNERS").write_text("* @a\n")
    with pytest.raises(CommandError, match="@org/team=team-slug"):
        call_command(
            "importowners",
            "--project",
            "payments",
            str(tmp_path / "CODEOWNERS"),
            "--map",
            "@a",
        )
    with pytest.raises(CommandError, match="createproject"):
        call_command("importowners", "--project", "nope", str(tmp_path / "CODEOWNERS"))
    assert not OwnershipRule.objects.exists()


# --- Precedence and re-imports ------------------------------------------------


def test_the_last_matching_line_wins_not_the_most_specific(
    client, project, read_token, tmp_path
):
    ingest(project, by_file(["src/payments/api.py", "src/payments/api.go"]))
    import_file(tmp_path, "/src/payments/ @payments\n*.py @python\n")
    assert teams_by_name(client, read_token) == {
        "test src/payments/api.py": "python",
        "test src/payments/api.go": "payments",
    }
    import_file(tmp_path, "*.py @python\n/src/payments/ @payments\n")
    assert set(teams_by_name(client, read_token).values()) == {"payments"}


def test_a_re_import_reassigns_tests_and_drops_the_old_rules(
    client, project, read_token, tmp_path
):
    paths = ["api/a.py", "web/b.ts", "docs/c.md"]
    ingest(project, by_file(paths))
    import_file(tmp_path, "/api/ @backend\n/web/ @frontend\n")
    assert teams_by_name(client, read_token) == {
        "test api/a.py": "backend",
        "test web/b.ts": "frontend",
        "test docs/c.md": None,
    }
    out = import_file(tmp_path, "/docs/ @writers\n/api/ @platform\n")
    assert teams_by_name(client, read_token) == {
        "test api/a.py": "platform",
        "test web/b.ts": None,
        "test docs/c.md": "writers",
    }
    assert out.splitlines()[-1] == "unowned: 1 tests"
    assert OwnershipRule.objects.filter(project=project).count() == 2
    assert api(client, read_token, "/api/v1/projects/payments")["unowned"] == 1


def test_manual_rules_outrank_imported_ones_and_survive_a_re_import(
    client, project, read_token, tmp_path
):
    # Reports without file paths are owned by classname (or suite) rules.
    ingest(
        project,
        [
            ("com.acme.billing.InvoiceTest", "total", ""),
            ("com.acme.billing.legacy.OldTest", "old", ""),
            ("tests.test_api", "test_get", "tests/test_api.py"),
        ],
    )
    qa, _ = ownership.save_team("qa")
    billing, _ = ownership.save_team("billing")
    OwnershipRule.objects.create(
        project=project,
        pattern="com.acme.billing.*",
        kind="classname",
        team=billing,
        line=1,
    )
    OwnershipRule.objects.create(
        project=project, pattern="com.acme.billing.legacy.*", kind="classname", line=2
    )
    OwnershipRule.objects.create(
        project=project, pattern="tests/", kind="path", team=qa, line=3
    )
    import_file(tmp_path, "* @platform\n")
    assert teams_by_name(client, read_token) == {
        "total": "billing",
        "old": None,  # un-owned by a later manual rule
        "test_get": "qa",  # the manual path rule comes after the imported *
    }
    assert OwnershipRule.objects.filter(source="manual").count() == 3


def test_rules_edited_in_admin_reassign_tests_at_once(client, project, read_token):
    ingest(project, [("com.acme.search.IndexTest", "t1", "")])
    team, _ = ownership.save_team("search")
    admin = get_user_model().objects.create_superuser("admin", "a@acme.example", "pw")
    client.force_login(admin)
    response = client.post(
        "/admin/flakewatch/ownershiprule/add/",
        {
            "project": project.pk,
            "pattern": "com.acme.search.*",
            "kind": "classname",
            "team": team.pk,
            "source": "manual",
            "line": 1,
            "section": "",
            "owner": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert teams_by_name(client, read_token) == {"t1": "search"}
    rule = OwnershipRule.objects.get()
    response = client.post(
        f"/admin/flakewatch/ownershiprule/{rule.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert teams_by_name(client, read_token) == {"t1": None}
    bad = client.post(
        "/admin/flakewatch/ownershiprule/add/",
        {
            "project": project.pk,
            "pattern": "a//b",
            "kind": "path",
            "source": "manual",
            "line": 1,
        },
    )
    assert bad.status_code == 200 and b"empty segment" in bad.content


# --- New tests at ingest -------------------------------------------------------


def test_a_new_test_gets_its_team_and_layer_when_first_stored(
    client, project, read_token, tmp_path
):
    ingest(project, by_file(["services/pay/test_old.py"]))
    import_file(tmp_path, "/services/pay/ @payments\n")
    ingest(
        project,
        by_file(["services/pay/test_old.py", "services/pay/integration/test_new.py"])
        + by_file(["web/e2e/checkout.spec.ts"]),
    )
    rows = {row["name"]: row for row in all_tests(client, read_token)}
    assert rows["test services/pay/integration/test_new.py"]["team"] == "payments"
    assert rows["test services/pay/integration/test_new.py"]["layer"] == "integration"
    assert rows["test web/e2e/checkout.spec.ts"]["team"] is None
    assert rows["test web/e2e/checkout.spec.ts"]["layer"] == "e2e"
    assert rows["test services/pay/test_old.py"] == {
        **rows["test services/pay/test_old.py"],
        "team": "payments",
        "layer": "unit",
    }


# --- Layers ---------------------------------------------------------------------


LAYER_TESTS = [
    ("tests.unit.test_cart", "test_total", "tests/unit/test_cart.py"),
    ("com.acme.OrderIT", "places", ""),
    ("com.acme.OrderTest", "adds", ""),
    ("", "checkout", "web/cypress/checkout.cy.ts"),
    ("", "login", "e2e/login.spec.ts"),
    ("smoke.Health", "pings", "smoke/health.py"),
]


def test_default_layers_recognise_the_common_conventions(client, project, read_token):
    ingest(project, LAYER_TESTS)
    layers = {row["name"]: row["layer"] for row in all_tests(client, read_token)}
    assert layers == {
        "test_total": "unit",
        "places": "integration",  # Maven Failsafe *IT
        "adds": "unit",
        "checkout": "e2e",  # Cypress
        "login": "e2e",  # e2e/ folder (Playwright)
        "pings": "unknown",
    }


def test_layers_command_replaces_the_project_rules_after_the_defaults(
    client, project, read_token, tmp_path
):
    ingest(project, LAYER_TESTS)
    rules = tmp_path / "layers.txt"
    rules.write_text("# ours\nsmoke/ e2e\nclassname:com.acme.OrderTest integration\n")
    from io import StringIO

    out = StringIO()
    call_command("layers", "--project", "payments", str(rules), stdout=out)
    assert "e2e: 3 tests" in out.getvalue()
    layers = {row["name"]: row["layer"] for row in all_tests(client, read_token)}
    assert (layers["pings"], layers["adds"], layers["test_total"]) == (
        "e2e",
        "integration",
        "unit",
    )
    rules.write_text("smoke/ integration\n")
    call_command("layers", "--project", "payments", str(rules), stdout=out)
    layers = {row["name"]: row["layer"] for row in all_tests(client, read_token)}
    assert (layers["pings"], layers["adds"]) == ("integration", "unit")
    assert LayerRule.objects.filter(project=project).count() == 1
    rules.write_text("smoke/ sideways\n")
    with pytest.raises(CommandError, match="line 1: layer 'sideways'"):
        call_command("layers", "--project", "payments", str(rules))
    assert LayerRule.objects.filter(project=project).count() == 1  # unchanged


def test_team_and_layer_filters_and_the_per_layer_summary(
    client, project, read_token, tmp_path
):
    ingest(project, LAYER_TESTS)
    import_file(tmp_path, "/tests/ @shop\n/web/ @web\n")
    names = {
        team: sorted(r["name"] for r in all_tests(client, read_token, team=team))
        for team in ("shop", "web", "none", "nobody-by-that-name")
    }
    assert names == {
        "shop": ["test_total"],
        "web": ["checkout"],
        "none": ["adds", "login", "pings", "places"],
        "nobody-by-that-name": [],
    }
    e2e = all_tests(client, read_token, layer="e2e")
    assert sorted(r["name"] for r in e2e) == ["checkout", "login"]
    both = all_tests(client, read_token, layer="e2e", team="none")
    assert [r["name"] for r in both] == ["login"]
    response = client.get(
        "/api/v1/projects/payments/tests",
        {"layer": "middle"},
        headers={"Authorization": f"Bearer {read_token}"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "layer must be one of unit, integration, e2e, unknown."
    }
    summary = api(client, read_token, "/api/v1/projects/payments")
    assert summary["unowned"] == 4
    assert {k: v["tests"] for k, v in summary["layers"].items()} == {
        "unit": 2,
        "integration": 1,
        "e2e": 2,
        "unknown": 1,
    }


def test_summary_counts_flaky_tests_and_flake_rate_per_layer(
    client, project, read_token
):
    from flakewatch.models import CaseState

    ingest(project, LAYER_TESTS)
    cases = {c.name: c for c in Case.objects.filter(project=project)}
    CaseState.objects.filter(case=cases["places"]).update(
        status="flaky", flake_events=3, runs=30
    )
    CaseState.objects.filter(case=cases["checkout"]).update(
        status="flaky", flake_events=1, runs=10
    )
    CaseState.objects.filter(case=cases["login"]).update(flake_events=0, runs=30)
    layers = api(client, read_token, "/api/v1/projects/payments")["layers"]
    assert layers["integration"] == {"tests": 1, "flaky": 1, "flake_rate": 0.1}
    assert layers["e2e"] == {"tests": 2, "flaky": 1, "flake_rate": 0.025}
    assert layers["unit"]["flaky"] == 0


# --- The team command --------------------------------------------------------------


def test_team_command_creates_then_updates_a_team(db):
    from io import StringIO

    out = StringIO()
    call_command("team", "payments", stdout=out)
    assert out.getvalue().strip() == "Created team 'payments' (payments): no addresses"
    call_command(
        "team",
        "payments",
        "--name",
        "Payments",
        "--email",
        "lead@example.com",
        "--email",
        "dev@example.com",
        stdout=out,
    )
    team = Team.objects.get(slug="payments")
    assert (team.name, team.emails) == (
        "Payments",
        ["lead@example.com", "dev@example.com"],
    )
    call_command("team", "payments", "--name", "Pay", stdout=out)
    team.refresh_from_db()
    assert (team.name, team.emails) == ("Pay", ["lead@example.com", "dev@example.com"])
    with pytest.raises(CommandError, match="valid email"):
        call_command("team", "payments", "--email", "not-an-address")
    with pytest.raises(CommandError, match="slug"):
        call_command("team", "Pay ments")
    assert Team.objects.count() == 1


def test_a_rule_moved_to_another_project_in_admin_leaves_the_first_unowned(
    client, project, read_token
):
    from flakewatch.models import Project

    other = Project.objects.create(slug="other", name="Other")
    ingest(project, [("com.acme.search.IndexTest", "t1", "")])
    team, _ = ownership.save_team("search")
    rule = OwnershipRule.objects.create(
        project=project, pattern="com.acme.*", kind="classname", team=team, line=1
    )
    ownership.assign_project(project)
    assert teams_by_name(client, read_token) == {"t1": "search"}
    admin = get_user_model().objects.create_superuser("admin", "a@acme.example", "pw")
    client.force_login(admin)
    response = client.post(
        f"/admin/flakewatch/ownershiprule/{rule.pk}/change/",
        {
            "project": other.pk,
            "pattern": "com.acme.*",
            "kind": "classname",
            "team": team.pk,
            "source": "manual",
            "line": 1,
            "section": "",
            "owner": "",
        },
    )
    assert response.status_code == 302
    assert teams_by_name(client, read_token) == {"t1": None}
