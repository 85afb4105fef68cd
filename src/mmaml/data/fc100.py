"""FC100 (Oreshkin et al., 2018): CIFAR-100 split by superclass so that meta-train
and meta-test classes are far apart: 12 / 4 / 4 superclasses (60 / 20 / 20 classes).

Reads the CIFAR-100 python version (``cifar-100-python/{train,test,meta}``),
whose train and test images are pooled per class (600 per class).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from mmaml.data.download import download, extract
from mmaml.data.image_classes import DataError, ImageClasses, build_cached

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
# superclass (coarse label) indices of each split, as in the TADAM paper's FC100
SUPERCLASSES = {
    "train": (1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19),
    "val": (8, 11, 13, 16),
    "test": (0, 7, 12, 14),
}


def fetch(root: Path) -> None:
    extract(download(URL, Path(root) / "cifar-100-python.tar.gz", f"md5:{MD5}"), Path(root))


def _read(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"missing {path}; download CIFAR-100 (python version) with 'mmaml data fetch fc100 --root DIR'")
    try:
        with path.open("rb") as f:
            return pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError):
        raise DataError(f"{path} is not a CIFAR-100 pickle; download it again") from None


def load(root: Path, cache_dir: Path, size: int = 32) -> tuple[ImageClasses, dict[str, list[int]]]:
    """The 100 fine classes, ordered by split (train, val, test) then fine label."""
    folder = Path(root) / "cifar-100-python"
    parts = [_read(folder / n) for n in ("train", "test")]
    meta = _read(folder / "meta")
    fine = np.concatenate([np.asarray(p["fine_labels"]) for p in parts])
    coarse = np.concatenate([np.asarray(p["coarse_labels"]) for p in parts])
    data = np.concatenate([np.asarray(p["data"], dtype=np.uint8) for p in parts]).reshape(-1, 3, 32, 32)
    images = data.transpose(0, 2, 3, 1)
    coarse_of = {int(f): int(c) for f, c in zip(fine, coarse)}
    order, index = [], {}
    for split, supers in SUPERCLASSES.items():
        members = sorted(f for f, c in coarse_of.items() if c in supers)
        index[split] = list(range(len(order), len(order) + len(members)))
        order += members

    def classes():
        for f in order:
            yield meta["fine_label_names"][f], list(images[fine == f])

    return build_cached(cache_dir, f"fc100|{folder.resolve()}|{len(fine)}", size, classes), index
