#!/usr/bin/env bash
# Every owed GPU measurement of issues 13 and 14, for one 15-minute device budget, in two
# calls of under 10 minutes each (the device's per-command limit), most important first.
# Prepare here with tools/prepare_device.sh, then on the device machine:
#
#   bash benchmarks/device_all.sh 1     # about 8 minutes: GPU tests, training steps/s,
#                                       # engine + MD against GPUMD, the 20 s training target
#   bash benchmarks/device_all.sh 2     # about 5 minutes: 2000-structure epoch, NVE drift,
#                                       # 100 ps NVT, angular-kernel A/B
#
# Results go to $OUT (the device's return folder) or ./gpu-out; every part has its own time
# limit, so a slow part cannot take the rest of the budget with it, and status.txt says how
# each ended. Copy the tables into docs/benchmarks.md with the device's name.
set -u
cd "$(dirname "$0")/.."
part="${1:-1}"
out="${OUT:-gpu-out}"
mkdir -p "$out"
export PYTHONPATH="$PWD/.device/site:$PWD"
[ -d .device/shared ] && export NEPZBL_SHARED="$PWD/.device/shared"
py="${PYTHON:-python3}"
gpumd_args=()
if [ -x .device/bin/gpumd ]; then
    export LD_LIBRARY_PATH="/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:${LD_LIBRARY_PATH:-}"
    gpumd_args=(--gpumd "$PWD/.device/bin/gpumd")
fi
step() {  # step NAME SECONDS COMMAND...: run with a limit, log, record the status
    local name="$1" limit="$2"
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    echo "$name: status $? in $((SECONDS - t0)) s (limit $limit s)" | tee -a "$out/status.txt"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/device.txt" 2>&1
"$py" -c "from nepzbl_plugin import _cuda; print('CUDA devices', _cuda.device_count())" \
    >>"$out/device.txt" 2>&1
case "$part" in
1)
    # correctness on the device: engine, MD loop, training objective, loss and Adam
    step tests 170 "$py" -m pytest -q -p no:cacheprovider -m gpu tests/test_cuda.py \
        tests/test_cuda_md.py tests/test_train_cuda.py
    # where a training step's time goes: host loss, fused call, DeviceAdam (and its work-array
    # layout A/B); SNES; 16 CPU threads
    step bench_gpu_steps 100 "$py" benchmarks/bench_train.py gpu-steps --threads 16 --seconds 2
    # evaluate f32/f64 and the device MD loop against GPUMD, four sizes
    step bench_gpu 140 "$py" benchmarks/bench_gpu.py --sizes 1536 12288 98304 786432 --no-cpu \
        --min-time 1 --cap 10 --md-steps 1000 --md-atom-steps 200000000 "${gpumd_args[@]}" \
        --output "$out/bench_gpu.md"
    # the issue-14 target: held-out RMSE below the paper's GPUMD model within 20 s
    step bench_train_gpu 80 "$py" benchmarks/bench_train.py gpu --out "$out/train_gpu" \
        --seconds 20 --peer-minutes 0
    ;;
2)
    step bench_gpu_epoch 150 "$py" benchmarks/bench_train.py gpu-epoch --out "$out/gpu_epoch" \
        --threads 16
    step bench_gpu_md 150 "$py" benchmarks/bench_gpu_md.py --output "$out/bench_gpu_md.json"
    ;;
*)
    echo "device_all.sh: part 1 or 2, not $part" >&2
    exit 2
    ;;
esac
tail -n 40 "$out"/status.txt "$out"/*.txt 2>/dev/null | grep -v '%|' | tail -n 120
