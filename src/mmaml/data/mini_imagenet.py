"""mini-ImageNet (Vinyals et al.; split of Ravi & Larochelle): 100 ImageNet classes, 600 images each.

Layout: ``mini-imagenet/images/<file>.jpg`` and ``train.csv``, ``val.csv``,
``test.csv`` (``filename,label``) giving the 64 / 16 / 20-class split. There is
no stable public download URL: get the images and CSVs by hand.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mmaml.data.image_classes import DataError, ImageClasses, build_cached

SPLITS = ("train", "val", "test")


def _folder(root: Path) -> Path:
    for candidate in (Path(root) / "mini-imagenet", Path(root)):
        if all((candidate / f"{s}.csv").is_file() for s in SPLITS) and (candidate / "images").is_dir():
            return candidate
    raise DataError(f"mini-ImageNet not found under {root}: expected mini-imagenet/images/ and train.csv, val.csv, "
                    "test.csv (the Ravi & Larochelle split); download them by hand and point --data-dir/MMAML_DATA there")


def read_split(folder: Path, split: str) -> dict[str, list[str]]:
    """``{class label: sorted file names}`` of one split CSV."""
    groups: dict[str, list[str]] = {}
    with (folder / f"{split}.csv").open() as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"filename", "label"} <= set(reader.fieldnames):
            raise DataError(f"{folder / f'{split}.csv'} must have the columns filename,label")
        for row in reader:
            groups.setdefault(row["label"], []).append(row["filename"])
    return {label: sorted(files) for label, files in sorted(groups.items())}


def load(root: Path, cache_dir: Path, size: int = 84) -> tuple[ImageClasses, dict[str, list[int]]]:
    """All classes (train, then val, then test) and ``{split: class indices}``."""
    from PIL import Image

    folder = _folder(root)
    per_split = {s: read_split(folder, s) for s in SPLITS}
    order = [(s, label) for s in SPLITS for label in per_split[s]]

    def classes():
        for s, label in order:
            images = []
            for name in per_split[s][label]:
                path = folder / "images" / name
                if not path.is_file():
                    raise DataError(f"{path} is listed in {s}.csv but missing; the copy is incomplete")
                with Image.open(path) as im:
                    images.append(np.asarray(im.convert("RGB")))
            yield label, images

    data = build_cached(cache_dir, f"mini-imagenet|{folder.resolve()}", size, classes)
    index, start = {}, 0
    for s in SPLITS:
        index[s] = list(range(start, start + len(per_split[s])))
        start += len(per_split[s])
    return data, index
