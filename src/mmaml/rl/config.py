"""The configuration of a meta-RL run (MAML or MuMoMAML; TRPO or PPO outer loop), validated like every run config."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from mmaml.engine.config import IntOrAuto, RunConfig
from mmaml.rl.envs.registry import ENVIRONMENTS, make_goals

RL_METHODS = ("maml", "mumomaml")
RL_MODULATIONS = ("scale", "film")


@dataclass
class RLConfig(RunConfig):
    """A meta-RL run. Defaults: the MAML-TRPO settings of the 2D navigation references.

    Environment names are those of :data:`mmaml.rl.envs.registry.ENVIRONMENTS`.
    """

    task: str = "rl"
    method: str = "mumomaml"  # maml | mumomaml
    env: str = "navigation-bimodal"
    # policy: Gaussian MLP, tanh, learned state-independent log-std
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    init_log_std: float = 0.0
    # MuMoMAML: GRU trajectory encoder, modulation of the hidden layers
    modulation: str = "scale"  # scale: h*(1+tau) (the authors'); film: h*(1+gamma)+beta
    modulated_layers: typing.Optional[list[int]] = None  # hidden layers modulated (None: all)
    encoder_hidden: int = 64
    embedding_dim: int = 64
    encoder_episodes: int = 1  # unmodulated episodes per task that the encoder reads (encoder_flow: seed)
    # seed: extra unmodulated episodes for the encoder, then every step modulated (the paper's text);
    # authors: the step-0 episodes are unmodulated and feed the encoder and the first, unmodulated, inner step
    encoder_flow: str = "seed"
    # inner loop: vanilla policy gradient, linear feature baseline, GAE
    inner_lr: float = 0.1
    inner_steps: int = 1
    eval_inner_steps: int = 3
    episodes_per_task: int = 20
    discount: float = 0.99
    gae_lambda: float = 1.0
    # outer loop: trpo (MAML-TRPO, the seed paper's), ppo (Adam on the clipped surrogate) or promp (ProMP, the
    # authors' code's: ppo's epochs with the LVC inner objective and an inner-KL penalty)
    outer_optimizer: str = "trpo"
    meta_batch_size: int = 40
    max_kl: float = 0.01
    cg_iterations: int = 10
    cg_damping: float = 1e-5
    line_search_steps: int = 15
    line_search_ratio: float = 0.8
    fisher_subsample: float = 0.5  # fraction of the tasks the Fisher-vector products use
    fisher_second_order: bool = True  # the Fisher through the inner steps; false: at the adapted policy only
    ppo_epochs: int = 5
    ppo_clip: float = 0.1
    ppo_lr: float = 1e-3
    promp_inner_kl: float = 5e-4  # outer_optimizer promp: the inner-KL penalty's coefficient (the authors')
    # outer_optimizer ppo/promp: weight of the pre-update policy's own clipped surrogate on its step-0 episodes (for
    # MuMoMAML the modulated prior's return, "after modulation") added to the outer objective; 0: the paper's
    # objective, which scores the adapted policy's episodes only
    prior_return_weight: float = 0.0
    # the policy acts in the env's normalised range, mapped linearly onto its action bounds (navigation: [-1, 1]
    # onto the velocity clip of 0.1; half-cheetah: [-10, 10] onto the actuators' [-1, 1]; the point mass's actions
    # are normalised already); false: raw actions, clipped by the env (runs saved before the key)
    normalize_actions: bool = False
    # simulation: threads of the MuJoCo envs' physics (half-cheetah; the results do not depend on it);
    # auto: every usable CPU
    sim_threads: IntOrAuto = "auto"
    # validation: every validate_every iterations (0: never) the policy is scored on validation_tasks goals of
    # validation_seed (neither the training seed nor eval_seed) after 0..max(eval_inner_steps, inner_steps) steps;
    # best.pt keeps the checkpoint with the best validation return after inner_steps steps
    validate_every: int = 20
    validation_tasks: int = 40
    validation_seed: int = 20190602
    # bookkeeping
    iterations: int = 500
    log_every: int = 1
    checkpoint_every: int = 10
    eval_tasks: int = 100

    METHODS: typing.ClassVar[tuple[str, ...]] = RL_METHODS
    MODULATIONS: typing.ClassVar[tuple[str, ...]] = RL_MODULATIONS
    TASK_KEYS: typing.ClassVar[tuple[str, ...]] = ("env",)

    @property
    def thread_family(self) -> str:
        return "cheetah" if self.env in ENVIRONMENTS and ENVIRONMENTS[self.env].mujoco else "rl-2d"

    @property
    def modes_description(self) -> str:
        return f"the number of goal modes of {self.env}"

    @property
    def mode_names(self) -> list[str]:
        return list(make_goals(self.env).modes)

    def validate(self) -> "RLConfig":
        bad = self.bad
        if self.task != "rl":
            bad("task", "an RL config has task: rl")
        if self.env not in ENVIRONMENTS:
            bad("env", f"choose one of {', '.join(ENVIRONMENTS)}")
        super().validate()
        if self.outer_optimizer not in ("trpo", "ppo", "promp"):
            bad("outer_optimizer", "choose trpo (MAML-TRPO), ppo (Adam on the clipped surrogate) or promp (ProMP: "
                "the LVC inner objective and an inner-KL penalty as well)")
        if self.promp_inner_kl < 0:
            bad("promp_inner_kl", "must not be negative")
        if self.prior_return_weight < 0:
            bad("prior_return_weight", "must not be negative (0: the post-update objective alone)")
        if self.prior_return_weight > 0 and self.outer_optimizer == "trpo":
            bad("prior_return_weight", "is a term of the ppo and promp outer objectives; set outer_optimizer to "
                "ppo or promp, or prior_return_weight to 0")
        if self.prior_return_weight > 0 and self.inner_steps < 1:
            bad("prior_return_weight", "scores the pre-update episodes apart from the adapted ones; give "
                "inner_steps of at least 1")
        if self.encoder_flow not in ("seed", "authors"):
            bad("encoder_flow", "choose seed (extra unmodulated episodes for the encoder) or authors (the step-0 "
                "episodes feed the encoder and the first inner step)")
        if self.encoder_flow == "authors" and self.method == "mumomaml" and min(self.inner_steps,
                                                                                self.eval_inner_steps) < 1:
            bad("encoder_flow", "the authors' flow modulates from the first inner step on: give inner_steps and "
                "eval_inner_steps of at least 1")
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            bad("hidden_sizes", "need at least one hidden layer, each of width >= 1")
        self.check_layer_indices("modulated_layers", len(self.hidden_sizes), "hidden-layer", "all")
        for key in ("encoder_hidden", "embedding_dim", "encoder_episodes",
                    "cg_iterations", "line_search_steps", "ppo_epochs"):
            if getattr(self, key) < 1:
                bad(key, "must be at least 1")
        self.check_int_or_auto("sim_threads")
        if self.validate_every < 0:
            bad("validate_every", "must not be negative (0: no validation)")
        if self.validation_tasks < 1:
            bad("validation_tasks", "must be at least 1")
        if self.validation_seed in (self.seed, self.eval_seed):
            bad("validation_seed", "equals seed or eval_seed; validation goals must come from a stream of their own")
        for key in ("max_kl", "ppo_lr"):
            if not getattr(self, key) > 0:
                bad(key, "must be positive")
        if self.cg_damping < 0:
            bad("cg_damping", "must not be negative")
        for key in ("discount", "gae_lambda"):
            if not 0 <= getattr(self, key) <= 1:
                bad(key, "must lie in [0, 1]")
        if not 0 < self.fisher_subsample <= 1:
            bad("fisher_subsample", "must lie in (0, 1]: the fraction of tasks used for the Fisher-vector products")
        if not 0 < self.ppo_clip < 1:
            bad("ppo_clip", "must lie strictly between 0 and 1 (the ratio is clipped to [1 - clip, 1 + clip])")
        if not 0 < self.line_search_ratio < 1:
            bad("line_search_ratio", "must lie strictly between 0 and 1")
        if self.episodes_per_task < 2:
            bad("episodes_per_task", "need at least 2 episodes per task to normalise advantages")
        return self
