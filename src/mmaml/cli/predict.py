"""``mmaml predict``: adapt a trained run to one task given by files, and print or write its predictions.

The file formats are those of :mod:`mmaml.supervised.predict`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mmaml.engine.checkpoint import atomic_write_text
from mmaml.kinds import kind_of
from mmaml.runs import load_run
from mmaml.supervised.predict import InputFileError


def cmd_predict(args) -> int:
    if args.out is not None:  # checked before any work, as eval's --output is
        out = Path(args.out)
        if out.is_dir():
            raise InputFileError(f"--out {out} is a folder; give a file name such as {out / 'predictions.csv'}")
        if not out.parent.is_dir():
            raise InputFileError(f"--out {out}: folder {out.parent} does not exist; create it first")
    config, model, state = load_run(args.run)
    model.config, model.iteration = config, int(state["iteration"])
    model.eval()
    predict = kind_of(config).predict
    if predict is None:
        raise InputFileError(f"{args.run} is a meta-RL run; predict adapts regression and image-classification runs")
    if getattr(model, "needs_mode", False):
        raise InputFileError(f"{args.run} is a Multi-MAML run, which needs each task's mode; predict serves MAML and "
                             "MuMoMAML runs")
    steps = config.eval_inner_steps if args.steps is None else args.steps  # as mmaml eval adapts
    text = predict(config, model, state, args.support, args.query, steps, getattr(args, "dataset", None))
    if args.out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(Path(args.out), text)
        print(f"wrote {args.out}")
    return 0
