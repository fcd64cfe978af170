#!/usr/bin/env python3
"""The library's shape: src/ modules include each other without cycles, and
libnormjit.so holds only what embedders call (no cache administration,
scanning or printing, which live in the tool's static library).

usage: test_unit_layers.py SRC_DIR NM LIBRARY
"""
import os
import re
import subprocess
import sys

# Code that belongs to the tool only: none of it may be linked into the library.
TOOL_ONLY = re.compile(r'nj_admin_|nj_cache_scan|nj_cache_walk|nj_key_info|human_size|human_age|'
                       r'nj_json|nj_model_read|nj_bench_|nj_driver_extra')


def include_graph(src):
    """module -> modules it includes (a module is a .c/.h pair named alike)."""
    local = {f[:-2] for f in os.listdir(src) if f.endswith(('.c', '.h'))}
    graph = {m: set() for m in local}
    for f in os.listdir(src):
        if not f.endswith(('.c', '.h')):
            continue
        with open(os.path.join(src, f), encoding='utf-8') as fh:
            for name in re.findall(r'^\s*#\s*include\s+"([\w.]+)\.h"', fh.read(), re.M):
                if name in local and name != f[:-2]:
                    graph[f[:-2]].add(name)
    return graph


def find_cycle(graph):
    """A list of modules forming a cycle, or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def main(argv):
    src, nm, library = argv[1:4]
    failures = 0
    graph = include_graph(src)
    cycle = find_cycle(graph)
    if cycle:
        print('include cycle among src/ modules: ' + ' -> '.join(cycle))
        failures += 1
    # The context owns the pieces; nothing below the public entry points reaches up into it.
    for m, deps in sorted(graph.items()):
        if m not in ('api', 'ctx') and 'ctx' in deps:
            print(f'{m} includes ctx.h: lower modules get what they need passed in')
            failures += 1
    out = subprocess.run([nm, library], check=True, capture_output=True, text=True).stdout
    tool_symbols = sorted({line.split()[-1] for line in out.splitlines()
                           if line.split() and TOOL_ONLY.search(line.split()[-1])})
    for name in tool_symbols:
        print(f'tool-only code linked into {os.path.basename(library)}: {name}')
        failures += 1
    print(f'{len(graph)} modules, {sum(len(d) for d in graph.values())} includes, '
          f'{len(out.splitlines())} symbols checked')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
