"""Runs saved by earlier code (tests/fixtures/saved_runs) still load, evaluate alike and resume alike."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from mmaml.cli.main import main
from mmaml.engine.checkpoint import load_checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "saved_runs"
RUNS = {"regression": ("regression-2modes-film", 20), "rl": ("rl-navigation-mumomaml", 4)}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _rows(run: Path) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv as written (empty cells stay empty)."""
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _flat(value, prefix: str = "") -> dict:
    """``{"a.b.0": leaf}`` for every leaf of nested dicts and lists, timings left out."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() if key != "seconds"
                for k, v in _flat(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): value}


@pytest.mark.parametrize("name", sorted(RUNS))
@pytest.mark.parametrize("checkpoint", ["last", "best"])
def test_saved_run_evaluates_to_its_saved_numbers(name, checkpoint, tmp_path, one_thread, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    saved = FIXTURES / name / ("eval.json" if checkpoint == "last" else "eval_best.json")
    if not saved.exists():
        pytest.skip("this run has no best checkpoint")
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)
    (run / saved.name).unlink()
    assert main(["eval", str(run), "--tasks", str(RUNS[name][1]), "--checkpoint", checkpoint]) == 0
    again = json.loads((run / saved.name).read_text())
    again, before = _flat(again), _flat(json.loads(saved.read_text()))
    assert again.keys() == before.keys()
    for key, value in before.items():
        if isinstance(value, float):
            assert again[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
        else:
            assert again[key] == value, key


@pytest.mark.parametrize("name", sorted(RUNS))
def test_saved_run_resumes_to_the_same_parameters(name, tmp_path, one_thread, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    expected = json.loads((FIXTURES / "resumed.json").read_text())[name]
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)
    preset = RUNS[name][0]
    assert main(["train", preset, "--out", str(run), "--resume", "--iterations", str(expected["iteration"]),
                 "--no-progress", "--no-tensorboard"]) == 0
    state = load_checkpoint(run / "checkpoint.pt")
    assert int(state["iteration"]) == expected["iteration"]
    sums = {k: float(v.double().sum()) for k, v in state["model"].items()}
    assert sums.keys() == expected["parameter_sums"].keys()
    for key, value in expected["parameter_sums"].items():
        assert sums[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    # the saved rows keep their values, under today's column names where they were renamed
    before, after = _rows(FIXTURES / name), _rows(run)
    renamed = {"outer_seconds": "trpo_seconds", "skipped_epochs": "backtracks"} if name == "rl" else {}
    assert len(after) > len(before)
    for old, new in zip(before, after):
        for column, value in new.items():
            assert value == old[renamed.get(column, column)], column
