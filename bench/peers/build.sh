#!/usr/bin/env bash
# Build FlashInfer's norm kernels (bench/peers/flashinfer_norm.cu, headers from
# bench/fetch_peers.sh) into .peers/lib/libfi_norm.so for bench/fused.py. A library built
# from the same source and headers is kept, so one built on the development machine (same
# CUDA 13.0 nvcc, sm_90) and carried with .peers saves the GPU machine the 40 s compile;
# FORCE=1 rebuilds.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=bench/peers/flashinfer_norm.cu
inc=.peers/flashinfer/data/include
out=.peers/lib/libfi_norm.so
if [ ! -f "$inc/flashinfer/norm.cuh" ]; then
  echo "no FlashInfer headers under $inc: run bench/fetch_peers.sh on a machine with network" >&2
  exit 1
fi
stamp=$(cat "$src" "$inc/flashinfer/norm.cuh" .peers/VERSIONS 2>/dev/null | sha256sum | cut -c1-16)
if [ "${FORCE:-0}" != 1 ] && [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
  # Built elsewhere, it must still load here (glibc, libstdc++).
  if python3 -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' "$out" 2>/dev/null; then
    echo "$out is up to date"
    exit 0
  fi
  echo "$out does not load here: rebuilding"
fi
mkdir -p .peers/lib
nvcc -O3 -std=c++17 -arch=sm_90 -DENABLE_BF16 -DENABLE_FP8 -I"$inc" -Xcompiler -fPIC -shared \
  -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
echo "$stamp" > "$out.stamp"
echo "built $out ($(nvcc --version | tail -1))"
