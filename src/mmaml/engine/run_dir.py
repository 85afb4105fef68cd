"""A run folder: its resolved config, checkpoint, metrics and outputs."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from mmaml.engine.checkpoint import CHECKPOINT_NAME
from mmaml.engine.config import RESUMABLE_KEYS, RunConfig, saved_config
from mmaml.errors import CheckpointError, ConfigError

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


def config_to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def config_from_state(state: dict, source: Path, config_type: type[RunConfig]) -> RunConfig:
    """The validated ``config_type`` config a checkpoint's ``state`` holds (a key it lacks means what it meant
    then), or one clear :class:`CheckpointError`."""
    try:
        values = state["config"]
        if values.get("task", "regression") != config_type().task:
            raise ConfigError(f"it is a {values.get('task', 'regression')} run, not a {config_type().task} run")
        return saved_config(config_type, values).validate()
    except (KeyError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint {source} holds no valid config ({exc}); retrain") from None


def check_config_file(run_dir: Path, config: RunConfig, source: Path) -> None:
    """Refuse a checkpoint that belongs to another run than the folder's ``config.yaml`` describes."""
    written = Path(run_dir) / CONFIG_NAME
    if not written.is_file():
        return
    try:
        folder = saved_config(type(config), yaml.safe_load(written.read_text()) or {}).to_dict()
    except (ConfigError, yaml.YAMLError, AttributeError):
        raise CheckpointError(f"{written} is not a valid run config; restore it, or delete it to use the "
                              f"checkpoint's own config") from None
    differs = sorted(k for k, v in config.to_dict().items() if k not in RESUMABLE_KEYS and folder.get(k) != v)
    if differs:
        raise CheckpointError(f"{written} and checkpoint {source} disagree on {', '.join(differs)}: either "
                              f"{written.name} was edited (restore it, or delete it to use the checkpoint's own "
                              "config) or the checkpoint comes from another run (put it back in its own folder)")


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (model initialisation) and return the task generator."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
