"""Meta-training speed: the batched implementation against a per-task Python loop.

Times full meta-iterations (forward, second-order backward, norm clipping, Adam
step) of a regression preset at paper sizes (default: 2 modes, FiLM,
meta-batch 50, 5 inner steps) in two ways, from the same initial weights:

* batched:  ``model(batch)`` -- all tasks of the meta-batch at once;
* loop:     ``per_task_query_losses`` -- one task after another.

Timing blocks of the two alternate in one process, so that a busy or
throttled machine slows both alike; the median over the repeats is reported.
Peak memory is measured for each variant in a fresh subprocess of its own.
Both must give the same loss and meta-gradients on the same tasks and weights.

    python benchmarks/bench_inner_loop.py [--preset regression-2modes-film] [--repeats 7]
    MMAML_DATA=../shared/data python benchmarks/bench_inner_loop.py --preset classification-cpu-2modes-mumomaml-5w1s

Image presets read their data sets from ``$MMAML_DATA``; the time to get the
task sampler ready (the one-time decode-and-resize cache build on a first run,
a memory map afterwards) and the first iteration are printed separately.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def setup(preset: str, device: str):
    from mmaml.kinds import build_model, build_tasks
    from mmaml.engine.device import resolve_device
    from mmaml.presets import resolve

    config = resolve(preset).validate()
    dev = resolve_device(device)
    torch.manual_seed(0)
    model = build_model(config).to(dev)
    t0 = time.perf_counter()
    tasks = build_tasks(config)
    setup.seconds = time.perf_counter() - t0
    return config, dev, model, tasks


def make_step(variant: str, model, config):
    from mmaml.metalearners.per_task import per_task_query_losses

    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)

    def step(batch) -> float:
        if variant == "batched":
            loss = model(batch).loss
        else:
            loss = per_task_query_losses(model, batch).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_norm_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_norm_clip)
        optimizer.step()
        return float(loss.detach())

    return step


def memory_only(args) -> dict:
    """Peak RSS of a few iterations of one variant (run in its own subprocess)."""
    config, dev, model, tasks = setup(args.preset, args.device)
    step = make_step(args.variant, model, config)
    gen = torch.Generator().manual_seed(0)
    before = rss_mb()
    for _ in range(3):
        step(tasks.sample(config.meta_batch_size, gen).to(dev))
    return {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": before,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="regression-2modes-film")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7, help="alternating timing blocks; medians are reported")
    parser.add_argument("--iterations", type=int, default=10, help="batched iterations per block")
    parser.add_argument("--loop-iterations", type=int, default=2, help="loop iterations per block")
    parser.add_argument("--variant", choices=["batched", "loop"], help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(memory_only(args)))
        return 0

    config, dev, batched_model, tasks = setup(args.preset, args.device)
    data_seconds = setup.seconds
    loop_model = copy.deepcopy(batched_model)
    steps = {"batched": make_step("batched", batched_model, config), "loop": make_step("loop", loop_model, config)}
    gen = torch.Generator().manual_seed(0)

    def sample():
        return tasks.sample(config.meta_batch_size, gen).to(dev)

    # the same tasks, the same weights: losses and meta-gradients must agree
    # (checked before any update: Adam turns float-level noise in gradients that
    # are zero in exact arithmetic, e.g. of conv biases before batch norm, into
    # full-size steps, so trajectories may part later)
    from mmaml.metalearners.per_task import per_task_query_losses

    batch = sample()
    loss_b = batched_model(batch).loss
    grads_b = torch.autograd.grad(loss_b, list(batched_model.parameters()))
    loss_l = per_task_query_losses(loop_model, batch).mean()
    grads_l = torch.autograd.grad(loss_l, list(loop_model.parameters()))
    loss_b, loss_l = float(loss_b.detach()), float(loss_l.detach())
    max_rel = abs(loss_b - loss_l) / max(abs(loss_l), 1e-12)
    scale = max(float(g.abs().max()) for g in grads_l)
    grad_diff = max(float((a - b).abs().max()) for a, b in zip(grads_b, grads_l)) / scale
    losses = {"batched": loss_b, "loop": loss_l}
    first = {}
    for v in steps:
        t0 = time.perf_counter()
        steps[v](sample())
        first[v] = time.perf_counter() - t0

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times = {"batched": [], "loop": []}
    counts = {"batched": args.iterations, "loop": args.loop_iterations}
    for _ in range(args.repeats):
        for v in ("batched", "loop"):
            batches = [sample() for _ in range(counts[v])]
            sync()
            t0 = time.perf_counter()
            for b in batches:
                steps[v](b)
            sync()
            times[v].append((time.perf_counter() - t0) / counts[v])
    ratios = [lp / b for b, lp in zip(times["batched"], times["loop"])]

    memory = {}
    for v in ("batched", "loop"):
        cmd = [sys.executable, __file__, "--variant", v, "--preset", args.preset, "--device", args.device]
        memory[v] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])

    print(f"preset {args.preset} on {args.device} ({platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}); {args.repeats} alternating blocks")
    print(f"{'variant':<10} {'s/iteration (median)':>21} {'min':>8} {'max':>8} {'peak RSS MB':>12} {'RSS at start MB':>16}")
    for v in ("batched", "loop"):
        t, m = times[v], memory[v]
        print(f"{v:<10} {statistics.median(t):>21.4f} {min(t):>8.4f} {max(t):>8.4f} {m['peak_rss_mb']:>12.0f} "
              f"{m['rss_before_mb']:>16.0f}" + (f"  CUDA peak {m['cuda_peak_mb']:.0f} MB" if m["cuda_peak_mb"] else ""))
    print(f"task sampler ready in {data_seconds:.2f}s; first batched iteration (sampling included) "
          f"{first['batched']:.3f}s")
    print(f"speed-up batched vs loop: median {statistics.median(ratios):.1f}x "
          f"(per block {min(ratios):.1f}x to {max(ratios):.1f}x)")
    ok = max_rel < 1e-5 and grad_diff < 1e-4
    print(f"same tasks and weights: loss differs by a relative {max_rel:.1e}, meta-gradients by {grad_diff:.1e} "
          f"of their largest element ({'OK' if ok else 'MISMATCH'})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "device": args.device, "times": times, "ratios": ratios,
                       "memory": memory, "losses": losses, "max_rel_loss_diff": max_rel,
                       "max_rel_grad_diff": grad_diff}, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
