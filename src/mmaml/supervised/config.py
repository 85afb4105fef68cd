"""The supervised run configs: multimodal regression and few-shot image classification."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from mmaml.core.modulation import MODULATION_KINDS
from mmaml.engine.config import RunConfig
from mmaml.tasks.regression import FAMILIES

METHODS = ("maml", "multi_maml", "mumomaml")
# joint: one norm over all meta-gradients; per_group: the learner's and the task encoder + modulation network's,
# each clipped to grad_norm_clip (the authors' code); docs/notes/regression-variants.md compares them
GRAD_CLIP_GROUPS = ("per_group", "joint")


@dataclass
class SupervisedConfig(RunConfig):
    """Settings every supervised meta-learning run has (meta-learner, inner and outer loop)."""

    # the inner loop's elementwise gradient clamp (null: none)
    inner_grad_clip: typing.Optional[float] = 10.0
    # outer loop: Adam
    meta_lr: float = 0.001
    grad_norm_clip: typing.Optional[float] = 2.0
    # one of GRAD_CLIP_GROUPS
    grad_clip_groups: str = "joint"

    METHODS: typing.ClassVar[tuple[str, ...]] = METHODS
    MODULATIONS: typing.ClassVar[tuple[str, ...]] = MODULATION_KINDS

    def validate(self) -> "SupervisedConfig":
        """Raise :class:`ConfigError` naming the first invalid value."""
        super().validate()
        bad = self.bad
        if self.grad_clip_groups not in GRAD_CLIP_GROUPS:
            bad("grad_clip_groups", f"choose one of {', '.join(GRAD_CLIP_GROUPS)}")
        if not self.meta_lr > 0:
            bad("meta_lr", "must be positive")
        for key in ("inner_grad_clip", "grad_norm_clip"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                bad(key, "must be positive, or null to disable")
        modes = self.mode_names
        if len(set(modes)) != len(modes):
            bad("modes" if hasattr(self, "modes") else "datasets", "a mode is listed twice")
        return self


@dataclass
class RegressionConfig(SupervisedConfig):
    """A multimodal regression run (paper defaults, Section 3.1)."""

    task: str = "regression"
    TASK_KEYS: typing.ClassVar[tuple[str, ...]] = ("modes", "num_support", "num_query", "noise_std")
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
        if self.method == "mumomaml":
            self.check_layer_indices("modulated_layers", len(self.hidden_sizes), "hidden-layer",
                                     "the default (the first layer with 2 modes, all with more)")
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
class ClassificationConfig(SupervisedConfig):
    """A multimodal few-shot image classification run (paper defaults, Appendix B)."""

    task: str = "classification"
    TASK_KEYS: typing.ClassVar[tuple[str, ...]] = ("datasets", "num_ways", "num_shots", "num_query", "image_size",
                                                   "images_per_class")
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
        self.check_layer_indices("modulated_layers", len(self.channels), "conv-block", "all")
        if self.images_per_class is not None and self.images_per_class < self.num_shots + self.num_query:
            bad("images_per_class", "must leave room for num_shots + num_query images per class")
        return self
