"""API tokens: issue them, and find the token a request presents."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from flakewatch.models import ApiToken, Project

# last_used_at is for humans auditing tokens: minute precision spares a write
# on every upload.
LAST_USED_PRECISION = timedelta(minutes=1)


def hash_token(raw: str) -> str:
    """Return the hex SHA-256 of the raw token ``raw``, as stored."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def issue_token(project: Project, *, scope: str, label: str = "") -> str:
    """Create a token for ``project`` and return it; only its hash is stored."""
    if scope not in ApiToken.Scope.values:
        raise ValueError(f"scope must be one of {', '.join(ApiToken.Scope.values)}")
    raw = f"fw{scope[0]}_{secrets.token_urlsafe(32)}"
    ApiToken.objects.create(
        project=project,
        scope=scope,
        prefix=raw[:12],
        token_hash=hash_token(raw),
        label=label,
    )
    return raw


def authenticate(authorization: str, *, scopes: tuple[str, ...]) -> ApiToken | None:
    """Return the live token named by an ``Authorization: Bearer`` header value.

    Returns None when the header is malformed, the token unknown or revoked,
    or its scope not among ``scopes``.
    """
    kind, _, raw = authorization.partition(" ")
    if kind.lower() != "bearer" or not raw.strip():
        return None
    # Looked up only by the SHA-256 of what was sent, never compared as text:
    # the lookup's timing depends on that hash, which a caller cannot steer
    # toward a stored one, so no constant-time comparison is needed. Only
    # the Authorization header is read, never the query string (URLs end up
    # in logs and proxies).
    token = (
        ApiToken.objects.select_related("project")
        .filter(token_hash=hash_token(raw.strip()), revoked_at__isnull=True)
        .first()
    )
    if token is None or token.scope not in scopes:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
