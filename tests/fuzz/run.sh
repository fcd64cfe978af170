#!/usr/bin/env bash
# Build the libFuzzer targets of tests/fuzz with clang straight from the
# sources they need (no build folder: the shipped tuning tables are stubbed
# by stub_tuning_data.c) and run each for SECONDS on its committed corpus.
#
#   tests/fuzz/run.sh SECONDS [WORKDIR]
#
# Targets: entry (src/cache_entry.c), tuning (src/tuning.c), parse
# (tools/parse.c). Sanitizers: fuzzer, address (with leak checking),
# undefined, all fatal. New inputs go to WORKDIR/corpus-TARGET (the committed
# corpus is only read), crashes to WORKDIR/crash-TARGET/. Exits nonzero if
# any target fails to build, crashes, leaks or gets a sanitizer report.
# Environment: CC (default clang), NORMJIT_TOOLKIT_DIR (default
# /usr/local/cuda: cuda.h and nvrtc.h, headers only), FUZZ_TARGETS (a
# subset, e.g. "entry parse"), FUZZ_ARGS (more libFuzzer flags).
set -u

secs=${1:-}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 SECONDS [WORKDIR]" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${2:-$(mktemp -d /tmp/normjit-fuzz-XXXXXX)}
mkdir -p "$work"
work=$(cd "$work" && pwd)
cc=${CC:-clang}
toolkit=${NORMJIT_TOOLKIT_DIR:-/usr/local/cuda}
targets=${FUZZ_TARGETS:-entry tuning parse}

cflags=(-std=c11 -g -O1 -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        -Wall -Wextra -D_GNU_SOURCE
        -I"$root/include" -I"$root/src" -I"$root/tools" -I"$toolkit/include")

sources_of() {
    case "$1" in
    entry) echo "$here/fuzz_entry.c $root/src/cache_entry.c $root/src/hash.c $root/src/buf.c $root/src/status.c" ;;
    tuning) echo "$here/fuzz_tuning.c $here/stub_tuning_data.c $root/src/tuning.c $root/src/files.c $root/src/plan.c $root/src/ops.c $root/src/paths.c $root/src/variant.c $root/src/buf.c $root/src/status.c" ;;
    parse) echo "$here/fuzz_parse.c $root/tools/parse.c" ;;
    *) return 1 ;;
    esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
summary=""
for t in $targets; do
    src=$(sources_of "$t") || { echo "unknown target $t" >&2; exit 2; }
    exe="$work/fuzz_$t"
    echo "== $t: building"
    # shellcheck disable=SC2086
    if ! "$cc" "${cflags[@]}" $src -o "$exe" -lm -pthread 2>"$work/build-$t.log"; then
        cat "$work/build-$t.log" >&2
        summary+="$t: BUILD FAILED"$'\n'
        failed=1
        continue
    fi
    if [ -s "$work/build-$t.log" ]; then
        echo "warnings building $t:" >&2
        cat "$work/build-$t.log" >&2
    fi
    mkdir -p "$work/corpus-$t" "$work/crash-$t"
    dict=()
    [ -f "$here/$t.dict" ] && dict=(-dict="$here/$t.dict")
    echo "== $t: fuzzing for $secs s"
    # shellcheck disable=SC2086
    "$exe" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$work/crash-$t/" "${dict[@]}" ${FUZZ_ARGS:-} \
        "$work/corpus-$t" "$here/corpus/$t" >"$work/$t.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -1)
    crashes=$(find "$work/crash-$t" -type f | wc -l)
    status=ok
    if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ] ||
        grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|fuzz property violated' "$work/$t.log"; then
        status="FAILED (exit $rc)"
        failed=1
        grep -E -A12 'ERROR:|runtime error:|fuzz property violated' "$work/$t.log" | head -60 >&2
        find "$work/crash-$t" -type f -exec echo "   crashing input: {}" \; >&2
    fi
    summary+="$t: $status, ${execs:-?} execs in $secs s, ${cov:-cov: ?}, $(find "$work/corpus-$t" -type f | wc -l) new corpus inputs"$'\n'
done

echo "== summary (logs in $work)"
printf '%s' "$summary"
exit $failed
