"""The rehearsal switch of the device scripts: with ``NEPZBL_REHEARSAL=1`` in the environment
(tools/rehearse_device.py sets it), ``bench_train.py``, ``bench_gpu.py``, ``bench_gpu_md.py``,
``tools/device_checks.py`` and ``validation/al_contrast_long.py`` take the command lines of
``benchmarks/device_all.sh`` as they are but run them on the smallest sizes and budgets that
still pass through every code path: against the host emulation of the CUDA sources a kernel
is a host loop, so the device's sizes would take hours. Without the variable nothing changes.
"""

from __future__ import annotations

import os

REHEARSAL = os.environ.get("NEPZBL_REHEARSAL") == "1"


def rehearsed(real, small):
    """``small`` in a rehearsal, else ``real``."""
    return small if REHEARSAL else real
