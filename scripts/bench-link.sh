#!/usr/bin/env bash
# Network-link figures: throughput (16 MiB over TCP with busybox nc, MiB/s) and round-trip
# latency (average of PINGS pings) between two Debian Linux guests, over RUNS runs of two
# lanes side by side:
#   hyperlaunch  the two guests as domains joined by a hyperlaunch link
#                (tests/lcm/guests/link.dts on QEMU virt, 4 CPUs)
#   qemu         the same two guests bare, each in its own QEMU (virt, 1 CPU) with QEMU's own
#                virtio-net, the two QEMUs joined by a socket netdev on this host
# Times are the guests' own (/proc/uptime); under QEMU's emulation they track the host's
# clock. Prints; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
pings=${PINGS:-20}
bash scripts/build.sh >/dev/null
guests=$(bash scripts/make-guests.sh 2>/dev/null | tail -n 1)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
sed -e "s/hl.ping=10.0.0.2/hl.pings=$pings hl.ping=10.0.0.2/" -e 's/hl.name=gamma[^"]*/hl.name=gamma/' \
    tests/lcm/guests/link.dts >"$work/link.dts"
common="console=ttyAMA0 nokaslr quiet"
a_args="$common hl.name=alpha hl.ip=10.0.0.1/24 hl.pings=$pings hl.ping=10.0.0.2 hl.recv=5000"
b_args="$common hl.name=beta hl.ip=10.0.0.2/24 hl.ping=10.0.0.1 hl.send=10.0.0.1:5000"

figures() {   # LOG: "MiB/s rtt"
    local s rtt
    s=$(sed -n 's/.*HL-SENT beta: after [0-9]* retries, in \([0-9.]*\) s.*/\1/p' "$1" | head -n 1)
    rtt=$(sed -n 's/.*HL-PING alpha: .*average round trip \([0-9.]*\) ms.*/\1/p' "$1" | head -n 1)
    echo "$(awk -v s="${s:-0}" 'BEGIN { if (s > 0) printf "%.1f", 16 / s; else print "?" }') ${rtt:-?}"
}

qemu_guest() {   # NAME ARGS NETDEV MAC LOG
    timeout 300 qemu-system-aarch64 -M virt -cpu cortex-a57 -smp 1 -m 256M -nographic -no-reboot \
        -kernel "$guests/linux.img" -initrd "$guests/initramfs.cpio.gz" -append "$2" \
        -netdev "$3" -device "virtio-net-device,netdev=n,mac=$4" -serial "file:$5" -monitor none \
        -display none >/dev/null 2>&1 &
}

printf '%-12s %4s %12s %22s\n' lane run "MiB/s" "round trip (ms, avg)"
for i in $(seq 1 "$runs"); do
    bash scripts/run.sh --timeout 300 --module 0x50000000="$guests/linux.img" \
        --module 0x53000000="$guests/initramfs.cpio.gz" --stop-when '^DOM1: HL-RECV alpha' \
        --stop-when '^DOM1: HL-PING alpha' "$work/link.dts" 2>&1 | tr -d '\r' >"$work/hl.log" || true
    read -r tput rtt < <(figures "$work/hl.log")
    printf '%-12s %4s %12s %22s\n' hyperlaunch "$i" "$tput" "$rtt"
    port=$((20000 + RANDOM % 20000))
    qemu_guest alpha "$a_args" "socket,id=n,listen=127.0.0.1:$port" 02:48:4c:00:00:01 "$work/a.log"
    pa=$!
    sleep 1
    qemu_guest beta "$b_args" "socket,id=n,connect=127.0.0.1:$port" 02:48:4c:00:00:02 "$work/b.log"
    pb=$!
    for _ in $(seq 1 300); do
        grep -q 'HL-RECV alpha' "$work/a.log" 2>/dev/null && grep -q 'HL-PING alpha' "$work/a.log" && break
        sleep 1
    done
    kill "$pa" "$pb" 2>/dev/null || true
    wait "$pa" "$pb" 2>/dev/null || true
    cat "$work/a.log" "$work/b.log" | tr -d '\r' >"$work/q.log"
    read -r tput rtt < <(figures "$work/q.log")
    printf '%-12s %4s %12s %22s\n' qemu "$i" "$tput" "$rtt"
done
