"""Fashion-MNIST (Xiao et al., 2017) and a "double" version with 100 ordered-pair classes.

Fashion-MNIST is read from its four standard idx ``.gz`` files (Debian's
``dataset-fashion-mnist`` puts them in ``/usr/share/datasets/fashion-mnist``).
Double Fashion-MNIST is built the way Multi-digit MNIST builds DoubleMNIST:
class ``(a, b)`` shows a garment of class ``a`` left of one of class ``b``
(100 ordered pairs), its images drawn by a fixed seed, so the data set is the
same on every machine. Its classes are split 64 / 16 / 20 in a fixed
pseudo-random order.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from mmaml.data.image_classes import DataError, ImageClasses, build_cached, class_split

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
NAMES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
SEED = 20190601
FRACTIONS = (0.64, 0.16, 0.20)


def find_folder(root: Path | None = None) -> Path:
    """``root/fashion-mnist``, ``root`` or the Debian package's folder, whichever holds the files."""
    candidates = ([Path(root) / "fashion-mnist", Path(root)] if root else []) + [DEBIAN_DIR]
    for c in candidates:
        if all((c / f).is_file() for pair in FILES.values() for f in pair):
            return c
    raise DataError(
        f"Fashion-MNIST idx files not found in {', '.join(map(str, candidates))}; "
        "install them with 'apt-get install dataset-fashion-mnist' or point --data-dir/MMAML_DATA at a copy"
    )


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzip-compressed): ``[N]`` labels or ``[N, H, W]`` images, uint8."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an unsigned-byte idx file")
        shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
        array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        if array.size != int(np.prod(shape)):
            raise ValueError("truncated")
        return array.reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as exc:
        raise DataError(f"{path} is not a valid idx file ({exc}); reinstall or download it again") from None


def read_all(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Train and test pooled: images ``[70000, 28, 28]`` and labels ``[70000]``."""
    images, labels = [], []
    for image_file, label_file in FILES.values():
        images.append(read_idx(folder / image_file))
        labels.append(read_idx(folder / label_file))
    images, labels = np.concatenate(images), np.concatenate(labels)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"Fashion-MNIST in {folder}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def load_double(root: Path | None, cache_dir: Path, size: int = 32, per_class: int = 200) -> ImageClasses:
    """The 100 ordered-pair classes ``a_b``, ``per_class`` images each (cached after the first call)."""
    folder = find_folder(root)
    images, labels = read_all(folder)
    by_class = [np.flatnonzero(labels == c) for c in range(10)]

    def classes():
        rng = np.random.default_rng(SEED)
        for a in range(10):
            for b in range(10):
                left = images[rng.choice(by_class[a], per_class)]
                right = images[rng.choice(by_class[b], per_class)]
                pair = np.concatenate([left, right], axis=2)  # [n, 28, 56]
                square = np.pad(pair, ((0, 0), (14, 14), (0, 0)))  # [n, 56, 56], garments centred
                yield f"{NAMES[a]}_{NAMES[b]}", list(square)

    return build_cached(cache_dir, f"double-fashion-mnist|{folder.resolve()}|{per_class}|{SEED}", size, classes)


def double_splits(data: ImageClasses) -> dict[str, ImageClasses]:
    """64 / 16 / 20 classes, in a fixed pseudo-random order of the 100 pairs."""
    order = np.random.default_rng(SEED).permutation(data.num_classes)
    train, val, test = class_split(data.num_classes, FRACTIONS)
    return {k: data.subset([int(order[i]) for i in r]) for k, r in zip(("train", "val", "test"), (train, val, test))}
