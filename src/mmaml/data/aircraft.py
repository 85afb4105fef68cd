"""FGVC-Aircraft (Maji et al., 2013): 100 aircraft variants, split 70 / 15 / 15 in ``variants.txt`` order.

Layout: ``fgvc-aircraft-2013b/data/{variants.txt, images_variant_trainval.txt,
images_variant_test.txt, images/<id>.jpg}``. The 20-pixel copyright banner at
the bottom of every image is cropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmaml.data.download import download, extract
from mmaml.data.image_classes import DataError, ImageClasses, build_cached, class_split

URL = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz"
MD5 = "d4acdd33327262359767eeaa97a4f732"
FRACTIONS = (0.70, 0.15, 0.15)
BANNER = 20


def fetch(root: Path) -> None:
    extract(download(URL, Path(root) / "fgvc-aircraft-2013b.tar.gz", f"md5:{MD5}"), Path(root))


def load(root: Path, cache_dir: Path, size: int = 84) -> ImageClasses:
    from PIL import Image

    folder = Path(root) / "fgvc-aircraft-2013b" / "data"
    variants_file = folder / "variants.txt"
    if not variants_file.is_file():
        raise DataError(f"missing {variants_file}; download FGVC-Aircraft with 'mmaml data fetch aircraft --root DIR'")
    variants = [v.strip() for v in variants_file.read_text().splitlines() if v.strip()]
    members: dict[str, list[str]] = {v: [] for v in variants}
    for part in ("trainval", "test"):
        listing = folder / f"images_variant_{part}.txt"
        if not listing.is_file():
            raise DataError(f"missing {listing}; the FGVC-Aircraft copy is incomplete")
        for line in listing.read_text().splitlines():
            if line.strip():
                image_id, variant = line.split(maxsplit=1)
                if variant.strip() not in members:
                    raise DataError(f"{listing} names variant {variant.strip()!r}, which variants.txt lacks")
                members[variant.strip()].append(image_id)

    def classes():
        for v in variants:
            images = []
            for image_id in sorted(members[v]):
                path = folder / "images" / f"{image_id}.jpg"
                if not path.is_file():
                    raise DataError(f"missing image {path}; the FGVC-Aircraft copy is incomplete")
                with Image.open(path) as im:
                    array = np.asarray(im.convert("RGB"))
                images.append(array[:-BANNER] if array.shape[0] > 2 * BANNER else array)
            yield v, images

    return build_cached(cache_dir, f"aircraft|{folder.resolve()}", size, classes)


def splits(data: ImageClasses) -> dict[str, ImageClasses]:
    train, val, test = class_split(data.num_classes, FRACTIONS)
    return {"train": data.subset(train), "val": data.subset(val), "test": data.subset(test)}
