#!/usr/bin/env bash
# Builds hlctl, the Control domain's tool, for Linux guests: a static aarch64 musl binary.
# It is built with the pinned stable toolchain in tools/hlctl/toolchain (the pinned nightly
# has no musl target), linked by the toolchain's own rust-lld. Last line of output: the
# binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
tc=$(cat tools/hlctl/toolchain)
target=aarch64-unknown-linux-musl
if ! rustup +"$tc" target list --installed 2>/dev/null | grep -q "^$target\$"; then
    echo "build-hlctl: rust $tc with $target is missing: run scripts/install-deps.sh" >&2
    exit 1
fi
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld CARGO_PROFILE_RELEASE_STRIP=true \
    cargo +"$tc" build --quiet --release -p hlctl --target "$target" >&2
echo "target/$target/release/hlctl"
