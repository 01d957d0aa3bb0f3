#!/usr/bin/env bash
# Dynamic-mode figures: from `hlctl create` in a Linux Control domain (scripts/run.sh
# --dynamic) to the created domain's marker, over ROUNDS creations of two kinds side by
# side in one boot:
#   linux      Debian's kernel (gzip, 12 MiB) and the guests' initramfs, 128 MiB of RAM
#              (/dynamic/linux.dts: it prints its marker and powers off)
#   testguest  the bare-metal test guest, 16 MiB (/dynamic/testguest.dts)
# For each: staging (hlctl reading the files and the hypervisor copying them in through
# the control window, from the first part staged to the create call), the hypervisor's
# own create (parse, check, build, copy or unpack the kernel, scrub), and for Linux the
# guest's uptime at its marker (its clock starts when it is built). Prints; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
bash scripts/build.sh >/dev/null
bash scripts/make-control-ramdisk.sh >/dev/null 2>&1
in=$(mktemp)
trap 'rm -f "$in"' EXIT
cat >"$in" <<SH
i=0; while [ \$i -lt $rounds ]; do
  for k in linux testguest; do
    if [ \$k = linux ]; then out=\$(hlctl create /dynamic/linux.dts --kernel /dynamic/linux.gz --ramdisk /dynamic/initramfs.cpio.gz)
    else out=\$(hlctl create /dynamic/testguest.dts --kernel /dynamic/testguest.img); fi
    id=\${out#DOM}; id=\${id%% *}
    n=0; while [ \$k = linux ] && [ \$n -lt 300 ] && ! hlctl info \$id | grep -q 'state: stopped'; do sleep 1; n=\$((n+1)); done
    hlctl destroy \$id >/dev/null; sleep 1
  done
  i=\$((i+1))
done; echo "HL-BENCH-""DONE"
SH
out=$(bash scripts/run.sh --dynamic --mem 2G --timeout 900 --input "$in" --input-when 'HL-LINUX-UP control' \
    --stop-when "^DOM1: HL-BENCH-DONE\$" 2>&1 | tr -d '\r')
printf '%-10s %5s %13s %15s %16s\n' kind round "staging (ms)" "hypervisor (ms)" "guest marker (s)"
created=$(grep -E 'INFO  DOM[0-9]+: .* created by DOM1 in' <<<"$out")
markers=$(sed -n 's/.*HL-LINUX-UP dyn: .*uptime \([0-9.]*\) s.*/\1/p' <<<"$out")
r=0 l=0
while read -r line; do
    us=$(sed -n 's/.* created by DOM1 in \([0-9]*\) us .*/\1/p' <<<"$line")
    st=$(sed -n 's/.*staged over \([0-9]*\) us.*/\1/p' <<<"$line")
    if grep -q '128 MiB' <<<"$line"; then
        kind=linux; l=$((l + 1)); m=$(sed -n "${l}p" <<<"$markers")
    else
        kind=testguest; m=-
    fi
    [ $kind = linux ] && r=$((r + 1))
    printf '%-10s %5s %13s %15s %16s\n' $kind $r "$(awk -v v="$st" 'BEGIN { printf "%.1f", v / 1000 }')" \
        "$(awk -v v="$us" 'BEGIN { printf "%.1f", v / 1000 }')" "${m:--}"
done <<<"$created"
