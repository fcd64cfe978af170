#!/usr/bin/env python3
"""Run one decode shape's kernels a few times each, for Nsight Compute: a bench/lab.py variant,
the library's kernel and Liger's, so that `ncu -k regex:...` reads their durations side by side.
usage: ncu ... python3 bench/lab_ncu.py OP ROWS HIDDEN VARIANT"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fused  # noqa: E402
import lab  # noqa: E402

op, rows, hidden, variant = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
case = fused.Case("ncu", "ncu", op, None, torch.bfloat16, rows, hidden, 1)
runs = [lab.Lab(lab.KERNEL_DIR).builder(variant)(case), fused.build_normjit(case)]
try:
    runs.append(fused.build_liger(case))
except Exception as e:  # noqa: BLE001
    print("no liger:", e)
for fn in runs:
    for _ in range(4):
        fn()
torch.cuda.synchronize()
