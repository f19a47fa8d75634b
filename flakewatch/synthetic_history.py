"""Synthetic CI histories with known ground truth, and how to score a verdict.

Pure Python, no Django: the test suite (tests/flakewatch/test_accuracy.py)
feeds the small preset through the real upload API and worker, and
``python -m bench.accuracy`` feeds the full one. It lives in the app package,
not under tests/, so that the benchmarks can use it without importing the
tests and a demo project can be loaded from it.

The history is a default branch of ``commits`` commits, one build each, plus
a few short feature branches with builds of their own. Every build runs the
same five jobs; each job writes its own JUnit dialect and has its own rerun
regime:

=============  =====================  ========================  ============
job            tests and dialect      in-run reruns             job re-run
=============  =====================  ========================  ============
unit-py311     unit, pytest xunit2    pytest-rerunfailures, 2   no
unit-py312     unit, pytest xunit2    none                      yes
integration    integration, Surefire  rerunFailingTestsCount=2  yes
js             js, jest-junit         none (invisible)          no
go             go, gotestsum          --rerun-fails=2           no
=============  =====================  ========================  ============

The two unit jobs are a matrix: the same tests (the same identities) in two
configurations. A job with "job re-run" gets attempt 2 on the same commit and
build whenever attempt 1 ended with a failed test. ``js`` is the regime
without any re-runs: its flakes show only as isolated failures.

pytest-rerunfailures is written as it really is: a failed attempt that is
rerun becomes a ``<testcase>`` with no result child (pytest's junitxml drops
reports whose outcome is "rerun"; pytest-rerunfailures issue #170, and the
16.6.1 change discussed in facebookresearch/ProgramBench#64), followed by the
final attempt. So "failed, then passed" reads as two passes, and "failed
three times" reads as pass, pass, fail. Pass ``rerunfailures_records=
"failure"`` to write the rerun records with a ``<failure>`` child instead.

Ground truth (``History.truth``) is one ``Truth`` per test identity, with
the kind of behaviour planted and what a correct analysis should conclude at
the end of the history; ``Truth.flaky_evidence`` lists the runs whose
reports show a flaky failure as evidence (on the default branch, or with a
pass of the same commit), so a test whose planted flakiness never surfaced
can be told apart from a missed one.
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

TestKey = tuple[str, str, str, str]  # (suite, classname, name, file)

DEFAULT_BRANCH = "main"
DEFAULT_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

KINDS = (
    "healthy",
    "flaky",
    "flaky_from",
    "flaky_until",
    "broken_window",
    "branch_broken",
    "config_only",
    "incident_victim_only",
    "slow_from",
)
# Kinds that must never be called flaky (the "target: none").
NEVER_FLAKY = ("broken_window", "branch_broken", "config_only", "incident_victim_only")
RECALL_MIN_RATE = 0.03
# A flaky test counts towards recall once this many of its runs show a flaky
# failure: LUCI Analysis asks for at least 2 flaky verdicts before it calls
# a test flaky, and nothing can find flakiness that never surfaced.
MIN_FLAKY_RUNS = 2
SLOWDOWN = 4.0
# first_flaky_commit must fall within the first this-many runs of evidence.
FIRST_FLAKY_RUNS = 3
FIRST_FLAKY_TARGET = 0.95
# The true start of a flaky episode must lie in [flaky_since,
# first_flaky_commit] this often.
FLAKY_SINCE_TARGET = 0.9
# A flaky test whose clean tail had at most this chance at its rate may be
# called fixed (Truth.went_quiet): the 95% rule of the fixed verdict.
QUIET_CHANCE = 0.05
# Kinds that are never flaky nor broken in any job: "fixed" is always wrong.
NEVER_FIXED = ("healthy", "incident_victim_only", "slow_from")
# A score over fewer tests than this proves nothing: target_failures() reports
# the population as a miss. Both presets plant at least these many.
MIN_POPULATIONS = {
    "recall": 10,  # observable flaky tests with rate >= RECALL_MIN_RATE
    "recall_all": 10,  # observable flaky tests, any rate
    "fixed": 3,  # observable flaky_until tests
    "broken_then_fixed": 1,  # broken_window tests whose fix landed
    "first_flaky_commit": 10,  # flaky and flaky_from tests called flaky
    "duration_regressed": 3,  # slow_from tests
    **{kind: 1 for kind in NEVER_FLAKY},  # judged tests of each such kind
}

# Sizes. "small" runs in the test suite, "full" is the target size.
SCALES: dict[str, dict[str, int]] = {
    "small": {"tests": 200, "commits": 80, "branches": 4, "incidents": 4},
    "full": {"tests": 3000, "commits": 300, "branches": 12, "incidents": 10},
}
# The seed the accuracy test and bench score, and the shape test checks.
SEED = 20260105


# ---------------------------------------------------------------------------
# Output types


@dataclass(frozen=True)
class UploadRequest:
    """One CI job attempt's report, as CI would post it."""

    commit: str
    branch: str
    build: str
    job: str
    attempt: int
    started_at: str  # ISO 8601, UTC
    body: bytes  # one JUnit XML document
    dialect: str

    def params(self) -> dict[str, str]:
        """Return the upload fields (query parameters or form fields)."""
        return {
            "commit": self.commit,
            "branch": self.branch,
            "build": self.build,
            "job": self.job,
            "attempt": str(self.attempt),
            "started_at": self.started_at,
            "build_url": f"https://ci.example.com/builds/{self.build}/{self.job}",
        }


@dataclass
class Truth:
    """What was planted in one test, and the verdict it should end with."""

    key: TestKey
    group: str  # unit, integration, js, go
    jobs: tuple[str, ...]
    kind: str
    rate: float = 0.0  # chance an attempt fails while flaky
    start_index: int | None = None  # default-branch commit where it starts
    start_sha: str = ""
    end_index: int | None = None  # first commit where it has stopped
    end_sha: str = ""
    branch: str = ""  # branch_broken: the branch it fails on
    config_job: str = ""  # config_only: the job it always fails in
    expected_status: str = "healthy"
    accepted_statuses: tuple[str, ...] = ("healthy",)
    duration_regressed: bool = False
    slow_since_sha: str = ""
    slow_since_index: int | None = None
    base_seconds: float = 0.0
    # Positions (see History.positions) of the runs (uploads) whose report
    # shows a flaky failure of this test that is evidence of flakiness: on
    # the default branch, or with a pass of the same commit; incidents never.
    flaky_evidence: list[float] = field(default_factory=list)
    visible_flaky_failures: int = 0  # failed attempts shown, anywhere
    hidden_flaky_failures: int = 0  # pytest-rerunfailures records with no child
    incident_failures: int = 0
    hard_failures: int = 0  # broken, branch or config failures shown
    executions: int = 0
    # Default-branch runs (one per commit and job) since its last run of
    # flaky evidence.
    trailing_clean_runs: int = 0

    @property
    def observable(self) -> bool:
        """Tell whether enough runs show a flaky failure to judge it."""
        return len(self.flaky_evidence) >= MIN_FLAKY_RUNS

    @property
    def went_quiet(self) -> bool:
        """Tell whether a flaky test's clean tail supports "fixed".

        At its own rate it would have shown in that many runs with
        probability 1 - QUIET_CHANCE: the evidence says fixed, whatever was
        planted (flakiness can go quiet).
        """
        if not self.rate or self.kind not in ("flaky", "flaky_from"):
            return False
        return (1 - self.rate) ** self.trailing_clean_runs < QUIET_CHANCE


@dataclass(frozen=True)
class Incident:
    """One planted incident: where, in which job, how many tests it failed."""

    position: float
    sha: str
    job: str
    message: str
    victims: int


@dataclass
class History:
    """A generated CI history: its uploads and the truth behind them."""

    uploads: list[UploadRequest]
    truth: dict[TestKey, Truth]
    default_branch: str
    commits: list[str]  # default-branch shas, oldest first
    branches: dict[str, list[str]]  # feature branch -> its shas
    positions: dict[str, float]  # sha -> commit index (branch: base + fraction)
    incidents: list[Incident]
    seed: int

    def summary(self) -> str:
        """Return a one-line description of the history."""
        kinds = Counter(t.kind for t in self.truth.values())
        executions = sum(t.executions for t in self.truth.values())
        return (
            f"{len(self.truth)} tests, {len(self.commits)} default-branch commits, "
            f"{len(self.branches)} branches, {len(self.uploads)} uploads, "
            f"{executions} executions, {len(self.incidents)} incidents; kinds: "
            + ", ".join(f"{k}={kinds[k]}" for k in KINDS if kinds[k])
        )


# ---------------------------------------------------------------------------
# Jobs and dialects


@dataclass(frozen=True)
class Job:
    """A CI job: its tests, JUnit dialect and re-run regime."""

    name: str
    group: str
    dialect: str  # pytest, surefire, jest, gotestsum
    in_run_reruns: int  # extra attempts inside one run for a failing test
    job_rerun: bool  # CI re-runs the job (attempt 2) when attempt 1 failed


JOBS = (
    Job("unit-py311", "unit", "pytest", 2, False),
    Job("unit-py312", "unit", "pytest", 0, True),
    Job("integration", "integration", "surefire", 2, True),
    Job("js", "js", "jest", 0, False),
    Job("go", "go", "gotestsum", 2, False),
    Job("rust", "rust", "nextest", 2, False),
)
GROUP_SHARE = {"unit": 0.35, "integration": 0.2, "js": 0.15, "go": 0.15, "rust": 0.15}
# CI re-runs a failed job on pull requests as a matter of course, rarely on
# the default branch (where a red build is looked at, not retried).
MAIN_RERUN_CHANCE = 0.25
RUNNER_POOLS = (1.0, 1.07)
CONFIG_FAILING_JOB = "unit-py312"
# gotestsum's --rerun-fails-max-failures default: above it, nothing is rerun.
GOTESTSUM_MAX_RERUN_FAILURES = 10


# ---------------------------------------------------------------------------
# Names


AREAS = [
    "api", "billing", "payments", "accounts", "ingest", "reports", "search",
    "notifications", "storage", "auth", "webhooks", "scheduler", "exports",
    "ledger", "pricing", "checkout",
]  # fmt: skip
TOPICS = [
    "refunds", "invoices", "tokens", "sessions", "uploads", "retries", "parser",
    "serializers", "permissions", "pagination", "rate_limit", "timezones",
    "currency", "csv_export", "signatures", "emails", "cache", "locks", "filters",
    "audit_log", "quotas", "coupons", "taxes", "receipts", "payouts", "disputes",
]  # fmt: skip
VERBS = [
    "creates", "rejects", "updates", "deletes", "lists", "retries", "parses",
    "renders", "rounds", "expires", "locks", "caches", "signs", "exports",
    "paginates", "validates", "merges", "refunds", "notifies", "skips",
    "schedules", "archives", "restores", "imports",
]  # fmt: skip
OBJECTS = [
    "partial_amount", "expired_token", "duplicate_upload", "empty_payload",
    "unicode_name", "negative_total", "large_file", "missing_header",
    "stale_session", "concurrent_update", "zero_decimal_currency", "leap_day",
    "dst_transition", "soft_deleted_row", "unknown_field", "nested_json",
    "rate_limited_client", "revoked_key", "multi_currency_cart", "gzip_body",
    "pending_webhook", "locked_account", "trailing_slash", "long_description",
]  # fmt: skip
# Parametrisations; several need escaping in XML or are awkward in URLs.
PY_PARAMS = [
    "EUR-0.01", "JPY-100", "USD-19.99", "a<b", "x & y", '"quoted"', "it's",
    "<lambda>", "tz=Europe/Paris", "utf-8", "latin-1", "empty", "None", "0",
    "-1", "2**31", "[]", "{}", "True-False", "<script>alert(1)</script>",
    "O'Brien & Sons", "\u00e9t\u00e9", "\u65e5\u672c", "page=2&size=50",
]  # fmt: skip
JAVA_KINDS = ["ServiceIT", "RepositoryIT", "ControllerIT", "ClientIT", "ConsumerIT"]
JS_SUBJECTS = [
    "<CheckoutForm />", "<CartSummary />", "<PriceTag />", "<AddressPicker />",
    "<LoginDialog />", "<OrderHistory />", "<RefundModal />", "<InvoiceTable />",
    "<SearchBox />", "<Toast />", "<DatePicker />", "<CurrencyInput />",
    "useCart hook", "useDebounce hook", "useSession hook", "formatMoney()",
    "parseDate()", "slugify()", "apiClient", "cartReducer",
]  # fmt: skip
JS_TITLES = [
    'renders "Save & close" when the form is dirty',
    "shows an error when the card is declined",
    'formats {n} as "\u20ac{n},50"',
    "keeps focus after <Enter> is pressed",
    "debounces input for {n} ms",
    "retries the request after a 503",
    "disables submit while saving",
    "restores the draft from localStorage",
    "sorts rows by date & amount",
    "announces the total to screen readers",
    "clears the session on 401",
    "handles a {n}-item cart",
    "matches the snapshot for 'compact' mode",
    "rounds half-cents to even",
    'falls back to "en-US" locale',
    "ignores clicks while loading",
]
JS_CONTEXTS = [
    "", "when the cart is empty", "with a saved card", "in compact mode",
    "for a guest user", "after a network error", "with EUR & JPY prices",
    "on a small screen", "with the 'beta' flag",
]  # fmt: skip
RUST_CRATES = ["payments", "ledger", "ingest", "webhooks", "pricing"]
RUST_MODULES = [
    "parser", "money", "store", "retry", "schema", "client", "codec", "limits",
]  # fmt: skip
GO_PACKAGES = [
    "uploader", "retry", "ratelimit", "config", "queue", "storage/s3",
    "storage/local", "httpapi", "auth/jwt", "metrics", "scheduler", "ledger",
    "junit", "compress", "backoff", "webhook",
]  # fmt: skip


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _unit_name(rng: random.Random) -> tuple[TestKey, str]:
    area, topic = rng.choice(AREAS), rng.choice(TOPICS)
    module = f"tests.{area}.test_{topic}"
    classname = module
    if rng.random() < 0.7:
        classname += f".Test{_camel(topic)}{rng.choice(['', 'Api', 'Model', 'Task'])}"
    name = f"test_{rng.choice(VERBS)}_{rng.choice(OBJECTS)}"
    if rng.random() < 0.35:
        name += f"[{rng.choice(PY_PARAMS)}]"
    # xunit2 (pytest's default) writes no file attribute.
    return ("pytest", classname, name, ""), f"tests/{area}/test_{topic}.py"


def _integration_name(rng: random.Random) -> tuple[TestKey, str]:
    area, topic = rng.choice(AREAS), rng.choice(TOPICS)
    classname = f"com.acme.shop.{area}.{_camel(topic)}{rng.choice(JAVA_KINDS)}"
    method = "should" + _camel(rng.choice(VERBS)) + _camel(rng.choice(OBJECTS))
    if rng.random() < 0.25:
        method += f"(String)[{rng.randint(1, 6)}]"
    return (classname, classname, method, ""), classname.rsplit(".", 1)[1] + ".java"


def _js_name(rng: random.Random) -> tuple[TestKey, str]:
    subject = rng.choice(JS_SUBJECTS)
    title = rng.choice(JS_TITLES).replace("{n}", str(rng.choice([3, 12, 250, 1234])))
    stem = subject.strip("<>/ ").replace("()", "").replace(" hook", "")
    folder = "components" if subject.startswith("<") else "lib"
    file = f"src/{folder}/{stem}.test.tsx"
    context = rng.choice(JS_CONTEXTS)
    describes = f"{subject} › {context}" if context else subject
    full = f"{describes} {title}"
    # jest-junit's default templates make classname and name both
    # "{classname} {title}"; describe blocks are joined by the commonly set
    # ancestorSeparator (U+203A).
    return (subject, full, full, file), file


def _go_name(rng: random.Random) -> tuple[TestKey, str]:
    package = f"github.com/acme/shop/internal/{rng.choice(GO_PACKAGES)}"
    name = "Test" + _camel(rng.choice(VERBS)) + _camel(rng.choice(OBJECTS))
    if rng.random() < 0.3:
        name += f"/{rng.choice(OBJECTS)}"
    source = package.rsplit("/", 1)[1] + "_test.go"
    return (package, package, name, ""), source


def _rust_name(rng: random.Random) -> tuple[TestKey, str]:
    crate = rng.choice(RUST_CRATES)
    binary = rng.choice([crate, "integration", "api"])
    module = rng.choice(RUST_MODULES)
    name = f"{module}::tests::{rng.choice(VERBS)}_{rng.choice(OBJECTS)}"
    # cargo-nextest: one suite per test binary, "crate::binary", which is
    # also every testcase's classname; the name is the test's module path.
    suite = f"{crate}::{binary}"
    return (suite, suite, name, ""), f"src/{module}.rs"


NAMERS = {
    "unit": _unit_name,
    "integration": _integration_name,
    "js": _js_name,
    "go": _go_name,
    "rust": _rust_name,
}


# ---------------------------------------------------------------------------
# Failure texts


@dataclass(frozen=True)
class FailureText:
    """A failure as a runner writes it."""

    kind: str  # the type attribute
    message: str  # the message attribute (jest-junit writes none)
    text: str  # element text: traceback, stack trace or test output
    seconds: float | None = None  # a timeout's own duration, if it sets one


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _pytest_failure(
    rng: random.Random, source: str, name: str, template: int
) -> FailureText:
    line = rng.randint(20, 400)
    func = name.split("[")[0]
    if template == 0:
        got = rng.choice([500, 502, 503, 504, 429])
        message = f"AssertionError: assert {got} == 200"
        seconds = None
    elif template == 1:
        wait = rng.choice([5.0, 10.0, 30.0])
        message = (
            f"TimeoutError: timed out after {wait}s waiting for <Task pending "
            f"name='Task-{rng.randint(100, 99999)}' coro=<Consumer.poll() at "
            f"0x7f{_hex(rng, 10)}>>"
        )
        seconds = wait
    elif template == 2:
        message = (
            "FileNotFoundError: [Errno 2] No such file or directory: "
            f"'/tmp/pytest-of-runner/pytest-{rng.randint(1, 9999)}/"
            f"{func[:30]}0/export-{_hex(rng, 8)}.csv'"
        )
        seconds = None
    elif template == 3:
        message = (
            "psycopg.errors.DeadlockDetected: deadlock detected DETAIL: Process "
            f"{rng.randint(1000, 65000)} waits for ShareLock on transaction "
            f"{rng.randint(10**5, 10**7)}; blocked by process {rng.randint(1000, 65000)}."
        )
        seconds = None
    else:
        message = f"KeyError: 'sess_{_hex(rng, 16)}'"
        seconds = None
    text = (
        f"    def {func}(client, settings):\n        response = client.post(url)\n"
        f">       assert response.status_code == 200\nE       {message}\n\n"
        f"{source}:{line}: {message.split(':', 1)[0]}"
    )
    return FailureText("", message, text, seconds)


def _surefire_failure(
    rng: random.Random, source: str, name: str, template: int
) -> FailureText:
    if template == 0:
        a = rng.randint(100, 5000)
        kind = "org.opentest4j.AssertionFailedError"
        message = f"expected: <{a}> but was: <{a - rng.randint(1, 9)}>"
        seconds = None
    elif template == 1:
        ms = rng.choice([2000, 5000, 10000])
        kind = "java.net.SocketTimeoutException"
        message = f"Read timed out after {ms} ms (request id {_hex(rng, 12)})"
        seconds = ms / 1000
    elif template == 2:
        kind = "org.awaitility.core.ConditionTimeoutException"
        s = rng.choice([10, 30])
        message = (
            "Condition with alias 'refund-settled' didn't complete within "
            f"{s} seconds because condition with lambda expression in "
            f"com.acme.shop.Await${rng.randint(1, 99)} was not fulfilled."
        )
        seconds = float(s)
    elif template == 3:
        kind = "org.springframework.dao.CannotAcquireLockException"
        message = (
            "could not execute statement; SQL [n/a]; nested exception is "
            f"org.hibernate.exception.LockAcquisitionException (tx {rng.randint(10**5, 10**7)})"
        )
        seconds = None
    else:
        kind = "java.lang.IllegalStateException"
        message = f"Kafka offset {rng.randint(10**3, 10**6)} committed twice for partition {rng.randint(0, 11)}"
        seconds = None
    method = name.split("(")[0]
    text = (
        f"{kind}: {message}\n\tat com.acme.shop.support.Checks.verify(Checks.java:"
        f"{rng.randint(20, 200)})\n\tat {method}({source}:{rng.randint(20, 400)})\n"
    )
    return FailureText(kind, message, text, seconds)


def _jest_failure(
    rng: random.Random, source: str, name: str, template: int
) -> FailureText:
    line = rng.randint(10, 300)
    if template == 0:
        ms = 5000
        first = f'Error: thrown: "Exceeded timeout of {ms} ms for a test.'
        body = (
            f"{first}\nAdd a timeout value to this test to increase the timeout, "
            'if this is a long-running test. See https://jestjs.io/docs/api#testname-fn-timeout."'
        )
        seconds = ms / 1000
    elif template == 1:
        first = "Error: expect(received).toHaveLength(expected)"
        body = f"{first}\n\nExpected length: {rng.randint(2, 9)}\nReceived length: {rng.randint(0, 1)}"
        seconds = None
    elif template == 2:
        first = (
            "TestingLibraryElementError: Unable to find an element with the text: "
            f"Saved at {rng.randint(0, 23):02}:{rng.randint(0, 59):02}:{rng.randint(0, 59):02}."
        )
        body = first + '\n\n<body>\n  <div id="root" />\n</body>'
        seconds = None
    else:
        first = f"TypeError: Cannot read properties of undefined (reading 'items') [req {_hex(rng, 8)}]"
        body = first
        seconds = None
    text = f"{body}\n    at Object.<anonymous> ({source}:{line}:{rng.randint(5, 40)})"
    return FailureText("", "", text, seconds)


def _go_failure(
    rng: random.Random, source: str, name: str, template: int
) -> FailureText:
    t = rng.uniform(0.01, 2)
    if template == 0:
        detail = f"{source}:{rng.randint(20, 300)}: got status {rng.choice([502, 503, 504])}, want 200"
        seconds = None
    elif template == 1:
        detail = (
            f"{source}:{rng.randint(20, 300)}: context deadline exceeded after "
            f"{rng.choice([2, 5])}s (conn 0x{_hex(rng, 10)})"
        )
        seconds = 5.0
    else:
        detail = (
            f"{source}:{rng.randint(20, 300)}: leaked goroutine {rng.randint(10, 900)}"
        )
        seconds = None
    text = f"=== RUN   {name}\n    {detail}\n--- FAIL: {name} ({t:.2f}s)\n"
    # gotestsum writes message="Failed" whatever the test said.
    return FailureText("", "Failed", text, seconds)


def _rust_failure(
    rng: random.Random, source: str, name: str, template: int
) -> FailureText:
    if template == 0:
        body = (
            "assertion `left == right` failed\n  left: "
            f"{rng.randint(100, 999)}\n right: {rng.randint(100, 999)}"
        )
    elif template == 1:
        body = (
            "called `Result::unwrap()` on an `Err` value: Elapsed(())"
            f" after {rng.choice([2, 5])}s"
        )
    else:
        body = f"channel closed while {rng.randint(2, 40)} messages were in flight"
    return FailureText("test failure", "", _panic(name, source, rng, body))


def _panic(name: str, source: str, rng: random.Random, body: str) -> str:
    """Write a Rust 1.73+ panic: the header names the test's thread."""
    return (
        f"thread '{name}' panicked at {source}:{rng.randint(10, 400)}:"
        f"{rng.randint(5, 40)}:\n{body}\nnote: run with `RUST_BACKTRACE=1` "
        "environment variable to display a backtrace"
    )


FAILURE_WRITERS = {
    "pytest": (_pytest_failure, 5),
    "surefire": (_surefire_failure, 5),
    "jest": (_jest_failure, 4),
    "gotestsum": (_go_failure, 3),
    "nextest": (_rust_failure, 3),
}

BROKEN_TEXTS = {
    "pytest": [
        ("", "AssertionError: assert 'EUR 1,00' == 'EUR 1.00'"),
        ("", "ImportError: cannot import name 'parse_amount' from 'app.money'"),
        ("", "TypeError: create_refund() got an unexpected keyword argument 'reason'"),
        ("", "django.core.exceptions.FieldError: Cannot resolve keyword 'settled_on'"),
    ],
    "surefire": [
        ("org.opentest4j.AssertionFailedError", "expected: <CAPTURED> but was: <PENDING>"),
        ("java.lang.NullPointerException", 'Cannot invoke "Money.amount()" because "fee" is null'),
        ("org.opentest4j.AssertionFailedError", "expected: <true> but was: <false>"),
    ],
    "jest": [
        ("", "TypeError: formatMoney is not a function"),
        ("", 'Error: expect(received).toBe(expected)\n\nExpected: "Pay now"\nReceived: "Pay"'),
    ],
    "gotestsum": [
        ("", "config_test.go:41: unexpected field \"retries\" in v2 schema"),
        ("", "uploader_test.go:88: got status 500, want 200"),
    ],
    "nextest": [
        ("test failure", "assertion `left == right` failed\n  left: \"1.00\"\n right: \"1,00\""),
        ("test failure", "not yet implemented: rounding mode HalfEven"),
    ],
}  # fmt: skip


def _broken_text(dialect: str, choice: tuple[str, str], name: str) -> FailureText:
    kind, message = choice
    if dialect == "jest":
        return FailureText("", "", f"{message}\n    at Object.<anonymous> (test:1:1)")
    if dialect == "gotestsum":
        return FailureText(
            "", "Failed", f"=== RUN   {name}\n    {message}\n--- FAIL: {name} (0.00s)\n"
        )
    if dialect == "nextest":
        return FailureText(
            kind, "", _panic(name, "src/lib.rs", random.Random(name), message)
        )
    return FailureText(kind, message, f"{kind or 'E'}: {message}")


@dataclass(frozen=True)
class IncidentCause:
    """What went down in an incident; each test's text is written from it."""

    host: str
    port: int
    choice: float
    node: int


def _incident_cause(rng: random.Random) -> IncidentCause:
    return IncidentCause(
        host=f"10.0.{rng.randint(0, 9)}.{rng.randint(2, 250)}",
        port=rng.choice([5432, 5433, 6432]),
        choice=rng.random(),
        node=rng.randint(1, 9),
    )


def _incident_text(
    rng: random.Random, job: Job, cause: IncidentCause, t: _Test
) -> FailureText:
    """Write one test's failure in an incident, as its runner prints it.

    The cause is the incident's, but many runners name the failing test in
    the text: a Rust panic's thread is the test, go test frames its output
    with ``=== RUN`` / ``--- FAIL``, JUnit 5 names the method whose
    parameter could not be resolved, a pytest error names the parametrised
    fixture id, jest's describe path heads its message.
    """
    host, port = cause.host, cause.port
    _, classname, name, _ = t.key
    refused = f"connect to {host}:{port}: Connection refused (os error 111)"
    if job.dialect == "surefire":
        if cause.choice < 0.5:
            kind = "org.junit.jupiter.api.extension.ParameterResolutionException"
            message = (
                "Failed to resolve parameter [javax.sql.DataSource dataSource] in "
                f"method [void {classname}.{name.split('(')[0]}()]: Connection to "
                f"{host}:5432 refused. Check that the hostname and port are "
                "correct and that the postmaster is accepting TCP/IP connections."
            )
        else:
            kind = "java.net.UnknownHostException"
            message = (
                f"nexus-{cause.node}.ci.internal: Temporary failure in name resolution"
            )
        return FailureText(kind, message, f"{kind}: {message}\n\tat java.base/...")
    if job.dialect == "gotestsum":
        detail = f"{t.source}:{rng.randint(20, 90)}: dial tcp {host}:{port}: connect: connection refused"
        seconds = rng.choice([0.0, 0.01])
        return FailureText(
            "",
            "Failed",
            f"=== RUN   {name}\n    {detail}\n--- FAIL: {name} ({seconds:.2f}s)\n",
        )
    if job.dialect == "nextest":
        body = (
            "called `Result::unwrap()` on an `Err` value: "
            f"Io(Os {{ code: 111, kind: ConnectionRefused }}): {refused}"
        )
        return FailureText(
            "test failure", "", _panic(name, "tests/common/mod.rs", rng, body)
        )
    if job.dialect == "jest":
        text = (
            f"{name}: request to http://{host}:8080/api/session failed, "
            f"reason: connect ECONNREFUSED {host}:8080\n"
            f"    at ClientRequest.<anonymous> (node_modules/node-fetch/lib/index.js:1501:11)"
        )
        return FailureText("", "", text)
    if cause.choice < 0.6:
        inner = (
            f'psycopg.OperationalError: connection to server at "{host}", port '
            f"{port} failed: Connection refused"
        )
    elif cause.choice < 0.85:
        inner = (
            f"redis.exceptions.ConnectionError: Error 111 connecting to "
            f"{host}:6379. Connection refused."
        )
    else:
        inner = (
            "OSError: [Errno 28] No space left on device: "
            f"'/tmp/pytest-of-runner/pytest-{rng.randint(1, 999)}'"
        )
    # A fixture failing: pytest reports an error at setup for every test,
    # and a parametrised fixture's id lands in the message.
    params = name[name.index("[") :] if "[" in name else ""
    return FailureText(
        "", f'failed on setup with "{inner}"{" " + params if params else ""}',
        f"E   {inner}",
    )  # fmt: skip


NO_TEXT = FailureText("", "", "")

# ---------------------------------------------------------------------------
# Planted behaviour per test


@dataclass
class _Test:
    key: TestKey
    group: str
    source: str
    truth: Truth
    base_seconds: float
    noise: float  # lognormal sigma of its duration
    templates: tuple[int, ...]
    broken: FailureText | None = None

    def flaky_rate_at(self, position: float) -> float:
        t = self.truth
        if t.kind == "flaky":
            return t.rate
        # A kind's planting always sets its start and end.
        if t.kind == "flaky_from" and position >= (t.start_index or 0):
            return t.rate
        if t.kind == "flaky_until" and position < (t.end_index or 0):
            return t.rate
        return 0.0

    def broken_at(self, position: float, branch: str, job: str) -> bool:
        t = self.truth
        if t.kind == "broken_window":
            end = math.inf if t.end_index is None else t.end_index
            return (t.start_index or 0) <= position < end
        if t.kind == "branch_broken":
            return branch == t.branch
        if t.kind == "config_only":
            return job == t.config_job
        return False

    def slow_at(self, position: float) -> bool:
        t = self.truth
        return t.kind == "slow_from" and position >= (t.slow_since_index or 0)


def _count(share: float, tests: int, minimum: int) -> int:
    return max(minimum, round(share * tests))


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _base_seconds(rng: random.Random, group: str) -> float:
    median = {"unit": 0.03, "integration": 0.8, "js": 0.02, "go": 0.006, "rust": 0.004}
    sigma = {"unit": 1.0, "integration": 0.8, "js": 0.8, "go": 1.0, "rust": 1.0}
    return min(20.0, max(0.0005, median[group] * math.exp(rng.gauss(0, sigma[group]))))


def _make_tests(rng: random.Random, tests: int) -> list[_Test]:
    made: list[_Test] = []
    seen: set[TestKey] = set()
    groups = list(GROUP_SHARE)
    for index, group in enumerate(groups):
        wanted = (
            tests - len(made)
            if index == len(groups) - 1
            else round(tests * GROUP_SHARE[group])
        )
        jobs = tuple(j.name for j in JOBS if j.group == group)
        dialect = next(j.dialect for j in JOBS if j.group == group)
        collisions = 0
        while wanted:
            key, source = NAMERS[group](rng)
            if key in seen:
                collisions += 1
                if collisions > 100 * tests:
                    raise ValueError(f"too many tests for the {group} names")
                continue
            seen.add(key)
            wanted -= 1
            writer_templates = FAILURE_WRITERS[dialect][1]
            templates = tuple(
                rng.sample(range(writer_templates), rng.choice([1, 1, 2]))
            )
            noise = 0.5 if rng.random() < 0.1 else rng.uniform(0.08, 0.3)
            base = _base_seconds(rng, group)
            made.append(
                _Test(
                    key=key,
                    group=group,
                    source=source,
                    truth=Truth(key=key, group=group, jobs=jobs, kind="healthy"),
                    base_seconds=base,
                    noise=noise,
                    templates=templates,
                )
            )
    return made


def _plant(  # noqa: C901 - one step per planted kind
    rng: random.Random,
    tests: list[_Test],
    *,
    commits: list[str],
    breaking_branch: str,
) -> None:
    n, c = len(tests), len(commits)
    pool = list(range(n))
    rng.shuffle(pool)

    def take(
        count: int, where: Callable[[_Test], bool] = lambda t: True
    ) -> list[_Test]:
        chosen: list[_Test] = []
        for i in list(pool):
            if len(chosen) == count:
                break
            if where(tests[i]):
                chosen.append(tests[i])
                pool.remove(i)
        return chosen

    for t in take(_count(0.001, n, 1), lambda t: t.group == "unit"):
        t.truth.kind, t.truth.config_job = "config_only", CONFIG_FAILING_JOB

    for t in take(_count(0.07, n, 4)):
        t.truth.kind, t.truth.rate = "flaky", _log_uniform(rng, 0.01, 0.30)
        t.truth.start_index, t.truth.start_sha = 0, commits[0]
    for t in take(_count(0.03, n, 3)):
        start = rng.randint(round(0.15 * c), round(0.6 * c))
        t.truth.kind, t.truth.rate = "flaky_from", _log_uniform(rng, 0.01, 0.30)
        t.truth.start_index, t.truth.start_sha = start, commits[start]
    for t in take(_count(0.03, n, 3)):
        end = rng.randint(round(0.3 * c), round(0.6 * c))
        # At least 5 %: a test must be seen flaky before it can be seen fixed.
        t.truth.kind, t.truth.rate = "flaky_until", _log_uniform(rng, 0.05, 0.30)
        t.truth.start_index, t.truth.start_sha = 0, commits[0]
        t.truth.end_index, t.truth.end_sha = end, commits[end]
    broken = take(_count(0.02, n, 3))
    for i, t in enumerate(broken):
        t.truth.kind = "broken_window"
        if i % 3 == 0:  # still broken at the end
            start = rng.randint(round(0.75 * c), round(0.95 * c))
            t.truth.start_index, t.truth.start_sha = start, commits[start]
        else:
            start = rng.randint(round(0.1 * c), round(0.8 * c))
            end = min(c - 1, start + rng.randint(3, 15))
            t.truth.start_index, t.truth.start_sha = start, commits[start]
            t.truth.end_index, t.truth.end_sha = end, commits[end]
    for t in take(_count(0.005, n, 2)):
        t.truth.kind, t.truth.branch = "branch_broken", breaking_branch
    # Slow tests need a base time where 4x is a visible regression rather
    # than timer resolution (2 ms -> 8 ms is not a finding).
    for t in take(_count(0.03, n, 3)):
        since = rng.randint(round(0.45 * c), round(0.85 * c))
        t.base_seconds = rng.uniform(0.15, 2.5)
        t.truth.kind, t.truth.duration_regressed = "slow_from", True
        t.truth.slow_since_index, t.truth.slow_since_sha = since, commits[since]

    for t in tests:
        t.truth.base_seconds = round(t.base_seconds, 4)
        if t.truth.kind in ("broken_window", "branch_broken", "config_only"):
            dialect = next(j.dialect for j in JOBS if j.group == t.group)
            t.broken = _broken_text(
                dialect, rng.choice(BROKEN_TEXTS[dialect]), t.key[2]
            )


def _settle_expectations(t: Truth) -> None:
    """Set the status a correct analysis reaches at the end of the history."""
    if t.kind in ("flaky", "flaky_from"):
        t.expected_status = "flaky"
        t.accepted_statuses = ("flaky",) if t.observable else ("flaky", "healthy")
        if t.went_quiet:
            t.accepted_statuses = (*t.accepted_statuses, "fixed")
    elif t.kind == "flaky_until":
        t.expected_status = "fixed"
        t.accepted_statuses = ("fixed",) if t.observable else ("fixed", "healthy")
    elif t.kind == "broken_window":
        still = t.end_index is None
        t.expected_status = "broken" if still else "healthy"
        t.accepted_statuses = ("broken",) if still else ("healthy", "fixed")
    elif t.kind == "config_only":
        t.expected_status, t.accepted_statuses = "broken", ("broken",)
    else:
        t.expected_status, t.accepted_statuses = "healthy", ("healthy",)


# ---------------------------------------------------------------------------
# Simulation


@dataclass
class _Attempt:
    failed: bool
    seconds: float
    text: FailureText = field(default_factory=lambda: NO_TEXT)  # when failed
    cause: str = ""  # flaky, broken, incident


@dataclass(frozen=True)
class _Build:
    sha: str
    branch: str
    position: float
    incident_jobs: dict[str, tuple[IncidentCause, frozenset[int]]]


def _sha(seed: int, branch: str, index: int) -> str:
    return hashlib.sha1(f"{seed}:{branch}:{index}".encode()).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def generate_history(  # noqa: C901 - the timeline in order, read top to bottom
    *,
    tests: int,
    commits: int,
    seed: int,
    branches: int = 4,
    incidents: int = 4,
    start_at: datetime = DEFAULT_START,
    end_at: datetime | None = None,
    rerunfailures_records: str = "empty",
) -> History:
    """Generate a CI history of ``tests`` tests over ``commits`` commits.

    Deterministic for a seed. ``end_at`` shifts the whole timeline so that
    the last upload starts then (the content does not change);
    ``rerunfailures_records`` is "empty" (what pytest-rerunfailures writes)
    or "failure" (rerun records carry the failure).
    """
    if rerunfailures_records not in ("empty", "failure"):
        raise ValueError("rerunfailures_records must be 'empty' or 'failure'")
    if commits < 20 or tests < 40:
        raise ValueError("need at least 20 commits and 40 tests")
    rng = random.Random(seed)
    main = [_sha(seed, DEFAULT_BRANCH, i) for i in range(commits)]
    positions = {sha: float(i) for i, sha in enumerate(main)}

    # Feature branches: cut from the default branch, a few commits each.
    branch_names = [
        "feature/refund-webhooks", "fix/dst-rounding", "feature/jest-29",
        "chore/bump-psycopg", "feature/multi-currency", "fix/upload-retries",
        "feature/go-1.23", "refactor/ledger-locks", "feature/csv-export-v2",
        "fix/session-expiry", "feature/payout-batches", "chore/surefire-3.5",
        "feature/search-facets", "fix/tz-parsing", "feature/coupons-stacking",
    ]  # fmt: skip
    branch_plan: dict[int, list[tuple[str, list[str]]]] = {}
    branch_shas: dict[str, list[str]] = {}
    for b in range(branches):
        name = branch_names[b % len(branch_names)] + ("" if b < 15 else f"-{b}")
        base = rng.randint(round(0.1 * commits), round(0.9 * commits))
        length = rng.randint(2, 5)
        shas = [_sha(seed, name, j) for j in range(length)]
        for j, sha in enumerate(shas):
            positions[sha] = base + (j + 1) / (length + 1)
        branch_shas[name] = shas
        branch_plan.setdefault(base, []).append((name, shas))
    breaking_branch = next(iter(branch_shas), "")

    planted = _make_tests(rng, tests)
    _plant(rng, planted, commits=main, breaking_branch=breaking_branch)
    by_job = {
        job.name: [t for t in planted if job.name in t.truth.jobs] for job in JOBS
    }

    # Incidents: one run of a re-run job where many tests fail the same way.
    incident_list: list[Incident] = []
    incident_at: dict[int, dict[str, tuple[IncidentCause, frozenset[int]]]] = {}
    # Any job: in one without re-runs an incident's failures look isolated.
    candidates = [
        (i, j.name)
        for i in range(round(0.05 * commits), round(0.95 * commits))
        for j in JOBS
    ]
    for i, job_name in rng.sample(candidates, min(incidents, len(candidates))):
        job = next(j for j in JOBS if j.name == job_name)
        members = by_job[job_name]
        share = rng.uniform(0.5, 1.0)
        count = min(len(members), max(20, round(share * len(members))))
        victims = frozenset(rng.sample(range(len(members)), count))
        cause = _incident_cause(rng)
        incident_at.setdefault(i, {})[job_name] = (cause, victims)
        example = _incident_text(rng, job, cause, members[min(victims)])
        incident_list.append(
            Incident(
                float(i), main[i], job_name, example.message or example.text, count
            )
        )
    incident_list.sort(key=lambda inc: (inc.position, inc.job))

    builds: list[_Build] = []
    for i, sha in enumerate(main):
        builds.append(_Build(sha, DEFAULT_BRANCH, float(i), incident_at.get(i, {})))
        for name, shas in branch_plan.get(i, []):
            for sha_b in shas:
                builds.append(_Build(sha_b, name, positions[sha_b], {}))

    uploads: list[UploadRequest] = []
    clock = start_at
    build_number = 4100
    for build in builds:
        build_number += 1
        clock += timedelta(minutes=rng.uniform(40, 250))
        base_position = math.floor(build.position)  # branches inherit their base
        second_attempts, job_runs = [], {}
        for job in JOBS:
            clock += timedelta(seconds=rng.uniform(20, 180))
            incident = build.incident_jobs.get(job.name)
            runs, failed = _run_job(
                rng, job, by_job[job.name], build, base_position, incident
            )
            uploads.append(
                _upload(
                    build,
                    build_number,
                    job,
                    1,
                    clock,
                    by_job[job.name],
                    runs,
                    rerunfailures_records,
                )
            )
            job_runs[job.name] = [runs]
            rerun = build.branch != DEFAULT_BRANCH or rng.random() < MAIN_RERUN_CHANCE
            if failed and job.job_rerun and rerun:
                second_attempts.append(job)
        if second_attempts:
            clock += timedelta(minutes=rng.uniform(15, 40))
        for job in second_attempts:
            clock += timedelta(seconds=rng.uniform(20, 180))
            runs, _ = _run_job(rng, job, by_job[job.name], build, base_position, None)
            uploads.append(
                _upload(
                    build,
                    build_number,
                    job,
                    2,
                    clock,
                    by_job[job.name],
                    runs,
                    rerunfailures_records,
                )
            )
            job_runs[job.name].append(runs)
        for job in JOBS:
            _record(
                by_job[job.name], job_runs[job.name], build, job, rerunfailures_records
            )

    if end_at is not None:
        shift = end_at - datetime.fromisoformat(uploads[-1].started_at)
        uploads = [
            UploadRequest(
                u.commit, u.branch, u.build, u.job, u.attempt,
                _iso(datetime.fromisoformat(u.started_at) + shift), u.body, u.dialect,
            )
            for u in uploads
        ]  # fmt: skip

    truth: dict[TestKey, Truth] = {}
    for t in planted:
        if t.truth.kind == "healthy" and t.truth.incident_failures:
            t.truth.kind = "incident_victim_only"
        _settle_expectations(t.truth)
        truth[t.key] = t.truth
    return History(
        uploads=uploads,
        truth=truth,
        default_branch=DEFAULT_BRANCH,
        commits=main,
        branches=branch_shas,
        positions=positions,
        incidents=incident_list,
        seed=seed,
    )


def _run_job(  # noqa: C901 - one branch per cause of an attempt
    rng: random.Random,
    job: Job,
    members: list[_Test],
    build: _Build,
    base_position: int,
    incident: tuple[IncidentCause, frozenset[int]] | None,
) -> tuple[list[list[_Attempt]], bool]:
    """Simulate one job attempt: each member test's attempts, and job failure."""
    # A slow or noisy runner shifts every test in the run a little.
    machine = math.exp(rng.gauss(0, 0.08)) * (1.6 if rng.random() < 0.03 else 1.0)
    # Two runner pools whose hardware differs by a few percent.
    machine *= rng.choice(RUNNER_POOLS)
    position = build.position if build.branch == DEFAULT_BRANCH else base_position
    runs: list[list[_Attempt]] = []
    for index, t in enumerate(members):
        attempts: list[_Attempt] = []
        reruns_left = job.in_run_reruns
        while True:
            seconds = t.base_seconds * machine * math.exp(rng.gauss(0, t.noise))
            if t.slow_at(position):
                seconds *= SLOWDOWN
            if rng.random() < 0.005:  # a GC pause, a noisy neighbour
                seconds *= rng.uniform(3, 6)
            attempt = _Attempt(False, seconds)
            rate = t.flaky_rate_at(position)
            if incident is not None and index in incident[1]:
                text = _incident_text(rng, job, incident[0], t)
                attempt = _Attempt(True, rng.uniform(0.001, 0.05), text, "incident")
            elif t.broken_at(position, build.branch, job.name):
                attempt = _Attempt(True, seconds, t.broken or NO_TEXT, "broken")
            elif rate and rng.random() < rate:
                template = rng.choice(t.templates)
                dialect_writer = FAILURE_WRITERS[job.dialect][0]
                text = dialect_writer(rng, t.source, t.key[2], template)
                if text.seconds is not None:
                    seconds = text.seconds * rng.uniform(1.0, 1.02)
                attempt = _Attempt(True, seconds, text, "flaky")
            attempts.append(attempt)
            if not attempt.failed or reruns_left == 0:
                break
            reruns_left -= 1
        runs.append(attempts)
    if job.dialect == "gotestsum":
        first_failures = sum(1 for a in runs if a[0].failed)
        if first_failures > GOTESTSUM_MAX_RERUN_FAILURES:
            runs = [a[:1] for a in runs]
    failed = any(a[-1].failed for a in runs)
    return runs, failed


def _record(  # noqa: C901 - one branch per cause of an attempt
    members: list[_Test],
    job_attempts: list[list[list[_Attempt]]],
    build: _Build,
    job: Job,
    rerunfailures_records: str,
) -> None:
    """Add one build's runs of one job (attempt 1, maybe 2) to the truth."""
    hides = (
        job.dialect == "pytest"
        and job.in_run_reruns > 0
        and rerunfailures_records == "empty"
    )
    for index, t in enumerate(members):
        runs = [attempts_runs[index] for attempts_runs in job_attempts]
        evidence_before = len(t.truth.flaky_evidence)
        for attempts in runs:
            t.truth.executions += len(attempts)
            shown_flaky = False
            for i, attempt in enumerate(attempts):
                hidden = hides and i < len(attempts) - 1
                if attempt.cause == "incident":
                    t.truth.incident_failures += 1
                elif attempt.cause == "broken" and not hidden:
                    t.truth.hard_failures += 1
                elif attempt.cause == "flaky" and hidden:
                    t.truth.hidden_flaky_failures += 1
                elif attempt.cause == "flaky":
                    t.truth.visible_flaky_failures += 1
                    shown_flaky = True
            if not shown_flaky:
                continue
            # Off the default branch an isolated failure may be the branch's
            # own doing: only a pass on the same commit makes it a flake.
            passed_here = not attempts[-1].failed and not hides
            passed_again = any(not other[-1].failed for other in runs)
            if build.branch == DEFAULT_BRANCH or passed_here or passed_again:
                t.truth.flaky_evidence.append(build.position)
        # One position per commit and job, as the analysis counts them.
        if len(t.truth.flaky_evidence) > evidence_before:
            t.truth.trailing_clean_runs = 0
        elif build.branch == DEFAULT_BRANCH:
            t.truth.trailing_clean_runs += 1


# ---------------------------------------------------------------------------
# Rendering


def _seconds(value: float, places: int) -> str:
    return f"{value:.{places}f}"


def _upload(
    build: _Build,
    build_number: int,
    job: Job,
    attempt: int,
    started: datetime,
    members: list[_Test],
    runs: list[list[_Attempt]],
    rerunfailures_records: str,
) -> UploadRequest:
    writer = {
        "pytest": _render_pytest,
        "surefire": _render_surefire,
        "jest": _render_jest,
        "gotestsum": _render_gotestsum,
        "nextest": _render_nextest,
    }[job.dialect]
    body = writer(members, runs, started, job, rerunfailures_records)
    return UploadRequest(
        commit=build.sha,
        branch=build.branch,
        build=str(build_number),
        job=job.name,
        attempt=attempt,
        started_at=_iso(started),
        body=body.encode("utf-8"),
        dialect=job.dialect,
    )


def _attr(value: str) -> str:
    return quoteattr(value, {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def _render_pytest(
    members: list[_Test],
    runs: list[list[_Attempt]],
    started: datetime,
    job: Job,
    rerunfailures_records: str,
) -> str:
    cases, failures, errors, total = [], 0, 0, 0.0
    for t, attempts in zip(members, runs, strict=True):
        _, classname, name, _ = t.key
        head = f"<testcase classname={_attr(classname)} name={_attr(name)}"
        for i, a in enumerate(attempts):
            total += a.seconds
            timing = f' time="{_seconds(a.seconds, 3)}"'
            is_final = i == len(attempts) - 1
            if not a.failed or (not is_final and rerunfailures_records == "empty"):
                cases.append(f"{head}{timing} />")
                continue
            text = a.text
            element = (
                "error" if text.message.startswith("failed on setup") else "failure"
            )
            if is_final:
                if element == "error":
                    errors += 1
                else:
                    failures += 1
            cases.append(
                f"{head}{timing}><{element} message={_attr(text.message)}>"
                f"{escape(text.text)}</{element}></testcase>"
            )
    stamp = started.astimezone(UTC).isoformat(timespec="microseconds")
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" errors="{errors}" failures="{failures}" '
        f'skipped="0" tests="{len(members)}" time="{total:.3f}" '
        f'timestamp="{stamp}" hostname="runner-{job.name}">'
        + "".join(cases)
        + "</testsuite></testsuites>"
    )


def _render_surefire(
    members: list[_Test],
    runs: list[list[_Attempt]],
    started: datetime,
    job: Job,
    rerunfailures_records: str,
) -> str:
    by_class: dict[str, list[tuple[_Test, list[_Attempt]]]] = {}
    for t, attempts in zip(members, runs, strict=True):
        by_class.setdefault(t.key[1], []).append((t, attempts))
    suites = []
    stamp = started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for classname, entries in by_class.items():
        cases, failures, total = [], 0, 0.0
        for t, attempts in entries:
            first = attempts[0]
            total += first.seconds
            head = (
                f"<testcase name={_attr(t.key[2])} classname={_attr(classname)} "
                f'time="{_seconds(first.seconds, 3)}"'
            )
            if not first.failed:
                cases.append(f"{head}/>")
                continue
            final = attempts[-1]
            parts = []
            if final.failed:  # failed every run: <failure> then rerunFailure
                failures += 1
                parts.append(
                    f"<failure message={_attr(first.text.message)} "
                    f"type={_attr(first.text.kind)}>{escape(first.text.text)}</failure>"
                )
                for a in attempts[1:]:
                    parts.append(
                        f"<rerunFailure message={_attr(a.text.message)} "
                        f"type={_attr(a.text.kind)}><stackTrace>"
                        f"{escape(a.text.text)}</stackTrace></rerunFailure>"
                    )
            else:  # passed on a rerun: one flakyFailure per failed run
                for a in attempts[:-1]:
                    parts.append(
                        f"<flakyFailure message={_attr(a.text.message)} "
                        f"type={_attr(a.text.kind)}><stackTrace>"
                        f"{escape(a.text.text)}</stackTrace>"
                        "<system-err>[surefire] rerunning failed test</system-err>"
                        "</flakyFailure>"
                    )
            cases.append(f"{head}>{''.join(parts)}</testcase>")
        suites.append(
            '<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:noNamespaceSchemaLocation="https://maven.apache.org/surefire/'
            'maven-surefire-plugin/xsd/surefire-test-report-3.0.xsd" version="3.0" '
            f'name={_attr(classname)} time="{total:.3f}" tests="{len(entries)}" '
            f'errors="0" skipped="0" failures="{failures}" timestamp="{stamp}">'
            '<properties><property name="java.version" value="21.0.5"/>'
            '<property name="surefire.rerunFailingTestsCount" value="2"/>'
            "</properties>" + "".join(cases) + "</testsuite>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>'
        + "".join(suites)
        + "</testsuites>"
    )


def _render_jest(
    members: list[_Test],
    runs: list[list[_Attempt]],
    started: datetime,
    job: Job,
    rerunfailures_records: str,
) -> str:
    by_file: dict[str, list[tuple[_Test, _Attempt]]] = {}
    for t, attempts in zip(members, runs, strict=True):
        by_file.setdefault(t.key[0], []).append((t, attempts[-1]))
    stamp = started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    suites, all_failures, all_time = [], 0, 0.0
    for subject, entries in by_file.items():
        cases, failures, total = [], 0, 0.0
        for t, a in entries:
            total += a.seconds
            _, classname, name, file = t.key
            head = (
                f"<testcase classname={_attr(classname)} name={_attr(name)} "
                f'time="{_seconds(a.seconds, 3)}" file={_attr(file)}'
            )
            if a.failed:
                failures += 1
                cases.append(
                    f"{head}><failure>{escape(a.text.text)}</failure></testcase>"
                )
            else:
                cases.append(f"{head}></testcase>")
        all_failures += failures
        all_time += total
        suites.append(
            f'<testsuite name={_attr(subject)} errors="0" failures="{failures}" '
            f'skipped="0" timestamp="{stamp}" time="{total:.3f}" '
            f'tests="{len(entries)}">' + "".join(cases) + "</testsuite>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites name="jest tests" tests="{len(members)}" '
        f'failures="{all_failures}" errors="0" time="{all_time:.3f}">'
        + "".join(suites)
        + "</testsuites>"
    )


def _render_gotestsum(
    members: list[_Test],
    runs: list[list[_Attempt]],
    started: datetime,
    job: Job,
    rerunfailures_records: str,
) -> str:
    by_package: dict[str, list[tuple[_Test, list[_Attempt]]]] = {}
    for t, attempts in zip(members, runs, strict=True):
        by_package.setdefault(t.key[0], []).append((t, attempts))
    stamp = _iso(started)
    suites, all_tests, all_failures = [], 0, 0
    for package, entries in by_package.items():
        failed, passed, total = [], [], 0.0
        for t, attempts in entries:
            for a in attempts:
                total += a.seconds
                # go test times to the centisecond ("--- PASS: TestX
                # (0.01s)"); gotestsum prints that value with 6 places.
                head = (
                    f"<testcase classname={_attr(package)} name={_attr(t.key[2])} "
                    f'time="{_seconds(round(a.seconds, 2), 6)}">'
                )
                if a.failed:
                    failed.append(
                        f"{head}<failure message={_attr(a.text.message)} "
                        f'type="">{escape(a.text.text)}</failure></testcase>'
                    )
                else:
                    passed.append(f"{head}</testcase>")
        all_tests += len(failed) + len(passed)
        all_failures += len(failed)
        # gotestsum writes failed testcases first, then the passed ones.
        suites.append(
            f'<testsuite tests="{len(failed) + len(passed)}" failures="{len(failed)}" '
            f'time="{total:.6f}" name={_attr(package)} timestamp="{stamp}">'
            '<properties><property name="go.version" value="go1.23.4 linux/amd64">'
            "</property></properties>" + "".join(failed + passed) + "</testsuite>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites tests="{all_tests}" failures="{all_failures}" errors="0">'
        + "".join(suites)
        + "</testsuites>"
    )


def _render_nextest(
    members: list[_Test],
    runs: list[list[_Attempt]],
    started: datetime,
    job: Job,
    rerunfailures_records: str,
) -> str:
    """Write cargo-nextest's JUnit (quick-junit) for one job run.

    One suite per test binary, panics as the failure text with no message,
    retries (``--retries``) as flakyFailure / rerunFailure children.
    """
    by_binary: dict[str, list[tuple[_Test, list[_Attempt]]]] = {}
    for t, attempts in zip(members, runs, strict=True):
        by_binary.setdefault(t.key[0], []).append((t, attempts))
    stamp = started.astimezone(UTC).isoformat(timespec="milliseconds")
    suites, all_tests, all_failures, all_time = [], 0, 0, 0.0
    for binary, entries in by_binary.items():
        cases, failures = [], 0
        for t, attempts in entries:
            final = attempts[-1]
            total = math.fsum(a.seconds for a in attempts)
            all_time += total
            head = (
                f"<testcase name={_attr(t.key[2])} classname={_attr(binary)} "
                f'timestamp="{stamp}" time="{_seconds(final.seconds, 3)}"'
            )
            if not attempts[0].failed:
                cases.append(f"{head}/>")
                continue
            parts = []
            if final.failed:
                failures += 1
                first = attempts[0]
                parts.append(
                    f'<failure type="test failure">{escape(first.text.text)}</failure>'
                )
                for a in attempts[1:]:
                    parts.append(
                        f'<rerunFailure type="test failure" timestamp="{stamp}" '
                        f'time="{_seconds(a.seconds, 3)}"><stackTrace>'
                        f"{escape(a.text.text)}</stackTrace></rerunFailure>"
                    )
            else:
                for a in attempts[:-1]:
                    parts.append(
                        f'<flakyFailure type="test failure" timestamp="{stamp}" '
                        f'time="{_seconds(a.seconds, 3)}"><stackTrace>'
                        f"{escape(a.text.text)}</stackTrace></flakyFailure>"
                    )
            cases.append(f"{head}>{''.join(parts)}</testcase>")
        all_tests += len(entries)
        all_failures += failures
        suites.append(
            f'<testsuite name={_attr(binary)} tests="{len(entries)}" disabled="0" '
            f'errors="0" failures="{failures}">' + "".join(cases) + "</testsuite>"
        )
    run_id = hashlib.sha1(f"{stamp}{job.name}".encode()).hexdigest()
    uuid = (
        f"{run_id[:8]}-{run_id[8:12]}-{run_id[12:16]}-{run_id[16:20]}-{run_id[20:32]}"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<testsuites name="nextest-run" tests="{all_tests}" '
        f'failures="{all_failures}" errors="0" uuid="{uuid}" '
        f'timestamp="{stamp}" time="{all_time:.3f}">'
        + "".join(suites)
        + "</testsuites>"
    )


# ---------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True)
class Verdict:
    """What flakewatch says about one test (the read API's fields)."""

    status: str
    flake_score: float = 0.0
    flake_rate: float = 0.0
    runs: int = 0
    failures: int = 0
    first_flaky_commit: str = ""
    duration_regressed: bool = False
    flaky_since: str = ""


@dataclass
class Misjudged:
    """A test whose verdict misses the truth, with the evidence to read."""

    key: TestKey
    kind: str
    rate: float
    expected: str
    given: str
    evidence: str

    def line(self) -> str:
        """Return the misjudgement as one line of a report."""
        suite, classname, name, file = self.key
        where = f"{classname}::{name}" if classname != name else name
        return (
            f"- {self.kind} (rate {self.rate:.3f}) expected {self.expected}, given "
            f"{self.given}: {where} [suite {suite!r}{', file ' + file if file else ''}]"
            f" -- {self.evidence}"
        )


@dataclass
class Scores:
    """The verdicts scored against the truth (``score``)."""

    flaky_predicted: int
    flaky_true_positive: int
    flaky_precision: float
    flaky_recall: float  # over observable flaky tests with rate >= 3 %
    flaky_recall_all: float  # over all flaky tests with rate >= 3 %
    recall_population: int
    flaky_recall_any_rate: float  # over observable flaky tests of any rate
    recall_any_rate_population: int
    flaky_f1: float  # of precision and the any-rate recall
    wrongly_fixed: int  # NEVER_FIXED tests reported fixed
    until_still_flaky: int  # flaky_until tests (observable) called flaky
    broken_fixed_ok: float  # ended broken windows reported healthy or fixed
    broken_fixed_population: int
    kind_sizes: dict[str, int]  # tests per kind, judged or not
    first_flaky_within_3: float  # flaky_from called flaky: |first - start| <= 3
    introduced_population: int
    flaky_since_coverage: float  # true start within [flaky_since, first_flaky]
    flaky_since_median_width: float  # commits from flaky_since to first_flaky
    wrongly_flaky: dict[str, int]  # kind -> tests called flaky that are not
    forbidden_flaky: int  # of NEVER_FLAKY kinds
    fixed_reported_fixed: float
    fixed_population: int
    first_flaky_accuracy: float
    first_flaky_median_distance: float  # commits from the true start
    first_flaky_median_lag: float  # commits from the first run that showed it
    first_flaky_population: int
    duration_precision: float
    duration_recall: float
    duration_predicted: int
    duration_population: int
    status_by_kind: dict[str, Counter[str]]
    missing: list[TestKey]
    misjudged: list[Misjudged]

    def populations(self) -> dict[str, int]:
        """Return how many tests each score was measured on (MIN_POPULATIONS)."""
        judged = {k: sum(self.status_by_kind.get(k, {}).values()) for k in NEVER_FLAKY}
        return {
            "recall": self.recall_population,
            "recall_all": self.recall_any_rate_population,
            "fixed": self.fixed_population,
            "broken_then_fixed": self.broken_fixed_population,
            "first_flaky_commit": self.first_flaky_population,
            "duration_regressed": self.duration_population,
            **judged,
        }

    def target_failures(self) -> list[str]:  # noqa: C901 - one check per target
        """Return the issue's targets this run misses, as sentences.

        A population smaller than MIN_POPULATIONS is a miss: a ratio over no
        tests would otherwise pass whatever the verdicts were.
        """
        failures = [
            f"only {size} tests in the {name} population (at least "
            f"{MIN_POPULATIONS[name]} needed)"
            for name, size in self.populations().items()
            if size < MIN_POPULATIONS[name]
        ]
        if self.missing:
            failures.append(f"{len(self.missing)} tests have no verdict")
        if self.flaky_precision < 0.95:
            failures.append(f"flaky precision {self.flaky_precision:.3f} < 0.95")
        if self.flaky_recall_any_rate < 0.9:
            failures.append(f"flaky recall {self.flaky_recall_any_rate:.3f} < 0.9")
        if self.flaky_recall < 0.95:
            failures.append(
                f"flaky recall over rates >= 3 % {self.flaky_recall:.3f} < 0.95"
            )
        if self.flaky_f1 < 0.95:
            failures.append(f"flaky F1 {self.flaky_f1:.3f} < 0.95")
        if self.wrongly_fixed:
            failures.append(f"{self.wrongly_fixed} never-flaky tests reported fixed")
        if self.until_still_flaky:
            failures.append(
                f"{self.until_still_flaky} flaky-then-fixed tests still called flaky"
            )
        if self.broken_fixed_ok < 1.0:
            failures.append(
                f"broken-then-fixed reported healthy or fixed "
                f"{self.broken_fixed_ok:.3f} < 1"
            )
        if self.flaky_since_coverage < FLAKY_SINCE_TARGET:
            failures.append(
                f"true start within [flaky_since, first_flaky_commit] "
                f"{self.flaky_since_coverage:.3f} < {FLAKY_SINCE_TARGET}"
            )
        if self.forbidden_flaky:
            failures.append(
                f"{self.forbidden_flaky} broken/branch/config/incident tests called flaky"
            )
        if self.fixed_reported_fixed < 1.0:
            failures.append(
                f"fixed tests reported fixed {self.fixed_reported_fixed:.3f} < 1"
            )
        if self.first_flaky_accuracy < FIRST_FLAKY_TARGET:
            failures.append(
                f"first_flaky_commit accuracy {self.first_flaky_accuracy:.3f} "
                f"< {FIRST_FLAKY_TARGET}"
            )
        if self.duration_precision < 0.9:
            failures.append(
                f"duration_regressed precision {self.duration_precision:.3f}"
            )
        if self.duration_recall < 0.9:
            failures.append(f"duration_regressed recall {self.duration_recall:.3f}")
        return failures

    def table(self) -> str:
        """Return the issue's table of figures beside their targets."""
        wrong = self.wrongly_flaky
        kinds = self.kind_sizes
        rows = [
            (
                "flaky precision / recall / F1",
                f"{self.flaky_precision:.2f} / {self.flaky_recall_any_rate:.2f} / "
                f"{self.flaky_f1:.2f}",
                ">= 0.95 / >= 0.90 / >= 0.95",
            ),
            (
                "recall over flakes with failure rate >= 3 %",
                f"{self.flaky_recall:.2f}",
                ">= 0.95",
            ),
            (
                "healthy tests that failed only in incidents, called flaky",
                f"{wrong.get('incident_victim_only', 0)} of "
                f"{kinds.get('incident_victim_only', 0)}",
                "0",
            ),
            (
                "healthy tests (never flaky, never broken) reported `fixed`",
                str(self.wrongly_fixed),
                "0",
            ),
            (
                "broken / branch-only-broken tests called flaky",
                f"{wrong.get('broken_window', 0)} of {kinds.get('broken_window', 0)}"
                f" / {wrong.get('branch_broken', 0)} of "
                f"{kinds.get('branch_broken', 0)}",
                "0",
            ),
            (
                "flaky-then-fixed tests still called flaky",
                f"{self.until_still_flaky} of {self.fixed_population}",
                "0",
            ),
            (
                "broken-then-fixed tests reported healthy or fixed",
                f"{round(self.broken_fixed_ok * self.broken_fixed_population)} of "
                f"{self.broken_fixed_population}",
                "all",
            ),
            (
                "duration_regressed precision / recall",
                f"{self.duration_precision:.2f} / {self.duration_recall:.2f}",
                ">= 0.9 / >= 0.9",
            ),
            (
                "first_flaky_commit within 3 commits of the true start "
                "(introduced flakes)",
                f"{self.first_flaky_within_3:.2f} of {self.introduced_population}",
                "as the evidence allows",
            ),
            (
                "true start within [flaky_since, first_flaky_commit]; median width",
                f"{self.flaky_since_coverage:.2f}; "
                f"{self.flaky_since_median_width:.0f} commits",
                f">= {FLAKY_SINCE_TARGET}; narrow",
            ),
        ]
        lines = ["| figure | measured | target |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
        return "\n".join(lines)

    def report(self) -> str:
        """Return the scores and every misjudged test, for a person."""
        lines = [
            f"flaky precision   {self.flaky_precision:.3f}  (target >= 0.95; "
            f"{self.flaky_true_positive}/{self.flaky_predicted} called flaky are)",
            f"flaky recall      {self.flaky_recall:.3f}  (target >= 0.9; over "
            f"{self.recall_population} tests with rate >= 3 % and >= "
            f"{MIN_FLAKY_RUNS} runs of flaky evidence; "
            f"{self.flaky_recall_all:.3f} over all with rate >= 3 %)",
            f"wrongly flaky     {self.forbidden_flaky} of broken/branch/config/"
            f"incident (target 0); by kind {dict(self.wrongly_flaky)}",
            f"fixed -> fixed    {self.fixed_reported_fixed:.3f}  (target 1; "
            f"{self.fixed_population} tests)",
            f"first_flaky       {self.first_flaky_accuracy:.3f} within the first "
            f"{FIRST_FLAKY_RUNS} flaky runs after the true start; median distance "
            f"{self.first_flaky_median_distance:.1f} commits from the true start, "
            f"{self.first_flaky_median_lag:.1f} from the first flaky run "
            f"({self.first_flaky_population} tests)",
            f"duration P / R    {self.duration_precision:.3f} / "
            f"{self.duration_recall:.3f}  (target >= 0.9; {self.duration_predicted}"
            " flagged)",
            "status by kind:",
        ]
        for kind in KINDS:
            if kind in self.status_by_kind:
                counts = ", ".join(
                    f"{s}={n}" for s, n in sorted(self.status_by_kind[kind].items())
                )
                lines.append(f"  {kind:<22} {counts}")
        if self.missing:
            lines.append(
                f"no verdict for {len(self.missing)} tests, e.g. {self.missing[0]}"
            )
        if self.misjudged:
            lines.append(f"misjudged ({len(self.misjudged)}):")
            lines.extend(m.line() for m in self.misjudged)
        return "\n".join(lines)


def _ratio(num: int, den: int) -> float:
    # Nothing measured scores 0, never 1: an empty population must not pass.
    return num / den if den else 0.0


def _positions(positions: list[float], ends: int = 6) -> str:
    """Show the first and last few positions: where it started and stopped."""
    shown = [f"{p:g}" if p == int(p) else f"{p:.2f}" for p in sorted(positions)]
    if len(shown) > 2 * ends:
        shown = [*shown[:ends], f"..{len(shown) - 2 * ends}..", *shown[-ends:]]
    return "[" + " ".join(shown) + "]"


def _evidence(t: Truth, v: Verdict) -> str:
    parts = [
        f"runs={v.runs} failures={v.failures} flake_rate={v.flake_rate:.3f} "
        f"score={v.flake_score:.3f}",
        f"{t.visible_flaky_failures} visible flaky failures, "
        f"{len(t.flaky_evidence)} runs of evidence at commits "
        + _positions(t.flaky_evidence),
    ]
    if t.hidden_flaky_failures:
        parts.append(f"{t.hidden_flaky_failures} hidden by rerunfailures")
    if t.incident_failures:
        parts.append(f"{t.incident_failures} incident failures")
    if t.start_index is not None:
        parts.append(f"start commit {t.start_index}")
    if t.end_index is not None:
        parts.append(f"end commit {t.end_index}")
    if t.branch:
        parts.append(f"branch {t.branch}")
    if t.config_job:
        parts.append(f"fails in {t.config_job}")
    parts.append("jobs " + ",".join(t.jobs))
    return "; ".join(parts)


def score(  # noqa: C901 - one measure per figure
    truth: dict[TestKey, Truth],
    verdicts: dict[TestKey, Verdict],
    *,
    positions: dict[str, float] | None = None,
) -> Scores:
    """Score ``verdicts`` against ``truth``; ``positions`` maps sha to index.

    Without ``positions``, first_flaky_commit accuracy is not measured.
    """
    missing = [k for k in truth if k not in verdicts]
    present = {k: (t, verdicts[k]) for k, t in truth.items() if k in verdicts}
    misjudged: list[Misjudged] = []
    status_by_kind: dict[str, Counter[str]] = {}
    for t, v in present.values():
        status_by_kind.setdefault(t.kind, Counter())[v.status] += 1

    predicted = [(t, v) for t, v in present.values() if v.status == "flaky"]
    true_pos = [t for t, _ in predicted if t.expected_status == "flaky"]
    wrongly = Counter(t.kind for t, _ in predicted if t.expected_status != "flaky")
    population = [
        t
        for t, _ in present.values()
        if t.expected_status == "flaky" and t.rate >= RECALL_MIN_RATE
    ]
    observable = [t for t in population if t.observable]

    def is_found(t: Truth) -> bool:
        status = verdicts[t.key].status
        return status == "flaky" or (status == "fixed" and t.went_quiet)

    found = [t for t in observable if is_found(t)]
    found_all = [t for t in population if is_found(t)]
    any_rate = [
        t for t, _ in present.values() if t.expected_status == "flaky" and t.observable
    ]
    found_any = [t for t in any_rate if is_found(t)]
    precision = _ratio(len(true_pos), len(predicted))
    recall_any = _ratio(len(found_any), len(any_rate))
    f1 = (
        2 * precision * recall_any / (precision + recall_any)
        if precision + recall_any
        else 0.0
    )
    wrongly_fixed = sum(
        1 for t, v in present.values() if t.kind in NEVER_FIXED and v.status == "fixed"
    )
    until_still_flaky = sum(
        1
        for t, v in present.values()
        if t.kind == "flaky_until" and t.observable and v.status == "flaky"
    )
    broken_fixed = [
        (t, v)
        for t, v in present.values()
        if t.kind == "broken_window" and t.end_index is not None
    ]
    broken_fixed_ok = sum(
        1 for _, v in broken_fixed if v.status in ("healthy", "fixed")
    )

    for t, v in present.values():
        wrong_flaky = v.status == "flaky" and t.expected_status != "flaky"
        missed_flaky = t in observable and not is_found(t)
        wrong_fixed = t.kind == "flaky_until" and t.observable and v.status != "fixed"
        wrong_other = v.status not in t.accepted_statuses
        if wrong_flaky or missed_flaky or wrong_fixed or wrong_other:
            misjudged.append(
                Misjudged(
                    t.key, t.kind, t.rate, t.expected_status, v.status, _evidence(t, v)
                )
            )

    fixed_population = [
        t for t, _ in present.values() if t.kind == "flaky_until" and t.observable
    ]
    fixed_ok = [t for t in fixed_population if verdicts[t.key].status == "fixed"]

    distances, lags, accurate, considered = [], [], 0, 0
    introduced, near_start, covered, widths = 0, 0, 0, []
    if positions is not None:
        for t, v in predicted:
            if t.kind not in ("flaky", "flaky_from") or not t.flaky_evidence:
                continue
            considered += 1
            position = positions.get(v.first_flaky_commit)
            start = float(t.start_index or 0)
            since = positions.get(v.flaky_since)
            if position is not None and since is not None:
                widths.append(position - since)
                covered += since <= start <= position
            if since is None or position is None or not since <= start <= position:
                misjudged.append(
                    Misjudged(
                        t.key, t.kind, t.rate,
                        f"flaky_since..first_flaky_commit around commit {start:g}",
                        f"flaky_since {since}, first_flaky_commit {position}",
                        _evidence(t, v),
                    )
                )  # fmt: skip
            if t.kind == "flaky_from":
                introduced += 1
                near_start += position is not None and abs(position - start) <= 3
            # first_flaky_commit is a default-branch commit (a whole
            # position): branch evidence cannot place it.
            seen = sorted(p for p in t.flaky_evidence if p >= start and p == int(p))
            limit = seen[min(FIRST_FLAKY_RUNS, len(seen)) - 1] if seen else start
            if position is not None:
                distances.append(abs(position - start))
                if seen:
                    lags.append(abs(position - seen[0]))
                if start <= position <= limit:
                    accurate += 1
                    continue
            given = "none" if position is None else f"commit {position:g}"
            misjudged.append(
                Misjudged(
                    t.key, t.kind, t.rate,
                    f"first_flaky_commit in commits {start:g}..{limit:g}",
                    f"first_flaky_commit {given}",
                    _evidence(t, v),
                )
            )  # fmt: skip

    slow_true = {k for k, (t, _) in present.items() if t.duration_regressed}
    slow_pred = {k for k, (_, v) in present.items() if v.duration_regressed}
    for k in sorted(slow_true ^ slow_pred):
        t, v = present[k]
        misjudged.append(
            Misjudged(
                k, t.kind, t.rate,
                f"duration_regressed={t.duration_regressed}",
                f"duration_regressed={v.duration_regressed}",
                f"base {t.base_seconds:.3f}s, slow since commit {t.slow_since_index}",
            )
        )  # fmt: skip

    forbidden = sum(wrongly[k] for k in NEVER_FLAKY)
    return Scores(
        flaky_predicted=len(predicted),
        flaky_true_positive=len(true_pos),
        flaky_precision=precision,
        flaky_recall=_ratio(len(found), len(observable)),
        flaky_recall_all=_ratio(len(found_all), len(population)),
        recall_population=len(observable),
        flaky_recall_any_rate=recall_any,
        recall_any_rate_population=len(any_rate),
        flaky_f1=f1,
        wrongly_fixed=wrongly_fixed,
        until_still_flaky=until_still_flaky,
        broken_fixed_ok=_ratio(broken_fixed_ok, len(broken_fixed)),
        broken_fixed_population=len(broken_fixed),
        kind_sizes=dict(Counter(t.kind for t in truth.values())),
        first_flaky_within_3=_ratio(near_start, introduced),
        introduced_population=introduced,
        flaky_since_coverage=_ratio(covered, considered),
        flaky_since_median_width=statistics.median(widths) if widths else 0.0,
        wrongly_flaky=dict(wrongly),
        forbidden_flaky=forbidden,
        fixed_reported_fixed=_ratio(len(fixed_ok), len(fixed_population)),
        fixed_population=len(fixed_population),
        first_flaky_accuracy=_ratio(accurate, considered),
        first_flaky_median_distance=statistics.median(distances) if distances else 0.0,
        first_flaky_median_lag=statistics.median(lags) if lags else 0.0,
        first_flaky_population=considered,
        duration_precision=_ratio(len(slow_true & slow_pred), len(slow_pred)),
        duration_recall=_ratio(len(slow_true & slow_pred), len(slow_true)),
        duration_predicted=len(slow_pred),
        duration_population=len(slow_true),
        status_by_kind=status_by_kind,
        missing=missing,
        misjudged=misjudged,
    )
