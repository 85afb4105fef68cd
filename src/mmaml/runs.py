"""Run folders as a library: load a trained run, evaluate it, compare runs, plot them.

The command line (:mod:`mmaml.cli`) and :mod:`mmaml.reproduction` both call these; what differs between
kinds of run comes from :mod:`mmaml.kinds`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from mmaml.engine.allocator import keep_freed_memory
from mmaml.engine.checkpoint import load_checkpoint
from mmaml.engine.config import RunConfig, task_signature
from mmaml.engine.device import resolve_device
from mmaml.engine.distributed import Distributed
from mmaml.engine.evaluation import write_evaluation
from mmaml.engine.run_dir import check_config_file, chosen_checkpoint, config_from_state
from mmaml.engine.saved_evaluation import check_same_tasks, load_saved_scores
from mmaml.engine.threads import configure_threads
from mmaml.engine.trainer import Trainer
from mmaml.errors import CheckpointError, ConfigError
from mmaml.kinds import build_algorithm, kind_of


def make_trainer(config: RunConfig, run_dir: Path, **options) -> Trainer:
    """A :class:`~mmaml.engine.trainer.Trainer` of ``config`` into ``run_dir``, handed the algorithm of the config's
    kind; ``options``: the trainer's (``resume``, ``progress``, ``tensorboard``, ``dist``)."""
    return Trainer(config, run_dir, algorithm=build_algorithm, **options)


def saved_run_config(state: dict, source: Path) -> RunConfig:
    """The validated config a checkpoint's ``state`` holds, of its own kind (one clear error otherwise)."""
    try:
        config_type = kind_of(state["config"].get("task", "regression")).config_type
    except (KeyError, AttributeError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {source} holds no valid config ({exc}); retrain") from None
    return config_from_state(state, source, config_type)


def load_run(run_dir: Path, device: str | None = None, checkpoint: str = "last") -> tuple[RunConfig, nn.Module, dict]:
    """``(config, model, state)``: the trained meta-learner of ``run_dir`` rebuilt from its ``last`` or ``best``
    (by validation) checkpoint, on ``device`` (default: the config's)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; train first with 'mmaml train PRESET --out {run_dir}'")
    path = chosen_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    config = saved_run_config(state, path)
    check_config_file(run_dir, config, path)
    model = kind_of(config).build_model(config)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError):
        raise CheckpointError(f"checkpoint {path} does not match its config's model; retrain") from None
    model.to(resolve_device(device or config.device))
    return config, model, state


def load(run_dir: Path | str, device: str | None = None):
    """The trained meta-learner of ``run_dir``, ready to :meth:`adapt <mmaml.GradientMetaLearner.adapt>` to new tasks.

    ``model.config`` is the run's config and ``model.iteration`` the checkpoint's
    iteration; the model is on ``device`` (default: the config's) in evaluation mode.
    A missing folder or a bad checkpoint raises :class:`mmaml.errors.CheckpointError`
    with one line saying what to do.
    """
    config, model, state = load_run(Path(run_dir), device)
    model.config = config
    model.iteration = int(state["iteration"])
    return model.eval()


def check_eval_flags(steps: int | None, output: Path | None) -> None:
    """The checks ``eval`` and ``compare`` share, made before any model is loaded."""
    if steps is not None and steps < 0:
        raise ConfigError(f"--steps must not be negative, got {steps}")
    if output is not None:
        output = Path(output)
        if output.is_dir():
            raise ConfigError(f"--output {output} is a folder; give a file name such as {output / 'eval.json'}")
        if not output.parent.is_dir():
            raise ConfigError(f"--output {output}: folder {output.parent} does not exist; create it first")


def evaluate_run(run_dir: Path, tasks: int | None = None, steps: int | None = None, seed: int | None = None,
                 output: Path | None = None, dist: Distributed | None = None, checkpoint: str = "last",
                 say: Callable[[str], None] | None = None) -> dict:
    """Evaluate a run on fresh test tasks and write ``output`` (default ``DIR/eval.json``, atomically).

    The per-task scores go beside it, in ``<output stem>_per_task.json``. ``checkpoint``: the run's
    ``last`` checkpoint or its ``best`` by validation (``best.pt``; default output ``DIR/eval_best.json``).
    Under torchrun the ranks share the tasks and rank 0 writes; a rank that takes no part gets ``{}``.
    ``say``, when given, receives the report ``mmaml eval`` prints (on the writing process).
    """
    check_eval_flags(steps, output)  # a given --output; the default lies in the run folder load_run checks
    default = "eval.json" if checkpoint == "last" else f"eval_{checkpoint}.json"
    output = Path(run_dir) / default if output is None else Path(output)
    config, model, state = load_run(run_dir, checkpoint=checkpoint)
    configure_threads(config, 1 if dist is None else dist.local_world)
    keep_freed_memory()
    kind = kind_of(config)
    num_tasks = tasks or config.eval_tasks
    steps = config.eval_inner_steps if steps is None else steps
    if kind.announces_evaluation and (dist is None or dist.is_main):
        print(f"mmaml: evaluating {run_dir} on {num_tasks} test goals, adapting each with {steps} inner steps",
              file=sys.stderr, flush=True)
    started = time.perf_counter()
    result = kind.evaluate(config, model, num_tasks, config.eval_seed if seed is None else seed, steps, dist)
    if result is None:
        return {}
    result["seconds"] = time.perf_counter() - started
    result["iterations"] = int(state["iteration"])
    result["checkpoint"] = checkpoint
    if dist is not None and not dist.is_main:
        result.pop("per_task")
        return result  # rank 0 writes
    result = write_evaluation(output, result)
    if say is not None:
        say(f"{result['num_tasks']} test tasks, {result['inner_steps']} inner steps, after {result['iterations']} "
            f"meta-iterations (mean ± 95% interval)\n" + kind.report(Path(run_dir).name or str(run_dir), result)
            + f"\nwrote {output}")
    return result


def compare_runs(runs: Sequence[Path], tasks: int | None = None, seed: int | None = None, steps: int | None = None,
                 output: Path | None = None, split: str = "test", saved: bool = False) -> dict[str, Any]:
    """Score several runs on the same fresh test tasks (or pair their ``saved`` evaluations); print each run's
    paired difference to the first, and write ``output`` if given."""
    if len(runs) < 2:
        raise ConfigError("compare needs at least two run folders: the reference first, then the others")
    if len({Path(r).resolve() for r in runs}) < len(runs):
        raise ConfigError("a run folder is given twice; name each run once")
    check_eval_flags(steps, output)
    if saved and (tasks is not None or seed is not None or steps is not None or split != "test"):
        raise ConfigError("--saved pairs the evaluations the runs already hold, with their tasks, seed and steps; "
                          "drop --tasks, --seed, --steps and --split, or drop --saved to evaluate again")
    loaded = [load_run(run) for run in runs]
    reference = task_signature(loaded[0][0])
    for run, (config, _, _) in zip(runs[1:], loaded[1:]):
        signature = task_signature(config)
        if signature != reference:
            key = next(k for k in signature if signature[k] != reference.get(k))
            raise ConfigError(f"{run} and {runs[0]} draw different tasks ({key}: {signature[key]!r} vs "
                              f"{reference[key]!r}); compare runs of one task distribution")
    scores = None
    if saved:
        scores = [load_saved_scores(run, state["iteration"]) for run, (_, _, state) in zip(runs, loaded)]
        check_same_tasks(runs, scores)
    kind = kind_of(loaded[0][0])
    if split != "test" and kind.no_splits:
        raise ConfigError(f"--split {split}: {kind.no_splits}")
    return kind.compare(runs, loaded, tasks, seed, steps, output, split, scores)


def plot_runs(run_dirs: Sequence[Path], out_dir: Path) -> list[Path]:
    """The figures of runs of one kind and task distribution in ``out_dir`` (regression: Figure 2; images: the
    t-SNE of MuMoMAML embeddings; RL: Figure 3's curves, trajectories and t-SNE)."""
    loaded = [load_run(d) for d in run_dirs]
    kinds = {config.task for config, _, _ in loaded}
    if len(kinds) > 1:
        raise ConfigError(f"cannot plot runs of different kinds together ({', '.join(sorted(kinds))}); "
                          "plot each kind on its own")
    return kind_of(loaded[0][0]).plot(list(run_dirs), loaded, Path(out_dir))
