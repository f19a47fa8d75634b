"""``manage.py team``: create or update a team (shared by all projects)."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email, validate_slug

from flakewatch import ownership


class Command(BaseCommand):
    """Create a team, or change the name or digest addresses of one."""

    help = "Create or update a team: its name and the addresses of its digest."

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare the slug and the options."""
        parser.add_argument("slug", help="The team's slug, e.g. payments.")
        parser.add_argument("--name", help="The team's display name.")
        parser.add_argument(
            "--email",
            action="append",
            help="An address that gets the team's digest; repeat for several "
            "(replaces the addresses).",
        )

    def handle(
        self,
        *args: Any,
        slug: str,
        name: str | None,
        email: list[str] | None,
        **options: Any,
    ) -> None:
        """Save the team and say what happened."""
        try:
            validate_slug(slug)
            for address in email or []:
                validate_email(address)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        team, created = ownership.save_team(slug, name=name, emails=email)
        verb = "Created" if created else "Updated"
        addresses = ", ".join(team.emails) or "no addresses"
        self.stdout.write(f"{verb} team {team.slug!r} ({team.name}): {addresses}")
