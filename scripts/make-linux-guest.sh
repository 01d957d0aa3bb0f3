#!/usr/bin/env bash
# Fetches Debian's arm64 Linux kernel (the version pinned in guests/linux/kernel.pin, its
# SHA-256 checked) and busybox-static, and builds the Linux guest the demo and the tests boot:
#   target/guests/linux.img        the raw arm64 Image from Debian's package
#   target/guests/initramfs.cpio.gz busybox + guests/linux/init
#   target/guests/linux.version    "PACKAGE VERSION" of the kernel in linux.img
# Downloads are cached in target/guests/debs. If the archive no longer serves the pinned
# kernel, the newest one is used with a WARNING naming both. Last line of output:
# target/guests.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/guests
debs=$out/debs
mkdir -p "$debs"
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo

pin() { sed -n "s/^$1=//p" guests/linux/kernel.pin; }
pin_pkg=$(pin package) pin_ver=$(pin version) pin_sha=$(pin sha256)
[ -n "$pin_pkg" ] && [ -n "$pin_ver" ] && [ -n "$pin_sha" ] ||
    { echo "make-linux-guest: guests/linux/kernel.pin lacks package, version or sha256" >&2; exit 1; }

# The cached package of PACKAGE VERSION, if there is one.
cached_deb() { ls "$debs/$1_$2_arm64.deb" 2>/dev/null | head -n 1; }
# Whether the cached pinned package is there with the pinned checksum.
pinned_deb_ok() {
    local deb
    deb=$(cached_deb "$pin_pkg" "$pin_ver")
    [ -n "$deb" ] && [ "$(sha256sum "$deb" | cut -d' ' -f1)" = "$pin_sha" ]
}
# apt's download user cannot write into this tree: fetch in a scratch directory.
download() {
    local tmp
    tmp=$(mktemp -d)
    chmod 777 "$tmp"
    (cd "$tmp" && apt-get download -q "$@" >&2)
    mv "$tmp"/*.deb "$debs"/
    rm -rf "$tmp"
}
apt_ready() {
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        $SUDO dpkg --add-architecture arm64
        $SUDO apt-get update -qq
    fi
}
# Whether the archive serves the pinned version (after one apt-get update if not).
served_versions() { apt-cache madison "$pin_pkg:arm64" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }'; }
pinned_served() {
    served_versions | grep -qxF -- "$pin_ver" && return 0
    $SUDO apt-get update -qq
    served_versions | grep -qxF -- "$pin_ver"
}

# Which kernel: the pinned one when it is cached or served, else the newest.
if pinned_deb_ok; then
    kpkg=$pin_pkg kver=$pin_ver
else
    apt_ready
    if pinned_served; then
        kpkg=$pin_pkg kver=$pin_ver
    else
        kpkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null |
            sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*-arm64\).*/\1/p' | head -n 1)
        [ -n "$kpkg" ] || { echo "make-linux-guest: cannot resolve linux-image-arm64:arm64" >&2; exit 1; }
        kver=$(apt-cache show "$kpkg:arm64" | sed -n 's/^Version: //p' | head -n 1)
        echo "make-linux-guest: WARNING: the pinned kernel $pin_pkg $pin_ver is no longer served;" \
            "using the newest, $kpkg $kver (update guests/linux/kernel.pin)" >&2
    fi
fi

if [ ! -s "$out/linux.img" ] || [ ! -s "$out/busybox" ] ||
    [ "$(cat "$out/linux.version" 2>/dev/null)" != "$kpkg $kver" ] ||
    { [ "$kpkg $kver" = "$pin_pkg $pin_ver" ] && ! pinned_deb_ok; }; then
    echo "make-linux-guest: kernel package $kpkg $kver" >&2
    # A failed build must not leave the previous guest in use.
    rm -f "$out/linux.img" "$out/linux.version" "$out/busybox" "$out/initramfs.cpio.gz"
    if [ -z "$(cached_deb "$kpkg" "$kver")" ] || { [ "$kpkg $kver" = "$pin_pkg $pin_ver" ] && ! pinned_deb_ok; }; then
        apt_ready
        rm -f "$debs"/linux-image-*.deb
        download "$kpkg:arm64=$kver"
    fi
    if [ "$kpkg $kver" = "$pin_pkg $pin_ver" ] && ! pinned_deb_ok; then
        echo "make-linux-guest: $pin_pkg $pin_ver: SHA-256 $(sha256sum "$(cached_deb "$kpkg" "$kver")" | cut -d' ' -f1)," \
            "expected $pin_sha (guests/linux/kernel.pin)" >&2
        exit 1
    fi
    [ -n "$(ls "$debs"/busybox-static_*.deb 2>/dev/null)" ] || { apt_ready; download busybox-static:arm64; }
    x=$(mktemp -d)
    dpkg-deb -x "$(cached_deb "$kpkg" "$kver")" "$x"
    dpkg-deb -x "$(ls "$debs"/busybox-static_*.deb | head -n 1)" "$x"
    cp "$x"/boot/vmlinuz-* "$out/linux.img.tmp"
    # Debian's arm64 vmlinuz is a raw Image; a gzip one is unpacked (the hypervisor takes
    # both, but the tests want the raw one's size and header).
    if [ "$(head -c 2 "$out/linux.img.tmp" | od -An -tx1 | tr -d ' ')" = 1f8b ]; then
        gzip -dc <"$out/linux.img.tmp" >"$out/linux.img.tmp2" && mv "$out/linux.img.tmp2" "$out/linux.img.tmp"
    fi
    cp "$x"/bin/busybox "$out/busybox"
    rm -rf "$x"
    mv "$out/linux.img.tmp" "$out/linux.img"
    echo "$kpkg $kver" >"$out/linux.version"
fi

# The boards' own device trees from the same kernel package (target/guests/board/): the
# Raspberry Pi 4's and the ZCU102's, for the hypervisor's board lanes.
if [ ! -s "$out/board/bcm2711-rpi-4-b.dtb" ] || [ ! -s "$out/board/zynqmp-zcu102-rev1.0.dtb" ] ||
    [ "$out/linux.version" -nt "$out/board/bcm2711-rpi-4-b.dtb" ]; then
    x=$(mktemp -d)
    dpkg-deb -x "$(cached_deb "$kpkg" "$kver")" "$x"
    mkdir -p "$out/board"
    cp "$x"/usr/lib/linux-image-*/broadcom/bcm2711-rpi-4-b.dtb "$x"/usr/lib/linux-image-*/xilinx/zynqmp-zcu102-rev1.0.dtb "$out/board/"
    rm -rf "$x"
fi

# The kernel modules links need (virtio-mmio, virtio-net and what it depends on,
# virtio-console), from the same kernel package, loaded by /init when the domain has a
# virtio-mmio device.
LINK_MODULES="net/core/failover.ko drivers/net/net_failover.ko drivers/net/virtio_net.ko drivers/char/virtio_console.ko drivers/virtio/virtio_mmio.ko"
if [ ! -d "$out/modules" ] || [ "$out/linux.version" -nt "$out/modules" ] ||
    [ "$(ls "$out/modules" | wc -l)" -ne "$(echo $LINK_MODULES | wc -w)" ]; then
    x=$(mktemp -d)
    dpkg-deb -x "$(cached_deb "$kpkg" "$kver")" "$x"
    rm -rf "$out/modules"
    mkdir -p "$out/modules.tmp"
    for m in $LINK_MODULES; do cp "$x"/lib/modules/*/kernel/"$m" "$out/modules.tmp/"; done
    rm -rf "$x"
    mv "$out/modules.tmp" "$out/modules"
fi

# hlctl, the Control domain's tool (every domain has it; only Control domains may use it).
hlctl=$(bash scripts/build-hlctl.sh | tail -n 1)
# The initramfs: rebuilt whenever its /init, busybox or hlctl changes.
if [ ! -s "$out/initramfs.cpio.gz" ] || [ guests/linux/init -nt "$out/initramfs.cpio.gz" ] ||
    [ "$out/busybox" -nt "$out/initramfs.cpio.gz" ] || [ "$hlctl" -nt "$out/initramfs.cpio.gz" ] ||
    [ "$out/modules" -nt "$out/initramfs.cpio.gz" ]; then
    rm -f "$out/initramfs.cpio.gz"
    r=$(mktemp -d)
    mkdir -p "$r"/{bin,sbin,dev,proc,sys,tmp,etc} "$r/lib/modules"
    cp "$out"/modules/*.ko "$r/lib/modules/"
    cp "$out/busybox" "$r/bin/busybox"
    for a in sh ash cat echo ls mount poweroff reboot sleep grep sed awk head tr uname dmesg \
        setsid cttyhack date wc free nproc insmod ip ping nc dd sha256sum od cut stat devmem stty; do
        ln -s busybox "$r/bin/$a"
    done
    cp "$hlctl" "$r/bin/hlctl"
    cp guests/linux/init "$r/init"
    chmod 755 "$r/init"
    (cd "$r" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -9 -n) >"$out/initramfs.cpio.gz.tmp"
    rm -rf "$r"
    mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
fi
echo "$out"
