"""`mmaml.load` + `model.adapt`: a trained run applied to new tasks gives exactly what `mmaml eval` scores."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mmaml
from mmaml.cli.main import main
from mmaml.errors import CheckpointError
from mmaml.metalearners.losses import mse_per_task
from mmaml.kinds import build_tasks


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt")
    for preset in ("regression-2modes-film", "regression-2modes-multi-maml"):
        assert main(["train", preset, "--out", str(root / preset), "--iterations", "3", "--no-progress",
                     "--no-tensorboard", "--set", "meta_batch_size=10"]) == 0
    assert main(["eval", str(root / "regression-2modes-film"), "--tasks", "60"]) == 0
    return root


def test_adapt_predicts_exactly_what_eval_scores(runs):
    run = runs / "regression-2modes-film"
    model = mmaml.load(run)
    assert model.config.method == "mumomaml" and model.iteration == 3 and not model.training
    per_task = json.loads((run / "eval_per_task.json").read_text())
    # the evaluation's test tasks: the same seed, drawn at once
    batch = build_tasks(model.config).sample(per_task["num_tasks"], torch.Generator().manual_seed(per_task["seed"]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    predictor = model.adapt(batch.support_x, batch.support_y, steps=per_task["inner_steps"])
    pred = predictor(batch.query_x)
    assert pred.shape == batch.query_y.shape and not pred.requires_grad
    mse = mse_per_task(pred, batch.query_y).double()
    torch.testing.assert_close(mse, torch.tensor(per_task["post_adaptation"], dtype=torch.float64),
                               rtol=1e-6, atol=1e-7)
    # the meta-parameters are untouched, and the predictor's adaptation is the model's own
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert predictor.embedding.shape[0] == per_task["num_tasks"]
    # one task at a time: the same predictions
    one = model.adapt_task(batch.support_x[7], batch.support_y[7], steps=per_task["inner_steps"])
    torch.testing.assert_close(one(batch.query_x[7]), pred[7], rtol=1e-5, atol=1e-6)
    # zero steps: the modulated prior, as eval's post-modulation score
    prior = model.adapt(batch.support_x, batch.support_y, steps=0)(batch.query_x)
    torch.testing.assert_close(mse_per_task(prior, batch.query_y).double(),
                               torch.tensor(per_task["post_modulation"], dtype=torch.float64), rtol=1e-6, atol=1e-7)


def test_multi_maml_needs_the_mode(runs):
    model = mmaml.load(runs / "regression-2modes-multi-maml")
    batch = build_tasks(model.config).sample(4, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="mode="):
        model.adapt(batch.support_x, batch.support_y)
    with_mode = model.adapt(batch.support_x, batch.support_y, mode=batch.mode)(batch.query_x)
    expected = model(batch, with_prior=False, create_graph=False).query_pred
    torch.testing.assert_close(with_mode, expected.detach(), rtol=1e-5, atol=1e-6)


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        mmaml.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match="must agree"):
        mmaml.MAML(mmaml.Learner(torch.nn.Linear(1, 1)), 0.1, 1).adapt(torch.zeros(2, 5, 1), torch.zeros(3, 5, 1))


def test_predict_regression_files_round_trip(runs, tmp_path):
    run = runs / "regression-2modes-film"
    model = mmaml.load(run)
    batch = build_tasks(model.config).sample(1, torch.Generator().manual_seed(5))
    sx, sy, qx = batch.support_x[0], batch.support_y[0], batch.query_x[0]

    steps = model.config.eval_inner_steps
    expected = model.adapt_task(sx, sy, steps=steps)(qx)[:, 0].double()
    import numpy as np

    support_csv = tmp_path / "support.csv"
    support_csv.write_text("x,y\n" + "".join(f"{float(x)!r},{float(y)!r}\n" for x, y in zip(sx[:, 0], sy[:, 0])))
    np.save(tmp_path / "query.npy", qx[:, 0].double().numpy())
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), "--support", str(support_csv), "--query", str(tmp_path / "query.npy"),
                 "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "x,prediction" and len(lines) == 1 + qx.shape[0]
    got = torch.tensor([[float(v) for v in line.split(",")] for line in lines[1:]], dtype=torch.float64)
    torch.testing.assert_close(got[:, 0], qx[:, 0].double())
    torch.testing.assert_close(got[:, 1], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("content, needle", [
    (None, "does not exist"),
    ("x,y\n1,2,3\n", "row 2: 3 values; every row must be 2 numbers (x, y)"),
    ("x,y\n1,abc\n", "row 2: 'abc' is not a number; every row must be 2 numbers (x, y)"),
    ("x,y\n1,nan\n", "not a finite number"),
])
def test_predict_bad_support_is_one_line(runs, tmp_path, capsys, content, needle):
    support = tmp_path / "support.csv"
    if content is not None:
        support.write_text(content)
    query = tmp_path / "query.csv"
    query.write_text("0.5\n1.0\n")
    out = tmp_path / "pred.csv"
    code = main(["predict", str(runs / "regression-2modes-film"), "--support", str(support), "--query", str(query),
                 "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("case, first_line", [
    ("support is a folder", "mmaml: error: support file {tmp}/support.csv is a folder; give a .csv or .npy file"),
    ("text named .npy", "mmaml: error: support file {tmp}/support.npy is not a .npy array; write it with "
                        "numpy.save, or give a .csv file"),
    ("ragged csv row", "mmaml: error: support file {tmp}/support.csv, row 3: 1 values; every row must be 2 numbers "
                       "(x, y)"),
    ("--out in a missing folder", "mmaml: error: --out {tmp}/missing/pred.csv: folder {tmp}/missing does not exist; "
                                  "create it first"),
    ("--out is a folder", "mmaml: error: --out {tmp} is a folder; give a file name such as {tmp}/predictions.csv"),
])
def test_bad_input_messages_point_the_right_way(runs, tmp_path, capsys, case, first_line):
    """Each message names what is wrong with that input and what to do, in one line (no library's own text)."""
    (tmp_path / "query.csv").write_text("0.5\n")
    support, out = tmp_path / "support.csv", tmp_path / "pred.csv"
    if case == "support is a folder":
        support.mkdir()
    elif case == "text named .npy":
        support = tmp_path / "support.npy"
        support.write_text("1,2\n3,4\n")
    else:
        support.write_text("x,y\n1,2\n3\n" if case == "ragged csv row" else "1,2\n3,4\n")
    if case == "--out in a missing folder":
        out = tmp_path / "missing" / "pred.csv"
    elif case == "--out is a folder":
        out = tmp_path
    code = main(["predict", str(runs / "regression-2modes-film"), "--support", str(support),
                 "--query", str(tmp_path / "query.csv"), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [first_line.format(tmp=tmp_path)]


def test_too_few_episodes_per_task_is_refused_once_with_the_real_bound(capsys):
    for value in ("0", "1"):
        assert main(["train", "rl-navigation-maml", "--out", "unused", "--set", f"episodes_per_task={value}"]) == 2
        assert capsys.readouterr().err.strip() == (
            f"mmaml: error: invalid episodes_per_task={value}: need at least 2 episodes per task to normalise "
            "advantages")


def test_predict_refuses_multi_maml_runs(runs, tmp_path, capsys):
    (tmp_path / "s.csv").write_text("1,2\n")
    (tmp_path / "q.csv").write_text("1\n")
    assert main(["predict", str(runs / "regression-2modes-multi-maml"), "--support", str(tmp_path / "s.csv"),
                 "--query", str(tmp_path / "q.csv")]) == 2
    assert "Multi-MAML" in capsys.readouterr().err


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not ((SHARED / "omniglot" / "images_background.npz").exists()
                         and (SHARED / "tiny-imagenet-200").exists()),
                    reason=f"Omniglot and Tiny ImageNet copies not found in {SHARED}")
def test_predict_images_from_folders(tmp_path, monkeypatch):
    """Support images in one folder per class and query images, as PNG files: the predictions are those of
    `adapt_task` on the same pixels, and the labels follow the sorted class folder names."""
    import numpy as np
    from PIL import Image

    monkeypatch.setenv("MMAML_DATA", str(SHARED))
    monkeypatch.setenv("MMAML_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", "classification-cpu-2modes-mumomaml-5w1s", "--out", str(run), "--iterations", "1",
                 "--set", "images_per_class=20", "--set", "channels=[8,8,8,8]", "--no-progress",
                 "--no-tensorboard"]) == 0
    model = mmaml.load(run)
    batch = build_tasks(model.config, split="test").sample(2, torch.Generator().manual_seed(3))
    assert batch.mode.tolist() == [0, 1]  # the second task is Tiny ImageNet's, whose files are read as RGB
    names = ["e", "d", "c", "b", "a"]  # label i -> folder names[i]; sorted, the folders give labels 4..0

    def save(image, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image.permute(1, 2, 0) * 255).round().byte().numpy()).save(path)

    for i, (image, label) in enumerate(zip(batch.support_x[1], batch.support_y[1])):
        save(image, tmp_path / "support" / names[int(label)] / f"{i}.png")
    for i, image in enumerate(batch.query_x[1]):
        save(image, tmp_path / "query" / f"q{i:02d}.png")
    out = tmp_path / "pred.csv"
    command = ["predict", str(run), "--support", str(tmp_path / "support"), "--query", str(tmp_path / "query"),
               "--out", str(out)]
    assert main(command) == 2  # two data sets whose files are read differently: which one is needed
    assert main([*command, "--dataset", "tiny_imagenet"]) == 0
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert rows[0] == ["file", "class", "p_a", "p_b", "p_c", "p_d", "p_e"] and len(rows) == 1 + batch.query_x.shape[1]
    # the same task with labels renumbered as the sorted folders: a -> 0, ..., e -> 4
    relabel = torch.tensor([4, 3, 2, 1, 0])
    logits = model.adapt_task(batch.support_x[1], relabel[batch.support_y[1]],
                              steps=model.config.eval_inner_steps)(batch.query_x[1])
    expected = torch.softmax(logits, -1)
    got = torch.tensor([[float(v) for v in r[2:]] for r in rows[1:]])
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)
    assert [r[1] for r in rows[1:]] == ["abcde"[int(i)] for i in expected.argmax(-1)]
    assert np.isclose(got.sum(-1).numpy(), 1, atol=1e-5).all()


@pytest.mark.skipif(not ((SHARED / "omniglot" / "images_evaluation.npz").exists()
                         and (SHARED / "tiny-imagenet-200").exists()),
                    reason=f"Omniglot and Tiny ImageNet copies not found in {SHARED}")
def test_predict_reads_official_omniglot_files_as_the_loader_does(tmp_path, monkeypatch, capsys):
    """Omniglot's official PNGs (1-bit, dark strokes on white) through predict --dataset omniglot give the
    predictions of the adapted model on the loader's own tensors of those drawings; a stray file and a support
    set with more shots than the run's are warned about."""
    from PIL import Image

    from mmaml.data import omniglot
    from mmaml.data.registry import load_split

    monkeypatch.setenv("MMAML_DATA", str(SHARED))
    monkeypatch.setenv("MMAML_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["train", "classification-cpu-2modes-maml-5w1s", "--out", str(run), "--iterations", "1",
                 "--set", "images_per_class=20", "--set", "channels=[8,8,8,8]", "--no-progress",
                 "--no-tensorboard"]) == 0
    model = mmaml.load(run)
    from mmaml.engine.checkpoint import load_checkpoint

    assert load_checkpoint(run / "checkpoint.pt")["image_transforms"] == {"omniglot": "ink-inverted",
                                                                          "tiny_imagenet": "rgb"}
    size = model.config.image_size
    test = load_split("omniglot", "test", size, SHARED, tmp_path / "cache")
    wanted = test.class_names[:5]
    drawings = {}
    for name, images in omniglot._npz_classes(SHARED / "omniglot" / "images_evaluation.npz", "images_evaluation",
                                              SHARED / "omniglot" / "alphabet_ranges.tsv"):
        if name in wanted:
            drawings[name] = images[:3]  # ink bright, as the loader keeps them before resizing
    assert sorted(drawings) == sorted(wanted)

    def official(inverted, path):  # the release's format: 1-bit, white background, dark strokes
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - inverted).convert("1").save(path)

    for label, name in enumerate(wanted):
        official(drawings[name][0], tmp_path / "support" / f"c{label}" / "0.png")
        official(drawings[name][1], tmp_path / "support" / f"c{label}" / "1.png")  # 2 shots; the run trained 1
        official(drawings[name][2], tmp_path / "query" / f"q{label}.png")
    (tmp_path / "query" / "notes.txt").write_text("not an image")
    out = tmp_path / "pred.csv"
    capsys.readouterr()
    assert main(["predict", str(run), "--support", str(tmp_path / "support"), "--query", str(tmp_path / "query"),
                 "--dataset", "omniglot", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 file(s)" in err and "notes.txt" in err
    assert "2/2/2/2/2 images per class where the run trained on 1" in err
    # the loader's tensors of the same drawings (class c, drawing k at offset + k)
    tensor = lambda c, k: torch.from_numpy(np.array(test.images[test.offsets[c] + k])).permute(2, 0, 1).float() / 255  # noqa: E731
    support = torch.stack([tensor(c, k) for c in range(5) for k in (0, 1)])
    labels = torch.arange(5).repeat_interleave(2)
    query = torch.stack([tensor(c, 2) for c in range(5)])
    expected = torch.softmax(model.adapt_task(support, labels, steps=model.config.eval_inner_steps)(query), -1)
    got = torch.tensor([[float(v) for v in line.split(",")[2:]] for line in out.read_text().splitlines()[1:]])
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)


def test_api_page_load_example_runs(runs, monkeypatch, capsys):
    import re

    page = Path(__file__).resolve().parents[1] / "docs" / "api.md"  # the README's API page
    code = next(c for c in re.findall(r"```python\n(.*?)```", page.read_text(), re.S) if "mmaml.load(" in c)
    monkeypatch.chdir(runs)
    (runs / "runs").mkdir(exist_ok=True)
    if not (runs / "runs" / "film").exists():
        (runs / "runs" / "film").symlink_to(runs / "regression-2modes-film")
    namespace: dict = {}
    exec(compile(code, str(page), "exec"), namespace)
    assert capsys.readouterr().out.strip() == "torch.Size([100, 1])"
    # the example's predictor is the model adapted to its five points, exactly as adapt() gives it
    model, x, y, query = (namespace[k] for k in ("model", "x", "y", "query"))
    steps = model.config.eval_inner_steps
    torch.testing.assert_close(namespace["predict"](query), model.adapt(x[None], y[None], steps=steps)(query[None])[0])


def test_rl_adapt_gives_the_policy_eval_scores(tmp_path):
    from mmaml.rl.builder import build_env
    from mmaml.rl.envs.registry import make_goals
    from mmaml.rl.evaluation import per_task_returns, sample_test_goals
    from mmaml.rl.sampler import sample_episodes

    run = tmp_path / "nav"
    assert main(["train", "rl-navigation-mumomaml", "--out", str(run), "--iterations", "2", "--no-progress",
                 "--no-tensorboard", "--set", "meta_batch_size=4", "--set", "episodes_per_task=4",
                 "--set", "hidden_sizes=[16]"]) == 0
    model = mmaml.load(run)
    config, env = model.config, build_env(model.config)
    expected, _ = per_task_returns(model, config, env, make_goals(config.env), 4, seed=9, steps=2)
    goals, mode, generator = sample_test_goals(make_goals(config.env), 4, seed=9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    policy = model.adapt(env, goals, steps=2, generator=generator, mode=mode)
    # the same generator stream as evaluation: the same episodes at every step, hence the same returns
    torch.testing.assert_close(policy.rollouts.returns_by_step(), expected)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the adapted policy is what sampled the last episodes: their log-probabilities under it match
    last = policy.rollouts.steps[-1]
    from mmaml.rl.policy import log_prob

    torch.testing.assert_close(log_prob(policy(last.observations), last.actions), last.log_probs,
                               atol=1e-5, rtol=1e-5)
    actions = policy.act(last.observations[:, :, :3])
    assert actions.shape == (4, last.observations.shape[1], 3, env.action_dim)
    deterministic = sample_episodes(env, policy, goals, 2, torch.Generator().manual_seed(1), deterministic=True)
    assert torch.isfinite(deterministic.rewards).all()
