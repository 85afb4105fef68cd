"""What a meta-RL model's modulation knows of the mode, and what signal it trains on: probes of checkpoints.

1. Mode identification on the evaluation's test goals (``--goals``, the runs' evaluation
   seed), from the task embeddings alone (no returns sampled): k-NN and linear-probe
   accuracy, silhouette (:func:`mmaml.engine.mode_identification.mode_identification`).
2. The outer objective's gradient with respect to each task's own modulation vector
   tau_i, for ``--tasks`` tasks (as many per mode) whose adaptation is sampled as in
   training (the surrogate of the TRPO/PPO step, on the adapted policy's episodes,
   through the inner steps). If the modes want different modulations, the per-mode
   mean gradients point apart and their mode-specific part stands out of the noise
   that one meta-batch's mean carries; if every task wants the same change, the
   encoder has nothing mode-specific to learn from. The mode-specific norm is
   corrected for the noise it picks up from the finite number of tasks. Also: how
   far the modulation itself differs between modes, against its spread within one.
3. How readable the mode is in what the encoder reads (the unmodulated policy's
   ``encoder_episodes`` episodes of each test goal): a linear probe on simple statistics of
   those episodes, each episode's mean reward and the least-squares slope of its reward
   against each observation coordinate, averaged over the task's episodes. If this probe
   identifies the mode and the embedding does not, the information was there and the
   encoder has not learned to extract it.

    python analysis/rl_modulation.py RUN_DIR [RUN_DIR ...] [--tasks 200] [--goals 400] [--seed 0]
"""

from __future__ import annotations

import argparse
import math

import torch


def probe(run_dir: str, num_tasks: int, seed: int) -> dict[str, float]:
    import mmaml
    from mmaml.rl.builder import build_env
    from mmaml.rl.envs.registry import make_goals
    from mmaml.rl.metalearner import rollout_adaptation
    from mmaml.rl.policy import log_prob

    model = mmaml.load(run_dir, device="cpu")
    config = model.config
    if not model.modulated:
        raise SystemExit(f"{run_dir}: a MAML run has no modulation to probe")
    env, distribution = build_env(config), make_goals(config.env)
    generator = torch.Generator().manual_seed(seed)
    goals, mode = distribution.sample(num_tasks, generator)
    model.eval()
    rollouts = rollout_adaptation(model, env, goals, mode, config.episodes_per_task, config.inner_steps, generator,
                                  config.encoder_episodes, config.discount, config.gae_lambda)
    taus = {k: v.detach().clone().requires_grad_() for k, v in rollouts.taus.items()}
    with torch.enable_grad():
        params = model.learner.meta_parameters()
        for episodes in rollouts.steps[:-1]:
            params = model.inner_step(params, taus, episodes, create_graph=True)
        scored = rollouts.steps[-1]
        obs, actions = scored.flat()
        pred = model.learner(params, obs, taus, model.modulation_kind)
        ratio = torch.exp(log_prob(pred, actions) - scored.log_probs.reshape(num_tasks, -1))
        per_task = -(ratio * scored.advantages.reshape(num_tasks, -1)).mean(-1)  # [T]; task i's depends on tau_i only
        grads = torch.autograd.grad(per_task.sum(), list(taus.values()))
    g = torch.cat([x.reshape(num_tasks, -1) for x in grads], dim=1).double()  # [T, U]
    tau = torch.cat([v.detach().reshape(num_tasks, -1) for v in taus.values()], dim=1).double()
    out: dict[str, float] = {}
    modes = len(distribution.modes)
    means = [g[mode == m].mean(0) for m in range(modes)]
    if modes == 2:
        out["gradient cosine between the two modes' means"] = float(torch.nn.functional.cosine_similarity(*means, dim=0))
    centre = torch.stack(means).mean(0)
    n = min(int((mode == m).sum()) for m in range(modes))
    spread = float(torch.cat([g[mode == m] - means[m] for m in range(modes)]).pow(2).sum(1).mean())  # per task
    # the squared mode-specific norm, less what the per-task noise adds to it with n tasks a mode
    between = float(torch.stack([m - centre for m in means]).pow(2).sum(1).mean()) - (modes - 1) / modes * spread / n
    per_batch = config.meta_batch_size // modes
    out["mode-specific part of the mean gradient (norm)"] = math.sqrt(max(between, 0.0))
    out["shared part of the mean gradient (norm)"] = float(centre.norm())
    out[f"noise of a meta-batch's mode mean ({per_batch} tasks a mode)"] = math.sqrt(spread / per_batch)
    tau_means = [tau[mode == m].mean(0) for m in range(modes)]
    tau_centre = torch.stack(tau_means).mean(0)
    out["tau: mode means' distance from their centre (per unit, rms)"] = float(
        torch.stack([m - tau_centre for m in tau_means]).pow(2).mean().sqrt())
    out["tau: spread within a mode (per unit, rms)"] = float(
        torch.cat([tau[mode == m] - tau_means[m] for m in range(modes)]).pow(2).mean().sqrt())
    return out


def identification(run_dir: str, num_goals: int) -> dict[str, float]:
    import mmaml
    from mmaml.rl.builder import build_env
    from mmaml.rl.envs.registry import make_goals
    from mmaml.rl.evaluation import embed_test_tasks
    from mmaml.engine.mode_identification import mode_identification

    model = mmaml.load(run_dir, device="cpu")
    config = model.config
    model.eval()
    distribution = make_goals(config.env)
    embedding, mode = embed_test_tasks(model, config, build_env(config), distribution, num_goals, config.eval_seed)
    r = mode_identification(embedding, mode, list(distribution.modes))
    return {"k-NN accuracy": r["knn_accuracy"], "linear-probe accuracy": r["linear_accuracy"], "chance": r["chance"],
            "silhouette": r["silhouette"], "goals scored": r["num_scored"]}


def episode_statistics(observations: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """``observations [T, E, H, O]``, ``rewards [T, E, H]`` -> ``[T, 1 + O]``: each episode's mean reward
    and the least-squares slope of its rewards on each observation coordinate (0 where the coordinate
    does not vary within the episode), averaged over each task's E episodes."""
    obs, r = observations.double(), rewards.double()
    dobs = obs - obs.mean(2, keepdim=True)  # [T, E, H, O]
    dr = (r - r.mean(2, keepdim=True)).unsqueeze(-1)  # [T, E, H, 1]
    var = dobs.pow(2).sum(2)  # [T, E, O]
    cov = (dobs * dr).sum(2)
    slope = torch.where(var > 1e-12, cov / var.clamp_min(1e-12), torch.zeros_like(cov))
    return torch.cat([r.mean(2, keepdim=True), slope], dim=-1).mean(1)


def readability(run_dir: str, num_goals: int) -> dict[str, float]:
    import mmaml
    from mmaml.rl.builder import build_env
    from mmaml.rl.evaluation import encoder_inputs, sample_test_goals
    from mmaml.rl.envs.registry import make_goals
    from mmaml.engine.mode_identification import mode_identification

    model = mmaml.load(run_dir, device="cpu")
    config = model.config
    distribution = make_goals(config.env)
    goals, mode, generator = sample_test_goals(distribution, num_goals, config.eval_seed)
    episodes = encoder_inputs(model, config, build_env(config), goals, generator)
    stats = episode_statistics(episodes.observations, episodes.rewards)
    r = mode_identification(stats, mode, list(distribution.modes))
    return {"mode from the encoder's input, linear probe on episode statistics": r["linear_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--tasks", type=int, default=200, help="tasks of the gradient probe")
    parser.add_argument("--goals", type=int, default=400, help="test goals for the mode identification")
    parser.add_argument("--seed", type=int, default=0, help="of the gradient probe's meta-batch")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    for run in args.runs:
        print(run)
        found = {**identification(run, args.goals), **readability(run, args.goals), **probe(run, args.tasks, args.seed)}
        for key, value in found.items():
            print(f"  {key:<62} {value: .4f}")


if __name__ == "__main__":
    main()
