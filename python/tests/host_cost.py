#!/usr/bin/env python3
"""Host cost per call of normjit's torch op against torch.nn.functional.rms_norm,
side by side in one process: 1 x 4096 bf16 (the GPU finishes each kernel long
before the next call is issued, so the loop's time is the host's), N calls back
to back, rounds interleaved, the median round reported.

usage: NORMJIT_LIBRARY=... python3 python/tests/host_cost.py [--calls N] [--rounds R]
Prints per-call microseconds of each form and the ratio normjit / F.rms_norm
(the target is <= 1.0). With NORMJIT_TORCH_NATIVE=0 it measures the ctypes kernels.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import normjit  # noqa: E402


def per_call_us(fn, calls):
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / calls * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--hidden", type=int, default=4096)
    args = ap.parse_args()
    from normjit import ops

    h = args.hidden
    x = torch.randn(1, h, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(h, device="cuda", dtype=torch.bfloat16)
    r = torch.randn(1, h, device="cuda", dtype=torch.bfloat16)
    out = torch.empty_like(x)
    op = torch.ops.normjit.rms_norm.default
    forms = {
        "F.rms_norm": lambda: F.rms_norm(x, (h,), w, 1e-6),
        "normjit.rms_norm": lambda: normjit.rms_norm(x, w, 1e-6),
        "torch.ops.normjit.rms_norm.default": lambda: op(x, w, 1e-6),
        "normjit.rms_norm(out=)": lambda: normjit.rms_norm(x, w, 1e-6, out=out),
        "normjit.fused_add_rms_norm (in place)": lambda: normjit.fused_add_rms_norm(x, r, w),
        "normjit.fused_add_rms_norm (out=x)": lambda: normjit.fused_add_rms_norm(out, r, w,
                                                                                  out=out),
    }
    for fn in forms.values():  # compile, load, warm caches
        for _ in range(200):
            fn()
    rounds = {name: [] for name in forms}
    for _ in range(args.rounds):
        for name, fn in forms.items():
            rounds[name].append(per_call_us(fn, args.calls))
    with torch.inference_mode():
        xi, wi = x.clone(), w.clone()
        inf = {"F.rms_norm (inference_mode)": lambda: F.rms_norm(xi, (h,), wi, 1e-6),
               "normjit.rms_norm (inference_mode)": lambda: normjit.rms_norm(xi, wi, 1e-6)}
        for name, fn in inf.items():
            rounds[name] = []
        for fn in inf.values():
            for _ in range(200):
                fn()
        for _ in range(args.rounds):
            for name, fn in inf.items():
                rounds[name].append(per_call_us(fn, args.calls))

    print(f"host cost per call, {torch.cuda.get_device_name()}, torch {torch.__version__}, "
          f"normjit {normjit.version()} ({ops.kernels} kernels), 1x{h} bf16, "
          f"{args.calls} calls x {args.rounds} rounds (median):")
    median = {name: statistics.median(v) for name, v in rounds.items()}
    for name, us in median.items():
        print(f"  {name:42s} {us:7.2f} us")
    ratio = median["normjit.rms_norm"] / median["F.rms_norm"]
    ratio_inf = median["normjit.rms_norm (inference_mode)"] / median["F.rms_norm (inference_mode)"]
    print(f"ratio normjit.rms_norm / F.rms_norm: {ratio:.3f} "
          f"({'meets' if ratio <= 1.0 else 'misses'} <= 1.0); under inference_mode: "
          f"{ratio_inf:.3f}")


if __name__ == "__main__":
    main()
