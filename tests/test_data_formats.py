"""Loaders of the data sets that are not on this machine, on small files written in their layouts,
and Fashion-MNIST / Double Fashion-MNIST from the Debian package when installed."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmaml.data import aircraft, cub, fashion_mnist, fc100, mini_imagenet
from mmaml.data.download import download, extract, verify
from mmaml.data.image_classes import DataError


def write_jpg(path: Path, color, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_mini_imagenet_layout(tmp_path):
    folder = tmp_path / "mini-imagenet"
    for split, labels in (("train", ["n02", "n01"]), ("val", ["n03"]), ("test", ["n04", "n05"])):
        rows = ["filename,label"]
        for li, label in enumerate(labels):
            for k in range(3):
                name = f"{label}{k:08d}.jpg"
                write_jpg(folder / "images" / name, (10 * k, 50 + li, 200))
                rows.append(f"{name},{label}")
        (folder / f"{split}.csv").write_text("\n".join(rows) + "\n")
    data, index = mini_imagenet.load(tmp_path, tmp_path / "cache", size=16)
    assert data.class_names == ["n01", "n02", "n03", "n04", "n05"]  # sorted within each split
    assert index == {"train": [0, 1], "val": [2], "test": [3, 4]}
    assert data.images.shape == (15, 16, 16, 3) and (data.counts() == 3).all()
    (folder / "images" / "n0300000001.jpg").unlink()
    with pytest.raises(DataError, match="missing"):
        mini_imagenet.load(tmp_path, tmp_path / "cache2", size=16)


def test_mini_imagenet_absent(tmp_path):
    with pytest.raises(DataError, match="train.csv, val.csv"):
        mini_imagenet.load(tmp_path, tmp_path / "c")


def test_fc100_superclass_split(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    coarse_of_fine = np.arange(100) % 20
    rng = np.random.default_rng(0)
    for part, n_per in (("train", 2), ("test", 1)):
        fine = np.repeat(np.arange(100), n_per)
        blob = {"data": rng.integers(0, 255, (len(fine), 3072), dtype=np.uint8),
                "fine_labels": fine.tolist(), "coarse_labels": coarse_of_fine[fine].tolist()}
        (folder / part).write_bytes(pickle.dumps(blob))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"class{i}" for i in range(100)]}))
    data, index = fc100.load(tmp_path, tmp_path / "cache", size=8)
    assert [len(index[s]) for s in ("train", "val", "test")] == [60, 20, 20]
    for split, supers in fc100.SUPERCLASSES.items():
        for c in index[split]:
            assert int(data.class_names[c].removeprefix("class")) % 20 in supers
    assert (data.counts() == 3).all()
    (folder / "meta").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a CIFAR-100 pickle"):
        fc100.load(tmp_path, tmp_path / "cache2", size=8)


def test_cub_layout_and_split(tmp_path):
    folder = tmp_path / "CUB_200_2011"
    classes, images, labels = [], [], []
    image_id = 1
    for c in range(1, 9):
        classes.append(f"{c} {c:03d}.Bird_{c}")
        for k in range(2):
            rel = f"{c:03d}.Bird_{c}/img_{k}.jpg"
            write_jpg(folder / "images" / rel, (c * 20, k * 50, 0))
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c}")
            image_id += 1
    for name, lines in (("classes.txt", classes), ("images.txt", images), ("image_class_labels.txt", labels)):
        (folder / name).write_text("\n".join(lines) + "\n")
    data = cub.load(tmp_path, tmp_path / "cache", size=12)
    assert data.class_names[0] == "001.Bird_1" and data.num_classes == 8 and (data.counts() == 2).all()
    s = cub.splits(data)
    assert [s[k].num_classes for k in ("train", "val", "test")] == [4, 2, 2]


def test_aircraft_layout_crops_banner(tmp_path):
    folder = tmp_path / "fgvc-aircraft-2013b" / "data"
    variants = [f"V{i}" for i in range(20)]
    (folder / "images").mkdir(parents=True)
    (folder / "variants.txt").write_text("\n".join(variants) + "\n")
    lines = {"trainval": [], "test": []}
    for i, v in enumerate(variants):
        for k, part in enumerate(("trainval", "test")):
            image_id = f"{i:03d}{k}"
            im = np.zeros((80, 60, 3), np.uint8)
            im[-20:] = 255  # the banner
            Image.fromarray(im).save(folder / "images" / f"{image_id}.jpg", quality=100)
            lines[part].append(f"{image_id} {v}")
    for part, ls in lines.items():
        (folder / f"images_variant_{part}.txt").write_text("\n".join(ls) + "\n")
    data = aircraft.load(tmp_path, tmp_path / "cache", size=16)
    assert data.num_classes == 20 and (data.counts() == 2).all()
    assert data.images.max() < 40  # banner cropped
    assert [aircraft.splits(data)[k].num_classes for k in ("train", "val", "test")] == [14, 3, 3]


def test_idx_reader_and_corrupt_file(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB3I", 0, 8, 3, 2, 3, 4) + images.tobytes())
    assert np.array_equal(fashion_mnist.read_idx(path), images)
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB3I", 0, 8, 3, 5, 3, 4) + images.tobytes())
    with pytest.raises(DataError, match="not a valid idx file"):
        fashion_mnist.read_idx(path)


debian = pytest.mark.skipif(not (fashion_mnist.DEBIAN_DIR / "train-images-idx3-ubyte.gz").exists(),
                            reason="Debian package dataset-fashion-mnist is not installed")


@debian
def test_double_fashion_mnist_is_deterministic(tmp_path):
    a = fashion_mnist.load_double(None, tmp_path / "c1", size=16, per_class=5)
    b = fashion_mnist.load_double(None, tmp_path / "c2", size=16, per_class=5)
    assert a.num_classes == 100 and (a.counts() == 5).all()
    assert a.class_names[:2] == ["tshirt_tshirt", "tshirt_trouser"] and a.class_names[-1] == "boot_boot"
    assert np.array_equal(np.asarray(a.images), np.asarray(b.images))
    s = fashion_mnist.double_splits(a)
    names = [set(s[k].class_names) for k in ("train", "val", "test")]
    assert [len(n) for n in names] == [64, 16, 20] and not (names[0] & names[2] or names[1] & names[2])
    # left half shows garment a, right half garment b: the two halves differ across the pair (0, 1)
    im = np.asarray(a.class_images(1)[0], dtype=float)
    assert im[:, :8].sum() > 0 and im[:, 8:].sum() > 0


def test_checksum_download_and_extract(tmp_path):
    src = tmp_path / "src.zip"
    import zipfile
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("pkg/file.txt", "hello")
    from mmaml.data.download import file_digest
    good = "sha256:" + file_digest(src, "sha256")
    dest = download(src.as_uri(), tmp_path / "dl" / "a.zip", good)
    assert dest.read_bytes() == src.read_bytes()
    extract(dest, tmp_path / "out")
    assert (tmp_path / "out" / "pkg" / "file.txt").read_text() == "hello"
    with pytest.raises(DataError, match="corrupt"):
        verify(dest, "sha256:" + "0" * 64)
    with pytest.raises(DataError, match="corrupt"):
        download(src.as_uri(), tmp_path / "dl2" / "b.zip", "md5:" + "0" * 32)
    assert not (tmp_path / "dl2" / "b.zip").exists() and not (tmp_path / "dl2" / "b.zip.part").exists()
    with pytest.raises(DataError, match="could not download"):
        download((tmp_path / "nope.zip").as_uri(), tmp_path / "dl3" / "c.zip")


def test_building_an_image_cache_says_so_once(tmp_path, capsys):
    """The first load decodes and resizes every image (about 20 s for Omniglot): a line says what happens; a load
    from the cache is silent."""
    import numpy as np

    from mmaml.data.image_classes import build_cached

    def classes():
        yield "a", [np.zeros((8, 8), dtype=np.uint8)] * 2
        yield "b", [np.full((8, 8), 255, dtype=np.uint8)] * 2

    first = build_cached(tmp_path, "toy|v1", 4, classes)
    err = capsys.readouterr().err
    assert f"mmaml: building the toy image cache (4 px) in {tmp_path}, once; later runs read it" in err
    assert "mmaml: built the toy image cache in" in err
    again = build_cached(tmp_path, "toy|v1", 4, classes)
    assert capsys.readouterr().err == ""
    assert np.array_equal(np.asarray(first.images), np.asarray(again.images))
