"""The batched inner loop against a per-task loop, finite differences and first order."""

import pytest
import torch

from mmaml import MAML, Learner, MultiMAML, MuMoMAML, RecurrentTaskEncoder, RegressionMLP, RegressionTasks
from mmaml.core.inner_loop import adapt, clip_elementwise
from mmaml.metalearners.losses import mse_per_task
from mmaml.metalearners.per_task import per_task_query_losses


def build(method, clip=10.0, first_order=False, hidden=(40, 40, 40), lr=0.01):
    inner = dict(inner_lr=lr, inner_steps=3, inner_grad_clip=clip, first_order=first_order)
    if method == "maml":
        return MAML(Learner(RegressionMLP(hidden_sizes=hidden, bias_transformation=5, weight_std=0.3)), **inner)
    if method == "multi_maml":
        return MultiMAML([Learner(RegressionMLP(hidden_sizes=hidden, weight_std=0.3)) for _ in range(3)], **inner)
    learner = Learner(RegressionMLP(hidden_sizes=hidden, weight_std=0.3), modulate=["hidden.0", "hidden.2"])
    return MuMoMAML(learner, RecurrentTaskEncoder(2, 8), method, **inner)


def batch(n=12, seed=0):
    return RegressionTasks(["sinusoid", "linear", "quadratic"]).sample(n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", ["maml", "multi_maml", "film", "sigmoid", "softmax"])
@pytest.mark.parametrize("first_order", [False, True])
def test_batched_equals_per_task_loop(method, first_order):
    model = build(method, first_order=first_order)
    b = batch()
    batched = model(b).query_loss
    grads_batched = torch.autograd.grad(batched.mean(), list(model.parameters()), allow_unused=True)
    looped = per_task_query_losses(model, b)
    grads_loop = torch.autograd.grad(looped.mean(), list(model.parameters()), allow_unused=True)
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-5)
    for (name, _), gb, gl in zip(model.named_parameters(), grads_batched, grads_loop):
        if gb is None or gl is None:
            assert gb is None and gl is None, name
            continue
        torch.testing.assert_close(gb, gl, rtol=1e-5, atol=1e-5, msg=name)


def test_clamp_engages_and_still_matches_the_loop():
    model = build("film", clip=0.05, lr=0.05)
    b = batch()
    params = model.task_parameters(b)
    pred = model.learner(params, b.support_x, model.task_modulation(b)[0], "film")
    raw = torch.autograd.grad(mse_per_task(pred, b.support_y).sum(), list(params.values()))
    assert max(g.abs().max() for g in raw) > 0.05  # the bound is really hit
    batched = model(b).query_loss
    looped = per_task_query_losses(model, b)
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-5)
    gb = torch.autograd.grad(batched.mean(), list(model.parameters()))
    gl = torch.autograd.grad(looped.mean(), list(model.parameters()))
    for a, c in zip(gb, gl):
        torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)


def test_clip_elementwise_matches_clamp_in_value_and_gradient():
    for scale in (0.1, 100.0):
        g = (scale * torch.randn(50, dtype=torch.float64)).requires_grad_()
        ours, ref = clip_elementwise(g, 1.0), g.clamp(-1.0, 1.0)
        torch.testing.assert_close(ours, ref)
        torch.testing.assert_close(torch.autograd.grad(ours.sum(), g)[0], torch.autograd.grad(ref.sum(), g)[0])
    assert clip_elementwise(g, None) is g


def tiny_meta_loss(first_order=False):
    """A tiny tanh network in float64 with its meta-loss as a function of theta."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    learner = Learner(net)
    b = RegressionTasks(["sinusoid", "linear"]).sample(4, torch.Generator().manual_seed(1))
    b = type(b)(**{k: (v.double() if v.is_floating_point() else v) for k, v in b.__dict__.items()})
    names = [n for n, _ in net.named_parameters()]

    def meta_loss(flat):
        if not flat.requires_grad:
            flat = flat.clone().requires_grad_()
        shapes = [p.shape for p in net.parameters()]
        chunks = torch.split(flat, [s.numel() for s in shapes])
        theta = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
        params = learner.task_parameters(4, theta)
        adapted = adapt(lambda p, x: learner(p, x), params, b.support_x, b.support_y, mse_per_task,
                        steps=2, lr=0.1, create_graph=not first_order)
        return mse_per_task(learner(adapted, b.query_x), b.query_y).mean(), adapted

    flat = torch.cat([p.detach().flatten() for p in net.parameters()])
    return meta_loss, flat, learner, b


def test_second_order_meta_gradient_matches_finite_differences():
    meta_loss, flat, _, _ = tiny_meta_loss()
    theta = flat.clone().requires_grad_()
    grad = torch.autograd.grad(meta_loss(theta)[0], theta)[0]
    eps = 1e-6
    numeric = torch.stack([
        (meta_loss(flat + eps * e)[0].detach() - meta_loss(flat - eps * e)[0].detach()) / (2 * eps)
        for e in torch.eye(len(flat), dtype=torch.float64)
    ])
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-8)


def test_first_order_drops_the_second_order_terms():
    meta_loss_fo, flat, learner, b = tiny_meta_loss(first_order=True)
    theta = flat.clone().requires_grad_()
    loss, adapted = meta_loss_fo(theta)
    fo = torch.autograd.grad(loss, theta)[0]
    # first order = the query-loss gradient taken at the adapted parameters
    leaf = {k: v.detach().requires_grad_() for k, v in adapted.items()}
    q = mse_per_task(learner(leaf, b.query_x), b.query_y).mean()
    at_adapted = torch.autograd.grad(q, list(leaf.values()))
    expected = torch.cat([g.sum(0).flatten() for g in at_adapted])
    torch.testing.assert_close(fo, expected)
    meta_loss_so, _, _, _ = tiny_meta_loss(first_order=False)
    theta2 = flat.clone().requires_grad_()
    so = torch.autograd.grad(meta_loss_so(theta2)[0], theta2)[0]
    assert (fo - so).abs().max() > 1e-3 * so.abs().max()


def test_meta_parameters_are_never_mutated():
    model = build("film")
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model(batch())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_zero_steps_is_the_modulated_prior_computed_by_hand():
    """No inner step: the query loss is the FiLM-modulated MLP's, written out without hooks or vmap."""
    model = build("film")
    b = batch()
    out = model(b, steps=0, with_prior=True)
    taus, _ = model.task_modulation(b)
    mlp = model.learner.model
    losses = []
    for t in range(b.num_tasks):
        h = b.query_x[t]
        for i, layer in enumerate(mlp.hidden):
            h = h @ layer.weight.T + layer.bias
            if f"hidden.{i}" in taus:
                gamma, beta = taus[f"hidden.{i}"][t].chunk(2)
                h = h * (1 + gamma) + beta
            h = torch.relu(h)
        pred = h @ mlp.output.weight.T + mlp.output.bias
        losses.append(((pred - b.query_y[t]) ** 2).mean())
    torch.testing.assert_close(out.query_loss, torch.stack(losses))
    torch.testing.assert_close(out.prior_query_loss, torch.stack(losses))
    assert not torch.allclose(model(b, steps=1).query_loss, out.query_loss)


def test_full_mumomaml_meta_gradient_matches_finite_differences_with_the_clamp_active():
    """Directional derivatives of the meta-loss along random directions, for the learner's parameters and
    for the encoder + modulation network's, against central differences (float64, clamp engaged)."""
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Linear(1, 6), torch.nn.Tanh(), torch.nn.Linear(6, 6), torch.nn.Tanh(),
                              torch.nn.Linear(6, 1))
    learner = Learner(net, modulate=["0", "2"])
    model = MuMoMAML(learner, RecurrentTaskEncoder(2, 3, num_layers=1), "film", inner_lr=0.1, inner_steps=2,
                     inner_grad_clip=0.2).double()
    b = batch(6, seed=2)
    b = type(b)(**{k: (v.double() if v.is_floating_point() else v) for k, v in b.__dict__.items()})
    unclamped = MuMoMAML(learner, model.task_encoder, "film", inner_lr=0.1, inner_steps=2, inner_grad_clip=None)
    unclamped.modulation_network = model.modulation_network
    with torch.no_grad():
        assert abs(float(model(b).loss) - float(unclamped(b).loss)) > 1e-3  # the clamp changes the result
    groups = {"learner": list(model.learner.parameters()),
              "encoder+modulation": list(model.task_encoder.parameters()) + list(model.modulation_network.parameters())}
    for name, params in groups.items():
        grad = parameters_to_vector(torch.autograd.grad(model(b).loss, params))
        start = parameters_to_vector(params).detach().clone()
        generator = torch.Generator().manual_seed(0)
        for _ in range(3):
            d = torch.randn(start.shape, generator=generator, dtype=torch.float64)
            eps = 1e-6
            with torch.no_grad():
                vector_to_parameters(start + eps * d, params)
            up = float(model(b).loss.detach())
            with torch.no_grad():
                vector_to_parameters(start - eps * d, params)
            down = float(model(b).loss.detach())
            with torch.no_grad():
                vector_to_parameters(start, params)
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - float(grad @ d)) <= 1e-6 + 1e-5 * abs(numeric), (name, numeric, float(grad @ d))
