"""Failure signatures: a failure message with its incidental details masked.

Two failures with the same signature are the same problem: the same timeout,
the same refused connection, the same assertion, whatever the port, temp path,
object address, time or test in the text. The masks follow LUCI Analysis's
``reason-v6`` clustering (numbers, hex and base64-like runs), plus temp paths
and quoted ids, and the failing test's own identity: runners print the test's
name into its failure (a Rust panic names its thread after the test, go test
frames the output with ``=== RUN TestX`` / ``--- FAIL: TestX``, JUnit 5
display names, pytest parametrised ids and Jest describe paths show up in
messages), so without that mask one incident would give every test a
signature of its own.

The signature is taken from the first line that says something: the
message, unless it is a runner's placeholder (gotestsum and go-junit-report
write ``Failed`` whatever the test said), else the body, skipping the
runner's framing lines (``=== RUN``, ``--- FAIL``, a Rust panic's
``thread '...' panicked at <path>:<line>:<col>:`` header).
"""

import re
from collections.abc import Sequence

MAX_SIGNATURE_CHARS = 300
TEST_MASK = "<test>"
# Shorter identity parts are left alone: "get" or "ok" would mask words of
# the message itself.
MIN_MASKED_CHARS = 4

_MASKS = [
    # Temporary paths: /tmp/pytest-of-ci/pytest-12/test_x0, C:\Users\X\AppData\Local\Temp\..
    (re.compile(r"(?:/tmp|/var/folders|[A-Za-z]:\\[^\s]*?\\Temp)[^\s'\"]*"), "<tmp>"),
    # Base64-ish runs ending in '=', long hex/dash runs (uuids), 8+ hex (addresses).
    (re.compile(r"[/+0-9a-zA-Z]{10,}=+"), "%"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F-]{8,}\b"), "%"),
    (re.compile(r"\b(?:0x)?[0-9a-fA-F]{8,}\b"), "%"),
    (re.compile(r"\d+(?:[.:,]\d+)*"), "%"),
]
_SPACES = re.compile(r"\s+")
_PARAMETERS = re.compile(re.escape(TEST_MASK) + r"\([^()]*\)")
# Messages runners write in place of the test's own (the text is in the body).
PLACEHOLDER_MESSAGES = frozenset(
    {"failed", "failure", "error", "runtime error", "test failure", "skipped"}
)
# Lines a runner writes around a failure, not the failure itself.
_FRAMING = re.compile(
    r"^(?:=== (?:RUN|PAUSE|CONT|NAME)\b"  # go test
    r"|--- (?:FAIL|PASS|SKIP):"  # go test's result line
    r"|thread '[^']*' panicked at [^\s]+:\d+:\d+:?$"  # Rust 1.73+: message follows
    r"|running \d+ tests?$"  # libtest's preamble
    r"|test \S+ \.\.\. FAILED$"
    r")"
)
# Rust before 1.73 put the message inside the header: keep the message.
_OLD_PANIC = re.compile(r"^thread '[^']*' panicked at '(.*)', [^\s]+:\d+:\d+$")


def identity_parts(identity: Sequence[str]) -> list[str]:
    """Return the strings that name a test, longest first, for masking.

    ``identity`` is (suite, classname, name, file) or any prefix of it. Each
    field is taken whole and also by its parts: a parametrised name without
    its parameters and the parameters alone, the last segment of a dotted or
    ``::``/``/``-separated path, a file's name without its folder and
    extension, a Jest title without its describe path.
    """
    parts: set[str] = set()
    for value in identity:
        value = value.strip()
        if not value:
            continue
        parts.add(value)
        parts.add(value.split("[", 1)[0].strip())  # add(int)[2] -> add(int)
        bare = re.split(r"[\[(]", value, maxsplit=1)[0].strip()
        parts.add(bare)
        params = re.findall(r"\[([^\]]+)\]", value)
        parts.update(params)
        for separator in (" › ", "::", "/", ".", " "):
            if separator in bare:
                pieces = [p for p in bare.split(separator) if p]
                if pieces:
                    parts.add(pieces[-1])
                if separator == " › ":  # each describe block's title
                    parts.update(pieces)
        stem = value.rsplit("/", 1)[-1].split(".", 1)[0]
        parts.add(stem)
    usable = [p for p in parts if len(p) >= MIN_MASKED_CHARS]
    return sorted(usable, key=len, reverse=True)


def mask_identity(text: str, parts: Sequence[str]) -> str:
    """Replace every occurrence of the test's identity ``parts`` by <test>."""
    for part in parts:
        if part in text:
            text = text.replace(part, TEST_MASK)
    # A method's parameter list goes with its name: shouldPost(String).
    return _PARAMETERS.sub(TEST_MASK, text)


def failure_line(message: str, detail: str = "") -> str:
    """Return the first line of a failure that is the failure, not framing.

    A placeholder message (``Failed``) or one that is only framing gives
    way to the body.
    """
    for text in (message, detail):
        if text.strip().lower() in PLACEHOLDER_MESSAGES:
            continue
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            old = _OLD_PANIC.match(line)
            if old:
                return old.group(1)
            if not _FRAMING.match(line):
                return line
    return ""


def failure_signature(
    message: str, detail: str = "", identity: Sequence[str] = ()
) -> str:
    """Return the failure's masked first line, '' when there is no text.

    ``identity`` is the failing test's (suite, classname, name, file):
    wherever the text names the test, the name is masked, so that tests
    failing for one reason share a signature. Pure; the same text of the
    same test always gives the same signature.
    """
    first = failure_line(message, detail)
    first = mask_identity(first, identity_parts(identity))
    for pattern, replacement in _MASKS:
        first = pattern.sub(replacement, first)
    return _SPACES.sub(" ", first)[:MAX_SIGNATURE_CHARS]
