"""Checkpoints: written atomically, checksummed, read with clear errors.

A checkpoint file is a header line ``mmaml-checkpoint 2 <sha256> <length>``
followed by the ``torch.save`` bytes of the state; the digest covers those
bytes, so a truncated or corrupted file is refused by name instead of loading
tensors that silently differ. Version-1 files (a bare ``torch.save``, written
by earlier releases) are still read.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from mmaml.errors import CheckpointError

FORMAT = "mmaml-checkpoint"
VERSION = 2
CHECKPOINT_NAME = "checkpoint.pt"
_MAGIC = FORMAT.encode() + b" "


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    A crash part-way leaves the previous ``path`` (if any) untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save ``state`` (model, optimizer, RNG states...) to ``path`` atomically, with its checksum."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buffer)
    payload = buffer.getvalue()
    header = b"%s%d %s %d\n" % (_MAGIC, VERSION, hashlib.sha256(payload).hexdigest().encode(), len(payload))

    def write(f) -> None:
        f.write(header)
        f.write(payload)

    atomic_write_bytes(path, write)


def _read_payload(path: Path) -> bytes | None:
    """The verified ``torch.save`` bytes of a version-2 file, or None for a version-1 file."""
    with path.open("rb") as f:
        start = f.read(len(_MAGIC))
        if start != _MAGIC:
            return None
        header = f.readline(200).decode("ascii", "replace").split()
        payload = f.read()
    if len(header) != 3 or not header[2].isdigit():
        raise CheckpointError(f"checkpoint {path} has a damaged header; restore it from a copy or retrain")
    version, digest, length = header[0], header[1], int(header[2])
    if version != str(VERSION):
        raise CheckpointError(f"checkpoint {path} has format version {version}, this mmaml reads {VERSION}")
    if len(payload) != length:
        raise CheckpointError(f"checkpoint {path} is truncated ({len(payload)} of {length} bytes); "
                              "restore it from a copy or retrain")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"checkpoint {path} is corrupt (its checksum does not match); restore it or retrain")
    return payload


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (on the CPU), verifying its checksum."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train first with 'mmaml train PRESET --out {path.parent}'")
    try:
        payload = _read_payload(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    try:
        source = io.BytesIO(payload) if payload is not None else path
        state = torch.load(source, map_location="cpu", weights_only=False)
    except Exception:
        raise CheckpointError(f"checkpoint {path} is corrupt or not an mmaml checkpoint; retrain or restore it") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mmaml checkpoint; retrain or point to a run folder made by 'mmaml train'")
    if state.get("version") not in (1, VERSION):
        raise CheckpointError(f"checkpoint {path} has format version {state.get('version')}, this mmaml reads {VERSION}")
    return state
