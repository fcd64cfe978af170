#!/usr/bin/env python3
"""CPU checks of bench/fused.py's parts that a GPU run cannot afford to get wrong: the
float64 references and output checks (each right output passes, each corrupted one fails),
the scale layouts, byte counts, the FlashInfer harness's C ABI, the row-wise Triton fused
add (in Triton's interpreter), and every table on made-up results.

usage: python3 bench/fused_selftest.py   (or python3 bench/fused.py --selftest)
"""
import math
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fused  # noqa: E402

failures = []


def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def make_case(op, quant, dtype, rows=8, hidden=512):
    return fused.Case("selftest", "t", op, quant, dtype, rows, hidden, seed=1234)


def test_checks():
    """The unfused formulas pass; a flipped value, a wrong residual or wrong scales fail."""
    for dtype in (torch.float16, torch.bfloat16):
        for op in ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm"):
            case = make_case(op, None, dtype)
            out = fused.build_torch(case)()
            err, _, exact, note = fused.check(case, out)
            expect(note == "" and err < fused.TOL[dtype],
                   f"eager {op} {dtype} passes (error {err:.2e})")
            if fused.is_add(op):
                expect(exact == 100.0, f"eager {op} {dtype} residual bit-exact ({exact}%)")
                case.restore()
                y, res = fused.build_torch(case)()
                res[3, 7] += 1.0
                expect(fused.check(case, (y, res))[3].startswith("WRONG RESIDUAL"),
                       f"corrupted residual of {op} {dtype} fails")
                y = y.clone()
            else:
                y = out.clone()
            y[2, 5] = -y[2, 5] * 3 + 1
            bad = (y, case.r) if fused.is_add(op) else y
            if fused.is_add(op):
                case.restore()
                case.r.add_(case.x)  # the residual as the call left it
            expect(fused.check(case, bad)[3].startswith("WRONG RESULT"),
                   f"corrupted y of {op} {dtype} fails")
        for op in ("rmsnorm", "add_rmsnorm"):
            for quant in fused.QUANTS:
                case = make_case(op, quant, dtype)
                fn = fused._formula(op, quant)
                out = fn(*fused._formula_args(case))
                err, serr, _, note = fused.check(case, out)
                expect(note == "", f"formula {op}+{quant} {dtype} passes (error {err:.3g}, "
                       f"scales {serr:.2g})")
                qs = out[0] if fused.is_add(op) else out
                q, scales = qs
                if fused.qmode(quant) != "tensor":
                    bad_scales = scales.clone() * 1.5
                    bad = ((q, bad_scales), out[1]) if fused.is_add(op) else (q, bad_scales)
                    expect(fused.check(case, bad)[3] != "",
                           f"scales x1.5 of {op}+{quant} {dtype} fail")
                qb = q.view(torch.uint8).clone()
                qb[1] = 0x7E if fused.qkind(quant) == "fp8" else 127  # a row of +max codes
                badq = qb.view(q.dtype)
                bad = ((badq, scales), out[1]) if fused.is_add(op) else (badq, scales)
                expect(fused.check(case, bad)[3].startswith("WRONG RESULT"),
                       f"overwritten codes of {op}+{quant} {dtype} fail")
                if quant == "fp8-tensor":
                    expect(fused.check(case, ((q, None), out[1]) if fused.is_add(op)
                                       else q)[3] == "",
                           f"{op}+fp8-tensor accepts codes without scales")


def test_group_layouts():
    rows, groups = 6, 4
    s = torch.arange(rows * groups, dtype=torch.float32).view(rows, groups)
    expect(torch.equal(fused.group_scales(s, rows, groups), s), "row-major group scales")
    col = torch.zeros(groups, 8)
    col[:, :rows] = s.t()
    expect(torch.equal(fused.group_scales(col, rows, groups), s),
           "column-major padded group scales")
    expect(torch.equal(fused.group_scales(s.t().contiguous().t(), rows, groups), s),
           "column-major strided group scales")


def test_bytes():
    c = make_case("add_rmsnorm", None, torch.bfloat16, rows=4, hidden=256)
    expect(c.bytes_moved() == 4 * 4 * 256 * 2 + 256 * 2, "add_rmsnorm moves 4 passes + weight")
    c = make_case("add_layernorm", "fp8-group128", torch.bfloat16, rows=4, hidden=256) \
        if False else make_case("add_rmsnorm", "fp8-group128", torch.bfloat16, rows=4,
                                hidden=256)
    want = 3 * 4 * 256 * 2 + 4 * 256 + 4 * 4 * 2 + 256 * 2
    expect(c.bytes_moved() == want, f"add_rmsnorm+fp8-group128 bytes {c.bytes_moved()} == {want}")
    c = make_case("rmsnorm", "int8-token", torch.float16, rows=4, hidden=256)
    want = 4 * 256 * 2 + 4 * 256 + 4 * 4 + 256 * 2
    expect(c.bytes_moved() == want, f"rmsnorm+int8-token bytes {c.bytes_moved()} == {want}")


def test_flashinfer_abi():
    path = os.path.join(fused.ROOT, ".peers", "lib", "libfi_norm.so")
    if not os.path.exists(path):
        print(f"skip FlashInfer ABI: {path} not built (bench/peers/build.sh)")
        return
    fi = fused.FlashInfer(path)
    status = fi.lib.fi_rms_norm(fi.BF16, None, None, None, 1, 4096, 4096, 4096, 1e-5, 0, None)
    msg = fi.lib.fi_error_string(status).decode()
    expect(status != 0 and msg, f"fi_rms_norm without a GPU answers an error: {status} {msg}")
    status = fi.lib.fi_rms_norm(7, None, None, None, 1, 4096, 4096, 4096, 1e-5, 0, None)
    expect(status == 1, f"fi_rms_norm refuses dtype 7 with cudaErrorInvalidValue ({status})")


TRITON_SNIPPET = r"""
import os, sys, torch
sys.path.insert(0, sys.argv[1])
import fused
fused.DEVICE = "cpu"
worst = 0.0
for op in ("add_rmsnorm", "add_layernorm"):
    case = fused.Case("t", "t", op, None, torch.float16, 3, 1000, seed=5)
    out = fused.build_triton(case)()
    err, _, exact, note = fused.check(case, out)
    print(op, err, exact, note)
    assert note == "" and exact == 100.0, (op, err, exact, note)
print("TRITON-OK")
"""


def test_triton_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    p = subprocess.run([sys.executable, "-c", TRITON_SNIPPET, HERE], env=env,
                       capture_output=True, text=True, timeout=300)
    ok = "TRITON-OK" in p.stdout
    expect(ok, "row-wise Triton fused add (interpreter) matches the reference bit for bit "
           "in the residual")
    if not ok:
        print(p.stdout[-2000:], p.stderr[-3000:])


def fake_results():
    """Results of every section, with gaps and failures, shaped as the GPU run writes them."""
    import random
    rnd = random.Random(3)
    res = []

    def row(section, case, op, quant, dtype, rows, hidden, impl, us, note=""):
        return {"section": section, "case": case, "op": op, "quant": quant or "",
                "dtype": dtype, "rows": rows, "hidden": hidden, "impl": impl, "us": us,
                "us_fwd": us, "us_rev": us * 1.01, "bytes": rows * hidden * 8,
                "gbps": 1.0, "pct_copy": 95.0 if impl != "copy" else 100.0, "error": 1e-3,
                "scale_error": math.nan, "res_exact_pct": 100.0, "first_call_s": 0.1,
                "note": note}
    for name, rows, hidden in fused.SEED_SHAPES:
        for op in ("add_rmsnorm", "add_layernorm"):
            for dt in ("float16", "bfloat16"):
                for impl in ("normjit", "torch", "compile", "flashinfer", "triton", "copy"):
                    if impl == "flashinfer" and op == "add_layernorm":
                        continue
                    us = rnd.uniform(10, 100) if not (impl == "flashinfer" and hidden > 10000) \
                        else math.nan
                    res.append(row("fused", name, op, None, dt, rows, hidden, impl, us,
                                   "" if us == us else "failed: RuntimeError: too wide"))
        for op in ("rmsnorm", "add_rmsnorm"):
            for q in fused.QUANTS:
                for impl in ("normjit", "flashinfer", "compile", "copy"):
                    if impl == "flashinfer" and q not in ("fp8-tensor", "fp8-group128"):
                        continue
                    res.append(row("quant", name, op, q, "bfloat16", rows, hidden, impl,
                                   rnd.uniform(10, 100)))
    for h in fused.DECODE_HIDDEN:
        for r in fused.DECODE_ROWS:
            for op, q in fused.decode_ops(fused.parse_args([]), r):
                impls = ["normjit"] if q else fused.DECODE_IMPLS[op] + ["compile"]
                for impl in impls:
                    res.append(row("decode", f"{r}x{h}", op, q, "bfloat16", r, h, impl,
                                   rnd.uniform(1.5, 3)))
    for h in fused.parse_args([]).wide_hidden:
        r = fused.wide_rows(h)
        for op in ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm"):
            for impl in ("normjit", "torch", "flashinfer", "copy"):
                res.append(row("wide", f"{r}x{h}", op, None, "bfloat16", r, h, impl,
                               rnd.uniform(50, 150)))
    for impl in ("normjit.rms_norm", "F.rms_norm"):
        res.append(row("host", "1x4096", "rmsnorm", None, "bfloat16", 1, 4096, impl, 5.0))
    for impl in ("normjit", "normjit pdl"):
        res.append(row("chain", "64x4096", "gemm-rmsnorm-gemm", None, "bfloat16", 64, 4096,
                       impl, 30.0 if impl == "normjit" else math.nan,
                       "" if impl == "normjit" else "skipped: TypeError: pdl"))
    return res


def test_tables():
    res = fake_results()
    full = "\n".join(fused.summary_tables(res, full=True))
    short = "\n".join(fused.summary_tables(res, full=False))
    expect("### fused residual add" in full and "### decode" in full and "### notes" in full,
           f"full tables render ({len(full)} characters)")
    expect(len(short) < 10500, f"compact tables fit the 12,000-character output tail "
           f"({len(short)} characters)")
    with tempfile.TemporaryDirectory() as d:
        args = fused.parse_args(["--out", d])
        run = fused.Run(args, d)
        run.emit(res)
        run.f.close()
        again = fused.load_results(os.path.join(d, "fused.csv"))
        expect(len(again) == len(res) and "\n".join(fused.summary_tables(again, False)) == short,
               "results read back from fused.csv give the same tables (--resume)")
    print(short)


def test_dry_run():
    """Every section end to end on the CPU at toy sizes, GPU timers replaced by stand-ins:
    the plumbing (builders, checks, notes for peers that cannot run here, both orders, the
    CSV, --resume, the tables) must hold before a GPU minute is spent on it."""
    calls = {"gpu": 0, "graph": 0}

    def fake_gpu_times(fn, reps, warmup=0):
        for _ in range(warmup + 2):
            fn()
        calls["gpu"] += 1
        return [0.01 + 0.001 * calls["gpu"]] * reps

    def fake_graph_time(fn, n, replays):
        for _ in range(3):
            fn()
        calls["graph"] += 1
        return 2.0 + 0.01 * calls["graph"]
    saved = (fused.gpu_times, fused.graph_time, torch.cuda.synchronize, fused.SEED_SHAPES,
             fused.DECODE_ROWS, fused.DECODE_HIDDEN)
    fused.gpu_times, fused.graph_time = fake_gpu_times, fake_graph_time
    torch.cuda.synchronize = lambda *a, **k: None
    fused.SEED_SHAPES = [("Small", 4, 256)]
    fused.DECODE_ROWS, fused.DECODE_HIDDEN = (1, 3), (256,)
    try:
        with tempfile.TemporaryDirectory() as d:
            args = fused.parse_args(["--out", d, "--dtypes", "bf16", "--wide-hidden", "512",
                                     "--decode-compile", "1x256", "--host-calls", "5",
                                     "--host-trials", "1", "--chain-rows", "4",
                                     "--chain-hidden", "256"])
            run = fused.Run(args, d)
            for name in ("fused", "quant", "wide"):
                fused.SECTIONS[name](run, args)
            run.f.close()
            args.resume = True
            run = fused.Run(args, d, resume=True)
            for name in ("decode", "host", "chain"):
                fused.SECTIONS[name](run, args)
            run.f.close()
            res = fused.load_results(os.path.join(d, "fused.csv"))
        by = {}
        for r in res:
            by.setdefault((r["section"], r["impl"]), []).append(r)
        timed = lambda sec, impl: [r for r in by.get((sec, impl), []) if r["us"] == r["us"]]  # noqa: E731
        expect(len(timed("fused", "torch")) == 2 and len(timed("fused", "compile")) == 2,
               "fused: torch eager and torch.compile checked and timed on the CPU")
        expect(len(timed("quant", "compile")) == 8, "quant: compile of every formula timed")
        expect(all(r["note"] for r in by[("fused", "normjit")]),
               "fused: normjit without a GPU becomes a note, not a crash")
        expect(all(r["us"] == r["us"] and r["pct_copy"] == r["pct_copy"]
                   for r in timed("fused", "torch")), "fused: % of copy computed")
        expect(len(timed("decode", "compile")) == 4, "decode: compile at --decode-compile only")
        expect(len([r for r in res if r["section"] == "decode"]) == 2 * (14 + 8 + 3) + 4,
               f"decode rows: {len([r for r in res if r['section'] == 'decode'])}")
        expect(len(timed("host", "F.rms_norm")) == 1, "host: F.rms_norm timed")
        expect(len(timed("chain", "F.rms_norm")) == 1 and
               len(timed("chain", "gemm, gemm (no norm)")) == 1, "chain: baseline and F timed")
        expect(len(timed("wide", "torch")) == 4, "wide: torch eager for all four ops")
        lines = fused.summary_tables(res, full=True)
        expect(any("### notes" in ln for ln in lines), "dry-run tables render")
    finally:
        (fused.gpu_times, fused.graph_time, torch.cuda.synchronize, fused.SEED_SHAPES,
         fused.DECODE_ROWS, fused.DECODE_HIDDEN) = saved


def main():
    fused.DEVICE = "cpu"
    torch.manual_seed(0)
    test_checks()
    test_group_layouts()
    test_bytes()
    test_flashinfer_abi()
    test_tables()
    test_triton_interpreter()
    test_dry_run()
    est = fused.estimate(fused.parse_args([]))
    expect(sum(est.values()) < 9 * 60, f"estimate of a full run {sum(est.values()):.0f} s")
    print(f"\n{len(failures)} failed" if failures else "\nall passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
