"""Named configurations: every row of the paper's Table 1, and the 5-mode counterparts.

The settings follow the paper (Section 3.1 and Appendix D): meta-batch 50/75/125
for 2/3/5 modes, 5 inner steps at lr 0.001, Adam 0.001 with norm clipping 2,
70,000 meta-iterations. The MAML baselines use the 20-dim bias transformation
and no inner clamp; MuMoMAML clamps inner gradients to [-10, 10] and modulates
the first hidden layer with 2 modes, all three with 3 and 5 modes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmaml.errors import ConfigError
from mmaml.tasks.regression import MODE_SETS
from mmaml.training.config import RegressionConfig, apply_overrides, load_yaml

METHOD_ROWS: dict[str, dict[str, Any]] = {
    "maml": {"method": "maml", "bias_transformation": 20, "inner_grad_clip": None},
    "multi-maml": {"method": "multi_maml", "bias_transformation": 20, "inner_grad_clip": None},
    "softmax": {"method": "mumomaml", "modulation": "softmax"},
    "sigmoid": {"method": "mumomaml", "modulation": "sigmoid"},
    "film": {"method": "mumomaml", "modulation": "film"},
}

META_BATCH = {2: 50, 3: 75, 5: 125}


def _build() -> dict[str, dict[str, Any]]:
    presets = {}
    for n, modes in MODE_SETS.items():
        for row, values in METHOD_ROWS.items():
            preset = {"modes": list(modes), "meta_batch_size": META_BATCH[n], **values}
            if values["method"] == "mumomaml":
                preset["modulated_layers"] = [0] if n == 2 else [0, 1, 2]
            presets[f"regression-{n}modes-{row}"] = preset
    return presets


PRESETS: dict[str, dict[str, Any]] = _build()


def preset_summary(name: str) -> str:
    p = PRESETS[name]
    what = p["method"] if p["method"] != "mumomaml" else f"mumomaml ({p['modulation']}, layers {p['modulated_layers']})"
    return f"{len(p['modes'])} modes, {what}, meta-batch {p['meta_batch_size']}"


def resolve(preset_or_yaml: str) -> RegressionConfig:
    """A preset name or a YAML file (which may name a ``preset`` to start from) -> config."""
    if preset_or_yaml in PRESETS:
        return apply_overrides(RegressionConfig(), PRESETS[preset_or_yaml])
    path = Path(preset_or_yaml)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; give a preset name (see 'mmaml presets') or a YAML file")
        data = load_yaml(path)
        base = RegressionConfig()
        start = data.pop("preset", None)
        if start is not None:
            if start not in PRESETS:
                raise ConfigError(f"{path}: unknown preset {start!r}; run 'mmaml presets' to list them")
            base = apply_overrides(base, PRESETS[start])
        return apply_overrides(base, data)
    close = [p for p in PRESETS if preset_or_yaml.lower() in p]
    hint = f" (did you mean {', '.join(close[:3])}?)" if close else "; run 'mmaml presets' to list them"
    raise ConfigError(f"unknown preset {preset_or_yaml!r}{hint}")
