#!/usr/bin/env bash
# QEMU 10 for the Raspberry Pi 4 model (`-M raspi4b`, absent from Debian 12's QEMU 7.2):
# Debian's qemu-system-arm from bookworm-backports, unpacked into target/qemu10 beside the
# system QEMU (it runs on Debian 12's libraries, with -L target/qemu10/usr/share/qemu).
# Prints the path of its qemu-system-aarch64 last. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$PWD/target/qemu10
bin=$dir/usr/bin/qemu-system-aarch64
if [ ! -x "$bin" ]; then
    work=$(mktemp -d "${TMPDIR:-/tmp}/qemu10.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    chmod 755 "$work"
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" >"$work/sources.list"
    apt_opts=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" -o APT::Sandbox::User=root)
    apt-get "${apt_opts[@]}" -qq update
    (cd "$work" && apt-get "${apt_opts[@]}" -qq download qemu-system-arm qemu-system-data)
    mkdir -p "$dir"
    for d in "$work"/qemu-system-arm_*.deb "$work"/qemu-system-data_*.deb; do
        dpkg-deb -x "$d" "$dir"
    done
    "$bin" --version | head -n 1 >&2
fi
echo "$bin"
