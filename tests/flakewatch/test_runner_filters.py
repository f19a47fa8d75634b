import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flakewatch.runner_filters import (
    QuarantineItem,
    go_filter,
    gradle_filter,
    jest_filter,
    maven_excludes_file,
    maven_filter,
    nextest_filter,
    playwright_filter,
    pytest_filter,
    pytest_node_id,
    pytest_plugin_filter,
    pytest_prefix_collisions,
    render,
    text_filter,
)

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "var" / "runner-cache"
JEST_VERSION = "29.7.0"
Q = QuarantineItem

# --- Unit tests of each form against the runner's documented syntax --------


@pytest.mark.parametrize(
    ("item", "node_id"),
    [
        (Q("test_a", "tests.test_x"), "tests/test_x.py::test_a"),
        (Q("test_a[1-2]", "tests.test_x.TestY"), "tests/test_x.py::TestY::test_a[1-2]"),
        (
            Q("test_b", "tests.test_x.TestY.TestZ"),
            "tests/test_x.py::TestY::TestZ::test_b",
        ),
        (
            Q("test_a", "tests.test_x.TestY", file="tests/test_x.py"),
            "tests/test_x.py::TestY::test_a",
        ),
        # rootdir below the package root: the classname starts elsewhere
        (
            Q("test_a", "app.tests.test_x.TestY", file="tests/test_x.py"),
            "tests/test_x.py::TestY::test_a",
        ),
        (Q("test_a", "", file="./t/test_w.py"), "t/test_w.py::test_a"),
        (Q("test_a", ""), None),
    ],
)
def test_pytest_node_id_from_junit_names(item, node_id):
    assert pytest_node_id(item) == node_id


def test_pytest_form_is_an_argument_file_one_deselect_a_line():
    text = pytest_filter([Q("test_a[a b]", "t.test_x"), Q("test_b", "t.test_x")])
    assert (
        text == "--deselect=t/test_x.py::test_a[a b]\n--deselect=t/test_x.py::test_b\n"
    )


def test_pytest_prefix_collisions_name_the_tests_deselected_by_accident():
    items = [Q("test_save", "t.test_x")]
    ids = [
        "t/test_x.py::test_save",
        "t/test_x.py::test_save_twice",
        "t/test_x.py::test_load",
    ]
    assert pytest_prefix_collisions(items, ids) == ["t/test_x.py::test_save_twice"]


def test_jest_pattern_escapes_regex_metacharacters_and_anchors_full_names():
    pattern = jest_filter([Q("a (b) [c] $d.e*f+g?h|i/j^k\\l {m}")])
    assert pattern == r"^(?!(?:a \(b\) \[c\] \$d\.e\*f\+g\?h\|i\/j\^k\\l \{m\})$)"
    assert re.search(pattern, "a (b) [c] $d.e*f+g?h|i/j^k\\l {m}") is None
    assert re.search(pattern, "a (b) [c] $d.e*f+g?h|i/j^k\\l {m} more")


def test_jest_joins_a_describe_path_classname_in_front_of_the_title():
    assert jest_filter([Q("renders", "Button")]) == "^(?!(?:Button renders)$)"
    assert (
        jest_filter([Q("Button renders", "Button renders")])
        == "^(?!(?:Button renders)$)"
    )
    assert jest_filter([]) == "^"


def test_go_skip_anchors_every_level_and_escapes_metacharacters():
    pattern = go_filter([Q("TestA"), Q("TestB/sub"), Q("TestC/x[1]/a|b")])
    assert pattern == r"^TestA$|^TestB$/^sub$|^TestC$/^x\[1\]$/^a\|b$"
    assert go_filter([]) == ""


def test_nextest_filterset_uses_equality_matchers_and_escapes():
    expr = nextest_filter([Q("tests::b"), Q("tests::a(1),x\\y")])
    assert expr == r"not (test(=tests::a(1\)\,x\\y) | test(=tests::b))"
    assert nextest_filter([]) == "all()"


def test_surefire_excludes_class_path_and_method():
    items = [
        Q("testAdd(int)[1]", "com.acme.CalcTest"),
        Q("testSub", "com.acme.CalcTest"),
    ]
    assert (
        maven_filter(items) == "!com/acme/CalcTest#testAdd,!com/acme/CalcTest#testSub"
    )
    assert (
        maven_excludes_file(items)
        == "com/acme/CalcTest#testAdd\ncom/acme/CalcTest#testSub\n"
    )
    assert maven_filter([Q("testOrphan")]) == ""  # no class: not expressible


def test_gradle_init_script_excludes_each_test_with_groovy_quoting():
    script = gradle_filter([Q("can't do $x", "com.acme.SpecTest"), Q("b\\c", "K")])
    assert "tasks.withType(Test).configureEach {" in script
    assert "excludeTestsMatching 'com.acme.SpecTest.can\\'t do $x'" in script
    assert "excludeTestsMatching 'K.b\\\\c'" in script
    assert script.count("excludeTestsMatching") == 2


def test_playwright_grep_invert_matches_only_that_title_line():
    delimited = playwright_filter([Q("login › works (fast)", "auth/login.spec.ts")])
    assert delimited.startswith("/") and delimited.endswith("/")  # no i flag
    pattern = delimited[1:-1]
    assert re.search(pattern, " chromium auth/login.spec.ts login works (fast)")
    assert re.search(pattern, " chromium auth/login.spec.ts login works (fast) @smoke")
    assert not re.search(pattern, " chromium auth/login.spec.ts login works (fast) 2")
    assert not re.search(pattern, " chromium auth/login.spec.ts x login works (fast)")
    assert not re.search(pattern, " chromium auth/signup.spec.ts login works (fast)")
    assert not re.search(pattern, " chromium xauth/login.spec.ts login works (fast)")
    assert playwright_filter([]) == "/(?!)/"


def test_playwright_reads_the_project_prefix_and_falls_back_to_the_file():
    pattern = playwright_filter([Q("[firefox] a › b", "", file="/repo/e2e/x.spec.ts")])[
        1:-1
    ]
    assert re.search(pattern, " firefox e2e/x.spec.ts a b")
    assert not re.search(pattern, " chromium e2e/x.spec.ts a b")


def test_text_format_and_render_registry():
    assert text_filter([Q("t", "C"), Q("u")]) == "C::t\n::u\n"
    assert render("go", [Q("TestA")]) == "^TestA$"
    assert "'t/test_x.py::test_a'," in render(
        "pytest-plugin", [Q("test_a", "t.test_x")]
    )
    with pytest.raises(KeyError):
        render("cobol", [])


# --- The real runners -------------------------------------------------------

PYTEST_FILE = """\
import pytest

VALUES = ["a b", "it's", 'say "hi"', "x[1]", "$HOME", "back\\\\slash", "café 中"]


@pytest.mark.parametrize("v", VALUES)
def test_param(v):
    pass


def test_plain():
    pass


class TestGroup:
    def test_one(self):
        pass

    @pytest.mark.parametrize("n", [1, 10])
    def test_n(self, n):
        pass
"""


def _pytest_run(tmp: Path, *args: str) -> set[tuple[str, str]]:
    report = tmp / f"report{len(list(tmp.glob('report*')))}.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:cacheprovider",
         "-c", str(tmp / "pytest.ini"), "--rootdir", str(tmp), "-q",
         f"--junitxml={report}", *args],
        cwd=tmp, timeout=120, capture_output=True,
    )  # fmt: skip
    assert done.returncode in (0, 5), done.stdout  # 5: every test deselected
    return {
        (case.get("classname", ""), case.get("name", ""))
        for case in ET.parse(report).getroot().iter("testcase")
    }


def test_real_pytest_skips_exactly_the_quarantined_tests(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_tricky.py").write_text(PYTEST_FILE, encoding="utf-8")
    everything = _pytest_run(tmp_path)
    assert len(everything) == 11
    quarantined = {
        (c, n)
        for c, n in everything
        if (n.startswith("test_param[") and n != "test_param[a b]")
        or n in ("test_one", "test_n[1]")
    }
    assert len(quarantined) == 8  # 6 parametrised ids, a method, one of two ids
    args = pytest_filter([Q(n, c) for c, n in quarantined])
    (tmp_path / "quarantine.args").write_text(args, encoding="utf-8")
    ran = _pytest_run(tmp_path, "@quarantine.args")
    assert ran == everything - quarantined


def test_real_pytest_plugin_form_skips_exactly_the_quarantined_tests(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_tricky.py").write_text(PYTEST_FILE, encoding="utf-8")
    (tmp_path / "tests" / "test_prefix.py").write_text(
        "def test_a():\n    pass\n\n\ndef test_ab():\n    pass\n"
    )
    everything = _pytest_run(tmp_path)
    assert len(everything) == 13
    quarantined = {
        (c, n)
        for c, n in everything
        if (n.startswith("test_param[") and n != "test_param[a b]")
        or n in ("test_one", "test_n[1]", "test_a")
    }
    assert len(quarantined) == 9
    plugin = pytest_plugin_filter([Q(n, c) for c, n in quarantined])
    (tmp_path / "flakewatch_quarantine.py").write_text(plugin, encoding="utf-8")
    ran = _pytest_run(tmp_path, "-p", "flakewatch_quarantine")
    assert ran == everything - quarantined
    assert ("tests.test_prefix", "test_ab") in ran


def test_real_pytest_deselect_is_a_prefix_match(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_p.py").write_text(
        "def test_a():\n    pass\n\n\ndef test_ab():\n    pass\n"
    )
    items = [Q("test_a", "test_p")]
    (tmp_path / "q.args").write_text(pytest_filter(items))
    assert _pytest_run(tmp_path, "@q.args") == set()  # test_ab went too
    assert pytest_prefix_collisions(
        items, ["test_p.py::test_a", "test_p.py::test_ab"]
    ) == ["test_p.py::test_ab"]


JEST_NAMES = [
    "adds (one) item",
    "adds (one) item twice",
    "adds [two] items?",
    "costs $5.00 + tax",
    'says "hi" & it\'s fine',
    "back\\slash | pipe",
    "naïve café 中文",
    "plain",
]


def _jest() -> Path:
    """Return jest's bin script, installing it once under var/runner-cache/."""
    target = CACHE / f"jest-{JEST_VERSION}"
    script = target / "node_modules" / "jest" / "bin" / "jest.js"
    if script.exists():
        return script
    npm = shutil.which("npm")
    assert npm, "Node.js and npm are needed for the Jest runner test"
    staging = CACHE / f".jest-{JEST_VERSION}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
         "--prefix", str(staging), f"jest@{JEST_VERSION}"],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip
    staging.rename(target)  # atomic: a half-finished install is never used
    return script


def test_real_jest_skips_exactly_the_quarantined_tests(tmp_path):
    jest = _jest()
    tests = "\n".join(f"  test({json.dumps(n)}, () => {{}});" for n in JEST_NAMES)
    (tmp_path / "tricky.test.js").write_text(
        f'describe("Checkout flow", () => {{\n{tests}\n}});\ntest("top level", () => {{}});\n',
        encoding="utf-8",
    )
    (tmp_path / "package.json").write_text("{}")
    quarantined = {
        f"Checkout flow {n}"
        for n in JEST_NAMES
        if n not in ("adds (one) item twice", "plain")
    }
    items = [Q(name, name) for name in quarantined]  # jest-junit's default names
    result = tmp_path / "result.json"
    subprocess.run(
        ["node", str(jest), "--ci", "--watchman=false", "--rootDir", str(tmp_path),
         "--json", f"--outputFile={result}", f"--testNamePattern={jest_filter(items)}"],
        cwd=tmp_path, check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    outcomes = {
        a["fullName"]: a["status"]
        for suite in json.loads(result.read_text(encoding="utf-8"))["testResults"]
        for a in suite["assertionResults"]
    }
    assert len(outcomes) == len(JEST_NAMES) + 1
    assert {n for n, s in outcomes.items() if s == "passed"} == set(
        outcomes
    ) - quarantined
    assert {n for n, s in outcomes.items() if s != "passed"} == quarantined


GO_TEST = """\
package q

import "testing"

func TestAlpha(t *testing.T)     {}
func TestAlphaBeta(t *testing.T) {}

func TestTable(t *testing.T) {
	for _, name := range []string{"a b", "x[1]", "dollar$", "pipe|bar", "naïve", "dot.plus+", "paren(1)"} {
		t.Run(name, func(t *testing.T) {})
	}
}
"""


def _go() -> str:
    """Return a go binary of version 1.20 or later (``-skip`` is 1.20's)."""
    candidates = sorted(Path("/usr/lib").glob("go-1.*/bin/go"), reverse=True)
    on_path = shutil.which("go")
    for go in [*map(str, candidates), *([on_path] if on_path else [])]:
        version = subprocess.run([go, "version"], capture_output=True, text=True).stdout
        m = re.search(r"go1\.(\d+)", version)
        if m and int(m.group(1)) >= 20:
            return go
    pytest.fail("go 1.20+ is needed: .ci/run installs golang-1.23-go from backports")


def _go_run(go: str, module: Path, *args: str) -> set[str]:
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GOTOOLCHAIN="local")
    env.update(GOCACHE=str(CACHE / "go-build"), GOPATH=str(CACHE / "gopath"))
    out = subprocess.run(
        [go, "test", "-count=1", "-v", ".", *args],
        cwd=module, env=env, check=True, timeout=300, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return set(re.findall(r"^=== RUN\s+(\S+)$", out, flags=re.MULTILINE))


def test_real_go_test_skips_exactly_the_quarantined_tests(tmp_path):
    go = _go()
    (tmp_path / "go.mod").write_text("module example.com/q\n\ngo 1.20\n")
    (tmp_path / "q_test.go").write_text(GO_TEST, encoding="utf-8")
    everything = _go_run(go, tmp_path)
    assert "TestTable/a_b" in everything and len(everything) == 10
    quarantined = {"TestAlpha", "TestTable/a_b", "TestTable/x[1]", "TestTable/pipe|bar",
                   "TestTable/naïve", "TestTable/dot.plus+", "TestTable/dollar$"}  # fmt: skip
    pattern = go_filter([Q(name, "example.com/q") for name in quarantined])
    ran = _go_run(go, tmp_path, f"-skip={pattern}")
    assert ran == everything - quarantined
