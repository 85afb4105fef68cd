"""Meta-training speed of whole presets on a device: seconds per iteration and peak memory.

Times the training step of each preset (sample a meta-batch, forward, second-order
backward, norm clipping, Adam step), as ``mmaml train`` runs it, on ``--device``
(default: CUDA when present). Blocks of ``--iterations`` steps are timed after
``--warmup`` steps; the median block over ``--repeats`` is reported with the
time the preset's full budget would take at that speed.

Image presets read their data sets from ``$MMAML_DATA``; with ``--synthetic``
they sample from random images of the preset's size instead (the same number
of classes per data set), which times the same computation without the data.

    python benchmarks/bench_presets.py --presets regression-2modes-film,regression-3modes-film
    python benchmarks/bench_presets.py --presets classification-2modes-mumomaml-5w1s --synthetic --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch


def synthetic_tasks(config, classes: int = 64, per_class: int = 30):
    """Image tasks of ``config``'s shape drawn from random pixels, one fake data set per mode."""
    from mmaml.data.image_classes import ImageClasses
    from mmaml.tasks.classification import ImageClassificationTasks

    rng = np.random.default_rng(0)
    size = config.image_size
    datasets = []
    for name in config.datasets:
        images = rng.integers(0, 256, (classes * per_class, size, size, 3), dtype=np.uint8)
        offsets = np.arange(0, classes * per_class + 1, per_class, dtype=np.int64)
        datasets.append(ImageClasses(name, images, offsets, [f"{name}{c}" for c in range(classes)]))
    return ImageClassificationTasks(datasets, config.num_ways, config.num_shots, config.num_query,
                                    names=config.datasets)


def time_preset(preset: str, device: torch.device, args) -> dict:
    from mmaml.kinds import build_model, build_tasks
    from mmaml.supervised.config import ClassificationConfig
    from mmaml.presets import resolve

    config = resolve(preset).validate()
    torch.manual_seed(0)
    model = build_model(config).to(device)
    images = isinstance(config, ClassificationConfig)
    tasks = synthetic_tasks(config) if images and args.synthetic else build_tasks(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    generator = torch.Generator().manual_seed(0)

    def step() -> float:
        batch = tasks.sample(config.meta_batch_size, generator).to(device)
        loss = model(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = config.grad_norm_clip if config.grad_norm_clip is not None else float("inf")
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return float(loss.detach())  # waits for the device, as the trainer's logging does

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - t0
    for _ in range(args.warmup):
        step()
    sync()
    blocks = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.iterations):
            step()
        sync()
        blocks.append((time.perf_counter() - t0) / args.iterations)
    per_it = statistics.median(blocks)
    return {
        "preset": preset,
        "device": str(device),
        "data": "synthetic" if images and args.synthetic else "real",
        "meta_batch_size": config.meta_batch_size,
        "seconds_per_iteration": per_it,
        "blocks": blocks,
        "first_iteration_seconds": first,
        "preset_iterations": config.iterations,
        "preset_hours": per_it * config.iterations / 3600,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="regression-2modes-film", help="comma-separated preset names")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    parser.add_argument("--iterations", type=int, default=10, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks; the median is reported")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps after the first")
    parser.add_argument("--synthetic", action="store_true", help="random images for image presets (no data needed)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    from mmaml.engine.device import resolve_device

    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"{device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'preset':<45} {'s/iteration':>12} {'first it. s':>12} {'full preset':>12} {'CUDA peak MB':>13}")
    results = []
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        r = time_preset(preset, device, args)
        results.append(r)
        peak = f"{r['cuda_peak_mb']:.0f}" if r["cuda_peak_mb"] is not None else "-"
        print(f"{preset:<45} {r['seconds_per_iteration']:>12.4f} {r['first_iteration_seconds']:>12.2f} "
              f"{r['preset_hours']:>10.2f} h {peak:>13}  ({r['data']} data)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "device_name": name, "torch": torch.__version__,
                       "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
