"""Device-agnostic code: an accelerator computes what the CPU computes, and runs move between devices.

The accelerator cases run where CUDA is present and are skipped elsewhere; the
CPU case of the round trip runs everywhere.
"""

import copy

import numpy as np
import pytest
import torch

from mmaml import MAML, Learner, MultiMAML, MuMoMAML, RecurrentTaskEncoder, RegressionMLP, RegressionTasks
from mmaml.data.image_classes import ImageClasses
from mmaml.metalearners.losses import cross_entropy_per_task
from mmaml.models.conv import ConvLearner, ConvTaskEncoder
from mmaml.tasks.classification import ImageClassificationTasks
from mmaml.kinds import build_tasks
from mmaml.engine.config import apply_overrides
from mmaml.supervised.evaluation import evaluate
from mmaml.presets import resolve
from mmaml.runs import load_run
from mmaml.runs import make_trainer

CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"))


@pytest.fixture
def exact_cuda_math():
    """TF32 would make CUDA convolutions differ from the CPU by far more than float32 rounding."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def regression_model(kind: str):
    torch.manual_seed(0)
    inner = dict(inner_lr=0.01, inner_steps=3, inner_grad_clip=10.0)
    if kind == "maml":
        return MAML(Learner(RegressionMLP(hidden_sizes=(32, 32), weight_std=0.3)), **inner)
    if kind == "multi-maml":
        return MultiMAML([Learner(RegressionMLP(hidden_sizes=(32, 32), weight_std=0.3)) for _ in range(3)], **inner)
    learner = Learner(RegressionMLP(hidden_sizes=(32, 32), weight_std=0.3), modulate=["hidden.0", "hidden.1"])
    return MuMoMAML(learner, RecurrentTaskEncoder(2, 16), "film", **inner)


def image_model_and_batch():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = [ImageClasses(name, rng.integers(0, 256, (8 * 6, 16, 16, 3), dtype=np.uint8),
                         np.arange(0, 49, 6, dtype=np.int64), [f"{name}{c}" for c in range(8)]) for name in "ab"]
    batch = ImageClassificationTasks(data, num_ways=3, num_shots=2, num_query=2).sample(4, torch.Generator().manual_seed(0))
    net = ConvLearner(num_classes=3, channels=(8, 8, 8))
    model = MuMoMAML(Learner(net, modulate=net.modulation_sites()), ConvTaskEncoder((8, 8, 8), 16), "film",
                     inner_lr=0.05, inner_steps=2, inner_grad_clip=20.0, loss_fn=cross_entropy_per_task)
    return model, batch


def loss_and_grads(model, batch):
    out = model(batch, with_prior=True)
    grads = torch.autograd.grad(out.loss, list(model.parameters()), allow_unused=True)
    return out, [g.cpu() if g is not None else None for g in grads]


@pytest.mark.parametrize("device", [CUDA])
@pytest.mark.parametrize("kind", ["maml", "multi-maml", "film", "conv-film"])
def test_an_accelerator_gives_the_cpus_losses_and_meta_gradients(device, kind, exact_cuda_math):
    if kind == "conv-film":
        model, batch = image_model_and_batch()
    else:
        model = regression_model(kind)
        batch = RegressionTasks(("sinusoid", "linear", "quadratic")).sample(9, torch.Generator().manual_seed(0))
    moved = copy.deepcopy(model).to(device)
    ref_out, ref_grads = loss_and_grads(model, batch)
    dev_out, dev_grads = loss_and_grads(moved, batch.to(device))
    assert dev_out.query_loss.device.type == device
    torch.testing.assert_close(dev_out.query_loss.cpu(), ref_out.query_loss, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dev_out.prior_query_loss.cpu(), ref_out.prior_query_loss, rtol=1e-4, atol=1e-5)
    for (name, _), a, b in zip(model.named_parameters(), dev_grads, ref_grads):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_a_run_trained_on_a_device_resumes_and_evaluates_on_the_cpu(tmp_path, device):
    small = {"hidden_sizes": [16, 16], "meta_batch_size": 6, "encoder_hidden": 8, "iterations": 4,
             "checkpoint_every": 2, "device": device}
    config = apply_overrides(resolve("regression-2modes-film"), small).validate()
    run = tmp_path / "run"
    trainer = make_trainer(config, run, progress=False, tensorboard=False)
    trainer.train(stop_after=2)
    assert all(p.device.type == device for p in trainer.model.parameters())
    on_device = evaluate(trainer.model, build_tasks(config), num_tasks=50, seed=3)

    _, model, _ = load_run(run, "cpu")  # the checkpoint holds CPU tensors, whatever trained it
    assert all(p.device.type == "cpu" for p in model.parameters())
    on_cpu = evaluate(model, build_tasks(config), num_tasks=50, seed=3)
    for key in ("post_modulation_mse", "post_adaptation_mse"):
        assert on_cpu[key]["mean"] == pytest.approx(on_device[key]["mean"], rel=1e-4)

    resumed = make_trainer(apply_overrides(config, {"device": "cpu"}).validate(), run, resume=True, progress=False,
                      tensorboard=False)
    resumed.train()
    assert resumed.iteration == 4
    assert all(torch.isfinite(p).all() for p in resumed.model.parameters())


@pytest.mark.parametrize("device", [CUDA])
@pytest.mark.parametrize("preset", ["rl-navigation-maml", "rl-navigation-mumomaml", "rl-cheetah-speed-mumomaml"])
def test_rl_surrogate_and_meta_gradient_match_cpu(device, preset, exact_cuda_math):
    """The MAML-TRPO surrogate, its meta-gradient and a Fisher-vector product, on the same episodes."""
    from mmaml.rl.builder import build_env, build_policy_metalearner
    from mmaml.rl.envs.registry import make_goals
    from mmaml.rl.maml_trpo import fisher_vector_product, surrogate
    from mmaml.rl.metalearner import rollout_adaptation
    from mmaml.rl.trpo import flatten

    config = apply_overrides(resolve(preset), {"meta_batch_size": 4, "episodes_per_task": 4}).validate()
    torch.manual_seed(0)
    cpu_model = build_policy_metalearner(config)
    env = build_env(config)
    g = torch.Generator().manual_seed(0)
    goals, mode = make_goals(config.env).sample(4, g)
    rollouts = rollout_adaptation(cpu_model, env, goals, mode, 4, 1, g, 2)
    results = []
    for model, r in ((cpu_model, rollouts), (copy.deepcopy(cpu_model).to(device), rollouts.to(device))):
        params = list(model.parameters())
        loss, _, pred = surrogate(model, r, None, create_graph=True)
        grad = flatten(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True), params)
        v = torch.ones_like(grad)
        results.append((loss.cpu(), grad.cpu(), fisher_vector_product(pred, params, 0.0)(v).cpu()))
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("device", [CUDA])
def test_cheetah_sampling_with_the_policy_on_the_device(device):
    """The half-cheetah's physics runs on the CPU whatever the policy's device: the same first steps."""
    from mmaml.rl.builder import build_env, build_policy_metalearner
    from mmaml.rl.envs.registry import make_goals
    from mmaml.rl.sampler import sample_episodes

    config = apply_overrides(resolve("rl-cheetah-location-maml"), {"meta_batch_size": 2}).validate()
    torch.manual_seed(0)
    model = build_policy_metalearner(config)
    goals, _ = make_goals(config.env).sample(2, torch.Generator().manual_seed(1))
    runs = []
    for m, where in ((model, "cpu"), (copy.deepcopy(model).to(device), device)):
        theta = {k: v.detach() for k, v in m.learner.meta_parameters().items()}
        episodes = sample_episodes(build_env(config), m.policy(theta, None), goals.to(where), 3,
                                   torch.Generator().manual_seed(2))
        assert episodes.observations.device.type == torch.device(where).type
        runs.append(episodes.observations[:, :, :5].cpu())
    torch.testing.assert_close(runs[1], runs[0], atol=1e-4, rtol=1e-4)
