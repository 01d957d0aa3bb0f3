#!/usr/bin/env bash
# Fuzzes the host-DTB configuration path (tools: cargo-fuzz, libFuzzer) for a bounded time,
# starting from a corpus of QEMU host DTBs with every dts/ example merged in.
# usage: scripts/fuzz.sh [SECONDS]   (default 60). Prints libFuzzer's run count.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || bash scripts/install-deps.sh >&2
corpus=fuzz/corpus/lcm
mkdir -p "$corpus"
work=$(mktemp -d "${TMPDIR:-/tmp}/hyperlaunch-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 4 -m 1G \
    -nodefaults -display none -net none -machine dumpdtb="$work/base.dtb" >/dev/null 2>&1
# QEMU pads its DTB to 1 MiB: recompile it to its real size so that mutations hit content.
dtc -q -I dtb -O dtb -o "$corpus/seed-virt.dtb" "$work/base.dtb"
for f in dts/*.dts dts/invalid/*.dts; do
    name=$(basename "$f" .dts)
    bash scripts/merge-lcm.sh "$work/base.dtb" "$f" "$corpus/seed-$name.dtb" 2>/dev/null || true
done
cd fuzz
cargo fuzz build --release lcm >&2
cargo fuzz run --release lcm corpus/lcm -- -max_total_time="$secs" -max_len=65536 -print_final_stats=1 2>&1 |
    tee "$work/fuzz.log" | grep -E '^(Done|==[0-9]+==|SUMMARY|stat::number_of_executed_units)' || true
status=${PIPESTATUS[0]}
runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$work/fuzz.log")
echo "fuzz: ${runs:-0} executions in ${secs} s, exit status $status"
exit "$status"
