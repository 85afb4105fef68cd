"""Adapt a trained supervised run to one task given by files, and predict its query inputs (``mmaml predict``).

Regression: ``--support`` is a table of ``x, y`` rows and ``--query`` one of ``x``
values (``.csv``, optionally with a header line, or ``.npy`` arrays ``[K, 2]`` and
``[Q]`` / ``[Q, 1]``); the output is a CSV ``x,prediction``.

Image classification: ``--support`` is a folder with one subfolder per class (as many
as the run's ways, their names sorted give the labels) of image files, ``--query`` a
folder of image files; each image is decoded with the image transform of the data set
it resembles (``--dataset``, needed when the run has several; the transforms are recorded
in the checkpoint, see :mod:`mmaml.data.transforms`) and resized as the training data was;
the output is a CSV ``file,class`` (the subfolder name), plus the class probabilities.
Files that are not images are skipped with a warning, as is a support set whose shots
per class differ from the run's.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
import torch

from mmaml.data.image_classes import resize_square
from mmaml.data.registry import image_transforms
from mmaml.data.transforms import decode
from mmaml.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}


class InputFileError(UserError):
    """A support or query file that is missing or not in the expected layout."""

def read_table(path: Path, columns: int, what: str) -> np.ndarray:
    """``[N, columns]`` float64 from a ``.csv`` (optional header) or ``.npy`` file, or one clear error."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError(f"{what} file {path} is a folder; give a .csv or .npy file")
    if not path.is_file():
        raise InputFileError(f"{what} file {path} does not exist; give a .csv or .npy file")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError):
            raise InputFileError(f"{what} file {path} is not a .npy array; write it with numpy.save, or give "
                                 "a .csv file") from None
        array = np.asarray(array, dtype=np.float64) if np.issubdtype(array.dtype, np.number) else None
        if array is None:
            raise InputFileError(f"{what} file {path} must hold numbers")
        if columns == 1 and array.ndim == 1:
            array = array[:, None]
    elif path.suffix == ".csv":
        rows = [r for r in csv.reader(io.StringIO(path.read_text())) if r and any(c.strip() for c in r)]
        header = 0
        try:
            float(rows[0][0])
        except (ValueError, IndexError):
            rows, header = rows[1:], 1  # a header line
        shape = f"{columns} number{'s' if columns > 1 else ''} ({'x, y' if columns == 2 else 'x'})"
        for number, row in enumerate(rows, start=1 + header):
            if len(row) != columns:
                raise InputFileError(f"{what} file {path}, row {number}: {len(row)} values; every row must be {shape}")
            for cell in row:
                try:
                    float(cell)
                except ValueError:
                    raise InputFileError(f"{what} file {path}, row {number}: {cell.strip()!r} is not a number; "
                                         f"every row must be {shape}") from None
        array = np.array([[float(c) for c in r] for r in rows], dtype=np.float64)
    else:
        raise InputFileError(f"{what} file {path} must be .csv or .npy")
    if array.ndim != 2 or array.shape[1] != columns or len(array) == 0:
        raise InputFileError(f"{what} file {path} must hold rows of {columns} number{'s' if columns > 1 else ''} "
                             f"({'x, y' if columns == 2 else 'x'}), got an array of shape {array.shape}")
    if not np.isfinite(array).all():
        raise InputFileError(f"{what} file {path} holds a value that is not a finite number")
    return array


def read_image(path: Path, size: int, transform: str = "rgb") -> torch.Tensor:
    """``[3, size, size]`` in [0, 1], decoded with ``transform`` and resized as the training images were."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = decode(image, transform)
    except (UnidentifiedImageError, OSError):
        raise InputFileError(f"{path} is not a readable image") from None
    return torch.from_numpy(np.array(resize_square(array, size))).permute(2, 0, 1).float().div_(255)


def warn(text: str) -> None:
    print(f"mmaml: warning: {text}", file=sys.stderr)


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder``, sorted; other files are skipped with one warning line."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    skipped = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if skipped:
        shown = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        warn(f"skipped {len(skipped)} file(s) in {folder} that are not images ({shown})")
    return images


def choose_transform(config, state: dict, dataset: str | None) -> str:
    """The image transform for the user's files: the one of ``dataset`` (or of the run's only data set)."""

    recorded = state.get("image_transforms") or image_transforms(config.datasets)  # older runs: the loaders'
    if dataset is None:
        if len(config.datasets) > 1:
            raise InputFileError(f"this run was trained on {', '.join(config.datasets)}, whose files are read "
                                 f"differently; say which your images are like with --dataset "
                                 f"{'|'.join(config.datasets)}")
        dataset = config.datasets[0]
    if dataset not in recorded:
        raise InputFileError(f"--dataset {dataset}: this run was trained on {', '.join(config.datasets)}; "
                             "choose one of them")
    return recorded[dataset]


def read_image_support(folder: Path, ways: int, size: int, transform: str = "rgb",
                       shots: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(images [K, 3, S, S], labels [K], class names)`` from one subfolder per class."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"support folder {folder} does not exist; give a folder with one subfolder per class")
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if len(classes) != ways:
        raise InputFileError(f"support folder {folder} has {len(classes)} class subfolders; this run classifies "
                             f"{ways} classes at a time, so give exactly {ways}")
    images, labels, counts = [], [], []
    for label, cls in enumerate(classes):
        files = image_files(cls)
        if not files:
            raise InputFileError(f"class folder {cls} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        images += [read_image(f, size, transform) for f in files]
        labels += [label] * len(files)
        counts.append(len(files))
    if shots is not None and any(c != shots for c in counts):
        warn(f"the support set has {'/'.join(map(str, counts))} images per class where the run trained on {shots}; "
             "its predictions may be less accurate than its evaluation says")
    return torch.stack(images), torch.tensor(labels), [c.name for c in classes]


def predict_regression(model, support: Path, query: Path, steps: int | None) -> str:
    table = read_table(support, 2, "support")
    xs = read_table(query, 1, "query")
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    predictor = model.adapt_task(as_tensor(table[:, :1]), as_tensor(table[:, 1:]), steps=steps)
    pred = predictor(as_tensor(xs)).cpu().double().numpy()
    lines = ["x,prediction"] + [f"{x!r},{p!r}" for x, p in zip(xs[:, 0].tolist(), pred[:, 0].tolist())]
    return "\n".join(lines) + "\n"


def predict_images(model, support: Path, query: Path, steps: int | None, transform: str = "rgb") -> str:
    config = model.config
    images, labels, names = read_image_support(support, config.num_ways, config.image_size, transform,
                                               config.num_shots)
    query = Path(query)
    if not query.is_dir():
        raise InputFileError(f"query folder {query} does not exist; give a folder of image files")
    files = image_files(query)
    if not files:
        raise InputFileError(f"query folder {query} holds no image files")
    predictor = model.adapt_task(images, labels, steps=steps)
    probs = torch.softmax(predictor(torch.stack([read_image(f, config.image_size, transform) for f in files])), dim=-1)
    header = "file,class," + ",".join(f"p_{n}" for n in names)
    lines = [header] + [f"{f.name},{names[int(p.argmax())]}," + ",".join(f"{v:.6f}" for v in p.tolist())
                        for f, p in zip(files, probs.cpu())]
    return "\n".join(lines) + "\n"


def predict_regression_files(config, model, state: dict, support: Path, query: Path, steps: int | None,
                             dataset: str | None = None) -> str:
    """The CSV ``x,prediction`` of a regression run adapted to the files (``dataset`` does not apply)."""
    if dataset is not None:
        raise InputFileError("--dataset is for image runs; a regression run reads numbers")
    return predict_regression(model, support, query, steps)


def predict_image_files(config, model, state: dict, support: Path, query: Path, steps: int | None,
                        dataset: str | None = None) -> str:
    """The CSV ``file,class,p_...`` of an image run adapted to the folders, read with ``dataset``'s transform."""
    return predict_images(model, support, query, steps, choose_transform(config, state, dataset))
