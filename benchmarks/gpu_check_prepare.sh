#!/usr/bin/env bash
# Copy what benchmarks/gpu_check.py needs on the device machine into .device_carry/ (git-ignored), within 64 MiB:
#   .device_carry/site/  MONAI and pytorch-ignite as installed here (pure Python; the device image has neither),
#   .device_carry/data/  the real Kvasir-SEG and CVC-ClinicDB subsets of ../shared/data (images and masks only).
# The device image brings torch, numpy, PIL, tifffile, tensorboard, pytest and OpenCV itself.
#
# Usage: bash benchmarks/gpu_check_prepare.sh   (PYTHON=... for another interpreter, SHARED=... for another
# ../shared). Then call the device tool as docs/benchmarks.md ("GPU") says, with carry [".device_carry"].
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=/work/main/.venv/bin/python
shared=${SHARED:-$root/../shared}
dest=$root/.device_carry
limit_mib=56  # leaves room for the checkout itself under the tool's 64 MiB

if ! git -C "$root" check-ignore -q "$dest/"; then
    echo "gpu_check_prepare: $dest is not git-ignored; refusing to write there" >&2
    exit 1
fi
for dir in "$shared/data/kvasir_seg/Kvasir-SEG" "$shared/data/cvc_clinicdb/CVC-ClinicDB"; do
    [ -d "$dir" ] || { echo "gpu_check_prepare: $dir is missing (set SHARED=... to the shared folder)" >&2; exit 1; }
done

rm -rf "$dest"
mkdir -p "$dest/site" "$dest/data/kvasir_seg/Kvasir-SEG" "$dest/data/cvc_clinicdb/CVC-ClinicDB"
for pkg in monai ignite; do
    src=$("$python" -c "import os, $pkg; print(os.path.dirname($pkg.__file__))")
    cp -r "$src" "$dest/site/"
done
# the distribution metadata, so that importlib.metadata sees the versions the code was tested with
site=$(dirname "$("$python" -c "import os, monai; print(os.path.dirname(monai.__file__))")")
cp -r "$site"/monai-*.dist-info "$site"/pytorch_ignite-*.dist-info "$dest/site/"
find "$dest/site" -name __pycache__ -type d -prune -exec rm -rf {} +

cp -r "$shared/data/kvasir_seg/Kvasir-SEG/images" "$shared/data/kvasir_seg/Kvasir-SEG/masks" \
    "$dest/data/kvasir_seg/Kvasir-SEG/"
cp -r "$shared/data/cvc_clinicdb/CVC-ClinicDB/Original" "$shared/data/cvc_clinicdb/CVC-ClinicDB/Ground Truth" \
    "$dest/data/cvc_clinicdb/CVC-ClinicDB/"

size=$(du -sm "$dest" | cut -f1)
echo "gpu_check_prepare: $dest holds ${size} MiB ($(du -sm "$dest/site" | cut -f1) MiB packages)"
if [ "$size" -gt "$limit_mib" ]; then
    echo "gpu_check_prepare: more than $limit_mib MiB: the device tool would refuse the call" >&2
    exit 1
fi
