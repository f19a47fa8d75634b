"""Serve plotly.js from the installed ``plotly`` package as a static file.

The ``plotly`` package ships ``package_data/plotly.min.js`` (about 4 MB, the
version its figures are written for); this finder offers that one file as
``vendor/plotly.min.js``, so WhiteNoise (``WHITENOISE_USE_FINDERS``) and
``collectstatic`` serve it without a copy in the repository.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, overload

import plotly  # type: ignore[import-untyped]
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_DIR = Path(plotly.__file__).parent / "package_data"
FILE = "plotly.min.js"
PREFIX = "vendor"


class PlotlyFinder(BaseFinder):
    """Find ``vendor/plotly.min.js`` in the plotly package."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(PLOTLY_DIR))
        self.storage.prefix = PREFIX  # type: ignore[attr-defined]  # read by collectstatic

    @overload
    def find(self, path: str, find_all: Literal[False] = False) -> str | None: ...

    @overload
    def find(self, path: str, find_all: Literal[True]) -> list[str]: ...

    def find(self, path: str, find_all: bool = False) -> str | list[str] | None:
        """Return the file's absolute path for ``vendor/plotly.min.js``."""
        found = [str(PLOTLY_DIR / FILE)] if path == f"{PREFIX}/{FILE}" else []
        return found if find_all else (found[0] if found else None)

    def list(
        self, ignore_patterns: Iterable[str] | None
    ) -> Iterator[tuple[str, FileSystemStorage]]:
        """List the one file, with a storage whose prefix is ``vendor``."""
        yield FILE, self.storage
