#!/usr/bin/env python3
"""The shared library exports exactly the NORMJIT_API functions of the public header.

usage: test_unit_exports.py NM LIBRARY HEADER
"""
import re
import subprocess
import sys


def exported(nm, library):
    """Defined dynamic symbols, without version suffixes or version-node entries."""
    out = subprocess.run([nm, '-D', '--defined-only', library], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[1] == 'A':  # 'A': the version node (NORMJIT_0)
            continue
        names.add(fields[2].split('@')[0])
    return names


def declared(header):
    """Names of the functions declared with NORMJIT_API, outside comments and #define lines."""
    with open(header, encoding='utf-8') as f:
        text = f.read()
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    text = re.sub(r'//[^\n]*', ' ', text)
    text = re.sub(r'^[ \t]*#(?:[^\n]*\\\n)*[^\n]*', ' ', text, flags=re.M)
    return set(re.findall(r'\bNORMJIT_API\b[^;{()]*?\b(\w+)\s*\(', text))


def main(argv):
    nm, library, header = argv[1:4]
    have, want = exported(nm, library), declared(header)
    if not want:
        print(f'no NORMJIT_API declarations found in {header}')
        return 1
    for name in sorted(have - want):
        print(f'exported but not declared with NORMJIT_API: {name}')
    for name in sorted(want - have):
        print(f'declared with NORMJIT_API but not exported: {name}')
    print(f'{len(want)} declared, {len(have)} exported')
    return 0 if have == want else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
