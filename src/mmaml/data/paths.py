"""Where data sets and caches live: an explicit option, else an environment variable, else a default."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MMAML_DATA"
CACHE_ENV = "MMAML_CACHE"


def _resolve(explicit: str | Path | None, env: str, default: Path) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return default


def data_root(explicit: str | Path | None = None) -> Path:
    """The data folder: ``explicit``, else ``$MMAML_DATA``, else ``~/.mmaml/data``."""
    return _resolve(explicit, DATA_ENV, Path.home() / ".mmaml" / "data")


def cache_root(explicit: str | Path | None = None) -> Path:
    """The cache for decoded, resized images: ``explicit``, ``$MMAML_CACHE`` or ``~/.cache/mmaml``."""
    return _resolve(explicit, CACHE_ENV, Path.home() / ".cache" / "mmaml")
