#!/usr/bin/env bash
# pip install . into a fresh virtual environment, as a user would, then from
# outside the checkout and with no NORMJIT_* variable: the package imports
# and loads the libnormjit installed inside it; normjit.__version__ is the
# library's, the wheel's and Meson's project version; every file under
# python/normjit/ was installed; the normjit command warms the cache without
# a GPU; python -m normjit passes arguments and exit status through; and the
# binding's fake-driver test passes against the installed package.
# usage: tests/pip_install/run.sh [CUDA_TOOLKIT_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
toolkit=${1:-/usr/local/cuda}
work=$(mktemp -d /tmp/normjit-pip-XXXXXX)
trap 'rm -rf "$work"' EXIT

version=$(meson introspect "$root/meson.build" --projectinfo |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check \
  --config-settings=setup-args=-Dtoolkit_dir="$toolkit" "$root"

cd "$work"
for v in $(env | sed -n 's/^\(NORMJIT_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export NORMJIT_CACHE_DIR=$work/cache
py=$work/venv/bin/python

"$py" - "$version" "$root/python/normjit" <<'PY'
import importlib.metadata, os, sys
import normjit
from normjit._library import library_path

version, source = sys.argv[1:]
package = os.path.dirname(normjit.__file__)
assert package.startswith(sys.prefix), f"normjit imported from {package}, not the venv"
assert normjit.__version__ == normjit.version() == importlib.metadata.version("normjit") == version, \
    (normjit.__version__, normjit.version(), importlib.metadata.version("normjit"), version)
assert os.path.dirname(library_path()) == package, library_path()
for top, dirs, files in os.walk(source):
    dirs[:] = [d for d in dirs if d != "__pycache__"]
    for f in files:
        if not f.endswith(".pyc"):
            installed = os.path.join(package, os.path.relpath(os.path.join(top, f), source))
            assert os.path.exists(installed), f"{installed} was not installed"
print(f"normjit {normjit.__version__} from {package}, library {library_path()}")
PY

"$work/venv/bin/normjit" warm --arch sm_90 --hidden 4096 --op rmsnorm --dtype f16
test "$("$py" -m normjit --version)" = "normjit $version"
status=0
"$py" -m normjit no-such-command 2>/dev/null || status=$?
test "$status" -eq 2 || { echo "python -m normjit no-such-command exited $status, not 2"; exit 1; }
echo "python -m normjit: output and exit status of the normjit command"

"$py" "$root/tests/test_unit_python.py" "$("$py" -c 'from normjit._library import library_path; print(library_path())')" \
  "$("$py" -c 'import normjit, os; print(os.path.dirname(os.path.dirname(normjit.__file__)))')" "$version"
