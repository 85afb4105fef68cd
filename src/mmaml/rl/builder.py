"""Build a meta-RL model and its environment from an :class:`~mmaml.rl.config.RLConfig`."""

from __future__ import annotations

from mmaml.core.learner import Learner
from mmaml.rl.config import RLConfig
from mmaml.rl.encoder import TrajectoryEncoder
from mmaml.rl.envs.base import BatchedEnv
from mmaml.rl.envs.registry import make_batched
from mmaml.rl.metalearner import AdaptationSettings, PolicyMetaLearner
from mmaml.rl.policy import GaussianMLPPolicy
from mmaml.engine.threads import resolve_sim_threads


def build_env(config: RLConfig) -> BatchedEnv:
    return make_batched(config.env, resolve_sim_threads(config.sim_threads), config.normalize_actions)


def build_policy_metalearner(config: RLConfig, env: BatchedEnv | None = None) -> PolicyMetaLearner:
    """MAML (no encoder) or MuMoMAML (encoder + modulation of the chosen hidden layers), freshly initialised."""
    env = env or build_env(config)
    policy = GaussianMLPPolicy(env.observation_dim, env.action_dim, config.hidden_sizes, config.init_log_std)
    objective = "lvc" if config.outer_optimizer == "promp" else "reinforce"
    adaptation = AdaptationSettings(config.eval_inner_steps, config.episodes_per_task, config.encoder_episodes,
                                    config.discount, config.gae_lambda)
    if config.method == "maml":
        return PolicyMetaLearner(Learner(policy, low_rank_linear=False), inner_lr=config.inner_lr,
                                 first_order=config.first_order, inner_objective=objective, adaptation=adaptation)
    sites = policy.modulation_sites
    if config.modulated_layers is not None:
        sites = [sites[i] for i in config.modulated_layers]
    encoder = TrajectoryEncoder(env.observation_dim, env.action_dim, config.encoder_hidden, config.embedding_dim)
    return PolicyMetaLearner(Learner(policy, modulate=sites, low_rank_linear=False), encoder, config.modulation,
                             config.modulation_init, config.inner_lr, config.first_order, config.encoder_flow,
                             objective, adaptation)
