"""Infinite and NaN settings are refused for every float key of every config kind; an RL run that diverges
stops as a supervised one does, with advice that fits its algorithm."""

import dataclasses
import typing

import pytest

from mmaml.errors import ConfigError, TrainingDiverged
from mmaml.rl.config import RLConfig
from mmaml.supervised.config import ClassificationConfig, RegressionConfig
from mmaml.engine.config import apply_overrides, parse_assignment


def float_keys(kind):
    hints = typing.get_type_hints(kind)
    return [f.name for f in dataclasses.fields(kind) if float in (hints[f.name], *typing.get_args(hints[f.name]))]


CASES = [(kind, key) for kind in (RegressionConfig, ClassificationConfig, RLConfig) for key in float_keys(kind)]


def test_every_kind_has_float_keys_to_check():
    keys = {kind.__name__: float_keys(kind) for kind in (RegressionConfig, ClassificationConfig, RLConfig)}
    assert "meta_lr" in keys["RegressionConfig"] and "inner_lr" in keys["RLConfig"] and "max_kl" in keys["RLConfig"]


@pytest.mark.parametrize("kind,key", CASES, ids=[f"{k.__name__}.{key}" for k, key in CASES])
@pytest.mark.parametrize("raw", [".inf", "-.inf", ".nan"])
def test_a_non_finite_value_is_refused_naming_the_key(kind, key, raw):
    with pytest.raises(ConfigError) as err:
        apply_overrides(kind(), dict([parse_assignment(f"{key}={raw}")])).validate()
    message = str(err.value)
    assert message.startswith(f"invalid {key}=") and "must be a finite number" in message and "\n" not in message


def test_a_diverging_rl_run_stops_and_names_the_rl_settings(tmp_path):
    from mmaml.runs import make_trainer

    for outer, hint in (("trpo", "lower inner_lr (or max_kl)"), ("ppo", "lower inner_lr (or ppo_lr)")):
        config = RLConfig(method="maml", env="navigation", meta_batch_size=4, episodes_per_task=3, hidden_sizes=[8],
                          inner_lr=1e30, iterations=8, max_nonfinite_steps=2, outer_optimizer=outer).validate()
        with pytest.raises(TrainingDiverged) as err:
            make_trainer(config, tmp_path / outer, progress=False, tensorboard=False).train()
        assert "diverged at iteration 2" in str(err.value) and hint in str(err.value)
        assert "meta_lr" not in str(err.value)
