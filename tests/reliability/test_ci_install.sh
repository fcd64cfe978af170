#!/usr/bin/env bash
# .ci/install on machines where things go wrong, with stand-ins for dpkg,
# apt-get, pkg-config, meson and ninja on PATH: it must show what failed (the
# package manager's and meson's own words), say what to install, and exit 1
# only with a message; when all is well it exits 0.
#   test_ci_install.sh PATH-TO-.ci/install
set -u
install_script=$1
work=$(mktemp -d /tmp/normjit-ci-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0

# A copy of the script in a tree of its own: it works in its parent folder.
mkdir -p "$work/repo/.ci" "$work/bin" "$work/sys" "$work/cuda/include" "$work/tmp"
cp "$install_script" "$work/repo/.ci/install"
touch "$work/cuda/include/cuda.h"
# PATH holds the stand-ins and these tools only, so that a real meson cannot answer.
for t in bash env dirname id tail sed grep mkdir touch rm cat; do
  ln -s "$(command -v "$t")" "$work/sys/$t" || exit 1
done

stub() { # name, body
  printf '#!/usr/bin/env bash\n%s\n' "$2" >"$work/bin/$1"
  chmod +x "$work/bin/$1"
}

# The machine of the report: no package is installed and the mirror is unreachable.
scenario_defaults() {
  rm -f "$work/bin"/*
  rm -rf "$work/repo/build"
  stub dpkg 'exit 1'
  stub sudo 'exec "$@"'
  stub apt-get 'echo "Err:1 http://deb.debian.org/debian bookworm InRelease"
echo "  Temporary failure resolving '"'"'deb.debian.org'"'"'"
echo "E: Unable to locate package libxxhash-dev" >&2
exit 100'
  stub pkg-config 'exit 1'
  stub meson 'echo "The Meson build system"
echo "Project name: normjit"
echo "../meson.build:21:2: ERROR: Problem encountered: xxhash.h not found: install libxxhash-dev (used header-only)"
exit 1'
  stub ninja 'echo "ninja: built"; exit 0'
}

run() { # expected status, name, needles...
  local expect=$1 name=$2 out status
  shift 2
  out=$(cd "$work" && PATH="$work/bin:$work/sys" CUDA_HOME="$work/cuda" TMPDIR="$work/tmp" \
        bash "$work/repo/.ci/install" 2>&1)
  status=$?
  if [ "$status" -ne "$expect" ]; then
    echo "FAIL $name: exit status $status, expected $expect; output:"
    echo "$out" | sed 's/^/    /'
    failures=$((failures + 1))
    return
  fi
  for needle in "$@"; do
    if ! grep -qF -- "$needle" <<<"$out"; then
      echo "FAIL $name: output lacks \"$needle\":"
      echo "$out" | sed 's/^/    /'
      failures=$((failures + 1))
      return
    fi
  done
  echo "ok   $name"
}

scenario_defaults
run 1 "no mirror, no xxhash" \
  "warning: could not install meson ninja-build" \
  "Temporary failure resolving 'deb.debian.org'" \
  "E: Unable to locate package libxxhash-dev" \
  "error: 'meson setup build' failed" \
  "ERROR: Problem encountered: xxhash.h not found: install libxxhash-dev" \
  "error: install: libxxhash-dev, then run .ci/install again" \
  "note: cmocka missing (package libcmocka-dev)"

scenario_defaults
rm "$work/bin/meson"
run 1 "no meson at all" "meson is not installed: install the package meson"

scenario_defaults
stub dpkg 'exit 0'
stub pkg-config 'exit 0'
stub meson 'mkdir -p build && touch build/build.ninja'
stub ninja 'echo "src/api.c:1:1: error: something"; exit 1'
run 1 "the build fails" "src/api.c:1:1: error: something" "error: the build failed"

scenario_defaults
rm -rf "$work/cuda/include/cuda.h"
stub dpkg 'exit 0'
run 1 "no CUDA headers" "no CUDA toolkit headers under $work/cuda/include"
touch "$work/cuda/include/cuda.h"

scenario_defaults
stub dpkg 'exit 0'
stub pkg-config 'exit 0'
stub meson 'mkdir -p build && touch build/build.ninja'
run 0 "all there" "ninja: built"

[ "$failures" -eq 0 ]
