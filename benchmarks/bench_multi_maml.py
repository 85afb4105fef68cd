"""Multi-MAML: a batch split by mode against per-task stacked initialisations.

Multi-MAML can start every task from its own copy of its mode's theta
(``run_from(batch, initial_parameters(batch))``: one batched loop, but every
linear weight becomes per-task) or split the batch by mode and run one batched
loop per mode from the shared theta (``model(batch)``, what training uses).
Both give the same losses and meta-gradients (checked here); this times full
meta-iterations (forward, second-order backward) of the two, alternating
blocks in one process, and reports medians.

    python benchmarks/bench_multi_maml.py [--preset regression-2modes-multi-maml] [--repeats 7]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch


def main() -> int:
    from mmaml.kinds import build_model, build_tasks
    from mmaml.presets import resolve

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="regression-2modes-multi-maml")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=5, help="iterations per block")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = resolve(args.preset).validate()
    if config.method != "multi_maml":
        parser.error(f"{args.preset} is not a Multi-MAML preset")
    torch.manual_seed(0)
    model = build_model(config)
    tasks = build_tasks(config)
    gen = torch.Generator().manual_seed(0)
    variants = {
        "split by mode": lambda b: model(b),
        "stacked per task": lambda b: model.run_from(b, model.initial_parameters(b)),
    }

    batch = tasks.sample(config.meta_batch_size, gen)
    params = list(model.parameters())
    results = {name: fn(batch).loss for name, fn in variants.items()}
    grads = {name: torch.autograd.grad(loss, params) for name, loss in results.items()}
    a, b = grads.values()
    grad_diff = max(float((x - y).abs().max()) for x, y in zip(a, b)) / max(float(g.abs().max()) for g in b)
    loss_a, loss_b = (float(v) for v in results.values())
    loss_diff = abs(loss_a - loss_b) / max(abs(loss_b), 1e-12)

    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            batches = [tasks.sample(config.meta_batch_size, gen) for _ in range(args.iterations)]
            t0 = time.perf_counter()
            for b_ in batches:
                model.zero_grad(set_to_none=True)
                fn(b_).loss.backward()
            times[name].append((time.perf_counter() - t0) / args.iterations)
    ratios = [s / g for g, s in zip(times["split by mode"], times["stacked per task"])]
    print(f"preset {args.preset} ({platform.machine()}, {args.threads} thread(s), torch {torch.__version__}); "
          f"{args.repeats} alternating blocks of {args.iterations} iterations")
    for name, t in times.items():
        print(f"{name:<17} median {statistics.median(t):.4f} s/iteration (min {min(t):.4f}, max {max(t):.4f})")
    print(f"speed-up of splitting by mode: median {statistics.median(ratios):.2f}x "
          f"(per block {min(ratios):.2f}x to {max(ratios):.2f}x)")
    ok = loss_diff < 1e-5 and grad_diff < 1e-4
    print(f"same loss to a relative {loss_diff:.1e}, meta-gradients to {grad_diff:.1e} ({'OK' if ok else 'MISMATCH'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
