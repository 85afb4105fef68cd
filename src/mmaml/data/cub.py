"""CUB-200-2011 (Wah et al.): 200 bird species, split 100 / 50 / 50 by class id.

Layout: ``CUB_200_2011/{classes.txt, images.txt, image_class_labels.txt, images/...}``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmaml.data.download import download, extract
from mmaml.data.image_classes import DataError, ImageClasses, build_cached, class_split

URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
MD5 = "97eceeb196236b17998738112f37df78"
FRACTIONS = (0.5, 0.25, 0.25)


def fetch(root: Path) -> None:
    extract(download(URL, Path(root) / "CUB_200_2011.tgz", f"md5:{MD5}"), Path(root))


def _table(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise DataError(f"missing {path}; download CUB-200-2011 with 'mmaml data fetch cub --root DIR'")
    return [line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip()]


def load(root: Path, cache_dir: Path, size: int = 84) -> ImageClasses:
    from PIL import Image

    folder = Path(root) / "CUB_200_2011"
    classes_txt = {int(i): name for i, name in _table(folder / "classes.txt")}
    image_path = {int(i): p for i, p in _table(folder / "images.txt")}
    label = {int(i): int(c) for i, c in _table(folder / "image_class_labels.txt")}
    by_class: dict[int, list[int]] = {}
    for image_id, c in label.items():
        by_class.setdefault(c, []).append(image_id)

    def classes():
        for c in sorted(classes_txt):
            images = []
            for image_id in sorted(by_class.get(c, [])):
                path = folder / "images" / image_path[image_id]
                if not path.is_file():
                    raise DataError(f"missing image {path}; the CUB copy is incomplete")
                with Image.open(path) as im:
                    images.append(np.asarray(im.convert("RGB")))
            yield classes_txt[c], images

    return build_cached(cache_dir, f"cub|{folder.resolve()}", size, classes)


def splits(data: ImageClasses) -> dict[str, ImageClasses]:
    train, val, test = class_split(data.num_classes, FRACTIONS)
    return {"train": data.subset(train), "val": data.subset(val), "test": data.subset(test)}
