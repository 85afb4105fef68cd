"""Thread defaults: seconds per meta-iteration of each preset family with one and with all torch threads,
on an idle machine and beside a second busy process.

Each measurement is a fresh process (``bench_presets.py`` for the supervised
families, on random images for the image preset; ``bench_rl.py`` for the RL
ones) with ``OMP_NUM_THREADS`` set, so that torch starts with that many threads.
"Busy" runs one CPU-bound Python process (a spinning loop, one core) beside it
for the whole measurement. The half-cheetah is also timed with its physics on
every core (``sim_threads``). What ``threads: auto`` chooses per family is
printed beside the measurements (:mod:`mmaml.engine.threads`).

First, what the CPUs give together: one CPU-bound kernel (a one-thread float32
matmul loop, and a pure-Python loop) timed alone and as that many copies at
once; the copies' throughput over one copy's says how much a second core can
add at most (near 1 when the "cores" share one physical core).

    python benchmarks/bench_threads.py [--families regression,images,rl-2d,cheetah] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

# family -> (preset, bench command builder)
FAMILIES = {
    "regression": "regression-2modes-film",
    "images": "classification-cpu-2modes-mumomaml-5w1s",
    "rl-2d": "rl-navigation-mumomaml",
    "cheetah": "rl-cheetah-speed-mumomaml",
}


def command(family: str, threads: int, sim_threads: int, out: str, quick: bool) -> list[str]:
    preset = FAMILIES[family]
    if family in ("regression", "images"):
        iterations = "20" if family == "regression" else "3"
        return [sys.executable, str(HERE / "bench_presets.py"), "--presets", preset, "--device", "cpu",
                "--synthetic", "--iterations", iterations, "--repeats", "2" if quick else "3", "--warmup", "2",
                "--json", out]
    return [sys.executable, str(HERE / "bench_rl.py"), "--skip-envs", "--presets", preset, "--threads", str(threads),
            "--repeats", "2" if quick else "3", "--set", f"sim_threads={sim_threads}", "--json", out]


def seconds(family: str, path: str) -> float:
    with open(path) as f:
        data = json.load(f)
    if family in ("regression", "images"):
        return data["results"][0]["seconds_per_iteration"]
    return next(iter(data["iterations"].values()))["seconds"]["total"]["median"]


def measure(family: str, threads: int, sim_threads: int, busy: bool, quick: bool) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(HERE.parent / "src")}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            subprocess.run(command(family, threads, sim_threads, out, quick), env=env, check=True,
                           stdout=subprocess.DEVNULL, timeout=1800)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        return seconds(family, out)


KERNELS = {
    "matmul": "import time, torch\ntorch.set_num_threads(1)\na = torch.randn(40000, 64); w = torch.randn(64, 64)\n"
              "[a @ w for _ in range(20)]\nt = time.perf_counter()\n[a @ w for _ in range(400)]\n"
              "print(time.perf_counter() - t)",
    "python": "import time\nt = time.perf_counter()\nx = 0\nfor i in range(20_000_000): x += i\n"
              "print(time.perf_counter() - t)",
}


def co_run(kernel: str, copies: int) -> list[float]:
    """Seconds of each of ``copies`` simultaneous runs of ``kernel``."""
    procs = [subprocess.Popen([sys.executable, "-c", KERNELS[kernel]], stdout=subprocess.PIPE, text=True)
             for _ in range(copies)]
    return [float(p.communicate()[0]) for p in procs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--quick", action="store_true", help="fewer timed blocks")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "src"))
    from mmaml.engine.threads import family_threads

    started = time.perf_counter()
    print(f"# What {CPUS} CPUs give together\n")
    print("| kernel | one copy alone, s | each of the copies at once, s | throughput of the copies over one |")
    print("|---|---:|---:|---:|")
    machine = {}
    for kernel in KERNELS:
        alone = min(co_run(kernel, 1)[0] for _ in range(2))
        together = co_run(kernel, CPUS)
        machine[kernel] = {"alone": alone, "together": together, "throughput": sum(alone / t for t in together)}
        print(f"| {kernel} | {alone:.2f} | {', '.join(f'{t:.2f}' for t in together)} | "
              f"{machine[kernel]['throughput']:.2f}x |", flush=True)
    print()
    print(f"# Thread defaults ({CPUS} usable CPUs; s/iteration, median of timed blocks)\n")
    print("| family (preset) | torch threads | physics threads | idle s/it | busy s/it | auto picks (idle) |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = []
    for family in [f for f in args.families.split(",") if f]:
        variants = [(1, 1), (CPUS, 1)]
        if family == "cheetah":
            variants = [(1, 1), (1, CPUS), (CPUS, CPUS)]
        for threads, sim in variants:
            idle = measure(family, threads, sim, False, args.quick)
            busy = measure(family, threads, sim, True, args.quick)
            rows.append({"family": family, "preset": FAMILIES[family], "threads": threads, "sim_threads": sim,
                         "idle": idle, "busy": busy})
            print(f"| {family} ({FAMILIES[family]}) | {threads} | {sim} | {idle:.3f} | {busy:.3f} "
                  f"| {family_threads(family, CPUS)} |", flush=True)
    print(f"\nrun took {time.perf_counter() - started:.0f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpus": CPUS, "machine": machine, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
