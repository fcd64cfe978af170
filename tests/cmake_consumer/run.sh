#!/usr/bin/env bash
# The CMake package, as a C project without Meson uses it: install a Meson
# build folder into a staging tree (meson install --destdir), then build and
# run this consumer against it, asking for any version, for the project's
# version (found) and for the next major version (refused).
# usage: tests/cmake_consumer/run.sh MESON_BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/normjit-cmake-XXXXXX)
trap 'rm -rf "$work"' EXIT

option() { # name: a value from the build folder's Meson introspection
  meson introspect "$build" --buildoptions --projectinfo |
    python3 -c 'import json, sys; d = json.load(sys.stdin); name = sys.argv[1]
print(d["projectinfo"]["version"] if name == "version" else
      next(o["value"] for o in d["buildoptions"] if o["name"] == name))' "$1"
}
version=$(option version)
prefix=$work/stage$(option prefix)

meson install -C "$build" --destdir "$work/stage" --quiet

consumer() { # name, extra cmake arguments...
  local dir=$work/$1; shift
  cmake -S "$here" -B "$dir" -DCMAKE_PREFIX_PATH="$prefix" "$@"
  cmake --build "$dir"
  "$dir/consumer"
}
consumer any
consumer exact -DNORMJIT_VERSION_WANTED="$version"
next_major=$(( ${version%%.*} + 1 )).0
if consumer next -DNORMJIT_VERSION_WANTED="$next_major" >"$work/next.log" 2>&1; then
  echo "find_package(normjit $next_major) accepted version $version"; exit 1
fi
grep -q 'compatible with requested version' "$work/next.log"
echo "find_package(normjit $next_major) refused $version, as it should"
