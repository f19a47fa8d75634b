from __future__ import annotations

import gc

import pytest

from flakewatch.outcomes import Outcome
from ingest.parsing import ReportError, clean_xml_bytes, parse_report


def _one_testcase(attributes: str = 'name="t"', body: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuite name="s"><testcase classname="c" {attributes}>{body}'
        f"</testcase></testsuite>"
    ).encode()


def test_ansi_escapes_and_control_chars_in_failure_text_are_removed_with_a_warning():
    report = parse_report(
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<testsuite name="s"><testcase classname="c" name="t">'
        b'<failure message="m">\x1b[31mAssertionError\x1b[0m\x00 boom\x0b</failure>'
        b"</testcase></testsuite>",
        filename="dirty.xml",
    )

    assert report.testcases == 1
    [execution] = report.executions
    assert execution.outcome == Outcome.FAILED
    assert execution.detail == "AssertionError boom"
    assert any("ANSI" in warning for warning in report.warnings)
    assert any("control character" in warning for warning in report.warnings)
    assert report.errors == []


def test_bytes_invalid_in_declared_utf8_are_read_as_latin1_with_a_warning():
    data = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<testsuite name="s"><testcase classname="c" name="pi\xf1a"/></testsuite>'
    )

    report = parse_report(data, filename="latin1.xml")

    assert [e.name for e in report.executions] == ["piña"]
    assert any("Latin-1" in warning for warning in report.warnings)


def test_declared_iso_8859_1_report_is_decoded_from_latin1():
    data = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        '<testsuite name="s"><testcase classname="c" name="café"/></testsuite>'
    ).encode("latin-1")

    report = parse_report(data, filename="iso.xml")

    assert [e.name for e in report.executions] == ["café"]
    assert report.warnings == []


def test_utf16_report_with_bom_is_decoded():
    data = (
        '<?xml version="1.0" encoding="UTF-16"?>\n'
        '<testsuite name="s"><testcase classname="c" name="naïve"/></testsuite>'
    ).encode("utf-16")
    assert data.startswith((b"\xff\xfe", b"\xfe\xff"))

    report = parse_report(data, filename="utf16.xml")

    assert [e.name for e in report.executions] == ["naïve"]
    assert report.warnings == []


@pytest.mark.parametrize(
    ("time", "duration_ms"),
    [("2,503.1", 2_503_100.0), ("1e-3", 1.0), ("0", 0.0), ("0.25", 250.0)],
)
def test_time_in_seconds_becomes_milliseconds(time, duration_ms):
    report = parse_report(_one_testcase(f'name="t" time="{time}"'))

    [execution] = report.executions
    assert execution.duration_ms == pytest.approx(duration_ms)
    assert report.warnings == []


@pytest.mark.parametrize(
    "time",
    [
        pytest.param("-345345", id="negative"),
        pytest.param("999638317", id="nanoseconds"),
        pytest.param("NaN", id="not-a-number"),
        pytest.param("soon", id="unreadable"),
    ],
)
def test_unusable_time_is_stored_without_a_duration_and_warned_about(time):
    report = parse_report(_one_testcase(f'name="t" time="{time}"'))

    [execution] = report.executions
    assert execution.duration_ms is None
    assert len(report.warnings) == 1
    assert "stored without a duration" in report.warnings[0]


def test_missing_time_is_stored_without_a_duration_silently():
    report = parse_report(_one_testcase('name="t"'))

    [execution] = report.executions
    assert execution.duration_ms is None
    assert report.warnings == []


def test_surefire_flaky_failures_then_pass_are_two_failed_runs_and_a_final_pass():
    body = (
        '<flakyFailure message="first" type="AssertionError">'
        "<stackTrace>at First</stackTrace></flakyFailure>"
        '<flakyFailure message="second" type="AssertionError">'
        "<stackTrace>at Second</stackTrace></flakyFailure>"
    )

    report = parse_report(_one_testcase('name="t" time="0.2"', body))

    assert (report.testcases, report.failures) == (1, 0)
    outcomes = [e.outcome for e in report.executions]
    assert outcomes == [Outcome.FAILED, Outcome.FAILED, Outcome.PASSED]
    assert [e.message for e in report.executions[:2]] == ["first", "second"]
    assert report.executions[-1].duration_ms == pytest.approx(200.0)


def test_surefire_rerun_failures_make_every_run_failed_and_the_testcase_a_failure():
    body = (
        '<failure message="run 1" type="AssertionError">trace 1</failure>'
        '<rerunFailure message="run 2" type="AssertionError"/>'
        '<rerunFailure message="run 3" type="AssertionError"/>'
    )

    report = parse_report(_one_testcase('name="t"', body))

    assert (report.testcases, report.failures) == (1, 1)
    assert [e.outcome for e in report.executions] == [Outcome.FAILED] * 3


def test_several_failures_in_one_testcase_are_one_failed_run_with_both_texts():
    body = (
        '<failure message="first">first text</failure>'
        '<failure message="second">second text</failure>'
    )

    report = parse_report(_one_testcase('name="t"', body))

    assert (report.testcases, report.failures) == (1, 1)
    [execution] = report.executions
    assert execution.outcome == Outcome.FAILED
    assert "first text" in execution.detail
    assert "second text" in execution.detail


def test_testcase_without_a_name_is_kept_under_a_placeholder_and_listed_as_an_error():
    data = (
        b'<testsuite name="s"><testcase classname="c" name="named"/>'
        b'<testcase classname="c"><failure message="m"/></testcase></testsuite>'
    )

    report = parse_report(data, filename="unnamed.xml")

    assert report.testcases == 2
    named, unnamed = report.executions
    assert named.name == "named"
    assert unnamed.name.strip()
    assert unnamed.name != "named"
    assert unnamed.outcome == Outcome.FAILED
    assert len(report.errors) == 1
    assert "no name" in report.errors[0]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE testsuite [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<testsuite name="s"><testcase classname="c" name="&lol5;"/></testsuite>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testsuite name="s"><testcase classname="c" name="&secret;"/></testsuite>
"""


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(BILLION_LAUGHS, id="entity-expansion"),
        pytest.param(EXTERNAL_ENTITY, id="external-entity"),
    ],
)
def test_document_with_entity_declarations_is_refused(data):
    with pytest.raises(ReportError, match="DOCTYPE"):
        parse_report(data, filename="attack.xml")


def test_nested_testsuites_join_their_names_into_the_suite_path():
    data = (
        b'<testsuites name="all"><testsuite name="outer">'
        b'<testsuite name="inner"><testcase classname="c" name="deep"/></testsuite>'
        b'<testcase classname="c" name="shallow"/>'
        b"</testsuite></testsuites>"
    )

    report = parse_report(data)

    suites = {e.name: e.suite for e in report.executions}
    assert suites == {"deep": "outer › inner", "shallow": "outer"}


def test_report_with_no_testcases_is_valid_and_empty():
    report = parse_report(b"<testsuites/>")

    assert report.testcases == 0
    assert report.failures == 0
    assert report.executions == []
    assert report.errors == []


def test_ansi_colours_written_as_character_references_are_removed():
    report = parse_report(
        _one_testcase(body="<failure>&#x1B;[31mred&#x1B;[0m done</failure>")
    )
    assert report.executions[0].detail == "red done"
    assert any("ANSI" in warning for warning in report.warnings)


def test_surefire_first_failure_comes_before_its_reruns():
    report = parse_report(
        _one_testcase(
            body='<failure message="first"/><rerunFailure message="second"/>'
            '<rerunFailure message="third"/>'
        )
    )
    assert [e.message for e in report.executions] == ["first", "second", "third"]


def test_namespaced_junit_is_refused_rather_than_read_as_empty():
    data = b'<testsuites xmlns="urn:x"><testsuite><testcase name="a"/></testsuite></testsuites>'
    with pytest.raises(ReportError, match="namespace"):
        parse_report(data)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("failed", Outcome.FAILED),
        ("FAIL", Outcome.FAILED),
        ("disabled", Outcome.SKIPPED),
        ("notrun", Outcome.SKIPPED),
        ("passed", Outcome.PASSED),
        ("", Outcome.PASSED),
    ],
)
def test_testcase_without_children_takes_its_outcome_from_its_status(status, outcome):
    report = parse_report(_one_testcase(f'name="t" status="{status}"'))

    [execution] = report.executions
    assert execution.outcome == outcome
    assert report.failures == (1 if outcome == Outcome.FAILED else 0)
    assert (execution.kind, execution.message, execution.detail) == ("", "", "")


def test_testcase_without_a_file_attribute_takes_its_suites_file():
    report = parse_report(
        b'<testsuite name="s" file="suite.py"><testcase classname="c" name="a"/>'
        b'<testcase classname="c" name="b" file="own.py"/></testsuite>'
    )

    assert [e.file for e in report.executions] == ["suite.py", "own.py"]


def test_executions_share_one_object_per_distinct_suite_classname_and_file():
    report = parse_report(
        b'<testsuites><testsuite name="s"><testsuite name="t">'
        b'<testcase classname="c" name="a" file="f.py" time="0.5"/>'
        b'<testcase classname="c" name="b" file="f.py" time="0.5"/>'
        b"</testsuite></testsuite></testsuites>"
    )

    first, second = report.executions
    assert first.suite == "s › t"
    assert first.suite is second.suite
    assert first.classname is second.classname
    assert first.file is second.file
    assert first.duration_ms == second.duration_ms == 500.0


def test_clean_report_is_returned_uncopied_even_with_character_references():
    data = _one_testcase(body='<failure message="a&#10;b">x &amp; y</failure>')

    cleaned, warnings = clean_xml_bytes(data, filename="clean.xml")

    assert cleaned is data
    assert warnings == []


def test_reference_to_a_control_character_in_otherwise_clean_bytes_is_removed():
    data = _one_testcase('name="a&#27;b"')

    cleaned, warnings = clean_xml_bytes(data, filename="ref.xml")

    assert b"&#27;" not in cleaned
    assert len(warnings) == 1
    assert "control character" in warnings[0]


@pytest.mark.parametrize("enabled", [True, False])
def test_parsing_leaves_the_garbage_collector_as_it_found_it(enabled):
    was_enabled = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        parse_report(_one_testcase())
        with pytest.raises(ReportError):
            parse_report(b"<testsuite><testcase></testsuite>")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was_enabled else gc.disable)()


def test_failure_before_a_nested_testcase_still_fails_the_outer_testcase():
    report = parse_report(
        b'<testsuite name="s"><testcase name="outer"><failure message="boom">x'
        b'</failure><testcase name="inner"/></testcase></testsuite>'
    )

    outcomes = {e.name: e.outcome for e in report.executions}
    assert outcomes == {"outer": Outcome.FAILED, "inner": Outcome.PASSED}
    assert report.failures == 1
    assert [e.message for e in report.executions if e.name == "outer"] == ["boom"]


def test_failure_of_a_nested_testcase_is_not_also_the_outer_testcases():
    report = parse_report(
        b'<testsuite name="s"><testcase name="outer"><skipped message="later"/>'
        b'<testsuite name="in"><testcase name="inner"><error message="bad"/>'
        b"</testcase></testsuite></testcase></testsuite>"
    )

    outcomes = {e.name: e.outcome for e in report.executions}
    assert outcomes == {"outer": Outcome.SKIPPED, "inner": Outcome.ERROR}


@pytest.mark.parametrize(
    ("attributes", "body", "outcome"),
    [
        pytest.param('status="run" result="skipped"', "", Outcome.SKIPPED, id="skip"),
        pytest.param(
            'status="notrun" result="suppressed"', "", Outcome.SKIPPED, id="disabled"
        ),
        pytest.param(
            'status="run" result="suppressed"', "", Outcome.SKIPPED, id="suppressed"
        ),
        pytest.param(
            'status="run" result="completed"', "", Outcome.PASSED, id="completed"
        ),
        pytest.param(
            'status="run" result="completed"',
            '<failure message="Value of: x"/>',
            Outcome.FAILED,
            id="completed-failure",
        ),
        pytest.param(
            'status="run" result="skipped"',
            '<skipped message="GTEST_SKIP"/>',
            Outcome.SKIPPED,
            id="skip-with-child",
        ),
        pytest.param(
            'status="run" result="skipped"',
            "<system-out>log</system-out>",
            Outcome.SKIPPED,
            id="skip-with-output",
        ),
        pytest.param(
            'status="run" result="skipped"',
            '<failure message="boom"/>',
            Outcome.FAILED,
            id="failure-wins",
        ),
    ],
)
def test_googletest_result_attribute_is_read_as_googletest_defines_it(
    attributes, body, outcome
):
    report = parse_report(_one_testcase(f'name="t" {attributes}', body))

    [execution] = report.executions
    assert execution.outcome == outcome
    assert report.failures == (1 if outcome == Outcome.FAILED else 0)


CHECK_NS = "http://check.sourceforge.net/ns"
CHECK_BODY = (
    "<datetime>2026-01-01 10:00:00</datetime><suite><title>Money</title>"
    '<test result="failure"><path>.</path><fn>check_money.c:28</fn>'
    "<id>test_money_create</id><message>Assertion failed</message></test>"
    "</suite>"
)
TRX_NS = "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"


@pytest.mark.parametrize(
    ("data", "names", "advice"),
    [
        pytest.param(
            f'<testsuites xmlns="{CHECK_NS}">{CHECK_BODY}</testsuites>',
            "Check",
            "convert",
            id="check",
        ),
        pytest.param(
            f"<testsuites>{CHECK_BODY}</testsuites>",
            "Check",
            "convert",
            id="check-without-namespace",
        ),
        pytest.param(
            "<TestRun><FailedTests/><SuccessfulTests/><Statistics/></TestRun>",
            "CppUnit or AUnit",
            "cppunit2junit.xsl",
            id="cppunit",
        ),
        pytest.param(
            f'<TestRun xmlns="{TRX_NS}"><Results/></TestRun>',
            "Visual Studio TRX",
            "JunitXml.TestLogger",
            id="trx",
        ),
        pytest.param(
            '<test-run id="2"><test-suite/></test-run>',
            "NUnit 3",
            "nunit3-junit.xslt",
            id="nunit3",
        ),
        pytest.param('<test-results name="x"/>', "NUnit 2", "JUnit XML", id="nunit2"),
        pytest.param(
            "<assemblies><assembly/></assemblies>",
            "an xUnit.net v2",
            "JunitXml.TestLogger",
            id="xunit2",
        ),
        pytest.param(
            '<assembly name="a.dll"/>',
            "an xUnit.net",
            "JunitXml.TestLogger",
            id="xunit1",
        ),
        pytest.param("<testng-results/>", "TestNG", "junitreports", id="testng"),
        pytest.param(
            '<checkstyle version="10"/>', "Checkstyle", "lint", id="checkstyle"
        ),
        pytest.param(
            '<testsuites xmlns="urn:example"><testsuite/></testsuites>',
            "namespace",
            "remove the xmlns attribute",
            id="other-namespace",
        ),
        pytest.param("<results/>", "<results>", "JUnit XML", id="unknown-root"),
    ],
)
def test_refusal_names_the_format_and_says_how_to_get_junit_xml(data, names, advice):
    with pytest.raises(ReportError) as raised:
        parse_report(data.encode(), filename="r.xml")

    message = str(raised.value)
    assert names in message
    assert advice in message
    assert "Visual Studio TRX" not in message or names == "Visual Studio TRX"
    assert " a xUnit" not in message


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"<testsuite><testcase></testsuite>", id="malformed"),
        pytest.param(b"<testsuite", id="cut-short"),
        pytest.param(b"<?xml version='1.0'?>", id="no-element"),
        pytest.param(b'<!DOCTYPE x [<!ENTITY a "b">]><x/>', id="doctype"),
        pytest.param(b"<results/>", id="unknown-root"),
        pytest.param(b'<testsuite xmlns="urn:x"/>', id="namespace"),
        pytest.param(b"<TestRun/>", id="cppunit"),
    ],
)
def test_every_refusal_is_a_sentence_after_the_file_name(data):
    with pytest.raises(ReportError) as raised:
        parse_report(data, filename="r.xml")

    message = str(raised.value)
    assert message.startswith("r.xml: ")
    sentence = message.removeprefix("r.xml: ")
    assert sentence[0].isupper(), message
    assert sentence.endswith("."), message
    assert ". " not in sentence or all(
        part[0].isupper() or part[0] in "(<-" for part in sentence.split(". ")[1:]
    ), message


def test_every_repair_warning_is_a_sentence_after_the_file_name():
    data = (
        b'<?xml version="1.0" encoding="x-unknown"?>\n<testsuite name="s">'
        b'<testcase name="pi\xf1a" time="-1"><failure>\x1b[31mred\x00</failure>'
        b"</testcase></testsuite>"
    )

    report = parse_report(data, filename="r.xml")

    assert len(report.warnings) == 5
    for warning in report.warnings:
        assert warning.startswith("r.xml: ")
        assert warning.removeprefix("r.xml: ")[0].isupper(), warning


def test_each_rerun_element_keeps_its_own_duration():
    body = (
        '<flakyFailure message="first" time="0.5"><stackTrace>a</stackTrace>'
        "</flakyFailure>"
        '<flakyError message="second" time="0.25"/>'
    )

    report = parse_report(_one_testcase('name="t" time="0.1"', body))

    durations = [e.duration_ms for e in report.executions]
    assert durations == [pytest.approx(500.0), pytest.approx(250.0), 100.0]


def _suite(*testcases: str, name: str = "s") -> str:
    return f'<testsuite name="{name}">{"".join(testcases)}</testsuite>'


def _case(name: str = "t", body: str = "", attributes: str = "") -> str:
    return f'<testcase classname="c" name="{name}" {attributes}>{body}</testcase>'


FAIL = '<failure message="boom"/>'
SKIP = "<skipped/>"


@pytest.mark.parametrize(
    "suites",
    [
        pytest.param(
            [
                _suite(
                    _case(attributes='file="a.py" line="7"'),
                    _case("other"),
                    _case(body=FAIL, attributes='file="a.py" line="7"'),
                )
            ],
            id="same-file-and-line",
        ),
        pytest.param(
            [_suite(_case(body=FAIL), _case("other", SKIP), _case("other2"), _case())],
            id="gotestsum-failures-before-passes",
        ),
        pytest.param(
            [_suite(_case(body=FAIL), _case(body=FAIL), _case())],
            id="pytest-rerunfailures",
        ),
        pytest.param(
            [_suite(_case("other"), _case(), _case(), _case(body=FAIL))],
            id="pytest-rerunfailures-reruns-without-a-result",
        ),
        pytest.param([_suite(_case(), _case(), _case())], id="consecutive-repetitions"),
    ],
)
def test_repeated_testcase_that_the_report_shows_as_reruns_is_one_test(suites):
    report = parse_report(f"<testsuites>{''.join(suites)}</testsuites>".encode())

    names = [e.name for e in report.executions]
    assert names.count("t") == sum(suite.count('name="t"') for suite in suites)
    assert names.count("t") >= 2
    assert all(not name.startswith("t #") for name in names)
    assert report.warnings == []


@pytest.mark.parametrize(
    ("suites", "warned"),
    [
        pytest.param(
            [
                _suite(
                    _case(body=FAIL, attributes='file="a.py" line="7"'),
                    _case(attributes='file="a.py" line="19"'),
                )
            ],
            False,
            id="different-lines",
        ),
        pytest.param(
            [_suite(_case(body='<flakyFailure message="m"/>'), _case("u"), _case())],
            False,
            id="report-with-rerun-elements",
        ),
        pytest.param(
            [_suite(_case(body=FAIL)), _suite(_case())], True, id="two-suites"
        ),
        pytest.param(
            [_suite(_case(body=SKIP), _case(body=FAIL))], True, id="testng-invocations"
        ),
        pytest.param(
            [_suite(_case(), _case("u"), _case(body=FAIL))], True, id="pass-then-fail"
        ),
    ],
)
def test_repeated_testcase_that_may_be_another_test_is_stored_apart(suites, warned):
    report = parse_report(
        f"<testsuites>{''.join(suites)}</testsuites>".encode(), filename="r.xml"
    )

    names = [e.name for e in report.executions if e.name.startswith("t")]
    assert names[0] == "t"
    assert names[-1] == "t #2"
    assert len(set(names)) == 2
    assert len(report.warnings) == int(warned)
    if warned:
        assert "'t'" in report.warnings[0]
        assert "separate test" in report.warnings[0]
