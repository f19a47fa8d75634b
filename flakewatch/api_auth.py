"""Bearer-token authentication for every API view (read and upload).

Kept apart from ``flakewatch.api``: DRF imports the classes named in
``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]`` while ``rest_framework.views``
itself is being imported, so a views module naming its own authentication class
there would import itself half-built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema
    from rest_framework.views import APIView

from flakewatch.models import ApiToken
from flakewatch.tokens import authenticate

# One wording for CI scripts whichever endpoint they call.
MISSING_TOKEN = "Authentication required: send 'Authorization: Bearer <token>'."
INVALID_TOKEN = (
    "The token is not valid for this endpoint (unknown, revoked or of the wrong "
    "scope); create one with 'manage.py createtoken'."
)
READ_SCOPES = (ApiToken.Scope.READ, ApiToken.Scope.UPLOAD)


class BearerTokenAuthentication(BaseAuthentication):
    """Accept a project token of the view's scopes as ``request.auth``.

    A view lists the scopes it takes in ``token_scopes``; the read API's
    views take READ_SCOPES. There are no users behind tokens, so
    ``request.user`` stays None (``UNAUTHENTICATED_USER`` is None in
    settings).
    """

    def authenticate(self, request: Request) -> tuple[None, ApiToken] | None:
        """Return the token the request presents, None if it presents none.

        Raise AuthenticationFailed for a token that is not valid for the view.
        """
        header = request.headers.get("Authorization", "")
        if not header:
            return None  # TokenRequired then answers 401 with MISSING_TOKEN
        view = (request.parser_context or {}).get("view")
        scopes = getattr(view, "token_scopes", READ_SCOPES)
        token = authenticate(header, scopes=scopes)
        if token is None:
            raise AuthenticationFailed(INVALID_TOKEN)
        return None, token

    def authenticate_header(self, request: Request) -> str:
        """Return the WWW-Authenticate value of a 401 answer."""
        # A WWW-Authenticate value is what makes DRF answer 401 rather than 403.
        return 'Bearer realm="flakewatch"'


class TokenRequired(BasePermission):
    """Let a request through only with a token found by the authenticator."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        """Return whether the authenticator found a token on the request."""
        return isinstance(request.auth, ApiToken)


# drf-spectacular's extension base registers subclasses in an unannotated
# __init_subclass__, which strict mypy refuses to call.
class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Describe ``BearerTokenAuthentication`` in the OpenAPI schema."""

    target_class = BearerTokenAuthentication
    name = "bearerToken"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        """Return the bearer scheme's OpenAPI security scheme object."""
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A project token from 'manage.py createtoken SLUG --scope read|upload'."
                " The read API and an upload's status take either scope; uploading"
                " takes an upload token."
            ),
        }
