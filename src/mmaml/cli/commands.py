"""The implementations of the ``mmaml`` subcommands (the parser is in :mod:`mmaml.cli.main`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mmaml.cli.reproduce_commands import cmd_reproduce as reproduce
from mmaml.data.paths import data_root
from mmaml.data.registry import DATASETS, FETCHERS, NO_FETCHER
from mmaml.engine.checkpoint import load_checkpoint
from mmaml.engine.config import RESUMABLE_KEYS, apply_overrides, config_differences, parse_assignment
from mmaml.engine.distributed import Distributed
from mmaml.engine.run_dir import checkpoint_path
from mmaml.errors import ConfigError
from mmaml.presets import PRESETS, preset_summary, resolve
from mmaml.runs import compare_runs, evaluate_run, make_trainer, plot_runs, saved_run_config
from mmaml.supervised.evaluation import format_table

DEMO_ROWS = ("regression-2modes-maml", "regression-2modes-multi-maml", "regression-2modes-film")


def cmd_presets(args) -> int:
    width = max(map(len, PRESETS))
    for name in PRESETS:
        print(f"{name:<{width}}  {preset_summary(name)}")
    return 0


def _train_config(args):
    config = apply_overrides(resolve(args.config), _given_overrides(args)).validate()
    return _resumed_config(args, config) if args.resume else config


def _given_overrides(args) -> dict:
    """The settings given on the command line: ``--set`` values, ``--iterations`` and ``--seed``."""

    overrides = dict(parse_assignment(s) for s in args.set)
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    if args.seed is not None:
        overrides["seed"] = args.seed
    return overrides


# what makes a run the run it is: a preset that differs from a saved run here names another run
IDENTITY_KEYS = ("task", "method", "env", "modes", "datasets", "modulation")


def _resumed_config(args, config):
    """The saved run's config, with the settings given on the command line.

    Resume takes every setting from the run itself (its iterations, log_every, ... included). A given
    resumable setting (iterations, log_every, checkpoint_every, threads, ...) that differs from the run's is
    an override, and is said; a given setting that would change the computation is refused, as is a preset
    that names another run (another task, method, environment, modes, data sets or modulation).
    """

    ckpt = checkpoint_path(args.out)
    if not ckpt.exists():
        return config  # the trainer says there is nothing to resume
    saved = saved_run_config(load_checkpoint(ckpt), ckpt)
    other = [k for k in IDENTITY_KEYS if hasattr(saved, k) and getattr(config, k, None) != getattr(saved, k)]
    if other:
        raise ConfigError(f"{args.out} holds another run than {args.config} ({', '.join(other)} differ); resume it "
                          f"with the preset it was trained from, or choose another --out")
    given = _given_overrides(args)
    resumed = apply_overrides(saved, given).validate()
    changed = config_differences(resumed, saved)
    if changed:
        values = ", ".join(f"{k}={getattr(resumed, k)!r} (the run has {getattr(saved, k)!r})" for k in changed)
        raise ConfigError(f"cannot resume {args.out} with {values}: that changes what the run computes; only "
                          f"{', '.join(sorted(RESUMABLE_KEYS))} may change on resume")
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone says it
        for key in sorted(k for k in RESUMABLE_KEYS & given.keys() if getattr(saved, k, None) != getattr(resumed, k)):
            print(f"resuming with {key}={getattr(resumed, key)} (the run had {getattr(saved, key)})")
    return resumed


def cmd_train(args) -> int:
    config = _train_config(args)  # a bad flag or config is refused before joining a process group
    dist = Distributed.from_environment()  # torchrun's ranks; a single process otherwise
    try:
        return _train(args, config, dist)
    finally:
        dist.close()


def _train(args, config, dist) -> int:
    say = print if dist.is_main else (lambda *a, **k: None)
    trainer = make_trainer(config, args.out, resume=args.resume, progress=not args.no_progress,
                      tensorboard=not args.no_tensorboard, dist=dist)
    if trainer.iteration >= config.iterations:
        say(f"{args.out}: already trained for {trainer.iteration} iterations; nothing to do")
        return 0
    say(trainer.threads["line"])
    result = trainer.train()
    if not dist.is_main:
        return 130 if result.interrupted else 0
    if result.interrupted:
        ckpt = checkpoint_path(args.out)
        if ckpt.exists():
            saved = int(load_checkpoint(ckpt)["iteration"])
            print(f"interrupted; the checkpoint holds iteration {saved} of {config.iterations}; resume with: "
                  f"mmaml train {args.config} --out {args.out} --resume", file=sys.stderr)
        else:
            print(f"interrupted before any checkpoint was saved; start again with: mmaml train {args.config} "
                  f"--out {args.out}", file=sys.stderr)
        return 130
    if result.final_loss is not None:
        print(f"trained {result.iteration} iterations in {result.seconds:.0f}s; loss of the last meta-batch "
              f"{result.final_loss:.4f} (metrics.csv: means over every log_every iterations)")
    else:
        returns = [v for k, v in (result.final_metrics or {}).items() if k.startswith("return_step")]
        shown = ", ".join(f"{r:.2f}" for r in returns)
        print(f"trained {result.iteration} iterations in {result.seconds:.0f}s; "
              f"last meta-batch's average return by inner step: {shown}")
    print(f"next: mmaml eval {args.out}   and   mmaml plot {args.out}")
    return 0


def cmd_compare(args) -> int:
    """Score several runs on the same fresh test tasks; report each one's paired difference to the first."""
    compare_runs(args.runs, args.tasks, args.seed, args.steps, args.output, args.split, args.saved)
    return 0


def cmd_eval(args) -> int:
    dist = Distributed.from_environment()  # torchrun's ranks share the test tasks; a single process otherwise
    try:
        evaluate_run(args.run, args.tasks, args.steps, args.seed, args.output, dist=dist, checkpoint=args.checkpoint,
                     say=print)
        return 0
    finally:
        dist.close()


def cmd_plot(args) -> int:
    paths = plot_runs([args.run, *args.compare], args.out or args.run / "figures")
    for p in paths:
        print(f"wrote {p}")
    return 0


def cmd_demo(args) -> int:
    results, run_dirs = {}, []
    for preset in DEMO_ROWS:
        name = preset.removeprefix("regression-2modes-")
        run_dir = args.out / name
        config = apply_overrides(resolve(preset), {"iterations": args.iterations, "checkpoint_every": 500}).validate()
        trainer = make_trainer(config, run_dir, resume=checkpoint_path(run_dir).exists(), progress=not args.no_progress)
        if trainer.iteration < config.iterations:
            print(f"training {name} ({preset}) for {config.iterations} iterations", flush=True)
            result = trainer.train()
            if result.interrupted:
                print(f"interrupted; rerun the demo to continue from {run_dir}", file=sys.stderr)
                return 130
        results[name] = evaluate_run(run_dir, tasks=args.tasks)
        run_dirs.append(run_dir)
    print(f"\n2-mode regression (sinusoid + linear), {args.iterations} meta-iterations each, "
          f"{args.tasks} test tasks, query MSE (mean ± 95% interval):")
    print(format_table(results))
    for p in plot_runs(run_dirs, args.out / "figures"):
        print(f"wrote {p}")
    return 0


def cmd_data(args) -> int:
    """``mmaml data list`` / ``mmaml data fetch NAME``."""

    root = data_root(args.root)
    if args.action == "list":
        print(f"data folder: {root}")
        for name, spec in DATASETS.items():
            found = spec.locate(root)
            how = f"mmaml data fetch {name}" if name in FETCHERS else NO_FETCHER[name]
            print(f"  {name:<22} " + (f"present in {found}" if found is not None else f"missing; get it: {how}"))
        return 0
    if args.name not in FETCHERS:
        why = NO_FETCHER.get(args.name)
        raise ConfigError(f"no download for {args.name!r}: {why}" if why else
                          f"unknown data set {args.name!r}; choose one of {', '.join(FETCHERS)}")
    made = [p for p in (root, *root.parents) if not p.exists()]  # the folders this command creates
    before = set(root.iterdir()) if root.exists() else set()
    root.mkdir(parents=True, exist_ok=True)
    try:
        FETCHERS[args.name](root)
    except BaseException:
        _remove_empty_folders(root, before, made)  # a failed fetch leaves no empty folder behind
        raise
    print(f"{args.name}: downloaded and verified in {root}")
    return 0


def _remove_empty_folders(root: Path, before: set, made: list[Path]) -> None:
    """Remove the folders under ``root`` that were not in ``before`` and hold no file, then ``made`` if empty."""
    for entry in sorted(set(root.iterdir()) - before, reverse=True) if root.exists() else []:
        if entry.is_dir() and not any(p.is_file() for p in entry.rglob("*")):
            for folder in sorted((p for p in entry.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                folder.rmdir()
            entry.rmdir()
    for folder in made:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            break


def cmd_reproduce(args) -> int:
    return reproduce(args)
