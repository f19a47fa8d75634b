"""Read one JUnit XML report into executions: bytes in, plain data out.

No Django here. The XML parser is lxml with entity expansion, external
entities, DTD loading and network access off, and any DOCTYPE is refused.
lxml streams the file (``iterparse``) and each ``<testcase>`` is read as it
ends, then dropped, so memory stays flat however large the report is: its
attributes straight from the element, and its results (failure, error,
skipped, flaky and rerun runs), if it has any, by junitparser's element
classes. A result belongs to its nearest enclosing testcase; nothing inside a
testcase that has not ended yet is dropped, so testcases (or suites) nested
in a testcase do not take its results with them. Executions share one str
object per distinct suite path, classname and file, so the output holds
little besides the test names.

A test repeated in one report (same suite path, classname, name and file) is
either reruns of one test, stored as its executions in document order, or
other tests that share the name. What the report shows decides, first rule
that applies:

1. The report has flaky*/rerun* elements (Surefire, Gradle ``mergeReruns``,
   nextest, Playwright ``includeRetries``): the tool writes its reruns inside
   one testcase, so a repeat is another test.
2. Every repeat has a ``line`` attribute: all equal means reruns (pytest
   ``junit_family=legacy`` with pytest-rerunfailures); different means other
   tests.
3. All repeats in one ``<testsuite>`` element, and all but the last failed or
   errored: reruns (a rerun follows a failure; gotestsum ``--rerun-fails``
   writes failures before passes, so its attempts need not be adjacent).
4. All repeats in one ``<testsuite>`` element, next to each other, and none
   but the last skipped (or all with one outcome): reruns. pytest-rerunfailures
   writes its reruns right before the final attempt as testcases without a
   result (so they read as passed); Gradle test-retry and Xcode repetitions
   (fastlane trainer) are consecutive too.
5. Otherwise it is ambiguous (mocha and TestNG repeat titles of different
   tests, apart from each other or after a skip): the repeats are stored as
   other tests named ``<name> #2``, ``#3``..., with a warning.

Real CI output is dirty. Before parsing, bytes that do not match the declared
encoding are re-read as Latin-1, and ANSI colour escapes and other characters
XML 1.0 forbids are removed; each repair becomes a warning, never a failure.
"""

from __future__ import annotations

import codecs
import gc
import io
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from typing import NoReturn

from junitparser import Error, Failure, Skipped, xunit2
from junitparser.junitparser import Result
from lxml import etree

from flakewatch.outcomes import Outcome

MAX_MESSAGE_CHARS = 2_000
MAX_DETAIL_CHARS = 16_384
MAX_LISTED_PROBLEMS = 50
# Longer than any CI job: such a value is another unit (container-structure-test
# writes nanoseconds), so it is kept as unknown rather than skewing statistics.
MAX_PLAUSIBLE_SECONDS = 86_400.0
# How many distinct classnames, files and suite paths (or one per 4 executions,
# if more), and durations, one report's executions share; beyond that, equal
# values are separate objects.
MAX_SHARED_STRINGS = 10_000
MAX_SHARED_DURATIONS = 10_000

JUNIT_ROOTS = {"testsuites", "testsuite"}
_DOTNET_LOGGER = (
    "with dotnet test, add the JunitXml.TestLogger package and pass --logger "
    '"junit;LogFilePath=junit.xml"'
)
_CONVERT = "convert it to JUnit XML before uploading"
# Root element -> (what the file is, how to get JUnit XML instead).
KNOWN_OTHER_FORMATS = {
    "test-run": (
        "an NUnit 3 result file",
        "Run nunit3-console with --result=junit.xml;transform=nunit3-junit.xslt "
        f"(from nunit/nunit-transforms), or {_DOTNET_LOGGER}.",
    ),
    "test-results": (
        "an NUnit 2 result file",
        f"Have the test run write JUnit XML ({_DOTNET_LOGGER}), or {_CONVERT}.",
    ),
    "assemblies": ("an xUnit.net v2 report", f"To get JUnit XML, {_DOTNET_LOGGER}."),
    "assembly": ("an xUnit.net report", f"To get JUnit XML, {_DOTNET_LOGGER}."),
    "testng-results": (
        "a TestNG results file",
        "TestNG writes JUnit XML itself: upload test-output/junitreports/*.xml "
        "(or, under Maven, target/surefire-reports/TEST-*.xml).",
    ),
    "checkstyle": (
        "a Checkstyle report (lint findings, not test results)",
        "Upload the JUnit XML that the test runner writes instead.",
    ),
}
# <TestRun> is Visual Studio's TRX in this namespace, and CppUnit's or AUnit's
# own XML without one.
TRX_NAMESPACE = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"
TRX = (
    "a Visual Studio TRX file",
    f"To get JUnit XML, {_DOTNET_LOGGER}.",
)
CPPUNIT = (
    "a CppUnit or AUnit report",
    f"Their XML is not JUnit XML: {_CONVERT}, for example with xsltproc and "
    "the stylesheet CppUnit ships as contrib/xml-xsl/cppunit2junit.xsl (the "
    "Jenkins xUnit plugin has stylesheets for both).",
)
# Check (the C unit-test framework) writes <testsuites> in this namespace,
# with <suite> and <test> inside: without the namespace it would read as an
# empty JUnit report.
CHECK_NAMESPACE = "http://check.sourceforge.net/ns"
CHECK = (
    "the XML format of Check, the C unit-test framework",
    "Check writes no JUnit XML and removing the xmlns attribute does not make "
    f"it JUnit; {_CONVERT} (an XSLT stylesheet or a script that writes a "
    "<testcase> per <test>).",
)
INTERIM_OUTCOMES = {
    xunit2.FlakyFailure: Outcome.FAILED,
    xunit2.RerunFailure: Outcome.FAILED,
    xunit2.FlakyError: Outcome.ERROR,
    xunit2.RerunError: Outcome.ERROR,
}
# junitparser's map of a testcase's children, narrowed to results: failure,
# error, skipped and the flaky*/rerun* runs (not system-out/-err).
RESULT_TYPES = {
    tag: kind
    for tag, kind in xunit2.TestCase.ITER_TYPES.items()
    if issubclass(kind, (xunit2.InterimResult, Failure, Error, Skipped))
}
SKIPPED_STATUSES = {"notrun", "disabled", "skipped", "skip"}
# googletest 1.10+ writes status="run|notrun" and result="completed|skipped|
# suppressed": GTEST_SKIP() is status="run" result="skipped", often without a
# <skipped> child; a disabled test is result="suppressed". "completed" is a
# normal run, whose children decide.
SKIPPED_RESULTS = {"skipped", "suppressed"}
FAILED_STATUSES = {"fail", "failed", "failure"}

# Bytes < 0x20 never occur inside a multi-byte UTF-8 sequence, so control
# characters are found without decoding: deleting them must not shorten the
# bytes. A regex alternation of this class with the references below is many
# times slower, so the two are looked for separately.
_CONTROL_BYTES = bytes(b for b in range(0x20) if b not in b"\t\n\r")
# Numeric references to control characters (&#27;), which XML 1.0 forbids too.
_CONTROL_REFERENCE = re.compile(
    rb"&#(?:x0*(?:[0-8bcefBCEF]|1[0-9a-fA-F])|0*(?:[0-8]|1[124-9]|2[0-9]|3[01]));"
)
# Clean input is scanned in slices of this size, so checking it copies little.
_SCAN_CHUNK = 1 << 20
# Colour codes as raw ESC, as a character reference (&#x1B;[31m), and as the
# visible "#x1B[31m" that pytest writes in place of the illegal character.
_ANSI_ESCAPE = re.compile(
    r"(?:\x1b|&#(?:x0*1[bB]|0*27);)\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|#x1[bB]\[[0-9;]*m"
)
_ILLEGAL_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
    r"|&#(?:x0*(?:[0-8bcefBCEF]|1[0-9a-fA-F])|0*(?:[0-8]|1[124-9]|2[0-9]|3[01]));"
)
_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*?\?>")
# The prolog: whitespace, processing instructions and comments before a
# DOCTYPE or the root element.
_PROLOG_ITEM = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->)", re.DOTALL)
_DECLARED_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")


def _declares_dtd(data: bytes) -> bool:
    position = 0
    while item := _PROLOG_ITEM.match(data, position):
        if item.end() == position:
            break
        position = item.end()
    rest = data[position : position + 64].lstrip()
    return rest.startswith((b"<!DOCTYPE", b"<!ENTITY", b"<!ELEMENT", b"<!ATTLIST"))


class ReportError(Exception):
    """The file cannot be read as a JUnit XML report; the message says why."""


@dataclass(slots=True)
class ParsedExecution:
    """One run of one test as the report tells it."""

    suite: str
    classname: str
    name: str
    file: str
    outcome: Outcome
    duration_ms: float | None
    kind: str = ""  # the failure's type attribute
    message: str = ""
    detail: str = ""
    # Which run of its <testcase> element this is: 0, then 1, 2... for the
    # runs that flaky*/rerun* children add.
    run: int = 0


@dataclass
class ParsedReport:
    """A report's executions in document order, and what was wrong with it.

    ``testcases`` counts ``<testcase>`` elements; ``failures`` those whose final
    outcome is failed or error. In-run reruns make ``executions`` longer.
    """

    executions: list[ParsedExecution] = field(default_factory=list)
    testcases: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _latin1_fallback(error: UnicodeDecodeError) -> tuple[str, int]:
    bad = error.object[error.start : error.end]
    return bad.decode("latin-1"), error.end


# Registered for decoding only, so it is only ever handed a UnicodeDecodeError.
codecs.register_error("flakewatch-latin1", _latin1_fallback)  # type: ignore[arg-type]


def _declared_encoding(data: bytes) -> str | None:
    declaration = _DECLARATION.match(data)
    if not declaration:
        return None
    found = _DECLARED_ENCODING.search(declaration.group())
    return found.group(1).decode("ascii") if found else None


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` decodes as UTF-8, without decoding it all at once."""
    if data.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(data), _SCAN_CHUNK):
            decoder.decode(data[start : start + _SCAN_CHUNK])
        decoder.decode(b"", True)
    except UnicodeDecodeError:
        return False
    return True


def _has_dirty_bytes(data: bytes) -> bool:
    """Whether ``data`` holds a control byte or a reference to one."""
    for start in range(0, len(data), _SCAN_CHUNK):
        piece = data[start : start + _SCAN_CHUNK]
        if len(piece.translate(None, _CONTROL_BYTES)) != len(piece):
            return True
    # A one-byte search is many times faster than the regex, which is faster
    # than searching for b"&#".
    return b"&" in data and _CONTROL_REFERENCE.search(data) is not None


def clean_xml_bytes(data: bytes, *, filename: str) -> tuple[bytes, list[str]]:
    """Return ``data`` as UTF-8 XML that a strict parser accepts, and warnings.

    Honours a BOM or the declared encoding; bytes invalid in that encoding are
    read as Latin-1; ANSI escapes and XML-illegal characters are removed.
    Clean UTF-8 input is returned as is, without a copy.
    """
    warnings: list[str] = []
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        encoding = "utf-8"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = _declared_encoding(data) or "utf-8"
        try:
            encoding = codecs.lookup(encoding).name
        except LookupError:
            warnings.append(
                f"{filename}: Unknown encoding {encoding!r} declared; read as UTF-8."
            )
            encoding = "utf-8"

    if encoding == "utf-8" and _is_utf8(data) and not _has_dirty_bytes(data):
        return data, warnings

    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        text = data.decode(encoding, errors="flakewatch-latin1")
        warnings.append(
            f"{filename}: Bytes that are not valid {encoding} were read as Latin-1."
        )
    text, ansi_count = _ANSI_ESCAPE.subn("", text)
    text, illegal_count = _ILLEGAL_CHARS.subn("", text)
    if ansi_count:
        warnings.append(f"{filename}: Removed {ansi_count} ANSI escape sequence(s).")
    if illegal_count:
        warnings.append(
            f"{filename}: Removed {illegal_count} control character(s) "
            "that XML does not allow."
        )
    cleaned = text.encode("utf-8")
    # The text is now UTF-8 whatever the declaration said: drop the declaration.
    return _DECLARATION.sub(b"", cleaned, count=1), warnings


def _seconds(raw: str | None, problems: Counter[str]) -> float | None:
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        # Commas as thousands separators ("2,503.1"), or blank, or unreadable.
        if not raw.strip():
            return None
        try:
            seconds = float(raw.replace(",", ""))
        except ValueError:
            problems["unreadable"] += 1
            return None
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        problems["negative or not a number"] += 1
        return None
    if seconds > MAX_PLAUSIBLE_SECONDS:
        problems["implausibly large (another unit?)"] += 1
        return None
    return seconds


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit} characters cut] …\n{text[-half:]}"


def _describe(results: list[Result]) -> tuple[str, str, str]:
    """Return (kind, message, detail) for one or more result elements."""
    first = results[0]
    message = first.message or _first_line(first.text)
    texts = [r.text.strip() for r in results if r.text and r.text.strip()]
    if not texts and isinstance(first, xunit2.InterimResult):
        texts = [first.stack_trace.strip()] if first.stack_trace else []
    return (
        (first.type or "")[:200],
        _truncate(message, MAX_MESSAGE_CHARS),
        _truncate("\n\n".join(texts), MAX_DETAIL_CHARS),
    )


def _final_outcome(finals: list[Result], status: str) -> tuple[Outcome, list[Result]]:
    errors: list[Result] = []
    failures: list[Result] = []
    skips: list[Result] = []
    for result in finals:
        if isinstance(result, Error):
            errors.append(result)
        elif isinstance(result, Failure):
            failures.append(result)
        elif isinstance(result, Skipped):
            skips.append(result)
    if errors:
        return Outcome.ERROR, errors + failures
    if failures:
        return Outcome.FAILED, failures
    if status in FAILED_STATUSES:
        return Outcome.FAILED, []
    if skips:
        return Outcome.SKIPPED, skips
    if status in SKIPPED_STATUSES:
        return Outcome.SKIPPED, []
    return Outcome.PASSED, []


class _ReportReader:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.report = ParsedReport()
        # One str object per distinct classname, file and suite path, shared
        # by all the executions that have it; and one float per distinct time.
        self.strings: dict[str, str] = {}
        self.durations: dict[str | None, float] = {}  # by the raw time attribute
        self.unnamed = 0
        self.rerun_elements = False  # whether any flaky*/rerun* child was read
        self.repeated = False  # whether a classname and name came twice
        self.time_problems: Counter[str] = Counter()
        self.problems: list[str] = []

    def read(self, data: bytes) -> ParsedReport:
        data, self.report.warnings = clean_xml_bytes(data, filename=self.filename)
        if not data or data.isspace():  # data.strip(), without copying the file
            raise ReportError(
                f"{self.filename}: The file is empty. Upload the JUnit XML report "
                "that the test run wrote (check its path and that the run got that far)."
            )
        if _declares_dtd(data):
            raise ReportError(
                f"{self.filename}: DOCTYPE and entity declarations are refused (they "
                "can carry entity-expansion and external-entity attacks); JUnit "
                "reports need none."
            )
        events = _suite_and_case_events(data)
        try:
            checked_root = self._read_events(events)
            root = events.root
        except etree.XMLSyntaxError as exc:
            reason = exc.msg
            if reason.startswith("Excessive depth"):  # libxml2's bound, kept
                raise ReportError(
                    f"{self.filename}: Elements are nested more than 256 levels "
                    "deep, which no JUnit XML writer does; upload the report as "
                    "the test runner wrote it."
                ) from exc
            if reason.startswith("Unregistered error"):  # libxml2 gave no text
                line, column = exc.position
                reason = f"malformed or cut short at line {line}, column {column}"
            raise ReportError(
                f"{self.filename}: The file is not well-formed XML ({reason}). If "
                "the test run was killed while writing it, the report is cut "
                "short: upload the report of a run that finished."
            ) from exc
        if root is None:
            raise ReportError(
                f"{self.filename}: No XML element found. Upload the JUnit XML "
                "report itself."
            )
        if not checked_root:
            self._check_root(root.getroottree())
        if self.report.testcases == 0 and root.find("suite") is not None:
            # Check's XML with its namespace removed: <suite>, not <testsuite>.
            self._refuse_format(root.tag, CHECK)
        if self.repeated:
            self._separate_repeats(data)
        self._finish()
        return self.report

    # The hot loop keeps its state in locals (see the docstring): split, it
    # would pass that state around twice per testcase.
    def _read_events(  # noqa: C901
        self, events: Iterable[tuple[str, etree._Element]]
    ) -> bool:
        """Read each testcase at its end event, then drop what has been read.

        This loop runs twice per testcase, so it keeps its state in locals and
        reads a testcase without children (nearly all of them) inline, without
        junitparser objects. Return whether the root element was checked.
        """
        report = self.report
        executions = report.executions
        strings = self.strings
        durations = self.durations
        passed = Outcome.PASSED
        testcases = 0
        checked_root = False
        # The innermost open <testsuite>'s path (its and its ancestors' names)
        # and file; those of the suites around it wait on the stack.
        suite = suite_file = ""
        outer_suites: list[tuple[str, str]] = []
        # Testcases begun and not yet ended: while one is open, nothing inside
        # it is dropped, since its results are read only when it ends.
        open_cases = 0
        names_by_class: dict[str, set[str]] = {}
        names_class: str | None = None
        class_names: set[str] = set()
        repeated = False
        for event, elem in events:
            tag = elem.tag
            if event == "start":
                if not checked_root:
                    self._check_root(elem.getroottree())
                    checked_root = True
                if tag == "testcase" or not tag.endswith("testsuite"):
                    open_cases += 1
                else:
                    outer_suites.append((suite, suite_file))
                    name = elem.get("name")
                    if name:  # unnamed suites add nothing to the path
                        suite = self._shared(f"{suite} › {name}" if suite else name)
                    file = elem.get("file")
                    suite_file = self._shared(file) if file else ""
                continue
            if tag == "testcase" or tag.endswith("testcase"):
                open_cases -= 1
                testcases += 1
                get = elem.get  # bytes keys spare lxml encoding them each call
                name = get(b"name") or self._unnamed(elem)
                classname = get(b"classname")
                if classname:
                    classname = strings.get(classname) or self._shared(classname)
                else:
                    classname = ""
                # Names seen per classname: a repeat sends the report through
                # _separate_repeats. Classnames are shared objects, so "is"
                # finds the set of the previous testcase's class at once.
                if classname is not names_class:
                    names_class = classname
                    class_names = names_by_class.setdefault(classname, set())
                if name in class_names:
                    repeated = True
                else:
                    class_names.add(name)
                file = get(b"file")
                if file:
                    file = strings.get(file) or self._shared(file)
                else:
                    file = suite_file
                time = get(b"time")
                duration_ms = durations.get(time)
                if duration_ms is None:
                    duration_ms = self._duration_ms(time)
                status = get(b"status")
                result = get(b"result")
                if result and result.lower() in SKIPPED_RESULTS:
                    if not (status and status.lower() in FAILED_STATUSES):
                        status = "skipped"
                if len(elem):
                    status = status.lower() if status else ""
                    self._read_results(
                        elem, suite, classname, name, file, duration_ms, status
                    )
                    # Drop the results' text now; a testcase without children
                    # is dropped whole with the next sibling (below).
                    elem.clear(keep_tail=False)  # type: ignore[call-arg]  # not in lxml-stubs
                else:
                    # No children, so no results: only the status can say more.
                    outcome = self._status_outcome(status) if status else passed
                    executions.append(
                        ParsedExecution(
                            suite, classname, name, file, outcome, duration_ms
                        )
                    )
            else:
                suite, suite_file = outer_suites.pop()
                if open_cases:  # a suite inside a testcase: part of its results
                    continue
                elem.clear(keep_tail=False)  # type: ignore[call-arg]  # not in lxml-stubs
            if open_cases:
                # Inside an open testcase, the siblings may be its results.
                continue
            # Drop what has been read, so memory does not grow with the file.
            parent = elem.getparent()
            while parent is not None and elem.getprevious() is not None:
                del parent[0]
        report.testcases = testcases
        self.repeated = repeated
        return checked_root

    def _check_root(self, tree: etree._ElementTree) -> None:
        if tree.docinfo.doctype:  # type: ignore[attr-defined]  # not in lxml-stubs
            raise ReportError(
                f"{self.filename}: DOCTYPE declarations are refused; JUnit reports "
                "need none."
            )
        qname = etree.QName(tree.getroot())
        tag, namespace = qname.localname, qname.namespace
        if namespace == CHECK_NAMESPACE:
            self._refuse_format(tag, CHECK)
        if tag in JUNIT_ROOTS and namespace:
            # junitparser reads un-namespaced children only: refuse rather than
            # silently miss every failure.
            raise ReportError(
                f"{self.filename}: The root element <{tag}> is in the XML namespace "
                f"{namespace!r}, and JUnit XML has none, so its testcases cannot be "
                "read. If the elements inside are JUnit's <testsuite> and "
                "<testcase>, remove the xmlns attribute; otherwise have the test "
                "runner write JUnit XML."
            )
        if tag in JUNIT_ROOTS:
            return
        if tag == "TestRun":
            known: tuple[str, str] | None = (
                TRX if namespace == TRX_NAMESPACE else CPPUNIT
            )
        else:
            known = KNOWN_OTHER_FORMATS.get(tag)
        if known:
            self._refuse_format(tag, known)
        raise ReportError(
            f"{self.filename}: The root element <{tag}> is not JUnit XML (expected "
            "<testsuites> or <testsuite>). Configure the test runner to write "
            "JUnit XML."
        )

    def _refuse_format(self, tag: str, known: tuple[str, str]) -> NoReturn:
        what, advice = known
        raise ReportError(
            f"{self.filename}: The root element <{tag}> is not JUnit XML: this is "
            f"{what}. {advice}"
        )

    def _shared(self, text: str) -> str:
        """``text``, or the equal str object seen before (while there are few)."""
        strings = self.strings
        shared = strings.get(text)
        if shared is not None:
            return shared
        if len(strings) < max(MAX_SHARED_STRINGS, len(self.report.executions) // 4):
            strings[text] = text
        return text

    def _duration_ms(self, raw: str | None) -> float | None:
        seconds = _seconds(raw, self.time_problems)
        if seconds is None:
            return None
        duration_ms = seconds * 1000.0
        if len(self.durations) < MAX_SHARED_DURATIONS:
            self.durations[raw] = duration_ms
        return duration_ms

    def _unnamed(self, elem: etree._Element) -> str:
        self.unnamed += 1
        name = f"<unnamed testcase {self.unnamed}>"
        self._problem(
            f"Testcase at line {elem.sourceline} has no name; stored as {name!r}."
        )
        return name

    def _status_outcome(self, status: str) -> Outcome:
        """Return the outcome of a testcase without children, from its status."""
        status = status.lower()
        if status in FAILED_STATUSES:
            self.report.failures += 1
            return Outcome.FAILED
        if status in SKIPPED_STATUSES:
            return Outcome.SKIPPED
        return Outcome.PASSED

    def _read_results(
        self,
        elem: etree._Element,
        suite: str,
        classname: str,
        name: str,
        file: str,
        duration_ms: float | None,
        status: str,
    ) -> None:
        """Read a testcase with children: junitparser classifies its results."""
        finals, interims, interim_times = [], [], []
        # The results xunit2.TestCase would yield, without the wrapper (which
        # junitparser builds around a throwaway element) nor system-out/-err.
        for child in elem.iter():
            kind = RESULT_TYPES.get(child.tag)
            if kind is not None:
                # junitparser leaves fromelem unannotated.
                entry = kind.fromelem(child)  # type: ignore[no-untyped-call]
                if isinstance(entry, xunit2.InterimResult):
                    interims.append(entry)
                    # nextest and Playwright time each rerun; Surefire does not.
                    interim_times.append(child.get("time"))
                else:
                    finals.append(entry)
        outcome, described = _final_outcome(finals, status)
        final = ParsedExecution(
            suite, classname, name, file, outcome, duration_ms,
            *(_describe(described) if described else ("", "", "")),
        )  # fmt: skip
        report = self.report
        if outcome.is_failure:
            report.failures += 1
        if not interims:
            report.executions.append(final)
            return
        self.rerun_elements = True
        runs = [
            ParsedExecution(
                suite, classname, name, file, INTERIM_OUTCOMES[type(interim)],
                self._duration_ms(time), *_describe([interim]),
            )
            for interim, time in zip(interims, interim_times, strict=True)
        ]  # fmt: skip
        # flaky* children are failed runs before the final (passing) one;
        # Surefire's <failure> is the first run and rerun* children the reruns.
        if isinstance(interims[0], (xunit2.FlakyFailure, xunit2.FlakyError)):
            runs.append(final)
        else:
            runs.insert(0, final)
        for number, run in enumerate(runs):
            run.run = number
        report.executions.extend(runs)

    # One pass over the repeated tests whose steps share the runs' bounds and
    # places; the rule itself is in _repeat_verdict.
    def _separate_repeats(self, data: bytes) -> None:  # noqa: C901
        """Decide, for each test repeated in the report, reruns or other tests.

        The rule is in the module docstring. Repeats read as other tests get
        " #2", " #3"... after their name; a warning lists the ambiguous ones.
        """
        executions = self.report.executions
        keys = list(map(_IDENTITY, executions))
        # Each <testcase> element's runs as [start, end) in ``executions``.
        bounds: list[list[int]] = []
        for index, e in enumerate(executions):
            if e.run:
                bounds[-1][1] = index + 1
            else:
                bounds.append([index, index + 1])
        counts = Counter(keys[start] for start, _ in bounds)
        if all(count == 1 for count in counts.values()):
            return  # only flaky*/rerun* runs of single testcases
        # Each repeated test's elements as (position among all testcases,
        # first run's index), in document order.
        occurrences: dict[tuple[str, str, str, str], list[tuple[int, int]]] = {}
        for order, (start, _) in enumerate(bounds):
            key = keys[start]
            if counts[key] > 1:
                occurrences.setdefault(key, []).append((order, start))
        places = _testcase_places(data)  # (line, suite element) per testcase
        ambiguous: list[str] = []
        for key, found in occurrences.items():
            firsts = [executions[start] for _, start in found]
            where = [places[order] for order, _ in found]
            verdict = self._repeat_verdict(found, firsts, where)
            if verdict == "reruns":
                continue
            if verdict == "ambiguous":
                ambiguous.append(key[2])
            for number, (order, _) in enumerate(found[1:], start=2):
                start, end = bounds[order]
                for e in executions[start:end]:
                    e.name = f"{e.name} #{number}"
        if ambiguous:
            listed = ", ".join(repr(name) for name in ambiguous[:5])
            more = f" and {len(ambiguous) - 5} more" if len(ambiguous) > 5 else ""
            self.report.warnings.append(
                f"{self.filename}: Tests repeated in the report without a sign that "
                f"the repeats are reruns ({listed}{more}) are stored as separate "
                "tests, the second named '<name> #2' and so on. If they are reruns "
                "of one test, "
                "have the report give each attempt the same file and line "
                "attributes (pytest: junit_family=legacy)."
            )

    def _repeat_verdict(
        self,
        found: list[tuple[int, int]],
        firsts: list[ParsedExecution],
        where: list[tuple[str | None, int]],
    ) -> str:
        """Return "reruns", "other tests" or "ambiguous" for one repeated test."""
        if self.rerun_elements:
            return "other tests"  # the tool writes reruns inside one testcase
        lines = {line for line, _ in where}
        if None not in lines:
            return "reruns" if len(lines) == 1 else "other tests"
        one_suite = len({suite_no for _, suite_no in where}) == 1
        if one_suite:
            # A rerun follows a failure (gotestsum writes failures before
            # passes, so its reruns need not be next to each other).
            if all(e.outcome.is_failure for e in firsts[:-1]):
                return "reruns"
            orders = [order for order, _ in found]
            consecutive = orders == list(range(orders[0], orders[0] + len(orders)))
            # pytest-rerunfailures writes its reruns right before the final
            # attempt, as testcases without a result (read as passed);
            # Gradle test-retry and Xcode repetitions are consecutive too. A
            # skip is never retried.
            if consecutive and (
                len({e.outcome for e in firsts}) == 1
                or all(e.outcome != Outcome.SKIPPED for e in firsts[:-1])
            ):
                return "reruns"
        return "ambiguous"

    def _problem(self, text: str) -> None:
        self.problems.append(f"{self.filename}: {text}")

    def _finish(self) -> None:
        for problem, count in sorted(self.time_problems.items()):
            self.report.warnings.append(
                f"{self.filename}: Time value {problem} in {count} testcase(s), "
                "stored without a duration."
            )
        extra = len(self.problems) - MAX_LISTED_PROBLEMS
        self.report.errors.extend(self.problems[:MAX_LISTED_PROBLEMS])
        if extra > 0:
            self.report.errors.append(
                f"{self.filename}: There are {extra} more problems like these."
            )


_IDENTITY = attrgetter("suite", "classname", "name", "file")


def _testcase_places(data: bytes) -> list[tuple[str | None, int]]:
    """Return each testcase's line attribute and suite element, in end order.

    A second, lighter pass over a report that repeats a test: reading ``line``
    and counting suites in the main pass would slow every report down.
    """
    places: list[tuple[str | None, int]] = []
    suite_no = suites_seen = open_cases = 0
    outer: list[int] = []
    events = _suite_and_case_events(data)
    for event, elem in events:
        is_case = not elem.tag.endswith("testsuite")
        if event == "start":
            if is_case:
                open_cases += 1
            else:
                outer.append(suite_no)
                suites_seen += 1
                suite_no = suites_seen
            continue
        if is_case:
            open_cases -= 1
            places.append((elem.get("line"), suite_no))
        else:
            suite_no = outer.pop()
        if not open_cases:  # as in the main pass: nothing an open case holds
            elem.clear(keep_tail=False)
            parent = elem.getparent()
            while parent is not None and elem.getprevious() is not None:
                del parent[0]
    return places


_collector_lock = threading.Lock()
_collector_pauses = 0
_collector_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a report is read.

    Reading creates one long-lived object per execution and no reference
    cycles, so the collector's passes over them only cost time (about 15 % of
    a large report's parse). Counted: with reads in several threads, the
    collector is re-enabled (if it was enabled) when the last one ends.
    """
    global _collector_pauses, _collector_was_enabled
    with _collector_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            if _collector_pauses == 0 and _collector_was_enabled:
                gc.enable()


def parse_report(data: bytes, *, filename: str = "report.xml") -> ParsedReport:
    """Parse one JUnit XML file; raise ReportError if it is not one.

    A report with no testcases is valid and yields no executions. Problems
    with single testcases land in ``errors`` and do not stop the rest.
    """
    with collector_paused():
        return _ReportReader(filename).read(data)


def _suite_and_case_events(data: bytes) -> etree.iterparse:
    """Return the start and end events of suites and testcases in ``data``.

    The one place a report is parsed: no entity expansion, no DTD, nothing
    fetched, and libxml2's size and depth limits kept (huge_tree off).
    """
    return etree.iterparse(
        io.BytesIO(data),
        events=("start", "end"),
        tag=("{*}testsuite", "{*}testcase"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
        huge_tree=False,
    )
