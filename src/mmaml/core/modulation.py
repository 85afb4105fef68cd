"""Task-aware modulation of a learner's units: FiLM, sigmoid and softmax attention.

A modulation vector ``tau`` holds one entry per unit of a layer (a neuron of a
linear layer, a channel of a conv layer); FiLM holds two (gamma then beta).
Modulation is applied to the layer's output ``h``:

* ``film``:    ``h * (1 + gamma) + beta``, ``tau = [gamma, beta]``
* ``sigmoid``: ``h * sigmoid(tau)``
* ``softmax``: ``h * softmax(tau)`` (softmax over the units)
* ``scale``:   ``h * (1 + tau)`` (FiLM without beta; the meta-RL policy's modulation)
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Mapping

import torch
from torch import Tensor

MODULATION_KINDS = ("film", "sigmoid", "softmax", "scale")


def tau_size(kind: str, units: int) -> int:
    """Length of the modulation vector for ``units`` units."""
    check_kind(kind)
    return 2 * units if kind == "film" else units


def check_kind(kind: str) -> None:
    if kind not in MODULATION_KINDS:
        raise ValueError(f"unknown modulation {kind!r}; choose one of {', '.join(MODULATION_KINDS)}")


def modulate(h: Tensor, tau: Tensor, kind: str, unit_dim: int = -1) -> Tensor:
    """Modulate the units of ``h`` by ``tau``.

    Args:
        h: activations, ``[..., units, *spatial]``; the units lie on ``unit_dim``
            (a negative index: -1 for a linear layer's ``[N, units]``, -3 for a
            conv layer's ``[N, C, H, W]``).
        tau: ``[..., tau_size(kind, units)]``; leading dims broadcast against the
            leading dims of ``h`` that come before the sample dimension, so a
            per-task ``tau`` of shape ``[units]`` modulates all of a task's samples.
        kind: ``"film"``, ``"sigmoid"``, ``"softmax"`` or ``"scale"``.
        unit_dim: negative dimension of ``h`` that indexes the units.

    Returns:
        Tensor of the shape of ``h``.
    """
    if unit_dim >= 0:
        raise ValueError("unit_dim must be negative (counted from the end)")
    trailing = -unit_dim - 1  # spatial dims after the unit dim

    def shape(v: Tensor) -> Tensor:
        # [..., units] -> [..., 1 (samples), units, 1, ..., 1]
        v = v.unsqueeze(-2)
        return v.reshape(*v.shape, *([1] * trailing))

    if kind == "film":
        gamma, beta = tau.chunk(2, dim=-1)
        return h * (1 + shape(gamma)) + shape(beta)
    if kind == "sigmoid":
        return h * shape(torch.sigmoid(tau))
    if kind == "softmax":
        return h * shape(torch.softmax(tau, dim=-1))
    if kind == "scale":
        return h * (1 + shape(tau))
    check_kind(kind)
    raise AssertionError  # unreachable


class _ActiveModulation(threading.local):
    def __init__(self) -> None:
        self.taus: Mapping[str, Tensor] | None = None
        self.kind: str = "film"


_active = _ActiveModulation()


@contextlib.contextmanager
def modulation_context(taus: Mapping[str, Tensor] | None, kind: str) -> Iterator[None]:
    """Make ``taus`` (site name -> tau) the modulation that hooked modules apply.

    Used inside the (vmapped) forward of :class:`mmaml.core.learner.Learner`; code
    outside such a context sees the unmodulated network.
    """
    previous = (_active.taus, _active.kind)
    _active.taus, _active.kind = taus, kind
    try:
        yield
    finally:
        _active.taus, _active.kind = previous


def active_modulation() -> tuple[Mapping[str, Tensor] | None, str]:
    """The ``(taus, kind)`` set by the innermost :func:`modulation_context`."""
    return _active.taus, _active.kind
