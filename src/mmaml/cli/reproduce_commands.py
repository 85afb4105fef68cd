"""``mmaml reproduce``: train and evaluate the paper's tables and figures resumably, then write them."""

from __future__ import annotations

import time
from pathlib import Path

from mmaml.errors import ConfigError
from mmaml.kinds import build_tasks
from mmaml.plotting.figure2 import plot_fits, plot_tsne
from mmaml.reproduction import figure3, images, table1
from mmaml.reproduction.runner import check_rows_config, run_rows
from mmaml.runs import load_run


def cmd_reproduce(args) -> int:
    if args.what == "table1":
        return reproduce_table1(args)
    if args.what == "images":
        return reproduce_images(args)
    if args.what == "figure3":
        return reproduce_figure3(args)
    return reproduce_figure2(args.out, args.figures or args.out / "figures")


def _run_and_tabulate(args, rows, all_rows, write_table, table: str, data: str) -> int:
    """Train/evaluate ``rows`` resumably into ``args.out``, then (even if interrupted) write the table.

    The table holds every row of ``all_rows`` evaluated in ``args.out``, so rows
    run by separate commands (or on separate days) end up in one table.
    """

    overrides = getattr(args, "set", None) or ()
    statuses = check_rows_config(args.out, rows, args.eval_tasks, overrides)  # refused before the table is touched
    started = time.time()
    try:
        run_rows(args.out, rows, args.iterations, args.eval_tasks, jobs=args.jobs, progress=not args.no_progress,
                 overrides=overrides, statuses=statuses)
    finally:
        if args.out.exists():
            records = write_table(args.out, all_rows)
            print(f"wrote {args.out / table} and {args.out / data} ({len(records)} rows)")
    print(f"done in {time.time() - started:.0f}s")
    print((args.out / table).read_text())
    return 0


def reproduce_images(args) -> int:
    rows = images.select_image_rows(args.scale, args.modes, args.settings, args.methods)
    everything = images.select_image_rows(args.scale, None, None, None)
    return _run_and_tabulate(args, rows, everything, images.write_table, "images.md", "images.json")


def reproduce_figure3(args) -> int:
    rows = figure3.select_rl_rows(args.envs, args.methods)
    everything = figure3.select_rl_rows(None, None)
    figure3.check_rows(everything)
    code = _run_and_tabulate(args, rows, everything, figure3.write_table, "figure3.md", "figure3.csv")
    for path in figure3.write_figures(args.out, everything):
        print(f"wrote {path}")
    if args.checkpoint == "best":  # the same rows, each scored again at its best checkpoint by validation
        figure3.evaluate_best(args.out, rows, args.eval_tasks)
        records = figure3.write_table(args.out, everything, "best")
        name = figure3.table_name("best")
        print(f"wrote {args.out / (name + '.md')} and {args.out / (name + '.csv')} ({len(records)} rows)")
        print((args.out / f"{name}.md").read_text())
    return code


def reproduce_table1(args) -> int:
    rows = table1.select_rows(args.rows, args.modes, args.seeds)
    seeds = sorted(set(args.seeds or []) | set(table1.seeds_in(args.out)))  # seeded rows of earlier commands stay in the table
    everything = table1.select_rows(None, None) + (table1.select_rows(None, None, seeds) if seeds else [])
    return _run_and_tabulate(args, rows, everything, table1.write_table, "table1.md", "table1.csv")


def reproduce_figure2(out: Path, fig_dir: Path) -> int:
    names = {"maml": "MAML", "multi-maml": "Multi-MAML", "film": "MuMoMAML-FiLM"}
    runs = {label: out / f"regression-2modes-{row}" for row, label in names.items()}
    missing = [str(d) for d in runs.values() if not (d / "checkpoint.pt").exists()]
    if missing:
        raise ConfigError(f"Figure 2 needs the trained 2-mode rows; missing {', '.join(missing)}; "
                          f"run 'mmaml reproduce table1 --out {out} --modes 2 --rows maml,multi-maml,film' first")
    loaded = {label: load_run(d) for label, d in runs.items()}
    fig_dir.mkdir(parents=True, exist_ok=True)
    config = loaded["MuMoMAML-FiLM"][0]
    paths = plot_fits({k: v[1] for k, v in loaded.items()}, build_tasks(config), fig_dir, steps=config.eval_inner_steps)
    for p in paths:
        print(f"wrote {p}")
    for n in (2, 3, 5):
        run_dir = out / f"regression-{n}modes-film"
        if (run_dir / "checkpoint.pt").exists():
            cfg, model, state = load_run(run_dir)
            done = int(state["iteration"])
            path = plot_tsne(model, build_tasks(cfg), fig_dir, fname=f"figure2c_tsne_{n}modes.png", iterations=done)
            print(f"wrote {path} ({n} modes, MuMoMAML-FiLM trained {done:,} of {cfg.iterations:,} meta-iterations)")
    return 0
