"""Property-based tests of the parser on nested and odd report shapes.

Hypothesis builds report trees (testcases inside testcases, suites inside
testcases, results in any order and count, text and tails, properties and
output); the oracle reads the same tree with ``xml.etree`` and knows nothing
of the parser. Each result element carries a unique token in its text, so it
can be followed into the stored executions.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from flakewatch.outcomes import Outcome
from ingest.parsing import parse_report

FINAL_TAGS = ("failure", "error", "skipped")
INTERIM_TAGS = ("flakyFailure", "flakyError", "rerunFailure", "rerunError")
INTERIM_OUTCOME = {
    "flakyFailure": Outcome.FAILED,
    "rerunFailure": Outcome.FAILED,
    "flakyError": Outcome.ERROR,
    "rerunError": Outcome.ERROR,
}
TOKEN = re.compile(r"\[r\d+\]")
FILLER = st.sampled_from(["", " ", "\n  ", "x", "some words ", "\t"])


@dataclass
class Result:
    tag: str
    message: str | None
    prefix: str
    suffix: str
    tail: str


def _result(tags) -> st.SearchStrategy[Result]:
    return st.builds(
        Result,
        tag=st.sampled_from(tags),
        message=st.none() | st.sampled_from(["", "boom", "it broke"]),
        prefix=FILLER,
        suffix=FILLER,
        tail=FILLER,
    )


def _children(depth: int) -> st.SearchStrategy:
    """What a testcase holds: results, output, properties, nested parts."""
    leaves = st.one_of(
        _result(FINAL_TAGS),
        _result(INTERIM_TAGS),
        st.tuples(st.just("system-out"), FILLER),
        st.tuples(st.just("system-err"), FILLER),
        st.tuples(st.just("properties"), st.integers(0, 3)),
    )
    if depth <= 0:
        return leaves
    nested = st.one_of(
        st.tuples(st.just("testcase"), st.deferred(lambda: _testcase(depth - 1))),
        st.tuples(
            st.just("testsuite"),
            st.lists(st.deferred(lambda: _testcase(depth - 1)), max_size=2),
        ),
    )
    return st.one_of(leaves, leaves, nested)


def _testcase(depth: int) -> st.SearchStrategy[list]:
    return st.lists(_children(depth), max_size=4)


def _suite_content(depth: int) -> st.SearchStrategy[list]:
    """What a suite holds: testcases, nested suites, properties."""
    item = st.one_of(
        st.tuples(st.just("testcase"), _testcase(2)),
        st.tuples(st.just("properties"), st.integers(0, 2)),
    )
    if depth > 0:
        item = st.one_of(
            item,
            item,
            st.tuples(st.just("testsuite"), st.deferred(lambda: _suite_content(0))),
        )
    return st.lists(item, max_size=4)


class _Builder:
    """Turn drawn shapes into an ElementTree with unique names and tokens."""

    def __init__(self) -> None:
        self.cases = 0
        self.tokens = 0

    def testcase(self, parent: ET.Element, children: list) -> None:
        self.cases += 1
        case = ET.SubElement(parent, "testcase", name=f"t{self.cases}", classname="c")
        for child in children:
            self.child(case, child)

    def suite(self, parent: ET.Element, content: list, name: str) -> ET.Element:
        suite = ET.SubElement(parent, "testsuite", name=name)
        for kind, value in content:
            if kind == "testcase":
                self.testcase(suite, value)
            elif kind == "properties":
                self.properties(suite, value)
            else:
                self.suite(suite, value, f"{name}-inner")
        return suite

    def properties(self, parent: ET.Element, count: int) -> None:
        properties = ET.SubElement(parent, "properties")
        for i in range(count):
            ET.SubElement(properties, "property", name=f"p{i}", value="v")

    def child(self, case: ET.Element, child) -> None:
        if isinstance(child, Result):
            self.tokens += 1
            element = ET.SubElement(case, child.tag)
            if child.message is not None:
                element.set("message", child.message)
            element.text = f"{child.prefix}[r{self.tokens}]{child.suffix}"
            element.tail = child.tail
            return
        kind, value = child
        if kind == "testcase":
            self.testcase(case, value)
        elif kind == "testsuite":
            suite = ET.SubElement(case, "testsuite", name="in-case")
            for grandchild in value:
                self.testcase(suite, grandchild)
        elif kind == "properties":
            self.properties(case, value)
        else:
            ET.SubElement(case, kind).text = value


@st.composite
def reports(draw) -> ET.Element:
    builder = _Builder()
    if draw(st.booleans()):
        root = ET.Element("testsuites")
        for i in range(draw(st.integers(0, 3))):
            builder.suite(root, draw(_suite_content(1)), f"s{i}")
    else:
        root = builder.suite(ET.Element("scratch"), draw(_suite_content(1)), "s")
    return root


def _owner(element: ET.Element, parents: dict) -> ET.Element | None:
    """Return the nearest enclosing testcase: the one a result belongs to."""
    parent = parents.get(element)
    while parent is not None and parent.tag != "testcase":
        parent = parents.get(parent)
    return parent


def _expected(root: ET.Element) -> dict[str, tuple[Outcome, Counter, set[str]]]:
    """Map each testcase name to its final outcome, the outcomes of all its
    executions and the tokens its executions must carry."""
    parents = {child: parent for parent in root.iter() for child in parent}
    own: dict[str, list[ET.Element]] = {
        case.get("name"): [] for case in root.iter("testcase")
    }
    for element in root.iter():
        if element.tag in FINAL_TAGS or element.tag in INTERIM_TAGS:
            owner = _owner(element, parents)
            if owner is not None:
                own[owner.get("name")].append(element)
    expected = {}
    for name, results in own.items():
        tags = [r.tag for r in results]
        token = {
            id(r): r.text[r.text.index("[") : r.text.index("]") + 1] for r in results
        }
        interims = [r for r in results if r.tag in INTERIM_TAGS]
        if "error" in tags:
            outcome = Outcome.ERROR
            described = [r for r in results if r.tag in ("error", "failure")]
        elif "failure" in tags:
            outcome = Outcome.FAILED
            described = [r for r in results if r.tag == "failure"]
        elif "skipped" in tags:
            outcome = Outcome.SKIPPED
            described = [r for r in results if r.tag == "skipped"]
        else:
            outcome, described = Outcome.PASSED, []
        outcomes = Counter([outcome, *(INTERIM_OUTCOME[r.tag] for r in interims)])
        tokens = {token[id(r)] for r in described + interims}
        expected[name] = (outcome, outcomes, tokens)
    return expected


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(reports())
def test_every_result_element_lands_in_exactly_one_execution_of_its_testcase(root):
    data = ET.tostring(root, encoding="utf-8")
    note(data.decode())
    expected = _expected(root)

    report = parse_report(data, filename="generated.xml")

    assert report.testcases == len(expected)
    assert report.errors == []
    outcomes: dict[str, Counter] = {name: Counter() for name in expected}
    seen_tokens: Counter = Counter()
    for execution in report.executions:
        outcomes[execution.name][execution.outcome] += 1
        for token in TOKEN.findall(execution.detail):
            seen_tokens[token] += 1
            assert token in expected[execution.name][2], (token, execution.name)
    assert outcomes == {name: counts for name, (_, counts, _) in expected.items()}
    all_tokens = {t for _, _, tokens in expected.values() for t in tokens}
    assert seen_tokens == Counter(dict.fromkeys(all_tokens, 1))
    assert report.failures == sum(final.is_failure for final, _, _ in expected.values())
