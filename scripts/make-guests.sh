#!/usr/bin/env bash
# Builds the guests the tests and the demo boot. Last line of output: the directory
# holding them (testguest.img: the bare-metal EL1 test guest, an arm64 Image; linux.img and
# initramfs.cpio.gz: Debian's arm64 kernel and a busybox initramfs, by make-linux-guest.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/guests
mkdir -p "$out"
# A failed build must leave no guest behind: the tests would boot the previous one.
rm -f "$out/testguest.img"
cargo build --release --quiet --manifest-path guests/testguest/Cargo.toml \
    --target aarch64-unknown-hyperlaunch.json -Zjson-target-spec \
    -Zbuild-std=core -Zbuild-std-features=compiler-builtins-mem >&2
elf=guests/testguest/target/aarch64-unknown-hyperlaunch/release/testguest
objcopy="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-objcopy"
[ -x "$objcopy" ] || objcopy=aarch64-linux-gnu-objcopy
"$objcopy" -O binary "$elf" "$out/testguest.img.tmp"
mv "$out/testguest.img.tmp" "$out/testguest.img"
bash scripts/make-linux-guest.sh >&2
echo "$out"
