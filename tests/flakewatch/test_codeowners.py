import pytest

from flakewatch.codeowners import (
    NameOwners,
    NameRule,
    parse_codeowners,
    path_glob_regex,
)

# The example file of GitHub's "About code owners" page, line for line in
# meaning (comments shortened).
GITHUB_EXAMPLE = """\
# Default owners for everything in the repo.
*       @global-owner1 @global-owner2

# Order is important; the last matching pattern takes precedence.
*.js    @js-owner #This is an inline comment.

# Email addresses work too.
*.go docs@example.com

# Teams as @org/team-name.
*.txt @octo-org/octocats

# The build/logs directory at the root and its subdirectories.
/build/logs/ @doctocat

# docs/* matches docs/getting-started.md but not nested files.
docs/* docs@example.com

# Any file in an apps directory anywhere in the repository.
apps/ @octocat

# Any file in the /docs directory at the root and its subdirectories.
/docs/ @doctocat

# Any change inside /scripts.
/scripts/ @doctocat @octocat

# Any file in a logs directory at any depth.
**/logs @octocat

# /apps at the root, except /apps/github: its owners are left empty.
/apps/ @octocat
/apps/github

# /apps at the root, except /apps/github, owned by @doctocat.
/apps/ @octocat
/apps/github @doctocat
"""

GLOBAL = ("@global-owner1", "@global-owner2")


@pytest.mark.parametrize(
    ("path", "owners"),
    [
        ("README.md", GLOBAL),
        ("src/app.js", ("@js-owner",)),
        ("main.go", ("docs@example.com",)),
        ("notes/todo.txt", ("@octo-org/octocats",)),
        ("build/logs/today.log", ("@octocat",)),  # **/logs comes later
        ("build/out.bin", GLOBAL),
        ("docs/getting-started.md", ("@doctocat",)),  # /docs/ comes later
        ("docs/build-app/troubleshooting.md", ("@doctocat",)),
        ("web/apps/index.html", ("@octocat",)),
        ("scripts/deploy.sh", ("@doctocat", "@octocat")),
        ("deeply/nested/logs/x.log", ("@octocat",)),
        ("apps/github/readme.md", ("@doctocat",)),
        ("apps/web/readme.md", ("@octocat",)),
    ],
)
def test_github_documented_example(path, owners):
    assert parse_codeowners(GITHUB_EXAMPLE).owners_of(path) == owners


def test_github_inline_comment_is_not_an_owner():
    rule = parse_codeowners(GITHUB_EXAMPLE).rule_for("src/app.js")
    assert rule is not None and rule.line == 5 and rule.owners == ("@js-owner",)


def test_a_pattern_without_owners_un_owns_the_paths_it_matches():
    owners = parse_codeowners("/apps/ @octocat\n/apps/github\n")
    assert owners.owners_of("apps/github/x.py") == ()
    assert owners.owners_of("apps/other/x.py") == ("@octocat",)
    assert owners.rule_for("apps/github/x.py").line == 2


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        # docs/* on GitHub: direct children of the top-level docs only.
        ("docs/*", "docs/getting-started.md", True),
        ("docs/*", "docs/build-app/troubleshooting.md", False),
        ("docs/*", "site/docs/index.md", False),
        # A pattern without a slash matches at any depth.
        ("*.js", "a/b/c.js", True),
        ("*.js", "a/b/c.jsx", False),
        ("apps/", "x/y/apps/z.py", True),
        ("apps/", "apps", False),  # a trailing slash: a directory, not a file
        ("logs", "logs", True),
        ("logs", "a/logs/b.txt", True),
        # A leading slash anchors at the root.
        ("/docs/", "docs/a/b.md", True),
        ("/docs/", "src/docs/a.md", False),
        # ** spans directories.
        ("/apps/**/test", "apps/test", True),
        ("/apps/**/test", "apps/a/b/test/x_test.go", True),
        ("/apps/**/test", "lib/apps/a/test", False),
        ("**/logs", "logs/x", True),
        ("**", "any/thing", True),
        ("*", "top", True),
        ("?.md", "a.md", True),
        ("?.md", "ab.md", False),
    ],
)
def test_github_glob_semantics(pattern, path, matches):
    owners = parse_codeowners(f"{pattern} @o\n", dialect="github")
    assert (owners.owners_of(path) == ("@o",)) is matches


def test_three_asterisks_are_refused():
    with pytest.raises(ValueError):
        path_glob_regex("a/***/b")


# The example file of GitLab's "CODEOWNERS syntax" reference page.
GITLAB_EXAMPLE = """\
# Lines starting with # are ignored.
* @default-codeowner
* @multiple @code @owners
*.rb @ruby-owner
\\#file_with_pound.rb @owner-file-with-pound
LICENSE @legal this_does_not_match janedoe@gitlab.com
README @group @group/with-nested/subgroup
/docs/ @all-docs
/docs/* @root-docs
/docs/**/*.md @root-docs
lib/ @lib-owner
/config/ @config-owner
path\\ with\\ spaces/ @space-owner

[Documentation]
ee/docs    @docs
docs       @docs

^[Database][2] @database-team
model/db/
config/db/database-setup.md @docs-team
"""


@pytest.mark.parametrize(
    ("path", "unnamed", "documentation", "database"),
    [
        ("app/models/user.rb", ("@ruby-owner",), None, None),
        ("#file_with_pound.rb", ("@owner-file-with-pound",), None, None),
        ("LICENSE", ("@legal", "janedoe@gitlab.com"), None, None),
        ("README", ("@group", "@group/with-nested/subgroup"), None, None),
        ("docs/index.md", ("@root-docs",), ("@docs",), None),
        ("docs/projects/index.md", ("@root-docs",), ("@docs",), None),
        ("docs/projects/image.png", ("@all-docs",), ("@docs",), None),
        ("vendor/lib/x.c", ("@lib-owner",), None, None),
        ("config/app.yml", ("@config-owner",), None, None),
        ("src/config/app.yml", ("@multiple", "@code", "@owners"), None, None),
        ("a/path with spaces/b.txt", ("@space-owner",), None, None),
        ("ee/docs/x.md", ("@multiple", "@code", "@owners"), ("@docs",), None),
        (
            "model/db/schema.sql",
            ("@multiple", "@code", "@owners"),
            None,
            ("@database-team",),
        ),
        (
            "config/db/database-setup.md",
            ("@config-owner",),
            None,
            ("@docs-team",),
        ),
    ],
)
def test_gitlab_documented_example_section_by_section(
    path, unnamed, documentation, database
):
    owners = parse_codeowners(GITLAB_EXAMPLE)
    assert owners.dialect == "gitlab"
    found = {s: r.owners for s, r in owners.section_rules(path).items()}
    assert found.get(None) == unnamed
    assert found.get("Documentation") == documentation
    assert found.get("Database") == database


def test_gitlab_owner_is_the_last_matching_line_of_the_whole_file():
    owners = parse_codeowners(GITLAB_EXAMPLE)
    assert owners.owners_of("docs/index.md") == ("@docs",)  # [Documentation] last
    assert owners.owners_of("config/db/database-setup.md") == ("@docs-team",)
    assert owners.owners_of("model/db/schema.sql") == ("@database-team",)
    assert owners.owners_of("app/user.rb") == ("@ruby-owner",)


def test_gitlab_single_matcher_agrees_with_the_section_by_section_walk():
    owners = parse_codeowners(GITLAB_EXAMPLE)
    for path in (
        "docs/a/b.png",
        "config/db/database-setup.md",
        "x/lib/y.rb",
        "LICENSE",
    ):
        by_section = owners.section_rules(path).values()
        assert owners.rule_for(path) == max(by_section, key=lambda rule: rule.line)


def test_gitlab_section_headers_carry_optional_approvals_and_defaults():
    owners = parse_codeowners(GITLAB_EXAMPLE)
    rule = owners.rule_for("model/db/schema.sql")
    assert (rule.section, rule.optional, rule.approvals) == ("Database", True, 2)
    doc = owners.rule_for("ee/docs/a.md")
    assert (doc.section, doc.optional, doc.approvals) == ("Documentation", False, None)


def test_gitlab_relative_paths_match_at_any_depth_unlike_github():
    text = "[S]\ninternal/README.md @a\n"
    assert parse_codeowners(text).owners_of("docs/internal/README.md") == ("@a",)
    github = parse_codeowners("internal/README.md @a\n", dialect="github")
    assert github.owners_of("docs/internal/README.md") == ()
    assert github.owners_of("internal/README.md") == ("@a",)


def test_gitlab_sections_with_the_same_name_combine_case_insensitively():
    text = "[Docs]\n*.md @a\n[docs]\nguide.md @b\n[Other]\n*.txt @c\n"
    owners = parse_codeowners(text)
    found = owners.section_rules("guide.md")
    assert list(found) == ["Docs"] and found["Docs"].owners == ("@b",)


def test_gitlab_exclusion_removes_the_path_from_its_section_only():
    text = "* @default\n!pom.xml\n[Ruby]\n*.rb @ruby\n!/config/**/*.rb\n/config/a.rb @ops\n"
    owners = parse_codeowners(text)
    assert owners.owners_of("pom.xml") == ()
    assert owners.owners_of("config/x/a.rb") == ("@default",)  # Ruby excluded
    assert owners.owners_of("config/a.rb") == ("@default",)  # cannot re-include
    assert owners.owners_of("app/a.rb") == ("@ruby",)


def test_github_negation_is_reported_and_skipped():
    owners = parse_codeowners("* @a\n!*.md @b\n", dialect="github")
    assert owners.owners_of("x.md") == ("@a",)
    assert [p.line for p in owners.problems] == [2]


def test_non_owner_words_are_reported_on_github_and_ignored_on_gitlab():
    github = parse_codeowners("LICENSE @legal lawyers\n", dialect="github")
    assert github.owners_of("LICENSE") == ("@legal",)
    assert github.problems[0].line == 1 and "lawyers" in github.problems[0].message
    gitlab = parse_codeowners("LICENSE @legal lawyers\n", dialect="gitlab")
    assert gitlab.owners_of("LICENSE") == ("@legal",) and gitlab.problems == ()


def test_paths_are_normalised_before_matching():
    owners = parse_codeowners("/src/ @a\n")
    assert owners.owners_of("./src/x.py") == ("@a",)
    assert owners.owners_of("/src/x.py") == ("@a",)
    assert owners.owners_of("src\\x.py") == ("@a",)


def _real_world_file() -> tuple[str, dict[str, tuple[str, ...]]]:
    """Build a 200+ rule monorepo CODEOWNERS and the owners it implies."""
    lines = [
        "# Acme monorepo CODEOWNERS",
        "",
        "* @acme/platform",
        "*.md @acme/docs  # docs everywhere",
        "/.github/ @acme/ci",
    ]
    expected: dict[str, tuple[str, ...]] = {
        "Makefile": ("@acme/platform",),
        "docs/README.md": ("@acme/docs",),
        "services/svc00/README.md": ("@acme/team-0",),  # a later line wins
        ".github/workflows/ci.yml": ("@acme/ci",),
    }
    for i in range(60):
        team = f"@acme/team-{i % 12}"
        lines.append(f"/services/svc{i:02d}/ {team}")
        lines.append(f"/services/svc{i:02d}/tests/integration/ @acme/qa-{i % 5}")
        lines.append(f"/services/svc{i:02d}/generated/")
        expected[f"services/svc{i:02d}/src/main.py"] = (team,)
        expected[f"services/svc{i:02d}/tests/integration/test_db.py"] = (
            f"@acme/qa-{i % 5}",
        )
        expected[f"services/svc{i:02d}/generated/api_pb2.py"] = ()
    lines += [
        "",
        "# Spaces and hashes in folder names",
        "/design\\ assets/ design@acme.example",
        "/\\#legacy/ @acme/archaeology",
        "**/fixtures/ @acme/qa-0",
    ]
    expected["design assets/logo.svg"] = ("design@acme.example",)
    expected["#legacy/old.c"] = ("@acme/archaeology",)
    expected["services/svc07/tests/fixtures/a.json"] = ("@acme/qa-0",)
    for i in range(20):
        lines.append(f"/libs/lib{i:02d}/**/*.proto @acme/api-{i % 3}")
        expected[f"libs/lib{i:02d}/a/b/c.proto"] = (f"@acme/api-{i % 3}",)
        expected[f"libs/lib{i:02d}/a/b/c.py"] = ("@acme/platform",)
    return "\n".join(lines) + "\n", expected


def test_real_world_shaped_file_with_200_rules():
    text, expected = _real_world_file()
    owners = parse_codeowners(text)
    assert owners.dialect == "github" and owners.problems == ()
    assert len(owners.rules) >= 200
    assert [r.line for r in owners.rules] == sorted(r.line for r in owners.rules)
    got = {path: owners.owners_of(path) for path in expected}
    assert got == expected


def test_precedence_is_the_last_matching_line_not_the_most_specific():
    owners = parse_codeowners("/src/payments/ @payments\n*.py @python\n")
    assert owners.owners_of("src/payments/api.py") == ("@python",)
    reordered = parse_codeowners("*.py @python\n/src/payments/ @payments\n")
    assert reordered.owners_of("src/payments/api.py") == ("@payments",)


@pytest.mark.parametrize(
    ("classname", "suite", "owners"),
    [
        ("com.acme.payments.CheckoutTest", "", ("@payments",)),
        ("com.acme.payments.api.RefundTest", "", ("@payments",)),  # .* = all below
        ("com.acme.paymentsx.Other", "", ("@platform",)),
        ("com.acme.payments.legacy.OldTest", "", ()),  # un-owned by a later rule
        ("com.acme.orders.OrderIT", "", ("@qa",)),  # no dot: any segment
        ("tests.test_cart.TestCart", "", ("@cart",)),
        ("", "Checkout flow", ("@web",)),
        ("github.com/acme/search/index", "", ("@search",)),
        ("", "", ()),
    ],
)
def test_name_rules_for_tests_without_file_paths(classname, suite, owners):
    rules = NameOwners(
        [
            NameRule("com.acme.*", ("@platform",)),
            NameRule("com.acme.payments.*", ("@payments",)),
            NameRule("com.acme.payments.legacy", ()),
            NameRule("*IT", ("@qa",)),
            NameRule("tests.test_cart", ("@cart",)),
            NameRule("Checkout*", ("@web",), kind="suite"),
            NameRule("github.com/acme/search/**", ("@search",)),
        ]
    )
    assert rules.owners_of(classname=classname, suite=suite) == owners
