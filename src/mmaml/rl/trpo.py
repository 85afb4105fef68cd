"""Trust-region machinery: conjugate gradient and a backtracking line search on flat vectors."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor


def flatten(tensors: Sequence[Tensor | None], like: Sequence[Tensor]) -> Tensor:
    """Concatenate ``tensors`` into one vector; a None stands for zeros shaped as its ``like``."""
    return torch.cat([(t if t is not None else torch.zeros_like(p)).reshape(-1) for t, p in zip(tensors, like)])


def assign(parameters: Sequence[Tensor], flat: Tensor) -> None:
    """Copy the vector ``flat`` into ``parameters`` (in place, no gradient)."""
    with torch.no_grad():
        offset = 0
        for p in parameters:
            n = p.numel()
            p.copy_(flat[offset:offset + n].view_as(p))
            offset += n


def conjugate_gradient(matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10,
                       tolerance: float = 1e-10) -> Tensor:
    """Approximately solve ``A x = b`` for a symmetric positive-definite ``A`` given as ``matvec``."""
    return conjugate_gradient_with_product(matvec, b, iterations, tolerance)[0]


def conjugate_gradient_with_product(matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10,
                                    tolerance: float = 1e-10) -> tuple[Tensor, Tensor]:
    """``(x, A x)`` with ``x`` as :func:`conjugate_gradient` finds it.

    ``A x`` is accumulated from the products the iterations compute anyway
    (``x = sum_i alpha_i p_i``, so ``A x = sum_i alpha_i A p_i``), which saves
    the extra product a trust-region step would take to measure its curvature.
    """
    x = torch.zeros_like(b)
    ax = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iterations):
        if float(rr) < tolerance:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        ax = ax + alpha * ap
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, ax


def backtracking_line_search(
    evaluate: Callable[[Tensor], tuple[float, float]],
    start: Tensor,
    step: Tensor,
    loss_before: float,
    max_kl: float,
    max_steps: int = 15,
    ratio: float = 0.8,
) -> tuple[Tensor, int, float, float]:
    """Try ``start - step * ratio^k`` for ``k = 0, 1, ...`` until the loss drops within the KL bound.

    Args:
        evaluate: ``params -> (loss, kl)`` at a candidate (flat) point.
        start: the current parameters (flat).
        step: the full step (flat), to be subtracted.
        loss_before: the loss at ``start``.
        max_kl: the trust region.

    Returns:
        ``(params, k, loss, kl)``: the accepted point and its backtracking
        count, or ``(start, max_steps, loss_before, 0.0)`` when no candidate was
        accepted (the parameters stay where they were).
    """
    scale = 1.0
    for k in range(max_steps):
        candidate = start - scale * step
        loss, kl = evaluate(candidate)
        if loss < loss_before and kl <= max_kl and torch.isfinite(torch.tensor([loss, kl])).all():
            return candidate, k, loss, kl
        scale *= ratio
    return start, max_steps, loss_before, 0.0
