"""Where a MAML-TRPO step's time goes: the parts of one step on fixed rollouts, and page faults per product.

Samples one meta-batch of ``--preset`` (after one training iteration), then times, medians over
``--repeats``: the surrogate of every task with its second-order graph and its gradient; building the
graph of ``J^T u`` that every Fisher-vector product reuses; one Fisher-vector product; one line-search
candidate (the surrogate without a graph); with the minor page faults of each.
``--malloc default`` leaves glibc's settings as they are (training keeps freed memory). The preset is
trained with ``outer_optimizer: trpo`` (the rl-* presets use ProMP); ``--set`` adds other overrides
(``--set normalize_actions=false``: the presets as the figures in docs/performance.md were measured).

    python benchmarks/bench_fisher.py [--preset rl-navigation-maml] [--malloc keep|default] [--set key=value]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import torch


def median_ms(fn, repeats: int) -> tuple[float, float]:
    """``(median ms, minor page faults per call)`` of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / repeats
    return 1e3 * statistics.median(times), faults


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="rl-navigation-maml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--malloc", choices=("keep", "default"), default="keep")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.malloc == "keep":
        from mmaml.engine.allocator import keep_freed_memory

        keep_freed_memory()
    from mmaml.rl.algorithm import RLAlgorithm
    from mmaml.rl.maml_trpo import fisher_tasks, fisher_vector_product, split_for_fisher, surrogate
    from mmaml.presets import resolve

    from mmaml.engine.config import apply_overrides, parse_assignment

    overrides = {"outer_optimizer": "trpo", **dict(parse_assignment(item) for item in args.set)}
    config = apply_overrides(resolve(args.preset), overrides).validate()
    torch.manual_seed(0)
    algo = RLAlgorithm(config, torch.device("cpu"), torch.Generator().manual_seed(0))
    algo.step()
    rollouts, _ = algo.sample()
    model = algo.model
    params = [p for p in model.parameters() if p.requires_grad]
    subset = fisher_tasks(config.meta_batch_size, config.fisher_subsample)

    def gradient():
        loss, _, fisher_pred = split_for_fisher(model, rollouts, subset, True)
        torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return fisher_pred

    with torch.enable_grad():
        fisher_pred = gradient()
        product = fisher_vector_product(fisher_pred, params, 0.0)
        v = torch.randn(sum(p.numel() for p in params))
        parts = {
            "surrogate of every task with its graph, and its gradient": median_ms(gradient, args.repeats),
            "graph of J^T u reused by the products": median_ms(
                lambda: fisher_vector_product(fisher_pred, params, 0.0), args.repeats),
            "one Fisher-vector product": median_ms(lambda: product(v), args.repeats),
            "one line-search candidate": median_ms(lambda: surrogate(model, rollouts, None, False), args.repeats),
        }
    print(f"{args.preset}, one thread, malloc {args.malloc}, {config.meta_batch_size} tasks "
          f"({len(subset)} in the Fisher); medians of {args.repeats}")
    for name, (ms, faults) in parts.items():
        print(f"  {name:<58} {ms:8.1f} ms {faults:9.0f} page faults")
    return 0


if __name__ == "__main__":
    sys.exit(main())
