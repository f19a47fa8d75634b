"""Builders of JUnit XML reports for tests."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr


def junit_report(
    count: int,
    *,
    failing: frozenset[int] | set[int] = frozenset(),
    suite: str = "pytest",
    module: str = "tests.test_mod",
    seconds: float = 0.01,
) -> bytes:
    """Return a pytest-style report of ``count`` testcases named test_0..N-1."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<testsuites>"]
    lines.append(f"<testsuite name={quoteattr(suite)} tests={quoteattr(str(count))}>")
    for i in range(count):
        attrs = (
            f'classname="{module}" name="test_{i}" file="tests/test_mod.py" '
            f'time="{seconds:.4f}"'
        )
        if i in failing:
            lines.append(
                f'<testcase {attrs}><failure message="assert {i} == 0">'
                f"AssertionError: assert {i} == 0</failure></testcase>"
            )
        else:
            lines.append(f"<testcase {attrs}/>")
    lines.append("</testsuite></testsuites>")
    return "\n".join(lines).encode()
