#!/usr/bin/env python3
"""Every kernel template compiles on its own with the toolkit's nvcc for sm_90
(default knobs, or the defines of each line of tests/template_registers.txt),
uses no more registers than its recorded bound, and spills nothing.

usage: test_unit_templates.py NVCC KERNEL_SRC_DIR BOUNDS_FILE
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile


def read_bounds(path):
    rows = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                words = shlex.split(line)
                rows.append((words[0], words[1], int(words[2]), words[3:]))
    return rows


def main(argv):
    nvcc, kernel_src, bounds = argv[1:4]
    if not os.access(nvcc, os.X_OK):
        print(f'nvcc not found at {nvcc}: the CUDA toolkit is needed to check the templates')
        return 1
    failures = 0
    templates = {f for f in os.listdir(kernel_src) if f.endswith('.cu')}
    rows = read_bounds(bounds)
    for t in sorted(templates - {r[1] for r in rows}):
        print(f'{t}: no line in {os.path.basename(bounds)}')
        failures += 1
    with tempfile.TemporaryDirectory() as tmp:
        for name, template, bound, defines in rows:
            cmd = [nvcc, '-arch=sm_90', '-std=c++17', '-Xptxas', '-v', '-c',
                   os.path.join(kernel_src, template), '-o', os.path.join(tmp, name + '.o')] + defines
            run = subprocess.run(cmd, capture_output=True, text=True)
            log = run.stdout + run.stderr
            regs = re.findall(r'Used (\d+) registers', log)
            spills = [int(n) for n in re.findall(r'(\d+) bytes spill (?:stores|loads)', log)]
            if run.returncode != 0 or not regs:
                print(f'{name}: {template} does not compile on its own:\n{log}')
                failures += 1
                continue
            used = max(int(r) for r in regs)
            status = 'ok'
            if used > bound:
                status = f'FAIL: more than {bound}'
                failures += 1
            if any(spills):
                status = f'FAIL: spills ({spills})'
                failures += 1
            print(f'{name:24} {used:3} registers (bound {bound}) {status}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
