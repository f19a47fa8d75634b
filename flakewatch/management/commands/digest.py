"""``manage.py digest``: preview a team's weekly digest, or send it now."""

from datetime import date
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flakewatch import digests
from flakewatch.models import Team

PREVIEW_ADDRESS = "preview@example.invalid"


class Command(BaseCommand):
    """Print, write or send one team's digest for the latest digest week."""

    help = "Preview a team's weekly digest (text or HTML) or send it now, recorded."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the team and what to do with its digest."""
        parser.add_argument("--team", required=True, help="The team's slug.")
        parser.add_argument(
            "--preview", action="store_true", help="Print the plain-text part."
        )
        parser.add_argument(
            "--html", metavar="FILE", help="Write the HTML part to FILE."
        )
        parser.add_argument(
            "--send",
            action="store_true",
            help="Send it now to the team's addresses (once per week, recorded).",
        )
        parser.add_argument(
            "--week",
            metavar="YYYY-MM-DD",
            help="The week's first day (default: the latest finished digest week).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Build the digest, then print, write or send it as asked."""
        team = Team.objects.filter(slug=options["team"]).first()
        if team is None:
            raise CommandError(f"No team {options['team']!r}.")
        if not (options["preview"] or options["html"] or options["send"]):
            raise CommandError("Say what to do: --preview, --html FILE or --send.")
        try:
            period = (
                digests.period_of(date.fromisoformat(options["week"]))
                if options["week"]
                else digests.digest_period()
            )
        except ValueError as exc:
            raise CommandError("--week takes a date such as 2026-11-23.") from exc
        week = digests.team_week_for(team, period)
        address = team.emails[0] if team.emails else PREVIEW_ADDRESS
        text, html = digests.render_digest(week, team, address)
        if options["preview"]:
            self.stdout.write(f"Subject: {digests.subject_of(week)}\n\n{text}")
        if options["html"]:
            Path(options["html"]).write_text(html, encoding="utf-8")
            self.stderr.write(f"Wrote the HTML part to {options['html']}.")
        if options["send"]:
            self._send(team, period)

    def _send(self, team: Team, period: digests.Period) -> None:
        """Send (or resume) the week's digest and say how it went."""
        status = digests.send_weekly_digest(team.pk, period.week_start.isoformat())
        delivery = team.digests.get(week_start=period.week_start)
        self.stdout.write(
            f"Digest of {team.slug} for the week of {period.week_start}: {status}"
            f" (sent to {len(delivery.sent_to)}, refused {len(delivery.refused)})."
        )
        if status in ("retrying", "failed"):
            raise CommandError(
                f"Not sent to everyone: {delivery.last_error}. Beat retries a "
                "retrying digest with the addresses not yet sent."
            )
