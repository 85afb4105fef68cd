"""The image data sets by name: how to load each one's meta-train / val / test classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mmaml.data import aircraft, cub, fashion_mnist, fc100, mini_imagenet, omniglot, tiny_imagenet
from mmaml.data.image_classes import DataError, ImageClasses
from mmaml.data.paths import cache_root, data_root

Splits = dict[str, ImageClasses]


def _indexed(data: ImageClasses, index: dict[str, list[int]]) -> Splits:
    return {split: data.subset(classes) for split, classes in index.items()}


@dataclass(frozen=True)
class DatasetSpec:
    """A data set: ``load(root, cache, size) -> {"train", "val", "test": ImageClasses}``."""

    name: str
    load: Callable[[Path, Path, int], Splits]
    locate: Callable[[Path], Path | None]  # where under the data folder a copy is, or None
    rotate: bool = False  # the 90-degree rotation class augmentation (Omniglot)
    image_transform: str = "rgb"  # how its image files become pixels (mmaml.data.transforms)


def _found(finder: Callable[[Path], object]) -> Callable[[Path], Path | None]:
    """A loader's own finder (raising :class:`DataError` when the files are missing) as ``root -> folder | None``."""
    def locate(root: Path) -> Path | None:
        try:
            found = finder(Path(root))
        except DataError:
            return None
        return Path(found[0][2]).parent if isinstance(found, list) else Path(found)

    return locate


def _file(relative: str) -> Callable[[Path], Path | None]:
    """``root -> root/relative's folder`` when that file exists, else None."""
    return lambda root: (Path(root) / relative).parent if (Path(root) / relative).is_file() else None


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("omniglot", lambda r, c, n: omniglot.splits(omniglot.load(r, c, n)), _found(omniglot._sources),
                    rotate=True, image_transform=omniglot.IMAGE_TRANSFORM),
        DatasetSpec("tiny_imagenet", lambda r, c, n: tiny_imagenet.splits(tiny_imagenet.load(r, c, n)),
                    _found(tiny_imagenet._folder)),
        DatasetSpec("mini_imagenet", lambda r, c, n: _indexed(*mini_imagenet.load(r, c, n)),
                    _found(mini_imagenet._folder)),
        DatasetSpec("fc100", lambda r, c, n: _indexed(*fc100.load(r, c, n)), _file("cifar-100-python/train")),
        DatasetSpec("cub", lambda r, c, n: cub.splits(cub.load(r, c, n)), _file("CUB_200_2011/images.txt")),
        DatasetSpec("aircraft", lambda r, c, n: aircraft.splits(aircraft.load(r, c, n)),
                    _file("fgvc-aircraft-2013b/data/variants.txt")),
        DatasetSpec("double_fashion_mnist",
                    lambda r, c, n: fashion_mnist.double_splits(fashion_mnist.load_double(r, c, n)),
                    _found(fashion_mnist.find_folder)),
    ]
}


# Data sets with a download helper (``mmaml data fetch NAME``): each fetches its official archive(s) into
# the data folder and verifies the published checksum. mini-ImageNet has no official archive; Double
# Fashion-MNIST is built from Fashion-MNIST (Debian package dataset-fashion-mnist).
FETCHERS: dict[str, Callable[[Path], None]] = {
    "omniglot": omniglot.fetch,
    "tiny_imagenet": tiny_imagenet.fetch,
    "fc100": fc100.fetch,
    "cub": cub.fetch,
    "aircraft": aircraft.fetch,
}
NO_FETCHER = {
    "mini_imagenet": "no official archive: put the Ravi & Larochelle images and csv files in mini-imagenet/",
    "double_fashion_mnist": "built from Fashion-MNIST: apt-get install dataset-fashion-mnist, or its idx files in "
                            "fashion-mnist/",
}


def image_transforms(names) -> dict[str, str]:
    """``{data set: its image transform's name}`` for the data sets ``names``."""
    return {name: DATASETS[name].image_transform for name in names}


def limit_per_class(data: ImageClasses, n: int | None) -> ImageClasses:
    """The first ``n`` images of every class (all when ``n`` is None)."""
    if n is None or int(data.counts().max()) <= n:
        return data
    keep = np.concatenate([np.arange(s, min(e, s + n)) for s, e in zip(data.offsets[:-1], data.offsets[1:])])
    counts = np.minimum(data.counts(), n)
    return ImageClasses(data.name, data.images[keep], np.concatenate([[0], np.cumsum(counts)]), data.class_names)


def load_split(name: str, split: str, size: int, data_dir=None, cache_dir=None,
               images_per_class: int | None = None) -> ImageClasses:
    """One split of data set ``name`` at ``size`` pixels, from ``data_dir`` (or ``$MMAML_DATA``)."""
    spec = DATASETS[name]
    data = spec.load(data_root(data_dir), cache_root(cache_dir), size)[split]
    data = limit_per_class(data, images_per_class)
    data.name = name
    return data
