"""analysis/inner_step_size.py against the first inner step computed by hand with autograd."""

import importlib.util
from pathlib import Path

import torch

import mmaml
from mmaml.cli.main import main
from mmaml.metalearners.losses import mse_per_task
from mmaml.tasks.regression import RegressionTasks

SCRIPT = Path(__file__).resolve().parents[1] / "analysis" / "inner_step_size.py"


def load_script():
    spec = importlib.util.spec_from_file_location("inner_step_size", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_step_sizes_equal_lr_times_clamped_support_gradient(tmp_path):
    run = tmp_path / "softmax"
    assert main(["train", "regression-3modes-softmax", "--out", str(run), "--iterations", "2", "--no-progress",
                 "--no-tensorboard", "--set", "meta_batch_size=6"]) == 0
    sizes = load_script().step_sizes(str(run), num_tasks=6)

    model = mmaml.load(str(run))
    tasks = RegressionTasks(tuple(model.config.modes)).sample(6, torch.Generator().manual_seed(7))
    taus = model.adapt(tasks.support_x, tasks.support_y, steps=0).taus
    meta = {name: p.detach() for name, p in model.learner.meta_parameters().items()}
    expected = {name: [] for name in meta}
    for t in range(6):  # one task at a time, plain autograd on the support loss
        params = {name: p.clone()[None].requires_grad_(True) for name, p in meta.items()}
        pred = model.learner(params, tasks.support_x[t:t + 1], {k: v[t:t + 1] for k, v in taus.items()},
                             model.modulation_kind)
        grads = torch.autograd.grad(mse_per_task(pred, tasks.support_y[t:t + 1]).sum(), list(params.values()),
                                    allow_unused=True)
        for (name, p), g in zip(meta.items(), grads):
            g = torch.zeros_like(p) if g is None else g[0]
            if model.inner_grad_clip is not None:
                g = g.clamp(-model.inner_grad_clip, model.inner_grad_clip)
            expected[name].append(float((model.inner_lr * g).norm()))
    assert sizes.keys() == meta.keys()
    for name, (step, norm) in sizes.items():
        assert abs(step - sum(expected[name]) / 6) <= 1e-5 * max(1.0, step), name
        assert abs(norm - float(meta[name].norm())) <= 1e-5 * norm
    assert any(step > 0 for step, _ in sizes.values())
