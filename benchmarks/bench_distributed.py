"""Data-parallel speed: one process with 2 threads against 2 processes with 1 thread each (torchrun, gloo).

For each preset, alternating blocks of the two layouts (each a fresh launch), each
timing ``--iterations`` meta-iterations after one warm-up iteration, with
``task_rng: per_iteration`` so both train the same run. Reported per layout:
median seconds per iteration and iterations per second; for the 2-process layout
also the all-reduce's share (the time inside the averaging calls, measured on
rank 0: for meta-RL the gradient, every Fisher-vector product and the line search's
statistics) and the bytes of the meta-gradient. ``docs/scaling.md`` builds its
model of larger layouts on these numbers.

    python benchmarks/bench_distributed.py [--presets regression-2modes-film,...] [--iterations 20] [--repeats 3]
    python benchmarks/bench_distributed.py --presets rl-navigation-maml:outer_optimizer=trpo:prior_return_weight=0   # a preset's override
        [--json FILE]

Image presets need their data sets (``MMAML_DATA``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_PRESETS = "regression-2modes-film,regression-2modes-maml"


def worker(args) -> None:
    """Time iterations in this process (one rank of a torchrun launch, or alone)."""
    import torch

    from mmaml.engine.config import apply_overrides, parse_assignment
    from mmaml.engine.distributed import Distributed
    from mmaml.presets import resolve
    from mmaml.kinds import build_algorithm

    dist = Distributed.from_environment()
    torch.set_num_threads(args.threads)
    # "preset:key=value:key=value" times the preset with its own overrides
    name, *own = args.preset.split(":")
    overrides = {**dict(parse_assignment(item) for item in own), "task_rng": "per_iteration"}
    config = apply_overrides(resolve(name), overrides).validate()
    torch.manual_seed(config.seed)
    algorithm = build_algorithm(config, torch.device("cpu"), torch.Generator().manual_seed(0), dist)
    reduce_seconds = [0.0]
    average = dist.average_gradients

    def timed(params):
        t0 = time.perf_counter()
        average(params)
        reduce_seconds[0] += time.perf_counter() - t0

    dist.average_gradients = timed
    # meta-RL reduces through average_ (gradient), sum_ (Fisher-vector products) and mean (line search)
    average_tensor, sum_tensor, mean = dist.average_, dist.sum_, dist.mean

    def timing(reduce):
        def timed_tensor(tensor):
            t0 = time.perf_counter()
            out = reduce(tensor)
            reduce_seconds[0] += time.perf_counter() - t0
            return out

        return timed_tensor

    def timed_mean(value):
        t0 = time.perf_counter()
        out = mean(value)
        reduce_seconds[0] += time.perf_counter() - t0
        return out

    dist.average_, dist.sum_, dist.mean = timing(average_tensor), timing(sum_tensor), timed_mean
    algorithm.step()  # warm-up
    times, reduces = [], []
    for i in range(args.iterations):
        algorithm.iteration = i + 1
        reduce_seconds[0] = 0.0
        t0 = time.perf_counter()
        algorithm.step()
        times.append(time.perf_counter() - t0)
        reduces.append(reduce_seconds[0])
    params = [p for p in algorithm.model.parameters() if p.requires_grad]
    if dist.is_main:
        with open(args.json, "w") as f:
            json.dump({"seconds": times, "reduce_seconds": reduces, "world": dist.world,
                       "bytes": 4 * sum(p.numel() for p in params), "meta_batch_size": config.meta_batch_size}, f)
    dist.close()


def launch(preset: str, layout: str, iterations: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        me = os.path.abspath(__file__)
        common = ["--worker", "--preset", preset, "--iterations",
                  str(max(2, iterations // 4) if preset.startswith("rl-") else iterations), "--json", out]
        env = {**os.environ}
        if layout == "1x2":
            cmd = [sys.executable, me, *common, "--threads", "2"]
        else:
            env["OMP_NUM_THREADS"] = "1"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", me, *common,
                   "--threads", "1"]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default=DEFAULT_PRESETS)
    parser.add_argument("--iterations", type=int, default=20, help="per block (meta-RL presets: a quarter)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0
    load = os.getloadavg()
    print(f"# Data-parallel benchmark ({os.cpu_count()} CPUs; load average at start {load[0]:.2f})\n")
    print("| preset | layout | s/iteration (median) | iterations/s | all-reduce share | bytes reduced per iteration |")
    print("|---|---|---:|---:|---:|---:|")
    results = {}
    for preset in [p for p in args.presets.split(",") if p]:
        runs = {"1x2": [], "2x1": []}
        for _ in range(args.repeats):
            for layout in runs:
                runs[layout].append(launch(preset, layout, args.iterations))
        results[preset] = runs
        for layout, rs in runs.items():
            per_it = statistics.median(t for r in rs for t in r["seconds"])
            share = statistics.median(sum(r["reduce_seconds"]) / sum(r["seconds"]) for r in rs)
            name = "1 process x 2 threads" if layout == "1x2" else "2 processes x 1 thread"
            bytes_cell = f"{rs[0]['bytes']:,}" if layout == "2x1" else "—"
            share_cell = f"{100 * share:.1f}%" if layout == "2x1" else "—"
            print(f"| {preset} | {name} | {per_it:.4f} | {1 / per_it:.2f} | {share_cell} | {bytes_cell} |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
