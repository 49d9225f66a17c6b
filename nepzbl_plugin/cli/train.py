"""``nepzbl train``: GPUMD-compatible training from nep.in + train.xyz."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import NepzblError

__all__ = ["register", "TrainingProgressBar", "TrainingInputError"]

_TRAIN_HELP = """\
Train a NEP(-ZBL) model from DIR/nep.in and DIR/train.xyz (DIR/test.xyz is optional), as
GPUMD's `nep` does: the same nep.in, the same loss, the same output files (nep.txt, loss.out,
energy/force/virial/stress_train.out and _test.out), plus parity_*.png and a restart checkpoint
(nepzbl_restart.json + nepzbl_restart.<hash>.npz, in place of GPUMD's nep.restart, which is
neither read nor written) from which an interrupted run resumes: run the same command again.

Without an `optimizer` line, nep.in trains with Adam on analytic gradients, then full-batch
L-BFGS, and stops when the loss stops improving (or at max_time / epochs; both are nep.in
keywords too, max_time in minutes); on a GPU a set of at most 32768 atoms trains with
full-batch L-BFGS from the start, which needs fewer evaluations there; `optimizer snes` runs
GPUMD's SNES with population/batch/generation; `optimizer lbfgs` runs full-batch L-BFGS;
`optimizer adam` the CPU's default everywhere. `prediction 1` evaluates DIR/nep.txt on
train.xyz instead of training. Each option below except --gpu-kernels, --adam-only, --fresh
and --no-progress is also a nep.in keyword (optimizer, max_time, epochs, learning_rate,
batch_size, seed, target_force_rmse, device); the option wins. See docs/training.md."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model from nep.in + train.xyz (GPUMD-compatible)",
        description=_TRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", nargs="?", default=".", metavar="DIR",
                   help="folder with nep.in and train.xyz; outputs go here (default: .)")
    # Every override goes through the range check of its nep.in keyword (_OPTION_KEYWORDS).
    p.add_argument("--optimizer", metavar="{adam,lbfgs,snes}",
                   help="override nep.in's optimizer")
    p.add_argument("--max-time", metavar="MINUTES",
                   help="stop after this many minutes of training (all resumed runs together)")
    p.add_argument("--epochs", metavar="N",
                   help="maximum epochs (SNES: generations); default: nep.in's generation")
    p.add_argument("--learning-rate", metavar="RATE", help="Adam learning rate (> 0)")
    p.add_argument("--batch-size", metavar="N", help="structures per mini-batch (>= 1)")
    p.add_argument("--seed", metavar="N", help="random seed (same seed, same run)")
    p.add_argument("--target-force-rmse", metavar="EV_PER_A",
                   help="stop once the train force RMSE is below this (eV/Å)")
    p.add_argument("--device", metavar="{auto,cpu,cuda}",
                   help="where to train: the GPU when one is present (auto, the default), or "
                        "forced; overrides nep.in's device")
    p.add_argument("--gpu-kernels", metavar="NAME", default="auto",
                   help="on the GPU, the per-atom kernels of the loss and its gradient: auto "
                        "(the default) times each at the start of each phase and keeps the "
                        "fastest; or one of thread, thread-wide, thread-unbounded, "
                        "warp-gradient, warp (a warp an atom). The same numbers either way")
    p.add_argument("--adam-only", action="store_true",
                   help="Adam until its own stopping rule, without the L-BFGS phase (on "
                        "the GPU too, whose default is otherwise L-BFGS)")
    p.add_argument("--fresh", action="store_true",
                   help="ignore an existing restart checkpoint and start again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


class TrainingInputError(NepzblError, ValueError):
    """Bad training input (reported as one line by the CLI)."""


# command-line option -> the nep.in keyword whose parser and range check it goes through
_OPTION_KEYWORDS = {
    "optimizer": "optimizer", "max_time": "max_time", "epochs": "epochs",
    "learning_rate": "learning_rate", "batch_size": "batch_size", "seed": "seed",
    "target_force_rmse": "target_force_rmse", "device": "device",
}


def _checked_options(args) -> dict:
    """The overrides given on the command line, each checked as its nep.in keyword is."""
    from ..io.nep_in import check_option

    values = {}
    for name, keyword in _OPTION_KEYWORDS.items():
        text = getattr(args, name)
        values[name] = (None if text is None
                        else check_option("--" + name.replace("_", "-"), keyword, text))
    return values


class TrainingProgressBar:
    """The progress bar of ``nepzbl train``: a ``progress`` callback for
    :func:`~nepzbl_plugin.train.train` that draws one tqdm bar per optimiser phase.

    The bar runs to whichever limit ends the run first, the epoch (generation) budget or
    max_time: its fraction is the larger of step/total and elapsed/max_time, so the ETA is
    that of the nearer limit. Without either it counts steps (the stopping rule ends the run).
    """

    _SCALE = 1000  # the bar counts permille of the run

    def __init__(self, file=None):
        self.file = file
        self.bar = None

    def __call__(self, event, **info):
        getattr(self, "_" + event)(**info)

    def _start(self, phase, unit, initial, total, max_time, elapsed):
        from tqdm import tqdm

        self._end()
        self.phase, self.unit, self.total, self.max_time = phase, unit, total, max_time
        self.step, self.elapsed, self.rmse = initial, elapsed, ""
        bounded = total is not None or max_time is not None
        self.bar = tqdm(total=self._SCALE if bounded else None, file=self.file,
                        desc=self._description(), initial=int(self.fraction() * self._SCALE),
                        dynamic_ncols=True, mininterval=1.0, unit=unit,
                        bar_format=("{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"
                                    "{postfix}" if bounded else None))
        self._refresh()

    def fraction(self) -> float:
        parts = []
        if self.total:
            parts.append(self.step / self.total)
        if self.max_time:
            parts.append(self.elapsed / self.max_time)
        return min(1.0, max(parts)) if parts else 0.0

    def _description(self) -> str:
        of = f"/{self.total}" if self.total is not None else ""
        limit = f", max_time {self.max_time / 60:g} min" if self.max_time else ""
        return f"{self.phase} {self.unit} {self.step}{of}{limit}"

    def _refresh(self):
        self.bar.set_description_str(self._description(), refresh=False)
        if self.rmse:
            self.bar.set_postfix_str(self.rmse, refresh=False)
        if self.bar.total is None:
            self.bar.n = self.step
            self.bar.refresh()
        else:
            self.bar.update(int(self.fraction() * self._SCALE) - self.bar.n)

    def _step(self, step, elapsed):
        self.step, self.elapsed = step, elapsed
        self._refresh()

    def _report(self, step, record, elapsed):
        from ..train.trainer import format_rmse

        self.step, self.elapsed = step, elapsed
        self.rmse = "train RMSE " + format_rmse(record)
        self._refresh()

    def _end(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _check_gpu_kernels(name: str) -> None:
    from ..train.cuda_backend import KERNELS

    if name != "auto" and name not in KERNELS:
        raise TrainingInputError(f"--gpu-kernels {name!r}: choose auto or one of "
                                 f"{', '.join(KERNELS)}")


def _read_inputs(directory: Path, input_name="train.xyz"):
    from ..io.nep_in import read_nep_in
    from ..io.xyz import read_train_xyz

    nep_in = read_nep_in(directory / "nep.in")
    train = read_train_xyz(directory / input_name, species=nep_in.types)
    test_path = directory / "test.xyz"
    test = read_train_xyz(test_path, species=nep_in.types) if test_path.exists() else None
    return nep_in, train, test


def _run_train(args) -> int:
    import signal

    from ..model import Model, read_model
    from ..train.trainer import check_header, format_rmse, predict, train

    options = _checked_options(args)  # bad values fail before any file is read
    _check_gpu_kernels(args.gpu_kernels)
    directory = Path(args.directory)
    nep_in, train_structures, test_structures = _read_inputs(directory)
    if nep_in.prediction:
        model_path = directory / "nep.txt"
        model = read_model(model_path)
        try:
            check_header(model, Model.from_nep_in(nep_in), str(model_path))
        except ValueError as err:
            raise TrainingInputError(str(err)) from None
        _, rmse = predict(model, train_structures, directory, which="train")
        record = {"rmse_energy_train": rmse["energy"], "rmse_force_train": rmse["force"],
                  "rmse_virial_train": rmse["virial"],
                  "has_virial_train": any(s.virial is not None for s in train_structures)}
        print(f"prediction with {model_path} on {len(train_structures)} structures: RMSE "
              f"{format_rmse(record)} (no shift)")
        return 0
    _print_zbl_setup(nep_in, train_structures)
    if args.fresh:
        for old in directory.glob("nepzbl_restart.*"):
            old.unlink()
    max_time = options.pop("max_time")
    if args.adam_only and options.get("optimizer") is None and nep_in.optimizer is None:
        options["optimizer"] = "adam"  # the GPU's default would be L-BFGS

    # A cluster's wall-time SIGTERM ends the run as Ctrl-C does: the trainer saves its
    # checkpoint and writes nep.txt, the *_train.out files and the parity plots.
    received = []

    def stop(signum, _frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _, history = train(
            train_structures, nep_in, test_structures, output_dir=directory,
            max_time=None if max_time is None else 60.0 * max_time,
            polish_after=0 if args.adam_only else None,
            progress=None if args.no_progress else TrainingProgressBar(),
            log=print,
            gpu_kernels=args.gpu_kernels,
            **options,
        )
    except NepzblError:
        raise
    except ValueError as err:
        raise TrainingInputError(str(err)) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"wrote {directory / 'nep.txt'}, loss.out, *_train.out"
          + (", *_test.out" if test_structures else "") + ", parity_*.png")
    if history.stop_reason == "interrupted":
        signum = received[-1] if received else signal.SIGINT
        print(f"nepzbl: stopped by {signal.Signals(signum).name}; checkpoint saved, run the "
              "same command to resume", file=sys.stderr)
        return 128 + int(signum)
    return 0


def _print_zbl_setup(nep_in, structures) -> None:
    """State which ZBL the run trains with, per pair and from where, and warn loudly when it
    switches inside distances the training data contain (issue: a flexible 'zbl' line copied
    without its zbl.in silently means universal ZBL)."""
    from ..train.residual import zbl_setup

    setup = zbl_setup(nep_in, structures)
    if setup is None:
        return
    print(f"ZBL: {setup.form}, from {setup.source}")
    for name, (inner, outer, data_min) in setup.pairs.items():
        seen = f"beyond {outer:.3f} Å" if data_min is None else f"{data_min:.3f} Å"
        flag = "  INSIDE THE DATA" if name in setup.inside else ""
        print(f"  {name:<8} switch {inner:.3f} to {outer:.3f} Å, data from {seen}{flag}")
    if setup.inside:
        print(f"WARNING: ZBL switches inside distances the training data contain for "
              f"{', '.join(setup.inside)}: ZBL forces carry "
              f"{100 * setup.force_variance_fraction:.3g} % of the label force variance, "
              "and the network has to learn to cancel them. 'nepzbl zbl suggest train.xyz' "
              "proposes radii below the data; a flexible 'zbl' line needs its zbl.in beside "
              "nep.in. 'nepzbl residual' shows the effect per pair.")
