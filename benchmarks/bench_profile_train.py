"""Where one filled call of the CUDA trainer spends its time (issue 14's 2000-structure epoch:
the filled rate must roughly double for its 20x target). Not part of the tests.

Without hardware counters, by differences of timed calls on the same batch (LLZO frames,
randomly displaced, as ``bench_train.py gpu-epoch``; the batch that fills the GPU):

* the predictions alone (``CudaBackend.predict``: the prediction pass, forces, energies);
* the loss alone (predictions and the loss on the device, no gradient);
* the loss and its gradient (the trainer's call): the gradient pass and the sum of the
  gradient rows are the difference;
* the same with the first layout (work arrays and gradient rows contiguous per thread, rows
  summed by one thread per parameter), with each other choice of per-atom kernels, and with
  each atom's pairs in the neighbour list's order instead of the neighbours' type order.

Under Nsight Compute, one launch of each kernel of interest is enough (``--repeats 0`` times
nothing: it makes the trainer's call once with the default kernels, which launches
``predict_kernel``, ``atoms_kernel`` and ``row_partials_kernel`` in that order, and once with
the warp kernel: ``predict_kernel`` again, then ``warp_gradient_kernel``)::

    PYTHONPATH=. python benchmarks/bench_profile_train.py
    ncu --clock-control none --launch-count 5 \\
        --kernel-name regex:'predict_kernel|atoms_kernel|row_partials_kernel|warp_gradient' \\
        --section SpeedOfLight --section Occupancy --section MemoryWorkloadAnalysis \\
        --section WarpStateStats --section SchedulerStats \\
        python benchmarks/bench_profile_train.py --repeats 0

Prints a table of milliseconds per call and atoms per second; ``--json`` writes it too.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import (  # noqa: E402  (the benchmark's own LLZO set and trainer loss)
    KERNEL_CHOICES,
    PAIR_ORDER_AB,
    _llzo_2000,
    _timed,
    _trainer_loss,
)

PREDICTIONS = "predictions (prediction pass, forces, energies)"
LOSS = "loss (predictions + loss on the device)"
GRADIENT = "loss + gradient (the trainer's call)"


def measure(structures_wanted: int | None, seconds: float, repeats: int) -> dict:
    from nepzbl_plugin.model import Model
    from nepzbl_plugin.train import trainer as T
    from nepzbl_plugin.train.cuda_backend import CudaBackend
    from nepzbl_plugin.train.loss import Labels

    nep_in, structures, rng = _llzo_2000()
    per_structure = len(structures[0].symbols)
    fill = max(1, min(len(structures), T.GPU_FULL_BATCH_ATOMS // per_structure))
    count = min(len(structures), structures_wanted or fill)
    structures = structures[:count]
    model = Model.from_nep_in(nep_in)
    model.parameters[:] = rng.normal(0, 0.1, model.num_parameters)
    labels = Labels.from_structures(structures, list(model.types))
    loss = _trainer_loss(nep_in, model)
    gpu = CudaBackend(model, structures)
    gpu.attach_loss(labels, loss)
    params, batch = model.parameters, np.arange(count)
    calls = {PREDICTIONS: functools.partial(gpu.predict, params, batch),
             LOSS: functools.partial(gpu.loss_and_gradient, params, batch, False),
             GRADIENT: functools.partial(gpu.loss_and_gradient, params, batch)}
    rows = {}
    if repeats <= 0:  # for a profiler: the trainer's call with the default and the warp kernel
        calls[GRADIENT]()  # predict_kernel, atoms_kernel, row_partials_kernel
        gpu.set_kernels(True, "warp")
        calls[GRADIENT]()  # predict_kernel, warp_gradient_kernel
        gpu.set_kernels()
        return {"structures": count, "atoms": count * per_structure, "ms": rows}

    def best(call):
        call()  # warm-up
        return min(1e3 / _timed(call, seconds)[0] for _ in range(repeats))

    for label, call in calls.items():
        rows[label] = best(call)
    gradient_call = calls[GRADIENT]
    gpu.set_interleaved(False)
    rows["loss + gradient, work arrays and gradient rows contiguous"] = best(gradient_call)
    gpu.set_interleaved(True)
    for label, choice in KERNEL_CHOICES[1:]:
        gpu.set_kernels(*choice)
        rows[f"loss + gradient, {label}"] = best(gradient_call)
    gpu.set_kernels()
    del gpu  # the same batch with each atom's pairs in the neighbour list's order
    listed = CudaBackend(model, structures, pair_order="list")
    listed.attach_loss(labels, loss)
    for label, gradient in PAIR_ORDER_AB:
        listed.set_kernels(True, gradient)
        rows[f"loss + gradient, {label}"] = best(
            functools.partial(listed.loss_and_gradient, params, batch))
    return {"structures": count, "atoms": count * per_structure, "ms": rows}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--structures", type=int, default=None,
                    help="structures in the batch (default: the batch that fills the GPU, "
                         "as the trainer sizes it)")
    ap.add_argument("--seconds", type=float, default=0.5, help="timing per repeat (s)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="best of this many timings per row; 0: for a profiler, the trainer's "
                         "call once with the default and once with the warp kernel, untimed")
    ap.add_argument("--json", type=Path, default=None, help="also write the table here")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.monotonic()
    result = measure(args.structures, args.seconds, args.repeats)
    if not result["ms"]:
        print(f"the trainer's call with the default and the warp kernel on "
              f"{result['structures']} structures "
              f"({result['atoms']} atoms) in {time.monotonic() - t0:.1f} s")
        return 0
    print(f"{result['structures']} structures ({result['atoms']} atoms) in one call, best of "
          f"{args.repeats}:")
    print(f"{'call':<72} {'ms':>8} {'atoms/s':>9}")
    for label, ms in result["ms"].items():
        print(f"{label:<72} {ms:8.2f} {result['atoms'] / ms * 1e3:9.3g}")
    ms = result["ms"]
    print(f"by difference: the gradient pass and the rows' sum {ms[GRADIENT] - ms[LOSS]:.2f} ms, "
          f"the loss on the device and its transfers {ms[LOSS] - ms[PREDICTIONS]:.2f} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
