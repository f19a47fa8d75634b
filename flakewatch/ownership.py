"""Who owns each test, and which layer of the pyramid it is in.

A project's ownership rules (``OwnershipRule``) and layer rules
(``LayerRule``, after the defaults of ``flakewatch.layers``) decide every
test's ``team`` and ``layer``. Matching is pure (``flakewatch.codeowners``
and ``flakewatch.layers``); this module reads the rules, matches the tests'
names as plain tuples and writes only the changed assignments back in one
set-based UPDATE (``db.update_rows``), never an ORM object per test.

- ``import_codeowners`` replaces a project's imported rules from a
  CODEOWNERS file; ``replace_layer_rules`` its layer rules; both re-assign
  the project's tests at once (``assign_project``).
- ``assign_new`` gives the tests the write path is about to insert their
  team and layer, so a new test is owned from its first upload.
- ``save_team`` creates or updates a team.

Precedence: imported rules first, then manual ones, each in line order; the
last matching rule wins (GitHub's rule). Path rules match the test's
``file``; classname and suite rules match tests by those names (many JUnit
writers omit ``file``); whichever kind matches with the higher precedence
decides. A CODEOWNERS line naming several owners gives its tests to the
first of them: flakewatch needs one owning team per test.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from django.db import transaction
from django.db.models import Count
from django.utils.text import slugify

from flakewatch import db
from flakewatch.codeowners import (
    Codeowners,
    NameOwners,
    NameRule,
    Problem,
    Rule,
    parse_codeowners,
    path_glob_regex,
)
from flakewatch.layers import (
    DEFAULT_LAYER_RULES,
    LayerRules,
    parse_layer_rules,
)
from flakewatch.layers import (
    LayerRule as PureLayerRule,
)
from flakewatch.models import (
    Case,
    LayerRule,
    OwnershipRule,
    Project,
    RuleKind,
    Team,
)

logger = logging.getLogger(__name__)

# (team_id or None, layer) for one test.
Assignment = tuple[int | None, str]
# (suite, classname, name, file) of one test, as the write path holds it.
CaseNames = tuple[str, str, str, str]
_HANDLE_PUNCTUATION = re.compile(r"[@/.+]+")
SLUG_LENGTH = 64


class Matcher:
    """A project's compiled ownership and layer rules."""

    def __init__(
        self,
        ownership: Sequence[OwnershipRule],
        layers: Sequence[LayerRule],
    ) -> None:
        path_rules: list[Rule] = []
        name_rules: list[NameRule] = []
        # The rules arrive in precedence order; the rank is their position.
        for rank, rule in enumerate(ownership, start=1):
            owners = (str(rule.team_id),) if rule.team_id is not None else ()
            if rule.kind == "path":
                try:
                    regex = path_glob_regex(rule.pattern)
                except ValueError:
                    logger.warning("skipping ownership rule %s: bad pattern", rule.pk)
                    continue
                path_rules.append(
                    Rule(
                        line=rank,
                        pattern=rule.pattern,
                        owners=owners,
                        section=rule.section or None,
                        excluded=rule.excluded,
                        regex=regex,
                    )
                )
            elif not rule.excluded:
                kind: Literal["classname", "suite"] = (
                    "suite" if rule.kind == "suite" else "classname"
                )
                name_rules.append(NameRule(rule.pattern, owners, kind, rank))
        self._paths = Codeowners(path_rules, (), "github")
        self._names = NameOwners(name_rules)
        pure = parse_layer_rules(DEFAULT_LAYER_RULES)
        pure += [
            PureLayerRule(line=r.line, kind=r.kind, pattern=r.pattern, layer=r.layer)  # type: ignore[arg-type]
            for r in layers
        ]
        self._layers = LayerRules(pure)
        self._by_file: dict[str, Rule | None] = {}
        self._by_names: dict[tuple[str, str], NameRule | None] = {}

    def team_of(self, *, file: str, classname: str, suite: str) -> int | None:
        """Return the owning team's id of a test; None when nobody owns it."""
        path_rule = None
        if file:
            if file not in self._by_file:
                self._by_file[file] = self._paths.rule_for(file)
            path_rule = self._by_file[file]
        names = (classname, suite)
        if names not in self._by_names:
            self._by_names[names] = self._names.rule_for(
                classname=classname, suite=suite
            )
        name_rule = self._by_names[names]
        owners: tuple[str, ...] = ()
        if path_rule is not None and (
            name_rule is None or path_rule.line > name_rule.line
        ):
            owners = path_rule.owners
        elif name_rule is not None:
            owners = name_rule.owners
        return int(owners[0]) if owners else None

    def assign(self, *, file: str, classname: str, suite: str) -> Assignment:
        """Return (team id or None, layer) of one test."""
        team = self.team_of(file=file, classname=classname, suite=suite)
        layer = self._layers.classify(file=file, classname=classname, suite=suite)
        return team, layer


def project_matcher(project_id: int) -> Matcher:
    """Return the compiled rules of a project; two statements."""
    # ownershiprule_order_idx (project, source, line): "imported" sorts
    # before "manual", which is the precedence.
    ownership = list(
        OwnershipRule.objects.filter(project_id=project_id).order_by(
            "source", "line", "id"
        )
    )
    # layerrule_order_idx (project, line).
    layers = list(LayerRule.objects.filter(project_id=project_id).order_by("line"))
    return Matcher(ownership, layers)


def assign_new(project_id: int, cases: Iterable[CaseNames]) -> list[Assignment]:
    """Return the (team id, layer) of each of ``cases``, in their order.

    For the write path, before it inserts tests not seen before; reads the
    project's rules (two statements), writes nothing.
    """
    cases = list(cases)
    if not cases:
        return []
    matcher = project_matcher(project_id)
    return [
        matcher.assign(file=file, classname=classname, suite=suite)
        for suite, classname, _name, file in cases
    ]


def assign_project(project: Project) -> int:
    """Re-assign every test of ``project`` under its rules; return changes.

    Reads (id, file, classname, suite, team, layer) tuples once and writes
    the changed ones in one set-based UPDATE. Idempotent; the caller may
    hold a transaction (the rule change's), otherwise this opens one.

    A test first stored by an upload committing while the rules change may
    keep the assignment of the old rules until the next change: uploads do
    not wait on rule edits.
    """
    with transaction.atomic():
        matcher = project_matcher(project.pk)
        rows = (
            Case.objects.filter(project=project)
            .values_list("id", "file", "classname", "suite", "team_id", "layer")
            .iterator(chunk_size=10_000)
        )
        changed = []
        for case_id, file, classname, suite, team_id, layer in rows:
            wanted = matcher.assign(file=file, classname=classname, suite=suite)
            if wanted != (team_id, layer):
                changed.append((case_id, *wanted))
        db.update_rows(Case, ["id", "team_id", "layer"], changed)
    return len(changed)


@dataclass(frozen=True)
class OwnershipSummary:
    """What a project's ownership looks like after a change."""

    rules: int
    teams: int
    tests_by_team: dict[str, int]
    unowned: int
    problems: tuple[Problem, ...] = ()


def ownership_summary(project: Project, *, rules: int, teams: int) -> OwnershipSummary:
    """Count the tests each team owns in ``project``, and the unowned ones."""
    # case_team_idx (project, team).
    counts = dict(
        Case.objects.filter(project=project)
        .values_list("team__slug")
        .annotate(n=Count("pk"))
        .order_by()
    )
    unowned = counts.pop(None, 0)
    return OwnershipSummary(
        rules=rules,
        teams=teams,
        tests_by_team=dict(sorted(counts.items())),
        unowned=unowned,
    )


def team_slug_for(owner: str) -> str:
    """Return the team slug an unmapped CODEOWNERS owner becomes.

    ``@acme/payments`` -> ``acme-payments``, ``qa@acme.example`` ->
    ``qa-acme-example``.
    """
    slug = slugify(_HANDLE_PUNCTUATION.sub("-", owner).strip("-"))
    return slug[:SLUG_LENGTH].strip("-") or "owner"


def _github_pattern(rule: Rule, dialect: str) -> str | None:
    """Return the pattern that means the same with GitHub's semantics.

    GitLab matches a relative ``docs/*`` at any depth, GitHub anchors it;
    ``**/docs/*`` means the GitLab reading on both. None when no rewrite
    gives the same regex.
    """
    if dialect == "github":
        return rule.pattern
    for candidate in (rule.pattern, f"**/{rule.pattern}"):
        try:
            if path_glob_regex(candidate) == rule.regex:
                return candidate
        except ValueError:
            continue
    return None


def _teams_for(owners: Iterable[str], mapping: Mapping[str, str]) -> dict[str, Team]:
    """Return the team of each owner, creating missing teams (few statements)."""
    slugs = {owner: mapping.get(owner) or team_slug_for(owner) for owner in owners}
    existing = {t.slug: t for t in Team.objects.filter(slug__in=set(slugs.values()))}
    names: dict[str, str] = {}
    for owner, slug in slugs.items():
        if slug not in existing:
            names.setdefault(slug, owner.lstrip("@"))
    if names:
        Team.objects.bulk_create(
            [Team(slug=slug, name=name) for slug, name in names.items()],
            ignore_conflicts=True,  # a concurrent import created it meanwhile
        )
        existing.update((t.slug, t) for t in Team.objects.filter(slug__in=list(names)))
    return {owner: existing[slug] for owner, slug in slugs.items()}


def import_codeowners(
    project: Project, text: str, *, mapping: Mapping[str, str] | None = None
) -> OwnershipSummary:
    """Replace ``project``'s imported rules with a CODEOWNERS file's.

    ``mapping`` maps an owner as written (``@org/payments``) to a team slug;
    unmapped owners become teams named after them (``team_slug_for``).
    Teams are created when missing. Manual rules stay. Re-assigns the
    project's tests; one transaction of its own (or the caller's).
    Idempotent: the same file again changes nothing.
    """
    mapping = mapping or {}
    parsed = parse_codeowners(text)
    problems = list(parsed.problems)
    first_owners = {rule.owners[0] for rule in parsed.rules if rule.owners}
    with transaction.atomic():
        teams = _teams_for(sorted(first_owners | set(mapping)), mapping)
        rows = []
        for rule in parsed.rules:
            pattern = _github_pattern(rule, parsed.dialect)
            if pattern is None:
                problems.append(Problem(rule.line, "pattern cannot be stored"))
                continue
            owner = rule.owners[0] if rule.owners else ""
            rows.append(
                OwnershipRule(
                    project=project,
                    pattern=pattern,
                    kind=RuleKind.PATH,
                    team=teams[owner] if owner else None,
                    source=OwnershipRule.Source.IMPORTED,
                    line=rule.line,
                    section=rule.section or "",
                    excluded=rule.excluded,
                    owner=owner,
                )
            )
        OwnershipRule.objects.filter(
            project=project, source=OwnershipRule.Source.IMPORTED
        ).delete()
        OwnershipRule.objects.bulk_create(rows, batch_size=1000)
        assign_project(project)
        used = {rule.team_id for rule in rows if rule.team_id is not None}
        summary = ownership_summary(project, rules=len(rows), teams=len(used))
    return OwnershipSummary(
        rules=summary.rules,
        teams=summary.teams,
        tests_by_team=summary.tests_by_team,
        unowned=summary.unowned,
        problems=tuple(problems),
    )


def replace_layer_rules(project: Project, text: str) -> dict[str, int]:
    """Replace ``project``'s layer rules with a rule file's; return tests per layer.

    Raise ``flakewatch.layers.LayerRulesError`` (nothing changed) on a bad
    line. The defaults of ``flakewatch.layers`` always apply first. Owns its
    transaction (or joins the caller's); idempotent.
    """
    parsed = parse_layer_rules(text)
    with transaction.atomic():
        LayerRule.objects.filter(project=project).delete()
        LayerRule.objects.bulk_create(
            [
                LayerRule(
                    project=project,
                    pattern=rule.pattern,
                    kind=rule.kind,
                    layer=rule.layer,
                    line=rule.line,
                )
                for rule in parsed
            ]
        )
        assign_project(project)
        # case_layer_idx (project, layer).
        return dict(
            Case.objects.filter(project=project)
            .values_list("layer")
            .annotate(n=Count("pk"))
            .order_by("layer")
        )


def save_team(
    slug: str, *, name: str | None = None, emails: Sequence[str] | None = None
) -> tuple[Team, bool]:
    """Create or update the team ``slug``; return it and whether it is new.

    A new team without a name is named after its slug; ``emails`` replaces
    the digest addresses when given. Idempotent.
    """
    with transaction.atomic():
        team, created = Team.objects.select_for_update().get_or_create(
            slug=slug, defaults={"name": name or slug, "emails": list(emails or [])}
        )
        if not created:
            fields = []
            if name is not None:
                team.name = name
                fields.append("name")
            if emails is not None:
                team.emails = list(emails)
                fields.append("emails")
            if fields:
                team.save(update_fields=fields)
    return team, created
