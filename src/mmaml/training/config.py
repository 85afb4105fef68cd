"""Run configuration: one dataclass, validated, loadable from presets, YAML and ``key=value``."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from mmaml.core.modulation import MODULATION_KINDS
from mmaml.errors import ConfigError
from mmaml.tasks.regression import FAMILIES

METHODS = ("maml", "multi_maml", "mumomaml")


@dataclass
class RegressionConfig:
    """Everything that defines a multimodal regression run (paper defaults)."""

    # what is meta-learned
    method: str = "mumomaml"  # maml | multi_maml | mumomaml
    modulation: str = "film"  # film | sigmoid | softmax (mumomaml only)
    modulated_layers: list[int] = field(default_factory=lambda: [0])  # hidden layer indices
    # tasks
    modes: list[str] = field(default_factory=lambda: ["sinusoid", "linear"])
    num_support: int = 5
    num_query: int = 5
    noise_std: float = 0.3
    # learner
    hidden_sizes: list[int] = field(default_factory=lambda: [100, 100, 100])
    weight_init_std: float = 0.01
    bias_transformation: int = 0
    # task encoder
    encoder_cell: str = "lstm"  # lstm | gru
    encoder_hidden: int = 40
    encoder_layers: int = 2
    # inner loop
    inner_lr: float = 0.001
    inner_steps: int = 5
    eval_inner_steps: int = 5
    inner_grad_clip: typing.Optional[float] = 10.0
    first_order: bool = False
    # outer loop
    meta_batch_size: int = 50
    meta_lr: float = 0.001
    grad_norm_clip: typing.Optional[float] = 2.0
    iterations: int = 70000
    seed: int = 0
    # bookkeeping
    log_every: int = 100
    checkpoint_every: int = 1000
    eval_tasks: int = 2000
    eval_seed: int = 20190601
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "RegressionConfig":
        """Raise :class:`ConfigError` naming the first invalid value."""

        def bad(key: str, why: str) -> None:
            raise ConfigError(f"invalid {key}={getattr(self, key)!r}: {why}")

        if self.method not in METHODS:
            bad("method", f"choose one of {', '.join(METHODS)}")
        if self.modulation not in MODULATION_KINDS:
            bad("modulation", f"choose one of {', '.join(MODULATION_KINDS)}")
        unknown = [m for m in self.modes if m not in FAMILIES]
        if not self.modes or unknown:
            bad("modes", f"unknown mode(s) {unknown}; choose from {', '.join(FAMILIES)}")
        if len(set(self.modes)) != len(self.modes):
            bad("modes", "a mode is listed twice")
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            bad("hidden_sizes", "need at least one hidden layer, each of width >= 1")
        if self.method == "mumomaml":
            if not self.modulated_layers:
                bad("modulated_layers", "MuMoMAML needs at least one modulated hidden layer")
            out = [i for i in self.modulated_layers if not 0 <= i < len(self.hidden_sizes)]
            if out or len(set(self.modulated_layers)) != len(self.modulated_layers):
                bad("modulated_layers", f"each must be a distinct hidden-layer index in 0..{len(self.hidden_sizes) - 1}")
        if self.encoder_cell not in ("lstm", "gru"):
            bad("encoder_cell", "choose lstm or gru")
        for key in ("num_support", "num_query", "encoder_hidden", "encoder_layers", "meta_batch_size",
                    "iterations", "log_every", "checkpoint_every", "eval_tasks"):
            if getattr(self, key) < 1:
                bad(key, "must be at least 1")
        for key in ("inner_steps", "eval_inner_steps", "bias_transformation"):
            if getattr(self, key) < 0:
                bad(key, "must not be negative")
        for key in ("inner_lr", "meta_lr", "weight_init_std"):
            if not getattr(self, key) > 0:
                bad(key, "must be positive")
        if self.noise_std < 0:
            bad("noise_std", "must not be negative")
        for key in ("inner_grad_clip", "grad_norm_clip"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                bad(key, "must be positive, or null to disable")
        if self.meta_batch_size % len(self.modes):
            bad("meta_batch_size", f"must be a multiple of the number of modes ({len(self.modes)}) "
                "so that every meta-batch holds as many tasks of each mode")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            bad("device", "use auto, cpu, cuda or cuda:N")
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(RegressionConfig)}
_HINTS = typing.get_type_hints(RegressionConfig)


def _coerce(key: str, value: Any) -> Any:
    """Check ``value`` against the type of field ``key``; ints widen to floats."""
    hint = _HINTS[key]
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    if optional:
        if value is None:
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and item is not str:
            value = [value]
        if isinstance(value, str) and item is str:
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list of {item.__name__}, got {value!r}")
        return [_coerce_scalar(key, v, item) for v in value]
    return _coerce_scalar(key, value, hint)


def _coerce_scalar(key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):
        try:  # YAML 1.1 reads '1e-4' as a string
            return float(value)
        except ValueError:
            pass
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[kind]
        raise ConfigError(f"{key} must be {expected}, got {value!r}")
    return value


def apply_overrides(config: RegressionConfig, values: Mapping[str, Any]) -> RegressionConfig:
    """A copy of ``config`` with ``values`` set, each checked against its field's type."""
    changes = {}
    for key, value in values.items():
        if key not in _FIELDS:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(_FIELDS)}")
        changes[key] = _coerce(key, value)
    return dataclasses.replace(config, **changes)


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)``; the value is read as YAML (``0.01``, ``[0,1]``, ``null``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a mapping (the keys are checked when applied)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}; fix its syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value, got a {type(data).__name__}")
    return data
