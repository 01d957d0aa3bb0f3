#!/usr/bin/env bash
# Builds target/guests/control.cpio.gz: the Linux guests' initramfs plus /dynamic, what a
# Control domain creates domains from: Debian's kernel (gzip), the guests' initramfs, the
# test guest, example configurations, a partial device tree (QEMU virt's GPIO controller) and
# the run-time creation test (guests/linux/dynamic).
# Linux reads concatenated cpio archives as one. Last line of output: its path.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/guests
dir=$(bash scripts/make-guests.sh | tail -n 1)
[ "$dir" = "$out" ] || { echo "make-control-ramdisk: guests in $dir, expected $out" >&2; exit 1; }
ramdisk=$out/control.cpio.gz
newest=$(ls -t "$out/linux.img" "$out/initramfs.cpio.gz" "$out/testguest.img" guests/linux/dynamic/* \
    tests/lcm/partial/gpio.dts | head -n 1)
if [ ! -s "$ramdisk" ] || [ "$newest" -nt "$ramdisk" ]; then
    r=$(mktemp -d)
    mkdir -p "$r/dynamic"
    gzip -1 -n -c "$out/linux.img" >"$r/dynamic/linux.gz"
    cp "$out/initramfs.cpio.gz" "$out/testguest.img" guests/linux/dynamic/* "$r/dynamic/"
    # QEMU virt's GPIO controller as a partial device tree (passthrough at run time).
    dtc -q -I dts -O dtb -o "$r/dynamic/gpio.dtb" tests/lcm/partial/gpio.dts
    (cd "$r" && find dynamic | sort | cpio -o -H newc --quiet -R 0:0 | gzip -1 -n) >"$r/extra.cpio.gz"
    cat "$out/initramfs.cpio.gz" "$r/extra.cpio.gz" >"$ramdisk.tmp"
    rm -rf "$r"
    mv "$ramdisk.tmp" "$ramdisk"
fi
echo "$ramdisk"
