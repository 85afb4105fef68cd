"""Multimodal few-shot image classification: each task is N-way K-shot from one data set (its mode).

Tasks are sampled as batched tensors: for every task, N distinct classes of
its data set (labelled 0..N-1 in random order), then K support and Q query
images per class, disjoint. The images come from the class-grouped, already
resized arrays of :class:`mmaml.data.ImageClasses`, so no decoding happens
per task. Omniglot-style data sets can add the 90-degree-rotation class
augmentation: every class of a task is rotated by a random multiple of 90 degrees.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from mmaml.data.image_classes import ImageClasses
from mmaml.tasks.batch import TaskBatch


class ImageClassificationTasks:
    """N-way K-shot tasks over several data sets, an equal share of tasks per data set.

    Args:
        datasets: one :class:`ImageClasses` per mode (the classes of one split),
            all with the same image size.
        num_ways: N classes per task.
        num_shots: K support images per class.
        num_query: Q query images per class.
        rotate: per data set, whether to apply the 90-degree-rotation augmentation.
        names: mode names (default: the data sets' names).
    """

    def __init__(
        self,
        datasets: Sequence[ImageClasses],
        num_ways: int = 5,
        num_shots: int = 1,
        num_query: int = 15,
        rotate: Sequence[bool] | None = None,
        names: Sequence[str] | None = None,
    ):
        if not datasets:
            raise ValueError("at least one data set is needed")
        sizes = {d.image_size for d in datasets}
        if len(sizes) != 1:
            raise ValueError(f"all data sets must share one image size, got {sorted(sizes)}")
        for d in datasets:
            if d.num_classes < num_ways:
                raise ValueError(f"{d.name} has {d.num_classes} classes, fewer than {num_ways} ways")
            if int(d.counts().min()) < num_shots + num_query:
                raise ValueError(f"{d.name} has a class with {int(d.counts().min())} images, fewer than "
                                 f"{num_shots} shots + {num_query} queries")
        self.datasets = list(datasets)
        self.num_ways, self.num_shots, self.num_query = num_ways, num_shots, num_query
        self.rotate = list(rotate) if rotate is not None else [False] * len(datasets)
        self.modes = tuple(names or [d.name for d in datasets])

    @property
    def num_modes(self) -> int:
        return len(self.datasets)

    @property
    def image_size(self) -> int:
        return self.datasets[0].image_size

    def mode_counts(self, num_tasks: int) -> list[int]:
        base, extra = divmod(num_tasks, self.num_modes)
        return [base + (1 if m < extra else 0) for m in range(self.num_modes)]

    def _sample_mode(self, data: ImageClasses, count: int, generator: torch.Generator, rotate: bool) -> Tensor:
        """``[count, N, K + Q, 3, S, S]`` float images in [0, 1]."""
        n, per = self.num_ways, self.num_shots + self.num_query
        classes = torch.rand(count, data.num_classes, generator=generator).argsort(1)[:, :n]  # [count, N]
        sizes = torch.from_numpy(data.counts())[classes]  # [count, N]
        scores = torch.rand(count, n, int(sizes.max()), generator=generator)
        scores[torch.arange(scores.shape[-1]).expand_as(scores) >= sizes.unsqueeze(-1)] = 2.0  # absent images last
        within = scores.argsort(-1)[..., :per]  # [count, N, K+Q] distinct images of each class
        index = torch.from_numpy(data.offsets)[classes].unsqueeze(-1) + within
        images = torch.from_numpy(np.asarray(data.images[index.flatten().numpy()]))
        images = images.view(count, n, per, *images.shape[1:]).permute(0, 1, 2, 5, 3, 4).float().div_(255)
        if rotate:
            turns = torch.randint(0, 4, (count, n), generator=generator)
            for k in (1, 2, 3):
                sel = turns == k
                if sel.any():
                    images[sel] = torch.rot90(images[sel], k, dims=(-2, -1))
        return images

    def sample(self, num_tasks: int, generator: torch.Generator) -> TaskBatch:
        """``num_tasks`` tasks in mode blocks.

        Returns a :class:`TaskBatch` with ``support_x [T, N*K, 3, S, S]``,
        ``support_y [T, N*K]`` (labels 0..N-1), ``query_x [T, N*Q, 3, S, S]``,
        ``query_y [T, N*Q]`` and ``mode [T]``.
        """
        n, k, q = self.num_ways, self.num_shots, self.num_query
        blocks, modes = [], []
        for m, count in enumerate(self.mode_counts(num_tasks)):
            if count:
                blocks.append(self._sample_mode(self.datasets[m], count, generator, self.rotate[m]))
                modes.append(torch.full((count,), m, dtype=torch.long))
        images = torch.cat(blocks)  # [T, N, K+Q, 3, S, S]
        labels = torch.arange(n).view(1, n, 1).expand(num_tasks, n, k + q)
        shape = images.shape[-3:]
        return TaskBatch(
            support_x=images[:, :, :k].reshape(num_tasks, n * k, *shape),
            support_y=labels[:, :, :k].reshape(num_tasks, n * k),
            query_x=images[:, :, k:].reshape(num_tasks, n * q, *shape),
            query_y=labels[:, :, k:].reshape(num_tasks, n * q),
            mode=torch.cat(modes),
        )
