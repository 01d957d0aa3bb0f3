#!/usr/bin/env bash
# Debian's U-Boot for the Raspberry Pi 4 (u-boot-rpi, arm64 package: rpi_arm64/u-boot.bin),
# unpacked into target/uboot-rpi, for `scripts/run.sh --machine raspi4b --uboot`. Prints the
# path of u-boot.bin last. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$PWD/target/uboot-rpi
bin=$dir/usr/lib/u-boot/rpi_arm64/u-boot.bin
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
if [ ! -s "$bin" ]; then
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        $SUDO dpkg --add-architecture arm64
        $SUDO apt-get update -qq
    fi
    apt-cache show u-boot-rpi:arm64 >/dev/null 2>&1 || $SUDO apt-get update -qq
    # apt's download user cannot write into this tree: fetch in a scratch directory.
    work=$(mktemp -d "${TMPDIR:-/tmp}/uboot-rpi.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    chmod 777 "$work"
    (cd "$work" && apt-get download -q u-boot-rpi:arm64 >&2)
    mkdir -p "$dir"
    dpkg-deb -x "$work"/u-boot-rpi_*.deb "$dir"
    [ -s "$bin" ] || { echo "install-uboot-rpi: no rpi_arm64/u-boot.bin in u-boot-rpi" >&2; exit 1; }
fi
echo "$bin"
