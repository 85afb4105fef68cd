"""Omniglot (Lake et al., 2015): 1,623 handwritten characters of 50 alphabets, 20 drawings each.

Reads either the official release (``images_background.zip`` and
``images_evaluation.zip``, or their extracted folders:
``<set>/<alphabet>/characterNN/<id>_<drawer>.png``) or the ``.npz`` form
(``images`` bool ``[classes, 20, 105, 105]``, True = background, with
``alphabet_ranges.tsv`` naming the alphabets). Classes are named
``alphabet/characterNN`` and ordered background set first, then evaluation
set, each by alphabet and character name, so both forms give the same order.
Images are inverted (ink bright) and tiled to 3 channels.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from mmaml.data.download import download, extract, verify
from mmaml.data.image_classes import DataError, ImageClasses, build_cached
from mmaml.data.transforms import decode

IMAGE_TRANSFORM = "ink-inverted"  # how its PNG files become training pixels (and predict's inputs)

SETS = ("images_background", "images_evaluation")
URL = "https://github.com/brendenlake/omniglot/raw/master/python/{name}.zip"
MD5 = {"images_background": "68d2efa1b9178cc56df9314c21c6e718", "images_evaluation": "6b91aef0f799c5bb55b94e3f2daec811"}
NUM_CLASSES = {"images_background": 964, "images_evaluation": 659}
# Meta-train / meta-val / meta-test character counts in the canonical order (1,200 + 423 as in MAML).
SPLIT_SIZES = (1100, 100, 423)


def fetch(root: Path) -> None:
    """Download and verify the official zips into ``root/omniglot``."""
    for name in SETS:
        download(URL.format(name=name), Path(root) / "omniglot" / f"{name}.zip", f"md5:{MD5[name]}")


def _invert(bool_or_gray: np.ndarray) -> np.ndarray:
    """Background True/white -> 0, ink -> 255."""
    if bool_or_gray.dtype == bool:
        return np.where(bool_or_gray, 0, 255).astype(np.uint8)
    return (255 - bool_or_gray).astype(np.uint8)


def _zip_classes(source: Path | zipfile.ZipFile, set_name: str) -> Iterator[tuple[str, list[np.ndarray]]]:
    from PIL import Image

    if isinstance(source, zipfile.ZipFile):
        names = [n for n in source.namelist() if n.endswith(".png")]
        read = source.read
    else:
        names = [str(p.relative_to(source.parent)) for p in source.rglob("*.png")]
        read = lambda n: (source.parent / n).read_bytes()  # noqa: E731
    groups: dict[tuple[str, str], list[str]] = {}
    for n in names:
        parts = n.split("/")
        if len(parts) < 4:
            raise DataError(f"unexpected Omniglot file {n!r}: expected {set_name}/<alphabet>/<character>/<file>.png")
        groups.setdefault((parts[-3], parts[-2]), []).append(n)
    for (alphabet, character) in sorted(groups):
        images = []
        for n in sorted(groups[(alphabet, character)]):
            with Image.open(io.BytesIO(read(n))) as im:
                images.append(decode(im, IMAGE_TRANSFORM))
        yield f"{alphabet}/{character}", images


def _alphabets(tsv: Path) -> list[tuple[str, int, int, str]]:
    if not tsv.is_file():
        raise DataError(f"missing {tsv}: the .npz form of Omniglot needs alphabet_ranges.tsv beside it")
    with tsv.open() as f:
        return [(r["set"], int(r["first_id"]), int(r["last_id"]), r["alphabet"]) for r in csv.DictReader(f, delimiter="\t")]


def _npz_classes(path: Path, set_name: str, tsv: Path) -> Iterator[tuple[str, list[np.ndarray]]]:
    checksum_file = path.with_name(path.name + ".sha256")
    if checksum_file.exists():
        verify(path, "sha256:" + checksum_file.read_text().split()[0])
    try:
        with np.load(path) as data:
            images = data["images"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path} is not a readable Omniglot .npz ({exc}); get it again") from None
    offset = 0 if set_name == "images_background" else NUM_CLASSES["images_background"]
    ranges = [(first, last, name) for s, first, last, name in _alphabets(tsv) if s == set_name.split("_")[1]]
    named = []
    for label in range(images.shape[0]):
        char_id = label + 1 + offset
        match = [(first, name) for first, last, name in ranges if first <= char_id <= last]
        if not match:
            raise DataError(f"{tsv} names no alphabet for character id {char_id}")
        first, alphabet = match[0]
        named.append((f"{alphabet}/character{char_id - first + 1:02d}", label))
    for name, label in sorted(named):
        yield name, [_invert(im) for im in images[label]]


def _sources(root: Path) -> list[tuple[str, str, object]]:
    """For each set, the first form found: (set, kind, location)."""
    folder = root / "omniglot" if (root / "omniglot").is_dir() else root
    found = []
    for name in SETS:
        if (folder / f"{name}.npz").is_file():
            found.append((name, "npz", folder / f"{name}.npz"))
        elif (folder / f"{name}.zip").is_file():
            found.append((name, "zip", folder / f"{name}.zip"))
        elif (folder / name).is_dir():
            found.append((name, "dir", folder / name))
        else:
            raise DataError(
                f"Omniglot not found: no {name}.npz, {name}.zip or {name}/ in {folder}; "
                "download it with 'mmaml data fetch omniglot --root DIR' or point --set data_dir=DIR (or MMAML_DATA) at a copy"
            )
    return found


def load(root: Path, cache_dir: Path, size: int = 28) -> ImageClasses:
    """All 1,623 Omniglot characters, resized to ``size`` (cached after the first call)."""
    root = Path(root)
    sources = _sources(root)
    key = "omniglot|" + "|".join(f"{k}:{p}:{Path(p).stat().st_size}" for _, k, p in sources)

    def classes() -> Iterable[tuple[str, list[np.ndarray]]]:
        for set_name, kind, location in sources:
            if kind == "npz":
                yield from _npz_classes(location, set_name, Path(location).parent / "alphabet_ranges.tsv")
            elif kind == "zip":
                try:
                    with zipfile.ZipFile(location) as z:
                        yield from _zip_classes(z, set_name)
                except zipfile.BadZipFile:
                    raise DataError(f"{location} is not a valid zip; download it again") from None
            else:
                yield from _zip_classes(Path(location), set_name)

    data = build_cached(cache_dir, key, size, classes)
    if data.num_classes != sum(NUM_CLASSES.values()):
        raise DataError(f"Omniglot in {root} has {data.num_classes} characters, expected 1623; is a set incomplete?")
    return data


def splits(data: ImageClasses) -> dict[str, ImageClasses]:
    """meta-train / meta-val / meta-test: consecutive blocks of 1,100 / 100 / 423 characters."""
    a, b, _ = SPLIT_SIZES
    return {
        "train": data.subset(range(0, a)),
        "val": data.subset(range(a, a + b)),
        "test": data.subset(range(a + b, data.num_classes)),
    }


def extract_official(archive_dir: Path) -> None:
    """Unpack downloaded zips in place (optional: the loader reads the zips directly)."""
    for name in SETS:
        extract(Path(archive_dir) / f"{name}.zip", Path(archive_dir))
