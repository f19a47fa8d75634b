"""Deterministic pytest-style JUnit XML reports for the ingest benchmark.

``junit_report(n, seed=..., package=...)`` returns the bytes of one report with
``n`` testcases shaped like pytest's ``--junitxml`` output: about 3 % failures
with a ``<failure message=...>`` traceback body, about 2 % skipped, the rest
passing, roughly 140 bytes a testcase on average (100,000 testcases ≈ 14 MB).
The same arguments always give the same bytes; ``package`` keeps the test
identities of two reports apart (``tests`` vs ``tests_small``).
"""

from __future__ import annotations

import random
from xml.sax.saxutils import escape, quoteattr

FAILURE_RATE = 0.03
SKIP_RATE = 0.02
CASES_PER_CLASS = 25
CLASSES_PER_MODULE = 8

_VERBS = ("parse", "load", "render", "apply", "merge", "resolve", "retry", "sync")
_VARIANTS = ("a", "b", "c", "d", "e", "f", "g")
_PARAMS = ("utf8", "latin1", "empty", "large", "nested", "unicode-é", "none")
_SKIPS = (
    "requires network access",
    "flaky on CI, see issue 1234",
    "needs PostgreSQL >= 16",
    "platform not supported",
)


def _traceback(rng: random.Random, module: str, cls: str, name: str) -> str:
    line = rng.randint(20, 900)
    got, want = rng.randint(0, 500), rng.randint(501, 999)
    return (
        f"self = <{module}.{cls} object at 0x7f{rng.getrandbits(40):010x}>\n\n"
        f"    def {name.split('[')[0]}(self):\n"
        f"        result = self.client.post('/api/v1/items', json=payload)\n"
        f">       assert result.status_code == {want}\n"
        f"E       AssertionError: assert {got} == {want}\n"
        f"E        +  where {got} = <Response [{got}]>.status_code\n\n"
        f"{module.replace('.', '/')}.py:{line}: AssertionError"
    )


def junit_report(n: int, *, seed: int = 1, package: str = "tests") -> bytes:
    """Return a pytest-style JUnit XML report with ``n`` testcases."""
    rng = random.Random(seed)
    parts: list[str] = []
    failures = skipped = 0
    total_time = 0.0
    per_module = CASES_PER_CLASS * CLASSES_PER_MODULE
    for i in range(n):
        module_no, rest = divmod(i, per_module)
        class_no, case_no = divmod(rest, CASES_PER_CLASS)
        module = f"{package}.module_{module_no}"
        cls = f"TestClass_{class_no}"
        name = (
            f"test_{rng.choice(_VERBS)}_{case_no}[{rng.choice(_VARIANTS)}-"
            f"{rng.choice(_PARAMS)}]"
        )
        seconds = rng.expovariate(1 / 0.02)
        total_time += seconds
        attrs = (
            f"classname={quoteattr(f'{module}.{cls}')} name={quoteattr(name)} "
            f'file="{module.replace(".", "/")}.py" line="{rng.randint(10, 990)}" '
            f'time="{seconds:.4f}"'
        )
        roll = rng.random()
        if roll < FAILURE_RATE:
            failures += 1
            body = _traceback(rng, module, cls, name)
            message = body.splitlines()[5].removeprefix("E       ")
            parts.append(
                f"<testcase {attrs}><failure message={quoteattr(message)}>"
                f"{escape(body)}</failure></testcase>"
            )
        elif roll < FAILURE_RATE + SKIP_RATE:
            skipped += 1
            reason = rng.choice(_SKIPS)
            parts.append(
                f'<testcase {attrs}><skipped type="pytest.skip" '
                f"message={quoteattr(reason)}>"
                f"{escape(f'{module}.py:{rng.randint(10, 990)}: {reason}')}"
                f"</skipped></testcase>"
            )
        else:
            parts.append(f"<testcase {attrs}/>")
    head = (
        '<?xml version="1.0" encoding="utf-8"?>\n<testsuites>'
        f'<testsuite name="pytest" errors="0" failures="{failures}" '
        f'skipped="{skipped}" tests="{n}" time="{total_time:.3f}" '
        'timestamp="2026-05-01T10:00:00.000000" hostname="ci-runner-7">\n'
    )
    return (head + "\n".join(parts) + "\n</testsuite></testsuites>\n").encode("utf-8")


MULTIPART_BOUNDARY = "----flakewatch-bench-7d1f0c"


def multipart_body(fields: dict[str, str], filename: str, content: bytes) -> bytes:
    """A multipart/form-data body as ``curl -F key=value -F file=@name`` sends.

    Use with ``Content-Type: multipart/form-data; boundary=MULTIPART_BOUNDARY``.
    """
    parts = [
        f"--{MULTIPART_BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f"--{MULTIPART_BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/xml\r\n\r\n".encode()
    )
    parts.append(content)
    parts.append(f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode())
    return b"".join(parts)
