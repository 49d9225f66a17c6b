"""Training runs of the PyTorch peers (neppo, TorchNEP) for ``bench_train.py``.

Each run happens in a child process of its own, started by ``bench_train.py`` in a run
directory holding ``train.xyz`` and GPUMD's ``nep.in``: a time budget can then stop it
together with the processes it starts (``torch.compile``'s workers), and no torch state is
carried from one run into the next or into nepzbl's process. Children::

    python benchmarks/peer_training.py train neppo DEVICE STEPS
    python benchmarks/peer_training.py train torchnep|torchnep-eager DEVICE EPOCHS
    python benchmarks/peer_training.py check neppo|torchnep MODEL XYZ

``torchnep`` is TorchNEP as it comes: on a GPU it ``torch.compile``s its kernels first (on an
H200 that alone took more than 60 s for LLZO); ``torchnep-eager`` is the same run with
``use_compile=False``, the package's own switch, so that its training speed is measured too.

``train`` runs the package's own nep.in runner with its defaults wherever GPUMD's nep.in
does not say otherwise; the run length is the only setting given. It prints one line
``peer-timing import S train S``: the seconds of ``import torch`` and the package, and of
the training itself (the package's reading of the data and its neighbour lists included).
``check`` evaluates a model with the peer's own code in float64 on the CPU and prints the
energies and forces as JSON, so that the parent can compare them with nepzbl's evaluation of
the same file.

The functions that rewrite nep.in and read the log are plain text handling, without torch.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

# What each peer writes: neppo its current model as nep.txt (nep_best.txt only with a
# test.xyz), TorchNEP the model of its lowest training loss as output/nep_best.txt (the file
# its documentation names as the result) and the last epoch's as output/nep_final.txt.
MODEL_FILE = {"neppo": Path("nep.txt"), "torchnep": Path("output/nep_best.txt"),
              "torchnep-eager": Path("output/nep_best.txt")}
# The run length each package counts in: neppo's nep.in ``generation`` is its number of
# AdamW steps (a cosine learning-rate schedule over them); TorchNEP's ``epoch`` is its number
# of epochs (one AdamW step per batch; ReduceLROnPlateau, which does not depend on it).
LENGTH_UNIT = {"neppo": "steps", "torchnep": "epochs", "torchnep-eager": "epochs"}
# The package each peer code runs (its version is the row's)
PACKAGE = {"neppo": "neppo", "torchnep": "torchnep", "torchnep-eager": "torchnep"}
# TorchNEP logs "Epoch   12 | loss ...", neppo a table row per report starting with the step
EPOCH_RE = re.compile(r"Epoch\s+(\d+)\s+\|")
STEP_RE = re.compile(r"^\s*(\d+)\s+\S", re.MULTILINE)
TIMING_RE = re.compile(r"^peer-timing import ([0-9.]+) train ([0-9.]+)$", re.MULTILINE)


def _keyword(line: str) -> str:
    words = line.split("#")[0].split()
    return words[0].lower() if words else ""


def neppo_nep_in(gpumd_text: str, steps: int) -> str:
    """GPUMD's nep.in for neppo with ``steps`` AdamW steps.

    ``generation`` (GPUMD's SNES generations) becomes neppo's step count. Four reports per
    run (``output_interval``), so that a run stopped by a budget has still written a model;
    ``seed 42`` is neppo's default, written out so that runs of different lengths start from
    the same parameters. Everything else stays as GPUMD's nep.in has it (neppo ignores the SNES
    keywords ``population`` and the like with a warning)."""
    if steps < 1:
        raise ValueError(f"neppo needs at least one step, not {steps}")
    lines = [ln for ln in gpumd_text.splitlines()
             if _keyword(ln) not in ("generation", "output_interval", "seed")]
    lines += [f"generation {steps}", f"output_interval {max(1, steps // 4)}", "seed 42"]
    return "\n".join(lines) + "\n"


def torchnep_nep_in(gpumd_text: str, epochs: int, keywords) -> tuple[str, list[str]]:
    """GPUMD's nep.in for TorchNEP with ``epochs`` epochs, and the keywords dropped.

    TorchNEP refuses any keyword outside its list (``torchnep.data.NEP_IN_KEYWORDS``), GPUMD's
    SNES settings (``population``, ``generation``) among them: those lines are dropped, which
    leaves TorchNEP's defaults for its training (lr 0.01, plateau schedule, lambda_e 0.01,
    lambda_f 1, lambda_v 0.01); ``epoch`` is the only setting added."""
    if epochs < 1:
        raise ValueError(f"TorchNEP needs at least one epoch, not {epochs}")
    known = {k.lower() for k in keywords}
    kept, dropped = [], []
    for line in gpumd_text.splitlines():
        key = _keyword(line)
        if not key:
            continue
        if key in known and key != "epoch":
            kept.append(line)
        else:
            dropped.append(key)
    return "\n".join(kept + [f"epoch {epochs}"]) + "\n", dropped


def parse_timing(log_text: str) -> tuple[float, float] | None:
    """(import seconds, training seconds) from a child's log, or None when the child did not
    finish (stopped by its budget, or failed)."""
    found = TIMING_RE.findall(log_text)
    if not found:
        return None
    imported, trained = found[-1]
    return float(imported), float(trained)


def last_step(code: str, log_text: str) -> int | None:
    """The last step (neppo) or epoch (TorchNEP) a child's log reports, or None."""
    pattern = EPOCH_RE if PACKAGE.get(code) == "torchnep" else STEP_RE
    found = pattern.findall(log_text)
    return int(found[-1]) if found else None


def _train(code: str, device: str, length: int) -> None:
    t0 = time.monotonic()
    if code == "neppo":
        import logging

        from neppo.nep_in import run

        imported = time.monotonic() - t0
        logger = logging.getLogger("neppo")  # its log to our stdout, as its command does
        logger.addHandler(logging.StreamHandler(sys.stdout))
        logger.setLevel(logging.INFO)
        t1 = time.monotonic()
        Path("nep.in").write_text(neppo_nep_in(Path("nep.gpumd.in").read_text(), length))
        run(".", device=device)
    elif PACKAGE.get(code) == "torchnep":
        from torchnep import __version__, train_nep
        from torchnep.data import NEP_IN_KEYWORDS

        imported = time.monotonic() - t0
        t1 = time.monotonic()
        text, dropped = torchnep_nep_in(Path("nep.gpumd.in").read_text(), length,
                                        NEP_IN_KEYWORDS)
        Path("nep.in").write_text(text)
        print(f"torchnep {__version__}: nep.in without {', '.join(dropped) or 'nothing'}",
              flush=True)
        # run_seed: TorchNEP draws a fresh seed per run by default; fixed here so that runs of
        # different lengths start from the same weights (the seed is no training setting).
        # valid_ratio/valid_file unset: no frames are taken out of the training set, as for
        # nepzbl and neppo; the held-out frames are evaluated afterwards by nepzbl.
        # use_compile None is TorchNEP's default (compile on a GPU); False runs eager
        train_nep("nep.in", "train.xyz", output_dir="output", device=device, run_seed=42,
                  use_compile=False if code == "torchnep-eager" else None)
    else:
        raise SystemExit(f"peer_training: unknown peer {code!r}")
    print(f"peer-timing import {imported:.3f} train {time.monotonic() - t1:.3f}", flush=True)


def _check(code: str, model: str, xyz: str) -> None:
    """Energies (eV, total) and forces (eV/Å) of every frame of ``xyz`` by the peer's own
    evaluator, float64 on the CPU (as ``bench_peers.py`` runs them, without its imports: the
    device has no tqdm), as one JSON line."""
    import torch
    from ase.io import read

    torch.set_num_threads(1)
    frames = read(xyz, ":")
    energies, forces = [], []
    if code == "neppo":
        from neppo import predict, read_model

        for result in predict(read_model(model, dtype=torch.float64), frames):
            energies.append(float(result.info["energy_predicted"][0]) * len(result))
            forces.append(result.arrays["force_predicted"].tolist())
    elif PACKAGE.get(code) == "torchnep":
        from torchnep.ase_calculator import NEP

        calculator = NEP(model, dtype="float64", device="cpu")
        for atoms in frames:
            atoms.calc = calculator
            energies.append(float(atoms.get_potential_energy()))
            forces.append(atoms.get_forces().tolist())
    else:
        raise SystemExit(f"peer_training: unknown peer {code!r}")
    print(json.dumps({"energy": energies, "forces": forces}))


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 4 and argv[0] == "train":
        _train(argv[1], argv[2], int(argv[3]))
    elif len(argv) == 4 and argv[0] == "check":
        _check(argv[1], argv[2], argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
