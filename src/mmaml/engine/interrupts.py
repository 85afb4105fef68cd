"""Ctrl-C and SIGTERM during training: finish the iteration, save it, then stop.

An interrupt that lands inside an iteration (an optimizer step half applied, a
TRPO line search with a candidate assigned) would leave the model in a state no
checkpoint may hold. :class:`StopRequest` therefore turns the first SIGINT or
SIGTERM into a request that the trainer reads between iterations: it saves the
completed iteration and stops. A second signal interrupts at once
(``KeyboardInterrupt``), keeping the last checkpoint. Signal handlers can only
be installed from the main thread; elsewhere (and for the duration of nothing
else) the process's own handlers stay.
"""

from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A context in which SIGINT / SIGTERM ask the training loop to stop after the current iteration."""

    def __init__(self, say=None) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}
        self._say = (lambda text: print(text, file=sys.stderr, flush=True)) if say is None else say

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._say("mmaml: stopping after this iteration to save it (interrupt again to stop at once, "
                  "keeping the last checkpoint)")

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
