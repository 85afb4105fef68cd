"""One meta-RL training iteration, in the form the :class:`~mmaml.engine.trainer.Trainer` runs.

Each iteration draws a meta-batch of goals (as many per mode), samples the
adaptation protocol for all of them at once, and takes one outer step: MAML-TRPO
(``outer_optimizer: trpo``, the seed paper's) or a few Adam epochs on the clipped
surrogate (``ppo``, the outer loop of the authors' code; :mod:`mmaml.rl.maml_ppo`).
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from mmaml.engine.distributed import SINGLE, iteration_generator
from mmaml.rl.builder import build_env, build_policy_metalearner
from mmaml.rl.config import RLConfig
from mmaml.rl.envs.registry import make_goals
from mmaml.rl.evaluation import per_task_returns
from mmaml.rl.maml_ppo import PPOSettings, ppo_step
from mmaml.rl.maml_trpo import TRPOSettings, OuterStepStats, trpo_step
from mmaml.rl.metalearner import Rollouts, rollout_adaptation
from mmaml.rl.task_generators import TaskGenerators


class RLAlgorithm:
    """MAML (``method: maml``) or MuMoMAML (``method: mumomaml``) on ``config.env``, TRPO or PPO outer loop.

    Logged per iteration: the meta-batch's average return after 0, 1, ...
    ``inner_steps`` inner steps (step 0 is the modulated policy for MuMoMAML),
    the surrogate before and after the outer step, its KL, TRPO's line-search
    ``backtracks`` (PPO and ProMP: ``skipped_epochs``, the epochs not taken),
    whether the step was rejected, and the seconds spent sampling, adapting and in
    the outer step (``outer_seconds``).
    """

    def __init__(self, config: RLConfig, device: torch.device, generator: torch.Generator, dist=None):
        self.config = config
        self.device = device
        self.generator = generator
        self.dist = SINGLE if dist is None else dist
        if self.dist.active:
            self.dist.shard(config.meta_batch_size)  # refuse a meta-batch that does not divide now, not mid-run
        self.iteration = 0  # iterations done before the next step (the trainer keeps it current)
        self.env = build_env(config)
        self.goals = make_goals(config.env)
        self.model = build_policy_metalearner(config, self.env).to(device)
        self.settings = TRPOSettings.of(config)
        self.divergence_hint = ("lower inner_lr (or ppo_lr)" if config.outer_optimizer in ("ppo", "promp")
                                else "lower inner_lr (or max_kl)")
        self.trpo = trpo_step  # benchmarks/bench_rl.py --reference swaps in the reference step beside it
        self.optimizer = None
        if config.outer_optimizer in ("ppo", "promp"):
            self.ppo = PPOSettings.of(config)
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.ppo_lr)
        steps = [f"return_step{k}" for k in range(config.inner_steps + 1)]
        self.validation_steps = max(config.eval_inner_steps, config.inner_steps)
        self.validation_columns = (tuple(f"val_return_step{k}" for k in range(self.validation_steps + 1))
                                   if config.validate_every else ())
        self.step_column = "skipped_epochs" if self.optimizer is not None else "backtracks"
        self.columns = (*steps, "surrogate_before", "surrogate_after", "kl", self.step_column, "rejected_steps",
                        "sample_seconds", "adapt_seconds", "outer_seconds", *self.validation_columns)
        # columns that runs saved by earlier versions logged under another name (their rows carry over on resume)
        self.renamed_columns = {"outer_seconds": "trpo_seconds",
                                **({"skipped_epochs": "backtracks"} if self.optimizer is not None else {})}

    def step(self) -> dict[str, float]:
        timings: dict[str, float] = {"sample": 0.0, "adapt": 0.0}
        rollouts, mine = self.sample(timings)
        started = time.perf_counter()
        stats = self.outer_step(rollouts, mine)
        returns = self.dist.average_(rollouts.returns_by_step().mean(1).double())
        row = {f"return_step{k}": float(r) for k, r in enumerate(returns)}
        row.update(surrogate_before=stats.loss_before, surrogate_after=stats.loss_after, kl=stats.kl,
                   rejected_steps=float(not stats.accepted),
                   sample_seconds=timings["sample"], adapt_seconds=timings["adapt"],
                   outer_seconds=time.perf_counter() - started, nonfinite=not stats.finite)
        row[self.step_column] = float(stats.skipped_epochs if self.optimizer is not None else stats.backtracks)
        if self.config.validate_every and (self.iteration + 1) % self.config.validate_every == 0:
            scores = self.validate()
            row.update({f"val_return_step{k}": float(r) for k, r in enumerate(scores)})
            row["selection_score"] = float(scores[self.config.inner_steps])  # the trainer keeps best.pt by it
        return row

    def validate(self) -> Tensor:
        """``[S + 1]``: the average return on the validation goals after 0..S inner steps.

        The goals and their episodes come from ``validation_seed`` alone (the same every time), never
        from the training stream or the test goals, and drawing them leaves the training's generators as
        they were.
        """
        returns, _ = per_task_returns(self.model, self.config, self.env, self.goals, self.config.validation_tasks,
                                      self.config.validation_seed, self.validation_steps, self.dist)
        return returns.double().mean(1)

    def sample(self, timings: dict[str, float] | None = None) -> tuple[Rollouts, slice]:
        """This iteration's goals and the adaptation protocol sampled for them: ``(rollouts, mine)``.

        ``mine``: which tasks of the meta-batch these are (a distributed rank's share).
        """
        config, dist, total = self.config, self.dist, self.config.meta_batch_size
        generator = self.generator
        mine = slice(0, total)
        if config.task_rng == "per_iteration":  # layout-independent: goals of (seed, iteration), each task's episodes
            # from its own generator
            goals, mode = self.goals.sample(total, iteration_generator(config.seed, self.iteration))
            mine = dist.shard(total) if dist.active else mine
            goals, mode = goals[mine], mode[mine]
            generator = TaskGenerators.for_tasks(config.seed, self.iteration, range(mine.start, mine.stop))
        else:
            goals, mode = self.goals.sample(total, generator)
        rollouts = rollout_adaptation(
            self.model, self.env, goals.to(self.device), mode, config.episodes_per_task, config.inner_steps,
            generator, config.encoder_episodes, config.discount, config.gae_lambda, timings)
        return rollouts, mine

    def outer_step(self, rollouts: Rollouts, mine: slice) -> OuterStepStats:
        """The outer loop's update of the meta-parameters from ``rollouts`` (TRPO, or PPO's epochs)."""
        if self.optimizer is not None:
            return ppo_step(self.model, rollouts, self.ppo, self.optimizer, self.dist)
        return self.trpo(self.model, rollouts, self.settings, self.dist, mine.start, self.config.meta_batch_size)

    def summarize(self, window: list[dict[str, float]]) -> dict[str, float]:
        """Means over the logging window; ``rejected_steps`` is a count."""
        out = {}
        for key in self.columns:
            values = [w[key] for w in window if key in w and math.isfinite(w[key])]
            if key in self.validation_columns:
                if values:  # a window without validation leaves the column empty
                    out[key] = sum(values) / len(values)
            elif key == "rejected_steps":
                out[key] = int(sum(w[key] for w in window))
            else:
                out[key] = sum(values) / len(values) if values else float("nan")
        return out

    def progress(self, summary: dict[str, float]) -> dict[str, str]:
        last = f"return_step{self.config.inner_steps}"
        return {"R0": f"{summary['return_step0']:.1f}", f"R{self.config.inner_steps}": f"{summary[last]:.1f}"}

    def state_dict(self) -> dict:
        """PPO's Adam state (TRPO keeps none)."""
        return {} if self.optimizer is None else {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
