"""A model-agnostic learner: any ``nn.Module``, run functionally and batched over tasks.

The meta-parameters stay in the wrapped module and are never mutated by
adaptation: every forward takes an explicit dict of per-task parameters, each
with a leading task dimension, and is vectorised over tasks with
``torch.func.vmap``. Units of the layers named in ``modulate`` are modulated by
per-task vectors tau (see :mod:`mmaml.core.modulation`) through forward hooks,
so a user's own model is modulated by exactly the mechanism the built-in models use.

Example::

    net = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 1))
    learner = Learner(net, modulate=["0"])          # modulate the first layer's 40 units
    params = learner.task_parameters(num_tasks=8)    # {name: [8, *shape]}
    y = learner(params, x, taus={"0": tau}, kind="film")  # x: [8, N, 1], tau: [8, 80]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from mmaml.core.modulation import active_modulation, modulate, modulation_context, tau_size

Params = dict[str, Tensor]


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
    """

    def __init__(self, model: nn.Module, modulate: Sequence[str] | Mapping[str, ModulationSite] = ()):
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
        for name in sites:
            modules[name].register_forward_hook(self._make_hook(name))

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
        """Broadcast ``params`` (default: theta) to ``[num_tasks, *shape]`` views."""
        params = self.meta_parameters() if params is None else params
        return {k: v.unsqueeze(0).expand(num_tasks, *v.shape) for k, v in params.items()}

    def forward(
        self,
        params: Params,
        x: Tensor,
        taus: Mapping[str, Tensor] | None = None,
        kind: str = "film",
    ) -> Tensor:
        """Run the model for each task with its own parameters and modulation.

        Args:
            params: ``{name: [T, *shape]}`` per-task parameters (a subset of the
                model's parameters is allowed; the rest are shared).
            x: ``[T, N, *input_shape]``.
            taus: ``{site: [T, tau_size]}`` or None for no modulation.
            kind: modulation kind.

        Returns:
            ``[T, N, *output_shape]``.
        """

        def single(p: Params, xs: Tensor, t: Mapping[str, Tensor] | None) -> Tensor:
            with modulation_context(t, kind):
                return functional_call(self.model, p, (xs,))

        return vmap(single, in_dims=(0, 0, 0 if taus is not None else None))(params, x, taus)

    def forward_single(
        self, params: Params, x: Tensor, taus: Mapping[str, Tensor] | None = None, kind: str = "film"
    ) -> Tensor:
        """One task, no task dimension: ``x [N, ...]``, ``params {name: shape}``, ``taus {site: [size]}``."""
        with modulation_context(taus, kind):
            return functional_call(self.model, params, (x,))
