#!/usr/bin/env bash
# Fetch the peers that bench/fused.py runs beside normjit into .peers/ (git-ignored), on a
# machine with network; the GPU machine has none, so .peers travels with the device call.
#   .peers/liger_kernel-*.whl           Liger (Triton kernels; needs only torch and triton),
#                                        installed there with pip install --no-deps --target
#   .peers/flashinfer/data/include/     FlashInfer's header-only kernels (about 6 MB of a
#                                        62 MB wheel), built there by bench/peers/build.sh
# Versions are pinned so that two sessions compare the same peers; override with
# LIGER_VERSION / FLASHINFER_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
liger=${LIGER_VERSION:-0.8.5}
flashinfer=${FLASHINFER_VERSION:-0.7.2.post1}
mkdir -p .peers
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rm -f .peers/liger_kernel-*.whl
pip download --no-deps --quiet -d .peers "liger-kernel==$liger"

pip download --no-deps --quiet -d "$tmp" "flashinfer-python==$flashinfer"
rm -rf .peers/flashinfer
python3 - "$tmp"/flashinfer_python-*.whl .peers <<'EOF'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "flashinfer/data/include/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    z.extractall(dest, names)
print(f"{len(names)} headers from {wheel.rsplit('/', 1)[-1]}")
EOF
echo "$liger $flashinfer" > .peers/VERSIONS
du -sh .peers/liger_kernel-*.whl .peers/flashinfer
test -f .peers/flashinfer/data/include/flashinfer/norm.cuh
