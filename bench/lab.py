#!/usr/bin/env python3
"""Kernel template variants timed beside the library and its peers, in one process.

The library picks one kernel per call; this harness compiles normjit's templates
(kernel_src/, or --kernel-dir) with NVRTC for knobs given explicitly and with extra
#defines, loads them through the CUDA driver and launches them on torch's stream. So
layouts the planner would not choose, and template changes behind a #define, are
timed the same way as the library's own choice, Liger, the row-wise Triton kernel
and FlashInfer (bench/fused.py's builders, its checks and its timing): every output
is checked against float64 first; decode shapes are timed under CUDA-graph replay,
the others one cold call at a time (L2 flushed), in list order and in reverse, the
better median counting; the same-size copy is timed beside them.

A variant is written "op-independent knobs,define=value,...":
    t=256,r=1,c=1,o=0,s=reg          threads per row, rows per CTA, cluster, occupancy
                                     (min CTAs per SM), storage (reg, stream or staged)
    g=N                              a persistent grid of N CTAs per SM (default: one CTA
                                     per row group); g=-1: as many as the GPU holds at once
    table                            the shipped H100 tuning table's knobs for the shape
    NJ_WLOAD=1                       any template #define
    dir=PATH                         templates from PATH (relative to the project) instead of
                                     --kernel-dir: a template change timed beside the original
(the experiments below list theirs).

usage: python3 bench/lab.py --out DIR --experiment decode|wide|seed|... [--variant ...]
The experiments below name their shapes and variants; --list prints them.
"""
import argparse
import ctypes
import hashlib
import math
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import fused  # noqa: E402

KERNEL_DIR = os.path.join(ROOT, "kernel_src")
TUNING = os.path.join(KERNEL_DIR, "tuning", "nvidia-h100-80gb-hbm3-132sm.tuning")
DT = {torch.float16: "nj_f16", torch.bfloat16: "nj_bf16", torch.float32: "float"}
DT_NAME = {torch.float16: "f16", torch.bfloat16: "bf16", torch.float32: "f32"}
OP_DEFINES = {"rmsnorm": ("rmsnorm.cu", ""), "layernorm": ("layernorm.cu", ""),
              "add_rmsnorm": ("rmsnorm.cu", "#define NJ_ADD 1\n"),
              "add_layernorm": ("layernorm.cu", "#define NJ_ADD 1\n")}
LAYOUT_OP = {"rmsnorm": "rmsnorm", "layernorm": "layernorm", "add_rmsnorm": "rmsnorm",
             "add_layernorm": "layernorm"}


# ---------------------------------------------------------------------------
# NVRTC and the driver, through ctypes


def _lib(names):
    for n in filter(None, names):
        try:
            return ctypes.CDLL(n)
        except OSError:
            pass
    raise OSError(f"none of {names} loads")


class Nvrtc:
    def __init__(self, arch=None):
        self.lib = _lib([os.environ.get("NORMJIT_NVRTC", ""), "libnvrtc.so.13", "libnvrtc.so.12",
                         "libnvrtc.so"])
        major, minor = arch or torch.cuda.get_device_capability()
        self.opts = [f"--gpu-architecture=sm_{major}{minor}", "-default-device", "--std=c++17"]

    def compile(self, source, name):
        lib, prog = self.lib, ctypes.c_void_p()
        if lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), f"{name}.cu".encode(), 0,
                                  None, None):
            raise RuntimeError("nvrtcCreateProgram failed")
        opts = (ctypes.c_char_p * len(self.opts))(*[o.encode() for o in self.opts])
        try:
            if lib.nvrtcCompileProgram(prog, len(self.opts), opts):
                n = ctypes.c_size_t()
                lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
                log = ctypes.create_string_buffer(n.value)
                lib.nvrtcGetProgramLog(prog, log)
                raise RuntimeError(f"NVRTC could not compile {name}:\n{log.value.decode()[:3000]}")
            n = ctypes.c_size_t()
            lib.nvrtcGetCUBINSize(prog, ctypes.byref(n))
            image = ctypes.create_string_buffer(n.value)
            lib.nvrtcGetCUBIN(prog, image)
            return image.raw
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))


class Driver:
    def __init__(self):
        self.lib = ctypes.CDLL("libcuda.so.1")
        torch.cuda.init()
        torch.zeros(1, device="cuda")  # the primary context, current on this thread

    def check(self, r, what):
        if r:
            s = ctypes.c_char_p()
            self.lib.cuGetErrorName(r, ctypes.byref(s))
            raise RuntimeError(f"{what}: {s.value.decode() if s.value else r}")

    def function(self, image, name):
        mod, fn = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.lib.cuModuleLoadData(ctypes.byref(mod), image), "cuModuleLoadData")
        self.check(self.lib.cuModuleGetFunction(ctypes.byref(fn), mod, name.encode()),
                   "cuModuleGetFunction")
        return fn

    def set_smem(self, fn, smem):
        """Allow `smem` bytes of dynamic shared memory (over 48 KB needs the attribute)."""
        if smem > 48 * 1024:
            self.check(self.lib.cuFuncSetAttribute(fn, 8, ctypes.c_int(smem)),  # MAX_DYNAMIC_SHARED
                       "cuFuncSetAttribute")

    def resident_groups(self, fn, threads, smem, cluster, sms):
        """How many CTAs (clusters) of this kernel the GPU holds at once."""
        n = ctypes.c_int()
        if cluster == 1:
            self.check(self.lib.cuOccupancyMaxActiveBlocksPerMultiprocessor(
                ctypes.byref(n), fn, ctypes.c_int(threads), ctypes.c_size_t(smem)),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor")
            return n.value * sms
        cfg = _LaunchConfig(cluster, 1, 1, threads, 1, 1, smem, None, None, 0)
        self.check(self.lib.cuOccupancyMaxActiveClusters(ctypes.byref(n), fn, ctypes.byref(cfg)),
                   "cuOccupancyMaxActiveClusters")
        return n.value

    def launch(self, fn, grid, threads, params, smem=0):
        args = (ctypes.c_void_p * 1)(ctypes.cast(ctypes.pointer(params), ctypes.c_void_p))
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        self.check(self.lib.cuLaunchKernel(fn, ctypes.c_uint(grid), 1, 1, ctypes.c_uint(threads),
                                           1, 1, ctypes.c_uint(smem), stream, args, None),
                   "cuLaunchKernel")


class _LaunchConfig(ctypes.Structure):
    _fields_ = [("gx", ctypes.c_uint), ("gy", ctypes.c_uint), ("gz", ctypes.c_uint),
                ("bx", ctypes.c_uint), ("by", ctypes.c_uint), ("bz", ctypes.c_uint),
                ("smem", ctypes.c_uint), ("stream", ctypes.c_void_p), ("attrs", ctypes.c_void_p),
                ("nattrs", ctypes.c_uint)]


def _params_struct():
    """nj_params as a ctypes Structure, from the field list of kernel_src/params.h."""
    text = open(os.path.join(KERNEL_DIR, "params.h")).read()
    fields = []
    for ctype, name in re.findall(r"X\(([^,]+),\s*(\w+)\)", text.split("NJ_PARAM_FIELDS(X)")[1]):
        ctype = ctype.strip()
        fields.append((name, ctypes.c_void_p if "*" in ctype else
                       ctypes.c_longlong if ctype == "long long" else ctypes.c_float))
    return type("NjParams", (ctypes.Structure,), {"_fields_": fields})


# ---------------------------------------------------------------------------
# Variants


def table_knobs(op, dtype, hidden, rows):
    """The shipped table's knobs for the shape's layout op and bucket, or None."""
    bucket = "decode" if rows <= 64 else "prefill" if rows <= 16384 else "large"
    d = DT_NAME[dtype]
    with open(TUNING) as f:
        for line in f:
            w = line.split()
            if len(w) == 14 and w[:4] == [LAYOUT_OP[op], d, d, d] and w[4] == str(hidden) \
                    and w[5] == bucket:
                return dict(vec=int(w[6]), t=int(w[7]), r=int(w[8]), c=int(w[9]), o=int(w[10]),
                            s=w[11], g=int(w[12]))
    return None


def parse_variant(text, case):
    """(knobs, defines) of a variant's text for a case; None where it does not apply."""
    knobs = dict(vec=16 // case.x.element_size(), t=None, r=1, c=1, o=0, s="reg", g=0)
    defines = {}
    for word in filter(None, text.split(",")):
        if word == "table":
            k = table_knobs(case.op, case.dtype, case.hidden, case.rows)
            if k is None:
                return None
            knobs.update(k)
        elif "=" in word and word.split("=")[0].startswith("NJ_"):
            k, v = word.split("=", 1)
            defines[k] = v
        else:
            k, v = word.split("=", 1)
            knobs[k] = v if k in ("s", "dir") else int(v)
    if knobs["t"] is None or not legal(case, knobs):
        return None
    return knobs, defines


def legal(case, k):
    """The knobs the library's variant check would accept, and at most 256 bytes of a row
    per thread in registers."""
    t, c = k["t"], k["c"]
    if t > 1024 or t < 1 or (t > 32 and t % 32) or (t <= 32 and t & (t - 1)):
        return False
    if t * k["r"] > 1024 or (c > 1 and k["r"] != 1) or c > 8:
        return False
    nv = case.hidden // k["vec"]
    npt = -(-(-(-nv // c)) // t)
    if k["s"] != "stream" and npt * k["vec"] * case.x.element_size() > 256:
        return False
    if k["s"] == "staged" and stage_bytes(case, k) > 227 * 1024 - 1024:
        return False
    if t * k["r"] * k["o"] > 2048:
        return False
    return nv >= c * min(t, 32)


def stage_bytes(case, k):
    """Dynamic shared memory of staged storage: two buffers of each thread's vectors."""
    if k["s"] != "staged":
        return 0
    nv = case.hidden // k["vec"]
    npt = -(-(-(-nv // k["c"])) // k["t"])
    per_vec = k["vec"] * case.x.element_size() * (2 if fused.is_add(case.op) else 1)
    return 2 * npt * k["t"] * k["r"] * per_vec


def render(case, knobs, defines, kernel_dir, name):
    template, op_defines = OP_DEFINES[case.op]
    tr = DT[case.dtype]
    src = (f"#define NJ_RENDERED 1\n#define NJ_KERNEL_NAME {name}\n#define NJ_TX {DT[case.dtype]}\n"
           f"#define NJ_TY {DT[case.dtype]}\n#define NJ_TW {DT[case.dtype]}\n"
           f"#define NJ_H {case.hidden}\n#define NJ_VEC {knobs['vec']}\n#define NJ_TPR {knobs['t']}\n"
           f"#define NJ_RPC {knobs['r']}\n#define NJ_CLUSTER {knobs['c']}\n"
           f"#define NJ_MIN_CTAS {knobs['o']}\n"
           f"#define NJ_STORAGE {dict(reg=0, stream=1, staged=2)[knobs['s']]}\n" + op_defines)
    if fused.is_add(case.op):
        src += f"#define NJ_TR {tr}\n"
    src += "".join(f"#define {k} {v}\n" for k, v in defines.items())
    if "dir" in knobs:
        kernel_dir = os.path.join(ROOT, knobs["dir"])
    for f in ("params.h", "common.cuh", template):
        src += f'#line 1 "{f}"\n' + open(os.path.join(kernel_dir, f)).read() + "\n"
    return src


class Lab:
    def __init__(self, kernel_dir, dry_run=False):
        """dry_run: compile for sm_90 without a GPU (checks that every variant builds)."""
        self.nvrtc = Nvrtc((9, 0) if dry_run else None)
        self.driver = None if dry_run else Driver()
        self.kernel_dir = kernel_dir
        self.params_t = _params_struct()
        self.sms = 132 if dry_run else torch.cuda.get_device_properties(0).multi_processor_count
        self.cache, self.lock = {}, threading.Lock()

    @staticmethod
    def name(case, knobs, defines):
        key = (case.op, str(case.dtype), case.hidden, sorted(knobs.items()), sorted(defines.items()))
        return "lab_" + hashlib.sha1(repr(key).encode()).hexdigest()[:16]

    def kernel(self, case, knobs, defines):
        name = self.name(case, knobs, defines)
        with self.lock:
            if name in self.cache:
                return self.cache[name]
        src = render(case, knobs, defines, self.kernel_dir, name)
        image = self.nvrtc.compile(src, name)
        with self.lock:
            self.cache[name] = (image, None)
        return self.cache[name]

    def function(self, case, knobs, defines):
        name = self.name(case, knobs, defines)
        image, fn = self.kernel(case, knobs, defines)
        if fn is None:
            fn = self.driver.function(image, name)
            self.cache[name] = (image, fn)
        return fn

    def builder(self, text):
        """A fused.BUILDERS entry for one variant."""
        def build(case):
            parsed = parse_variant(text, case)
            if parsed is None:
                raise NotImplementedError("no knobs for this shape")
            knobs, defines = parsed
            fn = self.function(case, knobs, defines)
            threads = knobs["t"] * knobs["r"]
            smem = stage_bytes(case, knobs)
            self.driver.set_smem(fn, smem)
            groups = -(-case.rows // knobs["r"])
            if knobs["g"] < 0:
                groups = min(groups, self.driver.resident_groups(fn, threads, smem, knobs["c"],
                                                                 self.sms))
            elif knobs["g"]:
                groups = min(groups, max(1, knobs["g"] * self.sms // knobs["c"]))
            grid = groups * knobs["c"]
            x, r, w, b = case.x, case.r, case.w, case.bias
            y = torch.empty_like(x)
            p = self.params_t()
            p.x, p.y, p.w = x.data_ptr(), y.data_ptr(), w.data_ptr()
            if fused.is_ln(case.op):
                p.b = b.data_ptr()
            if r is not None:
                p.res = p.res_out = r.data_ptr()
                p.res_stride = p.res_out_stride = r.stride(0)
            p.rows, p.x_stride, p.y_stride, p.heads = case.rows, x.stride(0), y.stride(0), 1
            p.eps = fused.EPS

            def run():
                self.driver.launch(fn, grid, threads, p, smem)
                return (y, r) if r is not None else y
            return run
        return build

    def precompile(self, cases, variants, jobs=16):
        """Compile every (case, variant) kernel ahead, in parallel."""
        work = []
        for case in cases:
            for text in variants:
                parsed = parse_variant(text, case)
                if parsed:
                    work.append((case, *parsed))
        t0 = time.time()
        errors = []

        def one(item):
            try:
                self.kernel(*item)
            except Exception as e:  # noqa: BLE001
                errors.append(str(e).splitlines()[0])
        with ThreadPoolExecutor(jobs) as ex:
            list(ex.map(one, work))
        print(f"compiled {len(self.cache)} kernels in {time.time() - t0:.1f} s"
              + (f"; {len(errors)} failed: {errors[:3]}" if errors else ""), flush=True)


class Shape:
    """What Lab.precompile needs of a case before its buffers exist."""

    def __init__(self, op, dtype, rows, hidden):
        self.op, self.dtype, self.rows, self.hidden = op, dtype, rows, hidden
        self.x = torch.empty(0, dtype=dtype)


# ---------------------------------------------------------------------------
# Experiments

BF16 = torch.bfloat16


def _decode_variants():
    return ["late=table,NJ_WLOAD=0", "early=table,NJ_WLOAD=1"] + \
        [f"t{t}r{r}=t={t},r={r},NJ_WLOAD=1" for t, r in ((64, 2), (128, 1), (128, 2), (256, 1), (512, 1))]


def _wide_variants():
    out = [f"s{t}o{o}=s=stream,t={t},o={o}" for t in (256, 512, 1024) for o in (0, 2)
           if t * o <= 1024]
    for c, t in ((1, 512), (1, 1024), (2, 512), (2, 1024), (4, 512), (8, 256), (8, 512)):
        for o in ((0, 2) if t <= 512 else (0,)):
            out.append(f"c{c}t{t}o{o}=t={t},c={c},o={o}")
    return out


def _staged_variants():
    """Staged storage on a grid the GPU holds at once, beside the table's choice and the
    same layouts in registers."""
    out = ["table=table", "tst=table,s=staged,g=-1"]
    for c, t in ((1, 512), (1, 1024), (2, 512), (2, 1024), (4, 512), (4, 1024), (8, 512),
                 (8, 1024)):
        out.append(f"st_c{c}t{t}=s=staged,t={t},c={c},g=-1")
        out.append(f"rg_c{c}t{t}=t={t},c={c},g=-1")
    return out


# Each: CUDA-graph replay (graph) or single cold calls; the shapes; the variants; the peers.
EXPERIMENTS = {
    "decode": dict(
        graph=True,
        shapes=[(op, BF16, rows, h) for op in ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm")
                for h in (1024, 2048, 4096, 5120, 8192, 16384) for rows in (1, 64, 256)],
        variants=_decode_variants(),
        peers=["normjit", "liger", "triton"]),
    "decode_first": dict(
        # the library, its table layouts with the weights early and late, and the same with
        # the templates of a modified copy in .kernel-alt (git-ignored): a template change
        graph=True,
        shapes=[(op, BF16, rows, h) for op in ("layernorm", "rmsnorm", "add_layernorm", "add_rmsnorm")
                for h in (1024, 4096, 8192, 16384) for rows in (1, 64, 256)],
        variants=["early=table,NJ_WLOAD=1", "late=table,NJ_WLOAD=0",
                  "a_early=table,NJ_WLOAD=1,dir=.kernel-alt", "a_late=table,NJ_WLOAD=0,dir=.kernel-alt"],
        peers=["normjit", "liger", "triton"]),
    "decode_rms": dict(
        # the RMSNorm family's decode plans (weights read with the row where they fit)
        graph=True,
        shapes=[(op, BF16, rows, h) for op in ("rmsnorm", "add_rmsnorm")
                for h in (16384, 1024, 4096, 8192, 5120) for rows in (1, 64)],
        variants=["late=table,NJ_WLOAD=0", "early=table,NJ_WLOAD=1"],
        peers=["normjit", "liger", "triton"]),
    "wide_rg": dict(
        # register layouts on a grid the GPU holds at once, beside the table's choice
        graph=False,
        shapes=[(op, BF16, rows, h) for rows, h in ((512, 65536), (512, 131072), (256, 262144),
                                                    (512, 32768))
                for op in ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm")],
        variants=["table=table"] + [f"rg_c{c}t{t}=t={t},c={c},g=-1"
                                    for c, t in ((1, 512), (1, 1024), (2, 512), (2, 1024),
                                                 (4, 512), (4, 1024), (8, 512), (8, 1024))],
        peers=["normjit"]),
    "wide_ln": dict(
        # LayerNorm at 65536: the table's layout beside 1024 threads a row on a resident grid
        graph=False,
        shapes=[(op, dt, rows, 65536) for op in ("layernorm", "add_layernorm")
                for dt in (BF16, torch.float16) for rows in (64, 512, 2048)],
        variants=["table=table", "rg_c1t1024=t=1024,c=1,g=-1", "c2t512o2=t=512,c=2,o=2,g=8",
                  "s1024=s=stream,t=1024"],
        peers=["normjit"]),
    "wide": dict(
        graph=False,
        shapes=[(op, BF16, rows, h) for op in ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm")
                for rows, h in ((512, 32768), (512, 65536), (512, 131072), (256, 262144))],
        variants=_wide_variants(),
        peers=["normjit"]),
    "staged": dict(
        graph=False,
        # widest first, the ops interleaved: a deadline cuts the least telling shapes
        shapes=[(op, BF16, rows, h) for rows, h in ((512, 131072), (256, 262144), (512, 65536),
                                                    (4096, 32768), (512, 32768))
                for op in ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm")],
        variants=_staged_variants(),
        peers=["normjit"]),
    "staged_seed": dict(
        graph=False,
        shapes=[(op, BF16, rows, h) for op in ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm")
                for rows, h in ((2048, 4096), (4096, 8192), (16384, 8192), (32768, 12288))],
        variants=["table=table", "tst=table,s=staged,g=-1", "trg=table,g=-1", "t512o3=t=512,o=3",
                  "t256=t=256"],
        peers=["normjit", "liger", "triton"]),
    "seed": dict(
        graph=False,
        shapes=[(op, BF16, rows, h) for op in ("rmsnorm", "layernorm", "add_rmsnorm", "add_layernorm")
                for rows, h in ((2048, 4096), (4096, 8192), (16384, 8192), (32768, 12288))],
        variants=["late=table,NJ_WLOAD=0", "early=table,NJ_WLOAD=1"]
        + [f"t{t}r{r}=t={t},r={r}" for t, r in ((64, 2), (128, 1), (256, 1), (384, 1), (512, 1))],
        peers=["normjit", "liger", "triton"]),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="gpu-out")
    ap.add_argument("--experiment", action="append", default=[])
    ap.add_argument("--kernel-dir", default=KERNEL_DIR)
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="only compile every kernel, for sm_90")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--deadline", type=float, default=0, help="seconds; stop starting cases after")
    args = ap.parse_args()
    if args.list:
        for k, e in EXPERIMENTS.items():
            print(k, len(e["shapes"]), "shapes;", ", ".join(v.split("=")[0] for v in e["variants"]))
        return
    os.makedirs(args.out, exist_ok=True)
    lab = Lab(args.kernel_dir, args.dry_run)
    if args.dry_run:
        for name in args.experiment:
            exp = EXPERIMENTS[name]
            lab.precompile([Shape(*s) for s in exp["shapes"]],
                           [v.split("=", 1)[1] for v in exp["variants"]], jobs=2)
        return
    t_end = time.time() + args.deadline if args.deadline else math.inf
    # fused.Run writes its CSV and prints a line per case.
    fargs = fused.parse_args(["--out", args.out])
    fargs.graph_calls, fargs.graph_replays = 64, 20
    fargs.min_reps, fargs.max_reps = 20, 60
    for name in args.experiment:
        exp = EXPERIMENTS[name]
        names = []
        for v in exp["variants"]:
            label, text = v.split("=", 1)
            fused.BUILDERS["v:" + label] = lab.builder(text)
            names.append("v:" + label)
        lab.precompile([Shape(*s) for s in exp["shapes"]], [v.split("=", 1)[1] for v in exp["variants"]])
        out = os.path.join(args.out, name)
        os.makedirs(out, exist_ok=True)
        run = fused.Run(fargs, out)
        run.seed = args.seed
        for op, dtype, rows, hidden in exp["shapes"]:
            if time.time() > t_end:
                print("deadline reached", flush=True)
                break
            run.run_case(name, f"{rows}x{hidden}", op, None, dtype, rows, hidden,
                         exp["peers"] + names, graph=exp["graph"])
        summarize(run.results, name, os.path.join(args.out, f"{name}.md"))


def summarize(results, name, path):
    """Per case: each implementation's time and its ratio to the best peer (> 1: faster)."""
    lines = [f"# lab {name}, {torch.cuda.get_device_name()}, {time.strftime('%Y-%m-%d')}", ""]
    cases = {}
    for r in results:
        cases.setdefault((r["op"], r["rows"], r["hidden"]), []).append(r)
    impls = []
    for rows in cases.values():
        for r in rows:
            if r["impl"] not in impls:
                impls.append(r["impl"])
    lines.append("| op | shape | " + " | ".join(impls) + " |")
    lines.append("| --- | --- |" + " ---: |" * len(impls))
    for (op, rows, hidden), rs in cases.items():
        by = {r["impl"]: r for r in rs}
        cells = []
        for i in impls:
            r = by.get(i)
            if r is None or r["us"] != r["us"]:
                cells.append("" if r is None else "x")
            else:
                pct = f" {r['pct_copy']:.0f}%" if r.get("pct_copy") == r.get("pct_copy") and \
                    "copy" in by else ""
                cells.append(f"{r['us']:.2f}{pct}")
        lines.append(f"| {op} | {rows}x{hidden} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(text, flush=True)


if __name__ == "__main__":
    main()
