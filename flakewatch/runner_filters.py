"""Turn a quarantine list into the text each test runner takes to skip it.

Pure: no Django, no database. Each ``*_filter`` function takes the accepted
quarantine items (suite, classname, name, file as JUnit reported them) and
returns the exact text for one runner; ``render(fmt, items)`` picks one by the
``?format=`` name. The texts are raw, not shell-quoted: a shell recipe passes
them with ``"$(curl ...)"`` (one argument, taken verbatim: no word splitting,
no globbing, no quote removal) or through a file, never through an unquoted
``$(...)``, which splits on spaces and expands ``[`` and ``*`` as globs.
The README section "Quarantine lists for each runner (formats)" gives the
one-line recipe per runner.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class QuarantineItem:
    """One quarantined test, named as its JUnit report named it."""

    name: str
    classname: str = ""
    suite: str = ""
    file: str = ""


# --- pytest -------------------------------------------------------------


def _is_class_segment(segment: str) -> bool:
    return segment[:1].isupper()  # python_classes defaults to Test*


def pytest_node_id(item: QuarantineItem) -> str | None:
    """Return the pytest node id of ``item``, or ``None`` when it has none.

    pytest's JUnit classname is the module's dotted path plus any classes
    (``tests.test_x.TestY``) and ``name`` is the last node id part with its
    parameters (``test_a[x-y]``). With ``file`` the path comes from it and
    the classes are what follows the module's name in the classname. Without
    ``file`` (pytest's default ``xunit2`` family omits it) the trailing
    segments that start with a capital letter are classes and the rest is
    the module path: ``tests.test_x.TestY`` -> ``tests/test_x.py::TestY``.
    Directories with dots in their names cannot be told apart that way.
    """
    parts = [p for p in item.classname.split(".") if p]
    if item.file:
        path = item.file.replace("\\", "/").removeprefix("./")
        module = path.removesuffix(".py")
        dotted = module.replace("/", ".")
        stem = module.rsplit("/", 1)[-1]
        if item.classname.startswith(dotted + "."):
            classes = item.classname[len(dotted) + 1 :].split(".")
        elif stem in parts:
            classes = parts[len(parts) - parts[::-1].index(stem) :]
        else:
            classes = []
            while parts and _is_class_segment(parts[-1]):
                classes.insert(0, parts.pop())
    else:
        classes = []
        while parts and _is_class_segment(parts[-1]):
            classes.insert(0, parts.pop())
        if not parts:
            return None
        path = "/".join(parts) + ".py"
    return "::".join([path, *classes, item.name])


def pytest_filter(items: Iterable[QuarantineItem]) -> str:
    """Return a pytest argument file: one ``--deselect=<node id>`` a line.

    pytest reads it with ``pytest @FILE`` (one argument a line, verbatim).
    Caveat: ``--deselect`` matches node id prefixes, so deselecting
    ``t.py::test_a`` also deselects ``t.py::test_ab``; parametrised ids end
    in ``]`` and are exact; ``pytest_plugin_filter`` is exact for all.
    Items without a derivable path are left out.
    """
    ids = sorted({i for i in map(pytest_node_id, items) if i is not None})
    return "".join(f"--deselect={node_id}\n" for node_id in ids)


PYTEST_PLUGIN_MODULE = "flakewatch_quarantine"

_PYTEST_PLUGIN = '''\
"""flakewatch quarantine list: deselects exactly these pytest node ids."""

QUARANTINED = frozenset(
    [
{ids}    ]
)


def pytest_collection_modifyitems(config, items):
    chosen = [item for item in items if item.nodeid in QUARANTINED]
    if chosen:
        config.hook.pytest_deselected(items=chosen)
        items[:] = [item for item in items if item.nodeid not in QUARANTINED]
'''


def pytest_plugin_filter(items: Iterable[QuarantineItem]) -> str:
    """Return a pytest plugin module that deselects exactly these node ids.

    The exact alternative to ``--deselect`` (which matches prefixes): saved
    as ``flakewatch_quarantine.py`` in the working directory and loaded with
    ``python -m pytest -p flakewatch_quarantine`` (``python -m`` puts the
    working directory on ``sys.path``). Node ids are written with ``repr``,
    so quotes, backslashes and unicode survive as they are.
    """
    ids = sorted({i for i in map(pytest_node_id, items) if i is not None})
    return _PYTEST_PLUGIN.format(ids="".join(f"        {i!r},\n" for i in ids))


def pytest_prefix_collisions(
    items: Iterable[QuarantineItem], node_ids: Iterable[str]
) -> list[str]:
    """Return the ``node_ids`` that ``pytest_filter`` would deselect by accident."""
    quarantined = {i for i in map(pytest_node_id, items) if i is not None}
    prefixes = tuple(quarantined)
    return sorted(
        n for n in node_ids if n not in quarantined and n.startswith(prefixes)
    )


# --- JavaScript regexes (Jest, Vitest, Playwright) -----------------------

# Syntax characters plus "/": escapes that are valid with and without the u flag.
_JS_SPECIAL = re.compile(r"[\\^$.*+?()[\]{}|/]")


def js_regex_escape(text: str) -> str:
    """Escape ``text`` to match itself literally in a JavaScript RegExp."""
    return _JS_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def jest_full_name(item: QuarantineItem) -> str:
    """Return the full name Jest matches: describe blocks and title, by spaces.

    jest-junit's default writes that full name as both classname and name;
    a classname that the name does not start with is read as the describe
    path and joined in front.
    """
    if item.classname and not item.name.startswith(item.classname):
        return f"{item.classname} {item.name}"
    return item.name


def jest_filter(items: Iterable[QuarantineItem]) -> str:
    """Return a ``--testNamePattern`` regex matching all but these full names.

    Jest compiles it with the ``i`` flag, so two tests whose full names
    differ only in letter case are skipped together; Vitest's ``-t`` takes
    the same pattern.
    """
    names = sorted({jest_full_name(i) for i in items})
    if not names:
        return "^"
    return "^(?!(?:" + "|".join(map(js_regex_escape, names)) + ")$)"


_PLAYWRIGHT_PROJECT = re.compile(r"^\[([^\]]+)\] ")


def playwright_filter(items: Iterable[QuarantineItem]) -> str:
    """Return a ``--grep-invert`` regex matching exactly these tests.

    Playwright greps a line of the project name, the spec file (relative to
    the test directory), the describe titles, the test title and its tags,
    joined by spaces. Its JUnit reporter writes that spec file as the
    classname and the describe and test titles, joined by U+203A, as the
    name (prefixed ``[project] `` with ``includeProjectInTestName``, read
    here as the project). Without a classname the base name of ``file``
    stands in. An empty list gives ``(?!)``, which matches nothing: an empty
    ``--grep-invert`` would skip every test.

    The regex is written ``/.../``: Playwright then compiles it with the
    flags after the closing slash (none here), where a bare pattern gets
    ``g`` or ``gi`` by version, so names differing in case stay apart.
    """
    alternatives = set()
    for item in items:
        name, project = item.name, ""
        if m := _PLAYWRIGHT_PROJECT.match(name):
            project, name = m.group(1), name[m.end() :]
        title = js_regex_escape(" ".join(name.split(" \u203a ")))
        if item.classname:
            spec = js_regex_escape(item.classname) + " "
        elif item.file:
            base = item.file.replace("\\", "/").rsplit("/", 1)[-1]
            spec = "(?:.*/)?" + js_regex_escape(base) + " "
        else:
            spec = ""
        head = "(?:^| )" + (js_regex_escape(project) + " " if project else "") + spec
        alternatives.add(head + title + r"(?: @\S+)*$")
    return "/" + ("|".join(sorted(alternatives)) or "(?!)") + "/"


# --- Go ----------------------------------------------------------------

_GO_SPECIAL = re.compile(r"[\\.+*?()|[\]{}^$]")


def go_regex_escape(text: str) -> str:
    """Escape ``text`` as Go's ``regexp.QuoteMeta`` does."""
    return _GO_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def go_filter(items: Iterable[QuarantineItem]) -> str:
    r"""Return a ``go test -skip`` regex: ``^TestA$|^TestB$/^sub$``.

    ``go test`` splits the expression on unbracketed ``|`` and then ``/``
    and matches each part against one level of the test's name, so every
    level is anchored on its own; escaped metacharacters (``\[``, ``\|``)
    are not split on. A skipped parent skips its subtests. The name is what
    ``go test`` printed (spaces already turned into ``_``); the package
    (classname) cannot be part of ``-skip``, so a test of that name is
    skipped in every package the command runs. Requires Go 1.20 or later.
    """
    alternatives = {
        "/".join(f"^{go_regex_escape(level)}$" for level in item.name.split("/"))
        for item in items
    }
    return "|".join(sorted(alternatives))


# --- cargo-nextest --------------------------------------------------------

_NEXTEST_ESCAPES = {"\\": "\\\\", ")": "\\)", ",": "\\,", "\n": "\\n", "\r": "\\r"}
_NEXTEST_ESCAPES["\t"] = "\\t"


def nextest_filter(items: Iterable[QuarantineItem]) -> str:
    """Return a nextest filterset: ``not (test(=a) | test(=b))``.

    ``=`` is nextest's equality matcher on the test name (``module::test``,
    the JUnit name); backslash, ``)``, ``,`` and control characters are
    escaped as the filterset reference lists.
    """
    names = sorted({item.name for item in items})
    if not names:
        return "all()"
    escaped = ("".join(_NEXTEST_ESCAPES.get(c, c) for c in n) for n in names)
    return "not (" + " | ".join(f"test(={n})" for n in escaped) + ")"


# --- JVM: Maven Surefire and Gradle ---------------------------------------


def _jvm_method(name: str) -> str:
    """Return the method of a JUnit name: ``add(int)[1]`` -> ``add``."""
    return name.split("(", 1)[0]


def _surefire_patterns(items: Iterable[QuarantineItem]) -> list[str]:
    patterns = set()
    for item in items:
        if not item.classname:
            continue  # Surefire selects by class; a bare method would match all
        method = _jvm_method(item.name).split("[", 1)[0]
        patterns.add(f"{item.classname.replace('.', '/')}#{method}")
    return sorted(patterns)


def maven_filter(items: Iterable[QuarantineItem]) -> str:
    """Return the value of Surefire's ``-Dtest``: ``!pkg/Class#method,...``.

    Surefire (2.19+) reads ``!`` as an exclusion and a class as its path
    without extension; parametrised invocations (``add(int)[1]``) cannot be
    told apart, so the method's every invocation is excluded. Caveat:
    ``-Dtest`` replaces the pom's ``<includes>``/``<excludes>`` (SUREFIRE-1153),
    so tests the pom leaves out may run; ``maven_excludes_file`` does not.
    """
    return ",".join(f"!{pattern}" for pattern in _surefire_patterns(items))


def maven_excludes_file(items: Iterable[QuarantineItem]) -> str:
    """Return a Surefire ``excludesFile``: one ``pkg/Class#method`` a line.

    Surefire appends these to the pom's own excludes, so the pom's selection
    otherwise stays as it is: the Maven form to prefer.
    """
    return "".join(f"{pattern}\n" for pattern in _surefire_patterns(items))


def _groovy_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def gradle_filter(items: Iterable[QuarantineItem]) -> str:
    """Return a Gradle init script excluding these tests from every Test task.

    Gradle's ``--tests`` can only include, so exclusion goes through
    ``filter { excludeTestsMatching "Class.method" }`` (Gradle 5+), loaded
    with ``--init-script``. In Gradle's patterns ``*`` is a wildcard that
    cannot be escaped; test names with spaces match as they are.
    """
    patterns = sorted(
        {
            f"{item.classname}.{_jvm_method(item.name)}"
            if item.classname
            else _jvm_method(item.name)
            for item in items
        }
    )
    lines = [
        "// flakewatch quarantine list: skips exactly these tests.",
        "allprojects {",
        "    tasks.withType(Test).configureEach {",
        "        filter {",
        *(f"            excludeTestsMatching {_groovy_string(p)}" for p in patterns),
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


# --- Plain text and the format registry -----------------------------------


def text_filter(items: Iterable[QuarantineItem]) -> str:
    """Return one ``classname::name`` a line (classname empty when unknown)."""
    return "".join(f"{i.classname}::{i.name}\n" for i in items)


FORMATS: dict[str, Callable[[Iterable[QuarantineItem]], str]] = {
    "text": text_filter,
    "pytest": pytest_filter,
    "pytest-plugin": pytest_plugin_filter,
    "jest": jest_filter,
    "go": go_filter,
    "nextest": nextest_filter,
    "maven": maven_filter,
    "maven-excludes": maven_excludes_file,
    "gradle": gradle_filter,
    "playwright": playwright_filter,
}


def render(fmt: str, items: Sequence[QuarantineItem]) -> str:
    """Return the quarantine list in format ``fmt`` (a ``FORMATS`` key).

    Raise ``KeyError`` for an unknown format.
    """
    return FORMATS[fmt](items)
