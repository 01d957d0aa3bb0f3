#!/usr/bin/env bash
# Launch-time figures: the hypervisor's own time from entry to every domain built and
# started ("launch: N domain(s) running, X us after entry"), the bytes copied into guest
# RAM, and what measuring the launch cost (SHA-256 of the host DTB and every boot module:
# KiB hashed, time, time per MiB), over RUNS boots of two lanes side by side:
#   testguest  the test-guest demo (tests/lcm/guests/demo.dts: three bare-metal domains
#              of 16 MiB, 1 MiB of modules), no TPM
#   linux+tpm  tests/lcm/guests/measured.dts (Debian's kernel and initramfs, 38 MiB of
#              modules) with a TPM (swtpm): its extends and read-back included
# Prints; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
bash scripts/build.sh >/dev/null
bash scripts/make-guests.sh >/dev/null
tg=target/guests
printf '%-10s %4s %13s %13s %12s %10s %9s %9s\n' lane run "launch (us)" "copied (KiB)" "hashed (KiB)" "hash (us)" "us/MiB" "TPM (us)"
declare -A total n
for i in $(seq 1 "$runs"); do
    for lane in testguest linux+tpm; do
        case $lane in
            testguest)
                out=$(bash scripts/run.sh --timeout 60 --module 0x49000000=$tg/testguest.img \
                    tests/lcm/guests/demo.dts 2>&1 | tr -d '\r') ;;
            linux+tpm)
                # Stopped once every domain runs: the Linux boot itself is not measured here.
                out=$(bash scripts/run.sh --timeout 90 --tpm --stop-when 'launch: [0-9]+ domain\(s\) running' \
                    --module 0x49000000=$tg/testguest.img --module 0x50000000=$tg/linux.img \
                    --module 0x53000000=$tg/initramfs.cpio.gz tests/lcm/guests/measured.dts 2>&1 | tr -d '\r') ;;
        esac
        us=$(sed -n 's/.*launch: [0-9]* domain(s) running, \([0-9]*\) us after entry.*/\1/p' <<<"$out")
        kib=$(sed -n 's/.*; \([0-9]*\) KiB copied into guest RAM.*/\1/p' <<<"$out")
        hk=$(sed -n 's/.*measure: [0-9]* event(s), \([0-9]*\) KiB hashed in.*/\1/p' <<<"$out")
        hu=$(sed -n 's/.*KiB hashed in \([0-9]*\) us (\([0-9]*\) us\/MiB[,)].*/\1/p' <<<"$out")
        per=$(sed -n 's/.*KiB hashed in \([0-9]*\) us (\([0-9]*\) us\/MiB[,)].*/\2/p' <<<"$out")
        tpm=$(sed -n 's/.*measure: TPM took \([0-9]*\) us.*/\1/p' <<<"$out")
        printf '%-10s %4s %13s %13s %12s %10s %9s %9s\n' "$lane" "$i" "${us:-?}" "${kib:-?}" "${hk:-?}" \
            "${hu:-?}" "${per:-?}" "${tpm:--}"
        total[$lane]=$((${total[$lane]:-0} + ${us:-0}))
        n[$lane]=$((${n[$lane]:-0} + 1))
    done
done
for lane in testguest linux+tpm; do
    echo "mean launch time, $lane: $((total[$lane] / n[$lane])) us over ${n[$lane]} runs (QEMU TCG; scrubbing and hashing included)"
done
