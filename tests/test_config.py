import pytest

from mmaml.errors import ConfigError
from mmaml.supervised.config import RegressionConfig
from mmaml.engine.config import apply_overrides, parse_assignment
from mmaml.presets import PRESETS, resolve


def test_every_preset_resolves_to_a_valid_config_with_paper_settings():
    regression = [p for p in PRESETS if p.startswith("regression-")]
    assert len(regression) == 15
    for name in regression:
        c = resolve(name).validate()
        n = len(c.modes)
        assert c.meta_batch_size == {2: 50, 3: 75, 5: 125}[n]
        assert (c.iterations, c.inner_steps, c.inner_lr, c.meta_lr, c.grad_norm_clip) == (70000, 5, 0.001, 0.001, 2.0)
        if c.method == "mumomaml":
            assert c.inner_grad_clip == 10.0 and c.bias_transformation == 0
            assert c.modulated_layers == ([0] if n == 2 else [0, 1, 2])
        else:
            assert c.bias_transformation == 20 and c.inner_grad_clip is None


def test_yaml_file_can_start_from_a_preset(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("preset: regression-3modes-sigmoid\ninner_steps: 2\nmeta_lr: 1\n")
    c = resolve(str(f))
    assert c.modulation == "sigmoid" and c.inner_steps == 2 and c.meta_lr == 1.0 and len(c.modes) == 3


@pytest.mark.parametrize(
    "assignment, match",
    [
        ("inner_steps=-1", "inner_steps"),
        ("inner_steps=two", "inner_steps must be an integer"),
        ("modes=[sinusoid,cubic]", "modes"),
        ("meta_batch_size=51", "multiple of the number of modes"),
        ("modulation=relu", "modulation"),
        ("modulation_init=ones", "modulation_init"),
        ("modulated_layers=[3]", "modulated_layers"),
        ("inner_lr=0", "inner_lr"),
        ("first_order=1", "first_order must be true or false"),
        ("learning_rate=0.1", "unknown config key 'learning_rate'"),
        ("device=tpu", "device"),
    ],
)
def test_bad_values_name_the_key(assignment, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(resolve("regression-2modes-film"), dict([parse_assignment(assignment)])).validate()


def test_set_values_are_typed():
    c = apply_overrides(RegressionConfig(), dict(map(parse_assignment, [
        "inner_grad_clip=null", "meta_lr=1e-4", "modes=sinusoid,linear,tanh", "first_order=true", "meta_batch_size=30"])))
    c.validate()
    assert c.inner_grad_clip is None and c.meta_lr == 1e-4 and c.modes == ["sinusoid", "linear", "tanh"]
    assert c.first_order is True


def test_unknown_preset_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'film'.*did you mean"):
        resolve("film")
    bad = tmp_path / "bad.yaml"
    bad.write_text("inner_steps: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(str(tmp_path / "missing.yaml"))


def test_seed_equal_to_eval_seed_is_rejected():
    from mmaml.errors import ConfigError
    from mmaml.engine.config import apply_overrides
    from mmaml.presets import resolve

    for preset in ("regression-2modes-film", "rl-navigation-maml"):
        config = resolve(preset)
        with pytest.raises(ConfigError, match="eval_seed"):
            apply_overrides(config, {"seed": config.eval_seed}).validate()


@pytest.mark.parametrize("modes, expected", [(["sinusoid", "linear"], ["hidden.0"]),
                                             (["sinusoid", "linear", "quadratic"], ["hidden.0", "hidden.1", "hidden.2"])])
def test_hand_written_config_modulates_the_papers_layers_for_its_mode_count(modes, expected):
    from mmaml.kinds import build_model
    from mmaml.supervised.config import RegressionConfig

    config = RegressionConfig(modes=modes, meta_batch_size=6 * len(modes)).validate()
    assert config.modulated_layers is None
    assert list(build_model(config).learner.sites) == expected
