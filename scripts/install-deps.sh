#!/usr/bin/env bash
# Installs what building, running and testing hyperlaunch needs. Idempotent: each step is
# skipped when its result is already present.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
    qemu-system-arm u-boot-qemu u-boot-tools device-tree-compiler
    binutils-aarch64-linux-gnu gdb-multiarch cpio gzip g++ swtpm mtools
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v rustup >/dev/null 2>&1; then
    echo "install-deps: rustup is required (https://rustup.rs)" >&2
    exit 1
fi
# rust-toolchain.toml names the pinned nightly and its components; `rustup toolchain install`
# with no argument reads it (RUSTUP_AUTO_INSTALL=0 machines install nothing by themselves).
channel=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
need_tc=1
if rustup toolchain list | grep -q "^$channel"; then
    comps=$(rustup +"$channel" component list --installed 2>/dev/null || true)
    need_tc=0
    for c in rust-src llvm-tools clippy rustfmt; do
        echo "$comps" | grep -q "^$c" || need_tc=1
    done
fi
if [ "$need_tc" -eq 1 ]; then
    echo "install-deps: rust toolchain $channel"
    rustup toolchain install
fi
# hlctl, the tool Linux Control domains run, is a static musl binary built with a pinned
# stable toolchain (tools/hlctl/toolchain; the pinned nightly has no musl target).
user_tc=$(cat tools/hlctl/toolchain)
if ! rustup +"$user_tc" target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-musl$'; then
    echo "install-deps: rust $user_tc with aarch64-unknown-linux-musl (for hlctl)"
    rustup toolchain install "$user_tc" --profile minimal --target aarch64-unknown-linux-musl
fi
# cargo-fuzz for scripts/fuzz.sh (libFuzzer on the configuration parser).
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "install-deps: cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
echo "install-deps: done"
