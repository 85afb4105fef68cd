"""Meta-training speed: the batched implementation against a per-task Python loop.

Times full meta-iterations (forward, second-order backward, norm clipping, Adam
step) of a regression preset at paper sizes (default: 2 modes, FiLM,
meta-batch 50, 5 inner steps) in two ways over the same tasks from the same
initial weights:

* batched:  ``model(batch)`` -- all tasks at once (vmap over tasks);
* loop:     ``per_task_query_losses`` -- one task after another.

Each variant runs in its own subprocess so that its peak memory is its own.
Prints the median seconds per iteration of each, their ratio, the peak memory,
and checks that both produce the same losses.

    python benchmarks/bench_inner_loop.py [--preset regression-2modes-film] [--repeats 5]
"""

from __future__ import annotations

import argparse
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


def run_variant(args) -> dict:
    from mmaml.metalearners.per_task import per_task_query_losses
    from mmaml.training.builder import build_metalearner, build_tasks, resolve_device
    from mmaml.training.presets import resolve

    config = resolve(args.preset).validate()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_metalearner(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    tasks = build_tasks(config)
    generator = torch.Generator().manual_seed(0)
    iters = args.iterations if args.variant == "batched" else args.loop_iterations
    batches = [tasks.sample(config.meta_batch_size, generator).to(device) for _ in range(args.warmup + iters * args.repeats)]

    def step(batch) -> float:
        if args.variant == "batched":
            loss = model(batch).loss
        else:
            loss = per_task_query_losses(model, batch).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_norm_clip)
        optimizer.step()
        return float(loss.detach())

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    losses = [step(b) for b in batches[: args.warmup]]
    base_rss = rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    it = iter(batches[args.warmup:])
    for _ in range(args.repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            losses.append(step(next(it)))
        sync()
        times.append((time.perf_counter() - t0) / iters)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "variant": args.variant,
        "seconds_per_iteration": statistics.median(times),
        "all_seconds_per_iteration": times,
        "losses": losses[: args.warmup + args.loop_iterations],
        "peak_rss_mb": peak,
        "rss_before_timing_mb": base_rss,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="regression-2modes-film")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    parser.add_argument("--iterations", type=int, default=10, help="batched iterations per repeat")
    parser.add_argument("--loop-iterations", type=int, default=2, help="loop iterations per repeat")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variant", choices=["batched", "loop"], help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args)))
        return 0

    results = {}
    for variant in ("batched", "loop"):
        cmd = [sys.executable, __file__, "--variant", variant, "--preset", args.preset, "--device", args.device,
               "--repeats", str(args.repeats), "--iterations", str(args.iterations),
               "--loop-iterations", str(args.loop_iterations), "--warmup", str(args.warmup)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[variant] = json.loads(out.strip().splitlines()[-1])
    b, loop = results["batched"], results["loop"]
    n = min(len(b["losses"]), len(loop["losses"]))
    max_rel = max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(b["losses"][:n], loop["losses"][:n]))
    ratio = loop["seconds_per_iteration"] / b["seconds_per_iteration"]
    print(f"preset {args.preset} on {args.device} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__})")
    print(f"{'variant':<10} {'s/iteration (median)':>22} {'peak RSS MB':>12} {'RSS before MB':>14}")
    for v in (b, loop):
        print(f"{v['variant']:<10} {v['seconds_per_iteration']:>22.4f} {v['peak_rss_mb']:>12.0f} {v['rss_before_timing_mb']:>14.0f}"
              + (f"   CUDA peak {v['cuda_peak_mb']:.0f} MB" if v["cuda_peak_mb"] is not None else ""))
    print(f"speed-up batched vs loop: {ratio:.1f}x")
    print(f"losses of the first {n} iterations agree to a relative {max_rel:.1e} "
          f"({'OK' if max_rel < 1e-4 else 'MISMATCH'})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "device": args.device, "ratio": ratio, "max_rel_loss_diff": max_rel,
                       **results}, f, indent=2)
    return 0 if max_rel < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
