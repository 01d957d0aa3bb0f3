#!/usr/bin/env bash
# Boot-time figures: wall time from QEMU start to the hypervisor's banner and to its
# "CPUs online" line, booted by QEMU -kernel and through U-Boot booti, plus the
# hypervisor's own entry-to-ready time. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bash scripts/build.sh >/dev/null

# measure CMD...: prints "banner_ms online_ms ready_us" for one boot.
measure() {
    local start line now banner="" online="" ready=""
    start=$(date +%s%N)
    while IFS= read -r line; do
        now=$(date +%s%N)
        case "$line" in
            *"INFO  hyperlaunch "*" on "*) banner=$(( (now - start) / 1000000 )) ;;
            *"CPUs online; ready "*)
                online=$(( (now - start) / 1000000 ))
                ready=$(sed -n 's/.*ready \([0-9]*\) us after entry.*/\1/p' <<<"$line")
                ;;
        esac
    done < <(timeout 60 "$@" </dev/null 2>/dev/null)
    echo "${banner:-?} ${online:-?} ${ready:-?}"
}

printf '%-10s %5s %12s %12s %14s\n' mode run "banner (ms)" "online (ms)" "ready (us)"
for mode in kernel uboot; do
    flags=()
    [ "$mode" = uboot ] && flags=(--uboot)
    read -r -a cmd < <(bash scripts/run.sh --timeout 60 --dry-run "${flags[@]}" | tail -n 1)
    # The dry run prints a shell-quoted command; eval restores the words.
    eval "cmd=(${cmd[*]})"
    for i in $(seq 1 "$runs"); do
        read -r b o r < <(measure "${cmd[@]}")
        printf '%-10s %5s %12s %12s %14s\n' "$mode" "$i" "$b" "$o" "$r"
    done
done
