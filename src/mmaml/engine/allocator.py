"""The C allocator's settings for a training process: keep freed memory for reuse.

A meta-RL step allocates and frees tensors of 10-20 MB many times over (every
Fisher-vector product builds activations of 40 tasks x 2,000 steps x 64 units).
glibc's malloc serves blocks that large with fresh ``mmap`` calls, once its
adaptive threshold is passed, and returns freed heap memory to the system, so
each such tensor costs thousands of page faults to zero-fill new pages. Raising
the ``mmap`` threshold to its maximum (32 MiB) and the trim threshold keeps
those blocks in the heap for the next allocation of the same size. Measured in
docs/performance.md; the resident memory grows by some tens of MB.

:func:`keep_freed_memory` has one caller, the :class:`~mmaml.engine.trainer.Trainer`
(and ``mmaml eval``), as the thread settings do; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest accepted value on 64-bit systems
TRIM_THRESHOLD = 1 << 30

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's ``mmap`` and trim thresholds once per process; True when the C library took them."""
    global _applied
    if _applied is None:
        _applied = False
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            mallopt = getattr(libc, "mallopt", None)
        except OSError:
            mallopt = None
        if mallopt is not None:
            _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
