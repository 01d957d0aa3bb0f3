#!/usr/bin/env bash
# bench-lanes.sh [REPS]: the same three Debian Linux domains (tests/bench/lanes.dts: dom1
# with 2 vCPUs, each 128 MiB, each powering off once up) on every board lane, REPS times each
# (default 3, or $REPS), runs interleaved (rep 1 of every lane, then rep 2, ...):
#   virt-gicv3   QEMU virt, GICv3 (the reference)
#   virt-gicv2   QEMU virt, GICv2 (a GIC-400-like GICv2 with virtualization extensions)
#   zcu102       QEMU xlnx-zcu102 with Debian's zynqmp-zcu102-rev1.0.dtb (GIC-400)
#   raspi4b      QEMU 10 raspi4b with Debian's bcm2711-rpi-4-b.dtb (GIC-400, mini UART)
# Per run: the wall time (ms) from the hypervisor's first console line to each domain's
# marker ("HL-LINUX-UP NAME") and to the last, the hypervisor's own "launch: N domain(s)
# running, X us after entry", and each domain's exits by kind as the hypervisor reports them
# when the domain stops. Then the mean per lane and its ratio to virt-gicv3. $LANES
# restricts the lanes (space-separated). The lanes emulate different CPUs (Cortex-A57,
# -A53, -A72) under TCG: compare the hypervisor's own work (exits, launch) more than wall
# times. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=${1:-${REPS:-3}}
lanes=${LANES:-virt-gicv3 virt-gicv2 zcu102 raspi4b}
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench-lanes.sh [REPS]" >&2; exit 2; }
guests=$(bash scripts/make-linux-guest.sh | tail -n 1)
bash scripts/build.sh >/dev/null
modules=(--module "0x50000000=$guests/linux.img" --module "0x53000000=$guests/initramfs.cpio.gz")
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-lanes.XXXXXX")
trap 'rm -rf "$work"' EXIT

lane_args() {
    case "$1" in
        virt-gicv3) args=(--gic 3) ;;
        virt-gicv2) args=(--gic 2) ;;
        zcu102) args=(--machine zcu102) ;;
        raspi4b) args=(--machine raspi4b) ;;
        *) echo "bench-lanes: unknown lane $1" >&2; exit 2 ;;
    esac
}

declare -A sum_last=() n_ok=() sum_launch=() sum_exits=()
printf '%-11s %3s  %-6s %8s %11s   %s\n' lane rep domain "ms" "launch us" "exits (as the hypervisor reports them at the domain's stop)"
run() {
    local lane=$1 rep=$2 line t t0="" last="" launch=- seen=0 log=$work/$1.$2.log
    local -A up=() exits=()
    lane_args "$lane"
    bash scripts/run.sh "${args[@]}" --timeout 300 "${modules[@]}" \
        --stop-when 'all domains have stopped' tests/bench/lanes.dts >"$log.raw" 2>&1 &
    local pid=$!
    # Lines as they come, stamped.
    : >"$log"
    local pos=0
    while kill -0 "$pid" 2>/dev/null || [ "$(wc -l <"$log.raw")" -gt "$pos" ]; do
        while IFS= read -r line; do
            pos=$((pos + 1))
            t=$EPOCHREALTIME; t=${t/[.,]/}
            line=${line%$'\r'}
            printf '%s %s\n' "$t" "$line" >>"$log"
            [ -n "$t0" ] || [[ ! "$line" =~ INFO\ \ hyperlaunch\  ]] || t0=$t
            if [[ "$line" =~ launch:\ [0-9]+\ domain\(s\)\ running,\ ([0-9]+)\ us\ after\ entry ]]; then
                launch=${BASH_REMATCH[1]}
            elif [[ "$line" =~ ^DOM([0-9]+):\ HL-LINUX-UP ]] && [ -n "$t0" ]; then
                up[${BASH_REMATCH[1]}]=$(((t - t0) / 1000))
                last=${up[${BASH_REMATCH[1]}]}
                seen=$((seen + 1))
            elif [[ "$line" =~ INFO\ \ DOM([0-9]+):\ stopped\ \(SYSTEM_OFF\)\;\ ([0-9]+)\ exits:\ (.*)\;\ [0-9]+\ shared ]]; then
                exits[${BASH_REMATCH[1]}]="${BASH_REMATCH[2]}: ${BASH_REMATCH[3]}"
            fi
        done < <(tail -n +"$((pos + 1))" "$log.raw")
        sleep 0.1
    done
    wait "$pid" || true
    local d
    for d in 1 2 3; do
        printf '%-11s %3s  DOM%-3s %8s %11s   %s\n' "$lane" "$rep" "$d" "${up[$d]:--}" "$launch" "${exits[$d]:-(no stop line)}"
    done
    if [ "$seen" -eq 3 ]; then
        printf '%-11s %3s  %-6s %8s\n' "$lane" "$rep" last "$last"
        sum_last[$lane]=$((${sum_last[$lane]:-0} + last))
        n_ok[$lane]=$((${n_ok[$lane]:-0} + 1))
        if [ "$launch" != - ]; then sum_launch[$lane]=$((${sum_launch[$lane]:-0} + launch)); fi
        local total=0
        for d in 1 2 3; do total=$((total + ${exits[$d]%%:*})); done
        sum_exits[$lane]=$((${sum_exits[$lane]:-0} + total))
    else
        printf '%-11s %3s  %-6s %s\n' "$lane" "$rep" last "incomplete: $seen of 3 markers (log: $log.raw)"
        cp "$log.raw" "${TMPDIR:-/tmp}/bench-lanes.$lane.$rep.log"
    fi
}
for rep in $(seq "$reps"); do
    for lane in $lanes; do run "$lane" "$rep"; done
done
echo
printf '%-11s %5s %14s %10s %14s %14s\n' lane runs "last marker ms" "vs gicv3" "launch us" "exits (3 dom)"
ref=""
for lane in $lanes; do
    n=${n_ok[$lane]:-0}
    if [ "$n" -eq 0 ]; then printf '%-11s %5s %14s\n' "$lane" 0 -; continue; fi
    mean=$((${sum_last[$lane]} / n))
    [ -n "$ref" ] || [ "$lane" != virt-gicv3 ] || ref=$mean
    ratio=-
    [ -z "$ref" ] || ratio=$(awk -v a="$mean" -v b="$ref" 'BEGIN { printf "%.2f", a / b }')
    printf '%-11s %5s %14s %10s %14s %14s\n' "$lane" "$n" "$mean" "$ratio" \
        "$((${sum_launch[$lane]:-0} / n))" "$((${sum_exits[$lane]:-0} / n))"
done
