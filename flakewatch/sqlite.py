"""The embedded default's one piece of disk set-up: the SQLite file's folder."""

from pathlib import Path

from django.conf import settings


def ensure_sqlite_folder() -> None:
    """Create the folder of the SQLite database file, if one is configured.

    Settings never touch the disk, and SQLite creates its file but not the
    folder. Idempotent; does nothing on PostgreSQL or an in-memory database.
    """
    database = settings.DATABASES["default"]
    name = str(database.get("NAME", ""))
    if database["ENGINE"] != "django.db.backends.sqlite3" or name in ("", ":memory:"):
        return
    Path(name).parent.mkdir(parents=True, exist_ok=True)
