"""Download with checksum verification and extraction (for users with internet access)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
import zipfile
from pathlib import Path

from mmaml.data.image_classes import DataError


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, checksum: str | None) -> None:
    """Check ``path`` against ``"md5:..."`` or ``"sha256:..."``; raise :class:`DataError` on mismatch."""
    if checksum is None:
        return
    algorithm, _, expected = checksum.partition(":")
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(f"{path} is corrupt ({algorithm} {actual}, expected {expected}); delete it and download it again")


def download(url: str, dest: Path, checksum: str | None = None) -> Path:
    """Fetch ``url`` to ``dest`` (skipped when a verified copy is there), atomically."""
    dest = Path(dest)
    if dest.exists():
        verify(dest, checksum)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f)
    except OSError as exc:
        if tmp.exists():
            tmp.unlink()
        raise DataError(f"could not download {url} ({exc}); fetch it by hand into {dest.parent}") from None
    try:
        verify(tmp, checksum)
    except DataError:
        tmp.unlink()
        raise
    os.replace(tmp, dest)
    return dest


def extract(archive: Path, into: Path) -> Path:
    """Unpack a .zip or .tar(.gz) archive into ``into``; refuses paths that leave it."""
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if not (root / name).resolve().is_relative_to(root):
                    raise DataError(f"{archive} holds an unsafe path {name!r}")
            z.extractall(into)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")
    else:
        raise DataError(f"{archive} is neither a zip nor a tar archive")
    return into
