"""What every run config has (:class:`RunConfig`), and how configs are read: presets, YAML and ``key=value``.

Each kind of run subclasses :class:`RunConfig` (:mod:`mmaml.supervised.config`, :mod:`mmaml.rl.config`);
:mod:`mmaml.kinds` maps a ``task`` name to its class.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from mmaml.errors import ConfigError

# Settings that do not change what is computed, so a resumed run may change them.
RESUMABLE_KEYS = frozenset({"iterations", "device", "log_every", "checkpoint_every", "eval_tasks",
                            "max_nonfinite_steps", "threads", "sim_threads"})

# a positive number or "auto" (see mmaml.engine.threads)
IntOrAuto = typing.Union[int, str]


@dataclass
class RunConfig:
    """What every training run has, whatever it learns: its method, length, seeds and bookkeeping."""

    task: str = "regression"
    method: str = "mumomaml"
    iterations: int = 70000
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 1000
    eval_tasks: int = 2000
    eval_seed: int = 20190601
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    max_nonfinite_steps: int = 10  # consecutive non-finite meta-batches after which training stops
    # stream: one task generator for the whole run, its state in the checkpoint; per_iteration: each
    # meta-batch from a generator of (seed, iteration) alone, so any number of processes draws the same
    # tasks (needed by distributed runs)
    task_rng: str = "stream"
    # torch's CPU threads: auto (OMP_NUM_THREADS when set, else the measured default of the run's family) or N
    threads: IntOrAuto = "auto"
    # the meta-learner, whatever it learns (each kind sets its own defaults): MuMoMAML's modulation (one of the
    # kind's MODULATIONS) and its heads' initialisation (default | zero), the inner loop, the meta-batch
    modulation: str = "film"
    modulation_init: str = "default"
    inner_lr: float = 0.001
    inner_steps: int = 5
    eval_inner_steps: int = 5
    first_order: bool = False
    meta_batch_size: int = 50

    METHODS: typing.ClassVar[tuple[str, ...]] = ()  # the methods a kind of run offers (each subclass's own)
    TASK_KEYS: typing.ClassVar[tuple[str, ...]] = ()  # the settings that decide which test tasks a run draws
    MODULATIONS: typing.ClassVar[tuple[str, ...]] = ()  # the modulation kinds a kind of run offers
    # the preset family whose measured thread default applies (mmaml.engine.threads.FAMILY_THREADS)
    THREAD_FAMILY: typing.ClassVar[str] = "regression"

    @property
    def mode_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def thread_family(self) -> str:
        return self.THREAD_FAMILY

    @property
    def modes_description(self) -> str:
        """What the modes are called in messages."""
        return "the number of modes"

    def check_int_or_auto(self, key: str) -> None:
        value = getattr(self, key)
        if value != "auto" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            self.bad(key, "use auto or a positive number")

    def check_layer_indices(self, key: str, count: int, what: str, null_means: str) -> None:
        """``key`` is null or a non-empty list of distinct indices in ``0..count - 1`` (of ``what``)."""
        layers = getattr(self, key)
        if layers is not None and (not layers or len(set(layers)) != len(layers)
                                   or any(not 0 <= i < count for i in layers)):
            self.bad(key, f"give distinct {what} indices in 0..{count - 1}, or null for {null_means}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def bad(self, key: str, why: str) -> None:
        raise ConfigError(f"invalid {key}={getattr(self, key)!r}: {why}")

    def validate(self) -> "RunConfig":
        """Raise :class:`ConfigError` naming the first invalid value."""
        bad = self.bad
        for f in dataclasses.fields(self):  # no setting is meant to be infinite or NaN
            value = getattr(self, f.name)
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                optional = "null" in str(f.type) or "Optional" in str(f.type)
                bad(f.name, "must be a finite number" + (", or null for none" if optional else ""))
        if self.method not in self.METHODS:
            bad("method", f"choose one of {', '.join(self.METHODS)}")
        for key in ("iterations", "log_every", "checkpoint_every", "eval_tasks", "max_nonfinite_steps"):
            if getattr(self, key) < 1:
                bad(key, "must be at least 1")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            bad("device", "use auto, cpu, cuda or cuda:N")
        if self.task_rng not in ("stream", "per_iteration"):
            bad("task_rng", "choose stream or per_iteration")
        self.check_int_or_auto("threads")
        if self.seed == self.eval_seed:
            bad("seed", "equals eval_seed, so training would start on the test tasks; choose another seed or eval_seed")
        if self.modulation not in self.MODULATIONS:
            bad("modulation", f"choose one of {', '.join(self.MODULATIONS)}")
        if self.modulation_init not in ("default", "zero"):
            bad("modulation_init", "choose default or zero")
        if self.meta_batch_size < 1:
            bad("meta_batch_size", "must be at least 1")
        for key in ("inner_steps", "eval_inner_steps"):
            if getattr(self, key) < 0:
                bad(key, "must not be negative")
        if not self.inner_lr > 0:
            bad("inner_lr", "must be positive")
        modes = self.mode_names
        if self.meta_batch_size % len(modes):
            bad("meta_batch_size", f"must be a multiple of {self.modes_description} ({len(modes)}) "
                "so that every meta-batch holds as many tasks of each mode")
        return self


# keys added after runs were saved without them, and the value those runs used (what a saved
# config lacking the key means); presets and new runs get the field's default
SAVED_RUN_DEFAULTS = {"grad_clip_groups": "joint", "task_rng": "stream", "normalize_actions": False,
                      "validate_every": 0}


def saved_config(config_type: type[RunConfig], values: Mapping[str, Any]) -> RunConfig:
    """A saved run's config (checkpoint or ``config.yaml``) of ``config_type``: a key it lacks means what it
    meant then (:data:`SAVED_RUN_DEFAULTS`)."""
    names = {f.name for f in dataclasses.fields(config_type)}
    legacy = {k: v for k, v in SAVED_RUN_DEFAULTS.items() if k in names and k not in values}
    return apply_overrides(config_type(), {**values, **legacy})


def _coerce(kind: type, key: str, value: Any) -> Any:
    """Check ``value`` against the type of field ``key`` of ``kind``; ints widen to floats."""
    hint = typing.get_type_hints(kind)[key]
    if hint == IntOrAuto:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{key} must be auto or a positive number, got {value!r}")
        return value
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


def config_differences(config: RunConfig, other: RunConfig) -> list[str]:
    """The keys, other than :data:`RESUMABLE_KEYS`, whose values differ between two configs (sorted)."""
    mine, theirs = config.to_dict(), other.to_dict()
    return sorted(k for k in mine.keys() | theirs.keys()
                  if k not in RESUMABLE_KEYS and mine.get(k) != theirs.get(k))


def task_signature(config: RunConfig) -> dict[str, Any]:
    """The config values that decide which test tasks a run is evaluated on (its kind's ``TASK_KEYS``)."""
    return {"task": config.task, **{k: getattr(config, k) for k in config.TASK_KEYS}}


def apply_overrides(config: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """A copy of ``config`` with ``values`` set, each checked against its field's type."""
    kind = type(config)
    fields = [f.name for f in dataclasses.fields(kind)]
    changes = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(fields)}")
        changes[key] = _coerce(kind, key, value)
    if changes.get("task", config.task) != config.task:
        raise ConfigError(f"cannot change task from {config.task} to {changes['task']}; start from a {changes['task']} preset")
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
