"""Property-based checks of `--set` parsing and config validation (hypothesis).

Whatever key and value a user types, `mmaml train ... --set KEY=VALUE` either
accepts the config (and goes on to train it) or prints one line and exits 2
with nothing written; it never ends in a traceback. Training itself is replaced
by a stand-in here, so the property covers parsing and validation of any value,
including ones far too large to train.
"""

import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmaml.runs as runs_module
from mmaml.cli.main import main
from mmaml.kinds import config_types

KEYS = sorted({f for kind in config_types().values() for f in kind.__dataclass_fields__})
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(string.printable, max_size=12))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4))
KEY = st.one_of(st.sampled_from(KEYS), st.text(string.ascii_letters + "_=", min_size=0, max_size=10))
PRESETS = ["regression-2modes-film", "classification-cpu-2modes-mumomaml-5w1s", "rl-navigation-mumomaml"]


class Accepted(Exception):
    pass


class StandIn:
    """Takes the validated config in place of a trainer, and stops there."""

    def __init__(self, config, run_dir, **kwargs):
        raise Accepted(config)


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(runs_module, "Trainer", StandIn)  # what make_trainer builds


def _text(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(preset=st.sampled_from(PRESETS), key=KEY, value=st.one_of(VALUES, st.text(max_size=12)), raw=st.booleans())
def test_any_set_is_accepted_or_one_line_exit_2_and_nothing_written(tmp_path_factory, capsys, no_training,
                                                                     preset, key, value, raw):
    out = tmp_path_factory.mktemp("run") / "out"
    assignment = f"{key}={value if raw and isinstance(value, str) else _text(value)}"
    capsys.readouterr()
    try:
        code = main(["train", preset, "--out", str(out), "--set", assignment, "--no-progress"])
    except Accepted as accepted:
        accepted.args[0].validate()  # what reaches the trainer is a valid config
        return
    err = capsys.readouterr().err.strip()
    assert code == 2, (assignment, err)
    assert len(err.splitlines()) == 1 and err.startswith("mmaml: error:"), err
    assert not out.exists()
