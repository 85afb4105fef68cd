"""Checkpoints: written atomically, read with clear errors."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from mmaml.errors import CheckpointError

FORMAT = "mmaml-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


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
    """Save ``state`` (model, optimizer, RNG states...) to ``path`` atomically."""
    atomic_write_bytes(path, lambda f: torch.save({"format": FORMAT, "version": VERSION, **state}, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train first with 'mmaml train PRESET --out {path.parent}'")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        raise CheckpointError(f"checkpoint {path} is corrupt or not an mmaml checkpoint; retrain or restore it") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mmaml checkpoint; retrain or point to a run folder made by 'mmaml train'")
    if state.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {state.get('version')}, this mmaml reads {VERSION}")
    return state
