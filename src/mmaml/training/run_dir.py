"""A run folder: its resolved config, checkpoint, metrics and outputs."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from mmaml.errors import CheckpointError, ConfigError
from mmaml.metalearners import GradientMetaLearner
from mmaml.training.builder import build_metalearner, resolve_device
from mmaml.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from mmaml.training.config import RESUMABLE_KEYS, BaseConfig, saved_config_from_dict

CONFIG_NAME = "config.yaml"
BEST_NAME = "best.pt"


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_NAME


def best_checkpoint_path(run_dir: Path) -> Path:
    """``best.pt``: the checkpoint with the best validation score (meta-RL runs with ``validate_every``)."""
    return Path(run_dir) / BEST_NAME


CHECKPOINTS = ("last", "best")


def chosen_checkpoint(run_dir: Path, which: str = "last") -> Path:
    """The path of the run's ``last`` (``checkpoint.pt``) or ``best`` (``best.pt``) checkpoint."""
    if which not in CHECKPOINTS:
        raise ConfigError(f"unknown checkpoint {which!r}; choose last or best")
    if which == "last":
        return checkpoint_path(run_dir)
    path = best_checkpoint_path(run_dir)
    if not path.exists() and checkpoint_path(run_dir).exists():
        raise CheckpointError(f"{run_dir} has no {BEST_NAME}: it was not validated yet (validate_every 0, or fewer "
                              "iterations than it); use --checkpoint last")
    return path


def config_to_yaml(config: BaseConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def config_from_state(state: dict, source: Path) -> BaseConfig:
    try:
        return saved_config_from_dict(state["config"]).validate()
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {source} holds no valid config ({exc}); retrain") from None


def check_config_file(run_dir: Path, config: BaseConfig, source: Path) -> None:
    """Refuse a checkpoint that belongs to another run than the folder's ``config.yaml`` describes."""
    written = Path(run_dir) / CONFIG_NAME
    if not written.is_file():
        return
    try:
        folder = saved_config_from_dict(yaml.safe_load(written.read_text()) or {}).to_dict()
    except (ConfigError, yaml.YAMLError, AttributeError):
        raise CheckpointError(f"{written} is not a valid run config; restore it, or delete it to use the "
                              f"checkpoint's own config") from None
    differs = sorted(k for k, v in config.to_dict().items() if k not in RESUMABLE_KEYS and folder.get(k) != v)
    if differs:
        raise CheckpointError(f"{written} and checkpoint {source} disagree on {', '.join(differs)}: either "
                              f"{written.name} was edited (restore it, or delete it to use the checkpoint's own "
                              "config) or the checkpoint comes from another run (put it back in its own folder)")


def load_run(run_dir: Path, device: str | None = None,
             checkpoint: str = "last") -> tuple[BaseConfig, GradientMetaLearner, dict]:
    """Rebuild the trained meta-learner of ``run_dir`` (on ``device`` or the config's) from its ``last`` or
    ``best`` (by validation) checkpoint."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; train first with 'mmaml train PRESET --out {run_dir}'")
    path = chosen_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    config = config_from_state(state, path)
    check_config_file(run_dir, config, path)
    model = build_metalearner(config)
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


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (model initialisation) and return the task generator."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
