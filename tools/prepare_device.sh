#!/usr/bin/env bash
# Prepare what the H200 machine needs (../shared/docs/gpu-runbook.md), here, in one command:
#   1. the extensions for its Python 3.12, CUDA for sm_90 only, into nepzbl_plugin/
#      (*.cpython-312-*.so, next to this machine's own build; git ignores both);
#   2. .device/site: ase and calorine (with its compiled module _nepy, which sits beside the
#      package, not in it: without it neppo cannot even be imported), which that machine lacks, and
#      the peers of benchmarks/device_all.sh 2, neppo and TorchNEP: pure-Python wheels
#      (downloaded once with `pip download --no-deps` into $PEER_WHEELS, default
#      /tmp/nepzbl-peer-wheels), unzipped; that machine has torch, pandas and numpy already;
#   3. .device/shared/data: the public data the device scripts read (LLZO, models);
#   4. .device/models: the LLZO active learning's first models (zbl.txt, nozbl.txt, about
#      110 kB each) from validation/llzo/out/cpu/item6 when they are here, for
#      benchmarks/device_all.sh 4 (which trains them on the GPU first when they are not).
# Then carry nepzbl_plugin/*.so, .device/site and .device/shared with `run` (under 64 MiB in all)
# and start benchmarks/device_all.sh there. About 5 minutes on 2 cores; rerunning rebuilds
# only what changed.
#
#   tools/prepare_device.sh [PYTHON3.12]      (default /root/.pyenv/versions/3.12.1/bin/python3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
py312="${1:-/root/.pyenv/versions/3.12.1/bin/python3.12}"
venv=/tmp/nepzbl-v312
build=build/device-sm90
[ -x "$py312" ] || { echo "prepare_device: no Python 3.12 at $py312" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
    "$py312" -m venv "$venv"
    "$venv/bin/pip" install -q meson ninja cython numpy ase calorine
fi
if [ ! -f "$build/build.ninja" ]; then
    PATH="$venv/bin:$PATH" meson setup "$build" . --buildtype=release -Dcuda=enabled \
        -Dnepzbl_cuda_archs=90 >/dev/null
fi
PATH="$venv/bin:$PATH" ninja -C "$build" >"$build.log" 2>&1 || { tail -30 "$build.log"; exit 1; }
cp "$build"/nepzbl_plugin/*.cpython-312-*.so nepzbl_plugin/

site=.device/site
packages="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mkdir -p "$site"
rm -rf "$site/ase" "$site/calorine" "$site"/_nepy*.so
cp -r "$packages/ase" "$packages/calorine" "$packages"/_nepy*.so "$site/"
rm -rf "$site/ase/test" "$site/ase/gui"
# the peers: wheels unzip into an importable tree (about 1 MB for both)
wheels="${PEER_WHEELS:-/tmp/nepzbl-peer-wheels}"
mkdir -p "$wheels"
for spec in neppo==1.0 torchnep==1.0.7; do
    name="${spec%%==*}"
    if ! ls "$wheels/$name"-*-py3-none-any.whl >/dev/null 2>&1; then
        "$venv/bin/pip" download -q --no-deps --only-binary :all: -d "$wheels" "$spec"
    fi
    rm -rf "$site/$name" "$site/$name"-*.dist-info
    "$venv/bin/python" -m zipfile -e "$(ls "$wheels/$name"-*-py3-none-any.whl | tail -1)" "$site"
done
find "$site" -name __pycache__ -prune -exec rm -rf {} +
# what the device's Python 3.12 must import from here (a missing _nepy cost a device call)
for need in ase calorine neppo torchnep "_nepy.cpython-312-*.so"; do
    ls -d "$site"/$need >/dev/null 2>&1 || { echo "prepare_device: $site lacks $need" >&2; exit 1; }
done
data=.device/shared/data
mkdir -p "$data"
shared="$(cd .. && pwd)/shared/data"
[ -d "$shared" ] && cp -ru "$shared/." "$data/"
# issue 16's contrast: the first models of validation/llzo/run.py --size cpu --only 6
first_models=validation/llzo/out/cpu/item6
for variant in zbl nozbl; do
    model="$first_models/$variant/state/iter_000/nep.txt"
    if [ -f "$model" ]; then
        mkdir -p .device/models && cp "$model" ".device/models/$variant.txt"
    else
        rm -f ".device/models/$variant.txt"
        echo "prepare_device: no $model; device_all.sh 4 will train its first models"
    fi
done
du -sh nepzbl_plugin/*.cpython-312-*.so "$site" .device/shared .device/models 2>/dev/null \
    | sed 's/^/prepare_device: /'
echo "prepare_device: ok; git ignores these files, so name them in run's carry, e.g."
echo "  run(carry=[\"nepzbl_plugin/_core.cpython-312-x86_64-linux-gnu.so\", \"nepzbl_plugin/_cuda.cpython-312-x86_64-linux-gnu.so\", \".device\"])"
