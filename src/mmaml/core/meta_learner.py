"""What every meta-learner of the library offers, supervised or RL: the protocol code that serves any of them
(evaluation, plots, ``mmaml.load``) relies on."""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

from torch import Tensor, nn

from mmaml.core.learner import Learner


@runtime_checkable
class MetaLearner(Protocol):
    """A meta-learned model that adapts to new tasks.

    ``learner`` holds the meta-parameters that the inner loop adapts; ``modulated`` says whether a task
    encoder modulates it (MuMoMAML); ``parameter_groups`` are the groups whose meta-gradients may be
    clipped separately. ``adapt`` takes the tasks as the meta-learner reads them (supervised: support
    sets ``[T, K, ...]``; RL: an environment and goals ``[T, G]``, whose episodes it samples itself),
    runs the adaptation evaluation runs (``steps`` inner steps, no meta-gradient kept) and returns the
    adapted model: ``inputs [T, N, ...] -> outputs [T, N, ...]`` for those ``T`` tasks.
    """

    learner: Learner
    modulation_kind: str

    @property
    def modulated(self) -> bool: ...

    def parameter_groups(self) -> list[list[nn.Parameter]]: ...

    def adapt(self, *tasks: Any, steps: int | None = None, **options: Any) -> Callable[[Tensor], Tensor]: ...
