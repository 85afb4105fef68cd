"""A model-agnostic learner: any ``nn.Module``, run functionally and batched over tasks.

The meta-parameters stay in the wrapped module and are never mutated by
adaptation: every forward takes explicit per-task parameters, each with a
leading task dimension, and is vectorised over tasks with ``torch.func.vmap``.
Units of the layers named in ``modulate`` are modulated by per-task vectors
tau (see :mod:`mmaml.core.modulation`) through forward hooks, so a user's own
model is modulated by exactly the mechanism the built-in models use.

By default the weights of ``nn.Linear`` layers adapt in factored form (see
:mod:`mmaml.core.low_rank_linear`), which gives the same results as plain
per-task copies at a fraction of the cost.

Example::

    net = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 1))
    learner = Learner(net, modulate=["0"])          # modulate the first layer's 40 units
    params = learner.task_parameters(num_tasks=8)    # {name: [8, *shape]}
    y = learner(params, x, taus={"0": tau}, kind="film")  # x: [8, N, 1], tau: [8, 80]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from mmaml.core.inner_loop import adapt, zeros_for_unused
from mmaml.core.low_rank_linear import (
    FactoredParams,
    LinearDelta,
    factored_step,
    linear_delta_context,
    linear_delta_hook,
)
from mmaml.core.modulation import active_modulation, modulate, modulation_context, tau_size

Params = dict[str, Tensor]
AnyParams = Params | FactoredParams
LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class ModulationSite:
    """A layer whose output units are modulated.

    Attributes:
        units: number of units (features of a linear layer, channels of a conv layer).
        unit_dim: negative index of the unit dimension in the layer's per-task
            output (-1 for ``[N, units]``, -3 for ``[N, C, H, W]``).
    """

    units: int
    unit_dim: int = -1


def infer_site(module: nn.Module) -> ModulationSite:
    """Infer the units and unit dimension of common layer types."""
    if isinstance(module, nn.Linear):
        return ModulationSite(module.out_features, -1)
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
        return ModulationSite(module.out_channels, -2)
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return ModulationSite(module.out_channels, -3)
    if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
        return ModulationSite(module.out_channels, -4)
    if isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)):
        return ModulationSite(module.num_features, -3)
    if isinstance(module, (nn.BatchNorm1d, nn.LayerNorm)):
        size = module.num_features if hasattr(module, "num_features") else module.normalized_shape[-1]
        return ModulationSite(int(size), -1)
    raise ValueError(
        f"cannot infer the units of a {type(module).__name__}; pass "
        "modulate={name: ModulationSite(units, unit_dim)} for it"
    )


class Learner(nn.Module):
    """Wraps any ``nn.Module`` for batched functional calls with optional modulation.

    Args:
        model: the network. Its forward takes one tensor of ``N`` samples
            (``[N, ...]``) and returns ``[N, ...]``.
        modulate: names of submodules (as in ``model.named_modules()``) whose
            outputs are modulated, or a mapping from name to :class:`ModulationSite`.
        low_rank_linear: adapt ``nn.Linear`` weights in factored form (exact and
            much faster); set False for models that call a linear layer more than
            once per forward or use its ``.weight`` outside its own forward.
    """

    def __init__(
        self,
        model: nn.Module,
        modulate: Sequence[str] | Mapping[str, ModulationSite] = (),
        low_rank_linear: bool = True,
    ):
        super().__init__()
        self.model = model
        modules = dict(model.named_modules())
        if isinstance(modulate, Mapping):
            sites = dict(modulate)
        else:
            sites = {}
            for name in modulate:
                if name not in modules:
                    raise ValueError(f"the model has no submodule {name!r}; it has {sorted(n for n in modules if n)}")
                sites[name] = infer_site(modules[name])
        for name in sites:
            if name not in modules:
                raise ValueError(f"the model has no submodule {name!r}")
        self.sites: dict[str, ModulationSite] = sites
        if getattr(model, "_mmaml_wrapped", False):
            raise ValueError(
                "this module is already wrapped by a Learner (its hooks would apply the modulation twice); "
                "give each Learner its own module (a fresh one, or copy.deepcopy(model) made before wrapping)"
            )
        model._mmaml_wrapped = True
        # {linear module name: its weight's parameter name}
        self.factored: dict[str, str] = {}
        if low_rank_linear:
            for name, module in modules.items():
                if type(module) is nn.Linear and name:
                    self.factored[name] = f"{name}.weight"
                    module.register_forward_hook(linear_delta_hook(name))
        for name in sites:  # after the factored-weight hooks: modulation acts on the full output
            modules[name].register_forward_hook(self._make_hook(name))
        self._input_shapes: dict[tuple, dict[str, tuple[int, ...]]] = {}
        self._param_dims = {n: p.dim() for n, p in model.named_parameters()}

    def _make_hook(self, name: str):
        site = self.sites[name]

        def hook(module: nn.Module, inputs, output: Tensor):
            taus, kind = active_modulation()
            if taus is None or name not in taus:
                return None
            return modulate(output, taus[name], kind, site.unit_dim)

        return hook

    def tau_sizes(self, kind: str) -> dict[str, int]:
        """Length of tau for each modulated layer under modulation ``kind``."""
        return {name: tau_size(kind, site.units) for name, site in self.sites.items()}

    def meta_parameters(self) -> Params:
        """The shared initialisation theta: ``{name: tensor}`` (no task dimension)."""
        return dict(self.model.named_parameters())

    def task_parameters(self, num_tasks: int, params: Params | None = None) -> Params:
        """Broadcast ``params`` (default: theta) to ``[num_tasks, *shape]`` views.

        Shared parameters (with the parameter's own shape) are expanded; per-task
        ones (with a leading task dimension) are returned as they are.
        """
        params = self.meta_parameters() if params is None else params
        return {
            k: v.unsqueeze(0).expand(num_tasks, *v.shape) if self.is_shared(k, v) else v for k, v in params.items()
        }

    def is_shared(self, name: str, value: Tensor) -> bool:
        """Whether ``value`` for parameter ``name`` is one tensor for all tasks (no task dimension)."""
        return value.dim() == self._param_dims[name]

    # -- forward ----------------------------------------------------------------
    def forward(
        self,
        params: AnyParams,
        x: Tensor,
        taus: Mapping[str, Tensor] | None = None,
        kind: str = "film",
    ) -> Tensor:
        """Run the model for each task with its own parameters and modulation.

        Args:
            params: ``{name: [T, *shape]}`` per-task parameters, or
                ``{name: shape}`` for a parameter shared by all tasks (a subset of
                the model's parameters is allowed; the rest are the module's own),
                or the :class:`FactoredParams` that :meth:`adapt` returns.
            x: ``[T, N, *input_shape]``.
            taus: ``{site: [T, tau_size]}`` or None for no modulation.
            kind: modulation kind.

        Returns:
            ``[T, N, *output_shape]``.
        """
        if isinstance(params, FactoredParams):
            return self._forward_factored(params, x, taus, kind)[0]

        def single(p: Params, xs: Tensor, t: Mapping[str, Tensor] | None) -> Tensor:
            with modulation_context(t, kind):
                return functional_call(self.model, p, (xs,))

        in_params = {n: None if self.is_shared(n, v) else 0 for n, v in params.items()}
        return vmap(single, in_dims=(in_params, 0, 0 if taus is not None else None))(params, x, taus)

    def forward_single(
        self, params: Params, x: Tensor, taus: Mapping[str, Tensor] | None = None, kind: str = "film"
    ) -> Tensor:
        """One task, no task dimension: ``x [N, ...]``, ``params {name: shape}``, ``taus {site: [size]}``."""
        with modulation_context(taus, kind):
            return functional_call(self.model, params, (x,))

    def _forward_factored(
        self,
        params: FactoredParams,
        x: Tensor,
        taus: Mapping[str, Tensor] | None,
        kind: str,
        probes: dict[str, Tensor] | None = None,
        capture: bool = False,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        shared = {n: w for n, w in params.base.items() if self.is_shared(n, w)}
        per_task = {n: w for n, w in params.base.items() if not self.is_shared(n, w)}
        # vmap maps over tensors in dicts, so each LinearDelta travels as a dict of its present fields
        deltas = {
            m: {k: v for k, v in vars(params.deltas[w]).items() if v is not None}
            for m, w in self.factored.items()
            if w in params.deltas
        }

        def single(dense, base, delta, xs, t, pr):
            delta = {m: LinearDelta(**fields) for m, fields in delta.items()}
            with modulation_context(t, kind), linear_delta_context(self.factored, delta, pr, capture) as inputs:
                out = functional_call(self.model, {**dense, **shared, **base}, (xs,))
            return out, (inputs if capture else {})

        in_taus = 0 if taus is not None else None
        in_probes = 0 if probes is not None else None
        return vmap(single, in_dims=(0, 0, 0, 0, in_taus, in_probes))(params.dense, per_task, deltas, x, taus, probes)

    # -- adaptation ---------------------------------------------------------------
    def factor(self, params: Params, num_tasks: int) -> FactoredParams:
        """Split parameters into dense per-task ones and factored linear weights.

        A shared weight stays one matrix for all tasks; shared dense parameters
        are broadcast to ``[num_tasks, *shape]``.
        """
        weights = set(self.factored.values())
        base = {n: v for n, v in params.items() if n in weights}
        dense = self.task_parameters(num_tasks, {n: v for n, v in params.items() if n not in weights})
        return FactoredParams(dense, base, {}, num_tasks)

    def _linear_input_shapes(self, params: FactoredParams, x: Tensor, taus, kind) -> dict[str, tuple[int, ...]]:
        key = (tuple(x.shape[1:]), x.dtype, taus is None)
        if key not in self._input_shapes:
            with torch.no_grad():
                _, inputs = self._forward_factored(params, x, taus, kind, capture=True)
            self._input_shapes[key] = {m: tuple(v.shape[1:-1]) for m, v in inputs.items()}
        return self._input_shapes[key]

    def adapt(
        self,
        params: Params,
        x: Tensor,
        y: Tensor,
        loss_fn: LossFn,
        steps: int,
        lr: float,
        grad_clip: float | None = None,
        create_graph: bool = True,
        taus: Mapping[str, Tensor] | None = None,
        kind: str = "film",
    ) -> AnyParams:
        """Adapt per-task parameters by ``steps`` SGD steps on ``(x, y)``; see :func:`mmaml.core.inner_loop.adapt`.

        Args:
            params: initial parameters, per task ``[T, *shape]`` or shared ``[*shape]``.

        Returns plain parameters, or :class:`FactoredParams` when linear weights
        are factored; :meth:`forward` takes either.
        """
        t = x.shape[0]
        if steps == 0 or not self.factored:
            params = self.task_parameters(t, params)
            return adapt(lambda p, xs: self(p, xs, taus, kind), params, x, y, loss_fn, steps, lr, grad_clip, create_graph)
        current = self.factor(params, t)
        modules = list(self.factored)
        shapes = self._linear_input_shapes(current, x, taus, kind)
        out_features = {m: self.model.get_submodule(m).out_features for m in modules}
        for _ in range(steps):
            probes = {m: x.new_zeros(t, *shapes[m], out_features[m], requires_grad=True) for m in modules}
            pred, inputs = self._forward_factored(current, x, taus, kind, probes, capture=True)
            dense_names = list(current.dense)
            wrt = [current.dense[n] for n in dense_names] + [probes[m] for m in modules]
            grads = zeros_for_unused(
                torch.autograd.grad(loss_fn(pred, y).sum(), wrt, create_graph=create_graph, allow_unused=True), wrt)
            dense_grads = dict(zip(dense_names, grads[: len(dense_names)]))
            output_grads = dict(zip(modules, grads[len(dense_names):]))
            current = factored_step(current, dense_grads, output_grads, inputs, self.factored, lr, grad_clip, create_graph)
        return current
