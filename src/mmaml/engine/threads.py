"""How many CPU threads torch (and the MuJoCo physics) use: the ``threads`` and ``sim_threads`` settings.

``threads: auto`` (the default) resolves, in this order, to ``OMP_NUM_THREADS``
when it is set, else to the default of the run's preset family
(:data:`FAMILY_THREADS`, measured by ``benchmarks/bench_threads.py``, see
docs/performance.md), capped by the CPUs this process may use. ``sim_threads:
auto`` is the usable CPUs (the physics threads work on separate episodes and
never wait for each other, so a busy core slows them without stalling them).

The process-wide torch setting has one owner: :func:`apply_threads`, called by
the CLI before a run starts (and by nothing else in the library).
"""

from __future__ import annotations

import os
from typing import Mapping

import torch

AUTO = "auto"

# Per family: 1, or None for every usable CPU. Chosen from the measurements in docs/performance.md.
FAMILY_THREADS: dict[str, int | None] = {
    "regression": 1,
    "images": 1,
    "rl-2d": 1,
    "cheetah": 1,
}


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def family_threads(family: str, cpus: int | None = None, local_world: int = 1) -> int:
    """The ``auto`` torch threads of a preset family on ``cpus`` usable CPUs shared by ``local_world`` processes."""
    cpus = usable_cpus() if cpus is None else cpus
    share = max(1, cpus // max(1, local_world))
    chosen = FAMILY_THREADS[family]
    return share if chosen is None else min(chosen, share)


def environment_threads(environ: Mapping[str, str] | None = None) -> int | None:
    """``OMP_NUM_THREADS`` as a positive int, or None when unset or empty.

    Raises ValueError naming the variable when it is set to something else.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get("OMP_NUM_THREADS", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"OMP_NUM_THREADS={raw!r} is not a positive integer; set it to e.g. 1, or unset it")
    return value


def resolve_threads(setting: int | str, family: str, environ: Mapping[str, str] | None = None,
                    cpus: int | None = None, local_world: int = 1) -> tuple[int, str]:
    """``(threads, why)`` for a ``threads`` setting (a positive int or ``"auto"``) of a run of ``family``.

    ``local_world`` processes of one data-parallel run on this machine share its CPUs.
    """
    if setting != AUTO:
        return int(setting), "set in the config"
    env = environment_threads(environ)
    if env is not None:
        return env, "from OMP_NUM_THREADS"
    shared = f", {local_world} processes sharing the CPUs" if local_world > 1 else ""
    return family_threads(family, cpus, local_world), f"auto for {family} runs{shared}"


def resolve_sim_threads(setting: int | str, cpus: int | None = None) -> int:
    """Physics threads for a ``sim_threads`` setting (a positive int or ``"auto"``: every usable CPU)."""
    if setting == AUTO:
        return usable_cpus() if cpus is None else cpus
    return int(setting)


def configure_threads(config, local_world: int = 1) -> dict:
    """Resolve and apply ``config``'s threads; ``{"torch", "why", "physics"?, "line"}`` says what was chosen.

    ``physics`` (the half-cheetah's MuJoCo threads) is there for configs with ``sim_threads``.
    """
    threads, why = resolve_threads(config.threads, config.thread_family, local_world=local_world)
    apply_threads(threads)
    chosen = {"torch": threads, "why": why}
    line = f"threads: torch {threads} ({why})"
    if config.thread_family == "cheetah":
        chosen["physics"] = resolve_sim_threads(config.sim_threads)
        line += f"; physics {chosen['physics']} ({'auto: every usable CPU' if config.sim_threads == AUTO else 'set'})"
    chosen["line"] = line
    return chosen


def apply_threads(threads: int) -> None:
    """Set torch's intra-op threads for this process (the one place the library does)."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
