#!/usr/bin/env python
"""Django's command-line utility for flakewatch."""

import os
import sys


def main() -> None:
    """Run the command named in ``sys.argv`` against flakewatch's settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flakewatch.settings")
    from django.core.management import execute_from_command_line

    from flakewatch.sqlite import ensure_sqlite_folder

    ensure_sqlite_folder()  # a fresh clone has no var/ yet
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
