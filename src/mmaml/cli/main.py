"""The ``mmaml`` command line: train, eval, plot, presets, demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from mmaml.errors import ConfigError, UserError

DEMO_ROWS = ("regression-2modes-maml", "regression-2modes-multi-maml", "regression-2modes-film")
DEMO_ITERATIONS = 1500


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mmaml", description="Multimodal model-agnostic meta-learning (MuMoMAML).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sub.add_parser("presets", help="list the named configurations")

    p = sub.add_parser("train", help="meta-train a preset or YAML config into a run folder")
    p.add_argument("config", metavar="PRESET_OR_YAML")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="run folder")
    p.add_argument("--iterations", type=_int, metavar="N", help="meta-iterations (default: the config's)")
    p.add_argument("--seed", type=_int, metavar="S")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in DIR from its checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard events")

    p = sub.add_parser("eval", help="query MSE after modulation and after adaptation on fresh test tasks")
    p.add_argument("run", metavar="DIR", type=Path)
    p.add_argument("--tasks", type=_positive_int, metavar="N", help="test tasks (default: the config's eval_tasks, 2000)")
    p.add_argument("--steps", type=_int, metavar="S", help="inner steps (default: the config's eval_inner_steps)")
    p.add_argument("--seed", type=_int, metavar="S", help="evaluation seed (default: the config's eval_seed)")

    p = sub.add_parser("plot", help="Figure 2 panels (fits before/after adaptation, t-SNE) as PNG")
    p.add_argument("run", metavar="DIR", type=Path)
    p.add_argument("--compare", nargs="*", type=Path, default=[], metavar="DIR", help="more runs drawn on the same tasks")
    p.add_argument("--out", type=Path, metavar="FIGDIR", help="where the PNGs go (default: DIR/figures)")

    p = sub.add_parser("demo", help="short 2-mode run of MAML, Multi-MAML and MuMoMAML-FiLM, side by side")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR")
    p.add_argument("--iterations", type=_positive_int, default=DEMO_ITERATIONS, metavar="N")
    p.add_argument("--tasks", type=_positive_int, default=2000, metavar="N", help="test tasks")
    p.add_argument("--no-progress", action="store_true")
    return parser


def cmd_presets(args) -> int:
    from mmaml.training.presets import PRESETS, preset_summary

    width = max(map(len, PRESETS))
    for name in PRESETS:
        print(f"{name:<{width}}  {preset_summary(name)}")
    return 0


def _train_config(args):
    from mmaml.training.config import apply_overrides, parse_assignment
    from mmaml.training.presets import resolve

    config = resolve(args.config)
    overrides = dict(parse_assignment(s) for s in args.set)
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    if args.seed is not None:
        overrides["seed"] = args.seed
    return apply_overrides(config, overrides).validate()


def cmd_train(args) -> int:
    from mmaml.training.trainer import Trainer

    config = _train_config(args)
    trainer = Trainer(config, args.out, resume=args.resume, progress=not args.no_progress,
                      tensorboard=not args.no_tensorboard)
    if trainer.iteration >= config.iterations:
        print(f"{args.out}: already trained for {trainer.iteration} iterations; nothing to do")
        return 0
    result = trainer.train()
    if result.interrupted:
        print(f"interrupted; resume from the last checkpoint with: mmaml train {args.config} --out {args.out} --resume",
              file=sys.stderr)
        return 130
    print(f"trained {result.iteration} iterations in {result.seconds:.0f}s; final loss {result.final_loss:.4f}")
    print(f"next: mmaml eval {args.out}   and   mmaml plot {args.out}")
    return 0


def run_eval(run_dir: Path, tasks: int | None = None, steps: int | None = None, seed: int | None = None) -> dict:
    """Evaluate a run and write ``DIR/eval.json`` (atomically); returns the result."""
    from mmaml.training.builder import build_tasks
    from mmaml.training.checkpoint import atomic_write_text
    from mmaml.training.evaluation import evaluate
    from mmaml.training.run_dir import load_run

    if steps is not None and steps < 0:
        raise ConfigError(f"--steps must not be negative, got {steps}")
    config, model, state = load_run(run_dir)
    result = evaluate(
        model,
        build_tasks(config),
        num_tasks=tasks or config.eval_tasks,
        seed=config.eval_seed if seed is None else seed,
        steps=config.eval_inner_steps if steps is None else steps,
    )
    result["iterations"] = int(state["iteration"])
    result["method"] = config.method
    result["modulation"] = config.modulation if config.method == "mumomaml" else None
    result["modes"] = list(config.modes)
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(result, indent=2) + "\n")
    return result


def cmd_eval(args) -> int:
    from mmaml.training.evaluation import format_table

    result = run_eval(args.run, args.tasks, args.steps, args.seed)
    print(f"{result['num_tasks']} test tasks, {result['inner_steps']} inner steps, "
          f"after {result['iterations']} meta-iterations (query MSE, mean ± 95% interval)")
    print(format_table({args.run.name or str(args.run): result}))
    print(f"wrote {args.run / 'eval.json'}")
    return 0


def plot_runs(run_dirs: Sequence[Path], out_dir: Path) -> list[Path]:
    from mmaml.plotting.figure2 import plot_figure2
    from mmaml.training.builder import build_tasks
    from mmaml.training.run_dir import load_run

    loaded = [load_run(d) for d in run_dirs]
    modes = loaded[0][0].modes
    for d, (config, _, _) in zip(run_dirs, loaded):
        if config.modes != modes:
            raise ConfigError(f"cannot compare {d} ({config.modes}) with {run_dirs[0]} ({modes}): different modes")
    models = {}
    for d, (_, model, _) in zip(run_dirs, loaded):
        name = d.resolve().name
        models[name if name not in models else str(d)] = model
    return plot_figure2(models, build_tasks(loaded[0][0]), out_dir, steps=loaded[0][0].eval_inner_steps)


def cmd_plot(args) -> int:
    paths = plot_runs([args.run, *args.compare], args.out or args.run / "figures")
    for p in paths:
        print(f"wrote {p}")
    return 0


def cmd_demo(args) -> int:
    from mmaml.training.config import apply_overrides
    from mmaml.training.evaluation import format_table
    from mmaml.training.presets import resolve
    from mmaml.training.run_dir import checkpoint_path
    from mmaml.training.trainer import Trainer

    results, run_dirs = {}, []
    for preset in DEMO_ROWS:
        name = preset.removeprefix("regression-2modes-")
        run_dir = args.out / name
        config = apply_overrides(resolve(preset), {"iterations": args.iterations, "checkpoint_every": 500}).validate()
        trainer = Trainer(config, run_dir, resume=checkpoint_path(run_dir).exists(), progress=not args.no_progress)
        if trainer.iteration < config.iterations:
            print(f"training {name} ({preset}) for {config.iterations} iterations", flush=True)
            result = trainer.train()
            if result.interrupted:
                print(f"interrupted; rerun the demo to continue from {run_dir}", file=sys.stderr)
                return 130
        results[name] = run_eval(run_dir, tasks=args.tasks)
        run_dirs.append(run_dir)
    print(f"\n2-mode regression (sinusoid + linear), {args.iterations} meta-iterations each, "
          f"{args.tasks} test tasks, query MSE (mean ± 95% interval):")
    print(format_table(results))
    for p in plot_runs(run_dirs, args.out / "figures"):
        print(f"wrote {p}")
    return 0


COMMANDS = {"presets": cmd_presets, "train": cmd_train, "eval": cmd_eval, "plot": cmd_plot, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"mmaml: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
