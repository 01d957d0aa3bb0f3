#!/usr/bin/env bash
# Fetches Debian's arm64 Linux kernel (through the linux-image-arm64 metapackage) and
# busybox-static, and builds the Linux guest the demo and the tests boot:
#   target/guests/linux.img        the raw arm64 Image from Debian's package
#   target/guests/initramfs.cpio.gz busybox + guests/linux/init
# Downloads are cached in target/guests/debs. Last line of output: target/guests.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/guests
debs=$out/debs
mkdir -p "$debs"
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo

if [ ! -s "$out/linux.img" ] || [ ! -s "$out/busybox" ]; then
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        $SUDO dpkg --add-architecture arm64
        $SUDO apt-get update -qq
    fi
    kpkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-arm64\).*/\1/p' | head -n 1)
    if [ -z "$kpkg" ]; then
        $SUDO apt-get update -qq
        kpkg=$(apt-cache depends linux-image-arm64:arm64 |
            sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-arm64\).*/\1/p' | head -n 1)
    fi
    [ -n "$kpkg" ] || { echo "make-linux-guest: cannot resolve linux-image-arm64:arm64" >&2; exit 1; }
    echo "make-linux-guest: kernel package $kpkg" >&2
    rm -f "$debs"/*.deb
    # apt's download user cannot write into this tree: fetch in a scratch directory.
    tmp=$(mktemp -d)
    chmod 777 "$tmp"
    (cd "$tmp" && apt-get download -q "$kpkg:arm64" busybox-static:arm64 >&2)
    mv "$tmp"/*.deb "$debs"/
    rm -rf "$tmp"
    x=$(mktemp -d)
    dpkg-deb -x "$debs"/linux-image-*.deb "$x"
    dpkg-deb -x "$debs"/busybox-static_*.deb "$x"
    cp "$x"/boot/vmlinuz-* "$out/linux.img.tmp"
    # Debian's arm64 vmlinuz is a raw Image; a gzip one is unpacked (the hypervisor takes
    # both, but the tests want the raw one's size and header).
    if [ "$(head -c 2 "$out/linux.img.tmp" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
        gzip -dc <"$out/linux.img.tmp" >"$out/linux.img.tmp2" && mv "$out/linux.img.tmp2" "$out/linux.img.tmp"
    fi
    cp "$x"/bin/busybox "$out/busybox"
    rm -rf "$x"
    mv "$out/linux.img.tmp" "$out/linux.img"
fi

# The initramfs: rebuilt whenever its /init changes.
if [ ! -s "$out/initramfs.cpio.gz" ] || [ guests/linux/init -nt "$out/initramfs.cpio.gz" ] ||
    [ "$out/busybox" -nt "$out/initramfs.cpio.gz" ]; then
    r=$(mktemp -d)
    mkdir -p "$r"/{bin,sbin,dev,proc,sys,tmp,etc}
    cp "$out/busybox" "$r/bin/busybox"
    for a in sh ash cat echo ls mount poweroff reboot sleep grep sed awk head tr uname dmesg \
        setsid cttyhack date wc free nproc; do
        ln -s busybox "$r/bin/$a"
    done
    cp guests/linux/init "$r/init"
    chmod 755 "$r/init"
    (cd "$r" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -9 -n) >"$out/initramfs.cpio.gz"
    rm -rf "$r"
fi
echo "$out"
