"""How an image file becomes pixels, by name: what a data set's loader does and ``mmaml predict`` repeats.

Each data set reads its files with one named transform (:attr:`DatasetSpec.image_transform
<mmaml.data.registry.DatasetSpec>`); a classification run records the names of its data sets'
transforms in its checkpoint, and ``predict`` decodes a user's files with the one of the data set
they resemble, so that they reach the network as the training images did.

* ``rgb``: the image in RGB.
* ``ink-inverted``: the image in grey levels, inverted (dark strokes on white become bright
  strokes on black, as Omniglot trains), repeated to 3 channels when resized.

Then every image is resized to the run's size (:func:`mmaml.data.image_classes.resize_square`).
"""

from __future__ import annotations

import numpy as np

TRANSFORMS = ("rgb", "ink-inverted")


def decode(image, transform: str) -> np.ndarray:
    """A PIL image -> uint8 ``[H, W, 3]`` (``rgb``) or ``[H, W]`` (``ink-inverted``) pixels."""
    if transform == "rgb":
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if transform == "ink-inverted":
        return (255 - np.asarray(image.convert("L"), dtype=np.uint8)).astype(np.uint8)
    raise ValueError(f"unknown image transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")
