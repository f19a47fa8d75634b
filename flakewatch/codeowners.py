r"""Parse CODEOWNERS files (GitHub and GitLab) and say who owns a path.

Pure: no Django, no database. ``parse_codeowners(text)`` returns the rules in
file order with their line numbers; ``Codeowners.owners_of(path)`` answers
with the owners of the last matching line, as GitHub does.

Glob semantics (gitignore-style, as CODEOWNERS means it):

- ``*`` matches within one path segment, ``?`` one character, ``**`` any
  number of segments; ``\`` escapes the next character (``\ `` a space,
  ``\#`` a hash). ``[ ]`` ranges and ``!`` negation are literal on GitHub.
- A leading ``/`` anchors at the repository root. A trailing ``/`` matches
  everything under a directory, at any depth, but not a file of that name.
- A pattern whose last segment is a name (``docs``, ``f*``) also matches
  everything under a directory of that name; a last segment of a lone ``*``
  matches direct children only (``docs/*``).
- A pattern without a slash (``*.js``, ``apps/``) matches at any depth. On
  GitHub a slash anywhere else anchors it (``docs/*`` means ``/docs/*``); on
  GitLab every pattern without a leading ``/`` matches at any depth
  (``docs/*`` means ``**/docs/*``), as GitLab documents.

GitLab sections: ``[Name]``, optional ``^[Name]``, an approval count
``[Name][2]`` and default owners after the header (used by the section's
lines that name no owners). GitLab applies each section's last matching line
separately (``section_owners``); flakewatch needs one owning team per test,
so ``owners_of`` takes the last matching line of the whole file among the
sections' matches: the most specific line usually comes last, and a file
without sections then behaves exactly as on GitHub. Optional sections own
paths like any other (they only relax approval, which flakewatch has none
of). GitLab ``!pattern`` lines exclude a path from their section.

A line with a pattern and no owners (and no section default) un-owns the
paths it matches: ``owners_of`` returns ``()`` when it is the last match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Dialect = Literal["github", "gitlab"]

_SECTION = re.compile(
    r"^(?P<optional>\^)?\[(?P<name>[^\]]+)\](?:\[(?P<approvals>\d+)\])?"
    r"(?P<rest>(?:\s.*)?)$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HANDLE = re.compile(r"^@@?[\w.-]+(?:/[\w.-]+)*$")
_NEVER = "(?!)"


def is_owner(token: str) -> bool:
    """Return whether ``token`` is an owner: ``@user``, ``@org/team``, an email."""
    return bool(_HANDLE.match(token) or _EMAIL.match(token))


@dataclass(frozen=True)
class Rule:
    """One CODEOWNERS line: a pattern and its owners (empty: un-owned)."""

    line: int
    pattern: str
    owners: tuple[str, ...]
    section: str | None = None
    optional: bool = False
    approvals: int | None = None
    excluded: bool = False
    regex: str = field(default=_NEVER, repr=False, compare=False)

    def matches(self, path: str) -> bool:
        """Return whether this rule's pattern matches ``path``."""
        return re.fullmatch(self.regex, normalise_path(path)) is not None


@dataclass(frozen=True)
class Problem:
    """A line that was skipped or partly ignored, with the reason."""

    line: int
    message: str


class LastMatch:
    """Find the last of many regexes that fully matches a string, in one call.

    The regexes are joined in reverse order into one alternation, so the
    engine's first successful alternative is the last matching regex; each
    alternative is one capturing group and the regexes themselves hold no
    capturing groups, so ``lastindex`` names the winner. (Trying the
    any-depth patterns once per ``/`` instead measured 2-3x slower.)
    """

    def __init__(self, regexes: Sequence[str]) -> None:
        self._count = len(regexes)
        body = "|".join(f"({regex})" for regex in reversed(regexes))
        self._regex = re.compile(body) if regexes else None

    def index(self, text: str) -> int | None:
        """Return the position of the last regex matching all of ``text``."""
        if self._regex is None:
            return None
        m = self._regex.fullmatch(text)
        if m is None:
            return None
        return self._count - m.lastindex  # type: ignore[operator]

    def any(self, text: str) -> bool:
        """Return whether any of the regexes matches all of ``text``."""
        return self._regex is not None and self._regex.fullmatch(text) is not None


def normalise_path(path: str) -> str:
    """Return ``path`` relative to the repository root with ``/`` separators."""
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")


def _split_segments(pattern: str) -> list[str]:
    """Split on unescaped ``/``."""
    segments, current, i = [], [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            current.append(pattern[i : i + 2])
            i += 2
            continue
        if ch == "/":
            segments.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    segments.append("".join(current))
    return segments


def _segment_regex(segment: str) -> str:
    out, i = [], 0
    while i < len(segment):
        ch = segment[i]
        if ch == "\\" and i + 1 < len(segment):
            out.append(re.escape(segment[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def segments_regex(segments: list[str], *, lone_star_descends: bool = False) -> str:
    """Return the regex for glob ``segments`` joined by ``/``.

    ``lone_star_descends`` makes a last segment ``*`` match any depth below
    (the dotted-name rules use it); for paths it matches one segment only.
    """
    out: list[str] = []
    need_slash = False
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == "**":
            if i == 0 and i == last:
                out.append(".+")
            elif i == 0:
                out.append("(?:.+/)?")
                need_slash = False
            elif i == last:
                out.append("/.+")
            else:
                out.append("(?:/.+)?")
                need_slash = True
            continue
        if need_slash:
            out.append("/")
        if seg == "*":
            out.append("[^/]+" if not (i == last and lone_star_descends) else ".+")
        else:
            out.append(_segment_regex(seg))
            if i == last:
                out.append("(?:/.*)?")  # a directory's name owns its contents
        need_slash = True
    return "".join(out)


def path_glob_regex(pattern: str, *, dialect: Dialect = "github") -> str:
    """Return the regex (for ``fullmatch``) of a CODEOWNERS path pattern.

    Raise ``ValueError`` for a pattern no CODEOWNERS implementation accepts.
    """
    if "***" in pattern:
        raise ValueError("a pattern cannot hold three asterisks in a row")
    anchored = pattern.startswith("/")
    body = pattern[1:] if anchored else pattern
    dir_only = body.endswith("/") and not body.endswith("\\/")
    if dir_only:
        body = body[:-1]
    if not body:
        return _NEVER  # "/" alone names no file
    segments = _split_segments(body)
    if "" in segments:
        raise ValueError("a pattern cannot hold an empty segment (//)")
    at_any_depth = not anchored and (dialect == "gitlab" or len(segments) == 1)
    if at_any_depth and segments[0] != "**":
        segments.insert(0, "**")
    if dir_only:
        segments.append("**")
    return segments_regex(segments)


def split_tokens(line: str) -> list[str]:
    """Split on unescaped whitespace, keeping escapes for the glob compiler."""
    tokens, current, i = [], [], 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            current.append(line[i : i + 2])
            i += 2
            continue
        if ch.isspace():
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(ch)
        i += 1
    if current:
        tokens.append("".join(current))
    return tokens


def _owners(
    tokens: Iterable[str], dialect: Dialect, line: int, problems: list[Problem]
) -> tuple[str, ...]:
    owners: list[str] = []
    for token in tokens:
        if token.startswith("#"):
            if dialect == "github":
                break  # GitHub: an inline comment runs to the end of the line
            continue  # GitLab has no inline comments but reads owners in them
        if is_owner(token):
            owners.append(token)
        elif dialect == "github":
            problems.append(Problem(line, f"{token!r} is not an owner; ignored"))
    return tuple(owners)


def detect_dialect(text: str) -> Dialect:
    """Return ``gitlab`` when ``text`` has a ``[Section]`` header, else ``github``."""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("[", "^[")) and _SECTION.match(line):
            return "gitlab"
    return "github"


@dataclass(frozen=True)
class _Section:
    rules: tuple[Rule, ...]
    owning: LastMatch
    excluding: LastMatch


class Codeowners:
    """Parsed CODEOWNERS rules with precompiled matchers."""

    def __init__(
        self, rules: Sequence[Rule], problems: Sequence[Problem], dialect: Dialect
    ) -> None:
        self.rules = tuple(rules)
        self.problems = tuple(problems)
        self.dialect = dialect
        by_section: dict[str | None, list[Rule]] = {}
        for rule in self.rules:
            key = rule.section.lower() if rule.section else None
            by_section.setdefault(key, []).append(rule)
        self._sections: dict[str | None, _Section] = {}
        for key, section_rules in by_section.items():
            owning = tuple(r for r in section_rules if not r.excluded)
            excluded = [r.regex for r in section_rules if r.excluded]
            self._sections[key] = _Section(
                rules=owning,
                owning=LastMatch([r.regex for r in owning]),
                excluding=LastMatch(excluded),
            )
        # The winner over all sections is the last matching owning line of
        # the file unless a ! line takes its section out: one matcher for
        # the common case, the per-section walk only when an exclusion hits.
        self._owning = tuple(r for r in self.rules if not r.excluded)
        self._all = LastMatch([r.regex for r in self._owning])
        self._exclusions = LastMatch([r.regex for r in self.rules if r.excluded])

    def section_rules(self, path: str) -> dict[str | None, Rule]:
        """Return each section's last matching rule (GitLab's semantics).

        The key is the section name as first written (``None`` for lines
        before any header); a section whose ``!`` line matches is left out.
        """
        path = normalise_path(path)
        found: dict[str | None, Rule] = {}
        for section in self._sections.values():
            if section.excluding.any(path):
                continue
            index = section.owning.index(path)
            if index is not None:
                rule = section.rules[index]
                found[rule.section] = rule
        return found

    def rule_for(self, path: str) -> Rule | None:
        """Return the rule that decides who owns ``path``, or ``None``."""
        path = normalise_path(path)
        if not self._exclusions.any(path):
            index = self._all.index(path)
            return self._owning[index] if index is not None else None
        matches = self.section_rules(path)
        if not matches:
            return None
        return max(matches.values(), key=lambda rule: rule.line)

    def owners_of(self, path: str) -> tuple[str, ...]:
        """Return the owners of ``path``; ``()`` when nobody owns it."""
        rule = self.rule_for(path)
        return rule.owners if rule is not None else ()


def parse_codeowners(
    text: str, *, dialect: Dialect | Literal["auto"] = "auto"
) -> Codeowners:
    """Parse a CODEOWNERS file; ``auto`` picks GitLab when it has sections.

    Lines that cannot be used are skipped and listed in ``problems`` with
    their line numbers, so one bad line never hides the rest of the file.
    """
    chosen: Dialect = detect_dialect(text) if dialect == "auto" else dialect
    rules: list[Rule] = []
    problems: list[Problem] = []
    section: str | None = None
    names: dict[str, str] = {}  # GitLab section names are case-insensitive
    defaults: tuple[str, ...]
    optional, approvals, defaults = False, None, ()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _SECTION.match(line) if chosen == "gitlab" else None
        if header is not None:
            name = header["name"].strip()
            section = names.setdefault(name.lower(), name)
            optional = bool(header["optional"])
            approvals = int(header["approvals"]) if header["approvals"] else None
            defaults = _owners(split_tokens(header["rest"]), chosen, number, problems)
            continue
        pattern, *rest = split_tokens(line)
        excluded = pattern.startswith("!")
        if excluded and chosen == "github":
            problems.append(Problem(number, "GitHub does not support ! negation"))
            continue
        if excluded:
            pattern = pattern[1:]
        owners = _owners(rest, chosen, number, problems)
        if not owners and not excluded:
            owners = defaults
        try:
            regex = path_glob_regex(pattern, dialect=chosen)
        except ValueError as exc:
            problems.append(Problem(number, str(exc)))
            continue
        rules.append(
            Rule(
                line=number,
                pattern=pattern,
                owners=() if excluded else owners,
                section=section,
                optional=optional,
                approvals=approvals,
                excluded=excluded,
                regex=regex,
            )
        )
    return Codeowners(rules, problems, chosen)


# --- Rules for tests without a file path: globs on dotted names ------------

NameKind = Literal["classname", "suite"]
_NAME_SEPARATORS = re.compile(r"::|[./]")


def normalise_name(name: str) -> str:
    """Return a dotted name with ``::`` and ``/`` read as ``.`` separators."""
    return _NAME_SEPARATORS.sub("/", name.strip())


def name_glob_regex(pattern: str) -> str:
    """Return the regex (for ``fullmatch`` on ``normalise_name``) of a name glob.

    Segments are split on ``.``, ``::`` and ``/``; ``*`` matches within a
    segment and ``**`` across segments. As for paths, a pattern without a
    separator matches any segment at any depth (``*IT``, ``integration``),
    one with a separator is anchored at the start, and a match also covers
    everything below it. Unlike paths, a trailing ``.*`` covers all depths
    (``com.acme.payments.*`` owns ``com.acme.payments.api.RefundTest``),
    because that is what a package wildcard means to its readers.
    """
    segments = _NAME_SEPARATORS.split(pattern.strip())
    if any(not seg for seg in segments):
        raise ValueError(f"{pattern!r} has an empty name segment")
    if len(segments) == 1 and segments[0] != "**":
        segments.insert(0, "**")
    return segments_regex(segments, lone_star_descends=True)


@dataclass(frozen=True)
class NameRule:
    """Owners for tests whose classname (or suite name) matches ``pattern``."""

    pattern: str
    owners: tuple[str, ...]
    kind: NameKind = "classname"
    line: int = 0


class NameOwners:
    """Last-matching-rule ownership for tests known only by their names."""

    def __init__(self, rules: Sequence[NameRule]) -> None:
        self.rules = tuple(rules)
        self._by_kind: dict[str, tuple[list[int], LastMatch]] = {}
        for kind in ("classname", "suite"):
            positions = [i for i, r in enumerate(self.rules) if r.kind == kind]
            regexes = [name_glob_regex(self.rules[i].pattern) for i in positions]
            self._by_kind[kind] = (positions, LastMatch(regexes))

    def rule_for(self, *, classname: str = "", suite: str = "") -> NameRule | None:
        """Return the last rule (in ``rules`` order) matching either name."""
        best = -1
        for kind, name in (("classname", classname), ("suite", suite)):
            if not name:
                continue
            positions, matcher = self._by_kind[kind]
            index = matcher.index(normalise_name(name))
            if index is not None:
                best = max(best, positions[index])
        return self.rules[best] if best >= 0 else None

    def owners_of(self, *, classname: str = "", suite: str = "") -> tuple[str, ...]:
        """Return the owners of a test by its names; ``()`` when unowned."""
        rule = self.rule_for(classname=classname, suite=suite)
        return rule.owners if rule is not None else ()
