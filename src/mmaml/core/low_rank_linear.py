"""Inner-loop updates of linear-layer weights kept in factored form.

One SGD step on a task's loss changes an ``nn.Linear`` weight by
``-lr * D^T X``, where ``X [K, in]`` holds the layer's inputs on the task's K
support samples and ``D [K, out]`` the loss gradient at the layer's outputs: a
rank-K update. Instead of materialising a ``[T, out, in]`` copy of the weight
for every task at every step (which dominates the cost of a batched inner
loop), each task's weight is kept as

    W_t = W + Delta_t + B_t^T A_t,    A_t = [X_1; ...; X_s],  B_t = [-lr D_1; ...; -lr D_s]

and a layer's output is ``x W^T + b + (x A_t^T) B_t + x Delta_t^T``. The shared
``W`` runs as one matmul for all tasks; the correction costs ``O(K)`` per sample.
This is exact, including second-order gradients. When an elementwise gradient
clamp is set and elements of ``D^T X`` exceed the bound, the step stays low-rank
and what the clamp cuts off those few elements is kept as a sparse correction
(one-hot rows and columns with values); when many elements are clamped, the
clamped step goes into the dense ``Delta_t`` instead. Either way the result is
the plain loop's.

``D`` is read as the gradient of the loss with respect to a zero "probe" added
to the layer's output, and ``X`` is captured by a forward hook, so this works
for every ``nn.Linear`` in any model that uses its linear layers through their
own ``forward`` once per call (no weight tying, no direct use of ``.weight``);
:class:`~mmaml.core.learner.Learner` takes ``low_rank_linear=False`` otherwise.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator

import torch
from torch import Tensor

from mmaml.core.inner_loop import sgd_step


@dataclass
class LinearDelta:
    """Per-task change of one linear layer's weight (any field may be absent).

    The change is ``dense + B^T A + sum_m values_m * outer(rows_m, cols_m)``.

    Attributes:
        dense: ``[T, out, in]`` clamped updates, or None.
        left: ``A``, ``[T, R, in]``, or None.
        right: ``B``, ``[T, R, out]`` (already scaled by ``-lr``), or None.
        rows: ``[T, M, out]`` one-hot rows of the few elements where a clamp cut
            a low-rank update, or None.
        cols: ``[T, M, in]`` their one-hot columns.
        values: ``[T, M]`` what the clamp took off there (zero for padding).
    """

    dense: Tensor | None = None
    left: Tensor | None = None
    right: Tensor | None = None
    rows: Tensor | None = None
    cols: Tensor | None = None
    values: Tensor | None = None

    def materialize(self) -> Tensor | None:
        """The whole change as ``[T, out, in]``, or None when empty."""
        total = self.dense
        if self.left is not None:
            low_rank = torch.bmm(self.right.transpose(1, 2), self.left)
            total = low_rank if total is None else total + low_rank
        if self.values is not None:
            sparse = torch.bmm(self.rows.transpose(1, 2) * self.values.unsqueeze(1), self.cols)
            total = sparse if total is None else total + sparse
        return total

    def correction(self, x: Tensor) -> Tensor:
        """``x`` times the change, transposed: ``x [..., in] -> [..., out]`` (per task, inside vmap)."""
        out = None
        if self.dense is not None:
            out = x @ self.dense.transpose(-1, -2)
        if self.left is not None:
            low = (x @ self.left.transpose(-1, -2)) @ self.right
            out = low if out is None else out + low
        if self.values is not None:
            sparse = ((x @ self.cols.transpose(-1, -2)) * self.values) @ self.rows
            out = sparse if out is None else out + sparse
        return out


@dataclass
class FactoredParams:
    """Per-task parameters of a learner with factored linear weights.

    Attributes:
        dense: ``{name: [T, *shape]}`` every parameter that is not a factored weight.
        base: ``{weight name: [out, in]}`` shared weights, or ``[T, out, in]`` when
            tasks start from different weights (Multi-MAML).
        deltas: ``{weight name: LinearDelta}``.
        num_tasks: T.
    """

    dense: dict[str, Tensor]
    base: dict[str, Tensor]
    deltas: dict[str, LinearDelta] = field(default_factory=dict)
    num_tasks: int = 1

    def materialize(self) -> dict[str, Tensor]:
        """Plain per-task parameters ``{name: [T, *shape]}``."""
        out = dict(self.dense)
        for name, w in self.base.items():
            w = w if w.dim() == 3 else w.unsqueeze(0).expand(self.num_tasks, *w.shape)
            delta = self.deltas.get(name, LinearDelta()).materialize()
            out[name] = w if delta is None else w + delta
        return out


class _SiteState:
    __slots__ = ("delta", "probe", "calls")

    def __init__(self, delta: LinearDelta, probe: Tensor | None):
        self.delta, self.probe, self.calls = delta, probe, 0


class _Active(threading.local):
    def __init__(self) -> None:
        self.sites: dict[str, _SiteState] | None = None
        self.inputs: dict[str, Tensor] | None = None


_active = _Active()


@contextlib.contextmanager
def linear_delta_context(
    modules: Iterable[str], deltas: dict[str, LinearDelta], probes: dict[str, Tensor] | None, capture: bool
) -> Iterator[dict[str, Tensor]]:
    """Make the hooked linear layers ``modules`` apply ``deltas`` and add ``probes`` (by module name).

    Yields the dict that receives each layer's input when ``capture`` is set.
    """
    previous = (_active.sites, _active.inputs)
    _active.sites = {n: _SiteState(deltas.get(n, LinearDelta()), (probes or {}).get(n)) for n in modules}
    _active.inputs = {} if capture else None
    try:
        yield _active.inputs
    finally:
        _active.sites, _active.inputs = previous


def linear_delta_hook(name: str):
    """A forward hook for the ``nn.Linear`` module called ``name``."""

    def hook(module, inputs, output: Tensor):
        sites = _active.sites
        if sites is None or name not in sites:
            return None
        state = sites[name]
        state.calls += 1
        if state.calls > 1:
            raise RuntimeError(
                f"linear layer {name!r} ran twice in one forward; build the Learner with low_rank_linear=False "
                "for models that reuse a layer"
            )
        x = inputs[0]
        correction = state.delta.correction(x)
        if correction is not None:
            output = output + correction
        if state.probe is not None:
            output = output + state.probe
        if _active.inputs is not None:
            _active.inputs[name] = x
        return output

    return hook


def _within_bound(dense_grads, pairs, bound: float) -> bool:
    """True when no dense gradient element and no bound on a ``D^T X`` element exceeds ``bound``."""
    with torch.no_grad():
        worst = [g.abs().amax() for g in dense_grads]
        # |sum_k D_ki X_kj| <= sum_k max_i |D_ki| * max_j |X_kj|
        worst += [(d.abs().amax(-1) * x.abs().amax(-1)).sum(-1).amax() for d, x in pairs]
        return bool(torch.stack(worst).amax() <= bound) if worst else True


def _clamped_elements(d: Tensor, x: Tensor, bound: float | None) -> Tensor | None:
    """``[T, out, in]`` bool mask of the weight-gradient elements ``D^T X`` beyond ``bound``, or None if none is."""
    if bound is None:
        return None
    with torch.no_grad():
        # Two cheap bounds on |sum_k D_ki X_kj| usually decide: sum_k max_i |D_ki| max_j |X_kj|,
        # and (Cauchy-Schwarz) max_i ||D_:i|| max_j ||X_:j||.
        first = (d.abs().amax(-1) * x.abs().amax(-1)).sum(-1)
        second = ((d * d).sum(1).amax(-1) * (x * x).sum(1).amax(-1)).sqrt()  # (vector_norm is slow on CPU)
        if bool(torch.minimum(first, second).max() <= bound):
            return None
        over = torch.bmm(d.transpose(1, 2), x).abs() > bound
        return over if bool(over.any()) else None


def _sparse_cut(d: Tensor, x: Tensor, over: Tensor, lr: float, bound: float) -> tuple[Tensor, Tensor, Tensor]:
    """One-hot rows and columns and the values ``lr * (G - clamp(G))`` at the clamped elements.

    Added to the low-rank step ``-lr * G`` this gives exactly ``-lr * clamp(G)``;
    the values are differentiable in ``D`` and ``X`` as the clamp is.
    """
    t, out_features, in_features = over.shape
    flat = over.flatten(1)
    m = int(flat.sum(1).max())
    valid, index = flat.to(d.dtype).topk(m, dim=1)  # the clamped elements of each task first
    rows_idx, cols_idx = index // in_features, index % in_features
    rows = torch.nn.functional.one_hot(rows_idx, out_features).to(d.dtype)
    cols = torch.nn.functional.one_hot(cols_idx, in_features).to(x.dtype)
    g = (torch.gather(d, 2, rows_idx.unsqueeze(1).expand(-1, d.shape[1], -1))
         * torch.gather(x, 2, cols_idx.unsqueeze(1).expand(-1, x.shape[1], -1))).sum(1)  # G at those elements
    values = lr * (g - bound * torch.sign(g.detach())) * valid.to(g.dtype)
    return rows, cols, values


def _cat(old: Tensor | None, new: Tensor) -> Tensor:
    return new if old is None else torch.cat([old, new], 1)


def factored_step(
    params: FactoredParams,
    dense_grads: dict[str, Tensor],
    output_grads: dict[str, Tensor],
    inputs: dict[str, Tensor],
    weight_of: dict[str, str],
    lr: float,
    grad_clip: float | None,
    create_graph: bool = True,
) -> FactoredParams:
    """One SGD step: dense parameters as usual, linear weights as rank-K factors.

    Args:
        params: the current parameters.
        dense_grads: ``{name: [T, *shape]}`` gradients of the dense parameters.
        output_grads: ``{module: D [T, K, out]}`` loss gradients at linear outputs.
        inputs: ``{module: X [T, K, in]}`` inputs of the linear layers.
        weight_of: ``{module: weight parameter name}``.
        lr, grad_clip: the inner step size and elementwise bound.
        create_graph: False for first order: the update is then a constant
            (its factors are detached), as the gradient of a first-order step is.
    """
    pairs = {}
    for module, d in output_grads.items():
        x = inputs[module] if create_graph else inputs[module].detach()
        pairs[module] = (d.reshape(d.shape[0], -1, d.shape[-1]), x.reshape(x.shape[0], -1, x.shape[-1]))
    dense_list = tuple(dense_grads[n] for n in params.dense)
    # One check for the whole step in the usual case that no gradient reaches the bound.
    clip = None if grad_clip is None or _within_bound(dense_list, pairs.values(), grad_clip) else grad_clip
    dense = sgd_step(params.dense, dense_list, lr, clip)
    deltas = dict(params.deltas)
    for module, (d, x) in pairs.items():
        name = weight_of[module]
        old = deltas.get(name, LinearDelta())
        over = _clamped_elements(d, x, clip)
        if over is not None and int(over.flatten(1).sum(1).max()) > min(over.shape[1:]):
            # many elements clamped: a dense per-task update is cheaper
            step = torch.bmm(d.transpose(1, 2), x).clamp(-grad_clip, grad_clip) * -lr
            deltas[name] = replace(old, dense=step if old.dense is None else old.dense + step)
            continue
        new = replace(old, left=_cat(old.left, x), right=_cat(old.right, d * -lr))
        if over is not None:  # a few elements clamped: low-rank step plus a sparse cut
            rows, cols, values = _sparse_cut(d, x, over, lr, grad_clip)
            new = replace(new, rows=_cat(old.rows, rows), cols=_cat(old.cols, cols), values=_cat(old.values, values))
        deltas[name] = new
    return FactoredParams(dense, params.base, deltas, params.num_tasks)
