#!/usr/bin/env bash
# xen-image.sh GUESTS_DIR: Xen 4.17 from Debian's xen-hypervisor-4.17-arm64 package, for the
# benchmarks that compare with it. Its /boot holds a raw arm64 Image, which QEMU's -kernel
# boots at EL2 like the hypervisor's. The package is cached in GUESTS_DIR/debs and the
# image in GUESTS_DIR/xen-4.17-arm64, whose path is the last line printed. When it cannot
# be had, the reason is the last line on stderr and the exit status is 1.
set -euo pipefail
guests=$1
xen=$guests/xen-4.17-arm64
debs=$guests/debs
fail() { echo "$1" >&2; exit 1; }
if [ ! -s "$xen" ]; then
    mkdir -p "$debs"
    if ! ls "$debs"/xen-hypervisor-4.17-arm64_*.deb >/dev/null 2>&1; then
        # apt's download user cannot write into this tree: fetch in a scratch directory.
        dl=$(mktemp -d)
        chmod 777 "$dl"
        if ! (cd "$dl" && apt-get download -q xen-hypervisor-4.17-arm64:arm64 >&2); then
            rm -rf "$dl"
            fail "apt-get download xen-hypervisor-4.17-arm64:arm64 failed"
        fi
        mv "$dl"/*.deb "$debs"/
        rm -rf "$dl"
    fi
    x=$(mktemp -d)
    dpkg-deb -x "$(ls "$debs"/xen-hypervisor-4.17-arm64_*.deb | tail -n 1)" "$x"
    if [ ! -s "$x/boot/xen-4.17-arm64" ]; then
        rm -rf "$x"
        fail "no /boot/xen-4.17-arm64 in the package"
    fi
    cp "$x/boot/xen-4.17-arm64" "$xen"
    rm -rf "$x"
fi
if [ "$(od -An -tx1 -j 56 -N 4 "$xen" 2>/dev/null | tr -d ' \n')" != 41524d64 ]; then
    fail "$xen is not a raw arm64 Image (no ARMd magic at 0x38)"
fi
echo "$xen"
