"""Where data sets and caches live: an explicit option, else an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MMAML_DATA"
CACHE_ENV = "MMAML_CACHE"


def data_root(explicit: str | Path | None = None) -> Path:
    """The data folder: ``explicit``, else ``$MMAML_DATA``, else ``~/.mmaml/data``."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".mmaml" / "data"


def cache_root(explicit: str | Path | None = None) -> Path:
    """The cache folder for decoded, resized images: ``explicit``, ``$MMAML_CACHE`` or ``~/.cache/mmaml``."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "mmaml"
