"""Per-task scores from a run's saved evaluation, for paired comparisons without evaluating again.

``mmaml eval DIR`` writes ``DIR/eval.json`` (summary) and ``DIR/eval_per_task.json``
(every test task's score, in task order, with its mode). Two runs evaluated on the
same tasks (the same task distribution, evaluation seed, number of tasks and inner
steps) can then be paired task by task from those files in a moment, where
``mmaml compare`` without ``--saved`` spends the evaluation again (minutes for 400
half-cheetah goals).

A saved evaluation is used only if it belongs to the checkpoint now in the folder
(the same meta-iteration); anything else is refused with one line naming the run and
what to do.

Example::

    saved = [load_saved_scores(d, state["iteration"]) for d, state in runs]
    check_same_tasks(dirs, saved)
    saved[1].scores[-1] - saved[0].scores[-1]      # [num_tasks] per-task differences at the last step
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from mmaml.errors import ConfigError


@dataclass(frozen=True)
class SavedScores:
    """One run's saved per-task scores.

    ``scores``: RL runs, one ``[num_tasks]`` tensor of returns per step (``inner_steps + 1``);
    regression and image runs, one ``[num_tasks]`` tensor, the post-adaptation MSE or
    accuracy. ``mode``: ``[num_tasks]`` mode indices; ``modes``: their names.
    """

    num_tasks: int
    seed: int
    inner_steps: int
    metric: str
    modes: list[str]
    mode: Tensor
    scores: list[Tensor]


def load_saved_scores(run_dir: Path, iteration: int) -> SavedScores:
    """The per-task scores ``mmaml eval`` saved in ``run_dir``, if they are of the checkpoint at ``iteration``."""
    run_dir = Path(run_dir)
    summary_path, per_task_path = run_dir / "eval.json", run_dir / "eval_per_task.json"
    if not (summary_path.exists() and per_task_path.exists()):
        raise ConfigError(f"{run_dir} has no saved evaluation (eval.json and eval_per_task.json); "
                          f"run 'mmaml eval {run_dir}' first, or drop --saved")
    try:
        summary = json.loads(summary_path.read_text())
        per_task = json.loads(per_task_path.read_text())
        evaluated = int(summary["iterations"])
        metric = str(summary.get("metric", "mse"))
        modes = [str(m) for m in summary["modes"]]
        mode = torch.tensor(per_task["mode"], dtype=torch.long)
        if "returns_by_step" in per_task:
            scores = [torch.tensor(r, dtype=torch.float64) for r in per_task["returns_by_step"]]
        else:
            scores = [torch.tensor(per_task["post_adaptation"], dtype=torch.float64)]
        num_tasks, seed, steps = int(per_task["num_tasks"]), int(per_task["seed"]), int(per_task["inner_steps"])
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{run_dir}'s saved evaluation is not readable ({type(err).__name__}: {err}); "
                          f"run 'mmaml eval {run_dir}' again") from None
    if evaluated != int(iteration):
        raise ConfigError(f"{run_dir}'s saved evaluation is of meta-iteration {evaluated:,} but its checkpoint is at "
                          f"{int(iteration):,}; run 'mmaml eval {run_dir}' again, or drop --saved")
    if any(s.shape != (num_tasks,) for s in scores) or mode.shape != (num_tasks,):
        raise ConfigError(f"{run_dir}'s saved evaluation does not hold {num_tasks} scores per step; "
                          f"run 'mmaml eval {run_dir}' again")
    return SavedScores(num_tasks, seed, steps, metric, modes, mode, scores)


def same_tasks(a: dict, b: dict) -> bool:
    """Whether two ``eval_per_task.json`` contents scored the same tasks: same seed, number of tasks and modes."""
    return (a["seed"], a["num_tasks"], a["mode"]) == (b["seed"], b["num_tasks"], b["mode"])


def check_same_tasks(run_dirs: Sequence[Path], saved: Sequence[SavedScores]) -> None:
    """Refuse to pair saved evaluations that were not made on the same tasks, naming the first difference."""
    reference = saved[0]
    for run_dir, other in zip(run_dirs[1:], saved[1:]):
        for what, a, b in (("evaluation seed", reference.seed, other.seed),
                           ("test tasks", reference.num_tasks, other.num_tasks),
                           ("inner steps", reference.inner_steps, other.inner_steps),
                           ("metric", reference.metric, other.metric)):
            if a != b:
                raise ConfigError(f"{run_dir} and {run_dirs[0]} were evaluated differently ({what}: {b} vs {a}); "
                                  "evaluate both with the same --tasks, --seed and --steps, or drop --saved")
        if not torch.equal(reference.mode, other.mode):
            raise ConfigError(f"{run_dir} and {run_dirs[0]} were evaluated on different tasks (their modes differ); "
                              "evaluate both again with the same --tasks and --seed, or drop --saved")
