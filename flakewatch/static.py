"""Static files: WhiteNoise, with or without collectstatic having run."""

from pathlib import Path

from django.conf import settings
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):  # type: ignore[misc]  # untyped
    """Serve static files; an uncollected STATIC_ROOT is normal, not a warning.

    Only the Docker image runs collectstatic. ``make run`` and the tests serve
    from the apps' finders (``WHITENOISE_USE_FINDERS``), where WhiteNoise would
    otherwise warn about the missing folder on every start.
    """

    def add_files(self, root: str, prefix: str | None = None) -> None:
        """Add the files under ``root``, skipping a STATIC_ROOT not yet made."""
        if Path(root) == Path(settings.STATIC_ROOT) and not Path(root).is_dir():
            return
        super().add_files(root, prefix)
