"""MAML and MuMoMAML for reinforcement learning: the policy, its modulation and the inner step.

The adaptation protocol (the paper's, Section 3.2), ``encoder_flow: seed``:

1. MuMoMAML only: ``encoder_episodes`` episodes of each task are sampled with the
   *unmodulated* policy theta; the trajectory encoder reads them and the
   modulation network turns the embedding into tau (one scale vector per
   hidden layer, ``h * (1 + tau)``).
2. Episodes are sampled with the (modulated) policy; one vanilla-policy-gradient
   step on them adapts its parameters; this repeats for each inner step.
3. Episodes of the adapted policy are the ones the outer loop (MAML-TRPO)
   scores. The return of the policy before any inner step is "after
   modulation" for MuMoMAML and the initial return for MAML.

``encoder_flow: authors`` (the authors' released code, docs/notes/authors-rl-code.md):
the step-0 episodes (``episodes_per_task`` of them) come from the *unmodulated*
policy; the encoder reads all of them, and the first inner step is taken on them
with the unmodulated policy's loss; from step 1 on the policy is modulated (and
adapted). No extra episodes are sampled for the encoder, and the return before any
inner step is the unmodulated policy's (there is no "after modulation" return).

tau stays fixed during the inner steps; only the policy's parameters adapt.
The inner step is the core's :meth:`Learner.adapt <mmaml.core.learner.Learner.adapt>`,
batched over tasks, with the REINFORCE loss below.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import Tensor, nn

from mmaml.core.learner import Learner, Params
from mmaml.core.modulation_network import ModulationNetwork
from mmaml.rl.encoder import TrajectoryEncoder
from mmaml.rl.envs.base import BatchedEnv
from mmaml.rl.episodes import Episodes
from mmaml.rl.policy import log_prob, sample_actions
from mmaml.rl.sampler import sample_episodes

Taus = Mapping[str, Tensor]
ENCODER_FLOWS = ("seed", "authors")


def lvc_loss(pred: Tensor, target: Tensor) -> Tensor:
    """ProMP's low-variance curvature objective of each task: ``-mean(pi(a|s) / pi_old(a|s) * advantage)``.

    ``pi_old`` is the policy that sampled the episodes (its recorded log-density), so at the
    sampling point the ratio is 1: the value and the gradient are :func:`reinforce_loss`'s, but
    the second derivative gains ``grad log pi grad log pi^T * advantage`` per step, the
    dependence of the samples on the parameters to first order in the inner rate.

    Args:
        pred: ``[T, N, 2A]``.
        target: ``[T, N, A + 2]`` the actions, the advantage, then the sampling log-density.

    Returns:
        ``[T]``.
    """
    actions, adv, old = target[..., :-2], target[..., -2], target[..., -1]
    return -(torch.exp(log_prob(pred, actions) - old) * adv).mean(-1)


def reinforce_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Vanilla policy-gradient loss of each task: ``-mean(log pi(a|s) * advantage)``.

    Args:
        pred: ``[T, N, 2A]`` the policy's mean and log-std on N steps.
        target: ``[T, N, A + 1]`` the actions taken, then the advantage.

    Returns:
        ``[T]``.
    """
    actions, adv = target[..., :-1], target[..., -1]
    return -(log_prob(pred, actions) * adv).mean(-1)


INNER_OBJECTIVES = {"reinforce": reinforce_loss, "lvc": lvc_loss}


@dataclass(frozen=True)
class AdaptationSettings:
    """How :meth:`PolicyMetaLearner.adapt` adapts to new tasks: its inner steps, the episodes sampled per task
    at each step and for the encoder, and the discount and GAE lambda of the advantages (a run's
    ``eval_inner_steps``, ``episodes_per_task``, ``encoder_episodes``, ``discount`` and ``gae_lambda``)."""

    steps: int = 1
    episodes_per_task: int = 20
    encoder_episodes: int = 1
    discount: float = 0.99
    gae_lambda: float = 1.0


class PolicyMetaLearner(nn.Module):
    """A meta-learned policy; with an encoder, MuMoMAML, without, MAML. A
    :class:`~mmaml.core.meta_learner.MetaLearner`.

    Args:
        learner: the policy wrapped in a :class:`Learner` (modulated layers named
            for MuMoMAML; ``low_rank_linear=False``, since an RL task has far
            more samples than hidden units).
        encoder: the trajectory encoder, or None for MAML.
        modulation: the modulation kind (``"scale"``, the authors' choice, or ``"film"``).
        modulation_init: ``"default"`` or ``"zero"`` heads (see :class:`ModulationNetwork`).
        inner_lr: step size of the inner policy-gradient steps.
        first_order: drop the second-order terms of the meta-gradient.
        encoder_flow: ``"seed"`` or ``"authors"`` (see the module docstring; MuMoMAML only).
        inner_objective: ``"reinforce"`` (MAML-TRPO's) or ``"lvc"`` (ProMP's, :func:`lvc_loss`).
        adaptation: how :meth:`adapt` adapts to new tasks (:class:`AdaptationSettings`).
    """

    def __init__(self, learner: Learner, encoder: TrajectoryEncoder | None = None, modulation: str = "scale",
                 modulation_init: str = "default", inner_lr: float = 0.1, first_order: bool = False,
                 encoder_flow: str = "seed", inner_objective: str = "reinforce",
                 adaptation: AdaptationSettings = AdaptationSettings()):
        super().__init__()
        self.adaptation = adaptation
        if inner_objective not in INNER_OBJECTIVES:
            raise ValueError(f"unknown inner objective {inner_objective!r}; choose one of {', '.join(INNER_OBJECTIVES)}")
        self.inner_objective = inner_objective
        if encoder_flow not in ENCODER_FLOWS:
            raise ValueError(f"unknown encoder flow {encoder_flow!r}; choose one of {', '.join(ENCODER_FLOWS)}")
        self.encoder_flow = encoder_flow
        self.learner = learner
        self.encoder = encoder
        self.modulation_kind = modulation
        self.modulation_network = None
        if encoder is not None:
            if not learner.sites:
                raise ValueError("MuMoMAML needs a Learner with at least one modulated layer")
            self.modulation_network = ModulationNetwork(encoder.embedding_dim, learner.tau_sizes(modulation),
                                                        modulation_init)
        self.inner_lr = inner_lr
        self.first_order = first_order

    @property
    def modulated(self) -> bool:
        return self.encoder is not None

    @property
    def authors_flow(self) -> bool:
        """Whether step 0 is unmodulated and feeds the encoder and the first (unmodulated) inner step."""
        return self.modulated and self.encoder_flow == "authors"

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """The policy's parameters, then the encoder's and modulation network's (MuMoMAML), as the supervised
        meta-learners group them."""
        groups = [list(self.learner.parameters())]
        if self.modulated:
            groups.append(list(self.encoder.parameters()) + list(self.modulation_network.parameters()))
        return groups

    def step_taus(self, step: int, taus: Taus | None) -> Taus | None:
        """The modulation of the policy after ``step`` inner steps (the authors' flow leaves step 0 unmodulated)."""
        return None if step == 0 and self.authors_flow else taus

    def modulation(self, episodes: Episodes | None) -> tuple[Taus | None, Tensor | None]:
        """``(taus {site: [T, units]}, embedding [T, E])`` from the unmodulated episodes; ``(None, None)`` for MAML."""
        if self.encoder is None or episodes is None:
            return None, None
        embedding = self.encoder(episodes.observations, episodes.actions, episodes.rewards)
        return self.modulation_network(embedding), embedding

    def policy(self, params: Params, taus: Taus | None) -> Callable[[Tensor], Tensor]:
        """``observations [T, N, O] -> [T, N, 2A]`` for per-task (or shared) ``params`` and ``taus``."""
        return lambda obs: self.learner(params, obs, taus, self.modulation_kind)

    def adapt(self, env: BatchedEnv, goals: Tensor, steps: int | None = None,
              generator: torch.Generator | None = None, mode: Tensor | None = None) -> "AdaptedPolicy":
        """Modulate and adapt to the tasks ``goals [T, G]`` by interacting with ``env``: an :class:`AdaptedPolicy`.

        As evaluation does: unmodulated episodes for the encoder (MuMoMAML), then
        ``steps`` policy-gradient steps on fresh episodes (default: ``adaptation.steps``;
        a model built from a run config, or :func:`mmaml.load`-ed, has the run's
        ``eval_inner_steps``, episode counts, discount and GAE lambda there).
        ``generator`` (CPU) draws start states and exploration noise.
        """
        settings = self.adaptation
        steps = settings.steps if steps is None else steps
        generator = torch.Generator().manual_seed(0) if generator is None else generator
        device = next(self.parameters()).device
        return adapt_policy(self, env, goals.to(device), steps, settings.episodes_per_task, generator,
                            settings.encoder_episodes, settings.discount, settings.gae_lambda, mode)

    def inner_step(self, params: Params, taus: Taus | None, episodes: Episodes, create_graph: bool,
                   predictions: list[Tensor] | None = None) -> Params:
        """One policy-gradient step of every task on its own ``episodes``: ``{name: [T, *shape]}``.

        The objective is ``inner_objective``'s: the vanilla policy gradient's (``reinforce``) or
        ProMP's (``lvc``); both take the same step, and differ in what the meta-gradient sees.
        ``predictions``, when given, gets the policy's output on the episodes, ``[T, N, 2A]``, as the
        step computed it (in its graph), for a caller that needs it again (ProMP's inner KL).
        """
        obs, actions = episodes.flat()
        t = episodes.num_tasks
        columns = [actions, episodes.advantages.reshape(t, -1, 1)]
        if self.inner_objective == "lvc":
            columns.append(episodes.log_probs.reshape(t, -1, 1))
        objective = INNER_OBJECTIVES[self.inner_objective]
        if predictions is not None:
            def objective(pred: Tensor, target: Tensor, loss=objective) -> Tensor:
                predictions.append(pred)
                return loss(pred, target)
        with torch.enable_grad():
            return self.learner.adapt(params, obs, torch.cat(columns, dim=-1), objective, 1, self.inner_lr,
                                      create_graph=create_graph, taus=taus, kind=self.modulation_kind)


@dataclass
class Rollouts:
    """What one adaptation of ``T`` tasks sampled.

    Attributes:
        goals: ``[T, goal_dim]``; mode: ``[T]``.
        encoder_episodes: the unmodulated episodes the encoder read (MuMoMAML), or None.
        steps: ``steps[k]`` holds the episodes of the policy after ``k`` inner steps;
            the last entry is what the outer loop scores.
        taus: the modulation used ({site: [T, units]}) or None; embedding ``[T, E]`` or None.
        adapted: each task's parameters after all the inner steps, ``{name: [T, *shape]}``
            (detached; shared ``[*shape]`` when no step was taken).
        modulated_from: the first entry of ``steps`` whose policy is modulated (0 in the seed
            flow, 1 in the authors'), None for MAML.
    """

    goals: Tensor
    mode: Tensor
    encoder_episodes: Episodes | None
    steps: list[Episodes]
    taus: Taus | None = None
    embedding: Tensor | None = None
    adapted: Params | None = None
    modulated_from: int | None = None

    @property
    def num_tasks(self) -> int:
        return self.goals.shape[0]

    def select(self, index: Tensor) -> "Rollouts":
        """The tasks at ``index`` (an index tensor), with their episodes and modulation."""
        pick = lambda e: None if e is None else e.select(index)  # noqa: E731
        return Rollouts(self.goals[index], self.mode[index], pick(self.encoder_episodes), [pick(e) for e in self.steps],
                        None if self.taus is None else {k: v[index] for k, v in self.taus.items()},
                        None if self.embedding is None else self.embedding[index],
                        modulated_from=self.modulated_from)

    def to(self, device: torch.device | str) -> "Rollouts":
        """A copy with every tensor on ``device``."""
        move = lambda e: None if e is None else e.to(device)  # noqa: E731
        return Rollouts(self.goals.to(device), self.mode.to(device), move(self.encoder_episodes),
                        [move(e) for e in self.steps],
                        None if self.taus is None else {k: v.to(device) for k, v in self.taus.items()},
                        None if self.embedding is None else self.embedding.to(device),
                        None if self.adapted is None else {k: v.to(device) for k, v in self.adapted.items()},
                        self.modulated_from)

    def returns_by_step(self) -> Tensor:
        """``[S + 1, T]``: each task's average episode return after 0, 1, ... S inner steps."""
        return torch.stack([e.task_returns() for e in self.steps])


def rollout_adaptation(
    model: PolicyMetaLearner,
    env: BatchedEnv,
    goals: Tensor,
    mode: Tensor,
    episodes: int,
    inner_steps: int,
    generator: torch.Generator,
    encoder_episodes: int = 1,
    discount: float = 0.99,
    gae_lambda: float = 1.0,
    timings: dict[str, float] | None = None,
) -> Rollouts:
    """Sample the whole adaptation protocol for every task of ``goals``, without a meta-gradient.

    ``timings``, when given, accumulates the seconds spent sampling (``"sample"``)
    and in the inner steps (``"adapt"``).
    """
    theta = {k: v.detach() for k, v in model.learner.meta_parameters().items()}
    timings = {} if timings is None else timings

    def sample(params, taus, n):
        started = time.perf_counter()
        result = sample_episodes(env, model.policy(params, taus), goals, n, generator, discount, gae_lambda)
        timings["sample"] = timings.get("sample", 0.0) + time.perf_counter() - started
        return result

    encoder_eps = taus = embedding = None
    if model.modulated and not model.authors_flow:
        encoder_eps = sample(theta, None, encoder_episodes)
        with torch.no_grad():
            taus, embedding = model.modulation(encoder_eps)
    params: Params = theta
    steps = []
    for k in range(inner_steps + 1):
        steps.append(sample(params, model.step_taus(k, taus), episodes))
        if k == 0 and model.authors_flow:  # the encoder reads the unmodulated step-0 episodes
            encoder_eps = steps[0]
            with torch.no_grad():
                taus, embedding = model.modulation(encoder_eps)
        if k < inner_steps:
            started = time.perf_counter()
            start = {n: v.detach().requires_grad_() for n, v in params.items()}
            adapted = model.inner_step(start, model.step_taus(k, taus), steps[-1], create_graph=False)
            params = {n: v.detach() for n, v in adapted.items()}
            timings["adapt"] = timings.get("adapt", 0.0) + time.perf_counter() - started
    modulated_from = None if not model.modulated else (1 if model.authors_flow else 0)
    return Rollouts(goals, mode, encoder_eps, steps, taus, embedding, params, modulated_from)


def adaptation_path(model: PolicyMetaLearner, rollouts: Rollouts, create_graph: bool,
                    predictions: list[Tensor] | None = None) -> list[tuple[Params, Taus | None]]:
    """Redo the adaptation of ``rollouts`` from the current meta-parameters, differentiably.

    Returns, for each entry ``k`` of ``rollouts.steps``, the parameters of the policy that
    sampled it (the shared meta-parameters for ``k = 0``, then each task's after ``k`` inner
    steps) and its modulation (None where it was unmodulated), all functions of the
    meta-parameters. ``predictions``, when given, gets the output ``[T, N, 2A]`` of the policy
    of each entry but the last on that entry's episodes (computed by the inner steps anyway).
    """
    taus, _ = model.modulation(rollouts.encoder_episodes)
    params = model.learner.meta_parameters()
    path = [(params, model.step_taus(0, taus))]
    for k, episodes in enumerate(rollouts.steps[:-1]):
        params = model.inner_step(params, model.step_taus(k, taus), episodes, create_graph, predictions)
        path.append((params, model.step_taus(k + 1, taus)))
    return path


def adapted_parameters(model: PolicyMetaLearner, rollouts: Rollouts, create_graph: bool) -> tuple[Params, Taus | None]:
    """The last entry of :func:`adaptation_path`: the adapted parameters and modulation of the scored episodes."""
    return adaptation_path(model, rollouts, create_graph)[-1]


class AdaptedPolicy:
    """A meta-learned policy modulated and adapted to ``T`` tasks: ``observations [T, N, O] -> [T, N, 2A]``.

    Made by :meth:`PolicyMetaLearner.adapt`; holds the adapted parameters and the
    modulation (no autograd graph) and the :class:`Rollouts` the adaptation sampled
    (``rollouts.steps[-1]``: episodes of the adapted policy itself).
    """

    def __init__(self, model: PolicyMetaLearner, rollouts: Rollouts) -> None:
        self.model = model
        self.rollouts = rollouts
        self.params = rollouts.adapted
        self.taus = model.step_taus(len(rollouts.steps) - 1, rollouts.taus)

    def __call__(self, observations: Tensor) -> Tensor:
        with torch.no_grad():
            return self.model.learner(self.params, observations, self.taus, self.model.modulation_kind)

    def act(self, observations: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Actions ``[T, N, A]``: the mean, or a sample when a CPU ``generator`` is given."""

        pred = self(observations)
        a = pred.shape[-1] // 2
        noise = torch.zeros_like(pred[..., :a]) if generator is None else torch.randn(
            pred[..., :a].shape, generator=generator).to(pred.device)
        return sample_actions(pred, noise)


def adapt_policy(model: PolicyMetaLearner, env: BatchedEnv, goals: Tensor, steps: int, episodes: int,
                 generator: torch.Generator, encoder_episodes: int = 1, discount: float = 0.99,
                 gae_lambda: float = 1.0, mode: Tensor | None = None) -> AdaptedPolicy:
    """The adaptation protocol of evaluation, in ``env``, for the tasks ``goals [T, G]``: an :class:`AdaptedPolicy`.

    Exactly :func:`rollout_adaptation` (so the same generator state gives the policy
    ``mmaml eval`` scores); the meta-parameters do not change.
    """
    mode = torch.zeros(goals.shape[0], dtype=torch.long) if mode is None else mode
    was_training = model.training
    model.eval()
    try:
        rollouts = rollout_adaptation(model, env, goals, mode, episodes, steps, generator, encoder_episodes,
                                      discount, gae_lambda)
    finally:
        model.train(was_training)
    return AdaptedPolicy(model, rollouts)
