"""Images grouped by class, decoded and resized once into a memory-mapped cache."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from mmaml.errors import UserError

CACHE_VERSION = 1


class DataError(UserError):
    """A data set file that is missing, corrupt or laid out unexpectedly."""


@dataclass
class ImageClasses:
    """All images of a data set (or split), grouped by class, one size.

    Attributes:
        name: data set name.
        images: ``[N, S, S, 3]`` uint8 (usually a read-only memory map); the
            images of class ``c`` are ``images[offsets[c]:offsets[c + 1]]``.
        offsets: ``[C + 1]`` int64.
        class_names: ``C`` stable names (e.g. ``"Latin/character03"``, a WordNet id).
    """

    name: str
    images: np.ndarray
    offsets: np.ndarray
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def class_images(self, c: int) -> np.ndarray:
        return self.images[self.offsets[c]:self.offsets[c + 1]]

    def subset(self, classes: Sequence[int], name: str | None = None) -> "ImageClasses":
        """The classes at ``classes`` (indices), sharing the same image array."""
        classes = list(classes)
        starts, ends = self.offsets[classes], self.offsets[np.asarray(classes) + 1]
        if all(s == e0 for s, e0 in zip(starts[1:], ends[:-1])):  # contiguous: a view
            images = self.images[starts[0]:ends[-1]] if classes else self.images[:0]
            offsets = np.concatenate([[0], np.cumsum(ends - starts)])
        else:
            index = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)]) if classes else np.zeros(0, int)
            images = self.images[index]
            offsets = np.concatenate([[0], np.cumsum(ends - starts)])
        return ImageClasses(name or self.name, images, offsets.astype(np.int64), [self.class_names[c] for c in classes])


def class_split(num_classes: int, fractions: Sequence[float]) -> list[range]:
    """Consecutive class ranges with the given fractions (the last takes the remainder)."""
    bounds, start = [], 0
    for f in fractions[:-1]:
        end = start + int(round(f * num_classes))
        bounds.append(range(start, end))
        start = end
    bounds.append(range(start, num_classes))
    return bounds


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """``[H, W]`` or ``[H, W, 3]`` uint8 -> ``[size, size, 3]`` uint8 (bilinear, antialiased)."""
    from PIL import Image

    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    pil = Image.fromarray(np.ascontiguousarray(image))
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.BILINEAR, reducing_gap=None)
    return np.asarray(pil, dtype=np.uint8)


def build_cached(
    cache_dir: Path,
    key: str,
    size: int,
    classes: Callable[[], Iterable[tuple[str, Iterable[np.ndarray]]]],
) -> ImageClasses:
    """Decode and resize once, then memory-map.

    Args:
        cache_dir: folder of the cache files.
        key: identifies the source (data set, files and settings) in the file name.
        size: output image side.
        classes: yields ``(class name, images)`` with images as ``[H, W]`` or
            ``[H, W, 3]`` uint8 arrays, in the data set's canonical class order.
    """
    cache_dir = Path(cache_dir)
    digest = hashlib.sha1(f"{key}|{size}|v{CACHE_VERSION}".encode()).hexdigest()[:16]
    base = cache_dir / f"{key.split('|')[0]}-{size}px-{digest}"
    array_path, meta_path = base.with_suffix(".npy"), base.with_suffix(".json")
    if array_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        images = np.load(array_path, mmap_mode="r")
        return ImageClasses(meta["name"], images, np.asarray(meta["offsets"], dtype=np.int64), meta["class_names"])
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"mmaml: building the {key.split('|')[0]} image cache ({size} px) in {cache_dir}, once; later runs read it",
          file=sys.stderr, flush=True)
    names, per_class = [], []
    for name, images in classes():
        names.append(name)
        per_class.append(np.stack([resize_square(im, size) for im in images]))
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in per_class])]).astype(np.int64)
    tmp = array_path.with_name(array_path.name + f".{os.getpid()}.tmp")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(int(offsets[-1]), size, size, 3))
    for start, block in zip(offsets[:-1], per_class):
        out[start:start + len(block)] = block
    out.flush()
    del out
    os.replace(tmp, array_path)
    meta_tmp = meta_path.with_name(meta_path.name + f".{os.getpid()}.tmp")
    meta_tmp.write_text(json.dumps({"name": key.split("|")[0], "offsets": offsets.tolist(), "class_names": names}))
    os.replace(meta_tmp, meta_path)
    print(f"mmaml: built the {key.split('|')[0]} image cache in {time.perf_counter() - started:.0f} s", file=sys.stderr,
          flush=True)
    return ImageClasses(key.split("|")[0], np.load(array_path, mmap_mode="r"), offsets, names)
