"""Run configuration: dataclasses per task kind, validated, loadable from presets, YAML and ``key=value``."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from mmaml.core.modulation import MODULATION_KINDS
from mmaml.errors import ConfigError
from mmaml.tasks.regression import FAMILIES

METHODS = ("maml", "multi_maml", "mumomaml")

# Settings that do not change what is computed, so a resumed run may change them.
RESUMABLE_KEYS = frozenset({"iterations", "device", "log_every", "checkpoint_every", "eval_tasks",
                            "max_nonfinite_steps", "threads", "sim_threads"})

# a positive number or "auto" (see mmaml.training.threads)
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

    METHODS: typing.ClassVar[tuple[str, ...]] = METHODS
    # the preset family whose measured thread default applies (mmaml.training.threads.FAMILY_THREADS)
    THREAD_FAMILY: typing.ClassVar[str] = "regression"

    @property
    def mode_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def thread_family(self) -> str:
        return self.THREAD_FAMILY

    def check_int_or_auto(self, key: str) -> None:
        value = getattr(self, key)
        if value != "auto" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            self.bad(key, "use auto or a positive number")

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
        return self


@dataclass
class BaseConfig(RunConfig):
    """Settings every supervised meta-learning run has (meta-learner, inner and outer loop)."""

    modulation: str = "film"  # film | sigmoid | softmax | scale (mumomaml only)
    modulation_init: str = "default"  # default | zero: initial modulation heads (mumomaml only)
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
    # joint: one norm over all meta-gradients; per_group: the learner's and the task encoder + modulation
    # network's each clipped to grad_norm_clip, as the authors' code does. Joint is the default: measured
    # at 10,000 iterations, per_group tied after adaptation and was worse after modulation (docs/results.md)
    grad_clip_groups: str = "joint"

    def validate(self) -> "BaseConfig":
        """Raise :class:`ConfigError` naming the first invalid value."""
        super().validate()
        bad = self.bad
        if self.modulation not in MODULATION_KINDS:
            bad("modulation", f"choose one of {', '.join(MODULATION_KINDS)}")
        if self.modulation_init not in ("default", "zero"):
            bad("modulation_init", "choose default or zero")
        if self.grad_clip_groups not in GRAD_CLIP_GROUPS:
            bad("grad_clip_groups", f"choose one of {', '.join(GRAD_CLIP_GROUPS)}")
        if self.meta_batch_size < 1:
            bad("meta_batch_size", "must be at least 1")
        for key in ("inner_steps", "eval_inner_steps"):
            if getattr(self, key) < 0:
                bad(key, "must not be negative")
        for key in ("inner_lr", "meta_lr"):
            if not getattr(self, key) > 0:
                bad(key, "must be positive")
        for key in ("inner_grad_clip", "grad_norm_clip"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                bad(key, "must be positive, or null to disable")
        modes = self.mode_names
        if len(set(modes)) != len(modes):
            bad("modes" if hasattr(self, "modes") else "datasets", "a mode is listed twice")
        if self.meta_batch_size % len(modes):
            bad("meta_batch_size", f"must be a multiple of the number of modes ({len(modes)}) "
                "so that every meta-batch holds as many tasks of each mode")
        return self


@dataclass
class RegressionConfig(BaseConfig):
    """A multimodal regression run (paper defaults, Section 3.1)."""

    task: str = "regression"
    # hidden layers MuMoMAML modulates; None: the paper's choice for the mode count
    # (the first layer with 2 modes, all with more; see modulated_hidden_layers)
    modulated_layers: typing.Optional[list[int]] = None
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

    @property
    def mode_names(self) -> list[str]:
        return list(self.modes)

    @property
    def modulated_hidden_layers(self) -> list[int]:
        """``modulated_layers``, or the authors' choice: the first hidden layer with 2 modes, all with more."""
        if self.modulated_layers is not None:
            return list(self.modulated_layers)
        return [0] if len(self.modes) <= 2 else list(range(len(self.hidden_sizes)))

    def validate(self) -> "RegressionConfig":
        bad = self.bad
        if self.task != "regression":
            bad("task", "a regression config has task: regression")
        unknown = [m for m in self.modes if m not in FAMILIES]
        if not self.modes or unknown:
            bad("modes", f"unknown mode(s) {unknown}; choose from {', '.join(FAMILIES)}")
        super().validate()
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            bad("hidden_sizes", "need at least one hidden layer, each of width >= 1")
        if self.method == "mumomaml" and self.modulated_layers is not None:
            if not self.modulated_layers:
                bad("modulated_layers", "MuMoMAML needs at least one modulated hidden layer (or null for the default)")
            out = [i for i in self.modulated_layers if not 0 <= i < len(self.hidden_sizes)]
            if out or len(set(self.modulated_layers)) != len(self.modulated_layers):
                bad("modulated_layers", f"each must be a distinct hidden-layer index in 0..{len(self.hidden_sizes) - 1}")
        if self.encoder_cell not in ("lstm", "gru"):
            bad("encoder_cell", "choose lstm or gru")
        for key in ("num_support", "num_query", "encoder_hidden", "encoder_layers"):
            if getattr(self, key) < 1:
                bad(key, "must be at least 1")
        if self.bias_transformation < 0:
            bad("bias_transformation", "must not be negative")
        if not self.weight_init_std > 0:
            bad("weight_init_std", "must be positive")
        if self.noise_std < 0:
            bad("noise_std", "must not be negative")
        return self


DATASETS = ("omniglot", "mini_imagenet", "tiny_imagenet", "fc100", "cub", "aircraft", "double_fashion_mnist")


@dataclass
class ClassificationConfig(BaseConfig):
    """A multimodal few-shot image classification run (paper defaults, Appendix B)."""

    task: str = "classification"
    THREAD_FAMILY: typing.ClassVar[str] = "images"
    datasets: list[str] = field(default_factory=lambda: ["omniglot", "mini_imagenet"])
    num_ways: int = 5
    num_shots: int = 1
    num_query: int = 15
    image_size: int = 84
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    embedding_dim: int = 128
    modulated_layers: typing.Optional[list[int]] = None  # conv blocks modulated by MuMoMAML (None: all, as the paper)
    inner_lr: float = 0.05
    inner_grad_clip: typing.Optional[float] = 20.0
    meta_batch_size: int = 10
    grad_norm_clip: typing.Optional[float] = None
    iterations: int = 60000
    eval_tasks: int = 1000
    images_per_class: typing.Optional[int] = None  # cap per class (None: all)
    data_dir: typing.Optional[str] = None  # default: $MMAML_DATA
    cache_dir: typing.Optional[str] = None  # default: $MMAML_CACHE

    @property
    def mode_names(self) -> list[str]:
        return list(self.datasets)

    def validate(self) -> "ClassificationConfig":
        bad = self.bad
        if self.task != "classification":
            bad("task", "a classification config has task: classification")
        unknown = [d for d in self.datasets if d not in DATASETS]
        if not self.datasets or unknown:
            bad("datasets", f"unknown data set(s) {unknown}; choose from {', '.join(DATASETS)}")
        super().validate()
        for key in ("num_ways", "num_shots", "num_query", "embedding_dim"):
            if getattr(self, key) < 1:
                bad(key, "must be at least 1")
        if self.num_ways < 2:
            bad("num_ways", "a classification task needs at least 2 ways")
        if self.image_size < 8:
            bad("image_size", "must be at least 8 pixels")
        if not self.channels or any(c < 1 for c in self.channels):
            bad("channels", "need at least one conv layer, each with >= 1 channel")
        if self.modulated_layers is not None:
            layers = self.modulated_layers
            if not layers or len(set(layers)) != len(layers) or any(not 0 <= i < len(self.channels) for i in layers):
                bad("modulated_layers", f"give distinct conv-block indices in 0..{len(self.channels) - 1}, or null for all")
        if self.images_per_class is not None and self.images_per_class < self.num_shots + self.num_query:
            bad("images_per_class", "must leave room for num_shots + num_query images per class")
        return self


CONFIG_TYPES: dict[str, type[RunConfig]] = {"regression": RegressionConfig, "classification": ClassificationConfig}


def config_types() -> dict[str, type[RunConfig]]:
    """Every kind of run config by its ``task`` name (the RL config lives in :mod:`mmaml.rl.config`)."""
    from mmaml.rl.config import RLConfig

    return {**CONFIG_TYPES, "rl": RLConfig}


GRAD_CLIP_GROUPS = ("per_group", "joint")
# keys added after runs were saved without them, and the value those runs used (what a saved
# config lacking the key means); presets and new runs get the field's default
SAVED_RUN_DEFAULTS = {"grad_clip_groups": "joint", "task_rng": "stream", "normalize_actions": False,
                      "validate_every": 0}


def saved_config_from_dict(values: Mapping[str, Any]) -> RunConfig:
    """The config of a saved run (checkpoint or ``config.yaml``): a key it lacks means what it meant then."""
    kind = config_types().get(values.get("task", "regression"))
    names = {f.name for f in dataclasses.fields(kind)} if kind is not None else set()
    legacy = {k: v for k, v in SAVED_RUN_DEFAULTS.items() if k in names and k not in values}
    return config_from_dict({**values, **legacy})


def config_from_dict(values: Mapping[str, Any]) -> RunConfig:
    """The config of the right kind (by its ``task`` key, regression by default) with ``values`` set."""
    task = values.get("task", "regression")
    types = config_types()
    if task not in types:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(types)}")
    return apply_overrides(types[task](), values)


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
