"""The implementations of the ``mmaml`` subcommands (the parser is in :mod:`mmaml.cli.main`)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from mmaml.errors import ConfigError

DEMO_ROWS = ("regression-2modes-maml", "regression-2modes-multi-maml", "regression-2modes-film")


def cmd_presets(args) -> int:
    from mmaml.training.presets import PRESETS, preset_summary

    width = max(map(len, PRESETS))
    for name in PRESETS:
        print(f"{name:<{width}}  {preset_summary(name)}")
    return 0


def _train_config(args):
    from mmaml.training.config import apply_overrides
    from mmaml.training.presets import resolve

    config = apply_overrides(resolve(args.config), _given_overrides(args)).validate()
    return _resumed_config(args, config) if args.resume else config


def _given_overrides(args) -> dict:
    """The settings given on the command line: ``--set`` values, ``--iterations`` and ``--seed``."""
    from mmaml.training.config import parse_assignment

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
    from mmaml.training.checkpoint import load_checkpoint
    from mmaml.training.config import RESUMABLE_KEYS, apply_overrides, config_differences
    from mmaml.training.run_dir import checkpoint_path, config_from_state

    ckpt = checkpoint_path(args.out)
    if not ckpt.exists():
        return config  # the trainer says there is nothing to resume
    saved = config_from_state(load_checkpoint(ckpt), ckpt)
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
    from mmaml.training.distributed import Distributed

    config = _train_config(args)  # a bad flag or config is refused before joining a process group
    dist = Distributed.from_environment()  # torchrun's ranks; a single process otherwise
    try:
        return _train(args, config, dist)
    finally:
        dist.close()


def _train(args, config, dist) -> int:
    from mmaml.training.trainer import Trainer

    say = print if dist.is_main else (lambda *a, **k: None)
    trainer = Trainer(config, args.out, resume=args.resume, progress=not args.no_progress,
                      tensorboard=not args.no_tensorboard, dist=dist)
    if trainer.iteration >= config.iterations:
        say(f"{args.out}: already trained for {trainer.iteration} iterations; nothing to do")
        return 0
    say(trainer.threads["line"])
    result = trainer.train()
    if not dist.is_main:
        return 130 if result.interrupted else 0
    if result.interrupted:
        from mmaml.training.checkpoint import load_checkpoint
        from mmaml.training.run_dir import checkpoint_path

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


def _check_eval_flags(steps: int | None, output: Path | None) -> None:
    """The checks ``eval`` and ``compare`` share, made before any model is loaded."""
    if steps is not None and steps < 0:
        raise ConfigError(f"--steps must not be negative, got {steps}")
    if output is not None:
        output = Path(output)
        if output.is_dir():
            raise ConfigError(f"--output {output} is a folder; give a file name such as {output / 'eval.json'}")
        if not output.parent.is_dir():
            raise ConfigError(f"--output {output}: folder {output.parent} does not exist; create it first")


def run_eval(
    run_dir: Path,
    tasks: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    output: Path | None = None,
    dist=None,
    checkpoint: str = "last",
) -> dict:
    """Evaluate a run on fresh test tasks and write ``output`` (default ``DIR/eval.json``, atomically).

    The per-task scores go beside it, in ``<output stem>_per_task.json``. ``checkpoint``: the run's
    ``last`` checkpoint or its ``best`` by validation (``best.pt``; default output ``DIR/eval_best.json``).
    """
    from mmaml.training.builder import build_tasks
    from mmaml.training.checkpoint import atomic_write_text
    from mmaml.training.config import ClassificationConfig
    from mmaml.training.evaluation import evaluate
    from mmaml.training.allocator import keep_freed_memory
    from mmaml.training.run_dir import load_run
    from mmaml.training.threads import configure_threads

    _check_eval_flags(steps, output)  # a given --output; the default lies in the run folder load_run checks
    default = "eval.json" if checkpoint == "last" else f"eval_{checkpoint}.json"
    output = Path(run_dir) / default if output is None else Path(output)
    config, model, state = load_run(run_dir, checkpoint=checkpoint)
    configure_threads(config, 1 if dist is None else dist.local_world)
    keep_freed_memory()
    started = time.perf_counter()
    if config.task == "rl":
        from mmaml.cli.rl_commands import rl_eval
        from mmaml.rl.evaluation import splits_across_ranks

        if dist is not None and dist.active and not splits_across_ranks(config):
            # a task_rng=stream run draws every chunk's episodes from one stream, so its evaluation does
            # not split: rank 0 evaluates alone (the single process's result) and the other ranks are done
            if not dist.is_main:
                return {}
            dist = None
        return rl_eval(run_dir, config, model, state, tasks, steps, seed, output, dist, checkpoint)
    images = isinstance(config, ClassificationConfig)
    result = evaluate(
        model,
        build_tasks(config, split="test") if images else build_tasks(config),
        num_tasks=tasks or config.eval_tasks,
        seed=config.eval_seed if seed is None else seed,
        steps=config.eval_inner_steps if steps is None else steps,
        metric="accuracy" if images else "mse",
        dist=dist,
    )
    result["seconds"] = time.perf_counter() - started
    result["iterations"] = int(state["iteration"])
    result["checkpoint"] = checkpoint
    result["method"] = config.method
    result["modulation"] = config.modulation if config.method == "mumomaml" else None
    result["modes"] = list(config.mode_names)
    per_task = result.pop("per_task")
    if dist is not None and not dist.is_main:
        return result  # rank 0 writes
    per_task_path = output.with_name(output.stem + "_per_task.json")
    atomic_write_text(per_task_path, json.dumps({"num_tasks": result["num_tasks"], "seed": result["seed"],
                                                 "inner_steps": result["inner_steps"], **per_task}) + "\n")
    atomic_write_text(output, json.dumps(result, indent=2) + "\n")
    return result


def cmd_compare(args) -> int:
    """Score several runs on the same fresh test tasks; report each one's paired difference to the first."""
    from mmaml.training.builder import build_tasks
    from mmaml.training.config import ClassificationConfig
    from mmaml.training.evaluation import mean_ci95, paired_difference, per_task_scores, task_signature
    from mmaml.training.run_dir import load_run

    if len(args.runs) < 2:
        raise ConfigError("compare needs at least two run folders: the reference first, then the others")
    if len({Path(r).resolve() for r in args.runs}) < len(args.runs):
        raise ConfigError("a run folder is given twice; name each run once")
    _check_eval_flags(args.steps, args.output)
    if args.saved and (args.tasks is not None or args.seed is not None or args.steps is not None
                       or args.split != "test"):
        raise ConfigError("--saved pairs the evaluations the runs already hold, with their tasks, seed and steps; "
                          "drop --tasks, --seed, --steps and --split, or drop --saved to evaluate again")
    loaded = [load_run(run) for run in args.runs]
    reference_config = loaded[0][0]
    reference_tasks = task_signature(reference_config)
    for run, (config, _, _) in zip(args.runs[1:], loaded[1:]):
        signature = task_signature(config)
        if signature != reference_tasks:
            key = next(k for k in signature if signature[k] != reference_tasks.get(k))
            raise ConfigError(f"{run} and {args.runs[0]} draw different tasks ({key}: {signature[key]!r} vs "
                              f"{reference_tasks[key]!r}); compare runs of one task distribution")
    saved = None
    if args.saved:
        from mmaml.training.saved_evaluation import check_same_tasks, load_saved_scores

        saved = [load_saved_scores(run, state["iteration"]) for run, (_, _, state) in zip(args.runs, loaded)]
        check_same_tasks(args.runs, saved)
    if reference_config.task == "rl":
        if args.split != "test":
            raise ConfigError(f"--split {args.split}: RL goals are drawn fresh and have no splits; drop --split")
        from mmaml.cli.rl_commands import rl_compare

        rl_compare(args.runs, loaded, args.tasks, args.seed, args.steps, args.output, saved=saved)
        return 0
    images = isinstance(reference_config, ClassificationConfig)
    if args.split != "test" and not images:
        raise ConfigError(f"--split {args.split}: regression tasks are drawn fresh and have no class splits; "
                          "use --split only for image runs")
    metric = "accuracy" if images else "mse"
    if saved is not None:
        scores, mode, mode_names = [s.scores[0] for s in saved], saved[0].mode, saved[0].modes
        seed, steps = saved[0].seed, saved[0].inner_steps
    else:
        tasks = build_tasks(reference_config, split=args.split) if images else build_tasks(reference_config)
        num_tasks = args.tasks or reference_config.eval_tasks
        seed = reference_config.eval_seed if args.seed is None else args.seed
        steps = reference_config.eval_inner_steps if args.steps is None else args.steps
        scores = []
        for _, model, _ in loaded:
            _, adapted, mode = per_task_scores(model, tasks, num_tasks, seed, steps, metric)
            scores.append(adapted)
        mode_names = tasks.modes
    num_tasks = len(mode)  # rounded up to a multiple of the number of modes
    result = {"num_tasks": num_tasks, "seed": seed, "inner_steps": steps, "metric": metric, "split": args.split,
              "reference": str(args.runs[0]), "runs": {}}
    print(f"{num_tasks} {args.split} tasks (the same for every run), {steps} inner steps; post-adaptation {metric}, "
          f"mean ± 95% interval; difference = run - {args.runs[0]} on the same tasks")
    print(f"{'run':<44} {'mean':>17} {'difference':>20}")
    for i, run in enumerate(args.runs):
        own = mean_ci95(scores[i])
        entry = {"post_adaptation": own}
        line = f"{str(run)[-44:]:<44} {own['mean']:>8.4f} ± {own['ci95']:<6.4f}"
        if i > 0:
            diff = paired_difference(scores[0], scores[i], mode, mode_names)
            entry["difference"] = diff
            line += f" {diff['mean']:>+10.4f} ± {diff['ci95']:<6.4f}  " + ", ".join(
                f"{name} {v['mean']:+.4f} ± {v['ci95']:.4f}" for name, v in diff["per_mode"].items())
        result["runs"][str(run)] = entry
        print(line)
    if args.output:
        from mmaml.training.checkpoint import atomic_write_text

        atomic_write_text(args.output, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


def cmd_eval(args) -> int:
    from mmaml.training.distributed import Distributed

    dist = Distributed.from_environment()  # torchrun's ranks share the test tasks; a single process otherwise
    try:
        result = run_eval(args.run, args.tasks, args.steps, args.seed, args.output, dist=dist,
                          checkpoint=args.checkpoint)
        return _report_eval(args, result) if dist.is_main else 0
    finally:
        dist.close()


def _report_eval(args, result) -> int:
    from mmaml.training.evaluation import format_table

    output = args.output or args.run / "eval.json"
    print(f"{result['num_tasks']} test tasks, {result['inner_steps']} inner steps, "
          f"after {result['iterations']} meta-iterations (mean ± 95% interval)")
    if result.get("metric") == "return":
        from mmaml.rl.evaluation import format_returns_table

        print(format_returns_table({args.run.name or str(args.run): result}))
        refs = result["reference_returns"]
        print("references on the same goals: " + ", ".join(
            f"{name.replace('_', ' ')} {v['mean']:.2f} ± {v['ci95']:.2f}" for name, v in refs.items()))
    else:
        print(format_table({args.run.name or str(args.run): result}))
    if "mode_identification" in result:
        from mmaml.training.mode_identification import format_mode_identification

        print(format_mode_identification(result["mode_identification"]))
    print(f"wrote {output}")
    return 0


def plot_runs(run_dirs: Sequence[Path], out_dir: Path) -> list[Path]:
    """Regression: Figure 2 (fits of every run on the same tasks, t-SNE of MuMoMAML
    embeddings). Image classification: the t-SNE of each MuMoMAML run's embeddings."""
    from mmaml.metalearners import MuMoMAML
    from mmaml.plotting.figure2 import plot_figure2, plot_tsne
    from mmaml.training.builder import build_tasks
    from mmaml.training.config import ClassificationConfig
    from mmaml.training.run_dir import load_run

    loaded = [load_run(d) for d in run_dirs]
    first = loaded[0][0]
    if first.task == "rl":
        from mmaml.cli.rl_commands import rl_plot

        return rl_plot(run_dirs, loaded, out_dir)
    for d, (config, _, _) in zip(run_dirs, loaded):
        if type(config) is not type(first) or config.mode_names != first.mode_names:
            raise ConfigError(f"cannot compare {d} ({config.mode_names}) with {run_dirs[0]} ({first.mode_names}): "
                              "different tasks")
    models = {}
    for d, (_, model, _) in zip(run_dirs, loaded):
        name = d.resolve().name
        models[name if name not in models else str(d)] = model
    if not isinstance(first, ClassificationConfig):
        return plot_figure2(models, build_tasks(first), out_dir, steps=first.eval_inner_steps)
    mumo = {n: m for n, m in models.items() if isinstance(m, MuMoMAML)}
    if not mumo:
        raise ConfigError("image-classification plots show MuMoMAML task embeddings; none of the runs is MuMoMAML")
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = build_tasks(first, split="test")
    return [plot_tsne(m, tasks, out_dir, per_mode=100, fname="tsne.png" if len(mumo) == 1 else f"tsne_{n}.png")
            for n, m in mumo.items()]


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


def cmd_data(args) -> int:
    """``mmaml data list`` / ``mmaml data fetch NAME``."""
    from mmaml.data.paths import data_root
    from mmaml.data.registry import DATASETS, FETCHERS, NO_FETCHER

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
    from mmaml.cli.reproduce_commands import cmd_reproduce as run

    return run(args)
