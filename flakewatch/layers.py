r"""Say which layer of the test pyramid a test belongs to.

Pure: no Django, no database. ``classify(rules, file=..., classname=...,
suite=...)`` returns ``unit``, ``integration``, ``e2e`` or ``unknown``.

Rule file format (the defaults below are one), in the spirit of CODEOWNERS:
one rule a line, ``<pattern> <layer>``; ``#`` starts a comment line; the
last matching line wins, so specific rules go after broad ones. A pattern is
a path glob matched against the test's ``file`` with CODEOWNERS semantics
(``flakewatch.codeowners``: ``*.cy.ts``, ``e2e/``, ``/tests/unit/``), or,
prefixed ``classname:`` or ``suite:``, a dotted-name glob matched against
that name (``classname:*IT``, ``classname:com.acme.e2e.*``). A layer of
``unknown`` un-classifies what earlier lines matched. Escape a space in a
pattern with ``\ ``.

Defaults: unit-test naming (``test_*.py``, ``*_test.go``, ``*.test.ts``,
``*Test``) first, then integration (Maven Failsafe's ``*IT``, ``IT*``,
``*ITCase``; ``integration`` and ``functional`` folders or package
segments, as Rails names its controller-level tests), then end-to-end
(``e2e``, ``acceptance`` and ``system`` folders or segments, as Rails names
its browser tests; Cypress ``cypress/`` and ``*.cy.*``; Playwright specs
under ``e2e/``; ``*.e2e.*`` and ``*.e2e-spec.*``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from flakewatch.codeowners import (
    LastMatch,
    name_glob_regex,
    normalise_name,
    normalise_path,
    path_glob_regex,
    split_tokens,
)

Layer = Literal["unit", "integration", "e2e", "unknown"]
LAYERS: tuple[Layer, ...] = ("unit", "integration", "e2e", "unknown")
Kind = Literal["path", "classname", "suite"]

DEFAULT_LAYER_RULES = """\
# Unit: the naming conventions of the common runners.
test_*.py                unit
*_test.py                unit
*_test.go                unit
*.test.*                 unit
*.spec.*                 unit
*Test.java               unit
*Tests.java              unit
Test*.java               unit
*Test.kt                 unit
unit/                    unit
classname:*Test          unit
classname:*Tests         unit
classname:Test*          unit
classname:test_*         unit
classname:unit           unit

# Integration: Maven Failsafe's defaults, then folders and package segments.
*IT.java                 integration
IT*.java                 integration
*ITCase.java             integration
*IT.kt                   integration
/src/it/                 integration
integration/             integration
integration-tests/       integration
integration_tests/       integration
functional/              integration
classname:*IT            integration
classname:IT*            integration
classname:*ITCase        integration
classname:integration    integration
classname:functional     integration

# End-to-end: folders, package segments, Cypress and Playwright specs.
e2e/                     e2e
acceptance/              e2e
system/                  e2e
cypress/                 e2e
*.cy.*                   e2e
*.e2e.*                  e2e
*.e2e-spec.*             e2e
classname:e2e            e2e
classname:acceptance     e2e
classname:system         e2e
suite:e2e                e2e
"""


@dataclass(frozen=True)
class LayerRule:
    """One rule: tests matching ``pattern`` (of ``kind``) are in ``layer``."""

    line: int
    kind: Kind
    pattern: str
    layer: Layer


class LayerRules:
    """Layer rules with one precompiled matcher per kind of name."""

    def __init__(self, rules: Sequence[LayerRule]) -> None:
        self.rules = tuple(rules)
        self._matchers: dict[str, tuple[list[int], LastMatch]] = {}
        for kind in ("path", "classname", "suite"):
            positions = [i for i, r in enumerate(self.rules) if r.kind == kind]
            regexes = [_regex(self.rules[i]) for i in positions]
            self._matchers[kind] = (positions, LastMatch(regexes))

    def rule_for(
        self, *, file: str = "", classname: str = "", suite: str = ""
    ) -> LayerRule | None:
        """Return the last rule matching the test's file, classname or suite."""
        best = -1
        for kind, value in (
            ("path", normalise_path(file) if file else ""),
            ("classname", normalise_name(classname) if classname else ""),
            ("suite", normalise_name(suite) if suite else ""),
        ):
            if not value:
                continue
            positions, matcher = self._matchers[kind]
            index = matcher.index(value)
            if index is not None:
                best = max(best, positions[index])
        return self.rules[best] if best >= 0 else None

    def classify(
        self, *, file: str = "", classname: str = "", suite: str = ""
    ) -> Layer:
        """Return the test's layer; ``unknown`` when no rule matches."""
        rule = self.rule_for(file=file, classname=classname, suite=suite)
        return rule.layer if rule is not None else "unknown"


def _regex(rule: LayerRule) -> str:
    if rule.kind == "path":
        return path_glob_regex(rule.pattern)
    return name_glob_regex(rule.pattern)


class LayerRulesError(ValueError):
    """A rule file line that cannot be read; the message names the line."""


_KIND_PREFIX = re.compile(r"^(classname|suite|path):")


def parse_layer_rules(text: str) -> list[LayerRule]:
    """Parse a layer rule file; raise ``LayerRulesError`` on a bad line."""
    rules = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = split_tokens(line)
        if len(tokens) != 2:
            raise LayerRulesError(f"line {number}: expected '<pattern> <layer>'")
        pattern, layer = tokens
        if layer not in LAYERS:
            raise LayerRulesError(
                f"line {number}: layer {layer!r} is not one of {', '.join(LAYERS)}"
            )
        m = _KIND_PREFIX.match(pattern)
        kind = m.group(1) if m else "path"
        if m:
            pattern = pattern[m.end() :]
        rule = LayerRule(line=number, kind=kind, pattern=pattern, layer=layer)  # type: ignore[arg-type]
        try:
            _regex(rule)
        except ValueError as exc:
            raise LayerRulesError(f"line {number}: {exc}") from exc
        rules.append(rule)
    return rules


def load_layer_rules(text: str = "", *, with_defaults: bool = True) -> LayerRules:
    """Return compiled rules: the defaults (unless told not to), then ``text``.

    A project's own rules come after the defaults, so they win.
    """
    rules = parse_layer_rules(DEFAULT_LAYER_RULES) if with_defaults else []
    rules += parse_layer_rules(text)
    return LayerRules(rules)


def classify(
    rules: LayerRules, *, file: str = "", classname: str = "", suite: str = ""
) -> Layer:
    """Return the layer of one test under ``rules``."""
    return rules.classify(file=file, classname=classname, suite=suite)
