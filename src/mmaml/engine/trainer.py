"""Meta-training: the outer loop, with logging, periodic atomic checkpoints and exact resume."""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from mmaml.errors import CheckpointError, ConfigError, TrainingDiverged
from mmaml.engine.allocator import keep_freed_memory
from mmaml.engine.device import resolve_device
from mmaml.engine.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from mmaml.engine.config import RESUMABLE_KEYS, RunConfig, config_differences
from mmaml.engine.distributed import SINGLE, Distributed
from mmaml.engine.interrupts import StopRequest
from mmaml.engine.metrics_log import MetricsLog
from mmaml.engine.run_dir import (CONFIG_NAME, best_checkpoint_path, check_config_file, checkpoint_path, config_from_state, config_to_yaml, seed_everything)
from mmaml.engine.run_lock import RunLock, ensure_free
from mmaml.engine.threads import configure_threads


class Algorithm(Protocol):
    """What the trainer runs: a model and one meta-iteration at a time.

    ``columns`` name the metrics ``summarize`` returns for a logging window of
    ``step`` results; ``state_dict`` holds what besides the model and the RNGs a
    checkpoint must keep (an optimizer's state).
    """

    model: nn.Module
    columns: tuple[str, ...]
    renamed_columns: dict[str, str]  # {column: the name runs saved by earlier versions logged it under}
    divergence_hint: str  # what to change when training diverges, e.g. "lower meta_lr"

    def step(self) -> dict[str, float]: ...
    def summarize(self, window: list[dict[str, float]]) -> dict[str, float]: ...
    def progress(self, summary: dict[str, float]) -> dict[str, str]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


# builds a run's algorithm: (config, device, task generator, distributed) -> Algorithm (mmaml.kinds.build_algorithm)
AlgorithmFactory = Callable[[RunConfig, torch.device, torch.Generator, Distributed], Algorithm]


class _NoLog:
    """What a rank other than 0 logs: nothing."""

    def log(self, row: dict) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    seconds: float
    final_loss: float | None
    interrupted: bool = False
    final_metrics: dict | None = None


class Trainer:
    """Meta-trains the model of ``config`` into ``run_dir``.

    The run folder gets ``config.yaml``, ``metrics.csv``, ``tensorboard/`` and
    ``checkpoint.pt``, the last saved every ``checkpoint_every`` iterations and
    at the end. A checkpoint holds the model, the optimizer, the task
    generator's state and torch's RNG state, so a resumed run continues the very
    same data stream and ends where an uninterrupted run would. While it trains,
    the run folder is locked (:mod:`mmaml.engine.run_lock`): a second process
    asked to train the same folder stops with a clear error instead of
    overwriting this one's checkpoints.

    Args:
        config: the run's configuration (validated here).
        run_dir: output folder.
        resume: continue the run already in ``run_dir`` from its checkpoint.
        progress: show a progress bar.
        tensorboard: also write TensorBoard events.
        dist: this process's place in a data-parallel run (:mod:`mmaml.engine.distributed`);
            only rank 0 writes the folder and shows progress.
        algorithm: builds the run's training algorithm (:func:`mmaml.kinds.build_algorithm` for the library's
            kinds of run; :func:`mmaml.runs.make_trainer` hands it).
    """

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        resume: bool = False,
        progress: bool = True,
        tensorboard: bool = True,
        dist: Distributed = SINGLE,
        *,
        algorithm: AlgorithmFactory,
    ):
        self.run_dir = Path(run_dir)
        self.dist = dist
        self.progress = progress and dist.is_main
        self.tensorboard = tensorboard
        ckpt = checkpoint_path(self.run_dir)
        state = None
        if dist.active:
            if config.task_rng != "per_iteration":
                raise ConfigError("a run over several processes draws each meta-batch from a generator of (seed, "
                                  "iteration): add --set task_rng=per_iteration (a run keeps it for good)")
            dist.agree(json.dumps(config.to_dict(), sort_keys=True), "config")
        if dist.is_main:
            ensure_free(self.run_dir)
        if ckpt.exists() and not resume:
            raise CheckpointError(f"{self.run_dir} already holds a run; add --resume to continue it, or choose another --out")
        if resume:
            if not ckpt.exists():
                raise CheckpointError(f"nothing to resume: no checkpoint in {self.run_dir}; drop --resume to start a new run")
            state = load_checkpoint(ckpt)
            saved = config_from_state(state, ckpt, type(config))
            check_config_file(self.run_dir, saved, ckpt)  # an edited config.yaml is refused, not overwritten
            differs = config_differences(config, saved)
            if differs:
                raise ConfigError(
                    f"cannot resume {self.run_dir} with a different config ({', '.join(differs)}); "
                    f"only {', '.join(sorted(RESUMABLE_KEYS))} may change on resume"
                )
        self.config = config.validate()
        self.threads = configure_threads(self.config, dist.local_world)  # before anything builds a tensor
        keep_freed_memory()
        self.device = resolve_device(dist.device(config.device))
        self.generator = seed_everything(config.seed)
        self.algorithm = algorithm(self.config, self.device, self.generator, dist)
        self.iteration = 0
        self.elapsed = 0.0
        self.best_score = -math.inf  # the best validation score so far (best.pt holds its checkpoint)
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.algorithm.load_state_dict(state)
            self.generator.set_state(state["task_rng"])
            torch.set_rng_state(state["torch_rng"])
            self.iteration = int(state["iteration"])
            self.elapsed = float(state.get("elapsed_seconds", 0.0))
            self.best_score = float(state.get("best_score", -math.inf))
        self._lock = RunLock(self.run_dir) if dist.is_main else contextlib.nullcontext()
        self._checkpoint_stamp = _stamp(ckpt)

    @property
    def model(self) -> nn.Module:
        return self.algorithm.model

    @property
    def tasks(self):
        """The task distribution of a supervised run."""
        return self.algorithm.tasks

    def state(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "threads": {k: v for k, v in self.threads.items() if k != "line"},  # what this process ran with
            "iteration": self.iteration,
            "elapsed_seconds": self.elapsed,
            "best_score": self.best_score,
            "model": self.model.state_dict(),
            **self.algorithm.state_dict(),
            "task_rng": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def save(self) -> None:
        if not self.dist.is_main:
            return
        ckpt = checkpoint_path(self.run_dir)
        save_checkpoint(ckpt, self.state())
        self._checkpoint_stamp = _stamp(ckpt)

    def save_best(self) -> None:
        """Write ``best.pt``: this iteration's checkpoint, the best by validation so far."""
        if self.dist.is_main:
            save_checkpoint(best_checkpoint_path(self.run_dir), self.state())

    def step(self) -> dict[str, float]:
        """One meta-iteration; the algorithm's metrics."""
        return self.algorithm.step()

    def train(self, stop_after: int | None = None) -> TrainResult:
        """Train up to ``config.iterations`` (or ``stop_after`` more, to split a run)."""
        with self._lock:
            if self.dist.is_main and _stamp(checkpoint_path(self.run_dir)) != self._checkpoint_stamp:
                raise CheckpointError(
                    f"the checkpoint in {self.run_dir} changed after this run was loaded (another process "
                    "trained it); start again with --resume to continue from the newer checkpoint"
                )
            return self._train(stop_after)

    def _train(self, stop_after: int | None) -> TrainResult:
        config = self.config
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / CONFIG_NAME, config_to_yaml(config))
            log = MetricsLog(self.run_dir, start=self.iteration, tensorboard=self.tensorboard,
                             columns=("iteration", *self.algorithm.columns, "seconds_per_iteration", "elapsed_seconds"),
                             renamed=self.algorithm.renamed_columns)
        else:
            log = _NoLog()
        end = config.iterations if stop_after is None else min(config.iterations, self.iteration + stop_after)
        bar = tqdm(total=config.iterations, initial=self.iteration, disable=not self.progress,
                   desc=self.run_dir.name, unit="it", dynamic_ncols=True)
        window: list[dict[str, float]] = []
        window_start = time.perf_counter()
        interrupted = False
        self._last_loss = self._last_metrics = None
        stop = StopRequest(say=None if self.dist.is_main else (lambda text: None))
        try:
            with stop:
                interrupted = self._loop(end, log, bar, window, window_start, stop)
        except KeyboardInterrupt:  # a second interrupt, inside an iteration: the last checkpoint stays
            interrupted = True
        finally:
            bar.close()
            log.close()
        return TrainResult(self.run_dir, self.iteration, self.elapsed, self._last_loss, interrupted, self._last_metrics)

    def _loop(self, end: int, log, bar, window: list, window_start: float, stop: StopRequest) -> bool:
        """Run iterations up to ``end``; True when a stop was requested (the completed iteration is saved)."""
        config = self.config
        nonfinite = 0
        while self.iteration < end:
            t0 = time.perf_counter()
            self.algorithm.iteration = self.iteration  # per-iteration task generators key on it
            metrics = self.step()
            self.iteration += 1
            self.elapsed += time.perf_counter() - t0
            window.append(metrics)
            self._last_loss = metrics.get("loss")
            self._last_metrics = metrics
            bar.update(1)
            score = metrics.get("selection_score")  # validation runs only: keep the best checkpoint
            if score is not None and math.isfinite(score) and score > self.best_score:
                self.best_score = score
                self.save_best()
            nonfinite = nonfinite + 1 if metrics.get("nonfinite") else 0
            diverged = nonfinite >= config.max_nonfinite_steps
            if diverged or self.iteration % config.log_every == 0 or self.iteration == end:
                now = time.perf_counter()
                summary = self.algorithm.summarize(window)
                log.log({
                    "iteration": self.iteration,
                    **summary,
                    "seconds_per_iteration": (now - window_start) / len(window),
                    "elapsed_seconds": self.elapsed,
                })
                bar.set_postfix(**self.algorithm.progress(summary))
                window, window_start = [], now
            if diverged:
                saved = _saved_iteration(checkpoint_path(self.run_dir))
                kept = (f"the checkpoint of iteration {saved} is kept" if saved is not None
                        else "no checkpoint had been saved yet")
                raise TrainingDiverged(
                    f"training diverged at iteration {self.iteration}: {nonfinite} consecutive meta-batches had a "
                    f"non-finite loss or gradient; {kept}; {self.algorithm.divergence_hint} and retrain or --resume")
            stopping = self.dist.active and self.dist.mean(float(stop.requested)) > 0 or stop.requested
            if stopping or self.iteration % config.checkpoint_every == 0 or self.iteration == end:
                self.save()
            if stopping:
                return True
        return False


def _saved_iteration(path: Path) -> int | None:
    """The iteration of the checkpoint at ``path``, or None when there is none."""
    if not path.exists():
        return None
    return int(load_checkpoint(path)["iteration"])


def _stamp(path: Path) -> tuple[int, int] | None:
    """(modification time, size) of ``path``, or None if it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size
