"""The evaluation driver every kind of run shares: chunks of test tasks split across processes, and the
evaluation files a run folder gets.

Test tasks are scored chunk by chunk. On one process every chunk is scored in turn; under torchrun every
rank draws every chunk (so that generators shared by the chunks stay where a single process has them),
scores every ``world``-th one, and the per-task scores are gathered in chunk order on every rank: the
result is the single process's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import torch
from torch import Tensor

from mmaml.engine.checkpoint import atomic_write_text
from mmaml.engine.distributed import SINGLE, Distributed

Chunk = TypeVar("Chunk")


def score_in_chunks(num_chunks: int, num_columns: int, draw: Callable[[int], Chunk],
                    score: Callable[[int, Chunk], Sequence[Tensor | None]],
                    dist: Distributed = SINGLE) -> list[list[Tensor]]:
    """Score chunks ``0..num_chunks - 1``: ``num_columns`` lists of per-chunk tensors, in chunk order, on
    every rank.

    ``draw(number)`` runs on every rank for every chunk; ``score(number, drawn)`` only for this rank's
    chunks, and returns ``num_columns`` per-task tensors (``None`` for a column the chunk lacks, such as
    the embeddings of a model without them; that column stays empty).
    """
    mine: list[int] = []
    columns: list[list[Tensor]] = [[] for _ in range(num_columns)]
    for number in range(num_chunks):
        drawn = draw(number)
        if number % dist.world != dist.rank:
            continue  # drawn all the same, to keep shared generators where a single process has them
        for column, value in zip(columns, score(number, drawn), strict=True):
            if value is not None:
                column.append(value)
        mine.append(number)
    if dist.active:
        columns = dist.gather_chunks(mine, *columns)
    return columns


def concatenated(column: list[Tensor], dim: int = 0) -> Tensor | None:
    """The chunks of one column joined along ``dim`` (None for an empty column)."""
    return torch.cat(column, dim=dim) if column else None


def write_evaluation(output: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``result`` to ``output`` and its ``per_task`` scores to ``<stem>_per_task.json`` beside it,
    both atomically; return ``result`` without ``per_task``."""
    output = Path(output)
    result = dict(result)
    per_task = result.pop("per_task")
    atomic_write_text(output.with_name(output.stem + "_per_task.json"),
                      json.dumps({"num_tasks": result["num_tasks"], "seed": result["seed"],
                                  "inner_steps": result["inner_steps"], **per_task}) + "\n")
    atomic_write_text(output, json.dumps(result, indent=2) + "\n")
    return result
