#!/usr/bin/env python3
"""The time `import normjit.ops` takes in a fresh process, torch already imported.

Each sample is a new Python process: it imports torch, starts the clock, imports
normjit (the package and its ctypes binding) and then normjit.ops (the torch ops:
loading libnormjit and, with the native kernels, the built extension; ops_ms is the
figure docs/PERFORMANCE.md reports).
A warm-up process first writes the bytecode (to a private cache folder) and builds or
finds the extension, so no sample compiles anything. The kernel paths are sampled
interleaved. Prints the median and range of each part, in milliseconds.
Usage: python3 bench/import_ops.py [--runs N] [--kernels native|ctypes|both]
The extension is looked for under $NORMJIT_TORCH_EXT_DIR (else torch's folder);
NORMJIT_LIBRARY picks the library as for the package.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PYTHON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")


def child():
    import torch  # noqa: F401
    sys.path.insert(0, PYTHON_DIR)
    t0 = time.perf_counter()
    import normjit
    from normjit import _binding  # noqa: F401  (libnormjit is loaded by normjit.ops)
    t1 = time.perf_counter()
    from normjit import ops
    t2 = time.perf_counter()
    print(json.dumps({"kernels": ops.kernels, "package_ms": (t1 - t0) * 1e3,
                      "ops_ms": (t2 - t1) * 1e3, "total_ms": (t2 - t0) * 1e3}))
    del normjit


def sample(env):
    r = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True,
                       text=True)
    if r.returncode:
        sys.exit(f"child failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    if sys.argv[1:] == ["--child"]:
        child()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--kernels", choices=("native", "ctypes", "both"), default="both")
    args = parser.parse_args()
    kinds = ("native", "ctypes") if args.kernels == "both" else (args.kernels,)
    with tempfile.TemporaryDirectory() as scratch:
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        base["PYTHONPYCACHEPREFIX"] = os.path.join(scratch, "pycache")
        envs = {k: dict(base, NORMJIT_TORCH_NATIVE="1" if k == "native" else "0") for k in kinds}
        for kind, env in envs.items():
            got = sample(env)["kernels"]  # warm-up: bytecode, the extension built or found
            if got != kind:
                sys.exit(f"{kind}: the process ran the {got} kernels")
        samples = {k: [] for k in kinds}
        for _ in range(args.runs):
            for kind, env in envs.items():
                samples[kind].append(sample(env))
    for kind, runs in samples.items():
        parts = {p: sorted(r[p] for r in runs) for p in ("ops_ms", "package_ms", "total_ms")}
        print(f"{kind} ({len(runs)} processes): " + ", ".join(
            f"{p} median {statistics.median(v):.2f} (min {v[0]:.2f}, max {v[-1]:.2f})"
            for p, v in parts.items()))


if __name__ == "__main__":
    main()
