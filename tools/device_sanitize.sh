#!/usr/bin/env bash
# On the GPU machine: what the host emulation of the tests cannot check. Prepare here first
# (tools/prepare_device.sh), then, with `run`, carry nepzbl_plugin/*.cpython-312-*.so and
# .device, and start one phase per call (each fits in run's 10 minutes):
#
#   bash tools/device_sanitize.sh sanitize   tools/device_checks.py plainly, then under
#                                            compute-sanitizer memcheck, racecheck, initcheck
#                                            and synccheck (--tiny); about 4 minutes
#   bash tools/device_sanitize.sh tests      the gpu-marked tests of the CUDA engine, MD loop
#                                            and training (the device variants of the
#                                            emulation tests); a few minutes
#
# Logs go to $OUT (run's returned folder), one file per step; the summary to stdout. A
# sanitizer finding makes that tool's exit status 3. compute-sanitizer needs the Firecracker
# runtime (/work/.library/device/KINDS.md); on gVisor it refuses the device.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/nepzbl-device}"
mkdir -p "$out"
# (a rehearsal on the host, tools/rehearse_device.py, puts its emulated package first)
export PYTHONPATH="${NEPZBL_REHEARSAL_PACKAGE:+$NEPZBL_REHEARSAL_PACKAGE:}$PWD:$PWD/.device/site${PYTHONPATH:+:$PYTHONPATH}"
# the data the gpu tests read (prepare_device.sh copies it; the device has no ../shared)
[ -d .device/shared ] && export NEPZBL_SHARED="$PWD/.device/shared"
py="${PYTHON:-python3}"
phase="${1:-sanitize}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true

if [ "$phase" = sanitize ]; then
    timeout 120 "$py" tools/device_checks.py >"$out/plain.txt" 2>&1
    echo "plain: rc=$? $(tail -1 "$out/plain.txt")"
    if ! command -v compute-sanitizer >/dev/null; then
        echo "no compute-sanitizer on this machine"
        exit 0
    fi
    for tool in memcheck racecheck initcheck synccheck; do
        # racecheck and synccheck look at shared memory and barriers (k_totals and the MD
        # loop's kinetic-energy tree), memcheck and initcheck at every global access
        timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 3 --print-limit 30 \
            "$py" tools/device_checks.py --tiny >"$out/$tool.txt" 2>&1
        echo "$tool: rc=$? $(grep -c '^========= ' "$out/$tool.txt") sanitizer lines;" \
            "$(grep -m1 'ERROR SUMMARY' "$out/$tool.txt")"
    done
elif [ "$phase" = tests ]; then
    timeout 540 "$py" -m pytest -q -p no:cacheprovider -m gpu tests/test_cuda_md.py \
        tests/test_train_cuda.py tests/test_cuda.py >"$out/tests.txt" 2>&1
    echo "tests: rc=$?"
    tail -15 "$out/tests.txt"
else
    echo "usage: device_sanitize.sh sanitize|tests" >&2
    exit 2
fi
