#!/usr/bin/env python3
"""The first call in a fresh process: with an empty kernel cache, then served from the disk cache.

Each measurement runs in a new Python process (torch imported and CUDA initialized before the
clock starts), so that the figure is what a user's first call costs: importing normjit, importing
its torch ops (normjit.ops: the torch.library registrations, and with the native kernels loading
the extension), creating the context, loading NVRTC, compiling or reading the kernel, loading the
module, launching. Each part is timed on its own; total_ms is the sum up to the end of the first
RMSNorm, the figure the "<= 2 ms from the disk cache" target is about.

Both kernel paths by default (--kernels ctypes|native|both): the native extension is built or
found first, in a process of its own, under $NORMJIT_TORCH_EXT_DIR (else a temporary folder,
about a minute to build). A warm-up process also writes the package's bytecode (to a private
cache folder, as an installed package has it) so that no child compiles Python source.
Prints one line per process and the figures as JSON.
Usage: python3 bench/first_call.py [--kernels ctypes|native|both]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HIDDEN = 4352
PYTHON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")
PARTS = ("import_ms", "import_ops_ms", "context_ms", "first_rmsnorm_ms")


def child():
    import torch
    x = torch.randn(8, HIDDEN, device="cuda", dtype=torch.float16)
    w = torch.ones(HIDDEN, device="cuda", dtype=torch.float16)
    torch.cuda.synchronize()
    sys.path.insert(0, PYTHON_DIR)
    t = [time.perf_counter()]
    import normjit
    from normjit import _binding
    t.append(time.perf_counter())
    from normjit import ops
    t.append(time.perf_counter())
    _binding.device_context(torch.cuda.current_device())
    t.append(time.perf_counter())
    normjit.rms_norm(x, w)
    torch.cuda.synchronize()
    t.append(time.perf_counter())
    normjit.layer_norm(x, w, None)
    torch.cuda.synchronize()
    t.append(time.perf_counter())
    normjit.rms_norm(x, w)
    torch.cuda.synchronize()
    t.append(time.perf_counter())
    ms = [round((b - a) * 1e3, 2) for a, b in zip(t, t[1:])]
    result = dict(zip(PARTS + ("first_layernorm_ms", "second_rmsnorm_ms"), ms))
    result["total_ms"] = round(sum(result[p] for p in PARTS), 2)
    result["kernels"] = ops.kernels
    print(json.dumps(result))


def run_child(env, what):
    r = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True,
                       text=True)
    if r.returncode:
        print(f"{what}: failed\n{r.stderr[-2000:]}")
        sys.exit(1)
    return r


def main():
    if sys.argv[1:] == ["--child"]:
        child()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", choices=("ctypes", "native", "both"), default="both")
    chosen = parser.parse_args().kernels
    kinds = ("ctypes", "native") if chosen == "both" else (chosen,)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        # Bytecode as an installed package has it, whatever PYTHONDONTWRITEBYTECODE says.
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        base["PYTHONPYCACHEPREFIX"] = os.path.join(scratch, "pycache")
        base.setdefault("NORMJIT_TORCH_EXT_DIR", os.path.join(scratch, "torch_ext"))
        for kind in kinds:
            env = dict(base, NORMJIT_TORCH_NATIVE="1" if kind == "native" else "0")
            # Warm-up: bytecode written, the native extension built or found; its own cache.
            warm = run_child(dict(env, NORMJIT_CACHE_DIR=os.path.join(scratch, "warm-" + kind)),
                             f"{kind} warm-up")
            got = json.loads(warm.stdout.strip().splitlines()[-1])["kernels"]
            if got != kind:
                print(f"{kind}: the process ran the {got} kernels (the native extension did not "
                      f"build?)\n{warm.stderr[-2000:]}")
                continue
            env.update(NORMJIT_CACHE_DIR=os.path.join(scratch, "cache-" + kind),
                       NORMJIT_LOG="debug")
            for name in ("empty cache", "from the disk cache"):
                r = run_child(env, f"{kind}, {name}")
                key = f"{kind}, {name}"
                results[key] = json.loads(r.stdout.strip().splitlines()[-1])
                print(f"{key}: {results[key]}")
                # The library's own account (NORMJIT_LOG=debug): NVRTC, compile, store, disk reads.
                for line in r.stderr.splitlines():
                    if "NVRTC" in line or "kernel " in line:
                        print(f"    {line.strip()}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
