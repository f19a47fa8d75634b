"""The digest's unsubscribe page: no login, the signed token is the key.

``GET`` shows one button and changes nothing, because mail scanners and link
previews fetch every link in a message (RFC 8058, section 1); the button, and
a mail client's own unsubscribe action (``List-Unsubscribe-Post``), POST to
the same URL, which unsubscribes at once.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from flakewatch import digests
from flakewatch.models import Team

BAD_TOKEN = (
    "This unsubscribe link is incomplete or was changed; open it again from the "
    "newest digest email, or ask your team to remove your address."
)
NO_TEAM = "This team no longer exists, so it sends no more digests to you."
WRONG_METHOD = "Open this link in a browser (GET) or unsubscribe with POST."


# The signed token stands in for the CSRF token: a mail client's one-click
# POST carries nothing else, and the token unsubscribes only its own address.
@csrf_exempt
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """Show the unsubscribe button (GET) or unsubscribe (POST)."""
    if request.method not in ("GET", "HEAD", "POST"):
        answer = JsonResponse({"detail": WRONG_METHOD}, status=405)
        answer["Allow"] = "GET, HEAD, POST"
        return answer
    named = digests.read_unsubscribe_token(token)
    if named is None:
        return JsonResponse({"detail": BAD_TOKEN}, status=400)
    team_id, address = named
    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        return JsonResponse({"detail": NO_TEAM}, status=404)
    done = request.method == "POST"
    if done:
        digests.unsubscribe(team_id, address)
    context = {"team": team, "address": address, "done": done}
    return render(request, "emails/unsubscribe.html", context)
