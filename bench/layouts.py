#!/usr/bin/env python3
"""Time chosen normjit kernel layouts for one shape against its peers, in one harness.

Each layout gets its own normjit context whose tuning table holds one record that
forces it, so the layouts, the shipped choice, the row-wise Triton kernel and
torch.compile are all timed the same way (gpu_times: cold L2, GPU time of single
calls), in rounds that visit the implementations in a random order, so that none
gains from its place in the run. Every output is checked against a float64
reference first.

usage: python3 bench/layouts.py --op rmsnorm --dtype fp16 --shape 2048x4096 \
           --layout 8/256/1/0/0/reg --layout 8/512/1/0/0/reg [--rounds 100] [--ncu] [--no-compile]
A layout is VEC/TPR/RPC/OCC/CTAS_PER_SM/STORAGE (the tuning table's knobs); one the
library finds illegal for the shape is ignored and its choice runs instead (the kernel
names under a profiler show which ran).
--ncu runs each implementation once more without timing, for a profiler.
"""
import argparse
import os
import random
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
from compare import normjit  # noqa: E402

DT = {"fp16": (torch.float16, "f16"), "bf16": (torch.bfloat16, "bf16")}
SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernel_src",
                       "tuning", "nvidia-h100-80gb-hbm3-132sm.tuning")


_flush = []
SLEEP_CYCLES = 400_000  # about 200 us at 1.98 GHz: more than any peer's host overhead


def gpu_times(fn, reps, warmup=0):
    """GPU times (ms) of `reps` calls of fn, each with a cold L2.

    Before each call the L2 is flushed (256 MB written) and the GPU spins for a while, so
    the host has queued the call before the GPU reaches it: the events measure the GPU
    running the call, not the host's time to submit it.
    """
    if not _flush:
        _flush.append(torch.empty(256 << 20, dtype=torch.uint8, device="cuda"))
    for _ in range(warmup):
        fn()
    events = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        _flush[0].zero_()
        torch.cuda._sleep(SLEEP_CYCLES)
        start.record()
        fn()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in events]


def bucket(rows):
    return "decode" if rows <= 64 else "prefill" if rows <= 16384 else "large"


def layout_table(path, op, dt, hidden, rows, layout):
    """A tuning table with the shipped header and one record that forces the layout."""
    vec, tpr, rpc, occ, ctas, storage = layout.split("/")
    with open(SHIPPED) as f:
        header = [ln for ln in f if ":" in ln and not ln.startswith(("rmsnorm", "layernorm"))]
    with open(path, "w") as f:
        f.writelines(header)
        f.write(f"{op} {dt} {dt} {dt} {hidden} {bucket(rows)} {vec} {tpr} {rpc} 1 {occ} "
                f"{storage} {ctas} 0\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--op", default="rmsnorm")
    ap.add_argument("--dtype", default="fp16", choices=sorted(DT))
    ap.add_argument("--shape", action="append", required=True, help="ROWSxHIDDEN")
    ap.add_argument("--layout", action="append", default=[])
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--ncu", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    args = ap.parse_args()
    dtype, dt = DT[args.dtype]
    tmp = tempfile.mkdtemp(prefix="normjit-layouts-")
    copy_bw = None if args.ncu else compare.copy_bandwidth()
    for shape in args.shape:
        rows, hidden = (int(v) for v in shape.split("x"))
        x, w, b = compare.make_inputs(rows, hidden, dtype)
        ref = compare.reference(args.op, x, w, b)
        impls = [("normjit shipped", lambda: compare.normjit_impl(args.op, x, w, b)),
                 ("triton", lambda: compare.triton_norm(args.op, x, w, b)),
                 ("torch.compile", lambda: compare.compiled(args.op, x, w, b))]
        if args.no_compile:
            impls.pop()
        for i, lay in enumerate(args.layout):
            path = os.path.join(tmp, f"{shape}-{i}.tuning")
            layout_table(path, args.op, dt, hidden, rows, lay)
            ctx = normjit.Context(tuning_file=path)
            y = torch.empty_like(x)

            def run(ctx=ctx, y=y):
                ctx.launch(normjit.RMSNORM if args.op == "rmsnorm" else normjit.LAYERNORM,
                           rows, hidden, x.data_ptr(), y.data_ptr(), normjit._dtype_code(dtype),
                           normjit._dtype_code(dtype), weight=w.data_ptr(),
                           bias=b.data_ptr() if args.op == "layernorm" else None,
                           eps=compare.EPS, stream=torch.cuda.current_stream().cuda_stream)
                return y
            impls.append((f"normjit {lay}", run))
        for name, fn in impls:
            err = compare.max_error(fn(), ref)
            if not err <= compare.TOL[dtype]:
                print(f"{shape} {name}: WRONG RESULT (error {err:.3g})")
                return 1
        if args.ncu:
            for name, fn in impls:
                fn()
            torch.cuda.synchronize()
            continue
        times = {name: [] for name, _ in impls}
        for name, fn in impls:
            gpu_times(fn, 0, warmup=10)
        for _ in range(args.rounds):
            order = list(impls)
            random.shuffle(order)
            for name, fn in order:
                times[name] += [t * 1e3 for t in gpu_times(fn, 3)]
        moved = compare.bytes_moved(rows, hidden, dtype, args.op)
        print(f"\n{args.op} {args.dtype} {rows}x{hidden}: {moved / 1e6:.1f} MB, floor "
              f"{moved / copy_bw * 1e6:.2f} us at {copy_bw / 1e12:.3f} TB/s")
        for name, t in sorted(times.items(), key=lambda kv: sorted(kv[1])[len(kv[1]) // 2]):
            t.sort()
            med = t[len(t) // 2]
            print(f"  {name:32s} median {med:7.2f} us  p10 {t[len(t) // 10]:7.2f}  "
                  f"p90 {t[9 * len(t) // 10]:7.2f}  {100 * moved / (med * 1e-6) / copy_bw:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
