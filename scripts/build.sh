#!/usr/bin/env bash
# Builds the hyperlaunch EL2 image. The last line of standard output is the path of the
# raw arm64 Image (relative to the repository root).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1 || ! rustup toolchain list 2>/dev/null | grep -q "$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"; then
    bash scripts/install-deps.sh >&2
fi

cargo hv-build --quiet >&2
elf=target/aarch64-unknown-hyperlaunch/release/hyperlaunch
image=target/aarch64-unknown-hyperlaunch/release/Image
objcopy="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-objcopy"
[ -x "$objcopy" ] || objcopy=aarch64-linux-gnu-objcopy
"$objcopy" -O binary "$elf" "$image"
echo "$image"
