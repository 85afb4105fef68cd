"""Loaders on the real data in ../shared/data (skipped, with the reason, where it is absent)."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmaml.data import omniglot, tiny_imagenet
from mmaml.data.image_classes import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OMNIGLOT = SHARED / "omniglot"
TINY = SHARED / "tiny-imagenet-200"

needs_omniglot = pytest.mark.skipif(not (OMNIGLOT / "images_background.npz").exists(),
                                    reason=f"Omniglot copy not found at {OMNIGLOT}")
needs_tiny = pytest.mark.skipif(not (TINY / "wnids.txt").exists(), reason=f"Tiny ImageNet copy not found at {TINY}")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def omni(cache):
    return omniglot.load(OMNIGLOT, cache, size=28)


@needs_omniglot
def test_omniglot_classes_counts_and_splits(omni):
    assert omni.num_classes == 1623 and (omni.counts() == 20).all()
    assert omni.images.shape == (32460, 28, 28, 3) and omni.images.dtype == np.uint8
    assert omni.class_names[0] == "Alphabet_of_the_Magi/character01"
    assert len(set(omni.class_names)) == 1623
    s = omniglot.splits(omni)
    assert [s[k].num_classes for k in ("train", "val", "test")] == [1100, 100, 423]
    names = [set(s[k].class_names) for k in ("train", "val", "test")]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    # inverted: the background is dark, strokes bright; 3 equal channels
    im = omni.class_images(0)[0]
    assert im.mean() < 80 and im.max() > 200 and (im[..., 0] == im[..., 2]).all()


@needs_omniglot
def test_omniglot_cache_is_reused_and_deterministic(omni, cache):
    again = omniglot.load(OMNIGLOT, cache, size=28)
    assert isinstance(again.images, np.memmap)
    assert again.class_names == omni.class_names and np.array_equal(again.images[:40], omni.images[:40])


@needs_omniglot
def test_official_zip_is_pixel_identical_to_the_npz(tmp_path):
    with zipfile.ZipFile(OMNIGLOT / "official" / "images_background_small1.zip") as z:
        from_zip = dict(omniglot._zip_classes(z, "images_background_small1"))
    from_npz = dict(omniglot._npz_classes(OMNIGLOT / "images_background.npz", "images_background",
                                          OMNIGLOT / "alphabet_ranges.tsv"))
    assert len(from_zip) > 50
    for name, images in from_zip.items():
        assert len(images) == 20
        assert np.array_equal(np.stack(images), np.stack(from_npz[name])), name


def test_missing_omniglot_names_the_files(tmp_path):
    with pytest.raises(DataError, match="images_background.npz, images_background.zip"):
        omniglot.load(tmp_path, tmp_path / "cache")


@needs_tiny
def test_tiny_imagenet_classes_and_splits(cache):
    data = tiny_imagenet.load(TINY, cache, size=32, per_class=20)
    assert data.num_classes == 202 and (data.counts() == 20).all()
    assert data.class_names == sorted(data.class_names)
    s = tiny_imagenet.splits(data)
    sizes = [s[k].num_classes for k in ("train", "val", "test")]
    assert sum(sizes) == 202 and sizes == [129, 32, 41]
    assert data.images.shape[1:] == (32, 32, 3) and data.images.std() > 20


def test_tiny_imagenet_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError, match="wnids.txt"):
        tiny_imagenet.load(tmp_path, tmp_path / "c")
    folder = tmp_path / "tiny-imagenet-200"
    (folder / "train" / "n0001" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("n0001\n")
    (folder / "train" / "n0001" / "images" / "n0001_0.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="not a readable image"):
        tiny_imagenet.load(tmp_path, tmp_path / "c")
