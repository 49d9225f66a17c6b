#!/usr/bin/env bash
# Issue 13's measurements in one command on the H200 machine (see docs/gpu-notes.md and
# /work/shared/docs/gpu-runbook.md). Prerequisites brought along (git-ignored, under 64 MiB):
# the sm_90 extensions for Python 3.12 in nepzbl_plugin/, .device/site (ase, calorine),
# .device/shared/data (LLZO), optionally .device/bin/gpumd. Results go to $OUT (or ./gpu-out).
# Budget: about 10 minutes of device time in all (limits 200 + 180 + 200 s); each part has
# its own time limit, so a slow part cannot take the rest with it.
set -u
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}"
mkdir -p "$out"
export PYTHONPATH="$PWD/.device/site:$PWD"
export NEPZBL_SHARED="$PWD/.device/shared"
py="${PYTHON:-python3}"
gpumd_args=()
if [ -x .device/bin/gpumd ]; then
    export LD_LIBRARY_PATH="/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:${LD_LIBRARY_PATH:-}"
    gpumd_args=(--gpumd "$PWD/.device/bin/gpumd")
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/device.txt" 2>&1
# 1. correctness on the device: the engine and the MD loop against the CPU engine
timeout 200 "$py" -m pytest -q -p no:cacheprovider -x tests/test_cuda.py tests/test_cuda_md.py \
    -m gpu >"$out/tests.txt" 2>&1; echo "tests: status $?" | tee -a "$out/status.txt"
# 2. throughput: evaluate f32/f64, device MD loop f32/f64, GPUMD, ratios
timeout 180 "$py" benchmarks/bench_gpu.py --sizes 1536 12288 98304 786432 --no-cpu \
    --min-time 1 --cap 15 --md-steps 1000 --md-atom-steps 300000000 "${gpumd_args[@]}" \
    --output "$out/bench_gpu.md" >"$out/bench_gpu.txt" 2>&1
echo "bench_gpu: status $?" | tee -a "$out/status.txt"
# 3. NVE drift (10000 steps, f32 and f64), 100 ps NVT on 12288 atoms, angular kernels A/B
timeout 200 "$py" benchmarks/bench_gpu_md.py --output "$out/bench_gpu_md.json" \
    >"$out/bench_gpu_md.txt" 2>&1
echo "bench_gpu_md: status $?" | tee -a "$out/status.txt"
tail -n 30 "$out/bench_gpu.md" "$out/bench_gpu_md.txt" "$out/tests.txt"
