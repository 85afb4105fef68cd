import math

import pytest
import torch

from mmaml.tasks.regression import FAMILIES, MODE_SETS, RegressionTasks


def sample(modes, n=3000, seed=0, **kw):
    return RegressionTasks(modes, **kw).sample(n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "family, ranges",
    [
        ("sinusoid", [(0.1, 5.0), (0.0, math.pi)]),
        ("linear", [(-3, 3), (-3, 3)]),
        ("tanh", [(-3, 3), (-3, 3), (-3, 3)]),
        ("l1norm", [(-3, 3), (-3, 3), (-3, 3)]),
    ],
)
def test_parameter_ranges_cover_the_paper_intervals(family, ranges):
    p = sample([family]).function_params
    for i, (low, high) in enumerate(ranges):
        assert p[:, i].min() >= low and p[:, i].max() <= high
        # uniform draws fill the interval: both ends are approached
        assert p[:, i].min() < low + 0.05 * (high - low) and p[:, i].max() > high - 0.05 * (high - low)


def test_quadratic_sign_and_curvature():
    p = sample(["quadratic"]).function_params
    alpha = p[:, 0].abs()
    assert alpha.min() >= 0.02 and alpha.max() <= 0.15
    positive = (p[:, 0] > 0).float().mean()
    assert 0.45 < positive < 0.55
    assert p[:, 1:].abs().max() <= 3


def test_inputs_in_range_and_noise_std():
    tasks = RegressionTasks(MODE_SETS[5], num_support=5, num_query=7, noise_std=0.3)
    b = tasks.sample(2000, torch.Generator().manual_seed(1))
    assert b.support_x.shape == (2000, 5, 1) and b.query_x.shape == (2000, 7, 1)
    assert b.support_x.abs().max() <= 5 and b.query_x.abs().max() <= 5
    for x, y in ((b.support_x, b.support_y), (b.query_x, b.query_y)):
        residual = y - tasks.evaluate(b.mode, b.function_params, x)
        assert abs(residual.std().item() - 0.3) < 0.01
        assert abs(residual.mean().item()) < 0.01


def test_targets_follow_each_formula():
    tasks = RegressionTasks(MODE_SETS[5], noise_std=0.0)
    b = tasks.sample(10, torch.Generator().manual_seed(2))
    x, y, p = b.support_x[..., 0], b.support_y[..., 0], b.function_params
    for t in range(10):
        a, c, d = p[t]
        xs = x[t]
        expected = {
            "sinusoid": a * torch.sin(xs - c),
            "linear": a * xs + c,
            "quadratic": a * (xs - c) ** 2 + d,
            "tanh": a * torch.tanh(xs - c) + d,
            "l1norm": a * (xs - c).abs() + d,
        }[tasks.modes[int(b.mode[t])]]
        torch.testing.assert_close(y[t], expected)


@pytest.mark.parametrize("n_modes, n_tasks", [(2, 50), (3, 75), (5, 125), (3, 10)])
def test_mode_balance(n_modes, n_tasks):
    b = sample(MODE_SETS[n_modes], n=n_tasks)
    counts = torch.bincount(b.mode, minlength=n_modes)
    assert counts.max() - counts.min() <= 1
    if n_tasks % n_modes == 0:
        assert (counts == n_tasks // n_modes).all()


def test_same_seed_same_tasks_and_different_seed_differs():
    a, b, c = sample(MODE_SETS[3], 30, 5), sample(MODE_SETS[3], 30, 5), sample(MODE_SETS[3], 30, 6)
    assert torch.equal(a.support_y, b.support_y) and torch.equal(a.function_params, b.function_params)
    assert not torch.equal(a.support_y, c.support_y)


def test_dense_query_grid_is_noiseless():
    tasks = RegressionTasks(MODE_SETS[2])
    grid = torch.linspace(-5, 5, 11)
    b = tasks.sample(4, torch.Generator().manual_seed(0), query_x=grid)
    assert b.query_x.shape == (4, 11, 1)
    torch.testing.assert_close(b.query_y, tasks.evaluate(b.mode, b.function_params, b.query_x))


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="unknown function family"):
        RegressionTasks(["sinusoid", "cubic"])


def test_all_five_families_registered():
    assert set(FAMILIES) == {"sinusoid", "linear", "quadratic", "tanh", "l1norm"}
