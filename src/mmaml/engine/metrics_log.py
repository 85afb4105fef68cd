"""Training metrics: a CSV file and TensorBoard events, both resumable."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping

from mmaml.engine.checkpoint import atomic_write_text

COLUMNS = ("iteration", "loss", "grad_norm", "seconds_per_iteration", "elapsed_seconds", "skipped_steps")


class MetricsLog:
    """Appends rows to ``DIR/metrics.csv`` and scalars to ``DIR/tensorboard``.

    On resume from iteration ``start``, rows logged after ``start`` (by the
    interrupted run, past its last checkpoint) are dropped so that the log
    continues exactly where the checkpoint does; a column that an earlier version
    logged under another name (``renamed``) keeps its values.
    """

    def __init__(self, run_dir: Path, start: int = 0, tensorboard: bool = True, columns: tuple[str, ...] = COLUMNS,
                 renamed: Mapping[str, str] | None = None):
        self.path = Path(run_dir) / "metrics.csv"
        self.columns = tuple(columns)
        renamed = renamed or {}  # {column: its name in files written by earlier versions}
        if start > 0 and self.path.exists():
            with self.path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= start]
            lines = [",".join(self.columns)] + [",".join(_carried(r, c, renamed) for c in self.columns) for r in rows]
            atomic_write_text(self.path, "\n".join(lines) + "\n")
        else:
            atomic_write_text(self.path, ",".join(self.columns) + "\n")
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=start + 1 if start else None)

    def log(self, row: Mapping[str, float]) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c, "")) for c in self.columns])
        if self._writer is not None:
            step = int(row["iteration"])
            for key, value in row.items():
                if key != "iteration":
                    self._writer.add_scalar(f"train/{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _carried(row: Mapping[str, str], column: str, renamed: Mapping[str, str]) -> str:
    """``column``'s value in a row read back: its own, its former name's, empty where it was empty (a
    validation column between validations), or 0 for a column the file did not have."""
    for name in (column, renamed.get(column)):
        if name in row and row[name] is not None:
            return row[name]
    return "0"


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    path = Path(run_dir) / "metrics.csv"
    with path.open() as f:
        return [{k: float(v) if v not in (None, "") else 0.0 for k, v in r.items()} for r in csv.DictReader(f)]
