"""Template filters of the pages: units, statuses and query strings."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from django import template

register = template.Library()

# A shape for each verdict, so status never rests on colour alone.
SYMBOLS = {
    "flaky": "◐",
    "broken": "✕",
    "healthy": "✓",
    "fixed": "↺",
    "new": "•",
    "quarantined": "‖",
    "slow": "▲",
}


@register.filter
def symbol(status: str) -> str:
    """Return the shape shown next to a status."""
    return SYMBOLS.get(status, "•")


@register.filter
def duration(ms: float | None) -> str:
    """Format milliseconds with a unit: 340 ms, 2.4 s, 3.1 min, 1.2 h."""
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:.1f} h"


@register.filter
def percent(share: float | None) -> str:
    """Format a share of 0..1 as a percentage."""
    if share is None:
        return "–"
    return f"{100 * share:.1f} %"


@register.filter
def sha(commit: str | None) -> str:
    """Shorten a commit to 7 characters."""
    return (commit or "")[:7]


@register.simple_tag
def with_query(query: str, **changes: object) -> str:
    """Return ``query`` (a query string) with ``changes`` set or removed."""
    params = dict(parse_qsl(query))
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"
