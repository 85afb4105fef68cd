"""Few-shot image classification: task sampling, the conv learner with FiLM, batched vs loop."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mmaml import Learner, MAML, MuMoMAML
from mmaml.core.modulation import modulate
from mmaml.data.image_classes import ImageClasses
from mmaml.metalearners.losses import cross_entropy_per_task
from mmaml.metalearners.per_task import per_task_query_losses
from mmaml.models.conv import ConvLearner, ConvTaskEncoder
from mmaml.tasks.classification import ImageClassificationTasks


def coded(name: str, counts, size=8, class_base=0) -> ImageClasses:
    """Images whose pixels (0,0) hold (class, index within class, data set id): identity can be read back."""
    images = []
    for c, n in enumerate(counts):
        block = np.zeros((n, size, size, 3), np.uint8)
        block[:, 0, 0, 0] = class_base + c
        block[:, 0, 0, 1] = np.arange(n)
        block[:, 0, 0, 2] = 7 if name == "b" else 3
        images.append(block)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return ImageClasses(name, np.concatenate(images), offsets, [f"{name}{c}" for c in range(len(counts))])


def ids(x):
    """(class, index, data set) of each image in ``x [..., 3, S, S]``."""
    return (x[..., :, 0, 0] * 255).round().long()


def test_sampled_tasks_have_the_right_shapes_labels_and_disjoint_images():
    a = coded("a", [6, 9, 7, 8, 10, 6, 6])
    b = coded("b", [12] * 9, class_base=100)
    tasks = ImageClassificationTasks([a, b], num_ways=5, num_shots=2, num_query=3)
    batch = tasks.sample(6, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (6, 10, 3, 8, 8) and batch.query_x.shape == (6, 15, 3, 8, 8)
    assert batch.mode.tolist() == [0, 0, 0, 1, 1, 1]
    for t in range(6):
        s, q = ids(batch.support_x[t]), ids(batch.query_x[t])
        assert sorted(batch.support_y[t].tolist()) == sorted(list(range(5)) * 2)
        # each label is one class, the same in support and query; the N classes are distinct
        classes = {}
        for (c, _, d), y in zip(torch.cat([s, q]).tolist(), torch.cat([batch.support_y[t], batch.query_y[t]]).tolist()):
            classes.setdefault(y, set()).add(c)
            assert d == (7 if batch.mode[t] == 1 else 3)  # one data set per task
        assert all(len(v) == 1 for v in classes.values()) and len({next(iter(v)) for v in classes.values()}) == 5
        images = [(c, i) for c, i, _ in torch.cat([s, q]).tolist()]
        assert len(set(images)) == len(images)  # support and query images disjoint, no repeats


def test_sampling_is_deterministic_and_rotation_turns_whole_classes():
    a = coded("a", [8] * 6, size=6)
    tasks = ImageClassificationTasks([a], num_ways=3, num_shots=1, num_query=2, rotate=[True])
    b1 = tasks.sample(40, torch.Generator().manual_seed(3))
    b2 = tasks.sample(40, torch.Generator().manual_seed(3))
    assert torch.equal(b1.support_x, b2.support_x)
    corner = b1.query_x[..., 0, :, :]  # the coded pixel ends up in one of the 4 corners
    where = torch.stack([corner[..., 0, 0], corner[..., 0, -1], corner[..., -1, 0], corner[..., -1, -1]], -1)
    assert (where.count_nonzero(-1) <= 1).all()
    turned = where.argmax(-1) + 4 * (where.amax(-1) == 0)
    assert len(turned.unique()) > 2  # several rotations occur


def test_meta_train_and_meta_test_classes_are_disjoint():
    from mmaml.data.image_classes import class_split
    data = coded("a", [5] * 20)
    train, _, test = class_split(20, (0.6, 0.2, 0.2))
    tr = ImageClassificationTasks([data.subset(train)], num_ways=5, num_shots=1, num_query=1)
    te = ImageClassificationTasks([data.subset(test)], num_ways=4, num_shots=1, num_query=1)
    seen_train = set(ids(tr.sample(50, torch.Generator().manual_seed(0)).support_x)[..., 0].flatten().tolist())
    seen_test = set(ids(te.sample(50, torch.Generator().manual_seed(0)).support_x)[..., 0].flatten().tolist())
    assert seen_train <= set(train) and seen_test <= set(test) and not seen_train & seen_test


def test_film_on_conv_channels_after_batch_norm():
    torch.manual_seed(0)
    net = ConvLearner(num_classes=3, channels=(4, 6))
    learner = Learner(net, modulate=net.modulation_sites())
    x = torch.randn(2, 5, 3, 8, 8)
    taus = {k: torch.randn(2, n) for k, n in learner.tau_sizes("film").items()}
    out = learner(learner.task_parameters(2), x, taus, "film")
    for t in range(2):
        h = x[t]
        for i, block in enumerate(net.blocks):
            h = torch.nn.functional.batch_norm(block.conv(h), None, None, training=True)
            h = torch.relu(modulate(h, taus[f"blocks.{i}.norm"][t], "film", unit_dim=-3))
        torch.testing.assert_close(out[t], net.head(h.mean((-2, -1))), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["maml", "film"])
def test_batched_equals_loop_for_the_conv_learner_with_batch_norm(method):
    torch.manual_seed(0)
    data = coded("a", [6] * 8, size=12)
    rng = np.random.default_rng(0)
    data.images[:] = rng.integers(0, 255, data.images.shape, dtype=np.uint8)
    tasks = ImageClassificationTasks([data, data.subset(range(8), "b")], num_ways=3, num_shots=2, num_query=2)
    batch = tasks.sample(4, torch.Generator().manual_seed(0))
    net = ConvLearner(num_classes=3, channels=(4, 8, 8))
    inner = dict(inner_lr=0.05, inner_steps=2, inner_grad_clip=20.0, loss_fn=cross_entropy_per_task)
    if method == "maml":
        model = MAML(Learner(net), **inner)
    else:
        model = MuMoMAML(Learner(net, modulate=net.modulation_sites()), ConvTaskEncoder((4, 8, 8), 16), "film", **inner)
    batched = model(batch).query_loss
    looped = per_task_query_losses(model, batch)
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-5)
    gb = torch.autograd.grad(batched.mean(), list(model.parameters()))
    gl = torch.autograd.grad(looped.mean(), list(model.parameters()))
    for (name, _), a, b in zip(model.named_parameters(), gb, gl):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


OMNIGLOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot"


@pytest.mark.skipif(not (OMNIGLOT / "images_background.npz").exists(), reason=f"Omniglot copy not found at {OMNIGLOT}")
def test_short_training_beats_chance_on_omniglot(tmp_path):
    from mmaml.data import omniglot

    torch.manual_seed(0)
    split = omniglot.splits(omniglot.load(OMNIGLOT, tmp_path, size=28))
    train = ImageClassificationTasks([split["train"]], num_ways=5, num_shots=1, num_query=5, rotate=[True])
    test = ImageClassificationTasks([split["test"]], num_ways=5, num_shots=1, num_query=5)
    net = ConvLearner(num_classes=5, channels=(32, 32, 32, 32))
    model = MAML(Learner(net), inner_lr=0.4, inner_steps=1, first_order=True, loss_fn=cross_entropy_per_task)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        out = model(train.sample(8, gen))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    with torch.no_grad():
        batch = test.sample(100, torch.Generator().manual_seed(1))
        out = model(batch, steps=1)
    accuracy = (out.query_pred.argmax(-1) == batch.query_y).float().mean().item()
    assert accuracy > 0.4, accuracy  # chance is 0.2
