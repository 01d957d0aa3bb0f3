#!/usr/bin/env bash
# Fuzzes the hypervisor with libFuzzer (cargo-fuzz) for a bounded time per target, each
# target from its corpus in fuzz/corpus/TARGET (the configuration parser's, lcm, also from
# QEMU host DTBs with every dts/ example merged in).
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 60); TARGET: a file name of fuzz/fuzz_targets/ without .rs
#   (default: every target there).
# Prints one line per target, "fuzz: TARGET: N executions in S s, exit status X", and exits
# non-zero if any target failed: libFuzzer's non-zero status (a crash, a leak, a timeout, a
# start-up failure), no execution at all, or any artifact (crash-*, leak-*, timeout-*,
# oom-*) left in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
case "$secs" in
    '' | *[!0-9]* | 0) echo "fuzz.sh: SECONDS must be a positive number, not '$secs'" >&2; exit 2 ;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "fuzz.sh: no target fuzz/fuzz_targets/$t.rs" >&2; exit 2; }
done
command -v cargo-fuzz >/dev/null 2>&1 || bash scripts/install-deps.sh >&2
work=$(mktemp -d "${TMPDIR:-/tmp}/hyperlaunch-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 4 -m 1G \
    -nodefaults -display none -net none -machine dumpdtb="$work/base.dtb" >/dev/null 2>&1
# QEMU pads its DTB to 1 MiB: recompile it to its real size so that mutations hit content.
mkdir -p "$work/seeds"
dtc -q -I dtb -O dtb -o "$work/seeds/seed-virt.dtb" "$work/base.dtb"
for f in dts/*.dts dts/invalid/*.dts; do
    name=$(basename "$f" .dts)
    bash scripts/merge-lcm.sh "$work/base.dtb" "$f" "$work/seeds/seed-$name.dtb" 2>/dev/null || true
done
cd fuzz
failed=0
for t in "${targets[@]}"; do
    corpus=corpus/$t artifacts=artifacts/$t
    mkdir -p "$corpus"
    # The configuration parser's target takes host DTBs: it starts from real ones.
    [ "$t" != lcm ] || cp "$work"/seeds/*.dtb "$corpus"/
    # Artifacts of an earlier run would fail this one: each run starts with none.
    rm -rf "$artifacts"
    mkdir -p "$artifacts"
    status=0
    if ! cargo fuzz build --release "$t" >"$work/build-$t.log" 2>&1; then
        cat "$work/build-$t.log" >&2
        echo "fuzz: $t: 0 executions in $secs s, exit status build-failed"
        failed=1
        continue
    fi
    cargo fuzz run --release "$t" "$corpus" -- -max_total_time="$secs" -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" >"$work/fuzz-$t.log" 2>&1 || status=$?
    grep -a -E '^(Done|==[0-9]+==|SUMMARY|stat::number_of_executed_units|INFO: Running with|.*panicked at)' \
        "$work/fuzz-$t.log" >&2 || true
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$work/fuzz-$t.log" | tail -n 1)
    [ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work/fuzz-$t.log" | tail -n 1)
    runs=${runs:-0}
    found=$(find "$artifacts" -type f | head -n 5)
    echo "fuzz: $t: $runs executions in $secs s, exit status $status"
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $t: FAIL: libFuzzer exited with status $status" >&2
        tail -n 40 "$work/fuzz-$t.log" >&2
        failed=1
    fi
    if [ "$runs" -eq 0 ]; then
        echo "fuzz: $t: FAIL: no execution" >&2
        tail -n 20 "$work/fuzz-$t.log" >&2
        failed=1
    fi
    if [ -n "$found" ]; then
        echo "fuzz: $t: FAIL: artifacts left: $(echo "$found" | paste -sd' ')" >&2
        failed=1
    fi
done
exit "$failed"
