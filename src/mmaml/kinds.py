"""The kinds of run (a config's ``task``) and what each is made of: the one place that switches on the kind.

A :class:`Kind` gives a kind's config type and the functions the rest of the library calls for it: build a
fresh model and its tasks, the training algorithm the :class:`~mmaml.engine.trainer.Trainer` is handed, the
test evaluation, its printed report, the paired comparison of runs, the figures and ``predict``. A new kind
of run is one more entry in :data:`KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from mmaml.data.registry import image_transforms
from mmaml.engine.config import RunConfig, apply_overrides, saved_config
from mmaml.engine.distributed import SINGLE, Distributed
from mmaml.engine.trainer import Algorithm
from mmaml.errors import ConfigError
from mmaml.plotting.rl_runs import plot_rl_runs
from mmaml.plotting.supervised_runs import plot_image_runs, plot_regression_runs
from mmaml.rl.algorithm import RLAlgorithm
from mmaml.rl.builder import build_policy_metalearner
from mmaml.rl.comparison import compare_rl, evaluate_rl_run, report_rl
from mmaml.rl.config import RLConfig
from mmaml.supervised.algorithm import SupervisedAlgorithm
from mmaml.supervised.builder import image_metalearner, image_tasks, regression_metalearner, regression_tasks
from mmaml.supervised.comparison import compare_supervised, evaluate_supervised_run, report_supervised
from mmaml.supervised.config import ClassificationConfig, RegressionConfig
from mmaml.supervised.predict import predict_image_files, predict_regression_files


@dataclass(frozen=True)
class Kind:
    """What a kind of run is made of.

    ``evaluate(config, model, num_tasks, seed, steps, dist)``: the test evaluation (``per_task`` included;
    ``None`` on a rank that does not take part); ``report(name, result)``: the lines ``mmaml eval`` prints;
    ``compare(runs, loaded, num_tasks, seed, steps, output, split, saved)``: paired scores of runs;
    ``plot(run_dirs, loaded, out_dir)``: figure paths; ``predict(config, model, state, support, query, steps,
    dataset)``: predictions as CSV text, or ``None`` where the kind does not predict from files.
    ``no_splits``: why ``--split`` does not apply, or ``None`` where the kind's tasks have splits.
    """

    name: str
    config_type: type[RunConfig]
    build_model: Callable[[Any], nn.Module]
    build_tasks: Callable[[Any, str], Any] | None
    algorithm: Callable[[Any, torch.device, torch.Generator, Distributed], Algorithm]
    evaluate: Callable[..., dict[str, Any] | None]
    report: Callable[[str, dict[str, Any]], str]
    compare: Callable[..., dict[str, Any]]
    plot: Callable[..., list[Path]]
    predict: Callable[..., str] | None
    no_splits: str | None
    announces_evaluation: bool = False  # slow evaluations say what they do first


def _supervised(name: str, config_type, build_model, build_tasks, metric: str, plot, predict, no_splits,
                checkpoint_extras=None) -> Kind:
    """A kind trained by :class:`SupervisedAlgorithm` on ``build_tasks``' tasks and scored by ``metric``."""
    return Kind(
        name=name, config_type=config_type, build_model=build_model, build_tasks=build_tasks,
        algorithm=lambda config, device, generator, dist: SupervisedAlgorithm(
            config, device, generator, dist, build_tasks(config, "train"), build_model(config), checkpoint_extras),
        evaluate=lambda config, model, num_tasks, seed, steps, dist: evaluate_supervised_run(
            config, model, build_tasks(config, "test"), metric, num_tasks, seed, steps, dist),
        report=report_supervised,
        compare=lambda runs, loaded, num_tasks, seed, steps, output, split, saved: compare_supervised(
            runs, loaded, lambda s: build_tasks(loaded[0][0], s), metric, num_tasks, seed, steps, output, split, saved),
        plot=lambda run_dirs, loaded, out_dir: plot(run_dirs, loaded, build_tasks(loaded[0][0], "test"), out_dir),
        predict=predict, no_splits=no_splits)


KINDS: dict[str, Kind] = {
    "regression": _supervised(
        "regression", RegressionConfig, regression_metalearner, regression_tasks, "mse", plot_regression_runs,
        predict_regression_files,
        "regression tasks are drawn fresh and have no class splits; use --split only for image runs"),
    "classification": _supervised(
        "classification", ClassificationConfig, image_metalearner, image_tasks, "accuracy", plot_image_runs,
        predict_image_files, None,
        checkpoint_extras=lambda config: {"image_transforms": image_transforms(config.datasets)}),
    "rl": Kind(
        name="rl", config_type=RLConfig, build_model=build_policy_metalearner, build_tasks=None,
        algorithm=RLAlgorithm, evaluate=evaluate_rl_run, report=report_rl,
        compare=lambda runs, loaded, num_tasks, seed, steps, output, split, saved: compare_rl(
            runs, loaded, num_tasks, seed, steps, output, saved),
        plot=plot_rl_runs, predict=None, no_splits="RL goals are drawn fresh and have no splits; drop --split",
        announces_evaluation=True),
}


def kind_of(config_or_task: RunConfig | str) -> Kind:
    """The :class:`Kind` of a config (or of a ``task`` name)."""
    task = config_or_task if isinstance(config_or_task, str) else config_or_task.task
    if task not in KINDS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(KINDS)}")
    return KINDS[task]


def config_types() -> dict[str, type[RunConfig]]:
    """Every kind's config type by its ``task`` name."""
    return {name: kind.config_type for name, kind in KINDS.items()}


def config_from_dict(values: Mapping[str, Any]) -> RunConfig:
    """The config of the right kind (by its ``task`` key, regression by default) with ``values`` set."""
    return apply_overrides(kind_of(values.get("task", "regression")).config_type(), values)


def saved_config_from_dict(values: Mapping[str, Any]) -> RunConfig:
    """A saved run's config (checkpoint or ``config.yaml``): a key it lacks means what it meant then."""
    return saved_config(kind_of(values.get("task", "regression")).config_type, values)


def build_model(config: RunConfig) -> nn.Module:
    """The freshly initialised meta-learner of ``config``."""
    return kind_of(config).build_model(config)


def build_tasks(config: RunConfig, split: str = "train"):
    """The task distribution of a supervised ``config`` (``split``'s classes for image runs)."""
    kind = kind_of(config)
    if kind.build_tasks is None:
        raise ConfigError(f"a {kind.name} run has no task distribution of its own")
    return kind.build_tasks(config, split)


def build_algorithm(config: RunConfig, device: torch.device, generator: torch.Generator,
                    dist: Distributed = SINGLE) -> Algorithm:
    """The training algorithm of ``config``'s kind (data-parallel over ``dist``'s ranks), for the trainer."""
    return kind_of(config).algorithm(config, device, generator, dist)
