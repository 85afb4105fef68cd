"""Goal (task) distributions of the meta-RL environments.

A task is a goal ``g`` of ``goal_dim`` numbers: a position in the plane for the
2D environments (``goal_dim = 2``), a target speed or x-location for the
half-cheetah (``goal_dim = 1``). Every distribution names its modes
and samples batches of tasks in mode blocks (all tasks of mode 0, then mode 1,
...), with equal shares per mode, so that per-mode results need no bookkeeping:

* ``sample(T, generator)`` -> goals ``[T, goal_dim]`` float32 (CPU), mode ``[T]`` int64;
* ``sample_one(rng)`` -> goal ``[goal_dim]`` float64 (numpy), mode (for the gymnasium envs);
* ``density(points [N, goal_dim])`` -> probability density ``[N]`` (for plots).

The concrete distributions used by the environments are built by
:func:`navigation_goals` (``U[-0.5, 0.5]^2``, MAML), :func:`bimodal_navigation_goals`
(two Gaussians left and right of the start; our choice, see
:mod:`mmaml.rl.envs.navigation`) and :func:`point_mass_goals` (2, 4 or 6 modes of
radius 5 plus ``N(0, 1)`` noise per axis, MuMoMAML), :func:`cheetah_speed_goals`
and :func:`cheetah_location_goals` (two modes each; our choice, see
:mod:`mmaml.rl.envs.half_cheetah`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor


class GoalDistribution:
    """Base class: a distribution over goals made of named modes.

    Subclasses implement :meth:`_sample_mode`, :meth:`sample_one` and :meth:`density`.

    Attributes:
        modes: mode names, e.g. ``("left", "right")``.
        goal_dim: dimension of a goal (2 for positions, 1 for a target speed or location).
        centres: ``[M, goal_dim]`` mode centres, or ``None`` when the modes have none.
    """

    modes: tuple[str, ...] = ()
    goal_dim: int = 2
    centres: Tensor | None = None

    @property
    def num_modes(self) -> int:
        """Number of modes ``M``."""
        return len(self.modes)

    def mode_counts(self, num_tasks: int) -> list[int]:
        """Tasks per mode: equal shares, the remainder going one each to the first modes."""
        if num_tasks < 0:
            raise ValueError(f"num_tasks must be non-negative, got {num_tasks}")
        share, rest = divmod(num_tasks, self.num_modes)
        return [share + (1 if m < rest else 0) for m in range(self.num_modes)]

    def sample(self, num_tasks: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw ``T = num_tasks`` goals in mode blocks.

        Args:
            num_tasks: number of tasks ``T``.
            generator: CPU generator, the only source of randomness.

        Returns:
            goals ``[T, goal_dim]`` float32 on CPU and mode ``[T]`` int64 (non-decreasing).
        """
        counts = self.mode_counts(num_tasks)
        blocks = [self._sample_mode(m, n, generator) for m, n in enumerate(counts)]
        goals = torch.cat(blocks, dim=0).to(torch.float32)
        mode = torch.repeat_interleave(torch.arange(self.num_modes), torch.tensor(counts))
        return goals, mode

    def _sample_mode(self, mode: int, count: int, generator: torch.Generator) -> Tensor:
        """Draw ``count`` goals ``[count, goal_dim]`` of one mode."""
        raise NotImplementedError

    def sample_one(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """Draw one goal ``[goal_dim]`` (float64) and its mode with a numpy generator."""
        raise NotImplementedError

    def density(self, points: Tensor) -> Tensor:
        """Probability density ``[N]`` at ``points [N, goal_dim]``."""
        raise NotImplementedError

    def mode_of(self, goal: np.ndarray | Sequence[float]) -> int:
        """The most likely mode of a given goal ``[goal_dim]`` (0 for a single mode)."""
        return 0


class UniformGoals(GoalDistribution):
    """Goals uniform on the square ``[low, high]^2``; a single mode ``"uniform"``."""

    def __init__(self, low: float = -0.5, high: float = 0.5) -> None:
        if not high > low:
            raise ValueError(f"need high > low, got low={low}, high={high}")
        self.low = float(low)
        self.high = float(high)
        self.modes = ("uniform",)
        self.centres = None

    def _sample_mode(self, mode: int, count: int, generator: torch.Generator) -> Tensor:
        width = self.high - self.low
        return torch.rand(count, self.goal_dim, generator=generator) * width + self.low

    def sample_one(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        return rng.uniform(self.low, self.high, size=self.goal_dim).astype(np.float64), 0

    def density(self, points: Tensor) -> Tensor:
        inside = ((points >= self.low) & (points <= self.high)).all(dim=-1)
        area = (self.high - self.low) ** self.goal_dim
        return inside.to(points.dtype if points.is_floating_point() else torch.float32) / area

    def __repr__(self) -> str:
        return f"UniformGoals(low={self.low}, high={self.high})"


class GaussianMixtureGoals(GoalDistribution):
    """Equal-weight mixture of isotropic Gaussians: goal = centre of a mode + ``N(0, std^2 I)``.

    Args:
        centres: ``[M, D]`` mode centres (nested sequence or tensor); ``goal_dim = D``.
        std: standard deviation per axis, shared by all modes.
        names: ``M`` mode names (default ``"mode0"``, ``"mode1"``, ...).
    """

    def __init__(
        self,
        centres: Sequence[Sequence[float]] | Tensor,
        std: float,
        names: Sequence[str] | None = None,
    ) -> None:
        centres_t = torch.as_tensor(centres, dtype=torch.float64)
        if centres_t.ndim != 2 or centres_t.shape[1] < 1 or len(centres_t) == 0:
            raise ValueError(f"centres must have shape [M, D], got {tuple(centres_t.shape)}")
        self.goal_dim = int(centres_t.shape[1])
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        if names is None:
            names = [f"mode{m}" for m in range(len(centres_t))]
        if len(names) != len(centres_t):
            raise ValueError(f"{len(names)} names for {len(centres_t)} centres")
        self._centres64 = centres_t
        self.centres = centres_t.to(torch.float32)
        self.std = float(std)
        self.modes = tuple(str(n) for n in names)

    def _sample_mode(self, mode: int, count: int, generator: torch.Generator) -> Tensor:
        noise = torch.randn(count, self.goal_dim, generator=generator, dtype=torch.float64)
        return self._centres64[mode] + self.std * noise

    def sample_one(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        mode = int(rng.integers(self.num_modes))
        centre = self._centres64[mode].numpy()
        return centre + self.std * rng.standard_normal(self.goal_dim), mode

    def density(self, points: Tensor) -> Tensor:
        pts = points.to(torch.float64)
        sq = ((pts[:, None, :] - self._centres64[None, :, :]) ** 2).sum(-1)  # [N, M]
        norm = (2.0 * math.pi * self.std**2) ** (self.goal_dim / 2)
        dens = torch.exp(-0.5 * sq / self.std**2).mean(dim=1) / norm
        return dens.to(points.dtype if points.is_floating_point() else torch.float32)

    def mode_of(self, goal: np.ndarray | Sequence[float]) -> int:
        g = torch.as_tensor(np.asarray(goal, dtype=np.float64))
        return int(((self._centres64 - g) ** 2).sum(-1).argmin())

    def __repr__(self) -> str:
        return f"GaussianMixtureGoals(centres={self.centres.tolist()}, std={self.std}, names={self.modes})"


# --- the distributions of the environments ---------------------------------------------

BIMODAL_NAVIGATION_CENTRES = ((-1.0, 0.0), (1.0, 0.0))
BIMODAL_NAVIGATION_STD = 0.2

POINT_MASS_RADIUS = 5.0
POINT_MASS_STD = 1.0
POINT_MASS_MODES = (2, 4, 6)


def navigation_goals() -> UniformGoals:
    """Unimodal 2D navigation (MAML): goals ``U[-0.5, 0.5]^2``."""
    return UniformGoals(-0.5, 0.5)


def bimodal_navigation_goals() -> GaussianMixtureGoals:
    """Bimodal 2D navigation: Gaussians at (-1, 0) "left" and (+1, 0) "right", std 0.2 per axis."""
    return GaussianMixtureGoals(BIMODAL_NAVIGATION_CENTRES, BIMODAL_NAVIGATION_STD, ("left", "right"))


def point_mass_centres(modes: int) -> tuple[list[list[float]], tuple[str, ...]]:
    """Mode centres ``[M, 2]`` and names of the point-mass task distribution with 2, 4 or 6 modes."""
    r = POINT_MASS_RADIUS
    if modes == 2:
        return [[-r, -r], [r, r]], ("lower-left", "upper-right")
    if modes == 4:
        names = ("upper-right", "upper-left", "lower-left", "lower-right")
        return [[r, r], [-r, r], [-r, -r], [r, -r]], names
    if modes == 6:
        angles = [60 * k for k in range(6)]
        centres = [[r * math.cos(math.radians(a)), r * math.sin(math.radians(a))] for a in angles]
        return centres, tuple(f"{a}deg" for a in angles)
    raise ValueError(f"point mass supports {POINT_MASS_MODES} modes, got {modes}")


def point_mass_goals(modes: int = 4) -> GaussianMixtureGoals:
    """Point mass with momentum (MuMoMAML): a mode centre plus ``N(0, 1)`` per axis."""
    centres, names = point_mass_centres(modes)
    return GaussianMixtureGoals(centres, POINT_MASS_STD, names)


# Half-cheetah (our definitions; the reasons are in mmaml.rl.envs.half_cheetah).
CHEETAH_SPEED_CENTRES = ((-1.0,), (2.0,))  # m/s: running backward, running forward faster
CHEETAH_SPEED_STD = 0.25
CHEETAH_LOCATION_CENTRES = ((-3.0,), (3.0,))  # m: behind and ahead of the start
CHEETAH_LOCATION_STD = 0.5


def cheetah_speed_goals() -> GaussianMixtureGoals:
    """Half-cheetah target speed: ``N(-1, 0.25^2)`` "backward" or ``N(2, 0.25^2)`` "forward" (m/s)."""
    return GaussianMixtureGoals(CHEETAH_SPEED_CENTRES, CHEETAH_SPEED_STD, ("backward", "forward"))


CHEETAH_LOCATION_MODES = ("behind", "ahead")


def cheetah_location_goals(modes: Sequence[str] | None = None) -> GaussianMixtureGoals:
    """Half-cheetah target x-location: ``N(-3, 0.5^2)`` "behind" or ``N(3, 0.5^2)`` "ahead" (m).

    ``modes`` keeps some of them, e.g. ``("ahead",)``: the unimodal sanity anchor, a
    location task with nothing to identify.
    """
    keep = CHEETAH_LOCATION_MODES if modes is None else tuple(modes)
    unknown = [m for m in keep if m not in CHEETAH_LOCATION_MODES]
    if unknown or not keep:
        raise ValueError(f"target-location modes are {CHEETAH_LOCATION_MODES}, got {keep}")
    index = [CHEETAH_LOCATION_MODES.index(m) for m in keep]
    return GaussianMixtureGoals([CHEETAH_LOCATION_CENTRES[i] for i in index], CHEETAH_LOCATION_STD, keep)
