#!/usr/bin/env python3
"""Fused norms (residual add, quantized outputs) against their peers, in one run on one GPU.

Sections (--sections, comma-separated; all by default, in this order):
  fused   add_rmsnorm and add_layernorm at the six seed shapes: normjit; torch eager
          (residual.add_(x), then F.rms_norm / F.layer_norm); torch.compile of that; FlashInfer
          FusedAddRMSNorm; Liger's fused add; a row-wise Triton kernel; the same-size copy
  quant   rmsnorm and add_rmsnorm with fp8-tensor, fp8-token, int8-token and fp8-group128
          outputs at the seed shapes: normjit; FlashInfer's RMSNormQuant, FusedAddRMSNormQuant
          and FusedAddRMSNormFP8BlockQuant where it has them; torch.compile of the unfused
          formula; the same-size copy
  decode  1..256 rows x hidden 1024..16384 under CUDA-graph replay: rmsnorm, layernorm, the
          fused adds and every quantized output: normjit; Triton row-wise; Liger; FlashInfer;
          torch.compile at a few shapes (--decode-compile)
  host    host time per call, back to back without a graph (normjit against torch and peers)
  chain   a graph-captured GEMM -> RMSNorm -> GEMM chain, with and without programmatic
          dependent launch
  wide    hidden 32768..262144 at 256-512 rows, plain and fused, against the same-size copy

Method. Every output is checked against a float64 reference (on up to 256 rows spread over
the tensor) before anything is timed; an implementation that fails a check or cannot run the
case gets a note instead of a time. Outside decode and chain, each call is timed alone with
layouts.gpu_times (L2 flushed before each call, the GPU held by a spin so the host has queued
the call: CUDA events measure the GPU). Every implementation of a case is timed twice in the
same run, in list order and then in reverse order, and the better of the two medians counts.
Decode and chain time CUDA-graph replays (calls captured back to back, GPU time per call).
The same-size copy is a device copy of exactly the bytes one call moves (reads plus writes:
4 passes for a fused add; quantized outputs count 1-byte codes and their fp32 scales; weights
once). torch.compile gets dynamic=False and one compile per case; compiling is timed apart
(first_call_s) and never in the timings.

usage: python3 bench/fused.py [--out DIR] [--sections fused,quant,...] [--estimate]
Writes DIR/fused.csv (every measurement), DIR/fused.md (full tables), DIR/fused-summary.md
(the compact tables, also printed last). Peers are optional: a missing one (Liger not on the
path, .peers/lib/libfi_norm.so not built, a normjit op or argument the binding lacks) turns
its rows into notes. --selftest checks the reference, checks and tables on the CPU.
"""
import argparse
import csv
import ctypes
import datetime
import math
import os
import signal
import statistics
import sys
import time
import traceback

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import compare  # noqa: E402  (the row-wise Triton peer, seed shapes, eps)
from compare import normjit  # noqa: E402
from layouts import gpu_times  # noqa: E402

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

# NORMJIT_PDL=1: normjit launches with programmatic dependent launch in this process.
PDL_RUN = os.environ.get("NORMJIT_PDL", "0") == "1"
EPS = compare.EPS
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
SEED_SHAPES = [(name, bsz * seq, hidden) for name, bsz, seq, hidden in compare.SEED_SHAPES]
SEED_LABEL = {name: f"{name} {bsz}x{seq}x{hidden}"
              for name, bsz, seq, hidden in compare.SEED_SHAPES}
QUANTS = ("fp8-tensor", "fp8-token", "int8-token", "fp8-group128")
GROUP = 128
QMAX = {"fp8": 448.0, "int8": 127.0}
QDTYPE = {"fp8": torch.float8_e4m3fn, "int8": torch.int8}
TOL = compare.TOL
QTOL = {"fp8": 0.075, "int8": 0.012}  # of the row's largest value: half a code step, and margin
SCALE_TOL = 0.02  # relative; FlashInfer's block quant scales the 16-bit rounded y
DECODE_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DECODE_HIDDEN = (1024, 2048, 4096, 5120, 8192, 16384)
WIDE_HIDDEN = "32768,65536,131072,262144"


def wide_rows(hidden):
    """Few rows, as in the wide-row targets: 512 up to 131072, 256 beyond."""
    return 512 if hidden <= 131072 else 256
TRITON_MAX_HIDDEN = 65536  # beyond it the row-wise kernels spill or fail to compile
CHECK_ROWS = 256
PEERS = ("torch", "compile", "flashinfer", "liger", "triton")
DEVICE = "cuda"


def qkind(quant):
    return quant.split("-")[0]


def qmode(quant):
    mode = quant.split("-")[1]
    return "group" if mode.startswith("group") else mode


def is_add(op):
    return op.startswith("add_")


def is_ln(op):
    return op.endswith("layernorm")


def op_name(op, quant):
    return op if quant is None else f"{op}+{quant}"


# ---------------------------------------------------------------------------
# Inputs, bytes, reference and checks


class Case:
    """One shape of one op: its buffers, regenerated in place before every timed run."""

    def __init__(self, section, label, op, quant, dtype, rows, hidden, seed):
        self.section, self.label, self.op, self.quant = section, label, op, quant
        self.dtype, self.rows, self.hidden, self.seed = dtype, rows, hidden, seed
        g = torch.Generator(device=DEVICE).manual_seed(seed)
        self.w = (1 + 0.2 * torch.randn(hidden, device=DEVICE, generator=g)).to(dtype)
        self.bias = (0.1 * torch.randn(hidden, device=DEVICE, generator=g)).to(dtype)
        self.w32, self.b32 = self.w.float(), self.bias.float()
        self.x = torch.empty(rows, hidden, device=DEVICE, dtype=dtype)
        self.r = torch.empty_like(self.x) if is_add(op) else None
        self.scale = None
        self.restore()
        self.idx = torch.linspace(0, rows - 1, min(rows, CHECK_ROWS),
                                  device=DEVICE).round().long().unique()
        self.ref = self.reference()
        if quant is not None and qmode(quant) == "tensor":
            # Headroom over the sampled rows' largest value: rows not sampled may exceed it.
            amax = self.ref["y"].abs().max().item()
            self.scale = torch.tensor([1.25 * amax / QMAX[qkind(quant)]], device=DEVICE)

    def restore(self):
        """Fresh inputs (the fused ops overwrite theirs), the same every time."""
        g = torch.Generator(device=DEVICE).manual_seed(self.seed + 1)
        self.x.normal_(generator=g)
        if self.r is not None:
            self.r.normal_(generator=g)
            self.r.add_(0.25)  # a nonzero mean, so LayerNorm has something to subtract
        else:
            self.x.add_(0.25)

    def reference(self):
        xs = self.x[self.idx]
        ref = {}
        if self.r is not None:
            s = (xs.float() + self.r[self.idx].float()).to(self.dtype)  # fp32 sum, rounded once
            ref["res"] = s
            xs = s
        d = xs.double()
        if is_ln(self.op):
            c = d - d.mean(-1, keepdim=True)
            y = c * torch.rsqrt(c.pow(2).mean(-1, keepdim=True) + EPS) * self.w.double() \
                + self.bias.double()
        else:
            y = d * torch.rsqrt(d.pow(2).mean(-1, keepdim=True) + EPS) * self.w.double()
        ref["y"] = y
        return ref

    def bytes_moved(self):
        e = self.x.element_size()
        n = self.rows * self.hidden
        total = n * e * (3 if is_add(self.op) else 1)  # x read; residual read and written
        total += self.hidden * e * (2 if is_ln(self.op) else 1)  # weight (and bias) once
        if self.quant is None:
            return total + n * e
        mode = qmode(self.quant)
        scales = {"tensor": 1, "token": self.rows, "group": self.rows * self.hidden // GROUP}[mode]
        return total + n + 4 * scales

    def release(self):
        self.x = self.r = self.ref = None


def row_error(got, want):
    """max |got - want| / max |want| per row, worst row (NaN anywhere: inf)."""
    if torch.isnan(got).any():
        return math.inf
    return ((got - want).abs().amax(-1) / want.abs().amax(-1).clamp_min(1e-30)).max().item()


def group_scales(scales, rows, groups):
    """The [rows, groups] view of group scales, row-major or column-major (padded or not)."""
    if scales.dim() == 2 and tuple(scales.shape) == (rows, groups):
        return scales
    if scales.dim() == 2 and scales.shape[0] == groups and scales.shape[1] >= rows:
        return scales[:, :rows].t()
    if scales.numel() == rows * groups:
        return scales.reshape(rows, groups)
    raise ValueError(f"group scales of shape {tuple(scales.shape)} for {rows}x{groups}")


def check(case, out):
    """(error, scale error, % of residual bits equal, note); note is '' when the output is right."""
    h, idx, ref = case.hidden, case.idx, case.ref
    res_exact = scale_err = math.nan
    if is_add(case.op):
        # (y, residual), ((q, scales), residual) or normjit's flat (q, scales, residual)
        *y_parts, res = out
        y_part = y_parts[0] if len(y_parts) == 1 else tuple(y_parts)
        got = res.reshape(-1, h)[idx]
        same = got.view(torch.int16) == ref["res"].view(torch.int16)
        res_exact = 100.0 * same.float().mean().item()
        res_err = row_error(got.double(), ref["res"].double())
        if not res_err <= TOL[case.dtype]:
            return res_err, scale_err, res_exact, f"WRONG RESIDUAL (error {res_err:.3g})"
    else:
        y_part = out
    if case.quant is None:
        err = row_error(y_part.reshape(-1, h)[idx].double(), ref["y"])
        note = "" if err <= TOL[case.dtype] else f"WRONG RESULT (error {err:.3g})"
        return err, scale_err, res_exact, note
    q, scales = y_part if isinstance(y_part, (tuple, list)) else (y_part, None)
    kind, mode = qkind(case.quant), qmode(case.quant)
    if kind == "fp8" and q.dtype == torch.uint8:
        q = q.view(QDTYPE[kind])  # fp8 codes handed back as bytes
    if q.dtype != QDTYPE[kind]:
        return math.nan, scale_err, res_exact, f"WRONG DTYPE {q.dtype}"
    if scales is None and mode != "tensor":
        return math.nan, scale_err, res_exact, "WRONG OUTPUT: no scales returned"
    # Indexed as bytes: not every torch build indexes fp8 tensors.
    qs = q.reshape(-1, h).view(torch.uint8)[idx].view(q.dtype).float().double()
    qmax = QMAX[kind]
    if mode == "tensor":
        s = (scales if scales is not None else case.scale).reshape(-1)[0].double()
        deq = qs * s
    else:
        amax = ref["y"].abs().amax(-1) if mode == "token" else \
            ref["y"].view(len(idx), -1, GROUP).abs().amax(-1)
        min_scale = 1 / (qmax * 512) if mode == "token" else 1e-10 / qmax
        want = (amax / qmax).clamp_min(min_scale)
        if mode == "token":
            s = scales.reshape(-1)[:case.rows][idx].double()
            deq = qs * s[:, None]
        else:
            s = group_scales(scales, case.rows, h // GROUP)[idx].double()
            deq = (qs.view(len(idx), -1, GROUP) * s[:, :, None]).view(len(idx), h)
        scale_err = ((s - want).abs() / want).max().item()
    err = row_error(deq, ref["y"])
    note = ""
    if not err <= QTOL[kind]:
        note = f"WRONG RESULT (error {err:.3g})"
    elif not (scale_err <= SCALE_TOL or math.isnan(scale_err)):
        note = f"WRONG SCALES (error {scale_err:.3g})"
    return err, scale_err, res_exact, note


# ---------------------------------------------------------------------------
# Peers: formulas for torch eager and torch.compile, a row-wise Triton fused add, Liger and
# FlashInfer behind ctypes. Each builder takes a Case and returns a callable that runs one
# call on the case's buffers and returns the op's outputs: y, (y, residual), (q, scales) or
# ((q, scales), residual).


def _eager_rms(x, w):
    return F.rms_norm(x, (x.shape[-1],), w, EPS)


def _eager_ln(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, EPS)


def _eager_add_rms(x, r, w):
    r.add_(x)
    return F.rms_norm(r, (x.shape[-1],), w, EPS), r


def _eager_add_ln(x, r, w, b):
    r.add_(x)
    return F.layer_norm(r, (x.shape[-1],), w, b, EPS), r


def _rms32(x, w):
    """RMSNorm in fp32, not rounded: what a quantizer reads."""
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + EPS) * w.float()


def _quantize(v, quant, scale):
    """The unfused quantization formulas (vLLM's conventions), as a model's code writes them."""
    kind, mode = qkind(quant), qmode(quant)
    qmax = QMAX[kind]
    if mode == "tensor":
        return (v * (1.0 / scale)).clamp(-qmax, qmax).to(QDTYPE[kind]), scale
    if mode == "token":
        s = (v.abs().amax(-1, keepdim=True) / qmax).clamp_min(1 / (qmax * 512))
        t = (v / s).clamp(-qmax, qmax)
        q = t.round().to(torch.int8) if kind == "int8" else t.to(QDTYPE[kind])
        return q, s.squeeze(-1)
    vg = v.unflatten(-1, (-1, GROUP))
    s = (vg.abs().amax(-1, keepdim=True) / qmax).clamp_min(1e-10 / qmax)
    return (vg / s).clamp(-qmax, qmax).to(QDTYPE[kind]).flatten(-2), s.squeeze(-1)


def _formula(op, quant):
    """The unfused computation of (op, quant) as one Python function of tensors."""
    if quant is None:
        return {"rmsnorm": _eager_rms, "layernorm": _eager_ln, "add_rmsnorm": _eager_add_rms,
                "add_layernorm": _eager_add_ln}[op]
    if op == "rmsnorm":
        return lambda x, w, scale: _quantize(_rms32(x, w), quant, scale)

    def add_quant(x, r, w, scale):
        r.add_(x)
        return _quantize(_rms32(r, w), quant, scale), r
    return add_quant


def _formula_args(case):
    args = [case.x] + ([case.r] if case.r is not None else []) + [case.w]
    if case.quant is not None:
        args.append(case.scale)
    elif is_ln(case.op):
        args.append(case.bias)
    return args


def build_torch(case):
    if case.quant is not None:
        raise NotImplementedError("no eager peer for quantized outputs (compile is the peer)")
    fn, args = _formula(case.op, None), _formula_args(case)
    return lambda: fn(*args)


def build_compile(case):
    if case.quant is not None and case.op not in ("rmsnorm", "add_rmsnorm"):
        raise NotImplementedError("quantized formula written for RMSNorm only")
    fn = torch.compile(_formula(case.op, case.quant), dynamic=False)
    args = _formula_args(case)
    return lambda: fn(*args)


def build_normjit(case):
    if PDL_RUN:
        raise NotImplementedError("this process launches normjit with PDL (NORMJIT_PDL=1); "
                                  "only the chain section is measured so")
    kw = {}
    if case.quant is not None:
        kw["quant"] = case.quant
        if qmode(case.quant) == "tensor":
            kw["scale"] = case.scale
    x, r, w, b = case.x, case.r, case.w, case.bias
    return {
        "rmsnorm": lambda: normjit.rms_norm(x, w, EPS, **kw),
        "layernorm": lambda: normjit.layer_norm(x, w, b, EPS, **kw),
        "add_rmsnorm": lambda: normjit.fused_add_rms_norm(x, r, w, EPS, **kw),
        "add_layernorm": lambda: normjit.fused_add_layer_norm(x, r, w, b, EPS, **kw),
    }[case.op]


@triton.jit
def _triton_add_norm(X, R, S, Y, W, B, stride_x, stride_r, stride_s, stride_y, N, eps,
                     IS_LN: tl.constexpr, BLOCK: tl.constexpr):
    """compare.py's row-wise kernel with the residual add: s = x + r rounded to r's dtype."""
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(X + row * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    r = tl.load(R + row * stride_r + cols, mask=mask, other=0.0).to(tl.float32)
    s16 = (x + r).to(S.dtype.element_ty)
    tl.store(S + row * stride_s + cols, s16, mask=mask)
    s = s16.to(tl.float32)
    if IS_LN:
        mean = tl.sum(s, axis=0) / N
        d = tl.where(mask, s - mean, 0.0)
    else:
        d = s
    rstd = 1.0 / tl.sqrt(tl.sum(d * d, axis=0) / N + eps)
    y = d * rstd * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    if IS_LN:
        y += tl.load(B + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_y + cols, y.to(Y.dtype.element_ty), mask=mask)


def build_triton(case):
    if case.quant is not None:
        raise NotImplementedError("no row-wise Triton kernel for quantized outputs")
    if case.hidden > TRITON_MAX_HIDDEN:
        raise NotImplementedError(f"row-wise Triton not run past hidden {TRITON_MAX_HIDDEN}")
    x, r, w, b, n = case.x, case.r, case.w, case.bias, case.hidden
    if not is_add(case.op):
        return lambda: compare.triton_norm(case.op, x, w, b)
    block = triton.next_power_of_2(n)
    warps = min(max(block * x.element_size() // 512, 1), 16)
    ln = is_ln(case.op)

    def run():
        y = torch.empty_like(x)
        _triton_add_norm[(x.shape[0],)](x, r, r, y, w, b, x.stride(0), r.stride(0), r.stride(0),
                                        y.stride(0), n, EPS, IS_LN=ln, BLOCK=block,
                                        num_warps=warps)
        return y, r
    return run


_liger = {}


def _dist_version(name):
    """An installed distribution's version (Liger has no __version__), or '?'."""
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:  # noqa: BLE001
        return "?"


def liger():
    """Liger's forward functions, imported once (from wherever PYTHONPATH puts the wheel)."""
    if not _liger:
        try:
            from liger_kernel.ops.fused_add_rms_norm import fused_add_rms_norm_forward
            from liger_kernel.ops.layer_norm import layer_norm_forward
            from liger_kernel.ops.rms_norm import rms_norm_forward
            import liger_kernel
            _liger.update(rms=rms_norm_forward, ln=layer_norm_forward,
                          add_rms=fused_add_rms_norm_forward,
                          version=getattr(liger_kernel, "__version__", None) or _dist_version("liger-kernel"))
        except Exception as e:  # noqa: BLE001 - any import failure just drops the peer
            _liger["error"] = f"{type(e).__name__}: {e}"
    if "error" in _liger:
        raise ImportError(f"liger_kernel: {_liger['error']}")
    return _liger


def build_liger(case):
    if case.quant is not None:
        raise NotImplementedError("Liger has no quantized outputs")
    lg = liger()
    x, r, w, b = case.x, case.r, case.w, case.bias
    # casting_mode "gemma" with offset 0: fp32 throughout, rounded once, as normjit's default.
    if case.op == "rmsnorm":
        return lambda: lg["rms"](x, w, EPS, 0.0, "gemma", False)[0]
    if case.op == "layernorm":
        return lambda: lg["ln"](x, w, b, EPS)[0]
    if case.op == "add_rmsnorm":
        def run():
            out = lg["add_rms"](x, r, w, EPS, 0.0, "gemma")
            return out[0], out[1]
        return run
    raise NotImplementedError("Liger has no fused add + LayerNorm")


class FlashInfer:
    """The C ABI of bench/peers/flashinfer_norm.cu (dtype codes as normjit's)."""

    F16, BF16, FP8_E4M3 = 2, 3, 4

    def __init__(self, path):
        self.lib = lib = ctypes.CDLL(path)
        P, U, Fl, I = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_float, ctypes.c_int
        sig = {
            "fi_rms_norm": [I, P, P, P, U, U, U, U, Fl, I, P],
            "fi_fused_add_rms_norm": [I, P, P, P, U, U, U, U, Fl, I, P],
            "fi_rms_norm_quant": [I, I, P, P, P, U, U, U, U, P, Fl, I, P],
            "fi_fused_add_rms_norm_quant": [I, I, P, P, P, P, U, U, U, U, U, P, Fl, I, P],
            "fi_fused_add_rms_norm_fp8_block_quant": [I, P, P, P, P, P, P, U, U, U, U, U, U, U,
                                                      Fl, I, P],
            "fi_layer_norm": [I, P, P, P, P, U, U, Fl, P],
        }
        for name, argtypes in sig.items():
            getattr(lib, name).argtypes = argtypes
            getattr(lib, name).restype = I
        lib.fi_error_string.argtypes = [I]
        lib.fi_error_string.restype = ctypes.c_char_p

    def call(self, name, *args):
        status = getattr(self.lib, name)(*args, torch.cuda.current_stream().cuda_stream)
        if status != 0:
            raise RuntimeError(f"FlashInfer {name}: {self.lib.fi_error_string(status).decode()}")

    def code(self, dtype):
        return {torch.float16: self.F16, torch.bfloat16: self.BF16}[dtype]


_fi = {}


def flashinfer():
    if not _fi:
        path = os.environ.get("FLASHINFER_NORM_LIB",
                              os.path.join(ROOT, ".peers", "lib", "libfi_norm.so"))
        try:
            _fi["lib"] = FlashInfer(path)
        except OSError as e:
            _fi["error"] = str(e)
    if "error" in _fi:
        raise ImportError(f"FlashInfer harness: {_fi['error']} (run bench/peers/build.sh)")
    return _fi["lib"]


def build_flashinfer(case, pdl=False):
    fi = flashinfer()
    x, r, w, n, rows = case.x, case.r, case.w, case.hidden, case.rows
    c, p = fi.code(case.dtype), (lambda t: t.data_ptr())
    op, quant = case.op, case.quant
    if quant is None and op == "rmsnorm":
        y = torch.empty_like(x)

        def run():
            fi.call("fi_rms_norm", c, p(x), p(w), p(y), rows, n, x.stride(0), y.stride(0), EPS,
                    int(pdl))
            return y
        return run
    if quant is None and op == "layernorm":
        y = torch.empty_like(x)  # TensorRT-LLM's generalLayerNorm; fp32 gamma and beta

        def run():
            fi.call("fi_layer_norm", c, p(x), p(case.w32), p(case.b32), p(y), rows, n, EPS)
            return y
        return run
    if quant is None and op == "add_rmsnorm":
        def run():  # residual += x, then x = RMSNorm(residual): both in place
            fi.call("fi_fused_add_rms_norm", c, p(x), p(r), p(w), rows, n, x.stride(0),
                    r.stride(0), EPS, int(pdl))
            return x, r
        return run
    if quant == "fp8-tensor" and op in ("rmsnorm", "add_rmsnorm"):
        q = torch.empty(rows, n, dtype=torch.float8_e4m3fn, device=DEVICE)
        s = case.scale
        if op == "rmsnorm":
            def run():
                fi.call("fi_rms_norm_quant", c, fi.FP8_E4M3, p(x), p(w), p(q), rows, n,
                        x.stride(0), q.stride(0), p(s), EPS, int(pdl))
                return q, s
            return run

        def run_add():
            fi.call("fi_fused_add_rms_norm_quant", c, fi.FP8_E4M3, p(x), p(r), p(w), p(q), rows,
                    n, x.stride(0), r.stride(0), q.stride(0), p(s), EPS, int(pdl))
            return (q, s), r
        return run_add
    if quant == "fp8-group128" and op == "add_rmsnorm":
        # It also writes the 16-bit y (2 bytes per element more than counted) and quantizes it.
        q = torch.empty(rows, n, dtype=torch.float8_e4m3fn, device=DEVICE)
        normed = torch.empty_like(x)
        m_pad = (rows + 3) // 4 * 4
        scales = torch.empty(n // GROUP, m_pad, dtype=torch.float32, device=DEVICE)

        def run_block():
            fi.call("fi_fused_add_rms_norm_fp8_block_quant", c, p(x), p(r), p(w), p(q),
                    p(scales), p(normed), rows, n, x.stride(0), r.stride(0), q.stride(0),
                    normed.stride(0), m_pad, EPS, int(pdl))
            return (q, scales[:, :rows].t()), r
        return run_block
    raise NotImplementedError(f"FlashInfer has no {op_name(op, quant)}")


def build_copy_of(nbytes):
    """A device copy of nbytes (so 2 * nbytes moved)."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=DEVICE).random_()
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)


def build_copy(case):
    return build_copy_of(case.bytes_moved() // 2)


BUILDERS = {"normjit": build_normjit, "torch": build_torch, "compile": build_compile,
            "flashinfer": build_flashinfer, "liger": build_liger, "triton": build_triton,
            "copy": build_copy}
FI_NOTE = {("add_rmsnorm", "fp8-group128"): "FlashInfer also writes the 16-bit y (+2 B/elem)"}


# ---------------------------------------------------------------------------
# Running a case


FIELDS = ["section", "case", "op", "quant", "dtype", "rows", "hidden", "impl", "us", "us_fwd",
          "us_rev", "bytes", "gbps", "pct_copy", "error", "scale_error", "res_exact_pct",
          "first_call_s", "note"]


def skip_note(e):
    known = (ImportError, AttributeError, TypeError, NotImplementedError, normjit.NormjitError)
    kind = "skipped" if isinstance(e, known) else "failed"
    return f"{kind}: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"


def skip(why):
    raise NotImplementedError(why)


def context_lost(msg):
    """Exit 3 (bench/gpu_session.sh then starts a new process with --resume)."""
    print(f"CUDA context lost: {msg}", flush=True)
    raise SystemExit(3)


def device_ok():
    """False once the CUDA context is broken (a sticky error): nothing later can run."""
    try:
        torch.cuda.synchronize()
        return True
    except Exception:  # noqa: BLE001
        return False


NUMERIC = {"rows": int, "hidden": int, "bytes": int}


def load_results(path):
    """The rows of an earlier fused.csv, numbers as numbers (for --resume)."""
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            for k in FIELDS:
                if k in ("us", "us_fwd", "us_rev", "gbps", "pct_copy", "error", "scale_error",
                         "res_exact_pct", "first_call_s"):
                    r[k] = float(r[k]) if r[k] not in ("", None) else math.nan
                elif k in NUMERIC and r[k] not in ("", None):
                    r[k] = NUMERIC[k](r[k])
            out.append(r)
    return out


class Run:
    def __init__(self, args, out_dir, resume=False):
        self.args = args
        path = os.path.join(out_dir, "fused.csv")
        self.results = load_results(path) if resume and os.path.exists(path) else []
        self.f = open(path, "a" if self.results else "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=FIELDS)
        if not self.results:
            self.w.writeheader()
        self.seed = args.seed
        self.cases = 0

    def next_seed(self):
        self.cases += 1
        return self.seed + 7919 * self.cases

    def emit(self, rows):
        for r in rows:
            self.w.writerow({k: r.get(k, "") for k in FIELDS})
            self.results.append(r)
        self.f.flush()

    def run_case(self, section, label, op, quant, dtype, rows, hidden, impls, graph=False):
        """Check every implementation, then time them all in both orders."""
        case = Case(section, label, op, quant, dtype, rows, hidden, self.next_seed())
        base = {"section": section, "case": label, "op": op, "quant": quant or "",
                "dtype": str(dtype).replace("torch.", ""), "rows": rows, "hidden": hidden,
                "bytes": case.bytes_moved()}
        entries, out_rows = [], []
        if section != "decode":
            impls = list(impls) + ["copy"]
        for name in impls:
            row = dict(base, impl=name, us=math.nan, us_fwd=math.nan, us_rev=math.nan,
                       error=math.nan, scale_error=math.nan, res_exact_pct=math.nan,
                       first_call_s=math.nan, note="")
            if name == "flashinfer":
                row["note"] = FI_NOTE.get((op, quant), "")
            out_rows.append(row)
            try:
                t0 = time.perf_counter()
                fn = BUILDERS[name](case)
                case.restore()
                out = fn()
                torch.cuda.synchronize()
                row["first_call_s"] = time.perf_counter() - t0
                if name != "copy":
                    err, serr, exact, note = check(case, out)
                    row.update(error=err, scale_error=serr, res_exact_pct=exact)
                    if note:
                        row["note"] = note
                        continue
                del out
                entries.append((fn, row))
            except Exception as e:  # noqa: BLE001 - a peer that cannot run this case
                row["note"] = skip_note(e)
                if not device_ok():
                    self.emit(out_rows)
                    context_lost(f"at {section} {label} {name}: {e}")
        if graph:
            calls, replays = self.args.graph_calls, self.args.graph_replays
            timer = lambda fn: graph_time(fn, calls, replays)  # noqa: E731
        else:
            est = case.bytes_moved() / 2.9e12 + 8e-6
            reps = max(self.args.min_reps, min(self.args.max_reps, int(0.06 / est)))
            timer = lambda fn: 1e3 * statistics.median(gpu_times(fn, reps, warmup=1))  # noqa: E731
        for key, order in (("us_fwd", entries), ("us_rev", entries[::-1])):
            for fn, row in order:
                try:
                    case.restore()
                    row[key] = timer(fn)
                except Exception as e:  # noqa: BLE001
                    row["note"] = skip_note(e)
                    if not device_ok():
                        self.emit(out_rows)
                        context_lost(f"timing {label} {row['impl']}: {e}")
        copy_us = math.nan
        for row in out_rows:
            times = [t for t in (row["us_fwd"], row["us_rev"]) if t == t]
            row["us"] = min(times) if times else math.nan
            if row["impl"] == "copy":
                copy_us = row["us"]
        for row in out_rows:
            row["gbps"] = row["bytes"] / (row["us"] * 1e-6) / 1e9
            row["pct_copy"] = 100 * copy_us / row["us"]
        self.emit(out_rows)
        notes = "; ".join(f"{r['impl']}: {r['note']}" for r in out_rows if r["note"])
        timed = " ".join(f"{r['impl']}={r['us']:.2f}" for r in out_rows if r["us"] == r["us"])
        print(f"[{section}] {label} {op_name(op, quant)} {base['dtype']} {rows}x{hidden}: "
              f"{timed}" + (f"  ({notes})" if notes else ""), flush=True)
        case.release()
        del case, entries
        return out_rows


def graph_time(fn, calls, replays):
    """GPU us per call: `calls` calls captured in one CUDA graph, median of `replays` replays."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):  # compiles and loads happen outside the capture
            fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        for _ in range(calls):
            fn()
    g.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(replays):
        start.record()
        g.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e3 / calls)
    del g
    return statistics.median(times)


# ---------------------------------------------------------------------------
# Sections


def compile_here(args, section, rows=None, hidden=None):
    if args.compile == "none":
        return False
    if section == "decode":
        return f"{rows}x{hidden}" in args.decode_compile.split(",")
    if section == "wide":
        return args.compile == "all"
    return True


def section_fused(run, args):
    for name, rows, hidden in SEED_SHAPES:
        for op in ("add_rmsnorm", "add_layernorm"):
            for dt in args.dtypes:
                impls = ["normjit", "torch"] + (["compile"] if compile_here(args, "fused") else [])
                impls += ["flashinfer", "liger", "triton"] if op == "add_rmsnorm" else ["triton"]
                run.run_case("fused", name, op, None, dt, rows, hidden, impls)


def section_quant(run, args):
    for name, rows, hidden in SEED_SHAPES:
        for op in ("rmsnorm", "add_rmsnorm"):
            for quant in QUANTS:
                for dt in args.quant_dtypes:
                    impls = ["normjit"]
                    if (op, quant) in (("rmsnorm", "fp8-tensor"), ("add_rmsnorm", "fp8-tensor"),
                                       ("add_rmsnorm", "fp8-group128")):
                        impls.append("flashinfer")
                    if compile_here(args, "quant"):
                        impls.append("compile")
                    run.run_case("quant", name, op, quant, dt, rows, hidden, impls)


DECODE_IMPLS = {"rmsnorm": ["normjit", "triton", "liger", "flashinfer"],
                "layernorm": ["normjit", "triton", "liger", "flashinfer"],
                "add_rmsnorm": ["normjit", "triton", "liger", "flashinfer"],
                "add_layernorm": ["normjit", "triton"]}


DECODE_QUANT_MAX_ROWS = 64  # the fused-over-plain target covers 1-64 rows


def decode_ops(args, rows=1):
    ops = [(op, None) for op in DECODE_IMPLS]
    if args.decode_quant and rows <= DECODE_QUANT_MAX_ROWS:
        ops += [(op, q) for op in ("rmsnorm", "add_rmsnorm") for q in QUANTS]
    return ops


def section_decode(run, args):
    dt = args.decode_dtype
    for hidden in DECODE_HIDDEN:
        for rows in DECODE_ROWS:
            for op, quant in decode_ops(args, rows):
                if quant is None:
                    impls = list(DECODE_IMPLS[op])
                    if compile_here(args, "decode", rows, hidden):
                        impls.append("compile")
                else:
                    impls = ["normjit"]
                    if (op, quant) in (("rmsnorm", "fp8-tensor"), ("add_rmsnorm", "fp8-tensor"),
                                       ("add_rmsnorm", "fp8-group128")):
                        impls.append("flashinfer")
                run.run_case("decode", f"{rows}x{hidden}", op, quant, dt, rows, hidden, impls,
                             graph=True)


def section_wide(run, args):
    for hidden in args.wide_hidden:
        rows = wide_rows(hidden)
        for op in ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm"):
            for dt in args.wide_dtypes:
                impls = ["normjit", "torch", "flashinfer", "liger", "triton"]
                if op == "add_layernorm":
                    impls = ["normjit", "torch", "triton"]
                if compile_here(args, "wide"):
                    impls.append("compile")
                run.run_case("wide", f"{rows}x{hidden}", op, None, dt, rows, hidden, impls)


def section_host(run, args):
    """Host time per call: N calls back to back, then one synchronize; median of trials."""
    rows, hidden = 1, 4096
    dt = args.decode_dtype
    case = Case("host", f"{rows}x{hidden}", "rmsnorm", None, dt, rows, hidden, run.next_seed())
    add = Case("host", f"{rows}x{hidden}", "add_rmsnorm", None, dt, rows, hidden,
               run.next_seed())
    quant = Case("host", f"{rows}x{hidden}", "rmsnorm", "fp8-token", dt, rows, hidden,
                 run.next_seed())
    y = torch.empty_like(case.x)
    x, w = case.x, case.w
    cands = [
        ("torch.empty_like (allocation only)", "rmsnorm", lambda: lambda: torch.empty_like(x)),
        ("normjit.rms_norm", "rmsnorm", lambda: build_normjit(case)),
        ("normjit.rms_norm(out=y)", "rmsnorm",
         lambda: lambda: normjit.rms_norm(x, w, EPS, out=y)),
        ("F.rms_norm", "rmsnorm", lambda: build_torch(case)),
        ("torch.compile rms", "rmsnorm", lambda: build_compile(case) if args.compile != "none"
         else skip("--compile none")),
        ("triton row-wise", "rmsnorm", lambda: build_triton(case)),
        ("liger rms_norm_forward", "rmsnorm", lambda: build_liger(case)),
        ("flashinfer (ctypes)", "rmsnorm", lambda: build_flashinfer(case)),
        ("normjit.fused_add_rms_norm", "add_rmsnorm", lambda: build_normjit(add)),
        ("torch add_ + F.rms_norm", "add_rmsnorm", lambda: build_torch(add)),
        ("normjit.rms_norm fp8-token", "rmsnorm+fp8-token", lambda: build_normjit(quant)),
    ]
    fns, rows_out = [], []
    for name, op, make in cands:
        row = {"section": "host", "case": f"{rows}x{hidden}", "op": op, "quant": "",
               "dtype": str(dt).replace("torch.", ""), "rows": rows, "hidden": hidden,
               "impl": name, "us": math.nan, "us_fwd": math.nan, "us_rev": math.nan, "note": ""}
        rows_out.append(row)
        try:
            t0 = time.perf_counter()
            fn = make()
            for _ in range(20):
                fn()
            torch.cuda.synchronize()
            row["first_call_s"] = time.perf_counter() - t0
            fns.append((fn, row))
        except Exception as e:  # noqa: BLE001
            row["note"] = skip_note(e)
    n = args.host_calls
    for trial in range(2 * args.host_trials):
        key = "fwd" if trial % 2 == 0 else "rev"
        for fn, row in (fns if key == "fwd" else fns[::-1]):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            torch.cuda.synchronize()
            row.setdefault(key, []).append((time.perf_counter() - t0) / n * 1e6)
    for fn, row in fns:
        row["us_fwd"] = statistics.median(row.pop("fwd"))
        row["us_rev"] = statistics.median(row.pop("rev"))
        row["us"] = min(row["us_fwd"], row["us_rev"])
    run.emit(rows_out)
    for r in rows_out:
        print(f"[host] {r['impl']}: {r['us']:.2f} us/call {r['note']}", flush=True)


def section_chain(run, args):
    """GEMM -> RMSNorm -> GEMM captured in a graph, per-chain GPU time of its replays."""
    rows, hidden = args.chain_rows, args.chain_hidden
    dt = torch.bfloat16
    g = torch.Generator(device=DEVICE).manual_seed(run.next_seed())
    a = torch.randn(rows, hidden, device=DEVICE, generator=g).to(dt)
    w1 = (torch.randn(hidden, hidden, device=DEVICE, generator=g) / hidden ** 0.5).to(dt)
    w2 = (torch.randn(hidden, hidden, device=DEVICE, generator=g) / hidden ** 0.5).to(dt)
    w = (1 + 0.2 * torch.randn(hidden, device=DEVICE, generator=g)).to(dt)
    h = a @ w1
    hd = h.double()
    ref = (hd * torch.rsqrt(hd.pow(2).mean(-1, keepdim=True) + EPS) * w.double()).to(dt).double() \
        @ w2.double()
    fi_ok = True
    try:
        fi = flashinfer()
    except ImportError:
        fi_ok = False

    def fi_norm(t, pdl):
        y = torch.empty_like(t)
        fi.call("fi_rms_norm", fi.code(dt), t.data_ptr(), w.data_ptr(), y.data_ptr(), rows,
                hidden, t.stride(0), y.stride(0), EPS, int(pdl))
        return y
    lg = None
    try:
        lg = liger()
    except ImportError:
        pass
    variants = [
        ("gemm, gemm (no norm)", lambda t: t),
        # The device context launches with PDL or without it for the whole process
        # (NORMJIT_PDL): one of these two rows runs, the other in a second run.
        ("normjit", None if PDL_RUN else lambda t: normjit.rms_norm(t, w, EPS)),
        ("normjit pdl", (lambda t: normjit.rms_norm(t, w, EPS)) if PDL_RUN else None),
        ("F.rms_norm", lambda t: F.rms_norm(t, (hidden,), w, EPS)),
        ("triton row-wise", lambda t: compare.triton_norm("rmsnorm", t, w, None)),
        ("liger", (lambda t: lg["rms"](t, w, EPS, 0.0, "gemma", False)[0]) if lg else None),
        ("flashinfer", (lambda t: fi_norm(t, False)) if fi_ok else None),
        ("flashinfer pdl", (lambda t: fi_norm(t, True)) if fi_ok else None),
    ]
    entries, rows_out = [], []
    for name, norm in variants:
        row = {"section": "chain", "case": f"{rows}x{hidden} @ {hidden}x{hidden}",
               "op": "gemm-rmsnorm-gemm", "quant": "", "dtype": "bfloat16", "rows": rows,
               "hidden": hidden, "impl": name, "us": math.nan, "us_fwd": math.nan,
               "us_rev": math.nan, "error": math.nan, "note": ""}
        rows_out.append(row)
        if norm is None:
            row["note"] = ("skipped: measured in the run with NORMJIT_PDL=%d"
                           % (not PDL_RUN) if name.startswith("normjit")
                           else "skipped: peer not available")
            continue

        def chain(norm=norm):
            return norm(a @ w1) @ w2
        try:
            out = chain()
            torch.cuda.synchronize()
            if name != "gemm, gemm (no norm)":
                row["error"] = err = row_error(out.double(), ref)
                if not err <= 3e-2:
                    row["note"] = f"WRONG RESULT (error {err:.3g})"
                    continue
            entries.append((chain, row))
        except Exception as e:  # noqa: BLE001
            row["note"] = skip_note(e)
            if not device_ok():
                run.emit(rows_out)
                context_lost(f"in chain {name}: {e}")
    for key, order in (("us_fwd", entries), ("us_rev", entries[::-1])):
        for fn, row in order:
            try:
                row[key] = graph_time(fn, args.chain_calls, args.graph_replays)
            except Exception as e:  # noqa: BLE001
                row["note"] = skip_note(e)
    for row in rows_out:
        times = [t for t in (row["us_fwd"], row["us_rev"]) if t == t]
        row["us"] = min(times) if times else math.nan
    run.emit(rows_out)
    for r in rows_out:
        print(f"[chain] {r['impl']}: {r['us']:.2f} us per chain {r['note']}", flush=True)


SECTIONS = {"fused": section_fused, "quant": section_quant, "decode": section_decode,
            "host": section_host, "chain": section_chain, "wide": section_wide}


# ---------------------------------------------------------------------------
# Run-time estimate (seconds on an H100; per-section actuals are printed at the end so the
# constants can be corrected)

COST = {"compile": 2.5, "jit": 0.8, "nvrtc": 0.25, "check": 0.03, "graph": 0.015,
        "spin": 3.5e-4, "bw": 2.9e12}


def _measure_s(args, nbytes, impls):
    """Both orders of `impls` timed with gpu_times on a case that moves nbytes."""
    call = nbytes / COST["bw"]
    reps = max(args.min_reps, min(args.max_reps, int(0.06 / (call + 8e-6))))
    return 2 * impls * reps * (1.3 * call + COST["spin"]) + impls * COST["check"]


def estimate(args):
    comp = args.compile != "none"
    est = {}
    t = 0.0
    for _, rows, hidden in SEED_SHAPES:
        n = rows * hidden * 2
        for dt in args.dtypes:
            t += _measure_s(args, 4 * n, 7) + _measure_s(args, 4 * n, 5)
            t += 2 * (comp * COST["compile"] + COST["nvrtc"])
    est["fused"] = t + len(args.dtypes) * 9 * COST["jit"]
    t = 0.0
    for _, rows, hidden in SEED_SHAPES:
        n = rows * hidden
        for dt in args.quant_dtypes:
            for quant in QUANTS:
                t += _measure_s(args, 3 * n, 3.4) + _measure_s(args, 7 * n, 3.4)
                t += 2 * (comp * COST["compile"] + COST["nvrtc"])
    est["quant"] = t
    timings = sum(len(DECODE_IMPLS[o]) if q is None else 1.4
                  for r in DECODE_ROWS for o, q in decode_ops(args, r)) * len(DECODE_HIDDEN)
    kernels = sum(len(decode_ops(args, r)) for r in (1, DECODE_ROWS[-1])) * len(DECODE_HIDDEN)
    ncomp = len([s for s in args.decode_compile.split(",") if s]) * 4 * comp
    est["decode"] = (timings * (2 * COST["graph"] + COST["check"]) + kernels * COST["nvrtc"]
                     + 35 * COST["jit"] + ncomp * COST["compile"])
    est["host"] = 4 + comp * COST["compile"]
    est["chain"] = 4
    t = 0.0
    for hidden in args.wide_hidden:
        n = wide_rows(hidden) * hidden * 2
        for dt in args.wide_dtypes:
            t += 2 * _measure_s(args, 2 * n, 6) + 2 * _measure_s(args, 4 * n, 5)
            t += 4 * (COST["nvrtc"] + (COST["compile"] if args.compile == "all" else 0))
    est["wide"] = t + 8 * COST["jit"]
    return {s: est[s] for s in args.sections}


# ---------------------------------------------------------------------------
# Tables


def fmt_us(v):
    if v != v:
        return "-"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def by_case(results, section):
    """{(case, op, quant, dtype): {impl: row}} in first-seen order."""
    out = {}
    for r in results:
        if r["section"] == section:
            out.setdefault((r["case"], r["op"], r["quant"], r["dtype"]), {})[r["impl"]] = r
    return out


def best_peer(rows, peers=PEERS):
    cands = [(rows[p]["us"], p) for p in peers if p in rows and rows[p]["us"] == rows[p]["us"]]
    return min(cands) if cands else (math.nan, "-")


def short_dtype(d):
    return {"float16": "fp16", "bfloat16": "bf16"}.get(d, d)


def table_cases(results, section, impls, title, label=lambda c: c):
    """One line per case: every implementation's us, the best peer, normjit's ratio and % copy."""
    cases = by_case(results, section)
    if not cases:
        return []
    lines = [f"\n### {title}", "",
             "| case | op | dtype | " + " | ".join(impls) + " | copy | best peer | vs best | "
             "% copy |", "| --- | --- | --- | " + " | ".join("---:" for _ in impls) +
             " | ---: | --- | ---: | ---: |"]
    for (case, op, quant, dtype), rows in cases.items():
        nj = rows.get("normjit", {}).get("us", math.nan)
        peer_us, peer = best_peer(rows)
        cells = " | ".join(fmt_us(rows[i]["us"]) if i in rows else "" for i in impls)
        pct = rows.get("normjit", {}).get("pct_copy", math.nan)
        lines.append(f"| {label(case)} | {op_name(op, quant or None)} | {short_dtype(dtype)} | "
                     f"{cells} | {fmt_us(rows.get('copy', {}).get('us', math.nan))} | {peer} | "
                     f"{peer_us / nj:.2f}x | {pct:.1f}% |")
    return lines


def table_quant_compact(results):
    """One line per (shape, op): per quant mode normjit us, x FlashInfer (or x best), % copy."""
    cases = by_case(results, "quant")
    if not cases:
        return []
    dts = sorted({k[3] for k in cases})
    lines = [f"\n### quantized outputs ({', '.join(short_dtype(d) for d in dts)}): normjit us, "
             "speed-up over FlashInfer where it has the mode (F) else over the best peer, "
             "% of copy", "",
             "| shape | op | dtype | " + " | ".join(QUANTS) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in QUANTS) + " |"]
    keys = []
    for case, op, quant, dtype in cases:
        if (case, op, dtype) not in keys:
            keys.append((case, op, dtype))
    for case, op, dtype in keys:
        cells = []
        for q in QUANTS:
            rows = cases.get((case, op, q, dtype))
            if not rows or "normjit" not in rows or rows["normjit"]["us"] != rows["normjit"]["us"]:
                cells.append("-")
                continue
            nj = rows["normjit"]
            fi = rows.get("flashinfer", {}).get("us", math.nan)
            if fi == fi:
                vs = f"{fi / nj['us']:.2f}x F"
            else:
                peer_us, _ = best_peer(rows)
                vs = f"{peer_us / nj['us']:.2f}x"
            cells.append(f"{fmt_us(nj['us'])} {vs} {nj['pct_copy']:.0f}%")
        lines.append(f"| {case} | {op} | {short_dtype(dtype)} | " + " | ".join(cells) + " |")
    return lines


def table_decode(results, full):
    """Per op, by rows x hidden: (normjit us and) best of Triton/Liger over normjit; then the
    fused ops over the plain norm."""
    cases = by_case(results, "decode")
    if not cases:
        return []
    lines = []
    dtypes = sorted({k[3] for k in cases})
    for dtype in dtypes:
        for op in DECODE_IMPLS:
            what = "normjit us (best of Triton row-wise and Liger / normjit)" if full else \
                "best of Triton row-wise and Liger / normjit (> 1: normjit faster)"
            lines += [f"\n### decode {op} {short_dtype(dtype)}, graph replay: {what}", "",
                      "| rows | " + " | ".join(str(h) for h in DECODE_HIDDEN) + " |",
                      "| ---: | " + " | ".join("---:" for _ in DECODE_HIDDEN) + " |"]
            for r in DECODE_ROWS:
                cells = []
                for h in DECODE_HIDDEN:
                    rows = cases.get((f"{r}x{h}", op, "", dtype))
                    if not rows or rows.get("normjit", {}).get("us", math.nan) != \
                            rows.get("normjit", {}).get("us", math.nan):
                        cells.append("-")
                        continue
                    nj = rows["normjit"]["us"]
                    peer_us, _ = best_peer(rows, ("triton", "liger"))
                    cells.append(f"{nj:.2f} ({peer_us / nj:.2f})" if full else
                                 f"{peer_us / nj:.2f}")
                lines.append(f"| {r} | " + " | ".join(cells) + " |")
        fused = [(op, q) for op, q in {(k[1], k[2]) for k in cases if k[3] == dtype}
                 if is_add(op) or q]
        if not fused:
            continue
        lines += [f"\n### decode {short_dtype(dtype)}: fused op over plain norm, normjit, worst "
                  "ratio over rows 1-64 (target <= 1.10)", "",
                  "| op | " + " | ".join(str(h) for h in DECODE_HIDDEN) + " |",
                  "| --- | " + " | ".join("---:" for _ in DECODE_HIDDEN) + " |"]
        for op, q in sorted(fused):
            plain = "layernorm" if is_ln(op) else "rmsnorm"
            cells = []
            for h in DECODE_HIDDEN:
                worst = math.nan
                for r in DECODE_ROWS:
                    if r > 64:
                        continue
                    f = cases.get((f"{r}x{h}", op, q, dtype), {}).get("normjit", {}).get("us")
                    p = cases.get((f"{r}x{h}", plain, "", dtype), {}).get("normjit", {}).get("us")
                    if f and p and f == f and p == p:
                        worst = f / p if worst != worst else max(worst, f / p)
                cells.append("-" if worst != worst else f"{worst:.2f}")
            lines.append(f"| {op_name(op, q or None)} | " + " | ".join(cells) + " |")
    return lines


def table_decode_full(results):
    cases = by_case(results, "decode")
    impls = ["normjit", "triton", "liger", "flashinfer", "compile"]
    if not cases:
        return []
    lines = ["\n### decode, every implementation (GPU us per call under graph replay)", "",
             "| rows x hidden | op | dtype | " + " | ".join(impls) + " |",
             "| --- | --- | --- | " + " | ".join("---:" for _ in impls) + " |"]
    for (case, op, quant, dtype), rows in cases.items():
        cells = " | ".join(fmt_us(rows[i]["us"]) if i in rows else "" for i in impls)
        lines.append(f"| {case} | {op_name(op, quant or None)} | {short_dtype(dtype)} | {cells} |")
    return lines


def table_simple(results, section, title, unit):
    rows = [r for r in results if r["section"] == section]
    if not rows:
        return []
    lines = [f"\n### {title}", "", f"| implementation | {unit} | note |", "| --- | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['impl']} | {fmt_us(r['us'])} | {r['note']} |")
    return lines


def table_notes(results):
    notes = [r for r in results
             if r.get("note") and not str(r["note"]).startswith("FlashInfer also")]
    if not notes:
        return []
    lines = ["\n### notes (rows that did not run or did not pass their check)", ""]
    seen = set()
    for r in notes:
        key = (r["section"], r["impl"], r["op"], r["quant"], r["note"])
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"- {r['section']} {r['impl']} {op_name(r['op'], r['quant'] or None)}: "
                     f"{r['note']} (first at {r['case']} {r['rows']}x{r['hidden']})")
    return lines


LARGE_UP = ("Large", "XL", "XXL", "XXXL")


def table_targets(results):
    """The issues' speed targets against this run: the worst case of each, and whether met."""
    lines = ["\n### targets (worst case of this run)", "",
             "| target | worst | met | where |", "| --- | ---: | --- | --- |"]

    def worst(section, value, pick=min, keep=lambda key, rows: True):
        found = []
        for key, rows in by_case(results, section).items():
            nj = rows.get("normjit", {}).get("us", math.nan)
            if nj == nj and keep(key, rows):
                v = value(key, rows, nj)
                if v == v:
                    found.append((v, key))
        return pick(found) if found else (math.nan, None)

    def line(name, v_key, goal, higher=True, fmt="{:.2f}x"):
        v, key = v_key
        if key is None:
            return
        met = "yes" if (v >= goal if higher else v <= goal) else "**no**"
        where = f"{key[0]} {op_name(key[1], key[2] or None)} {short_dtype(key[3])}"
        lines.append(f"| {name} | {fmt.format(v)} | {met} | {where} |")

    vs_best = lambda key, rows, nj: best_peer(rows)[0] / nj  # noqa: E731
    pct = lambda key, rows, nj: rows["normjit"].get("pct_copy", math.nan)  # noqa: E731
    large = lambda key, rows: key[0] in LARGE_UP  # noqa: E731
    line("fused add, seed shapes: >= 1.0x the best peer", worst("fused", vs_best), 1.0)
    line("fused add, Large up: >= 95% of copy", worst("fused", pct, keep=large), 95,
         fmt="{:.1f}%")
    line("fused add, wide rows: >= 85% of copy",
         worst("wide", pct, keep=lambda key, rows: is_add(key[1])), 85, fmt="{:.1f}%")
    line("plain norm, wide rows: >= 90% of copy",
         worst("wide", pct, keep=lambda key, rows: not is_add(key[1])), 90, fmt="{:.1f}%")
    line("quantized: >= 1.2x FlashInfer",
         worst("quant", lambda key, rows, nj: rows.get("flashinfer", {}).get("us", math.nan) / nj),
         1.2)
    line("quantized, Large up: >= 90% of copy", worst("quant", pct, keep=large), 90,
         fmt="{:.1f}%")
    line("decode plain: >= 1.0x best of Triton and Liger",
         worst("decode", lambda key, rows, nj: best_peer(rows, ("triton", "liger"))[0] / nj,
               keep=lambda key, rows: not key[2] and not is_add(key[1])), 1.0)
    dec = by_case(results, "decode")

    def over_plain(key, rows, nj):
        plain = dec.get((key[0], "layernorm" if is_ln(key[1]) else "rmsnorm", "", key[3]), {})
        return nj / plain.get("normjit", {}).get("us", math.nan)
    line("decode 1-64 rows: fused op <= 1.10x the plain norm",
         worst("decode", over_plain, pick=max,
               keep=lambda key, rows: (is_add(key[1]) or key[2]) and
               rows["normjit"]["rows"] <= 64), 1.10, higher=False)
    return lines if len(lines) > 4 else []


def summary_tables(results, full):
    fused_impls = ["normjit", "torch", "compile", "flashinfer", "liger", "triton"] if full else \
        ["normjit", "torch", "compile", "flashinfer"]
    lines = table_cases(results, "fused", fused_impls,
                        "fused residual add at the seed shapes (us per call; vs best peer > 1: "
                        "normjit faster)", label=lambda c: SEED_LABEL.get(c, c) if full else c)
    if full:
        lines += table_cases(results, "quant", ["normjit", "flashinfer", "compile"],
                             "quantized outputs at the seed shapes (us per call)",
                             label=lambda c: SEED_LABEL.get(c, c))
    lines += table_quant_compact(results)
    lines += table_decode(results, full)
    if full:
        lines += table_decode_full(results)
    wide = ["normjit", "torch", "flashinfer", "liger", "triton", "compile"] if full else \
        ["normjit", "flashinfer"]
    lines += table_cases(results, "wide", wide, "wide rows (us per call)")
    lines += table_simple(results, "host", "host time per call, back to back, no graph",
                          "us/call")
    lines += table_simple(results, "chain", "graph-captured GEMM -> RMSNorm -> GEMM",
                          "us/chain")
    if full:
        lines += table_notes(results)
    return lines + table_targets(results)


# ---------------------------------------------------------------------------


def copy_bandwidth():
    """The 2 GiB copy (1 GiB read, 1 GiB written), timed as every case is."""
    n = 1 << 30
    ms = statistics.median(gpu_times(build_copy_of(n), 30, warmup=3))
    torch.cuda.empty_cache()
    return 2 * n / (ms * 1e-3)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu-out"))
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--dtypes", default="fp16,bf16", help="fused section")
    ap.add_argument("--quant-dtypes", default="bf16")
    ap.add_argument("--wide-dtypes", default="bf16")
    ap.add_argument("--decode-dtype", default="bf16")
    ap.add_argument("--wide-hidden", default=WIDE_HIDDEN,
                    help="hidden sizes of the wide section (512 rows, 256 past 131072)")
    ap.add_argument("--compile", default="seed", choices=("none", "seed", "all"),
                    help="torch.compile peers: none; seed (fused, quant, host and the "
                         "--decode-compile shapes); all (also wide)")
    ap.add_argument("--decode-compile", default="1x4096,64x8192,256x5120",
                    help="decode shapes that also time torch.compile (one compile each per op)")
    ap.add_argument("--no-decode-quant", dest="decode_quant", action="store_false")
    ap.add_argument("--graph-calls", type=int, default=64)
    ap.add_argument("--graph-replays", type=int, default=20)
    ap.add_argument("--min-reps", type=int, default=10)
    ap.add_argument("--max-reps", type=int, default=100)
    ap.add_argument("--host-calls", type=int, default=2000)
    ap.add_argument("--host-trials", type=int, default=3)
    ap.add_argument("--chain-rows", type=int, default=64)
    ap.add_argument("--chain-hidden", type=int, default=4096)
    ap.add_argument("--chain-calls", type=int, default=16)
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run of every section at a few shapes (about a minute)")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--estimate", action="store_true", help="print the run-time estimate and exit")
    ap.add_argument("--resume", action="store_true",
                    help="skip the sections OUT/fused-done.txt lists and add to OUT/fused.csv")
    ap.add_argument("--selftest", action="store_true", help="CPU check of references and tables")
    ap.add_argument("--tables-only", action="store_true",
                    help="write the tables again from OUT/fused.csv (after a crash)")
    args = ap.parse_args(argv)
    args.sections = [s for s in args.sections.split(",") if s]
    for s in args.sections:
        if s not in SECTIONS:
            ap.error(f"unknown section {s!r} (have {', '.join(SECTIONS)})")
    args.dtypes = [DTYPES[d] for d in args.dtypes.split(",")]
    args.quant_dtypes = [DTYPES[d] for d in args.quant_dtypes.split(",")]
    args.wide_dtypes = [DTYPES[d] for d in args.wide_dtypes.split(",")]
    args.decode_dtype = DTYPES[args.decode_dtype]
    args.wide_hidden = [int(h) for h in args.wide_hidden.split(",")]
    if args.quick:
        global SEED_SHAPES, DECODE_ROWS, DECODE_HIDDEN
        SEED_SHAPES = [s for s in SEED_SHAPES if s[0] in ("Small", "Large")]
        DECODE_ROWS, DECODE_HIDDEN = (1, 64), (4096,)
        args.wide_hidden = [32768, 262144]
        args.dtypes = args.dtypes[-1:]
        args.decode_compile = "1x4096"
        args.host_calls, args.graph_replays, args.max_reps = 500, 10, 30
    return args


def print_estimate(args):
    est = estimate(args)
    print("estimated run time (H100, cold caches): " +
          ", ".join(f"{s} {v:.0f} s" for s, v in est.items()) +
          f"; total about {sum(est.values()) / 60:.1f} min plus about 0.5 min of start-up",
          flush=True)
    return est


def main(argv=None):
    args = parse_args(argv)
    if args.selftest:
        import fused_selftest
        return fused_selftest.main()
    if args.tables_only:
        return write_tables(args.out, ["# bench/fused.py (tables from fused.csv)"],
                            load_results(os.path.join(args.out, "fused.csv")), "")
    if not args.estimate:
        os.makedirs(args.out, exist_ok=True)
    # timeout(1) sends SIGTERM: leave through the finally below, so the tables get written.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    done_path = os.path.join(args.out, "fused-done.txt")
    if args.resume and os.path.exists(done_path):
        with open(done_path) as f:
            done = set(f.read().split())
        args.sections = [s for s in args.sections if s not in done]
        print(f"resuming: {', '.join(args.sections) or 'nothing'} left", flush=True)
    elif not args.estimate and os.path.exists(done_path):
        os.remove(done_path)
    est = print_estimate(args)
    if args.estimate:
        return 0
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                 "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 1 << 16)
    t_start = time.perf_counter()
    bw = copy_bandwidth()
    try:
        nj_version = normjit.version()
    except Exception as e:  # noqa: BLE001
        nj_version = f"unavailable ({skip_note(e)})"
    try:
        lg_version = liger()["version"]
    except ImportError as e:
        lg_version = f"unavailable ({e})"
    try:
        flashinfer()
        with open(os.path.join(ROOT, ".peers", "VERSIONS")) as f:
            fi_version = f.read().split()[-1]
    except (ImportError, OSError, IndexError) as e:
        fi_version = f"unavailable ({e})"
    header = [f"# bench/fused.py, {torch.cuda.get_device_name()}, {datetime.date.today()}",
              "",
              f"torch {torch.__version__}, triton {triton.__version__}, normjit {nj_version}, "
              f"liger-kernel {lg_version}, flashinfer headers {fi_version}; seed {args.seed}",
              f"2 GiB device copy: {bw / 1e12:.3f} TB/s (read + write)"]
    print("\n".join(header), flush=True)
    run = Run(args, args.out, resume=args.resume)
    took = {}
    status = 0
    try:
        for s in args.sections:
            t0 = time.perf_counter()
            print(f"=== {s} (estimate {est[s]:.0f} s) {datetime.datetime.now():%H:%M:%S}",
                  flush=True)
            try:
                SECTIONS[s](run, args)
            except Exception:  # noqa: BLE001 - a fault of the harness: report, go on
                traceback.print_exc()
                print(f"section {s} stopped early (traceback above)", flush=True)
                status = 2
                if not device_ok():
                    context_lost("after a harness fault; rerun with --resume")
            torch._dynamo.reset()
            torch.cuda.empty_cache()
            took[s] = time.perf_counter() - t0
            with open(done_path, "a") as f:
                f.write(f"{s}\n")
    finally:
        run.f.close()
        timing = "section seconds (actual / estimate): " + ", ".join(
            f"{s} {took[s]:.0f}/{est[s]:.0f}" for s in took) + \
            f"; total {time.perf_counter() - t_start:.0f} s"
        write_tables(args.out, header, run.results, timing)
    return status


def write_tables(out, header, results, timing):
    """fused.md (every table) and fused-summary.md (the compact ones, also printed)."""
    full = header + [timing] + summary_tables(results, full=True)
    with open(os.path.join(out, "fused.md"), "w") as f:
        f.write("\n".join(full) + "\n")
    summary = header + [timing] + summary_tables(results, full=False)
    with open(os.path.join(out, "fused-summary.md"), "w") as f:
        f.write("\n".join(summary) + "\n")
    print("\n".join(summary[len(header):]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
