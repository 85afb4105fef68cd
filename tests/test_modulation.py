import pytest
import torch

from mmaml.core.modulation import modulate, tau_size


def test_film_scales_and_shifts_each_unit():
    h = torch.randn(4, 3)  # 4 samples, 3 units
    gamma, beta = torch.tensor([0.5, -1.0, 0.0]), torch.tensor([1.0, 2.0, -3.0])
    out = modulate(h, torch.cat([gamma, beta]), "film")
    torch.testing.assert_close(out, h * (1 + gamma) + beta)
    # gamma = -1 switches a unit off except for its shift
    torch.testing.assert_close(out[:, 1], torch.full((4,), 2.0))


def test_sigmoid_attention_gates_units():
    h = torch.randn(6, 5)
    tau = torch.tensor([-50.0, 0.0, 50.0, 1.0, -1.0])
    out = modulate(h, tau, "sigmoid")
    torch.testing.assert_close(out, h * torch.sigmoid(tau))
    assert out[:, 0].abs().max() < 1e-12
    torch.testing.assert_close(out[:, 2], h[:, 2])
    torch.testing.assert_close(out[:, 1], h[:, 1] / 2)


def test_softmax_attention_weights_sum_to_one_over_units():
    h = torch.ones(2, 4)
    tau = torch.tensor([0.0, 1.0, 2.0, 3.0])
    out = modulate(h, tau, "softmax")
    torch.testing.assert_close(out.sum(-1), torch.ones(2))
    torch.testing.assert_close(out[0], torch.softmax(tau, 0))


def test_conv_channels_are_the_units():
    h = torch.randn(2, 3, 5, 5)  # N, C, H, W
    gamma, beta = torch.randn(3), torch.randn(3)
    out = modulate(h, torch.cat([gamma, beta]), "film", unit_dim=-3)
    expected = h * (1 + gamma.view(3, 1, 1)) + beta.view(3, 1, 1)
    torch.testing.assert_close(out, expected)


def test_batched_tau_modulates_each_task_separately():
    h = torch.randn(2, 4, 3)  # T, N, units
    tau = torch.randn(2, 3)
    out = modulate(h, tau, "sigmoid")
    for t in range(2):
        torch.testing.assert_close(out[t], h[t] * torch.sigmoid(tau[t]))


def test_tau_sizes_and_bad_kind():
    assert tau_size("film", 100) == 200
    assert tau_size("sigmoid", 100) == 100 and tau_size("softmax", 7) == 7
    with pytest.raises(ValueError, match="unknown modulation"):
        modulate(torch.ones(1, 2), torch.ones(2), "relu")
    with pytest.raises(ValueError, match="unknown modulation"):
        tau_size("tanh", 3)
