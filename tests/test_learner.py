"""A user's own nn.Module, modulated and batched through the public API."""

import pytest
import torch
from torch import nn

import mmaml
from mmaml import Learner, ModulationSite


class TwoBranchNet(nn.Module):
    """Not a Sequential: a custom forward with a conv layer and a skip."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 3, padding=1)
        self.body = nn.Sequential(nn.Linear(4 * 6, 16), nn.Tanh())
        self.head = nn.Linear(16, 2)

    def forward(self, x):  # x [N, 6]
        h = torch.relu(self.conv(x.unsqueeze(1)))
        z = self.body(h.flatten(1))
        return self.head(z) + x[:, :2]


def test_unmodulated_learner_matches_the_plain_module():
    net = TwoBranchNet()
    learner = Learner(net, modulate=["conv", "body.0"])
    x = torch.randn(3, 5, 6)
    out = learner(learner.task_parameters(3), x)
    torch.testing.assert_close(out, net(x.reshape(15, 6)).view(3, 5, 2))


def test_sites_inferred_from_layer_types():
    learner = Learner(TwoBranchNet(), modulate=["conv", "body.0"])
    assert learner.sites == {"conv": ModulationSite(4, -2), "body.0": ModulationSite(16, -1)}
    assert learner.tau_sizes("film") == {"conv": 8, "body.0": 32}


@pytest.mark.parametrize("kind", ["film", "sigmoid", "softmax"])
def test_batched_modulated_forward_equals_manual_per_task_computation(kind):
    net = TwoBranchNet()
    learner = Learner(net, modulate=["conv", "body.0"])
    T = 4
    x = torch.randn(T, 5, 6)
    taus = {k: torch.randn(T, n) for k, n in learner.tau_sizes(kind).items()}
    params = {k: v + 0.1 * torch.randn_like(v) for k, v in learner.task_parameters(T).items()}
    out = learner(params, x, taus, kind)
    for t in range(T):
        p = {k: v[t] for k, v in params.items()}
        h = torch.nn.functional.conv1d(x[t].unsqueeze(1), p["conv.weight"], p["conv.bias"], padding=1)
        h = torch.relu(mmaml.modulate(h, taus["conv"][t], kind, unit_dim=-2))
        z = h.flatten(1) @ p["body.0.weight"].T + p["body.0.bias"]
        z = torch.tanh(mmaml.modulate(z, taus["body.0"][t], kind))
        expected = z @ p["head.weight"].T + p["head.bias"] + x[t, :, :2]
        torch.testing.assert_close(out[t], expected, rtol=1e-5, atol=1e-5)


def test_modulation_only_inside_the_learner_call():
    net = TwoBranchNet()
    learner = Learner(net, modulate=["body.0"])
    x = torch.randn(2, 3, 6)
    taus = {"body.0": torch.full((2, 16), 5.0)}
    modulated = learner(learner.task_parameters(2), x, taus, "sigmoid")
    plain = net(x.reshape(6, 6)).view(2, 3, 2)
    assert not torch.allclose(modulated, plain)
    # the module itself is untouched afterwards
    torch.testing.assert_close(net(x.reshape(6, 6)).view(2, 3, 2), plain)


def test_explicit_site_for_a_custom_layer_and_bad_names():
    class Scale(nn.Module):
        def forward(self, x):
            return 2 * x

    net = nn.Sequential(nn.Linear(3, 5), Scale(), nn.Linear(5, 1))
    learner = Learner(net, modulate={"1": ModulationSite(5, -1)})
    taus = {"1": torch.zeros(2, 5)}
    out = learner(learner.task_parameters(2), torch.randn(2, 4, 3), taus, "sigmoid")
    assert out.shape == (2, 4, 1)
    with pytest.raises(ValueError, match="cannot infer"):
        Learner(net, modulate=["1"])
    with pytest.raises(ValueError, match="no submodule"):
        Learner(net, modulate=["7"])


def test_user_module_meta_trains_through_the_public_api():
    """The README's example: a user MLP, modulated, meta-trained with MuMoMAML."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    learner = mmaml.Learner(net, modulate=["0", "2"])
    model = mmaml.MuMoMAML(learner, mmaml.RecurrentTaskEncoder(input_dim=2, hidden_size=16), "film",
                           inner_lr=0.01, inner_steps=2)
    tasks = mmaml.RegressionTasks(["sinusoid", "linear"])
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for _ in range(60):
        out = model(tasks.sample(20, gen))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    # encoder, modulation heads and the user's net all moved
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10


def test_one_module_in_two_learners_is_refused():
    net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    Learner(net, modulate=["0"])
    with pytest.raises(ValueError, match="already wrapped"):
        Learner(net, modulate=["0"])


@pytest.mark.parametrize("low_rank", [True, False])
def test_parameter_the_forward_never_uses_does_not_move(low_rank):
    class WithSpare(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(1, 3)
            self.out = torch.nn.Linear(3, 1)
            self.spare = torch.nn.Parameter(torch.ones(2))

        def forward(self, x):
            return self.out(torch.relu(self.layer(x)))

    learner = Learner(WithSpare(), low_rank_linear=low_rank)
    x, y = torch.randn(2, 5, 1), torch.randn(2, 5, 1)
    adapted = learner.adapt(learner.meta_parameters(), x, y, lambda p, t: ((p - t) ** 2).mean((1, 2)), 2, 0.1)
    plain = adapted.materialize() if hasattr(adapted, "materialize") else adapted
    torch.testing.assert_close(plain["spare"], torch.ones(2, 2))
    assert not torch.allclose(plain["out.bias"], learner.model.out.bias.detach().expand(2, 1))
