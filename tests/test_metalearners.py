import pytest
import torch

from mmaml import MAML, Learner, MultiMAML, MuMoMAML, RecurrentTaskEncoder, RegressionMLP, RegressionTasks


def tasks(n=6, modes=("sinusoid", "linear", "quadratic")):
    return RegressionTasks(modes).sample(n, torch.Generator().manual_seed(0))


def test_multi_maml_starts_each_task_from_its_modes_model():
    learners = [Learner(RegressionMLP(hidden_sizes=(8,), weight_std=0.5)) for _ in range(3)]
    model = MultiMAML(learners, inner_lr=0.01, inner_steps=1)
    b = tasks()
    params = model.task_parameters(b)
    for t in range(b.num_tasks):
        own = learners[int(b.mode[t])].meta_parameters()
        for name, value in params.items():
            torch.testing.assert_close(value[t], own[name])


def test_multi_maml_gradients_reach_only_the_modes_present():
    learners = [Learner(RegressionMLP(hidden_sizes=(8,), weight_std=0.5)) for _ in range(3)]
    model = MultiMAML(learners, inner_lr=0.01, inner_steps=2)
    b = tasks().select(torch.tensor([0, 1, 4, 5]))  # modes 0 and 2 only
    model(b).loss.backward()
    assert learners[0].model.output.weight.grad.abs().sum() > 0
    assert learners[2].model.output.weight.grad.abs().sum() > 0
    assert learners[1].model.output.weight.grad is None or learners[1].model.output.weight.grad.abs().sum() == 0


def test_multi_maml_split_by_mode_matches_per_task_initialisations():
    # The grouped forward must equal adapting every task from its own stacked copy of its mode's theta,
    # also when the modes are interleaved in the batch.
    learners = [Learner(RegressionMLP(hidden_sizes=(8, 8), weight_std=0.5)) for _ in range(3)]
    model = MultiMAML(learners, inner_lr=0.05, inner_steps=2, inner_grad_clip=1.0)
    b = tasks(9).select(torch.tensor([4, 0, 8, 1, 7, 2, 3, 6, 5]))
    grouped = model(b, with_prior=True)
    reference = model.run_from(b, model.initial_parameters(b), with_prior=True)
    for field in ("query_loss", "prior_query_loss", "query_pred", "prior_query_pred"):
        torch.testing.assert_close(getattr(grouped, field), getattr(reference, field))
    for name, value in reference.adapted_params.items():
        torch.testing.assert_close(grouped.adapted_params[name], value)
    params = list(model.parameters())
    for g, r in zip(torch.autograd.grad(grouped.loss, params), torch.autograd.grad(reference.loss, params)):
        torch.testing.assert_close(g, r)


def test_multi_maml_rejects_unknown_modes():
    model = MultiMAML([Learner(RegressionMLP(hidden_sizes=(8,)))] * 2, inner_lr=0.01, inner_steps=1)
    with pytest.raises(ValueError, match="modes must lie"):
        model(tasks())


def test_zero_initialised_modulation_starts_as_maml_and_then_learns():
    torch.manual_seed(0)
    learner = Learner(RegressionMLP(hidden_sizes=(16, 16)), modulate=["hidden.0", "hidden.1"])
    model = MuMoMAML(learner, RecurrentTaskEncoder(2, 8), "film", "zero", inner_lr=0.01, inner_steps=2)
    maml = MAML(learner, inner_lr=0.01, inner_steps=2)
    b = tasks()
    out = model(b)
    assert all(float(t.detach().abs().max()) == 0 for t in out.taus.values())
    torch.testing.assert_close(out.query_loss, maml(b).query_loss)
    out.loss.backward()
    # the heads get a gradient (tau = W v + b with v != 0), so the modulation does not stay the identity
    assert all(float(h.weight.grad.abs().sum()) > 0 for h in model.modulation_network.heads)
    with pytest.raises(ValueError, match="modulation init"):
        MuMoMAML(learner, RecurrentTaskEncoder(2, 8), "film", "ones", inner_lr=0.01, inner_steps=2)


def test_mumomaml_trains_theta_and_omega_jointly():
    learner = Learner(RegressionMLP(hidden_sizes=(16, 16)), modulate=["hidden.0", "hidden.1"])
    model = MuMoMAML(learner, RecurrentTaskEncoder(2, 8), "film", inner_lr=0.01, inner_steps=2)
    out = model(tasks())
    assert set(out.taus) == {"hidden.0", "hidden.1"} and out.taus["hidden.0"].shape == (6, 32)
    assert out.embedding.shape == (6, 16)
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_tau_held_fixed_in_inner_loop():
    """Only learner parameters adapt; the modulation is computed once from the support set."""
    learner = Learner(RegressionMLP(hidden_sizes=(16,)), modulate=["hidden.0"])
    model = MuMoMAML(learner, RecurrentTaskEncoder(2, 8), "sigmoid", inner_lr=0.01, inner_steps=3)
    calls = []
    model.modulation_network.register_forward_hook(lambda *a: calls.append(1))
    out = model(tasks())
    assert len(calls) == 1
    assert set(out.adapted_params) == {n for n, _ in learner.model.named_parameters()}


def test_gru_encoder_and_bad_settings():
    enc = RecurrentTaskEncoder(2, 8, cell="gru")
    assert enc(torch.randn(3, 5, 1), torch.randn(3, 5, 1)).shape == (3, 16)
    with pytest.raises(ValueError, match="encoder cell"):
        RecurrentTaskEncoder(2, 8, cell="transformer")
    with pytest.raises(ValueError, match="modulated layer"):
        MuMoMAML(Learner(RegressionMLP()), RecurrentTaskEncoder(2), inner_lr=0.1, inner_steps=1)


def test_maml_bias_transformation_is_adapted():
    model = MAML(Learner(RegressionMLP(hidden_sizes=(8,), bias_transformation=4)), inner_lr=0.1, inner_steps=1)
    out = model(tasks())
    bt = out.adapted_params["bias_transformation"]
    assert bt.shape == (6, 4) and not torch.allclose(bt[0], bt[1])


def test_mean_ci95_by_hand():
    from mmaml.engine.statistics import mean_ci95

    result = mean_ci95(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    # std (n - 1) = sqrt(5/3) = 1.290994; 1.96 * 1.290994 / sqrt(4) = 1.265174
    assert abs(result["mean"] - 2.5) < 1e-12 and abs(result["ci95"] - 1.2651741) < 1e-6


def test_recurrent_encoder_embedding_is_last_forward_and_first_backward_output():
    """Against two unidirectional LSTMs carrying the bidirectional one's weights, run by hand."""
    from torch import nn

    from mmaml.core.task_encoder import RecurrentTaskEncoder

    torch.manual_seed(0)
    encoder = RecurrentTaskEncoder(input_dim=2, hidden_size=5, num_layers=2)
    x, y = torch.randn(3, 4, 1), torch.randn(3, 4, 1)
    seq = torch.cat([x, y], -1)

    def direction(layer: int, suffix: str, inputs):
        lstm = nn.LSTM(inputs.shape[-1], 5, batch_first=True)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{name}_l0").data.copy_(getattr(encoder.rnn, f"{name}_l{layer}{suffix}"))
        return lstm(inputs)[0]

    fwd1 = direction(0, "", seq)
    bwd1 = direction(0, "_reverse", seq.flip(1)).flip(1)
    layer2_in = torch.cat([fwd1, bwd1], -1)
    fwd2 = direction(1, "", layer2_in)
    bwd2 = direction(1, "_reverse", layer2_in.flip(1)).flip(1)
    expected = torch.cat([fwd2[:, -1], bwd2[:, 0]], -1)
    torch.testing.assert_close(encoder(x, y), expected)


def test_supervised_and_rl_meta_learners_share_one_protocol():
    """Every meta-learner offers the MetaLearner protocol, and its adapt gives a model of the adapted tasks."""
    from mmaml.core.meta_learner import MetaLearner
    from mmaml.kinds import build_model
    from mmaml.presets import resolve
    from mmaml.rl.envs.registry import make_batched
    from mmaml.engine.config import apply_overrides

    regression = {"hidden_sizes": [8], "encoder_hidden": 4, "modulated_layers": None}
    for preset in ("regression-2modes-maml", "regression-2modes-film"):
        model = build_model(apply_overrides(resolve(preset), regression).validate())
        assert isinstance(model, MetaLearner)
        assert model.modulated == (preset.endswith("film"))
        x = torch.linspace(-1, 1, 10).reshape(2, 5, 1)
        adapted = model.adapt(x, torch.sin(x), steps=1)
        assert adapted(x).shape == (2, 5, 1)
    for method in ("maml", "mumomaml"):
        config = apply_overrides(resolve(f"rl-navigation-{method}"), {
            "hidden_sizes": [8], "encoder_hidden": 4, "embedding_dim": 4, "episodes_per_task": 2,
            "eval_inner_steps": 1}).validate()
        model = build_model(config)
        assert isinstance(model, MetaLearner)
        assert model.modulated == (method == "mumomaml")
        assert len(model.parameter_groups()) == (2 if model.modulated else 1)
        assert sum(p.numel() for g in model.parameter_groups() for p in g) == sum(p.numel() for p in model.parameters())
        env = make_batched(config.env)
        goals = torch.tensor([[0.3, 0.2], [-0.4, 0.1]])
        adapted = model.adapt(env, goals)
        assert len(adapted.rollouts.steps) == config.eval_inner_steps + 1  # the run's eval_inner_steps by default
        assert adapted.rollouts.steps[0].num_tasks == 2
        obs = torch.zeros(2, 3, env.observation_dim)
        assert adapted(obs).shape == (2, 3, 2 * env.action_dim)
