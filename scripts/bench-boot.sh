#!/usr/bin/env bash
# bench-boot.sh [REPS]: boot-time figures for the Debian Linux guest (target/guests) on QEMU
# TCG, REPS times each (default 3, or $REPS), with one set of machine options, in seven
# configurations:
#   bare           Linux alone (-kernel/-initrd; it runs at EL2)
#   xen-1, xen-4   Xen 4.17 (Debian's xen-hypervisor-4.17-arm64) dom0less, no dom0, 1 or
#                  4 domUs (tests/bench/dom0less-N.dts)
#   hl-dom0less-N  hyperlaunch on the very same host DTB as xen-N
#   hl-lcm-N       hyperlaunch with an LCM (tests/bench/lcm-N.dts)
#   hl-cow-N       the same LCM with kernel-sharing = "copy-on-write" (one-CPU domains map
#                  the kernel module in place, 4 KiB pages copied on write), not in the
#                  default set: name it in $CONFIGS to compare it with hl-lcm-N
# Every domain has 1 vCPU and 128 MiB and boots the one kernel (0x50000000) and initramfs
# (0x53000000) loaded in host RAM, each declared with its file's size ($MODULE_SIZES=slot:
# the dts files' larger slots). For each run it prints, per marker line of the guests'
# /init ("HL-LINUX-UP NAME: ..."), the wall time from QEMU's start to the line (read from
# QEMU's output as it comes, stamped with $EPOCHREALTIME), the guest's own uptime in it
# and, for hyperlaunch, its "launch: N domain(s) running, X us after entry" figure. QEMU
# is stopped once all of a run's markers are in (or after $BENCH_TIMEOUT s, default 120:
# the run is reported as timed out). Then a summary: the mean wall time to a run's last
# marker per configuration, and the ratios hl-*-1 / bare, xen-1 / bare, hl-*-4 / xen-4
# (for hyperlaunch against bare or Xen also with its mean launch time taken off: what the
# guests' boots alone take after the launch, the bound a launch costing nothing would reach).
# $CONFIGS restricts the configurations (names as above, space-separated); $HL_IMAGE uses
# that hypervisor image instead of scripts/build.sh's; $BENCH_LOGS names a directory to keep
# each run's console log in (CONFIG.REP.log, lines prefixed with their wall time in ms).
# Runs are interleaved (rep 1 of every configuration, then rep 2, ...), after $WARMUP
# (default 1) unreported warm-up run(s) of each. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=${1:-${REPS:-3}}
timeout_s=${BENCH_TIMEOUT:-120}
all_configs="bare xen-1 xen-4 hl-dom0less-1 hl-dom0less-4 hl-lcm-1 hl-lcm-4"
configs=${CONFIGS:-$all_configs}
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench-boot.sh [REPS]" >&2; exit 2; }

if ! command -v qemu-system-aarch64 >/dev/null || ! command -v dtc >/dev/null; then
    bash scripts/install-deps.sh >&2
fi
guests=$(bash scripts/make-linux-guest.sh | tail -n 1)
image=${HL_IMAGE:-$(bash scripts/build.sh | tail -n 1)}
kernel=$guests/linux.img initrd=$guests/initramfs.cpio.gz
kernel_addr=0x50000000 kernel_max=0x2400000 initrd_addr=0x53000000 initrd_max=0x200000
for f in "$kernel:$kernel_max" "$initrd:$initrd_max"; do
    if [ "$(stat -c %s "${f%:*}")" -gt $((${f##*:})) ]; then
        echo "bench-boot: ${f%:*} is larger than its ${f##*:}-byte slot in tests/bench/*.dts" >&2
        exit 1
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-boot.XXXXXX")
qemu_pid=""
# Stopped early (Ctrl-C, a closed output pipe), the script still stops its QEMU.
trap '[ -z "$qemu_pid" ] || kill -TERM "$qemu_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP PIPE

# Xen: Debian's package (scripts/xen-image.sh).
xen=$guests/xen-4.17-arm64 xen_skip=""
if ! xen=$(bash scripts/xen-image.sh "$guests" 2>"$work/xen.err" | tail -n 1) || [ -z "$xen" ]; then
    xen=$guests/xen-4.17-arm64 xen_skip=$(tail -n 1 "$work/xen.err")
fi
xen_version=$(strings "$xen" 2>/dev/null | grep -m1 -oE '^4\.17\.[0-9][^ ]*' || true)

machine=(-M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 4 -m 2G -nodefaults
    -display none -net none)
qemu-system-aarch64 "${machine[@]}" -machine dumpdtb="$work/base.dtb" >/dev/null 2>&1
# Each module is declared with its file's size, as U-Boot's ${filesize} or Xen's ImageBuilder
# give it: what is measured, copied and handed to the guest is the file, not its whole slot
# (the digest is then the file's sha256sum). MODULE_SIZES=slot keeps the dts files' slots.
kernel_size=$(printf '%#x' "$(stat -c %s "$kernel")") initrd_size=$(printf '%#x' "$(stat -c %s "$initrd")")
sized() { # sized DTS OUT
    if [ "${MODULE_SIZES:-file}" = slot ]; then
        cp "$1" "$2"
        return
    fi
    sed -e "s/$kernel_addr $kernel_max>/$kernel_addr $kernel_size>/" \
        -e "s/$initrd_addr $initrd_max>/$initrd_addr $initrd_size>/" "$1" >"$2"
    if [ "$(grep -c -e "$kernel_addr $kernel_size>" -e "$initrd_addr $initrd_size>" "$2")" -ne \
        "$(grep -c -e "$kernel_addr $kernel_max>" -e "$initrd_addr $initrd_max>" "$1")" ]; then
        echo "bench-boot: $1: a module's size was not replaced by its file's" >&2
        exit 1
    fi
}
for n in 1 4; do
    sized "tests/bench/dom0less-$n.dts" "$work/dom0less-$n.dts"
    sized "tests/bench/lcm-$n.dts" "$work/lcm-$n.dts"
    bash scripts/merge-lcm.sh "$work/base.dtb" "$work/dom0less-$n.dts" "$work/dom0less-$n.dtb"
    bash scripts/merge-lcm.sh "$work/base.dtb" "$work/lcm-$n.dts" "$work/lcm-$n.dtb"
    sed 's/compatible = "hypervisor,xen";/&\n\t\tkernel-sharing = "copy-on-write";/' "$work/lcm-$n.dts" >"$work/cow-$n.dts"
    bash scripts/merge-lcm.sh "$work/base.dtb" "$work/cow-$n.dts" "$work/cow-$n.dtb"
done
modules=(-device "loader,file=$kernel,addr=$kernel_addr,force-raw=on"
    -device "loader,file=$initrd,addr=$initrd_addr,force-raw=on")

# The QEMU arguments of a configuration, after the machine's.
config_args() {
    case "$1" in
        bare) args=(-kernel "$kernel" -initrd "$initrd" -append "console=ttyAMA0 nokaslr quiet hl.name=bare") ;;
        xen-[14]) args=("${modules[@]}" -kernel "$xen" -dtb "$work/dom0less-${1#xen-}.dtb") ;;
        hl-dom0less-[14]) args=("${modules[@]}" -kernel "$image" -dtb "$work/dom0less-${1##*-}.dtb") ;;
        hl-lcm-[14]) args=("${modules[@]}" -kernel "$image" -dtb "$work/lcm-${1##*-}.dtb") ;;
        hl-cow-[14]) args=("${modules[@]}" -kernel "$image" -dtb "$work/cow-${1##*-}.dtb") ;;
        *) echo "bench-boot: unknown configuration $1" >&2; exit 2 ;;
    esac
}
markers_of() { case "$1" in bare) echo 1 ;; *) echo "${1##*-}" ;; esac; }

# Microseconds since the epoch (the decimal separator of $EPOCHREALTIME follows the locale).
now_us() { local t=$EPOCHREALTIME; echo "${t/[.,]/}"; }

declare -A sum_last=() ok_runs=() all_runs=() sum_launch=() n_launch=() skipped=()
row() { printf '%-14s %3s  %-7s %9s %10s %5s %13s %11s\n' "$@"; }

# run CONFIG REP: one boot, printing a row per marker and one for the run.
run() {
    local cfg=$1 rep=$2 want fd pid line t0 t ms seen=0 last="" launch=- rc=0
    local log=$work/$cfg.$rep.log
    local -A got=()
    want=$(markers_of "$cfg")
    config_args "$cfg"
    t0=$(now_us)
    exec {fd}< <(exec timeout -k 5 "$timeout_s" qemu-system-aarch64 "${machine[@]}" \
        -serial stdio -monitor none "${args[@]}" </dev/null 2>"$log.err")
    pid=$!
    qemu_pid=$pid
    while IFS= read -r -u "$fd" line || [ -n "$line" ]; do
        t=$EPOCHREALTIME
        t=${t/[.,]/}
        line=${line%$'\r'}
        printf '%s %s\n' "$(((t - t0) / 1000))" "$line" >>"$log"
        if [[ "$line" =~ launch:\ [0-9]+\ domain\(s\)\ running,\ ([0-9]+)\ us\ after\ entry ]]; then
            launch=${BASH_REMATCH[1]}
        elif [[ "$line" =~ HL-LINUX-UP\ ([^:[:space:]]+):\ ([0-9]+)\ CPU\(s\),\ MemTotal\ ([0-9]+)\ kB,\ uptime\ ([0-9.]+)\ s ]]; then
            local name=${BASH_REMATCH[1]}
            [ -z "${got[$name]+x}" ] || continue
            got[$name]=1
            seen=$((seen + 1))
            ms=$(((t - t0) / 1000))
            last=$ms
            row "$cfg" "$rep" "$name" "$ms" "${BASH_REMATCH[4]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" "$launch"
            [ "$seen" -lt "$want" ] || break
        fi
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || rc=$?
    exec {fd}<&-
    qemu_pid=""
    [ -z "${BENCH_LOGS:-}" ] || { mkdir -p "$BENCH_LOGS" && cp "$log" "$BENCH_LOGS/"; }
    all_runs[$cfg]=$((${all_runs[$cfg]:-0} + 1))
    if [ "$seen" -ge "$want" ]; then
        row "$cfg" "$rep" "all $want" "$last" "" "" "" "$launch"
        ok_runs[$cfg]=$((${ok_runs[$cfg]:-0} + 1))
        sum_last[$cfg]=$((${sum_last[$cfg]:-0} + last))
        if [ "$launch" != - ]; then
            sum_launch[$cfg]=$((${sum_launch[$cfg]:-0} + launch))
            n_launch[$cfg]=$((${n_launch[$cfg]:-0} + 1))
        fi
    else
        local why="QEMU exited (status $rc)"
        [ "$rc" -ne 124 ] || why="timed out after $timeout_s s"
        echo "$cfg rep $rep: $why with $seen of $want marker(s); last console lines:"
        tail -n 8 "$log" | sed 's/^/    /'
        [ ! -s "$log.err" ] || sed 's/^/    qemu: /' "$log.err"
    fi
}

echo "bench-boot: $reps repetition(s) per configuration; QEMU TCG ($(qemu-system-aarch64 --version | head -n 1 | sed 's/^QEMU emulator version //')) on $(nproc) host CPU(s); timeout $timeout_s s"
echo "machine: ${machine[*]}"
echo "guest: $kernel + $initrd; hyperlaunch: $image; Xen: ${xen_skip:+(skipped) }$xen${xen_version:+ ($xen_version)}"
echo "wall = ms from QEMU start to the marker line; uptime = the guest's /proc/uptime in it; launch = hyperlaunch's \"us after entry\""
echo
# Warm-up: the first boots after a while pay the host's first touch of fresh guest RAM (up
# to a second of scrubbing time on this kind of host); they are run and not counted.
warmup=${WARMUP:-1}
if [ "$warmup" -gt 0 ]; then
    echo "warm-up: $warmup unreported run(s) of each configuration"
    for rep in $(seq 1 "$warmup"); do
        for cfg in $configs; do
            [[ "$cfg" == xen-* ]] && [ -n "$xen_skip" ] && continue
            run "$cfg" "w$rep" >/dev/null
        done
    done
    sum_last=() ok_runs=() all_runs=() sum_launch=() n_launch=()
    echo
fi
row config rep marker "wall(ms)" "uptime(s)" cpus "MemTotal(kB)" "launch(us)"
for rep in $(seq 1 "$reps"); do
    for cfg in $configs; do
        if [[ "$cfg" == xen-* ]] && [ -n "$xen_skip" ]; then
            [ -n "${skipped[$cfg]+x}" ] || echo "$cfg: skipped: $xen_skip"
            skipped[$cfg]=1
            continue
        fi
        run "$cfg" "$rep"
    done
done

mean() { # mean CONFIG: mean wall time to the last marker (ms), or nothing
    [ "${ok_runs[$1]:-0}" -gt 0 ] || return 0
    awk -v s="${sum_last[$1]}" -v n="${ok_runs[$1]}" 'BEGIN { printf "%.0f", s / n }'
}
echo
echo "summary: mean wall time from QEMU start to a run's last marker (timed-out runs left out)"
printf '%-14s %5s %4s %14s %16s\n' config runs ok "mean last(ms)" "mean launch(us)"
for cfg in $configs; do
    if [ -n "${skipped[$cfg]+x}" ]; then
        printf '%-14s %s\n' "$cfg" "skipped: $xen_skip"
        continue
    fi
    ml=-
    [ "${n_launch[$cfg]:-0}" -eq 0 ] || ml=$((${sum_launch[$cfg]} / ${n_launch[$cfg]}))
    m=$(mean "$cfg")
    printf '%-14s %5s %4s %14s %16s\n' "$cfg" "${all_runs[$cfg]:-0}" "${ok_runs[$cfg]:-0}" "${m:--}" "$ml"
done
echo
echo "ratios of those means:"
pairs=0
for pair in hl-dom0less-1:bare hl-lcm-1:bare xen-1:bare hl-dom0less-4:xen-4 hl-lcm-4:xen-4 hl-cow-4:hl-lcm-4 hl-cow-1:hl-lcm-1; do
    a=${pair%:*} b=${pair#*:}
    case " $configs " in *" $a "*) ;; *) continue ;; esac
    case " $configs " in *" $b "*) ;; *) continue ;; esac
    ma=$(mean "$a") mb=$(mean "$b")
    if [ -n "$ma" ] && [ -n "$mb" ]; then
        r=$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.2f", a / b }')
        # What the guests alone take: the hypervisor's launch (its "us after entry") left
        # out of the numerator, the ratio a launch costing nothing would reach.
        if [[ "$a" == hl-* ]] && [ "${n_launch[$a]:-0}" -gt 0 ] && [[ "$b" != hl-* ]]; then
            r+=$(awk -v a="$ma" -v l="$((${sum_launch[$a]} / ${n_launch[$a]}))" -v b="$mb" \
                'BEGIN { printf " (launch left out: %.2f)", (a - l / 1000) / b }')
        fi
    else
        r="n/a (no completed run)"
    fi
    printf '  %-28s %s\n' "$a / $b" "$r"
    pairs=$((pairs + 1))
done
[ "$pairs" -gt 0 ] || echo "  none (no pair of configurations among: $configs)"
