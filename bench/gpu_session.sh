#!/usr/bin/env bash
# One device session, from the repository root with build-gpu (and optionally a
# pre-warmed .cache-gpu) carried:
#   bash bench/gpu_session.sh STEP...     steps: tests tune bench compare peers ...
# Logs, tables and CSVs go to $OUT (or ./gpu-out).
# `peers` also needs .peers carried (bench/fetch_peers.sh, run where there is network); it
# takes FUSED_ARGS (bench/fused.py's options, e.g. "--sections decode,wide,chain") and
# FUSED_TIMEOUT (seconds left for it, 540 by default, so the tables still get printed).
set -u
out=${OUT:-gpu-out}
mkdir -p "$out"
root=$(pwd)
export NORMJIT_CACHE_DIR=${NORMJIT_CACHE_DIR:-$root/.cache-gpu}
export NORMJIT_LIBRARY=$root/build-gpu/src/libnormjit.so.0
export NORMJIT_TUNING_DIR=${NORMJIT_TUNING_DIR:-$root/.tuning-gpu}
chmod 700 "$NORMJIT_CACHE_DIR" 2>/dev/null
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv > "$out/gpu.txt"
build-gpu/tools/normjit info >> "$out/gpu.txt"
cat "$out/gpu.txt"
hidden=256,512,1024,2048,2880,3584,4096,5120,7168,8192,12288,14336,16384,32768,65536
for step in "$@"; do
  echo "=== $step $(date +%T)"
  case $step in
  tests)
    for t in build-gpu/tests/test_gpu_*; do
      [ -x "$t" ] && [ -f "$t" ] || continue
      "$t" > "$out/$(basename "$t").log" 2>&1
      rc=$?
      grep -E "^\[  (FAILED|PASSED)|ERROR|cases checked|seed" "$out/$(basename "$t").log" | head -20
      echo "$t exit $rc"
    done ;;
  smoke)
    # Every op, quantized output and a spread of shapes through the tool: each case is checked
    # against the double-precision reference before it is timed.
    t=build-gpu/tools/normjit
    { $t bench --op rmsnorm,layernorm,add_rmsnorm,add_layernorm --dtype bf16 --iters 20 \
        --quant none,fp8-tensor,fp8-token,int8-token,fp8-group128,fp8e5m2-group64 \
        --shape 1x4096 --shape 64x5120 --shape 2048x4096 --shape 1000x2880 --shape 256x131072
      $t bench --op add_rmsnorm,add_layernorm --dtype f16,f32 --iters 20 --shape 4096x8192 --shape 7x7
      $t bench --op qk_rmsnorm --heads 32 --dtype bf16,f16 --iters 20 --shape 2048x128 --shape 1x64 --shape 16x256
      $t bench --op rmsnorm --quant fp8-group128 --dtype bf16 --iters 20 --shape 512x1024 --shape 64x65536
    } > "$out/smoke.md" 2>&1
    echo "smoke exit $?"; grep -vE "^\| (Small|Medium|custom) .* \| [0-9]" "$out/smoke.md" | head -60
    grep -cE "^\| custom .* \| [0-9]" "$out/smoke.md" ;;
  torch)
    # The torch ops, modules and HuggingFace patching on the GPU, then host cost per call.
    export NORMJIT_TORCH_EXT_DIR=$root/build-gpu/torch_ext
    PYTHONUNBUFFERED=1 python3 python/tests/test_torch_gpu.py > "$out/torch_gpu.log" 2>&1
    echo "torch gpu tests exit $?"; grep -E "FAIL|passed|failed|Error|error" "$out/torch_gpu.log" | tail -25
    PYTHONUNBUFFERED=1 python3 python/tests/host_cost.py > "$out/host_cost.log" 2>&1
    echo "host cost exit $?"; tail -15 "$out/host_cost.log" ;;
  ncu)
    # Where a decode call's cycles go: one 1 x 4096 bf16 RMSNorm kernel, then one LayerNorm.
    for op in rmsnorm layernorm; do
      ncu --clock-control none --launch-count 1 -k "regex:nj_${op}_" \
        --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
        --section SchedulerStats build-gpu/tools/normjit bench --op $op --dtype bf16 --shape 1x4096 \
        --iters 3 > "$out/ncu-$op.txt" 2>&1
      echo "ncu $op exit $?"; grep -E "Duration|Elapsed Cycles|Registers Per|Block Size|Warp Cycles Per Issued|Stall|Achieved Occupancy|Executed Ipc" "$out/ncu-$op.txt" | head -20
    done ;;
  tune)
    # Written to the GPU's file under NORMJIT_TUNING_DIR, where later steps find it.
    build-gpu/tools/normjit tune -q --hidden $hidden > "$out/tune.md" 2>&1
    echo "tune exit $?"; tail -n 70 "$out/tune.md"
    cp "$NORMJIT_TUNING_DIR"/*.tuning "$out/" ;;
  bench)
    build-gpu/tools/normjit bench --csv "$out/seed.csv" > "$out/seed.md" 2>&1; cat "$out/seed.md"
    sweep=""
    for h in ${hidden//,/ }; do sweep="$sweep --shape $(( (256 * 1024 * 1024) / (4 * h) ))x$h"; done
    build-gpu/tools/normjit bench --dtype bf16 --iters 50 $sweep --csv "$out/sweep.csv" > "$out/sweep.md" 2>&1; cat "$out/sweep.md" ;;
  explore)
    # Every candidate at the row counts that miss their targets (docs/PERFORMANCE.md).
    t=build-gpu/tools/normjit
    { $t tune --explore 2048 --hidden 4096 --dtype bf16
      $t tune --explore 4096 --hidden 8192 --dtype bf16
      $t tune --explore 16384 --hidden 4096 --dtype bf16
      $t tune --explore 1954 --hidden 32768 --dtype bf16
      $t tune --explore 977 --hidden 65536 --dtype bf16
      $t tune --explore 1 --hidden 8192 --dtype bf16; } > "$out/explore.md" 2>&1
    echo "explore exit $?"; cat "$out/explore.md" ;;
  ab)
    # The same plans with the kernel templates of .kernel-alt (NORMJIT_KERNEL_DIR), in one run.
    shapes="--shape 262144x256 --shape 2048x4096 --shape 16384x4096 --shape 4096x8192 --shape 1954x32768 --shape 1x8192"
    for which in embedded alt embedded; do
      if [ $which = alt ]; then export NORMJIT_KERNEL_DIR=$root/.kernel-alt; else unset NORMJIT_KERNEL_DIR; fi
      echo "--- templates: $which"
      build-gpu/tools/normjit bench --dtype bf16 --iters 100 $shapes 2>&1 | grep -E "^\| (custom|config)"
    done > "$out/ab.md"; unset NORMJIT_KERNEL_DIR; cat "$out/ab.md" ;;
  lab)
    # Template variants and knobs beside the library and its peers (bench/lab.py); the
    # experiments named in LAB_EXPERIMENTS (default: decode).
    python3 -m pip install --no-deps --quiet --target /tmp/site .peers/liger_kernel-*.whl \
      > "$out/liger-install.log" 2>&1
    exps=""
    for e in ${LAB_EXPERIMENTS//,/ }; do exps="$exps --experiment $e"; done
    NORMJIT_TORCH_NATIVE=0 PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 \
      timeout -k 10 ${LAB_TIMEOUT:-420} python3 bench/lab.py --out "$out/lab" ${exps:---experiment decode} \
      > "$out/lab.log" 2>&1
    echo "lab exit $?"; grep -E "^compiled|Traceback|Error" "$out/lab.log" | head -8 ;;
  labncu)
    # Nsight Compute on one decode shape: a lab variant (LAB_NCU_VARIANT), the library, Liger.
    NORMJIT_TORCH_NATIVE=0 PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} timeout 120 ncu \
      --clock-control none --cache-control all -k "regex:lab_|nj_|_rms_norm|_layer_norm" \
      --launch-skip 3 --launch-count 12 --section SpeedOfLight --section LaunchStats \
      python3 bench/lab_ncu.py ${LAB_NCU_SHAPE:-rmsnorm 1 4096} "${LAB_NCU_VARIANT:-t=256,NJ_WLOAD=1}" \
      > "$out/ncu-lab.txt" 2>&1
    echo "ncu exit $?"; grep -E "^  [a-z_]+.*\(|Duration|Elapsed Cycles|Registers Per|Block Size" "$out/ncu-lab.txt" | head -60 ;;
  first)
    # The first call in a fresh process, empty cache and from the disk cache, through the
    # ctypes and the native kernels (the extension shared with the torch step).
    export NORMJIT_TORCH_EXT_DIR=$root/build-gpu/torch_ext
    python3 bench/first_call.py > "$out/first_call.log" 2>&1; echo "first call exit $?"
    cat "$out/first_call.log" ;;
  sanitize)
    # The GPU suite's quick mode under compute-sanitizer (memcheck, then racecheck).
    for tool in memcheck racecheck; do
      NORMJIT_TEST_QUICK=1 compute-sanitizer --tool $tool --error-exitcode 9 \
        build-gpu/tests/test_gpu_ops > "$out/sanitizer-$tool.log" 2>&1
      echo "compute-sanitizer $tool exit $?"
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED|cases checked" "$out/sanitizer-$tool.log"
    done ;;
  load)
    build-gpu/tests/test_gpu_load > "$out/load.log" 2>&1; echo "load exit $?"; grep -E "^#|PASSED|FAILED" "$out/load.log"
    build-gpu/tools/normjit bench --overhead | tee "$out/overhead.md" ;;
  compare)
    PYTHONUNBUFFERED=1 python3 bench/compare.py --out "$out" > "$out/compare.md" 2>&1
    echo "compare exit $?"; cat "$out/compare.md" ;;
  peers)
    # FlashInfer's norm kernels (kept if .peers/lib carries an up-to-date build), Liger from
    # its wheel (no network here), then bench/fused.py; a run that loses its CUDA context
    # (exit 3) starts again in a new process with the sections it had not finished.
    bash bench/peers/build.sh > "$out/peers-build.log" 2>&1
    echo "flashinfer harness build exit $?: $(tail -n 1 "$out/peers-build.log")"
    python3 -m pip install --no-deps --quiet --target /tmp/site .peers/liger_kernel-*.whl \
      > "$out/liger-install.log" 2>&1
    echo "liger install exit $?"
    deadline=$(( SECONDS + ${FUSED_TIMEOUT:-540} ))
    resume=""
    rc=1
    for attempt in 1 2 3; do
      left=$(( deadline - SECONDS ))
      [ $left -gt 30 ] || break
      PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 timeout -k 15 $left \
        python3 bench/fused.py --out "$out" ${FUSED_ARGS:-} $resume >> "$out/fused.log" 2>&1
      rc=$?
      echo "fused.py exit $rc (attempt $attempt, $(( deadline - SECONDS )) s left)"
      [ $rc -eq 3 ] || break
      resume=--resume
    done
    if [ $rc -ne 0 ] && [ $rc -ne 2 ] && [ -f "$out/fused.csv" ]; then
      python3 bench/fused.py --out "$out" --tables-only > /dev/null 2>&1  # after a hard crash
    fi
    grep -E "^estimated|^section|stopped early|CUDA context lost|Traceback" "$out/fused.log" \
      | cut -c1-200 | head -n 12
    cat "$out/fused-summary.md"
    # normjit's PDL launches: the chain again with every device context launching so.
    # (when the run above had the chain: no --sections means every section)
    if [[ "${FUSED_ARGS:-}" != *--sections* || "${FUSED_ARGS:-}" == *chain* ]]; then
      mkdir -p "$out/pdl"
      NORMJIT_PDL=1 PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} timeout -k 15 120 \
        python3 bench/fused.py --out "$out/pdl" --sections chain > "$out/pdl/fused.log" 2>&1
      echo "chain with NORMJIT_PDL=1 exit $?"
      awk '/^### graph-captured/ {p = 1; print; next} p && /^###/ {exit} p' \
        "$out/pdl/fused-summary.md"
    fi ;;
  esac
done
