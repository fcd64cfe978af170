#!/usr/bin/env python3
"""normjit against PyTorch, torch.compile and a row-wise Triton kernel, in one run on one GPU.

Sections:
  seed    the six shapes of the seed benchmark, fp16 and bf16, RMSNorm and LayerNorm
  sweep   hidden sizes 256..65536 (2880, 3584, 5120, 7168, 14336 included), rows sized so
          every case moves at least 256 MB
  decode  1, 8 and 64 rows under CUDA graph replay (GPU time per call)

Every output is checked against a float64 reference before it is timed. Times are medians
from triton.testing.do_bench (CUDA events, L2 flushed before each run). Bandwidth counts x
read, y written and the weights read once, against the device copy bandwidth measured here.

usage: python3 bench/compare.py [--out DIR] [--sections seed,sweep,decode] [--dtypes fp16,bf16]
Writes DIR/compare.csv and DIR/compare.png (if matplotlib is available) and prints tables.
"""
import argparse
import csv
import datetime
import math
import os
import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from triton.testing import do_bench

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import normjit  # noqa: E402

SEED_SHAPES = [("Small", 4, 512, 4096), ("Medium", 1, 2048, 4096), ("Large", 1, 4096, 8192),
               ("XL", 1, 16384, 8192), ("XXL", 1, 32768, 12288), ("XXXL", 1, 131072, 16384)]
SWEEP_HIDDEN = [256, 512, 1024, 2048, 2880, 3584, 4096, 5120, 7168, 8192, 12288, 14336, 16384,
                32768, 65536]
DECODE_ROWS = [1, 8, 64]
DECODE_HIDDEN = [4096, 8192]
EPS = 1e-5
TOL = {torch.float16: 2e-3, torch.bfloat16: 1.2e-2, torch.float32: 5e-5}


# ---------------------------------------------------------------------------
# A row-wise Triton kernel: one program per row, the row padded to a power of two.

@triton.jit
def _triton_norm(X, Y, W, B, stride_x, stride_y, N, eps, IS_LN: tl.constexpr,
                 HAS_B: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    if IS_LN:
        mean = tl.sum(x, axis=0) / N
        d = tl.where(mask, x - mean, 0.0)
        var = tl.sum(d * d, axis=0) / N
    else:
        d = x
        var = tl.sum(x * x, axis=0) / N
    rstd = 1.0 / tl.sqrt(var + eps)
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    y = d * rstd * w
    if HAS_B:
        y += tl.load(B + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_y + cols, y.to(Y.dtype.element_ty), mask=mask)


def triton_norm(op, x, w, b):
    n = x.shape[-1]
    x2 = x.view(-1, n)
    y = torch.empty_like(x2)
    block = triton.next_power_of_2(n)
    warps = min(max(block * x.element_size() // 512, 1), 16)
    has_b = op == "layernorm" and b is not None
    _triton_norm[(x2.shape[0],)](x2, y, w, b if has_b else w, x2.stride(0), y.stride(0),
                                 n, EPS, IS_LN=(op == "layernorm"), HAS_B=has_b,
                                 BLOCK=block, num_warps=warps)
    return y.view_as(x)


# ---------------------------------------------------------------------------
# The implementations compared. Each takes (x, w, b) and returns y.

def composite(op, x, w, b):
    """The unfused PyTorch expression, computed in fp32 as reference models do."""
    xf = x.float()
    if op == "rmsnorm":
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS) * w.float()
    else:
        mu = xf.mean(-1, keepdim=True)
        y = (xf - mu) * torch.rsqrt((xf - mu).pow(2).mean(-1, keepdim=True) + EPS) * w.float() \
            + b.float()
    return y.to(x.dtype)


_compiled = {}


def compiled(op, x, w, b):
    """torch.compile of the composite, one compiled function per shape and dtype."""
    key = (op, tuple(x.shape), x.dtype)
    if key not in _compiled:
        _compiled[key] = torch.compile(lambda x, w, b: composite(op, x, w, b), dynamic=False)
    return _compiled[key](x, w, b)


def torch_functional(op, x, w, b):
    n = x.shape[-1]
    if op == "rmsnorm":
        return F.rms_norm(x, (n,), w, EPS)
    return F.layer_norm(x, (n,), w, b, EPS)


def normjit_impl(op, x, w, b):
    if op == "rmsnorm":
        return normjit.rms_norm(x, w, eps=EPS)
    return normjit.layer_norm(x, w, b, eps=EPS)


IMPLS = [("normjit", normjit_impl), ("torch.F", torch_functional), ("composite", composite),
         ("torch.compile", compiled), ("triton", triton_norm)]


def reference(op, x, w, b):
    xd, wd = x.double(), w.double()
    if op == "rmsnorm":
        return xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + EPS) * wd
    mu = xd.mean(-1, keepdim=True)
    var = (xd - mu).pow(2).mean(-1, keepdim=True)
    return (xd - mu) * torch.rsqrt(var + EPS) * wd + b.double()


def max_error(y, ref):
    """max |y - ref| / max |ref| per row, worst row; checked on up to 2048 rows."""
    y2, r2 = y.reshape(-1, y.shape[-1]), ref.reshape(-1, ref.shape[-1])
    if y2.shape[0] > 2048:
        idx = torch.linspace(0, y2.shape[0] - 1, 2048, device=y.device).long()
        y2, r2 = y2[idx], r2[idx]
    err = (y2.double() - r2).abs().amax(-1) / r2.abs().amax(-1).clamp_min(1e-30)
    if torch.isnan(y2).any():
        return math.inf
    return err.max().item()


def make_inputs(rows, hidden, dtype):
    g = torch.Generator(device="cuda").manual_seed(rows * 131 + hidden)
    x = torch.randn(rows, hidden, device="cuda", dtype=torch.float32, generator=g).to(dtype)
    x += 0.25  # a nonzero mean, so LayerNorm has something to subtract
    w = (1 + 0.2 * torch.randn(hidden, device="cuda", generator=g)).to(dtype)
    b = (0.1 * torch.randn(hidden, device="cuda", generator=g)).to(dtype)
    return x, w, b


def bytes_moved(rows, hidden, dtype, op):
    e = torch.tensor([], dtype=dtype).element_size()
    return rows * hidden * 2 * e + hidden * e * (2 if op == "layernorm" else 1)


def copy_bandwidth():
    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, device="cuda").random_()
    dst = torch.empty_like(src)
    ms = do_bench(lambda: dst.copy_(src), warmup=25, rep=200, return_mode="median")
    return 2 * n / (ms * 1e-3)


def time_case(op, rows, hidden, dtype, copy_bw, section, name, writer, results):
    x, w, b = make_inputs(rows, hidden, dtype)
    ref = reference(op, x, w, b)
    moved = bytes_moved(rows, hidden, dtype, op)
    for impl, fn in IMPLS:
        row = {"section": section, "name": name, "impl": impl, "op": op,
               "dtype": str(dtype).replace("torch.", ""), "rows": rows, "hidden": hidden}
        try:
            y = fn(op, x, w, b)
            torch.cuda.synchronize()
            err = max_error(y, ref)
            del y
            if not err <= TOL[dtype]:
                row.update(ms=float("nan"), gbps=float("nan"), pct_copy=float("nan"),
                           error=err, note="WRONG RESULT")
            else:
                ms = do_bench(lambda: fn(op, x, w, b), warmup=10, rep=60, return_mode="median")
                gbps = moved / (ms * 1e-3) / 1e9
                row.update(ms=ms, gbps=gbps, pct_copy=100 * gbps * 1e9 / copy_bw, error=err,
                           note="")
        except Exception as e:  # a peer that cannot run this shape (e.g. Triton at 65536)
            row.update(ms=float("nan"), gbps=float("nan"), pct_copy=float("nan"),
                       error=float("nan"), note=f"failed: {type(e).__name__}: {str(e)[:80]}")
        writer.writerow(row)
        results.append(row)
    del x, w, b, ref
    torch.cuda.empty_cache()


def time_decode(op, rows, hidden, dtype, writer, results, calls=64, replays=20):
    """GPU time per call with the calls captured in a CUDA graph (the decode setting)."""
    x, w, b = make_inputs(rows, hidden, dtype)
    ref = reference(op, x, w, b)
    for impl, fn in IMPLS:
        row = {"section": "decode", "name": f"{rows}x{hidden}", "impl": impl, "op": op,
               "dtype": str(dtype).replace("torch.", ""), "rows": rows, "hidden": hidden,
               "gbps": float("nan"), "pct_copy": float("nan")}
        try:
            s = torch.cuda.Stream()
            with torch.cuda.stream(s):
                for _ in range(3):  # warm up: compiles and loads outside the capture
                    y = fn(op, x, w, b)
            torch.cuda.synchronize()
            err = max_error(y, ref)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g, stream=s):
                for _ in range(calls):
                    y = fn(op, x, w, b)
            g.replay()
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            times = []
            for _ in range(replays):
                start.record()
                g.replay()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / calls)
            times.sort()
            row.update(ms=times[len(times) // 2], error=err,
                       note="" if err <= TOL[dtype] else "WRONG RESULT")
        except Exception as e:
            row.update(ms=float("nan"), error=float("nan"),
                       note=f"failed: {type(e).__name__}: {str(e)[:80]}")
        writer.writerow(row)
        results.append(row)


def print_seed_table(results, copy_bw):
    impls = [i for i, _ in IMPLS]
    print("\n| config | op | dtype | " + " | ".join(f"{i} ms" for i in impls) +
          " | best peer | normjit vs best peer | normjit % of copy |")
    print("| --- | --- | --- | " + " | ".join("---:" for _ in impls) + " | --- | ---: | ---: |")
    keys = []
    for r in results:
        k = (r["name"], r["op"], r["dtype"])
        if r["section"] == "seed" and k not in keys:
            keys.append(k)
    for k in keys:
        rows = {r["impl"]: r for r in results if r["section"] == "seed" and
                (r["name"], r["op"], r["dtype"]) == k}
        peers = [(rows[i]["ms"], i) for i in impls[1:] if i in rows and rows[i]["ms"] == rows[i]["ms"]]
        best_ms, best = min(peers) if peers else (float("nan"), "-")
        nj = rows["normjit"]
        cells = " | ".join(f"{rows[i]['ms']:.4f}" if i in rows else "-" for i in impls)
        print(f"| {k[0]} | {k[1]} | {k[2]} | {cells} | {best} | {best_ms / nj['ms']:.2f}x | "
              f"{nj['pct_copy']:.1f}% |")


def print_sweep_table(results, dtype):
    impls = [i for i, _ in IMPLS]
    for op in ("rmsnorm", "layernorm"):
        print(f"\n{op} {dtype}: % of copy bandwidth")
        print("| hidden | rows | " + " | ".join(impls) + " |")
        print("| ---: | ---: | " + " | ".join("---:" for _ in impls) + " |")
        for h in SWEEP_HIDDEN:
            rows = {r["impl"]: r for r in results if r["section"] == "sweep" and r["op"] == op
                    and r["hidden"] == h and r["dtype"] == dtype}
            if not rows:
                continue
            cells = " | ".join(f"{rows[i]['pct_copy']:.1f}" if i in rows else "-" for i in impls)
            print(f"| {h} | {rows['normjit']['rows']} | {cells} |")


def print_decode_table(results):
    impls = [i for i, _ in IMPLS]
    print("\ndecode, GPU us per call under CUDA graph replay")
    print("| op | dtype | rows x hidden | " + " | ".join(impls) + " |")
    print("| --- | --- | --- | " + " | ".join("---:" for _ in impls) + " |")
    keys = []
    for r in results:
        k = (r["op"], r["dtype"], r["name"])
        if r["section"] == "decode" and k not in keys:
            keys.append(k)
    for k in keys:
        rows = {r["impl"]: r for r in results if r["section"] == "decode" and
                (r["op"], r["dtype"], r["name"]) == k}
        cells = " | ".join(f"{rows[i]['ms'] * 1e3:.2f}" if i in rows else "-" for i in impls)
        print(f"| {k[0]} | {k[1]} | {k[2]} | {cells} |")


def plot(results, path, dtype):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(matplotlib not available: no {path})")
        return
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    for ax, op in zip(axes, ("rmsnorm", "layernorm")):
        for impl, _ in IMPLS:
            pts = sorted((r["hidden"], r["gbps"]) for r in results if r["section"] == "sweep"
                         and r["op"] == op and r["impl"] == impl and r["dtype"] == dtype)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=impl)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{op}, {dtype}")
        ax.set_xlabel("hidden size")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("GB/s (x read + y written)")
    axes[1].legend()
    fig.suptitle(f"{torch.cuda.get_device_name()} - {datetime.date.today()}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--sections", default="seed,sweep,decode")
    ap.add_argument("--dtypes", default="fp16,bf16")
    args = ap.parse_args()
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    dts = [dtypes[d] for d in args.dtypes.split(",")]
    sections = args.sections.split(",")
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 4096)
    copy_bw = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()}, {datetime.date.today()}, torch {torch.__version__}, "
          f"triton {triton.__version__}, normjit {normjit.version()}")
    print(f"device copy bandwidth: {copy_bw / 1e12:.3f} TB/s (read + write)")
    results = []
    with open(os.path.join(args.out, "compare.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["section", "name", "impl", "op", "dtype", "rows",
                                               "hidden", "ms", "gbps", "pct_copy", "error",
                                               "note"])
        writer.writeheader()
        if "seed" in sections:
            for name, bsz, seq, h in SEED_SHAPES:
                for op in ("rmsnorm", "layernorm"):
                    for dt in dts:
                        time_case(op, bsz * seq, h, dt, copy_bw, "seed", name, writer, results)
                f.flush()
            print_seed_table(results, copy_bw)
        if "sweep" in sections:
            for h in SWEEP_HIDDEN:
                for op in ("rmsnorm", "layernorm"):
                    for dt in dts:
                        rows = math.ceil(256e6 / (h * 2 * torch.tensor([], dtype=dt).element_size()))
                        time_case(op, rows, h, dt, copy_bw, "sweep", f"{rows}x{h}", writer,
                                  results)
                f.flush()
            for dt in dts:
                print_sweep_table(results, str(dt).replace("torch.", ""))
            plot(results, os.path.join(args.out, "compare.png"),
                 str(dts[0]).replace("torch.", ""))
        if "decode" in sections:
            for h in DECODE_HIDDEN:
                for rows in DECODE_ROWS:
                    for op in ("rmsnorm", "layernorm"):
                        time_decode(op, rows, h, dts[0], writer, results)
            print_decode_table(results)
    notes = [r for r in results if r["note"]]
    for r in notes:
        print(f"note: {r['impl']} {r['op']} {r['dtype']} {r['name']}: {r['note']}")


if __name__ == "__main__":
    main()
