"""Tiny ImageNet (CS231n): 64x64 ImageNet images in ``train/<wnid>/images/<wnid>_<k>.JPEG``.

Here it stands in for mini-ImageNet (both are ImageNet subsets). Classes are
the WordNet ids of ``wnids.txt`` in sorted order, split 64% / 16% / 20% like
mini-ImageNet's 64 / 16 / 20 classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmaml.data.download import download, extract
from mmaml.data.image_classes import DataError, ImageClasses, build_cached, class_split

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
FRACTIONS = (0.64, 0.16, 0.20)


def fetch(root: Path) -> None:
    archive = download(URL, Path(root) / "tiny-imagenet-200.zip", f"md5:{MD5}")
    extract(archive, Path(root))


def _folder(root: Path) -> Path:
    for candidate in (Path(root) / "tiny-imagenet-200", Path(root)):
        if (candidate / "wnids.txt").is_file():
            return candidate
    raise DataError(f"Tiny ImageNet not found: no tiny-imagenet-200/wnids.txt under {root}; "
                    "download it with 'mmaml data fetch tiny_imagenet --root DIR' or point --set data_dir=DIR (or MMAML_DATA) at a copy")


def load(root: Path, cache_dir: Path, size: int = 32, per_class: int | None = None) -> ImageClasses:
    """Every class of ``wnids.txt`` (sorted), at most ``per_class`` training images each (sorted by name)."""
    from PIL import Image

    folder = _folder(root)
    wnids = sorted({w.strip() for w in (folder / "wnids.txt").read_text().split() if w.strip()})
    missing = [w for w in wnids if not (folder / "train" / w / "images").is_dir()]
    if missing:
        raise DataError(f"{folder}/train lacks the image folders of {len(missing)} classes (e.g. {missing[0]}); "
                        "the copy is incomplete")

    def classes():
        for w in wnids:
            files = sorted((folder / "train" / w / "images").glob("*.JPEG"))[:per_class]
            images = []
            for f in files:
                try:
                    with Image.open(f) as im:
                        images.append(np.asarray(im.convert("RGB")))
                except OSError:
                    raise DataError(f"{f} is not a readable image; replace it from the original archive") from None
            if not images:
                raise DataError(f"no images in {folder / 'train' / w / 'images'}")
            yield w, images

    key = f"tiny-imagenet|{folder.resolve()}|{len(wnids)}|{per_class}"
    return build_cached(cache_dir, key, size, classes)


def splits(data: ImageClasses) -> dict[str, ImageClasses]:
    train, val, test = class_split(data.num_classes, FRACTIONS)
    return {"train": data.subset(train), "val": data.subset(val), "test": data.subset(test)}
