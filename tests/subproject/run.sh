#!/usr/bin/env bash
# normjit as a Meson subproject of a debug build: the parent builds and runs
# against it; normjit's tests are not built even when its own `tests` option
# is on, and its host code is compiled optimized (-O2) while the parent's is
# not.
# usage: tests/subproject/run.sh [CUDA_TOOLKIT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
toolkit=${1:-/usr/local/cuda}
work=$(mktemp -d /tmp/normjit-subproject-XXXXXX)
trap 'rm -rf "$work"' EXIT

cp "$here/meson.build" "$here/meson_options.txt" "$here/main.c" "$work/"
mkdir "$work/subprojects"
ln -s "$root" "$work/subprojects/normjit"

meson setup "$work/build" "$work" -Dbuildtype=debug -Dtests=true \
  -Dnormjit:tests=true -Dnormjit:toolkit_dir="$toolkit"
ninja -C "$work/build"
meson test -C "$work/build" --print-errorlogs

python3 - "$work/build" <<'PY'
import json, os, sys
build = sys.argv[1]
targets = json.load(open(os.path.join(build, "meson-info", "intro-targets.json")))
tests = [t["name"] for t in targets if t["name"].startswith("test_")]
assert not tests, f"normjit's tests were built as a subproject: {tests}"
commands = json.load(open(os.path.join(build, "compile_commands.json")))
def flags(path_part):
    found = [c["command"].split() for c in commands if path_part in c["file"]]
    assert found, f"no compile command for {path_part}"
    return found
for args in flags("src/api.c"):
    assert "-O2" in args and "-O0" not in args, f"normjit's host code not optimized: {args}"
for args in flags("main.c"):
    assert "-O0" in args, f"the parent's own code is not a debug build: {args}"
print(f"{len(targets)} targets, no normjit tests; normjit's src/api.c at -O2, the parent's main.c at -O0")
PY
