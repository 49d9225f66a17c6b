#!/usr/bin/env bash
# Developer build: compile the extensions in build/dev-NAME and copy them into nepzbl_plugin/
# only when the build succeeds, so a broken C file never replaces a working module.
# Use with PYTHONPATH=<repo root>. Usage: tools/dev_build.sh [NAME]   (NAME defaults to "dev")
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:-dev}"
dir="build/dev-$name"
if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" --buildtype=release -Dcuda="${NEPZBL_CUDA_FEATURE:-auto}" >/dev/null
fi
ninja -C "$dir" >"$dir.log" 2>&1 || { tail -40 "$dir.log"; echo "dev_build: FAILED, nothing copied" >&2; exit 1; }
for so in "$dir"/nepzbl_plugin/*.so; do
    [ -e "$so" ] || continue
    tmp="nepzbl_plugin/.$(basename "$so").tmp.$$"
    cp "$so" "$tmp" && mv -f "$tmp" "nepzbl_plugin/$(basename "$so")"
done
echo "dev_build: ok ($dir)"
