"""What every item of the LLZO validation shares: where the data are, the run size, the output
folders, the trained models, the saved results of other items, and small helpers.

An item is a module ``itemN_name.py`` in this folder with

* ``NUMBER`` (int) and ``TITLE`` (str);
* ``SETTINGS``: ``{"smoke": {...}, "cpu": {...}, "paper": {...}}``, the run size of that item;
* ``run(ctx) -> dict``: does the work, returns a JSON-serialisable result (numbers in the units
  their keys name), writes its PNG figures with ``ctx.figure(name)``;
* ``rows(result, ctx) -> list[dict]``: lines of the report's summary table, each
  ``{"quantity", "paper", "ours", "run"}`` (strings, units included);
* ``section(result, ctx) -> str``: the item's Markdown section (without its heading): what was
  run, a table, the figures (``ctx.figure_link(name)``), and where and why we differ.

``run.py`` runs the items in order, saves each result with its wall time in
``out/<size>/results/itemN.json``, skips items whose result is saved (``--force`` reruns them)
and writes the report.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = Path(os.environ.get("NEPZBL_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data" / "llzo"
SIZES = ("smoke", "cpu", "paper")

#: the paper's models (``../shared/data/llzo``): name -> file name
PAPER_MODELS = {"NEPstd": "NEPstd.txt", "NEP802": "NEP802.txt", "NEP802-ZBL": "NEP802-ZBL.txt"}
#: the models item 2 trains: name -> sub-folder of item 2's output
TRAINED_MODELS = {"NEP25-ZBL": "paper_zbl", "NEP25-ZBL-suggested": "suggested_zbl"}


class ItemNotRun(RuntimeError):
    """An item needs the result of another item that has not run at this size."""


def import_package():
    """``nepzbl_plugin`` as installed, else from this checkout (after ``tools/dev_build.sh``)."""
    try:
        import nepzbl_plugin
    except ImportError:
        sys.path.insert(0, str(REPO))
        import nepzbl_plugin
    return nepzbl_plugin


@dataclass
class Context:
    """One run of the validation: its size, folders, cores and log."""

    size: str
    out: Path  # raw outputs of this size: out/<size>/ (git-ignored)
    report_dir: Path  # REPORT.md and figures/ go here
    threads: int = 2  # cores this run may use
    seed: int = 0
    log: Callable[[str], None] = print
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self):
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}, not {self.size!r}")
        self.out = Path(self.out)
        self.report_dir = Path(self.report_dir)

    @property
    def device(self) -> str:
        """``"cuda"`` when nepzbl's CUDA engine has a GPU, else ``"cpu"``: where MD and training
        run (``paper`` needs the GPU)."""
        return "cuda" if gpu_name() else "cpu"

    # -- settings and folders -------------------------------------------------------------
    def settings(self, item) -> dict:
        """The ``SETTINGS`` of ``item`` (a module, or its ``SETTINGS`` dict) at this size."""
        settings = item if isinstance(item, dict) else item.SETTINGS
        return dict(settings[self.size])

    def item_dir(self, number: int) -> Path:
        """Raw outputs of item ``number`` (created)."""
        folder = self.out / f"item{number}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def figure(self, name: str) -> Path:
        """Where to save the figure ``name`` (a ``.png`` file name) for the report."""
        folder = self.report_dir / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def save_figure(self, fig, name: str) -> Path:
        """Save a matplotlib figure as ``figures/name`` atomically (nepzbl's writer)."""
        import_package()
        from nepzbl_plugin.io.atomic import atomic_temporary_path

        path = self.figure(name)
        with atomic_temporary_path(path, suffix=".png") as temporary:
            fig.savefig(temporary, dpi=110)
        return path

    def figure_link(self, name: str, caption: str) -> str:
        """Markdown that shows ``figures/name`` in REPORT.md."""
        return f"![{caption}](figures/{name})"

    # -- models ---------------------------------------------------------------------------
    def paper_model(self, name: str) -> Path:
        return DATA / PAPER_MODELS[name]

    def trained_model(self, name: str) -> Path:
        """The nep.txt item 2 trained (``NEP25-ZBL`` with the paper's ``zbl 1.8``,
        ``NEP25-ZBL-suggested`` with ``nepzbl zbl suggest``'s ZBL)."""
        path = self.out / "item2" / TRAINED_MODELS[name] / "nep.txt"
        if not path.is_file():
            raise ItemNotRun(f"{path} does not exist: run item 2 at size {self.size} first")
        return path

    def model(self, name: str) -> Path:
        """Any model by name: the paper's three or the two item 2 trains."""
        return self.paper_model(name) if name in PAPER_MODELS else self.trained_model(name)

    # -- results of other items -----------------------------------------------------------
    def result_path(self, number: int) -> Path:
        return self.out / "results" / f"item{number}.json"

    def saved(self, number: int) -> dict | None:
        """The saved record of item ``number`` (``result``, ``wall_s``, ...) or None."""
        path = self.result_path(number)
        return json.loads(path.read_text()) if path.is_file() else None

    def result(self, number: int) -> dict:
        """The result of item ``number``; :class:`ItemNotRun` if it has not run."""
        record = self.saved(number)
        if record is None:
            raise ItemNotRun(f"item {number} has not run at size {self.size}")
        return record["result"]


# -- helpers items share ----------------------------------------------------------------------
def start_structure(cubic: bool = True):
    """A 192-atom LLZO frame of ``NEP25-ZBL/train.xyz`` with an orthogonal cell (nearly cubic
    when ``cubic``: lengths within 1 %; else the most tetragonal one), velocities dropped."""
    from ase.io import iread

    best, best_ratio = None, None
    for atoms in iread(str(DATA / "NEP25-ZBL" / "train.xyz")):
        cellpar = atoms.cell.cellpar()
        if len(atoms) != 192 or np.any(np.abs(cellpar[3:] - 90.0) > 1e-6):
            continue
        ratio = cellpar[:3].max() / cellpar[:3].min()
        if cubic and ratio < 1.01:
            best = atoms
            break
        if not cubic and (best_ratio is None or ratio > best_ratio):
            best, best_ratio = atoms, ratio
    if best is None:
        raise SystemExit(f"{DATA / 'NEP25-ZBL' / 'train.xyz'}: no suitable 192-atom frame")
    atoms = best.copy()
    atoms.calc = None
    atoms.set_velocities(np.zeros((len(atoms), 3)))
    return atoms


def write_text(path, text: str) -> None:
    """``text`` into ``path`` atomically (nepzbl's own writer), its folder created."""
    import_package()
    from nepzbl_plugin.io.atomic import atomic_write_text

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def write_json(path, data: dict) -> None:
    """``data`` as indented JSON, atomically (numpy numbers and arrays as plain ones)."""
    write_text(path, json.dumps(data, indent=1, default=_plain) + "\n")


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def suggested_zbl():
    """The paper's NEP25-ZBL ``nep.in`` and what ``nepzbl zbl suggest`` proposes for its 25
    configurations (radii below each pair's shortest distance in the data)."""
    import_package()
    from nepzbl_plugin.io.nep_in import read_nep_in
    from nepzbl_plugin.zbl import suggest_zbl

    nep_in = read_nep_in(DATA / "NEP25-ZBL" / "nep.in")
    suggestion = suggest_zbl(str(DATA / "NEP25-ZBL" / "train.xyz"), species=nep_in.types,
                             angular_cutoff=float(min(nep_in.angular_cutoffs)))
    return nep_in, suggestion


def machine() -> str:
    """One line naming this machine for the report."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {gpu_name() or 'no GPU'}"


@functools.cache
def gpu_name() -> str | None:
    """The GPU nepzbl's CUDA engine would use, or None."""
    import_package()
    from nepzbl_plugin.engine.cuda import cuda_available

    if not cuda_available():
        return None
    try:
        import subprocess

        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=20).stdout.split("\n")
        return names[0].strip() or "a CUDA GPU"
    except (OSError, subprocess.SubprocessError):
        return "a CUDA GPU"


def fmt(value, spec: str = ".3g", unit: str = "") -> str:
    """A number with its unit, or an en dash for None."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    text = format(value, spec)
    return f"{text} {unit}".rstrip()


def not_run_rows(not_run: dict, quantity: str, paper: str) -> list[dict]:
    """Summary rows for the models an item could not run (their model is missing: item 2);
    ``quantity`` is a format with ``{model}``."""
    return [{"quantity": quantity.format(model=model), "paper": paper,
             "ours": "not run (model missing: item 2)", "run": ""} for model in not_run]


def not_run_lines(not_run: dict) -> list[str]:
    """The report lines that name the models an item could not run, and why ([] if none)."""
    if not not_run:
        return []
    return ["Not run: " + "; ".join(f"{m} ({n})" for m, n in not_run.items()), ""]


def md_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
