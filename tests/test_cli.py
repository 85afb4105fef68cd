"""The command line: happy paths on tiny runs, and every error path (exit 2, one line, nothing written)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmaml.cli.main import main
from mmaml.engine.checkpoint import load_checkpoint

TINY = ["--set", "hidden_sizes=[16,16]", "--set", "meta_batch_size=4", "--set", "encoder_hidden=8",
        "--set", "log_every=2", "--no-progress"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def fail(capsys, *argv):
    """Run a command that must fail as a user error: exit 2 and one line on stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "film"
    assert main(["train", "regression-2modes-film", "--out", str(run_dir), "--iterations", "4", *TINY]) == 0
    return run_dir


def test_presets_lists_every_row(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    for n in (2, 3, 5):
        for row in ("maml", "multi-maml", "softmax", "sigmoid", "film"):
            assert f"regression-{n}modes-{row}" in names


def test_train_writes_config_metrics_checkpoint_and_tensorboard(trained):
    assert (trained / "config.yaml").is_file() and (trained / "checkpoint.pt").is_file()
    rows = (trained / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,loss") and [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    assert any(p.name.startswith("events.out.tfevents") for p in (trained / "tensorboard").iterdir())
    state = load_checkpoint(trained / "checkpoint.pt")
    assert state["iteration"] == 4 and state["config"]["hidden_sizes"] == [16, 16]


def test_eval_prints_and_writes_json(trained, capsys):
    code, out, _ = run(capsys, "eval", str(trained), "--tasks", "40")
    assert code == 0 and "post modulation" in out and "sinusoid" in out
    result = json.loads((trained / "eval.json").read_text())
    for key in ("post_modulation_mse", "post_adaptation_mse"):
        assert set(result[key]) == {"mean", "ci95"} and result[key]["mean"] > 0
        for mode in ("sinusoid", "linear"):
            assert set(result["per_mode"][mode][key]) == {"mean", "ci95"}
    assert result["num_tasks"] == 40 and result["per_mode"]["linear"]["num_tasks"] == 20
    per_task = json.loads((trained / "eval_per_task.json").read_text())
    assert len(per_task["post_adaptation"]) == 40 and per_task["mode"].count(1) == 20
    mean = sum(per_task["post_adaptation"]) / 40
    assert mean == pytest.approx(result["post_adaptation_mse"]["mean"], rel=1e-9)


def test_plot_writes_figure2_pngs(trained, tmp_path, capsys):
    maml_dir = tmp_path / "maml"
    assert main(["train", "regression-2modes-maml", "--out", str(maml_dir), "--iterations", "2", *TINY]) == 0
    figs = tmp_path / "figs"
    code, out, _ = run(capsys, "plot", str(trained), "--compare", str(maml_dir), "--out", str(figs))
    assert code == 0
    names = sorted(p.name for p in figs.iterdir())
    assert names == ["figure2a_modulated_prior.png", "figure2b_after_adaptation.png", "figure2c_tsne.png"]
    for p in figs.iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_rerun_into_existing_run_needs_resume(trained, capsys):
    before = (trained / "checkpoint.pt").read_bytes()
    line = fail(capsys, "train", "regression-2modes-film", "--out", str(trained), "--iterations", "6", *TINY)
    assert "already holds a run" in line and "--resume" in line
    assert (trained / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize(
    "args, match",
    [
        (["train", "regression-2modes-flim"], "unknown preset"),
        (["train", "regression-2modes-film", "--set", "inner_stepz=3"], "unknown config key 'inner_stepz'"),
        (["train", "regression-2modes-film", "--set", "meta_lr=fast"], "meta_lr must be a number"),
        (["train", "regression-2modes-film", "--set", "inner_steps=-2"], "inner_steps"),
        (["train", "regression-2modes-film", "--set", "modes=[sinusoid,cubic]"], "cubic"),
        (["train", "regression-2modes-film", "--iterations", "0"], "iterations"),
        (["train", "regression-2modes-film", "--iterations", "many"], "expected an integer"),
        (["train", "regression-2modes-film", "--set", "noequals"], "key=value"),
        (["train", "missing.yaml"], "does not exist"),
        (["train", "regression-2modes-film", "--resume"], "nothing to resume"),
    ],
)
def test_train_errors_write_nothing(tmp_path, capsys, args, match):
    out_dir = tmp_path / "run"
    line = fail(capsys, *args, "--out", str(out_dir))
    assert match in line
    assert line.startswith("mmaml")
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep me")
    line = fail(capsys, "train", "regression-2modes-film", "--out", str(target), "--iterations", "1", *TINY)
    assert str(target) in line
    assert target.read_text() == "keep me"


def test_missing_out_flag_is_one_line(capsys):
    assert "--out" in fail(capsys, "train", "regression-2modes-film")


def test_eval_missing_and_corrupt_checkpoints(tmp_path, capsys):
    assert "does not exist" in fail(capsys, "eval", str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no checkpoint" in fail(capsys, "eval", str(empty))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    assert "corrupt" in fail(capsys, "eval", str(corrupt))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    torch.save({"weights": torch.zeros(3)}, foreign / "checkpoint.pt")
    assert "not an mmaml checkpoint" in fail(capsys, "eval", str(foreign))
    for d in (empty, corrupt, foreign):
        assert not (d / "eval.json").exists()
    assert "figures" not in {p.name for p in corrupt.iterdir()}
    assert "corrupt" in fail(capsys, "plot", str(corrupt))
    assert not (corrupt / "figures").exists()


def test_eval_output_goes_to_the_named_file(trained, tmp_path, capsys):
    before = (trained / "eval.json").read_bytes() if (trained / "eval.json").exists() else None
    target = tmp_path / "more_tasks.json"
    code, out, _ = run(capsys, "eval", str(trained), "--tasks", "20", "--output", str(target))
    assert code == 0 and str(target) in out
    assert json.loads(target.read_text())["num_tasks"] == 20
    after = (trained / "eval.json").read_bytes() if (trained / "eval.json").exists() else None
    assert before == after  # the run's own eval.json is left alone


def test_eval_bad_flags(trained, tmp_path, capsys):
    before = (trained / "eval.json").read_bytes() if (trained / "eval.json").exists() else None
    assert "--steps" in fail(capsys, "eval", str(trained), "--steps", "-1")
    assert "positive integer" in fail(capsys, "eval", str(trained), "--tasks", "0")
    assert "does not exist" in fail(capsys, "eval", str(trained), "--output", str(tmp_path / "no" / "e.json"))
    assert "is a folder" in fail(capsys, "eval", str(trained), "--output", str(tmp_path))
    after = (trained / "eval.json").read_bytes() if (trained / "eval.json").exists() else None
    assert before == after


def test_console_script_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mmaml", "train", "nope", "--out", str(tmp_path / "x")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown preset 'nope'" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_compare_pairs_runs_on_the_same_tasks(trained, tmp_path, capsys):
    maml = tmp_path / "maml"
    assert main(["train", "regression-2modes-maml", "--out", str(maml), "--iterations", "2",
                 "--set", "hidden_sizes=[16,16]", "--set", "meta_batch_size=4", "--no-progress"]) == 0
    capsys.readouterr()
    out_file = tmp_path / "compare.json"
    code, out, _ = run(capsys, "compare", str(trained), str(maml), "--tasks", "60", "--output", str(out_file))
    assert code == 0 and "difference" in out
    result = json.loads(out_file.read_text())
    runs = list(result["runs"].values())
    assert result["num_tasks"] == 60 and len(runs) == 2
    film_mean = runs[0]["post_adaptation"]["mean"]
    diff = runs[1]["difference"]
    assert diff["mean"] == pytest.approx(runs[1]["post_adaptation"]["mean"] - film_mean, rel=1e-9, abs=1e-9)
    assert set(diff["per_mode"]) == {"sinusoid", "linear"}
    # a copy of a run differs from it by exactly zero on every task
    import shutil

    copy = shutil.copytree(trained, tmp_path / "copy")
    code, out, _ = run(capsys, "compare", str(trained), str(copy), "--tasks", "20")
    assert code == 0 and "+0.0000 ± 0.0000" in out


def test_compare_refuses_runs_of_different_tasks(trained, tmp_path, capsys):
    other = tmp_path / "three"
    assert main(["train", "regression-3modes-maml", "--out", str(other), "--iterations", "1",
                 "--set", "hidden_sizes=[16,16]", "--set", "meta_batch_size=3", "--no-progress"]) == 0
    capsys.readouterr()
    assert "draw different tasks (modes" in fail(capsys, "compare", str(trained), str(other))
    assert "at least two run folders" in fail(capsys, "compare", str(trained))
    assert "does not exist" in fail(capsys, "compare", str(trained), str(tmp_path / "nope"))
    assert "given twice" in fail(capsys, "compare", str(trained), str(trained))
    import shutil

    copy = shutil.copytree(trained, tmp_path / "copy")
    assert "no class splits" in fail(capsys, "compare", str(trained), str(copy), "--split", "val")
    assert "--steps" in fail(capsys, "compare", str(trained), str(other), "--steps", "-2")


def test_compare_saved_pairs_the_saved_evaluations_as_a_fresh_compare_does(trained, tmp_path, capsys):
    import shutil

    film = shutil.copytree(trained, tmp_path / "film")
    maml = tmp_path / "maml"
    assert main(["train", "regression-2modes-maml", "--out", str(maml), "--iterations", "2",
                 "--set", "hidden_sizes=[16,16]", "--set", "meta_batch_size=4", "--no-progress"]) == 0
    for run_dir in (film, maml):
        assert main(["eval", str(run_dir), "--tasks", "40"]) == 0
    capsys.readouterr()
    fresh, saved = tmp_path / "fresh.json", tmp_path / "saved.json"
    assert main(["compare", str(film), str(maml), "--tasks", "40", "--output", str(fresh)]) == 0
    assert main(["compare", str(film), str(maml), "--saved", "--output", str(saved)]) == 0
    a, b = json.loads(fresh.read_text()), json.loads(saved.read_text())
    assert b["num_tasks"] == 40 and b["seed"] == a["seed"]
    for run_dir in (film, maml):  # the saved scores are the ones a new evaluation of the same tasks gives
        for key in ("mean", "ci95"):
            assert b["runs"][str(run_dir)]["post_adaptation"][key] == pytest.approx(
                a["runs"][str(run_dir)]["post_adaptation"][key], rel=1e-6)
    da, db = a["runs"][str(maml)]["difference"], b["runs"][str(maml)]["difference"]
    assert db["mean"] == pytest.approx(da["mean"], rel=1e-6) and db["ci95"] == pytest.approx(da["ci95"], rel=1e-6)
    assert set(db["per_mode"]) == {"sinusoid", "linear"}
    capsys.readouterr()

    out = tmp_path / "not-written.json"
    assert "drop --tasks" in fail(capsys, "compare", str(film), str(maml), "--saved", "--tasks", "40")
    assert main(["eval", str(maml), "--tasks", "20"]) == 0  # now evaluated on other tasks than film
    capsys.readouterr()
    assert "evaluated differently (test tasks: 20 vs 40)" in fail(
        capsys, "compare", str(film), str(maml), "--saved", "--output", str(out))
    assert main(["train", "regression-2modes-maml", "--out", str(maml), "--iterations", "3", "--resume",
                 "--set", "hidden_sizes=[16,16]", "--set", "meta_batch_size=4", "--no-progress"]) == 0
    capsys.readouterr()
    assert "is of meta-iteration 2 but its checkpoint is at 3" in fail(
        capsys, "compare", str(film), str(maml), "--saved", "--output", str(out))
    (film / "eval_per_task.json").write_text('{"num_tasks": 40, "seed": 1')  # cut short
    assert "saved evaluation is not readable" in fail(capsys, "compare", str(film), str(maml), "--saved")
    (film / "eval_per_task.json").unlink()
    assert "has no saved evaluation" in fail(capsys, "compare", str(film), str(maml), "--saved")
    assert not out.exists()


def test_demo_the_main_job_runs_and_reuses_finished_runs(tmp_path, capsys):
    """`make demo`'s command on a tiny budget: the three models train, are scored side by side, and a rerun
    reuses them."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--iterations", "3", "--tasks", "20", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for name in ("maml", "multi-maml", "film"):
        assert (out / name / "checkpoint.pt").exists()
        assert name in printed
    assert "post modulation" in printed or "post-modulation" in printed
    stamp = (out / "film" / "checkpoint.pt").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--iterations", "3", "--tasks", "20", "--no-progress"]) == 0
    assert (out / "film" / "checkpoint.pt").stat().st_mtime_ns == stamp


def test_readme_commands_run_from_the_venv_without_activating_it():
    """Every command line quoted in the README and the how-to pages calls the venv's own executables (a bare
    torchrun or mmaml is not on PATH after `make`)."""
    import re

    root = Path(__file__).resolve().parents[1]
    pages = [root / "README.md", *(root / "docs" / name for name in ("cli.md", "api.md", "data.md", "scaling.md"))]
    blocks = [b for page in pages for b in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)]
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    bare = [line for line in lines if re.match(r"^(?:[A-Z_]+=\S+\s+)*(torchrun|mmaml|python)\b", line)]
    assert not bare, bare
    assert any(".venv/bin/torchrun" in line for line in lines)


def _subparsers(parser):
    import argparse

    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})


def _quoted_mmaml_commands():
    """Every ``mmaml`` command line in the bash blocks of README.md and docs/ (continuations joined, comments cut)."""
    import re

    root = Path(__file__).resolve().parents[1]
    commands = []
    for doc in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].split("#")[0] if not line.lstrip().startswith("#") else ""
                for part in re.split(r";|&&", line):
                    match = re.search(r"(?:^|[\s/])mmaml\s+(\S.*)$", part.strip())
                    if match:
                        commands.append((doc.name, match.group(1).strip()))
    return commands


def test_every_quoted_command_names_a_real_subcommand_flag_preset_and_key():
    """A flag, preset or config key renamed later fails here, not in a reader's terminal."""
    import dataclasses
    import shlex

    from mmaml.cli.main import build_parser
    from mmaml.rl.config import RLConfig
    from mmaml.supervised.config import ClassificationConfig, RegressionConfig
    from mmaml.presets import PRESETS

    keys = {f.name for kind in (RegressionConfig, ClassificationConfig, RLConfig) for f in dataclasses.fields(kind)}
    commands = _quoted_mmaml_commands()
    assert len(commands) > 40
    problems = []
    for doc, text in commands:
        tokens = [t.strip("[]") for t in shlex.split(text.replace("|", " "))]
        tokens = [t for t in tokens if t and t != "..."]
        parser = build_parser()
        sub = _subparsers(parser).get(tokens[0])
        if sub is None:
            problems.append(f"{doc}: no subcommand {tokens[0]!r} in {text!r}")
            continue
        rest = tokens[1:]
        nested = _subparsers(sub)
        if nested:
            sub = nested.get(rest[0]) if rest else None
            if sub is None:
                problems.append(f"{doc}: no '{tokens[0]} {rest[0] if rest else ''}' in {text!r}")
                continue
            rest = rest[1:]
        options = set(sub._option_string_actions)
        positionals = []
        skip = False
        for i, token in enumerate(rest):
            if skip:
                skip = False
                if rest[i - 1] == "--set" and "=" in token and token.split("=")[0] not in keys | {"key"}:
                    problems.append(f"{doc}: no config key {token.split('=')[0]!r} in {text!r}")
                continue
            if token.startswith("--"):
                name = token.split("=")[0]
                if name not in options:
                    problems.append(f"{doc}: '{tokens[0]}' has no {name} (in {text!r})")
                action = sub._option_string_actions.get(name)
                skip = action is not None and action.nargs != 0 and "=" not in token
            else:
                positionals.append(token)
        if tokens[0] == "train" and positionals:
            preset = positionals[0]
            if "/" not in preset and not preset.endswith((".yaml", ".yml")) and preset not in PRESETS:
                problems.append(f"{doc}: no preset {preset!r} in {text!r}")
    assert not problems, "\n".join(problems)
