"""The inner loop: a few functional SGD steps on the support set, batched over tasks."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Params = dict[str, Tensor]
ForwardFn = Callable[[Params, Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


def clip_elementwise(grad: Tensor, bound: float | None) -> Tensor:
    """Clamp ``grad`` elementwise to ``[-bound, bound]``.

    When no element lies outside the bound, ``grad`` is returned as is: the same
    value and, since clamp's derivative is 1 inside the bound, the same
    higher-order gradient, without clamp's extra backward work.
    """
    if bound is None:
        return grad
    low, high = torch.aminmax(grad)
    if bool(high <= bound) and bool(low >= -bound):
        return grad
    return grad.clamp(-bound, bound)


def zeros_for_unused(grads: tuple[Tensor | None, ...], params: list[Tensor]) -> tuple[Tensor, ...]:
    """A parameter the loss does not depend on gets a zero gradient: it does not move."""
    return tuple(torch.zeros_like(p) if g is None else g for g, p in zip(grads, params))


def sgd_step(params: Params, grads: tuple[Tensor, ...], lr: float, grad_clip: float | None) -> Params:
    """``theta' = theta - lr * clip(grad)`` for every parameter; nothing is mutated."""
    return {
        name: torch.add(p, clip_elementwise(g, grad_clip), alpha=-lr)
        for (name, p), g in zip(params.items(), grads)
    }


def adapt(
    forward: ForwardFn,
    params: Params,
    x: Tensor,
    y: Tensor,
    loss_fn: LossFn,
    steps: int,
    lr: float,
    grad_clip: float | None = None,
    create_graph: bool = True,
) -> Params:
    """Adapt per-task parameters with ``steps`` SGD steps on ``(x, y)``.

    Args:
        forward: ``forward(params, x) -> predictions [T, N, ...]``.
        params: ``{name: [T, *shape]}``; each task's slice is its own parameters.
        x, y: support inputs and targets, ``[T, K, ...]``.
        loss_fn: ``loss_fn(pred, y) -> [T]`` per-task losses.
        steps: number of gradient steps (0 returns ``params``).
        lr: inner learning rate alpha.
        grad_clip: elementwise bound on each inner gradient, or None.
        create_graph: keep the graph of the inner gradients so that the
            meta-gradient is second order; False gives first-order MAML (the
            adapted parameters still depend on the initial ones through the
            identity path).

    Returns:
        The adapted parameters ``{name: [T, *shape]}``.

    The gradient of the summed task losses with respect to the per-task
    parameters is, task by task, the gradient of that task's own loss, so one
    backward pass serves all the tasks of the batch.
    """
    names = list(params)
    for _ in range(steps):
        losses = loss_fn(forward(params, x), y)
        with torch.enable_grad():
            grads = torch.autograd.grad(
                losses.sum(), [params[n] for n in names], create_graph=create_graph, allow_unused=True
            )
        params = sgd_step(params, zeros_for_unused(grads, [params[n] for n in names]), lr, grad_clip)
    return params
