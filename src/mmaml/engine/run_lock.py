"""An exclusive lock on a run folder, so that two processes never train one run at once.

Two trainers resuming the same folder (say, two ``mmaml reproduce`` commands
started with overlapping rows) would each continue from the same checkpoint and
overwrite each other's checkpoints and ``metrics.csv``. Training therefore holds
an advisory lock (``flock``) on ``<run>/.train.lock`` while it runs; the
operating system drops the lock when the process ends, however it ends, so a
crash never leaves a stale lock behind. A process that ends normally also removes
the file (while it still holds the lock; a process that took the lock on a file
removed meanwhile notices and takes it again on the path's new file). On systems
without ``fcntl`` (Windows) the lock is a no-op.

Example::

    with RunLock(run_dir):      # raises CheckpointError if another process trains run_dir
        ...                     # train, write checkpoints
    lock_holder(run_dir)        # None: nobody trains it now
"""

from __future__ import annotations

import os
from pathlib import Path

from mmaml.errors import CheckpointError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".train.lock"


def _busy_message(run_dir: Path, pid: int | None) -> str:
    who = f"another process (pid {pid})" if pid else "another process"
    return (f"{run_dir} is being trained by {who}; wait for it to finish (or stop it) "
            "before resuming this run, or choose another --out")


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


class RunLock:
    """Exclusive, non-blocking lock on ``run_dir`` for the current process."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`CheckpointError` naming the process that holds it."""
        if fcntl is None or self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise CheckpointError(_busy_message(self.run_dir, pid)) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder removed this file as it finished: lock the path's new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self, remove: bool = True) -> None:
        """Drop the lock; ``remove``: delete the lock file first (while holding it), as a normal end does."""
        if self._fd is not None:
            if remove and _same_file(self._fd, self.path):
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):
        self.release(remove=False)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path``."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def lock_holder(run_dir: Path) -> int | None:
    """The pid of the process that trains ``run_dir`` now (0 if unknown), or None when none does."""
    path = Path(run_dir) / LOCK_NAME
    if fcntl is None or not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def ensure_free(run_dir: Path) -> None:
    """Raise :class:`CheckpointError` if another process trains ``run_dir``."""
    pid = lock_holder(run_dir)
    if pid is not None:
        raise CheckpointError(_busy_message(Path(run_dir), pid or None))
