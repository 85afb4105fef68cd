"""The ``mmaml`` command line: train, eval, compare, plot, predict, presets, demo, reproduce, data."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from mmaml.cli import commands
from mmaml.cli.predict import cmd_predict
from mmaml.errors import TrainingDiverged, UserError

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


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _list_of(kind):
    def parse(text: str):
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None

    return parse


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

    p = sub.add_parser("eval", help="score a run after modulation and after each inner step: query MSE (regression), "
                                    "accuracy (images) or average return (meta-RL)")
    p.add_argument("run", metavar="DIR", type=Path)
    p.add_argument("--tasks", type=_positive_int, metavar="N", help="test tasks (default: the config's eval_tasks)")
    p.add_argument("--steps", type=_int, metavar="S", help="inner steps (default: the config's eval_inner_steps)")
    p.add_argument("--seed", type=_int, metavar="S", help="evaluation seed (default: the config's eval_seed)")
    p.add_argument("--output", type=Path, metavar="FILE",
                   help="where to write the result (default: DIR/eval.json; DIR/eval_best.json for --checkpoint best)")
    p.add_argument("--checkpoint", choices=["last", "best"], default="last",
                   help="the last checkpoint, or the best by validation (best.pt, meta-RL runs that validate)")

    p = sub.add_parser("compare", help="score runs on the same test tasks; paired differences to the first run")
    p.add_argument("runs", metavar="DIR", type=Path, nargs="+", help="the reference run first, then the others")
    p.add_argument("--tasks", type=_positive_int, metavar="N", help="test tasks (default: the reference's eval_tasks)")
    p.add_argument("--steps", type=_int, metavar="S", help="inner steps (default: the reference's eval_inner_steps)")
    p.add_argument("--seed", type=_int, metavar="S", help="evaluation seed (default: the reference's eval_seed)")
    p.add_argument("--split", choices=["test", "val", "train"], default="test",
                   help="image runs: the classes the tasks are drawn from (val to choose settings, test to report)")
    p.add_argument("--saved", action="store_true",
                   help="pair the runs' saved evaluations (from 'mmaml eval DIR', made on the same tasks) instead of "
                        "evaluating again")
    p.add_argument("--output", type=Path, metavar="FILE", help="also write the result as JSON")

    p = sub.add_parser("plot", help="a run's figures: Figure 2 panels (regression), the t-SNE (images), or the "
                                    "adaptation curve, trajectories and t-SNE (meta-RL)")
    p.add_argument("run", metavar="DIR", type=Path)
    p.add_argument("--compare", nargs="*", type=Path, default=[], metavar="DIR", help="more runs drawn on the same tasks")
    p.add_argument("--out", type=Path, metavar="FIGDIR", help="where the PNGs go (default: DIR/figures)")

    p = sub.add_parser("data", help="list the image data sets, or download one (checksums verified)")
    data = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    data.required = True
    d = data.add_parser("list", help="the data sets, whether each is in the data folder, and how to get it")
    d.add_argument("--root", type=Path, metavar="DIR", help="data folder (default: $MMAML_DATA or ~/.mmaml/data)")
    d = data.add_parser("fetch", help="download a data set's official archives into the data folder and verify them")
    d.add_argument("name", metavar="NAME")
    d.add_argument("--root", type=Path, metavar="DIR", help="data folder (default: $MMAML_DATA or ~/.mmaml/data)")

    p = sub.add_parser("demo", help="short 2-mode run of MAML, Multi-MAML and MuMoMAML-FiLM, side by side")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR")
    p.add_argument("--iterations", type=_positive_int, default=DEMO_ITERATIONS, metavar="N")
    p.add_argument("--tasks", type=_positive_int, default=2000, metavar="N", help="test tasks")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("predict", help="adapt a trained run to one task given by files and predict its query inputs")
    p.add_argument("run", type=Path, metavar="DIR")
    p.add_argument("--support", required=True, type=Path, metavar="PATH",
                   help="regression: .csv/.npy of x,y rows; images: a folder with one subfolder per class")
    p.add_argument("--query", required=True, type=Path, metavar="PATH",
                   help="regression: .csv/.npy of x values; images: a folder of image files")
    p.add_argument("--steps", type=_non_negative_int, metavar="N", help="inner steps (default: the run's eval steps)")
    p.add_argument("--out", type=Path, metavar="FILE", help="CSV of the predictions (default: standard output)")
    p.add_argument("--dataset", metavar="NAME", help="image runs: the data set the images are like (read as it "
                   "was; needed when the run has several)")

    p = sub.add_parser("reproduce", help="reproduce the paper's Table 1, Figure 2, image-classification comparison or Figure 3 (meta-RL)")
    what = p.add_subparsers(dest="what", metavar="WHAT", parser_class=_Parser)
    what.required = True
    t = what.add_parser("table1", help="train and evaluate every Table 1 row (resumable) and write the table")
    t.add_argument("--out", required=True, type=Path, metavar="DIR")
    t.add_argument("--iterations", type=_positive_int, default=70000, metavar="N")
    t.add_argument("--rows", type=_list_of(str), metavar="ROW,...",
                   help="subset of maml,multi-maml,softmax,sigmoid,film (default: all)")
    t.add_argument("--modes", type=_list_of(int), metavar="M,...", help="subset of 2,3,5 (default: all)")
    t.add_argument("--eval-tasks", type=_positive_int, default=20000, metavar="N",
                   help="fresh test tasks per row (default 20000: a few seconds per row, a tight interval)")
    t.add_argument("--jobs", type=_positive_int, default=1, metavar="J", help="rows trained at once")
    t.add_argument("--seeds", type=_list_of(int), metavar="S,...",
                   help="train each row once per seed, in <preset>-seed<S>; the table adds the spread over seeds")
    _add_row_overrides(t, "device=cuda")
    t.add_argument("--no-progress", action="store_true")
    i = what.add_parser("images", help="train and evaluate the image-classification comparison and write its table")
    i.add_argument("--out", required=True, type=Path, metavar="DIR")
    i.add_argument("--scale", choices=["cpu", "paper"], default="cpu")
    i.add_argument("--modes", type=_list_of(int), metavar="M,...", help="subset of 2,3,5 (default: all of the scale)")
    i.add_argument("--settings", type=_list_of(str), metavar="S,...", help="subset of 5w1s,5w5s,20w1s")
    i.add_argument("--methods", type=_list_of(str), metavar="M,...", help="subset of maml,multi-maml,mumomaml")
    i.add_argument("--iterations", type=_positive_int, metavar="N", help="default: each preset's")
    i.add_argument("--eval-tasks", type=_positive_int, default=1000, metavar="N")
    i.add_argument("--jobs", type=_positive_int, default=1, metavar="J")
    _add_row_overrides(i, "device=cuda")
    i.add_argument("--no-progress", action="store_true")
    r = what.add_parser("figure3", help="train and evaluate the meta-RL rows of Figure 3 (resumable), write the "
                        "table and figures")
    r.add_argument("--out", required=True, type=Path, metavar="DIR")
    r.add_argument("--envs", type=_list_of(str), metavar="E,...",
                   help="subset of navigation,cheetah-speed,cheetah-location (default: all)")
    r.add_argument("--methods", type=_list_of(str), metavar="M,...", help="subset of maml,mumomaml (default: both)")
    r.add_argument("--iterations", type=_positive_int, metavar="N", help="default: each preset's")
    r.add_argument("--eval-tasks", type=_positive_int, default=400, metavar="N",
                   help="test goals per row, the same for both methods (default 400)")
    r.add_argument("--jobs", type=_positive_int, default=1, metavar="J", help="rows trained at once")
    r.add_argument("--checkpoint", choices=["last", "best"], default="last",
                   help="best: also score each row's best checkpoint by validation, into figure3_best.md/.csv")
    _add_row_overrides(r, "sim_threads=2")
    r.add_argument("--no-progress", action="store_true")
    f = what.add_parser("figure2", help="Figure 2 panels from the trained rows in DIR")
    f.add_argument("--out", required=True, type=Path, metavar="DIR", help="the folder of 'reproduce table1'")
    f.add_argument("--figures", type=Path, metavar="FIGDIR", help="where the PNGs go (default: DIR/figures)")
    return parser


def _add_row_overrides(parser, example: str) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every row (repeatable; give the same ones to resume; a folder's "
                             f"rows trained with other values are refused), e.g. {example}")



COMMANDS = {
    "presets": commands.cmd_presets,
    "train": commands.cmd_train,
    "eval": commands.cmd_eval,
    "compare": commands.cmd_compare,
    "plot": commands.cmd_plot,
    "demo": commands.cmd_demo,
    "data": commands.cmd_data,
    "reproduce": commands.cmd_reproduce,
    "predict": cmd_predict,
}


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `kill PID` (SIGTERM) stops a command the way Ctrl-C does: training keeps its
    # last checkpoint, `reproduce` stops the rows it started and writes its table
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main_thread else None
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("mmaml: interrupted; rerun the same command to continue from the last checkpoint", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"mmaml: error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        print(f"mmaml: error: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:  # a path that cannot be read or written
        if exc.errno == errno.ENOSPC:
            print("mmaml: error: no space left on the device while writing; the previous checkpoint is intact: "
                  "free some space and rerun with --resume", file=sys.stderr)
            return 2
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"mmaml: error: {exc.strerror or exc}{where}; check the path and its permissions", file=sys.stderr)
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
