#!/usr/bin/env python3
"""The first call in a fresh process: with an empty kernel cache, then served from the disk cache.

Each measurement runs in a new Python process (torch imported and CUDA initialized before the
clock starts) through the ctypes kernels, so that the figure is the library's: creating the
context, loading NVRTC, compiling or reading the kernel, loading the module, launching.
Prints one line per process and the figures as JSON. Usage: python3 bench/first_call.py
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HIDDEN = 4352
PYTHON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")


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
    print(json.dumps(dict(zip(("import_ms", "context_ms", "first_rmsnorm_ms",
                               "first_layernorm_ms", "second_rmsnorm_ms"), ms))))


def main():
    if sys.argv[1:] == ["--child"]:
        child()
        return
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NORMJIT_CACHE_DIR=cache, NORMJIT_TORCH_NATIVE="0",
                   NORMJIT_LOG="debug")
        for name in ("empty cache", "from the disk cache"):
            r = subprocess.run([sys.executable, __file__, "--child"], env=env,
                               capture_output=True, text=True)
            if r.returncode:
                print(f"{name}: failed\n{r.stderr[-2000:]}")
                sys.exit(1)
            results[name] = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"{name}: {results[name]}")
            # The library's own account (NORMJIT_LOG=debug): NVRTC, compile, store, disk reads.
            for line in r.stderr.splitlines():
                if "NVRTC" in line or "kernel " in line:
                    print(f"    {line.strip()}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
