#!/usr/bin/env bash
# The issue-14 GPU training measurements in one go, for a session with an H200 (see
# ../shared/docs/gpu-runbook.md). Run from the repository root on the device machine, after
# bringing the sm_90 build (nepzbl_plugin/*.so) and, optionally, .device/site (ase, calorine,
# neppo, torchnep) and .device/shared/data along:
#
#   bash benchmarks/h200_training.sh [OUT]      (about 9 minutes; OUT defaults to $OUT or runs/)
#
# 1. the GPU training tests (gradients against the CPU to 1e-10 / 1e-4, CPU vs GPU runs);
# 2. bench_train.py gpu-steps: Adam steps/s and SNES generations/s with the loss on the host,
#    fused, and everything on the device, against 16 CPU threads (about 1 minute);
# 3. bench_train.py gpu: LLZO NEP25-ZBL, 20 s budget: time to the held-out targets, steps/s,
#    device memory, then neppo/TorchNEP on the same GPU (5 min each at most);
# 4. bench_train.py gpu-epoch: 2000 x 192 atoms, epoch time and memory against 16 CPU threads.
set -uo pipefail
out="${1:-${OUT:-runs}}"
mkdir -p "$out"
export PYTHONPATH="$PWD/.device/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
[ -d .device/shared ] && export NEPZBL_SHARED="$PWD/.device/shared"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
python -c "from nepzbl_plugin import _cuda; print('devices', _cuda.device_count())" | tee -a "$out/device.txt"
timeout 300 python -m pytest -q -p no:cacheprovider tests/test_train_cuda.py 2>&1 | tail -15 | tee "$out/tests.txt"
timeout 300 python benchmarks/bench_train.py gpu-steps --threads 16 --seconds 3 \
    2>&1 | tee "$out/bench_gpu_steps.txt"
timeout 900 python benchmarks/bench_train.py gpu --out "$out/gpu" --seconds 20 --peer-minutes 5 \
    2>&1 | grep -v '%|' | tee "$out/bench_gpu.txt"
timeout 600 python benchmarks/bench_train.py gpu-epoch --out "$out/gpu_epoch" --threads 16 \
    2>&1 | tee "$out/bench_gpu_epoch.txt"
