"""Factored linear-weight adaptation gives the results of plain per-task weights."""

import pytest
import torch
from torch import nn

from mmaml import Learner, RegressionTasks
from mmaml.core.low_rank_linear import FactoredParams
from mmaml.metalearners.losses import mse_per_task


class SeqNet(nn.Module):
    """Linear layers applied to [N, L, in] inputs, a modulated hidden layer and a bias-free layer."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 12)
        self.b = nn.Linear(12, 12, bias=False)
        self.c = nn.Linear(12, 1)

    def forward(self, x):  # x [N, 2] -> a fake length-3 sequence
        seq = torch.stack([x, 2 * x, -x], 1)
        h = torch.tanh(self.b(torch.relu(self.a(seq))))
        return self.c(h).mean(1)


def pair(model_fn, modulate=()):
    torch.manual_seed(0)
    fast = Learner(model_fn(), modulate=modulate)
    plain = Learner(model_fn(), modulate=modulate, low_rank_linear=False)
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def compare(fast, plain, params_fn, x, y, taus=None, kind="film", clip=None, lr=0.05, steps=3):
    fa = fast.adapt(params_fn(fast), x, y, mse_per_task, steps, lr, clip, taus=taus, kind=kind)
    pa = plain.adapt(params_fn(plain), x, y, mse_per_task, steps, lr, clip, taus=taus, kind=kind)
    assert isinstance(fa, FactoredParams) and isinstance(pa, dict)
    for name, value in fa.materialize().items():
        torch.testing.assert_close(value, pa[name], rtol=1e-5, atol=1e-6, msg=name)
    lf, lp = mse_per_task(fast(fa, x), y), mse_per_task(plain(pa, x), y)
    torch.testing.assert_close(lf, lp, rtol=1e-5, atol=1e-6)
    gf = torch.autograd.grad(lf.sum(), list(fast.parameters()))
    gp = torch.autograd.grad(lp.sum(), list(plain.parameters()))
    for (name, _), a, b in zip(fast.named_parameters(), gf, gp):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
    return fa


@pytest.mark.parametrize("clip", [None, 1e6, 0.02])
def test_sequence_model_matches_plain_adaptation(clip):
    fast, plain = pair(SeqNet, modulate=["a"])
    x, y = torch.randn(5, 4, 2), torch.randn(5, 4, 1)
    taus = {"a": 0.3 * torch.randn(5, 24)}
    compare(fast, plain, lambda lrn: lrn.meta_parameters(), x, y, taus=taus, clip=clip)


def test_clamp_in_some_steps_only_and_per_task_start():
    """Mixed dense and low-rank updates, tasks starting from different weights (as Multi-MAML)."""
    fast, plain = pair(lambda: nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1)))
    b = RegressionTasks(["sinusoid", "linear"]).sample(6, torch.Generator().manual_seed(0))

    def per_task(lrn):
        return {k: v + 0.1 * torch.randn(6, *v.shape, generator=torch.Generator().manual_seed(1))
                for k, v in lrn.meta_parameters().items()}

    # a bound that some steps' gradients exceed and others do not
    fa = compare(fast, plain, per_task, b.support_x, b.support_y, clip=20.0, lr=0.1, steps=3)
    for delta in fa.deltas.values():
        assert delta.dense is not None and delta.left is not None  # both kinds of update happened


def test_first_order_matches_plain():
    fast, plain = pair(SeqNet)
    x, y = torch.randn(3, 4, 2), torch.randn(3, 4, 1)
    fa = fast.adapt(fast.meta_parameters(), x, y, mse_per_task, 2, 0.1, create_graph=False)
    pa = plain.adapt(plain.meta_parameters(), x, y, mse_per_task, 2, 0.1, create_graph=False)
    gf = torch.autograd.grad(mse_per_task(fast(fa, x), y).sum(), list(fast.parameters()))
    gp = torch.autograd.grad(mse_per_task(plain(pa, x), y).sum(), list(plain.parameters()))
    for a, b in zip(gf, gp):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_linear_layer_used_twice_is_refused_with_advice():
    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Linear(3, 3)

        def forward(self, x):
            return self.f(torch.relu(self.f(x)))

    x, y = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    learner = Learner(Reuse())
    with pytest.raises(RuntimeError, match="low_rank_linear=False"):
        learner.adapt(learner.meta_parameters(), x, y, mse_per_task, 1, 0.1)
    plain = Learner(Reuse(), low_rank_linear=False)
    adapted = plain.adapt(plain.meta_parameters(), x, y, mse_per_task, 1, 0.1)
    assert adapted["f.weight"].shape == (2, 3, 3)


def test_few_clamped_elements_become_a_sparse_cut():
    """A bound just below the largest gradient elements: low-rank steps plus sparse cuts, same result."""
    fast, plain = pair(lambda: nn.Sequential(nn.Linear(3, 24), nn.ReLU(), nn.Linear(24, 24), nn.ReLU(),
                                             nn.Linear(24, 2)))
    x, y = torch.randn(5, 6, 3), 3 * torch.randn(5, 6, 2)
    # with this bound a few elements of the hidden layer's gradients are clamped, many of the last layer's
    fa = compare(fast, plain, lambda lrn: lrn.meta_parameters(), x, y, clip=0.4, lr=0.05, steps=2)
    hidden, last = fa.deltas["2.weight"], fa.deltas["4.weight"]
    assert hidden.values is not None and hidden.dense is None  # sparse cut, no dense fallback
    assert last.dense is not None  # many elements: dense
