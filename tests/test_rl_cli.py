"""Meta-RL from the command line: bad input is one line and exit 2; train, resume, eval, compare, plot."""

import json

import pytest
import torch

from mmaml.cli.main import main
from mmaml.engine.metrics_log import read_metrics
from mmaml.engine.checkpoint import load_checkpoint

TINY = ["--set", "meta_batch_size=4", "--set", "episodes_per_task=2", "--set", "hidden_sizes=[8]",
        "--set", "encoder_hidden=8", "--set", "embedding_dim=8", "--set", "checkpoint_every=2",
        "--set", "eval_tasks=4", "--no-progress", "--no-tensorboard"]


@pytest.mark.parametrize("args, needle", [
    (["rl-navigation-mumomam"], "unknown preset"),
    (["rl-navigation-maml", "--set", "max_kl=-1"], "max_kl"),
    (["rl-navigation-maml", "--set", "env=cheetah"], "env"),
    (["rl-navigation-maml", "--set", "method=multi_maml"], "method"),
    (["rl-navigation-maml", "--set", "modulation=softmax"], "modulation"),
    (["rl-navigation-maml", "--set", "meta_batch_size=5"], "meta_batch_size"),
    (["rl-pointmass-4modes-maml", "--set", "meta_batch_size=6"], "meta_batch_size"),
    (["rl-navigation-maml", "--set", "episodes_per_task=1"], "episodes_per_task"),
    (["rl-navigation-maml", "--set", "discount=1.5"], "discount"),
    (["rl-navigation-maml", "--set", "fisher_subsample=0"], "fisher_subsample"),
    (["rl-navigation-maml", "--set", "inner_grad_clip=1"], "unknown config key"),
    (["rl-navigation-mumomaml", "--set", "modulated_layers=[5]"], "modulated_layers"),
    (["rl-navigation-maml", "--set", "hidden_sizes=abc"], "hidden_sizes"),
    (["rl-navigation-maml", "--set", "outer_optimizer=adam"], "outer_optimizer"),
    (["rl-navigation-maml", "--set", "ppo_clip=1.5"], "ppo_clip"),
    (["rl-navigation-maml", "--set", "ppo_epochs=0"], "ppo_epochs"),
    (["rl-navigation-maml", "--set", "ppo_lr=0"], "ppo_lr"),
])
def test_bad_rl_config_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    assert main(["train", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not out.exists()


def test_rl_train_resume_eval_compare_plot(tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", "rl-navigation-mumomaml", "--out", str(full), "--iterations", "4", *TINY]) == 0
    assert main(["train", "rl-navigation-mumomaml", "--out", str(part), "--iterations", "2", *TINY]) == 0
    torch.manual_seed(99)  # a fresh process would not share the global RNG state
    assert main(["train", "rl-navigation-mumomaml", "--out", str(part), "--iterations", "4", "--resume", *TINY]) == 0
    a = load_checkpoint(full / "checkpoint.pt")["model"]
    b = load_checkpoint(part / "checkpoint.pt")["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = read_metrics(part)
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert [r["return_step1"] for r in rows] == [r["return_step1"] for r in read_metrics(full)]

    capsys.readouterr()
    assert main(["eval", str(full), "--tasks", "4", "--steps", "2"]) == 0
    # a long silent step says what it does
    assert f"mmaml: evaluating {full} on 4 test goals, adapting each with 2 inner steps" in capsys.readouterr().err
    result = json.loads((full / "eval.json").read_text())
    assert len(result["returns_by_step"]) == 3 and set(result["returns_by_step"][0]) == {"mean", "ci95"}
    assert set(result["per_mode"]) == {"left", "right"}
    assert all(m["num_tasks"] == 2 for m in result["per_mode"].values())
    identification = result["mode_identification"]  # from the embeddings of the same 4 goals
    assert identification["num_fit"] == identification["num_scored"] == 2
    assert set(identification["confusion"]) == {"left", "right"}
    refs = result["reference_returns"]
    assert refs["oracle"]["mean"] > refs["zero_action"]["mean"]
    per_task = json.loads((full / "eval_per_task.json").read_text())
    assert len(per_task["returns_by_step"]) == 3 and len(per_task["returns_by_step"][0]) == 4
    overall = torch.tensor(per_task["returns_by_step"][2], dtype=torch.float64).mean()
    assert abs(float(overall) - result["returns_by_step"][2]["mean"]) < 1e-6

    maml = tmp_path / "maml"
    assert main(["train", "rl-navigation-maml", "--out", str(maml), "--iterations", "1", *TINY]) == 0
    capsys.readouterr()
    assert main(["compare", str(maml), str(full), "--tasks", "4", "--steps", "1",
                 "--output", str(tmp_path / "cmp.json")]) == 0
    cmp = json.loads((tmp_path / "cmp.json").read_text())
    diff = cmp["runs"][str(full)]["difference_by_step"]
    own = [cmp["runs"][str(r)]["returns_by_step"] for r in (maml, full)]
    for k in range(2):  # a paired difference of means is the difference of the means
        assert abs(diff[k]["mean"] - (own[1][k]["mean"] - own[0][k]["mean"])) < 1e-6
    # --saved pairs the evaluations already made (of the same goals) and gives what a fresh compare gives
    assert main(["eval", str(full), "--tasks", "4", "--steps", "1"]) == 0
    assert main(["eval", str(maml), "--tasks", "4", "--steps", "1"]) == 0
    assert main(["compare", str(maml), str(full), "--saved", "--output", str(tmp_path / "saved.json")]) == 0
    saved = json.loads((tmp_path / "saved.json").read_text())
    for k in range(2):
        for key in ("mean", "ci95"):
            assert abs(saved["runs"][str(full)]["difference_by_step"][k][key] - diff[k][key]) < 1e-6
            assert abs(saved["runs"][str(maml)]["returns_by_step"][k][key] - own[0][k][key]) < 1e-6

    capsys.readouterr()
    assert main(["plot", str(full), "--compare", str(maml), "--out", str(tmp_path / "fig")]) == 0
    assert "mmaml: plotting 2 meta-RL run(s)" in capsys.readouterr().err
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert names == ["adaptation_curve.png", "learning_curves.png", "trajectories_full.png", "trajectories_maml.png",
                     "tsne_full.png"]


def test_rl_run_cannot_be_compared_with_regression_run(tmp_path, capsys):
    rl, reg = tmp_path / "rl", tmp_path / "reg"
    assert main(["train", "rl-navigation-maml", "--out", str(rl), "--iterations", "1", *TINY]) == 0
    assert main(["train", "regression-2modes-maml", "--out", str(reg), "--iterations", "1", "--no-progress",
                 "--no-tensorboard", "--set", "hidden_sizes=[8]", "--set", "meta_batch_size=2"]) == 0
    capsys.readouterr()
    assert main(["compare", str(rl), str(reg)]) == 2
    assert "different tasks" in capsys.readouterr().err


@pytest.mark.parametrize("outer", ["ppo", "promp"])
def test_ppo_outer_loop_trains_and_resumes_exactly(tmp_path, outer):
    """The PPO (and ProMP) outer loop keeps Adam's state in the checkpoint: 2 + 2 resumed iterations equal 4
    straight."""
    ppo = ["--set", f"outer_optimizer={outer}", "--set", "ppo_epochs=2", *TINY]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", "rl-navigation-mumomaml", "--out", str(full), "--iterations", "4", *ppo]) == 0
    assert main(["train", "rl-navigation-mumomaml", "--out", str(part), "--iterations", "2", *ppo]) == 0
    assert "optimizer" in load_checkpoint(part / "checkpoint.pt")
    torch.manual_seed(99)
    assert main(["train", "rl-navigation-mumomaml", "--out", str(part), "--iterations", "4", "--resume", *ppo]) == 0
    a, b = (load_checkpoint(d / "checkpoint.pt")["model"] for d in (full, part))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = read_metrics(full)
    assert all(r["skipped_epochs"] == 0 and r["kl"] > 0 for r in rows)  # every epoch taken, the policy moved


def test_rl_modulation_analysis_runs_on_a_tiny_run(tmp_path, analysis_script):
    """analysis/rl_modulation.py on a one-iteration run: every number is there and in range."""
    run = tmp_path / "run"
    assert main(["train", "rl-navigation-mumomaml", "--out", str(run), "--iterations", "1", *TINY]) == 0
    module = analysis_script("rl_modulation")
    ident = module.identification(str(run), 8)
    assert 0 <= ident["k-NN accuracy"] <= 1 and 0 <= ident["linear-probe accuracy"] <= 1 and ident["chance"] == 0.5
    readable = module.readability(str(run), 8)
    assert 0 <= readable["mode from the encoder's input, linear probe on episode statistics"] <= 1
    probe = module.probe(str(run), 8, 0)
    assert -1 <= probe["gradient cosine between the two modes' means"] <= 1
    assert all(v >= 0 for k, v in probe.items() if "cosine" not in k)
    with pytest.raises(SystemExit, match="MAML run"):
        maml = tmp_path / "maml"
        assert main(["train", "rl-navigation-maml", "--out", str(maml), "--iterations", "1", *TINY]) == 0
        module.probe(str(maml), 8, 0)


def test_episode_statistics_against_hand_least_squares(analysis_script):
    """The readability probe's features: mean reward and per-coordinate slopes, by hand on small episodes."""
    module = analysis_script("rl_modulation")
    # task 0: r = 2 x + 1 in both episodes; task 1: r = -x - 3 and r = -3 x; coordinate 1 is constant
    x = torch.tensor([[[0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 4.0, 5.0]], [[0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 1.0, 1.0]]])
    obs = torch.stack([x, torch.full_like(x, 7.0)], dim=-1)  # [2, 2, 4, 2]
    r = torch.stack([2 * x[0] + 1, torch.stack([-x[1, 0] - 3, -3 * x[1, 1]])])
    stats = module.episode_statistics(obs, r)
    assert stats.shape == (2, 3)
    mean_r = [((2 * x[0, 0] + 1).mean() + (2 * x[0, 1] + 1).mean()) / 2, ((-x[1, 0] - 3).mean() + (-3 * x[1, 1]).mean()) / 2]
    assert torch.allclose(stats[:, 0], torch.tensor(mean_r, dtype=torch.float64))
    assert torch.allclose(stats[:, 1], torch.tensor([2.0, -2.0], dtype=torch.float64))  # (2 + 2) / 2, (-1 - 3) / 2
    assert torch.equal(stats[:, 2], torch.zeros(2, dtype=torch.float64))


def test_trajectory_panels_name_maml_step_zero_the_initial_policy():
    from mmaml.plotting.figure3 import step_title

    assert step_title(0, modulated=True) == "after modulation"
    assert step_title(0, modulated=False) == "initial policy"  # a MAML run has no modulation to show
    assert [step_title(k, False) for k in (1, 2)] == ["after 1 step", "after 2 steps"]
