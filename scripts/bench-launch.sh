#!/usr/bin/env bash
# Launch-time figures: the hypervisor's own time from entry to every domain built and
# started ("launch: N domain(s) running, X us after entry"), and the bytes copied into
# guest RAM, over RUNS boots of the test-guest demo (tests/lcm/guests/demo.dts: three
# bare-metal domains of 16 MiB). Prints; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bash scripts/build.sh >/dev/null
bash scripts/make-guests.sh >/dev/null
printf '%5s %16s %14s %10s\n' run "launch (us)" "copied (KiB)" domains
total=0
for i in $(seq 1 "$runs"); do
    out=$(bash scripts/run.sh --timeout 60 --module 0x49000000=target/guests/testguest.img \
        tests/lcm/guests/demo.dts 2>&1 | tr -d '\r')
    us=$(sed -n 's/.*launch: \([0-9]*\) domain(s) running, \([0-9]*\) us after entry.*/\2/p' <<<"$out")
    n=$(sed -n 's/.*launch: \([0-9]*\) domain(s) running, .*/\1/p' <<<"$out")
    kib=$(sed -n 's/.*; \([0-9]*\) KiB copied into guest RAM.*/\1/p' <<<"$out")
    printf '%5s %16s %14s %10s\n' "$i" "${us:-?}" "${kib:-?}" "${n:-?}"
    total=$((total + ${us:-0}))
done
echo "mean launch time: $((total / runs)) us over $runs runs (QEMU TCG; scrubbing domain RAM included)"
