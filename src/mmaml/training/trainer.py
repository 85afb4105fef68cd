"""Meta-training: the outer loop, with logging, periodic atomic checkpoints and exact resume."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mmaml.errors import CheckpointError, ConfigError
from mmaml.metalearners import GradientMetaLearner
from mmaml.training.builder import build_metalearner, build_tasks, resolve_device
from mmaml.training.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from mmaml.training.config import BaseConfig
from mmaml.training.metrics_log import MetricsLog
from mmaml.training.run_dir import CONFIG_NAME, checkpoint_path, config_from_state, config_to_yaml, seed_everything
from mmaml.training.run_lock import RunLock, ensure_free


# Settings that do not change what is computed, so a resumed run may change them.
RESUMABLE_KEYS = frozenset({"iterations", "device", "log_every", "checkpoint_every", "eval_tasks"})


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    seconds: float
    final_loss: float | None
    interrupted: bool = False


class Trainer:
    """Meta-trains the model of ``config`` into ``run_dir``.

    The run folder gets ``config.yaml``, ``metrics.csv``, ``tensorboard/`` and
    ``checkpoint.pt``, the last saved every ``checkpoint_every`` iterations and
    at the end. A checkpoint holds the model, the optimizer, the task
    generator's state and torch's RNG state, so a resumed run continues the very
    same data stream and ends where an uninterrupted run would. While it trains,
    the run folder is locked (:mod:`mmaml.training.run_lock`): a second process
    asked to train the same folder stops with a clear error instead of
    overwriting this one's checkpoints.

    Args:
        config: the run's configuration (validated here).
        run_dir: output folder.
        resume: continue the run already in ``run_dir`` from its checkpoint.
        progress: show a progress bar.
        tensorboard: also write TensorBoard events.
    """

    def __init__(
        self,
        config: BaseConfig,
        run_dir: Path,
        resume: bool = False,
        progress: bool = True,
        tensorboard: bool = True,
    ):
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.tensorboard = tensorboard
        ckpt = checkpoint_path(self.run_dir)
        state = None
        ensure_free(self.run_dir)
        if ckpt.exists() and not resume:
            raise CheckpointError(f"{self.run_dir} already holds a run; add --resume to continue it, or choose another --out")
        if resume:
            if not ckpt.exists():
                raise CheckpointError(f"nothing to resume: no checkpoint in {self.run_dir}; drop --resume to start a new run")
            state = load_checkpoint(ckpt)
            saved = config_from_state(state, ckpt)
            differs = [k for k, v in config.to_dict().items()
                       if k not in RESUMABLE_KEYS and saved.to_dict()[k] != v]
            if differs:
                raise ConfigError(
                    f"cannot resume {self.run_dir} with a different config ({', '.join(differs)}); "
                    f"only {', '.join(sorted(RESUMABLE_KEYS))} may change on resume"
                )
        self.config = config.validate()
        self.device = resolve_device(config.device)
        self.tasks = build_tasks(config)
        self.generator = seed_everything(config.seed)
        self.model: GradientMetaLearner = build_metalearner(config).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.meta_lr)
        self.iteration = 0
        self.elapsed = 0.0
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.generator.set_state(state["task_rng"])
            torch.set_rng_state(state["torch_rng"])
            self.iteration = int(state["iteration"])
            self.elapsed = float(state.get("elapsed_seconds", 0.0))
        self._lock = RunLock(self.run_dir)
        self._checkpoint_stamp = _stamp(ckpt)

    def state(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "iteration": self.iteration,
            "elapsed_seconds": self.elapsed,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "task_rng": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def save(self) -> None:
        ckpt = checkpoint_path(self.run_dir)
        save_checkpoint(ckpt, self.state())
        self._checkpoint_stamp = _stamp(ckpt)

    def step(self) -> tuple[float, float]:
        """One meta-iteration; returns ``(loss, pre-clip gradient norm)``.

        A meta-batch whose loss or gradient is not finite (an inner loop that
        diverged on some task) leaves the parameters and optimizer untouched:
        the step is skipped, and counted in ``metrics.csv``.
        """
        config = self.config
        batch = self.tasks.sample(config.meta_batch_size, self.generator).to(self.device)
        out = self.model(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss = float(out.loss.detach())
        if not math.isfinite(loss):
            return loss, float("nan")
        out.loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = config.grad_norm_clip if config.grad_norm_clip is not None else float("inf")
        norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        if not math.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return loss, norm
        self.optimizer.step()
        return loss, norm

    def train(self, stop_after: int | None = None) -> TrainResult:
        """Train up to ``config.iterations`` (or ``stop_after`` more, to split a run)."""
        with self._lock:
            if _stamp(checkpoint_path(self.run_dir)) != self._checkpoint_stamp:
                raise CheckpointError(
                    f"the checkpoint in {self.run_dir} changed after this run was loaded (another process "
                    "trained it); start again with --resume to continue from the newer checkpoint"
                )
            return self._train(stop_after)

    def _train(self, stop_after: int | None) -> TrainResult:
        config = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / CONFIG_NAME, config_to_yaml(config))
        log = MetricsLog(self.run_dir, start=self.iteration, tensorboard=self.tensorboard)
        end = config.iterations if stop_after is None else min(config.iterations, self.iteration + stop_after)
        bar = tqdm(total=config.iterations, initial=self.iteration, disable=not self.progress,
                   desc=self.run_dir.name, unit="it", dynamic_ncols=True)
        window: list[tuple[float, float]] = []
        last_loss = None
        window_start = time.perf_counter()
        interrupted = False
        try:
            while self.iteration < end:
                t0 = time.perf_counter()
                loss, norm = self.step()
                self.iteration += 1
                self.elapsed += time.perf_counter() - t0
                window.append((loss, norm))
                last_loss = loss
                bar.update(1)
                if self.iteration % config.log_every == 0 or self.iteration == end:
                    now = time.perf_counter()
                    done = [w for w in window if math.isfinite(w[0]) and math.isfinite(w[1])]
                    mean_loss = sum(w[0] for w in done) / len(done) if done else float("nan")
                    log.log({
                        "iteration": self.iteration,
                        "loss": mean_loss,
                        "grad_norm": sum(w[1] for w in done) / len(done) if done else float("nan"),
                        "skipped_steps": len(window) - len(done),
                        "seconds_per_iteration": (now - window_start) / len(window),
                        "elapsed_seconds": self.elapsed,
                    })
                    bar.set_postfix(loss=f"{mean_loss:.4f}")
                    window, window_start = [], now
                if self.iteration % config.checkpoint_every == 0 or self.iteration == end:
                    self.save()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            log.close()
        return TrainResult(self.run_dir, self.iteration, self.elapsed, last_loss, interrupted)


def _stamp(path: Path) -> tuple[int, int] | None:
    """(modification time, size) of ``path``, or None if it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size
