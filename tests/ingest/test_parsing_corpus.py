"""Parse every file of the JUnit fixture corpus and check the expected outcome.

The expected numbers were counted from the files themselves (``<testcase>``
elements, their ``<failure>``/``<error>`` children and the rerun children such
as ``<flakyFailure>``), not copied from the parser's output. Adding a file to
``tests/fixtures/junit/`` needs a row here.
"""

from __future__ import annotations

import math

import pytest

from ingest.parsing import ReportError, parse_report
from tests.conftest import JUNIT

# Substrings of the ReportError message for files that are not JUnit XML.
MALFORMED = "not well-formed XML"
DTD_REFUSED = "DOCTYPE"
EMPTY = "empty"

NOT_REPORTS = {"INDEX.md", "README.md"}

Counts = tuple[int, int, int]  # (testcases, failures, executions)


def _under(folder: str, rows: dict[str, Counts | str]) -> dict[str, Counts | str]:
    return {f"{folder}/{path}": expected for path, expected in rows.items()}


# Relative path -> (testcases, failures, executions) for a file that ingests, or
# a substring of the ReportError message for a file that is refused.
# failures: testcases whose final result is <failure>/<error> (or status="failed"
# with no child). executions: one per testcase plus one per flakyFailure,
# flakyError, rerunFailure or rerunError child.
EXPECTED: dict[str, Counts | str] = {
    **_under(
        "action-junit-report/test_results",
        {
            "catch2/report.xml": (1, 1, 1),
            # Nanosecond times: kept without a duration.
            "container-structure/test.xml": (3, 0, 3),
            "cunit/testEmpty.xml": (0, 0, 0),
            "cunit/testFailure.xml": (4, 1, 4),
            # pytest-rerunfailures style: one testcase element per attempt.
            "flaky_retries/flaky_all_failures.xml": (3, 3, 3),
            "flaky_retries/flaky_success_first.xml": (3, 2, 3),
            "flaky_retries/flaky_with_classname_file.xml": (5, 2, 5),
            # tst: status='disabled' is a skip; 'failed'/'errored' carry children.
            "issues/testDisabled.xml": (22, 6, 22),
            # status='disabled' yet a <failure> child: the child decides.
            "issues/testFailedDisabled.xml": (1, 1, 1),
            "junit-server-test/report.xml": (4, 1, 4),
            "junit-web-test/expected.xml": MALFORMED,
            "junit-web-test/expectedRetries.xml": MALFORMED,
            # One flakyFailure, then the final pass.
            "junit_flaky_failure/marathon_junit_report.xml": (1, 0, 2),
            "junit_flaky_failure/mixed_flaky_and_passed.xml": (3, 0, 4),
            "marathon_tests/com.mikepenz.DummyTest#test_02_dummy.xml": (1, 0, 1),
            "marathon_tests/com.mikepenz.DummyTest3#test_01.xml": (1, 1, 1),
            "marathon_tests/com.mikepenz.DummyUtilTest#test_01_dummy.xml": (1, 1, 1),
            "maven_surefire_flaky/surefire-report.xml": (1, 0, 2),
            "mocha/mocha.xml": (1, 0, 1),
            "multiple/test_10.xml": (3, 0, 3),
            "multiple/test_11.xml": (3, 1, 3),
            "multiple/test_12.xml": (3, 0, 3),
            "multiple_failures/test_multiple_errors.xml": (3, 2, 3),
            "multiple_failures/test_multiple_failures.xml": (4, 2, 4),
            "nested/junit.xml": (5, 3, 5),
            "nested/multi-level.xml": (3, 0, 3),
            "nextest/basic.xml": (3, 1, 3),
            "perl/result.xml": (1, 0, 1),
            "python/report.xml": (3, 2, 3),
            "python/report_flaky.xml": (4, 2, 4),
            "xunit/report.xml": (4, 1, 4),
            "xunit/report_fl_on_f.xml": (4, 1, 4),
        },
    ),
    **_under(
        "action-junit-report/test_results/corrupt-junit/e2e-tests/corrupt/target/sf-reports",
        {
            "TEST-test.CorruptTest.xml": MALFORMED,
        },
    ),
    **_under(
        "action-junit-report/test_results/tests/email/target/surefire-reports",
        {
            "TEST-action.surefire.report.email.EmailAddressTest.xml": (9, 7, 9),
        },
    ),
    **_under(
        "action-junit-report/test_results/tests/utils/target/surefire-reports",
        {
            "TEST-action.surefire.report.calc.AllOkTest.xml": (1, 0, 1),
            "TEST-action.surefire.report.calc.CalcUtilsTest.xml": (2, 2, 2),
            "TEST-action.surefire.report.calc.StringUtilsTest.xml": (5, 2, 5),
        },
    ),
    **_under(
        "fastlane/trainer/spec/fixtures",
        {
            "SwiftTesting.junit": (6, 3, 6),
            "Valid1.junit": (3, 1, 3),
            "XCResult.junit": (7, 2, 7),
        },
    ),
    **_under(
        "go-junit-report/testdata",
        {
            "001-report.xml": (5, 1, 5),
            "005-report.xml": (2, 0, 2),
            "012-report.xml": (11, 4, 11),
            "013-report.xml": (5, 3, 5),
            "017-report.xml": (1, 1, 1),
            "022-report.xml": (3, 0, 3),
            "030-report.xml": (17, 9, 17),
            "101-report.xml": (2, 1, 2),
            "105-report.xml": (1, 1, 1),
            "107-report.xml": (2, 0, 2),
            "108-report.xml": (2, 1, 2),
            "110-report.xml": (3, 2, 3),
            "111-report.xml": (0, 0, 0),
        },
    ),
    **_under(
        "gotestsum/internal/junitxml/testdata",
        {
            "junitxml-report-tc-with-attributes.golden": (1, 0, 1),
            "junitxml-report.golden": (60, 13, 60),
        },
    ),
    **_under(
        "junit-plugin/src/test/resources/hudson/tasks/junit",
        {
            "JENKINS-12457/TestSuite_a1.xml": (1, 0, 1),
            "JENKINS-12457/TestSuite_b.xml": (1, 0, 1),
            "JENKINS-12457/TestSuite_b_duplicate.xml": (1, 0, 1),
            "JENKINS-13214/27449.xml": (1, 0, 1),
            "JENKINS-30413.xml": (2, 1, 2),
            "JENKINS-41134/TestSuite_first.xml": (1, 0, 1),
            "JENKINS-41134/TestSuite_second_dup_first.xml": (1, 1, 1),
            "JENKINS-42438/junit-report-1.xml": (11, 0, 11),
            "JENKINS-48583/TEST-com.sample.test.TestMessage.xml": (1, 0, 1),
            "JENKINS-48583/TESTS-TestSuites.xml": (3, 0, 3),
            # skipped="1" counter, but the testcase holds an <error>.
            "SKIPPED_MESSAGE/afterSkippedResult.xml": (1, 1, 1),
            "SKIPPED_MESSAGE/skippedTestResult.xml": (1, 0, 1),
            "TEST-null.xml": (1, 1, 1),
            # <failure> plus three <rerunFailure>: 3 reruns + the final run.
            "gh-237/TEST-io.olamy.AlwaysFailTest.xml": (1, 1, 4),
            # Two <flakyFailure>, final pass.
            "gh-237/TEST-io.olamy.FlakyTest.xml": (1, 0, 3),
            "junit-report-1233.xml": (5, 0, 5),
            "junit-report-1463.xml": (6, 0, 6),
            "junit-report-20090516.xml": (8, 3, 8),
            "junit-report-2874.xml": (1, 0, 1),
            "junit-report-494.xml": (2, 1, 2),
            # <error> directly under <testsuite> is not a testcase.
            "junit-report-6700.xml": (0, 0, 0),
            "junit-report-bad-duration.xml": (2, 0, 2),
            # name="": kept under a placeholder name.
            "junit-report-empty-testcasename.xml": (1, 1, 1),
            "junit-report-errror-details.xml": (1, 1, 1),
            "junit-report-nested-testsuites.xml": (2, 0, 2),
            "junit-report-testsuite-time-attrs.xml": (8, 0, 8),
            "junit-report-testsuite-various-timestamps.xml": (12, 0, 12),
            "junit-report-time-aggregation.xml": (3, 0, 3),
            "junit-report-time-aggregation2.xml": (3, 0, 3),
            "junit-report-with-properties.xml": (2, 1, 2),
            "old-reports/junit-report-1.xml": (3, 0, 3),
            "pipeline/ageReset-1.xml": (1, 1, 1),
            "pipeline/ageReset-2.xml": (1, 0, 1),
            "pipeline/junit-report-testTrends-first-1.xml": (8, 0, 8),
            "testXxe-oob.xml": DTD_REFUSED,
            "testXxe-xxe.xml": DTD_REFUSED,
        },
    ),
    **_under(
        "publish-unit-test-result-action/python/test/files/junit-xml",
        {
            "bazel/suite-logs.xml": (1, 1, 1),
            "empty-system-out-err.xml": (1, 0, 1),
            # 3 rerunError + 3 rerunFailure + flakyFailure + flakyError = 8 extra.
            "flaky.xml": (4, 2, 12),
            "jest/jest-junit.xml": (2, 0, 2),
            # skipped + failure + error in one testcase: a failure.
            "junit.multiresult.xml": (4, 2, 4),
            "kotlin/TEST-com.github.guenhter.junit.CalculatorTest.xml": (24, 0, 24),
            "kotlin/TEST-com.github.guenhter.junit.TwoExtensionsTest1.xml": (1, 0, 1),
            "minimal-attributes.xml": (4, 2, 4),
            "mocha/latex-utensils.xml": (109, 0, 109),
            # Four testcases without a name, two with <failure>/<error>.
            "no-attributes.xml": (4, 2, 4),
            "no-cases-but-tests.xml": (0, 0, 0),
            "no-cases.xml": (0, 0, 0),
            "non-junit.xml": "<suites> is not JUnit XML",
            "pytest/corrupt-xml.xml": MALFORMED,
            "pytest/junit.fail.xml": (5, 1, 5),
            "pytest/junit.gloo.elastic.xml": (14, 0, 14),
            "pytest/junit.gloo.standalone.xml": (97, 0, 97),
            "pytest/junit.mpi.integration.xml": (3, 0, 3),
            "pytest/junit.spark.integration.1.xml": (35, 0, 35),
            "scalatest/TEST-uk.co.gresearch.spark.diff.DiffOptionsSuite.xml": (5, 0, 5),
            "spek2/TEST-com.github.guenhter.spek2.AssertionsSpek.xml": (1, 0, 1),
            "testsuite-in-testsuite.xml": (5, 0, 5),
            "testsuite-root.xml": (5, 0, 5),
            # 19 status='failed' + 1 'errored', each with a child; 5 disabled.
            "tst/disabled.xml": (31, 20, 31),
            "unsupported-unicode.xml": (7, 4, 7),
            "with-xml-entities.xml": (4, 2, 4),
            "xunit/xunit.xml": (2, 0, 2),
        },
    ),
    **_under(
        "publish-unit-test-result-action/python/test/files",
        {
            "nunit/nunit3/jenkins/NUnit-sec1752-file.xml": DTD_REFUSED,
            "nunit/nunit3/jenkins/NUnit-simple.xml": "<test-results> is not JUnit XML",
            "trx/nunit/NUnit-net461-sample.trx": "<TestRun> is not JUnit XML",
            "xml/empty.xml": EMPTY,
            "xml/non-xml.xml": MALFORMED,
            "xunit/mstest/fixie.xml": "<assemblies> is not JUnit XML",
        },
    ),
    **_under(
        "synthetic",
        {
            # ESC, NUL and VT are stripped with a warning.
            "control-chars-in-text.xml": (1, 1, 1),
            # Raw 0xF1/0xFA in declared UTF-8: read as Latin-1 with a warning.
            "latin1-bytes-declared-utf8.xml": (1, 1, 1),
            "latin1-declared-iso-8859-1.xml": (1, 0, 1),
            "utf16le-bom.xml": (1, 0, 1),
        },
    ),
    **_under(
        "test-reporter/__tests__/fixtures",
        {
            "dotnet-nunit.xml": "<test-run> is not JUnit XML",
            "empty/java-junit.xml": (0, 0, 0),
            "empty/jest-junit-empty-testsuite.xml": (0, 0, 0),
            "empty/jest-junit.xml": (0, 0, 0),
            "empty/phpunit-empty.xml": (0, 0, 0),
            "external/java/TEST-org.apache.pulsar.AddMissingPatchVersionTest.xml": (
                2,
                1,
                2,
            ),
            "external/java/empty_failures.xml": (3, 1, 3),
            "external/java/pulsar-test-report.xml": (808, 1, 808),
            "external/jest/jest-react-component-test-results.xml": (1, 0, 1),
            "external/phpunit/phpcheckstyle-phpunit.xml": (30, 2, 30),
            "jest-junit-eslint.xml": (1, 0, 1),
            "jest-junit.xml": (6, 4, 6),
            "junit-with-message.xml": (1, 1, 1),
            "nette-tester/BootstrapFormRenderer-report.xml": (4, 0, 4),
            "nette-tester/tester-v1.7-report.xml": (65, 1, 65),
            "phpunit/phpunit-paths.xml": (6, 6, 6),
            "phpunit/phpunit.xml": (12, 2, 12),
            "python-xunit-pytest.xml": (10, 2, 10),
            "python-xunit-unittest.xml": (8, 2, 8),
            # SwiftPM writes a skipped test as a pass; nothing to detect.
            "swift-xunit.xml": (3, 1, 3),
            "test-errors/jest/jest-test-results.xml": (2, 2, 2),
        },
    ),
}


def _corpus_files() -> list[str]:
    return sorted(
        path.relative_to(JUNIT).as_posix()
        for path in JUNIT.rglob("*")
        if path.is_file()
        and path.name not in NOT_REPORTS
        and not path.name.startswith(("LICENSE", "NOTICE"))
    )


def test_the_table_lists_every_corpus_file_and_nothing_else():
    assert sorted(EXPECTED) == _corpus_files()
    assert len(EXPECTED) == 149
    assert (len(INGESTED), len(REFUSED)) == (135, 14)


INGESTED = {
    path: counts for path, counts in EXPECTED.items() if isinstance(counts, tuple)
}
REFUSED = {path: reason for path, reason in EXPECTED.items() if isinstance(reason, str)}


@pytest.mark.parametrize(("relative", "counts"), INGESTED.items(), ids=list(INGESTED))
def test_corpus_report_ingests_with_the_expected_counts(relative, counts):
    report = parse_report((JUNIT / relative).read_bytes(), filename=relative)

    assert (report.testcases, report.failures, len(report.executions)) == counts
    assert len(report.executions) >= report.testcases
    for execution in report.executions:
        assert execution.name.strip()
        duration = execution.duration_ms
        assert duration is None or (math.isfinite(duration) and duration >= 0)


@pytest.mark.parametrize(("relative", "reason"), REFUSED.items(), ids=list(REFUSED))
def test_corpus_file_that_is_not_a_junit_report_is_refused(relative, reason):
    with pytest.raises(ReportError) as raised:
        parse_report((JUNIT / relative).read_bytes(), filename=relative)

    assert reason in str(raised.value)
