"""Failure signatures: a failure message with its incidental details masked.

Two failures with the same signature are the same problem: the same timeout,
the same refused connection, the same assertion, whatever the port, temp path,
object address or time in the text. The masks follow LUCI Analysis's
``reason-v6`` clustering (numbers, hex and base64-like runs), plus temp paths
and quoted ids.
"""

import re

MAX_SIGNATURE_CHARS = 300

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


def failure_signature(message: str, detail: str = "") -> str:
    """Return the masked first line of a failure, '' when there is no text."""
    text = message if message.strip() else detail
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    for pattern, replacement in _MASKS:
        first = pattern.sub(replacement, first)
    return _SPACES.sub(" ", first)[:MAX_SIGNATURE_CHARS]
