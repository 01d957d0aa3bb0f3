#!/usr/bin/env bash
# QEMU smoke tests: each boots hyperlaunch through scripts/run.sh under a hard timeout and
# checks the console for explicit markers, in order, and QEMU's exit status.
# Prints "PASS name" / "FAIL name: why" per test and, last, "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
logs=$root/target/smoke-logs
mkdir -p "$logs"
work=$(mktemp -d "${TMPDIR:-/tmp}/hyperlaunch-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
TIMEOUT=${SMOKE_TIMEOUT:-60}
# Every time budget below is multiplied by SMOKE_SCALE (default 1; e.g. 2.5 on a slow
# machine). A run that reaches its budget has failed: no test accepts a timeout.
SMOKE_SCALE=${SMOKE_SCALE:-1}
awk -v s="$SMOKE_SCALE" 'BEGIN { exit !(s + 0 > 0) }' || { echo "smoke.sh: SMOKE_SCALE must be a positive number" >&2; exit 2; }
passed=0 failed=0
only=${1:-}

# scaled SECONDS: the budget times SMOKE_SCALE, rounded up.
scaled() {
    awk -v t="$1" -v s="$SMOKE_SCALE" 'BEGIN { v = t * s; r = int(v); if (r < v) r++; print r }'
}

# boot NAME RUN_ARGS...: runs the machine for at most $TIMEOUT s (scaled), leaving the
# console in $log and the status in $rc. A machine that does not power off by itself is
# given its final console line(s) with --stop-when.
boot() {
    name=$1; shift
    log=$logs/$name.log
    why=""
    rc=0
    budget=$(scaled "$TIMEOUT")
    bash scripts/run.sh --timeout "$budget" "$@" 2>&1 | tr -d '\r' >"$log"
    rc=${PIPESTATUS[0]}
}

# expect_exit N: QEMU must have exited with N. A timeout (124) is never a success.
expect_exit() {
    [ -n "$why" ] && return
    if [ "$rc" -eq 124 ]; then
        why="timed out after $budget s (SMOKE_SCALE=$SMOKE_SCALE) before its final line"
    elif [ "$rc" -ne "$1" ]; then
        why="exit status $rc, expected $1"
    fi
}

# expect REGEX...: each extended regex must match a line, each after the previous match.
expect() {
    [ -n "$why" ] && return
    local from=1 re n
    for re in "$@"; do
        n=$(tail -n +"$from" "$log" | grep -a -n -E -m1 -- "$re" | cut -d: -f1)
        if [ -z "$n" ]; then
            why="no line matching /$re/ (after line $from)"
            return
        fi
        from=$((from + n))
    done
}

# expect_refused DOM ADDR...: the domain's read and its write of each address were each
# refused by the hypervisor: the guest took a synchronous external abort with ESR EC 0x25
# (data abort, same EL), DFSC 0x10, WnR as the access and FAR = the address, and the
# hypervisor logged a NOTICE for that access.
expect_refused() {
    [ -n "$why" ] && return
    local dom=$1 a op line esr far wnr
    shift
    for a in "$@"; do
        for op in read write; do
            line=$(grep -a -m1 -E "^DOM$dom: probe: $op $a " "$log")
            if ! [[ "$line" =~ \ refused\ \(ESR\ (0x[0-9a-f]+),\ FAR\ (0x[0-9a-f]+)\)$ ]]; then
                why="DOM$dom's $op of $a: '${line:-no probe line}'"
                return
            fi
            esr=$((BASH_REMATCH[1])) far=$((BASH_REMATCH[2])) wnr=0
            [ "$op" = write ] && wnr=1
            if ((esr >> 26 != 0x25 || (esr & 0x3f) != 0x10 || (esr >> 6 & 1) != wnr || far != a)); then
                why="DOM$dom's $op of $a: ESR $(printf '%#x' "$esr"), FAR $(printf '%#x' "$far");"
                why+=" expected EC 0x25, DFSC 0x10, WnR $wnr, FAR $a"
                return
            fi
            [ "$op" = read ] && op="read from" || op="write to"
            expect "WARN  NOTICE: DOM$dom: vCPU [0-9]+ $op IPA $a \\(VA $a\\) outside its memory and devices: external abort injected$"
            [ -n "$why" ] && return
        done
    done
}

# expect_scrubbed DOM NAME ADDR RESTARTED_RE: the domain's word at ADDR read 0 at its first
# start, it wrote its canary there, and after the line RESTARTED_RE (the hypervisor
# restarting it over the same RAM) the word read 0 again: that RAM was scrubbed.
expect_scrubbed() {
    local pre="^DOM$1: $2: canary at $3"
    expect "$pre reads 0x0\$" "$pre set to 0x5ca1ab1ec0ffee00\$" "$4" "$pre reads 0x0\$"
    refuse "$pre reads 0x[1-9a-f]"
    if [ -z "$why" ] && [ "$(grep -a -c -E "$pre reads " "$log")" -ne 2 ]; then
        why="DOM$1 read its canary word $(grep -a -c -E "$pre reads " "$log") time(s), expected 2"
    fi
}

# ... | has_line REGEX: some line of the input matches (basic regex). It reads all of its
# input: `grep -q` stops at the first match, and the command writing into the pipe may then
# die of SIGPIPE, which under pipefail turns a match into a failed pipeline.
has_line() {
    local n
    n=$(grep -a -c -- "$1")
    [ "${n:-0}" -gt 0 ]
}

# expect_whole_domain_lines: every domain line of the console tests is whole: a prefix,
# then only that domain's text (the test guests' lines, echoed input, the prompt).
expect_whole_domain_lines() {
    [ -n "$why" ] && return
    local mixed
    mixed=$(grep -E '^DOM[0-9]+: ' "$log" |
        grep -vE '^DOM[0-9]+: (x*|hello from .*|first: .*|second: .*|flood: .*|prompt> |)$' | head -1)
    [ -z "$mixed" ] || why="a domain line mixes output: $mixed"
}

# refuse REGEX: no line may match.
refuse() {
    [ -n "$why" ] && return
    if grep -a -q -E -- "$1" "$log"; then why="unexpected line matching /$1/"; fi
}

done_test() {
    if [ -z "$why" ]; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name: $why (console: ${log#"$root"/})"
        failed=$((failed + 1))
    fi
}

# A copy of QEMU virt's own DTB for the default options, to edit.
virt_dtb() {
    qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 4 -m 1G \
        -nodefaults -display none -net none -machine dumpdtb="$work/virt.dtb" >/dev/null 2>&1
    echo "$work/virt.dtb"
}

# boot_args NAME BOOTARGS: boots QEMU virt's DTB with the hypervisor command line
# (/chosen/xen,xen-bootargs) set to BOOTARGS.
boot_args() {
    local dtb
    dtb=$(virt_dtb)
    fdtput -t s "$dtb" /chosen xen,xen-bootargs "$2"
    boot "$1" --dtb "$dtb"
}

TESTGUEST=target/guests/testguest.img
# The test-guest demo: three bare-metal domains that each power off (any platform).
TG_DEMO=(--module 0x49000000=$TESTGUEST tests/lcm/guests/demo.dts)

BANNER='^\(HL\) \[ *[0-9]+\.[0-9]{6}\] INFO  hyperlaunch [0-9]+\.[0-9]+\.[0-9]+ on'
# A host DTB without any launch configuration: the hypervisor says so and stops.
CLEAN_STOP='^\(HL\) stopping: nothing to launch; powering off'
NOTHING='ERROR error: /chosen: nothing to launch: no /chosen/hypervisor \(LCM\), no xen,domain node and no multiboot,kernel module'

t_virt_gicv3() {
    boot virt-gicv3 "${TG_DEMO[@]}"
    expect_exit 0
    # Cortex-A57: the branch history is cleared on every guest exit (Spectre-BHB); QEMU's
    # firmware offers no SMCCC_ARCH_WORKAROUND_1, and the log says so.
    expect "$BANNER 4 CPUs, 1024 MiB RAM in 1 bank\(s\), GICv3" 'PSCI 1\.[0-9]+ via SMC' \
        'INFO  Spectre: branch history cleared on guest exit \(8 taken branches\); branch predictor NOT invalidated on guest exit: the firmware offers no SMCCC_ARCH_WORKAROUND_1' \
        'console: Pl011 UART at 0x9000000' 'GICv3: [0-9]+ SPIs, distributor 0x8000000, redistributors 0x80a0000' \
        'INFO  4 of 4 CPUs online'
    expect_demo
    refuse 'FATAL|PANIC|ERROR'
    done_test
}

t_virt_gicv2_a53() {
    boot virt-gicv2-a53 --gic 2 --cpu cortex-a53 "${TG_DEMO[@]}"
    expect_exit 0
    expect "$BANNER 4 CPUs, 1024 MiB RAM in 1 bank\(s\), GICv2" 'MIDR 0x410fd03' \
        'GICv2: [0-9]+ SPIs, distributor 0x8000000, CPU interface 0x8010000, virtual interface control 0x8030000' \
        'INFO  4 of 4 CPUs online'
    expect_demo
    # Cortex-A53: no branch-predictor mitigation needed.
    refuse 'FATAL|PANIC|ERROR|Spectre'
    done_test
}

t_virt_max_2cpu() {
    boot virt-max-2cpu-512M --cpu max --cpus 2 --mem 512M --bare
    expect_exit 0
    expect "$BANNER 2 CPUs, 512 MiB RAM" 'INFO  2 of 2 CPUs online' "$CLEAN_STOP"
    refuse 'WARN|FATAL|PANIC'
    done_test
}

t_virt_uboot() {
    boot virt-uboot --uboot "${TG_DEMO[@]}"
    expect_exit 0
    # U-Boot relocates the DTB near the top of RAM: the hypervisor must find it there.
    expect '^U-Boot 20' 'Starting kernel' "$BANNER 4 CPUs" 'device tree at 0x7[0-9a-f]{7} ' \
        'INFO  4 of 4 CPUs online'
    expect_demo
    refuse 'FATAL|PANIC|ERROR'
    done_test
}

t_zcu102() {
    # RAM at 0 instead of 0x40000000: the same position-independent image.
    boot zcu102 --machine zcu102 "${TG_DEMO[@]}"
    expect_exit 0
    expect "$BANNER 4 CPUs, 2048 MiB RAM in 1 bank\(s\), GICv2" 'image at 0x200000\.\.' \
        'console: Cadence UART at 0xff000000' 'GICv2: [0-9]+ SPIs, distributor 0xf9010000' \
        'INFO  4 of 4 CPUs online'
    expect_demo
    refuse 'FATAL|PANIC|ERROR'
    done_test
}

# Adds a 64 MiB /reserved-memory carveout at 0x50000000 to a DTB, and a 1 MiB /memreserve/
# at 0x60000000 when the second argument is "memreserve".
add_reservations() {
    fdtput -c "$1" /reserved-memory /reserved-memory/carveout@50000000
    fdtput -t x "$1" /reserved-memory '#address-cells' 2
    fdtput -t x "$1" /reserved-memory '#size-cells' 2
    fdtput "$1" /reserved-memory ranges
    fdtput -t x "$1" /reserved-memory/carveout@50000000 reg 0 0x50000000 0 0x4000000
}

# DTB -> DTB through dtc, optionally adding a /memreserve/ entry.
recompile() {
    local extra=${3:-}
    dtc -q -I dtb -O dts "$1" | sed "s|^/dts-v1/;|/dts-v1/;\n$extra|" | dtc -q -I dts -O dtb -o "$2" -
}

free_mib() {
    sed -n 's/.*memory: \([0-9]*\) MiB free.*/\1/p' "$1"
}

t_reserved_memory() {
    # 64 MiB of reserved-memory and a 1 MiB /memreserve/ come off the free memory,
    # compared with the same DTB (same size, same path through dtc) without them.
    local dtb base now
    dtb=$(virt_dtb)
    recompile "$dtb" "$work/plain.dtb"
    boot reserved-baseline --dtb "$work/plain.dtb"
    base=$(free_mib "$log")
    add_reservations "$dtb"
    recompile "$dtb" "$work/resv.dtb" '/memreserve/ 0x60000000 0x100000;'
    boot reserved-memory --dtb "$work/resv.dtb"
    expect_exit 0
    now=$(free_mib "$log")
    if [ -z "$why" ]; then
        if [ -z "$base" ] || [ -z "$now" ]; then
            why="no 'memory: N MiB free' line"
        elif [ $((base - now)) -ne 65 ]; then
            why="free memory went from $base to $now MiB, expected 65 MiB less"
        fi
    fi
    expect "$CLEAN_STOP"
    refuse 'WARN|FATAL|PANIC'
    done_test
}

t_fatal_el2_abort() {
    # An exception inside the hypervisor prints its cause and registers, then powers off.
    boot_args fatal-el2-abort "selftest=el2-abort"
    expect_exit 0
    expect 'INFO  4 of 4 CPUs online' 'selftest: reading unmapped address 0x800000000000' \
        '^\(HL\) FATAL: unexpected synchronous exception from EL2 on CPU 0' \
        '^\(HL\)   ESR_EL2 0x[0-9a-f]{16} \(EC 0x25: data abort at EL2\)' \
        'FAR_EL2 0x0000800000000000' ' x0  0x' ' x28 0x' '^\(HL\) stopping: unexpected exception; powering off'
    refuse 'instead of faulting'
    done_test
}

t_fatal_panic() {
    boot_args fatal-panic "selftest=panic"
    expect_exit 0
    expect '^\(HL\) PANIC on CPU 0: panicked at src/arch/start.rs:[0-9]+:[0-9]+:' \
        'selftest: panic requested on the command line' '^\(HL\) stopping: hypervisor panic; powering off'
    done_test
}

t_fatal_bad_reserved_memory() {
    local dtb
    dtb=$(virt_dtb)
    add_reservations "$dtb"
    fdtput -t x "$dtb" /reserved-memory/carveout@50000000 reg 0 0x50000000 0x4000000
    boot fatal-bad-reserved-memory --dtb "$dtb"
    expect_exit 0
    expect '^\(HL\) FATAL: host device tree: a /reserved-memory node has a malformed reg' \
        '^\(HL\) stopping: fatal error; powering off'
    refuse 'CPUs online'
    done_test
}

t_debug_level() {
    boot_args loglvl-debug "loglvl=debug"
    expect_exit 0
    expect 'DEBUG reserved \[0x48000000, ' 'DEBUG CPU [123] online \(MPIDR 0x8000000[123]\)' "$CLEAN_STOP"
    done_test
}

# The test-guest demo (tests/lcm/guests/demo.dts): three domains that each power off.
# Each domain's lines come in its own order; the end comes after all of them.
expect_demo() {
    expect '^DOM1: hello from hello: domid 1, 1 vCPU\(s\), 16 MiB' '^DOM1: smccc: PSCI_VERSION 1\.1$' \
        'INFO  DOM1: stopped \(SYSTEM_OFF\)' 'INFO  all domains have stopped'
    expect '^DOM2: smp: 1 secondary vCPU\(s\) ran and stopped$' 'INFO  DOM2: stopped \(SYSTEM_OFF\)' \
        'INFO  all domains have stopped'
    expect_refused 3 0x8000000 0x9000000
    expect '^DOM3: probe: write 0x9000000 refused' \
        'INFO  DOM3: stopped \(SYSTEM_OFF\)' 'INFO  all domains have stopped' \
        '^\(HL\) stopping: all domains have stopped; powering off'
}

# The example LCMs name kernels at 0x49000000 that these runs do not load.
NO_KERNEL='error: /chosen.*: domain [0-9]+ not built: kernel: no arm64 Image magic'
PLAN_READY='^\(HL\) stopping: no domain could be built; powering off'

t_lcm_hyperlaunch() {
    boot lcm-hyperlaunch dts/static-standard.dts
    expect_exit 0
    expect 'INFO  plan: boot path: Hyperlaunch; Static \(domains without Control\)' \
        'INFO  plan: domain 32757 \(/chosen/hypervisor/domain@0\): 1 vCPU\(s\), 32 MiB' \
        'INFO  plan: +permissions none; functions boot' \
        'INFO  plan: +config +0x4c100000 size 0x1000' \
        'INFO  plan: domain 1 \(/chosen/hypervisor/domain@1\): 2 vCPU\(s\), 128 MiB, direct-mapped, virtual UART' \
        'INFO  plan: +permissions hardware; functions recovery,console,xenstore' \
        'INFO  plan: +kernel +0x49000000 size 0x2000000 shared' \
        'INFO  plan: domain 3 ' 'INFO  plan: boot domain: 32757 runs first \(time limit 30000 ms\)' 'INFO  plan: console: domain 1$' \
        "$NO_KERNEL" "$PLAN_READY"
    refuse 'WARN|FATAL|PANIC'
    done_test
}

t_lcm_dom0less() {
    boot lcm-dom0less dts/dom0less.dts
    expect_exit 0
    expect 'INFO  plan: boot path: dom0less; Static' 'INFO  plan: domain 1 \(/chosen/domU1\): 2 vCPU\(s\), 128 MiB, virtual UART' \
        'INFO  plan: +bootargs +"console=ttyAMA0 nokaslr hl.name=domU1"' 'INFO  plan: domain 2 \(/chosen/domU2\): 1 vCPU\(s\), 64 MiB' \
        'INFO  plan: console: domain 1 \(first with a virtual UART\)' "$NO_KERNEL" "$PLAN_READY"
    refuse 'WARN|FATAL|PANIC'
    done_test
}

t_lcm_classic() {
    # A classic dom0: direct-mapped RAM from the frame allocator (guest address = host
    # address). The test guest idles once done (no hl.off): the run stops at its last line.
    TIMEOUT=15 boot lcm-classic --module 0x49000000=$TESTGUEST --stop-when '^DOM0: dom0: tests done$' dts/classic.dts
    expect_exit 0
    expect 'INFO  plan: boot path: classic dom0; Dynamic' \
        'INFO  plan: domain 0 \(/chosen\): 2 vCPU\(s\), 512 MiB, direct-mapped, virtual UART' \
        'INFO  plan: +permissions control,hardware; functions recovery,console,xenstore,legacy-dom0' \
        'INFO  DOM0: built: 2 vCPU\(s\) on CPU\(s\) \[0, 1\], 512 MiB at IPA (0x[0-9a-f]+) \(1 chunk\(s\), direct-mapped\)' \
        '^DOM0: hello from dom0: domid 0, 2 vCPU\(s\), 512 MiB at 0x[0-9a-f]+, MPIDR 0x80000000, running at 0x[0-9a-f]+$' \
        '^DOM0: dom0: tests done$'
    local built hello
    built=$(sed -n 's/.*DOM0: built: .* at IPA \(0x[0-9a-f]*\) .*/\1/p' "$log")
    hello=$(sed -n 's/^DOM0: hello from dom0: .* MiB at \(0x[0-9a-f]*\), .*running at \(0x[0-9a-f]*\)$/\1 \2/p' "$log")
    [ -n "$why" ] || [ "$hello" = "$built $built" ] || why="dom0 sees RAM/runs at '$hello', host placed it at $built"
    refuse 'WARN|FATAL|PANIC|ERROR'
    done_test
}

t_lcm_invalid() {
    boot lcm-invalid dts/invalid/two-boot-domains.dts
    expect_exit 0
    expect 'INFO  4 of 4 CPUs online' \
        'ERROR error: /chosen/hypervisor/domain@2: a second boot domain \(the first is /chosen/hypervisor/domain@1\); at most one is allowed' \
        '^\(HL\) stopping: invalid launch configuration; powering off'
    refuse 'plan:'
    done_test
}

t_lcm_module_over_image() {
    # Only the hypervisor knows where its image lies: a module over it is refused at boot.
    sed 's/0x4c000000 0x100000/0x40280000 0x100000/' dts/static-standard.dts >"$work/over-image.dts"
    boot lcm-module-over-image "$work/over-image.dts"
    expect_exit 0
    expect 'ERROR error: /chosen/hypervisor/domain@0/module@4c000000: module \[0x40280000, 0x40380000\) overlaps the hypervisor image at \[0x40200000, 0x40[2-9a-f][0-9a-f]{5}\)' \
        '^\(HL\) stopping: invalid launch configuration; powering off'
    done_test
}


t_domains() {
    # Four test-guest domains on five CPUs: SMP, SMCCC, isolation probes, and one that
    # outlives the others; the machine powers off after the last.
    boot domains --cpus 5 --module 0x49000000=$TESTGUEST tests/lcm/guests/isolation.dts
    expect_exit 0
    expect 'INFO  DOM1: built: 2 vCPU\(s\) on CPU\(s\) \[0, 1\], 16 MiB' 'INFO  DOM4: built: 1 vCPU\(s\) on CPU\(s\) \[4\]' \
        'INFO  launch: 4 domain\(s\) running'
    expect '^DOM1: hello from smp: domid 1, 2 vCPU\(s\), 16 MiB at 0x40000000, MPIDR 0x80000000, running at 0x40000000$' \
        '^DOM1: smp: CPU_ON vCPU 1 -> 0$' '^DOM1: smp: second CPU_ON vCPU 1 -> -(4|5)$' \
        '^DOM1: smp: 1 secondary vCPU\(s\) ran and stopped$' '^DOM1: smp: CPU_ON of a vCPU that does not exist -> -2$'
    expect '^DOM1: smp: vCPU 1 up, MPIDR 0x80000001$'
    expect '^DOM2: hello from smccc: domid 2' '^DOM2: smccc: PSCI_VERSION 1\.1$' '^DOM2: smccc: TRNG_VERSION -> -1$' \
        '^DOM2: smccc: vendor hypervisor UID -> -1$' '^DOM2: smccc: PSCI_VERSION by SMC -> 0x10001$' \
        '^DOM2: smccc: CNTP CTL/CVAL/TVAL read 0x0 0x0 0x0$' \
        '^DOM2: smccc: CNTP CTL/CVAL/TVAL after writing 1/0x12345678/100000 read 0x0 0x0 0x0$'
    expect_refused 3 0x8000000 0x9000000 0x41000000 0x48000000 0xa000000 0x7ffffff000
    refuse 'LEAKED|WENT THROUGH'
    expect 'INFO  DOM1: stopped \(SYSTEM_OFF\)'
    expect 'INFO  DOM3: stopped \(SYSTEM_OFF\)' '^DOM4: survivor: still running after 1500 ms$' \
        'INFO  DOM4: stopped \(SYSTEM_OFF\)' 'INFO  all domains have stopped' '^\(HL\) stopping: all domains have stopped; powering off'
    refuse 'FATAL|PANIC|ERROR'
    done_test
}

t_gzip_affinity_corrupt() {
    # A gzip module's trailer sits at its end: the LCM gives each gzip file's exact size.
    gzip -9 -n -c "$TESTGUEST" >"$work/tg.gz"
    head -c 2000 "$work/tg.gz" >"$work/corrupt.gz"
    sed -e "s/0x4a000000 0x100000/0x4a000000 $(printf '%#x' "$(stat -c %s "$work/tg.gz")")/" \
        -e "s/0x4b000000 0x100000/0x4b000000 $(printf '%#x' "$(stat -c %s "$work/corrupt.gz")")/" \
        tests/lcm/guests/gzip-affinity.dts >"$work/gz.dts"
    boot gzip-affinity-corrupt --module 0x49000000=$TESTGUEST --module 0x4a000000="$work/tg.gz" \
        --module 0x4b000000="$work/corrupt.gz" "$work/gz.dts"
    expect_exit 0
    expect 'INFO  DOM1: built: 1 vCPU\(s\) on CPU\(s\) \[3\]'
    expect 'INFO  DOM2: built: 1 vCPU\(s\) on CPU\(s\) \[2\]'
    expect 'ERROR error: /chosen/hypervisor/domain@3: domain 3 not built: kernel: (gzip stream is (truncated|corrupt)|the gzip trailer gives [0-9]+ bytes, more than the domain.s 16777216 bytes of RAM)' \
        'INFO  launch: 2 of 3 domain\(s\) built'
    expect '^DOM1: hello from gzipped: domid 1' '^DOM1: gzipped: tests done'
    expect '^DOM2: hello from pinned: domid 2' 'INFO  all domains have stopped'
    refuse '^DOM3:'
    done_test
}

t_static_mem() {
    boot static-mem --module 0x49000000=$TESTGUEST tests/lcm/guests/static-mem.dts
    expect_exit 0
    expect 'INFO  plan: boot path: dom0less; Static'
    expect 'INFO  DOM1: built: 1 vCPU\(s\) on CPU\(s\) \[0\], 32 MiB at IPA 0x40000000 \(1 chunk\(s\), static memory\)'
    expect 'INFO  DOM2: built: 1 vCPU\(s\) on CPU\(s\) \[1\], 32 MiB at IPA 0x70000000 \(1 chunk\(s\), direct-mapped static memory\)'
    expect 'INFO  DOM3: built: 1 vCPU\(s\) on CPU\(s\) \[2\], 16 MiB at IPA 0x40000000 \(1 chunk\(s\)\)'
    expect '^DOM1: hello from static: domid 1, 1 vCPU\(s\), 32 MiB at 0x40000000, MPIDR 0x80000000, running at 0x40000000$' \
        '^DOM1: probe: read 0x42000000 refused'
    expect_refused 1 0x42000000
    expect '^DOM2: hello from direct: domid 2, 1 vCPU\(s\), 32 MiB at 0x70000000, MPIDR 0x80000000, running at 0x70000000$' \
        '^DOM2: probe: read 0x40000000 refused'
    expect_refused 2 0x40000000 0x60000000 0x61fff000
    expect '^DOM3: hello from dynamic: domid 3' 'INFO  all domains have stopped'
    refuse 'LEAKED|WENT THROUGH|ERROR|FATAL|PANIC'
    done_test
}

LINUX=(--module 0x50000000=target/guests/linux.img --module 0x53000000=target/guests/initramfs.cpio.gz)

# expect_linux DOMID NAME CPUS MIB: the domain's Linux reached /init with CPUS CPUs and a
# MemTotal that fits MIB MiB of RAM (the kernel keeps 15-30% for itself).
expect_linux() {
    [ -n "$why" ] && return
    expect "^DOM$1: HL-LINUX-UP $2: $3 CPU\(s\), MemTotal [0-9]+ kB"
    [ -n "$why" ] && return
    local kb
    kb=$(sed -n "s/^DOM$1: HL-LINUX-UP $2: .*MemTotal \([0-9]*\) kB.*/\1/p" "$log" | head -n 1)
    if [ "$kb" -gt $(($4 * 1024)) ] || [ "$kb" -lt $(($4 * 1024 * 6 / 10)) ]; then
        why="DOM$1 MemTotal $kb kB does not fit $4 MiB"
    fi
}

# linux_lcm NAME RUN_ARGS...: Debian's kernel in three domains from an LCM, one SMP; two
# power off (stopping only themselves) and the console domain's shell, interrupt-driven,
# still answers after.
linux_lcm() {
    local test_name=$1
    shift
    printf 'echo "shell says $((6*7))"; poweroff -f\n' >"$work/shell"
    TIMEOUT=120 boot "$test_name" "$@" "${LINUX[@]}" --input "$work/shell" --input-when 'INFO  DOM3: stopped' \
        --input-when '^DOM1: / #' \
        tests/lcm/guests/linux.dts
    expect_exit 0
    expect_linux 1 alpha 1 128
    expect_linux 2 beta 2 192
    expect_linux 3 gamma 1 96
    expect 'INFO  DOM3: stopped \(SYSTEM_OFF\)' '^DOM1: shell says 42$' 'INFO  DOM1: stopped \(SYSTEM_OFF\)' \
        'INFO  all domains have stopped'
    expect 'INFO  DOM2: stopped \(SYSTEM_OFF\)'
    refuse 'NOTICE|FATAL|PANIC|ERROR'
}

t_linux_lcm() {
    linux_lcm linux-lcm
    done_test
}

t_linux_gicv2() {
    # The same on a GICv2 host: each domain's virtual GICv2 (emulated distributor, the
    # hardware's virtual CPU interface, list registers through GICH).
    linux_lcm linux-gicv2 --gic 2
    expect 'GICv2: .* virtual interface control 0x8030000'
    done_test
}

t_rpi4_console() {
    # Through the Raspberry Pi 4's mini UART (QEMU 10's raspi4b, the board DTB as it is).
    console_switch rpi4-console 'console: MiniUart UART at 0xfe215040' --machine raspi4b
    # Every domain line is whole: a prefix, then only that domain's text.
    expect_whole_domain_lines
    done_test
}

t_rpi4_pl011() {
    # The Raspberry Pi 4 with the PL011 as its console (the board DTB's stdout-path set to
    # serial0, as with dtoverlay=disable-bt): the same Linux domains as linux-rpi4, the
    # shell answering typed input on the PL011, then a clean stop (no PSCI: it parks).
    linux_lcm rpi4-pl011 --machine raspi4b --console pl011 --stop-when 'stopping: all domains have stopped'
    expect "$BANNER 4 CPUs, 960 MiB RAM in 1 bank\(s\), GICv2" 'console: Pl011 UART at 0xfe201000' \
        'GICv2: .*distributor 0xff841000, CPU interface 0xff842000, virtual interface control 0xff844000' \
        'INFO  4 of 4 CPUs online'
    expect 'no PSCI to power off: halted'
    done_test
}

t_linux_rpi4() {
    # The same on QEMU 10's Raspberry Pi 4 with Debian's board DTB as it is: GIC-400,
    # spin-table CPUs, the mini UART console (typed input included), no PSCI (the machine
    # halts after the last domain: the run ends on that line).
    linux_lcm linux-rpi4 --machine raspi4b --stop-when 'stopping: all domains have stopped'
    expect 'console: MiniUart UART at 0xfe215040' 'GICv2: .* virtual interface control 0xff844000'
    expect 'no PSCI to power off: halted'
    done_test
}

t_rpi4_hardware() {
    # The hardware domain (Debian Linux) on QEMU 10's Raspberry Pi 4 with the board DTB as
    # it is: it gets the board's devices but the GIC and the mini UART the hypervisor's
    # console uses, reads the system timer (it ticks) and the PL011's peripheral ID through
    # /dev/mem. (Its command line keeps Linux off what QEMU does not model: the HDMI I2C
    # controllers and unused clock gates, which abort on QEMU, not on the board.)
    TIMEOUT=150 boot rpi4-hardware --machine raspi4b "${LINUX[@]}" \
        --stop-when 'stopping: all domains have stopped' tests/lcm/guests/hardware-rpi4.dts
    expect_exit 0
    expect 'INFO  DOM1: hardware: [0-9]+ host device\(s\) given \([0-9]+ SPIs forwarded\)' \
        'INFO  DOM1: hardware: /soc/serial@7e215040 not given: the hypervisor.s console UART' \
        'INFO  DOM1: hardware: /soc/interrupt-controller@40041000 not given: the interrupt controller' \
        'INFO  DOM1: built: 1 vCPU\(s\) .*direct-mapped'
    expect_linux 1 hw 1 128
    expect '^DOM1: HL-DEVMEM hw: 0xfe003004 = 0x[0-9A-F]{8} then 0x[0-9A-F]{8}$' \
        '^DOM1: HL-DEVMEM hw: 0xfe201fe0 = 0x00000011 then 0x00000011$' \
        'INFO  DOM1: stopped \(SYSTEM_OFF\)' 'no PSCI to power off: halted'
    local t
    t=$(sed -n 's/^DOM1: HL-DEVMEM hw: 0xfe003004 = \(0x[0-9A-F]*\) then \(0x[0-9A-F]*\)$/\1 \2/p' "$log")
    [ -n "$why" ] || [ "${t% *}" != "${t#* }" ] || why="the system timer did not tick: $t"
    refuse 'NOTICE|FATAL|PANIC|ERROR|Internal error'
    done_test
}

t_rpi4_uboot() {
    # The Raspberry Pi 4's own flow on QEMU 10's raspi4b: Debian's U-Boot (u-boot-rpi)
    # finds boot.scr on the SD card, loads the modules and the image from it, and boots the
    # image with the board DTB the firmware (QEMU) handed over.
    TIMEOUT=150 boot rpi4-uboot --machine raspi4b --uboot "${TG_DEMO[@]}" \
        --stop-when 'stopping: all domains have stopped'
    expect_exit 0
    expect '^MMC: +mmc@7e300000: 0, mmc@7e340000: 1' 'Found U-Boot script /boot\.scr' 'Starting kernel' \
        "$BANNER 4 CPUs, 960 MiB RAM in 1 bank\(s\), GICv2" 'console: MiniUart UART at 0xfe215040' \
        'INFO  4 of 4 CPUs online'
    expect '^DOM1: hello from hello: domid 1, 1 vCPU\(s\), 16 MiB' 'INFO  DOM1: stopped \(SYSTEM_OFF\)'
    expect '^DOM2: smp: 1 secondary vCPU\(s\) ran and stopped$' 'INFO  DOM2: stopped \(SYSTEM_OFF\)'
    expect 'INFO  all domains have stopped' 'stopping: all domains have stopped; no PSCI to power off: halted'
    refuse 'FATAL|PANIC|ERROR'
    done_test
}

t_linux_zcu102() {
    # The same on QEMU's ZCU102: GIC-400, Cadence UART console, Cortex-A53s.
    linux_lcm linux-zcu102 --machine zcu102
    expect 'console: Cadence UART at 0xff000000' 'GICv2: .* virtual interface control 0xf9040000'
    done_test
}

t_linux_recovery() {
    # One domain's kernel is corrupt: the healthy one runs, the standby Recovery Domain
    # (Linux) gets the console and the failure report, and its shell takes input.
    printf 'echo "rescue shell $((40+2))"; poweroff -f\n' >"$work/shell"
    TIMEOUT=120 boot linux-recovery "${LINUX[@]}" --input "$work/shell" --input-when '^DOM3: / #' \
        tests/lcm/guests/linux-recovery.dts
    expect_exit 0
    # (The initramfs is gzip: the hypervisor checks it as a gzip kernel.)
    local bad='kernel: gzip stream is larger than its size field says'
    expect "ERROR error: /chosen/hypervisor/domain@2: domain 2 not built: $bad" \
        'INFO  launch: 2 of 3 domain\(s\) built' 'INFO  console input now goes to DOM3|INFO  console input goes to DOM3' \
        'ERROR launch failed: DOM2: not built' "INFO  launch: failure report written into DOM3's device tree" \
        'INFO  launch: DOM1 unpaused' 'INFO  launch: DOM3 unpaused'
    expect_linux 1 healthy 1 128
    expect_linux 3 rescue 1 128
    expect "^DOM3: rescue: launch failed for DOM2: not built: $bad\$" \
        '^DOM3: rescue shell 42$' 'INFO  all domains have stopped'
    refuse 'NOTICE|FATAL|PANIC|DOM3: stopped \(reclaimed\)'
    done_test
}

t_linux_one_cpu() {
    # The same three domains (4 vCPUs) on a single physical CPU: time-sliced round robin.
    printf 'echo "shell says $((6*7))"; poweroff -f\n' >"$work/shell"
    TIMEOUT=120 boot linux-one-cpu --cpus 1 "${LINUX[@]}" --input "$work/shell" \
        --input-when 'INFO  DOM3: stopped' --input-when '^DOM1: / #' tests/lcm/guests/linux.dts
    expect_exit 0
    expect 'INFO  DOM2: built: 2 vCPU\(s\) on CPU\(s\) \[0, 0\]'
    expect_linux 1 alpha 1 128
    expect_linux 2 beta 2 192
    expect_linux 3 gamma 1 96
    expect 'INFO  DOM3: stopped \(SYSTEM_OFF\)' '^DOM1: shell says 42$' 'INFO  all domains have stopped'
    refuse 'NOTICE|FATAL|PANIC|ERROR'
    done_test
}

t_linux_hardware() {
    # The hardware domain (Linux) gets the host's devices: it reads the PL031 RTC, sees the
    # virtio-mmio transports, and an RTC alarm's interrupt reaches it; a domain without the
    # Hardware permission touching the RTC or a virtio transport gets external aborts.
    # DOM2's partial device tree gives it the PL061 GPIO controller, which DOM1 then lacks.
    # On a GICv2 host as on GICv3: the interrupt is forwarded through a list register's
    # hardware link and the guest's end of interrupt deactivates it (EOImode split).
    dtc -q -I dts -O dtb -o "$work/gpio.dtb" tests/lcm/partial/gpio.dts
    local v
    for v in 3 2; do
        TIMEOUT=120 boot "linux-hardware$([ $v = 2 ] && echo -gicv2)" --gic $v --module 0x49000000=$TESTGUEST "${LINUX[@]}" \
            --module 0x4c000000="$work/gpio.dtb" tests/lcm/guests/hardware.dts
        expect_exit 0
        expect 'INFO  DOM1: hardware: [0-9]+ host device\(s\) given \([0-9]+ SPIs forwarded\)' \
            'INFO  DOM1: hardware: /pl061@9030000 not given: given to domain 2 by its partial device tree' \
            'INFO  DOM1: hardware: /pl011@9000000 not given: the hypervisor.s console UART' \
            'INFO  DOM1: hardware: /intc@8000000 not given: the interrupt controller'
        expect_linux 1 hw 1 128
        expect '^DOM1: HL-RTC hw: rtc-pl031 9010000.pl031 reads 20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9:]{8}$' \
            '^DOM1: HL-DEVICES hw: 32 virtio-mmio transport\(s\)' \
            "^DOM1: HL-RTC-IRQ hw: +[0-9]+: 1 $([ $v = 3 ] && echo GICv3 || echo GIC-0) 34 Level rtc-pl031\$"
        expect 'INFO  DOM2: 1 device\(s\) from its partial device tree \(1 SPIs forwarded\)' \
            '^DOM2: probe: read 0x9010000 refused' '^DOM2: probe: write 0x9010000 refused' \
            '^DOM2: probe: read 0xa000000 refused' '^DOM2: probe: write 0xa000000 refused' \
            '^DOM2: other: peek 0x9030fe0 = 0x61$' '^DOM2: other: peek 0x9030fe4 = 0x10$'
        expect_refused 2 0x9010000 0xa000000
        expect 'INFO  all domains have stopped'
        refuse 'LEAKED|WENT THROUGH|FATAL|PANIC|ERROR'
        done_test
    done
}

t_linux_classic() {
    # No LCM: a classic dom0 (Debian Linux, 2 vCPUs, direct-mapped) through the same code,
    # with the host's devices.
    TIMEOUT=120 boot linux-classic "${LINUX[@]}" tests/lcm/guests/linux-classic.dts
    expect_exit 0
    expect 'INFO  plan: boot path: classic dom0' 'INFO  DOM0: hardware: [0-9]+ host device' \
        'INFO  DOM0: built: 2 vCPU\(s\) .*direct-mapped'
    expect_linux 0 dom0 2 256
    expect '^DOM0: HL-RTC dom0: rtc-pl031 9010000.pl031 reads 20' 'INFO  all domains have stopped'
    refuse 'NOTICE|FATAL|PANIC|ERROR'
    done_test
}

t_linux_dom0less() {
    # Xen's dom0less binding, on a GICv3 host and on a GICv2 one (each domain's virtual
    # GIC follows the host's: the guest's device tree has an arm,gic-400 node on GICv2).
    local v
    for v in 3 2; do
        TIMEOUT=120 boot "linux-dom0less$([ $v = 2 ] && echo -gicv2)" --gic $v "${LINUX[@]}" \
            tests/lcm/guests/linux-dom0less.dts
        expect_exit 0
        expect 'INFO  plan: boot path: dom0less; Static'
        expect_linux 1 one 2 192
        expect_linux 2 two 1 128
        expect_linux 3 three 1 128
        expect '^DOM2: \[ *[0-9.]+\] earlycon: pl11 at MMIO 0x0000000022000000' \
            '^DOM2: \[ *[0-9.]+\] 22000000.uart: ttyAMA0 at MMIO 0x22000000 \(irq = [0-9]+, base_baud = 0\) is a SBSA' \
            '^DOM2: \[ *[0-9.]+\] printk: console \[ttyAMA0\] enabled'
        expect 'INFO  all domains have stopped'
        [ "$v" = 3 ] || expect "$BANNER 4 CPUs, .*GICv2"
        refuse 'NOTICE|FATAL|PANIC|ERROR'
        done_test
    done
}

t_passthrough() {
    # Passthrough exclusivity: the hardware domain (the test guest, direct-mapped) is refused
    # the GPIO controller DOM2's partial device tree takes and the hypervisor's image;
    # DOM2 reads the controller.
    dtc -q -I dts -O dtb -o "$work/gpio.dtb" tests/lcm/partial/gpio.dts
    boot passthrough --module 0x49000000=$TESTGUEST --module 0x4c000000="$work/gpio.dtb" \
        tests/lcm/guests/passthrough.dts
    expect_exit 0
    # The LCM probes 0x40200000 as the image: it must be where this boot put it.
    expect 'INFO  EL2: image at 0x40200000\.\.0x40[2-9a-f][0-9a-f]{5} ' \
        'INFO  DOM1: hardware: /pl061@9030000 not given: given to domain 2 by its partial device tree' \
        'INFO  DOM1: built: 1 vCPU\(s\) .*direct-mapped'
    expect_refused 1 0x9030000 0x40200000
    expect '^DOM2: owner: peek 0x9030fe0 = 0x61$' '^DOM2: owner: peek 0x9030fe4 = 0x10$'
    expect 'INFO  DOM1: stopped \(SYSTEM_OFF\)' 'INFO  all domains have stopped'
    refuse 'LEAKED|WENT THROUGH|FATAL|PANIC|ERROR'
    done_test
}

t_passthrough_uart() {
    # The hardware domain without a virtual UART of its own (so nothing is emulated at the
    # console UART's address) probes the console UART's page: both accesses refused, as
    # the hypervisor's notices say (the quiet guest prints nothing).
    sed -e 's|permissions = <0x2>;\t/\* HARDWARE \*/|&\n\t\t\tvpl011 = "disabled";|' \
        -e 's|hl.name=hw hl.probe=0x9030000,0x40200000 hl.off|hl.name=hw hl.quiet hl.probe=0x9000000,0x9000018 hl.off|' \
        tests/lcm/guests/passthrough.dts >"$work/uart.dts"
    dtc -q -I dts -O dtb -o "$work/gpio.dtb" tests/lcm/partial/gpio.dts
    boot passthrough-uart --module 0x49000000=$TESTGUEST --module 0x4c000000="$work/gpio.dtb" "$work/uart.dts"
    expect_exit 0
    expect 'INFO  plan: +bootargs +"hl.name=hw hl.quiet hl.probe=0x9000000,0x9000018 hl.off"' \
        'INFO  DOM1: hardware: /pl011@9000000 not given: the hypervisor.s console UART'
    local a op
    for a in 0x9000000 0x9000018; do
        for op in "read from" "write to"; do
            expect "WARN  NOTICE: DOM1: vCPU 0 $op IPA $a \\(VA $a\\) outside its memory and devices: external abort injected$"
        done
    done
    expect 'INFO  DOM1: stopped \(SYSTEM_OFF\)' 'INFO  all domains have stopped'
    refuse '^DOM1:|FATAL|PANIC|ERROR'
    done_test
}

t_console() {
    # Typed input reaches the console domain; Ctrl-A three times moves it to the next;
    # a prompt (partial line) comes out after a quiet time; a flooding domain does not
    # garble or stop the others' lines.
    # 15 bytes, typed once both echoing domains are ready: they all fit QEMU's 16-byte UART
    # FIFO at once, so the order of input and switch is the order typed. The echoing
    # domains keep running: the run stops once every domain has shown its last line.
    printf 'hello\n\001\001\001world\n' >"$work/input"
    TIMEOUT=30 boot console --input "$work/input" --module 0x49000000=$TESTGUEST \
        --input-when '^DOM1: first: echo ready' --input-when '^DOM2: second: echo ready' \
        --stop-when '^DOM1: first: echo: hello$' --stop-when '^DOM2: second: echo: world$' \
        --stop-when 'INFO  DOM3: stopped' --stop-when 'INFO  DOM4: stopped' tests/lcm/guests/console.dts
    expect_exit 0
    expect 'INFO  console input goes to DOM1 \(Ctrl-A three times switches\)'
    expect '^DOM1: first: echo: hello$'
    expect 'INFO  console input now goes to DOM2' '^DOM2: second: echo: world$'
    # Whether the flood exceeds its budget depends on emulation speed (drop accounting is
    # unit-tested); what must hold is that the others are served while it floods.
    expect '^DOM3: prompt> $' '^DOM3: x{99}$' '^DOM3: flood: still running after 1200 ms$' 'INFO  DOM3: stopped'
    expect 'NOTICE: DOM4: vCPU 0 write to IPA 0x22000000 .*external abort injected' 'NOTICE: DOM4: further notices suppressed'
    refuse '^DOM4:|ERROR|FATAL|PANIC'
    expect_echo_lines
    # Every domain line is whole: a prefix, then only that domain's text.
    expect_whole_domain_lines
    done_test
}

# console_switch NAME CONSOLE_LINE RUN_ARGS...: typed input reaches the console domain and
# Ctrl-A three times moves it to the next, through the machine's console UART (the input is
# typed once the domains are ready: a receiver may be enabled only once the hypervisor runs).
console_switch() {
    local test_name=$1 console_line=$2
    shift 2
    printf 'hello\n\001\001\001world\n' >"$work/input"
    TIMEOUT=20 boot "$test_name" "$@" --input "$work/input" \
        --input-when '^DOM1: first: echo ready' --input-when '^DOM2: second: echo ready' \
        --stop-when '^DOM1: first: echo: hello$' --stop-when '^DOM2: second: echo: world$' \
        --module 0x49000000=$TESTGUEST tests/lcm/guests/console.dts
    expect_exit 0
    expect "$console_line" 'INFO  console input goes to DOM1'
    expect '^DOM1: first: echo: hello$'
    expect 'INFO  console input now goes to DOM2' '^DOM2: second: echo: world$'
    refuse 'ERROR|FATAL|PANIC'
    expect_echo_lines
}

t_zcu102_console() {
    # Through the ZCU102's Cadence UART.
    console_switch zcu102-console 'console: Cadence UART at 0xff000000' --machine zcu102
    done_test
}

t_console_skip() {
    # Ctrl-A three times skips DOM2, which has no UART: DOM1 -> DOM3 -> DOM1. DOM3 reads
    # nothing for a second: its receive FIFO fills, and the hypervisor holds the rest of its
    # 80 bytes until it reads again: all ten lines arrive, in order.
    local lines i
    lines=$(for i in $(seq -w 1 10); do printf 'line-%s\n' "$i"; done)
    printf 'a\n\001\001\001%s\n\001\001\001c\n' "$lines" >"$work/input"
    TIMEOUT=20 boot console-skip --input "$work/input" --module 0x49000000=$TESTGUEST \
        --input-when '^DOM1: first: echo ready' --input-when '^DOM3: slow: echo ready' \
        --stop-when '^DOM1: first: echo: c$' --stop-when '^DOM3: slow: echo: line-10$' \
        tests/lcm/guests/console-skip.dts
    expect_exit 0
    expect 'INFO  console input goes to DOM1' 'INFO  console input now goes to DOM3' 'INFO  console input now goes to DOM1'
    expect '^DOM3: slow: receive FIFO full after 1000 ms: true$'
    refuse 'console input now goes to DOM2|^DOM2:|NOTICE|ERROR|FATAL|PANIC'
    local want got
    want="first: echo ready|first: echo: a|first: echo: c"
    got=$(sed -n 's/^DOM1: \(first: echo.*\)$/\1/p' "$log" | paste -sd'|')
    [ -n "$why" ] || [ "$got" = "$want" ] || why="DOM1's echo lines '$got', expected '$want'"
    want="slow: echo ready|$(for i in $(seq -w 1 10); do printf 'slow: echo: line-%s|' "$i"; done)"
    want=${want%|}
    got=$(sed -n 's/^DOM3: \(slow: echo.*\)$/\1/p' "$log" | paste -sd'|')
    [ -n "$why" ] || [ "$got" = "$want" ] || why="DOM3's echo lines '$got', expected '$want'"
    done_test
}

# The echoing domains of tests/lcm/guests/console.dts said exactly this, in this order:
# each got its own line of the input and nothing else.
expect_echo_lines() {
    [ -n "$why" ] && return
    local d want got
    for d in "1 first hello" "2 second world"; do
        set -- $d
        want="$2: echo ready|$2: echo: $3"
        got=$(sed -n "s/^DOM$1: \($2: echo.*\)$/\1/p" "$log" | paste -sd'|')
        if [ "$got" != "$want" ]; then
            why="DOM$1's echo lines '$got', expected '$want'"
            return
        fi
    done
}

t_control() {
    # A Control domain lists, queries, pauses (for a second), unpauses and destroys another;
    # a domain without Control is refused each call, with a NOTICE.
    boot control --module 0x49000000=$TESTGUEST tests/lcm/guests/control.dts
    expect_exit 0
    expect 'INFO  plan: boot path: Hyperlaunch; Dynamic'
    expect 'NOTICE: DOM3: hypercall DomainInfo \{ index: 0 \} refused: not permitted' '^DOM3: ctl: list -> -3 ' \
        '^DOM3: ctl: query DOM2 -> -3$' '^DOM3: ctl: pause DOM2 -> -3$' 'NOTICE: DOM3: hypercall DomctlUnpause' \
        '^DOM3: ctl: unpause DOM2 -> -3$' 'NOTICE: DOM3: hypercall DomctlDestroy' '^DOM3: ctl: destroy DOM2 -> -3$'
    expect '^DOM1: ctl: list: DOM2 state 1$' '^DOM1: ctl: list -> -2 after 3 domain' \
        '^DOM1: ctl: query DOM2: state 1, 2 vCPU\(s\), 16 MiB, permissions 0x0 functions 0x0$' \
        'INFO  DOM2: paused by DOM1' '^DOM1: ctl: pause DOM2 -> 0$' '^DOM1: ctl: query DOM2: state 4,' \
        'INFO  DOM2: unpaused by DOM1' '^DOM1: ctl: unpause DOM2 -> 0$' \
        'INFO  DOM2: stopped \(destroyed by DOM1\)' '^DOM1: ctl: destroy DOM2 -> 0$' \
        'INFO  launch: DOM2 reclaimed: memory scrubbed, 16[0-9]{3} KiB returned' '^DOM1: ctl: query DOM2: state 3,' \
        'NOTICE: DOM1: pause of DOM2 refused: its state is reclaimed' \
        'NOTICE: DOM1: destroy of itself refused' 'NOTICE: DOM1: query of DOM99 refused: no such domain' \
        '^DOM1: ctl: query DOM3: state 2,' 'INFO  DOM3: restarted by DOM1' '^DOM1: ctl: restart DOM3 -> 0$' \
        'NOTICE: DOM1: restart of DOM2 refused: it was destroyed and its memory reclaimed' \
        '^DOM1: ctl: restart DOM2 -> -2$' 'INFO  all domains have stopped'
    # The restarted DOM3 runs again (its lines and DOM1's result of the restart may come in
    # either order).
    expect 'INFO  DOM3: restarted by DOM1' '^DOM3: hello from user' '^DOM3: ctl: destroy DOM2 -> -3$' \
        'INFO  DOM3: stopped \(SYSTEM_OFF\)' 'INFO  all domains have stopped'
    expect_scrubbed 3 user 0x40800000 'INFO  DOM3: restarted by DOM1'
    # DOM3 ran twice: before and after its restart.
    if [ -z "$why" ] && [ "$(grep -c '^DOM3: hello from user' "$log")" -ne 2 ]; then why="DOM3 did not run twice"; fi
    # DOM2 ticked before it was paused and after it was unpaused, and not while paused: a
    # pause returns once its vCPUs are off their CPUs, so no tick line ends between the
    # hypervisor's paused and unpaused lines; and by DOM2's own clock (its virtual counter
    # runs on while it is paused) one gap between ticks spans the pause (DOM1 waits 1 s;
    # ticks are 200 ms apart). A line it had begun before the pause may be shown in part
    # (the console shows a partial line that waits too long). Not at all after it was
    # destroyed.
    expect '^DOM2: ticker: tick' 'INFO  DOM2: paused by DOM1' 'INFO  DOM2: unpaused by DOM1' '^DOM2: ticker: tick'
    local between gap
    # (A tick shown there that DOM2's clock puts after the pause's second came once it ran
    # again, before the unpaused line reached the console. One whose text was all written
    # before the pause, but not its newline, is shown there as a partial line, and its
    # newline after the unpause as DOM2's next line, an empty one: it is not counted.)
    between=$(awk '/^DOM2: / && held { if ($0 == "DOM2: ") n--; held = 0 }
        /INFO  DOM2: paused by DOM1/ { inside = 1 } /INFO  DOM2: unpaused by DOM1/ { inside = 0 }
        /^DOM2: (ticker: tick [0-9]+)? at [0-9]+ ms$/ { t = $(NF - 1); if (inside && (last == "" || t - last < 900)) { n++; held = 1 } if (!inside) last = t }
        END { print n + 0 }' "$log")
    gap=$(grep -a -o -E '^DOM2: ticker: tick [0-9]+ at [0-9]+ ms$' "$log" | sed -E 's/.* at ([0-9]+) ms$/\1/' |
        awk 'NR > 1 && $1 - p > g { g = $1 - p } { p = $1 } END { print g + 0 }')
    echo "DOM2's ticks between its paused and unpaused lines: $between; longest gap between ticks: $gap ms" >>"$log"
    if [ -z "$why" ] && [ "$between" -ne 0 ]; then why="DOM2 ticked $between time(s) while paused"; fi
    if [ -z "$why" ] && [ "$gap" -lt 900 ]; then why="no gap of the pause's length between DOM2's ticks (longest $gap ms)"; fi
    if [ -z "$why" ] && sed -n '/DOM2: stopped (destroyed by DOM1)/,$p' "$log" | has_line '^DOM2: ticker: tick'; then
        why="DOM2 printed after it was destroyed"
    fi
    refuse 'FATAL|PANIC|ERROR'
    done_test
}

t_reset() {
    # PSCI SYSTEM_RESET restarts only that domain, from its boot modules (the test guest's,
    # kept since its pages are shared); the others run on. Before the reset DOM1 writes a
    # canary into its RAM and into its kernel's data (a page shared with DOM2 and DOM3 until
    # written): after the reset its RAM reads 0 and its kernel's data the image's value, and
    # DOM3, reading that data 500 ms in, sees the image's value too.
    sed -e 's/bootargs = "hl.name=hello hl.smccc hl.off";/bootargs = "hl.name=hello hl.canary=0x40800000 hl.cow hl.reset-at=500 hl.smccc hl.off";/' \
        -e 's/compatible = "hypervisor,xen";/&\n\t\tkernel-sharing = "copy-on-write";/' \
        -e 's/bootargs = "hl.name=prober hl.probe=0x8000000,0x9000000 hl.wait=500 hl.off";/bootargs = "hl.name=prober hl.probe=0x8000000,0x9000000 hl.wait=500 hl.cow-read hl.off";/' \
        tests/lcm/guests/demo.dts >"$work/reset.dts"
    grep -q 'hl.wait=500 hl.cow-read' "$work/reset.dts" || echo "reset: tests/lcm/guests/demo.dts changed: DOM3 reads no kernel word" >&2
    boot reset --module 0x49000000=$TESTGUEST "$work/reset.dts"
    expect_exit 0
    expect 'INFO  plan: kernel sharing: copy-on-write'
    # DOM2 (two vCPUs on two CPUs) does not share; DOM1 and DOM3 copy pages they write.
    expect 'INFO  DOM1: stopped \(SYSTEM_RESET\); .*; [1-9][0-9]* shared kernel page\(s\) copied on write' 
    expect '^DOM1: hello: SYSTEM_RESET at 500 ms$' 'INFO  DOM1: PSCI SYSTEM_RESET from vCPU 0: restarting it' \
        'INFO  DOM1: stopped \(SYSTEM_RESET\)' 'INFO  DOM1: restarted \(SYSTEM_RESET\)' '^DOM1: hello from hello' \
        '^DOM1: hello: up again after the reset' '^DOM1: smccc: PSCI_VERSION 1\.1$' 'INFO  DOM1: stopped \(SYSTEM_OFF\)'
    expect '^DOM2: smp: 1 secondary vCPU\(s\) ran and stopped$' 'INFO  all domains have stopped'
    expect_scrubbed 1 hello 0x40800000 'INFO  DOM1: restarted \(SYSTEM_RESET\)'
    # Copy on write: the kernel's data word (the LCM turns kernel sharing on).
    local kw='kernel word at 0x[0-9a-f]+' image=0x6b65726e656c2121
    expect "^DOM1: hello: $kw reads $image\$" "^DOM1: hello: $kw set to 0x5ca1ab1ec0ffee00\$" \
        "^DOM3: prober: $kw reads $image\$"
    expect "^DOM1: hello: $kw set to 0x5ca1ab1ec0ffee00\$" 'INFO  DOM1: restarted \(SYSTEM_RESET\)' \
        "^DOM1: hello: $kw reads $image\$"
    refuse "$kw reads 0x5ca1ab1ec0ffee00"
    if [ -z "$why" ] && [ "$(grep -a -c -E "^DOM1: hello: $kw reads " "$log")" -ne 2 ]; then
        why="DOM1 did not read its kernel word twice"
    fi
    if [ -z "$why" ] && [ "$(grep -c '^DOM1: hello from hello' "$log")" -ne 2 ]; then why="DOM1 did not run twice"; fi
    refuse 'STILL RUNNING|FATAL|PANIC|ERROR'
    done_test
}

t_store() {
    # Store connections: each client sends a line on its ring and rings the store; the store
    # reads it (its doorbell interrupt pending at its virtual GIC), answers and rings back.
    # The Boot Domain has no connection and the clients reach no other ring: all refused.
    printf '2 1 3\n' >"$work/order"
    boot store --cpus 5 --module 0x49000000=$TESTGUEST --module 0x4a000000="$work/order" tests/lcm/guests/store.dts
    expect_exit 0
    expect 'INFO  store: DOM2 serves 2 client\(s\) \(\[1, 3\]\)'
    expect_refused 32757 0x23000000 0x24000000
    # Nothing pending before the peer can have rung: the store looks before the launch
    # starts its clients, a client before it sends (the store rings only in answer).
    expect '^DOM2: store-server: doorbell from DOM1 pending at start: false$' \
        '^DOM2: store-server: doorbell from DOM3 pending at start: false$' 'INFO  launch: DOM1 unpaused'
    # DOM1 takes the doorbell as an interrupt (INTID 33), which is then no longer pending.
    expect '^DOM1: store: ring at 0x23000000, store is DOM2$' '^DOM1: store: doorbell interrupt pending before sending: false$' \
        '^DOM1: store: sent, doorbell -> 0$' \
        '^DOM1: store: reply: ack hello from alpha$' '^DOM1: store: doorbell interrupt taken: INTID 33$' \
        '^DOM1: store: doorbell interrupt pending after it was taken: false$' \
        'NOTICE: DOM1: store doorbell to DOM32757 refused: no store connection' '^DOM1: store: ring the wrong domain -> -2$' \
        'NOTICE: DOM1: store doorbell to DOM3 refused: no store connection' '^DOM1: alpha: ring DOM3 -> -2$' \
        '^DOM1: probe: read 0x24000000 refused' '^DOM1: probe: write 0x23001000 refused'
    expect_refused 1 0x24000000 0x23001000
    expect '^DOM2: store-server: from DOM1 at 0x24000000: hello from alpha$' \
        '^DOM2: store-server: doorbell from DOM1 pending: true$' \
        '^DOM2: store-server: from DOM3 at 0x24001000: hello from gamma$' \
        '^DOM2: store-server: doorbell from DOM3 pending: true$'
    expect '^DOM3: store: doorbell interrupt pending before sending: false$' \
        '^DOM3: store: reply: ack hello from gamma$' '^DOM3: store: doorbell interrupt pending: true$'
    expect 'INFO  all domains have stopped'
    refuse 'LEAKED|WENT THROUGH|FATAL|PANIC|ERROR'
    done_test
}

t_boot_domain() {
    # DOM3 gets the Control permission here: started by the Boot Domain, it finds the
    # standby Recovery Domain (DOM4) still paused by the launch and the Boot Domain running,
    # and may neither unpause the one (that is the Boot Domain's HL_UNPAUSE) nor restart
    # the other.
    sed '/domain@3 {/a\\t\t\tpermissions = <0x1>;' tests/lcm/guests/boot.dts >"$work/boot.dts"
    printf '%s\n' 'args 3 hl.name=renamed hl.ctl=q4,u4,q32757,r32757 hl.off' 'args 99 hl.name=nobody' \
        'affinity 3 0 2' 'affinity 3 0 9' \
        'prop 3 /chosen hl,note set by the Boot Domain' 'prop 2 /cpus hl,x no' 'prop 2 /chosen bootargs no' \
        'read 0 64' 'read 0x40fffff0 64' 'read 0x41000000 64' 'args 4 hl.name=x' 'affinity 4 0 1' 'prop 4 /chosen hl,x no' \
        '3 2' 'after args 3 hl.name=late' 'after affinity 2 0 1' 'after prop 3 /chosen hl,x late' >"$work/order"
    boot boot-domain --cpus 5 --module 0x49000000=$TESTGUEST --module 0x4a000000="$work/order" \
        --module 0x4b000000=$TESTGUEST "$work/boot.dts"
    # The LCM gives the config blob 512 bytes.
    [ "$(stat -c %s "$work/order")" -le 512 ] || why="the config blob is over its 512 bytes"
    expect 'INFO  plan: domain 3 .*' 'INFO  plan: +permissions control'
    expect_exit 0
    expect 'INFO  launch: 5 of 5 domain\(s\) built, all paused; .* ([0-9]+) MiB free' \
        'INFO  console input now goes to DOM32757' 'INFO  launch: DOM32757 unpaused'
    expect '^DOM32757: boot: LCM is ([0-9]+) bytes, read \1$' '^DOM32757: boot: LCM names domain@4' \
        '^DOM32757: boot: DOM4 state 0 functions 0x2$' \
        'INFO  launch: DOM3 bootargs set by the Boot Domain: "hl.name=renamed hl.ctl=q4,u4,q32757,r32757 hl.off"' \
        '^DOM32757: boot: bootargs of DOM3 -> 0$' \
        'NOTICE: DOM32757: bootargs for DOM99 refused: no such paused domain' '^DOM32757: boot: bootargs of DOM99 -> -2$' \
        'INFO  launch: DOM3 vCPU 0 pinned to CPU 2 by the Boot Domain' '^DOM32757: boot: affinity of DOM3 vCPU 0 -> CPU 2: 0$' \
        'NOTICE: DOM32757: affinity of DOM3 vCPU 0 to CPU 9 refused: no such physical CPU online' \
        'INFO  launch: DOM3 device tree: /chosen/hl,note \(23 bytes\) added by the Boot Domain' \
        '^DOM32757: boot: property /chosen/hl,note of DOM3 -> 0$' \
        'NOTICE: DOM32757: device tree property for DOM2 refused: only /chosen or a new top-level node' \
        'NOTICE: DOM32757: device tree property for DOM2 refused: a property name the hypervisor owns' \
        'INFO  launch: DOM3 unpaused' '^DOM32757: boot: unpause DOM3 -> 0$' \
        'INFO  launch: DOM2 unpaused' '^DOM32757: boot: unpause DOM2 -> 0$' \
        '^DOM32757: boot: unpause itself -> -2$' 'INFO  launch: DOM32757 \(Boot Domain\) signalled done' \
        'INFO  console input now goes to DOM1' 'INFO  launch: 2048 KiB of kernel modules kept: their pages are shared by the domains' \
        'INFO  launch: 1 boot module\(s\) freed' \
        'INFO  launch: host device tree \(LCM\) freed \([0-9]+ KiB\)' 'INFO  launch: DOM1 unpaused' \
        'INFO  DOM4: stopped \(reclaimed\)' 'INFO  launch: finalized'
    expect 'INFO  launch: DOM32757 reclaimed: memory scrubbed, 16[0-9]{3} KiB returned'
    # Ordered start, per domain: each runs only once the launch unpaused it (how fast one
    # boots against another is not the question).
    expect 'INFO  launch: DOM3 unpaused' 'INFO  DOM3: vCPU 0 starts on CPU 2' '^DOM3: hello from renamed' \
        '^DOM3: renamed: note: set by the Boot Domain$'
    expect 'INFO  launch: DOM2 unpaused' '^DOM2: hello from two'
    expect 'INFO  launch: DOM1 unpaused' '^DOM1: hello from one'
    # DOMCTL_UNPAUSE of a domain the launch holds paused, DOMCTL_RESTART of a running one:
    # INVALID, with a NOTICE.
    expect 'INFO  launch: DOM3 unpaused' '^DOM3: ctl: query DOM4: state 0, ' \
        'NOTICE: DOM3: unpause of DOM4 refused: its state is paused \(not yet launched\)' '^DOM3: ctl: unpause DOM4 -> -2$' \
        '^DOM3: ctl: query DOM32757: state 1, ' \
        'NOTICE: DOM3: restart of DOM32757 refused: only a stopped or paused domain restarts' \
        '^DOM3: ctl: restart DOM32757 -> -2$' 'INFO  launch: DOM32757 \(Boot Domain\) signalled done'
    # HL_READ into address 0, across the end of the Boot Domain's RAM (16 MiB at
    # 0x40000000) and past it: each INVALID, with a NOTICE.
    local a
    for a in 0x0 0x40fffff0 0x41000000; do
        expect "NOTICE: DOM32757: hypercall read into $a \\(\\+0x40\\) outside its RAM refused$" \
            "^DOM32757: boot: read LCM into $a \\(64 bytes\\) -> -2$"
    done
    # Extended configuration of the standby Recovery Domain: INVALID, with a NOTICE.
    expect 'NOTICE: DOM32757: bootargs for DOM4 refused' '^DOM32757: boot: bootargs of DOM4 -> -2$' \
        'NOTICE: DOM32757: affinity for DOM4 refused' '^DOM32757: boot: affinity of DOM4 vCPU 0 -> CPU 1: -2$' \
        'NOTICE: DOM32757: device tree property .*for DOM4 refused' '^DOM32757: boot: property /chosen/hl,x of DOM4 -> -2$'
    # Extended configuration of domains already started: INVALID, with a NOTICE.
    expect 'INFO  launch: DOM3 unpaused' 'INFO  launch: DOM2 unpaused' \
        'NOTICE: DOM32757: bootargs for DOM3 refused: no such paused domain' '^DOM32757: boot: bootargs of DOM3 -> -2$' \
        'NOTICE: DOM32757: affinity for DOM2 refused: no such paused domain' '^DOM32757: boot: affinity of DOM2 vCPU 0 -> CPU 1: -2$' \
        'NOTICE: DOM32757: device tree property .*for DOM3 refused: no such paused domain' \
        '^DOM32757: boot: property /chosen/hl,x of DOM3 -> -2$' 'INFO  launch: DOM32757 \(Boot Domain\) signalled done'
    # HL_SIZE and HL_READ from a domain that is not the Boot Domain: DENIED, with a NOTICE.
    expect '^DOM1: hyp: HL_VERSION -> 0x10000$' 'NOTICE: DOM1: hypercall Size\(Lcm\) refused: not permitted for this domain' \
        '^DOM1: hyp: HL_SIZE -> -3$' 'NOTICE: DOM1: hypercall Read \{ blob: Lcm, .* refused: not permitted for this domain' \
        '^DOM1: hyp: HL_READ -> -3$' '^DOM1: hyp: HL_UNPAUSE DOM2 -> -3$' '^DOM1: hyp: HL_DONE -> -3$' \
        '^DOM1: hyp: HL_FAILURE_INFO -> -3$' 'INFO  all domains have stopped'
    refuse '^DOM3: hello from late|^DOM32757: boot: read LCM into .* -> [0-9]'
    local before after
    before=$(sed -n 's/.*launch: 5 of 5 domain(s) built, all paused; .* \([0-9]*\) MiB free$/\1/p' "$log")
    after=$(sed -n 's/.*launch: DOM32757 reclaimed: .*; \([0-9]*\) MiB free$/\1/p' "$log")
    echo "free before $before MiB, after reclaim $after MiB" >>"$log"
    if [ -z "$why" ] && { [ -z "$before" ] || [ -z "$after" ] || [ "$after" -lt $((before + 16)) ]; }; then
        why="free memory ${before:-?} MiB before, ${after:-?} MiB after reclaiming the Boot Domain"
    fi
    refuse 'STILL RUNNING|^DOM4:|launch failed|FATAL|PANIC'
    done_test
}

t_boot_domain_recovery() {
    # DOM2's kernel module (at 0x4b000000) is not loaded: launch fails, the standby
    # Recovery Domain comes up with the console and the failure report.
    printf '3\n' >"$work/order"
    boot boot-recovery --cpus 5 --module 0x49000000=$TESTGUEST --module 0x4a000000="$work/order" \
        tests/lcm/guests/boot.dts
    expect_exit 0
    expect 'ERROR error: /chosen/hypervisor/domain@2: domain 2 not built: kernel: no arm64 Image magic' \
        'INFO  launch: 4 of 5 domain\(s\) built, all paused'
    expect 'INFO  launch: DOM32757 \(Boot Domain\) signalled done' 'INFO  console input now goes to DOM4' \
        'ERROR launch failed: DOM2: not built: kernel: no arm64 Image magic' \
        "INFO  launch: failure report written into DOM4's device tree" 'INFO  launch: DOM4 unpaused'
    expect '^DOM4: hello from recovery' '^DOM4: recovery: launch failed for DOM2$' '^DOM4: recovery: 1 failure\(s\) reported$'
    expect '^DOM3: hello from three' 'INFO  all domains have stopped'
    refuse 'STILL RUNNING|FATAL|PANIC|reclaimed.*DOM4|DOM4: stopped \(reclaimed\)'
    done_test
}

t_boot_domain_timeout() {
    # A Boot Domain that never signals done: after boot-timeout-ms the launch goes on
    # without it, and the standby Recovery Domain reports it.
    sed -e 's/compatible = "hypervisor,xen";/compatible = "hypervisor,xen";\n\t\tboot-timeout-ms = <1000>;/' \
        -e 's/hl.name=boot hl.boot/hl.name=boot/' tests/lcm/guests/boot.dts >"$work/timeout.dts"
    printf '3\n' >"$work/order"
    boot boot-timeout --cpus 5 --module 0x49000000=$TESTGUEST --module 0x4a000000="$work/order" \
        --module 0x4b000000=$TESTGUEST "$work/timeout.dts"
    expect_exit 0
    expect 'INFO  plan: boot domain: 32757 runs first \(time limit 1000 ms\)' 'INFO  launch: DOM32757 unpaused' \
        '^DOM32757: hello from boot' 'ERROR launch: the Boot Domain did not signal done in time: finalizing without it' \
        'INFO  DOM32757: stopped \(reclaimed\)' \
        'ERROR launch failed: DOM32757: the Boot Domain did not signal done in time' 'INFO  launch: DOM4 unpaused'
    expect '^DOM4: recovery: launch failed for DOM32757$' 'INFO  all domains have stopped'
    expect 'INFO  launch: DOM32757 reclaimed: memory scrubbed'
    refuse 'FATAL|PANIC'
    done_test
}

# "control,hardware" / "recovery,console" -> the bit values of the binding.
role_bits() {
    local v=0 n
    for n in ${1//,/ }; do
        case $n in
            control|boot) v=$((v | 1)) ;;
            hardware|recovery) v=$((v | 2)) ;;
            console) v=$((v | 4)) ;;
            xenstore) v=$((v | 0x40000000)) ;;
            legacy-dom0) v=$((v | 0x80000000)) ;;
        esac
    done
    printf '%#x' "$v"
}

t_examples() {
    # Every example LCM boots with the test guest as each kernel (and as the Boot Domain,
    # which reads its empty config blob and signals done): each domain that runs reports
    # the permissions and functions its device tree gives, which must be the LCM's.
    printf '\n' >"$work/empty"
    bash scripts/hlcheck --help >/dev/null 2>&1 || true
    local f name want got dtb
    dtb=$(virt_dtb)
    local stops
    for f in dts/*.dts; do
        name=example-$(basename "$f" .dts)
        case $name in example-demo | example-dynamic-demo) continue ;; esac
        bash scripts/merge-lcm.sh "$dtb" "$f" "$work/ex.dtb"
        # The test guests idle once done: the run stops when every domain that runs has
        # shown its last line (a Boot Domain: "boot: done"; a standby Recovery Domain
        # does not run).
        stops=(--stop-when 'INFO  launch: finalized')
        while read -r id p fn; do
            case "$p $fn" in
                "none recovery") ;;
                *boot*) stops+=(--stop-when "^DOM$id: boot: done\$") ;;
                *) stops+=(--stop-when "^DOM$id: [^ ]+: tests done\$") ;;
            esac
        done < <(bash scripts/hlcheck --roles "$work/ex.dtb")
        TIMEOUT=10 boot "$name" --cpus 8 --module 0x49000000=$TESTGUEST --module 0x4c000000=$TESTGUEST \
            --module 0x4c100000="$work/empty" "${stops[@]}" "$f"
        expect_exit 0
        expect 'INFO  launch: ([0-9]+) of \1 domain\(s\) built' 'INFO  launch: finalized'
        # Expected: every domain but a standby Recovery Domain (functions = recovery only,
        # no permissions), as "permissions functions" in hex, sorted.
        want=$(bash scripts/hlcheck --roles "$work/ex.dtb" | while read -r id p fn; do
            [ "$p $fn" = "none recovery" ] && continue
            [ "$p" = none ] && p=""; [ "$fn" = none ] && fn=""
            echo "$(role_bits "$p") $(role_bits "$fn")"
        done | sort | paste -sd' ')
        got=$(sed -n 's/^DOM[0-9]*: .*: permissions \(0x[0-9a-f]*\) functions \(0x[0-9a-f]*\)$/\1 \2/p' "$log" |
            sed 's/^0x0 /0 /; s/ 0x0$/ 0/' | sort | paste -sd' ')
        want=$(echo "$want" | sed 's/\b0x0\b/0/g')
        if [ -z "$why" ] && { [ -z "$got" ] || [ "$want" != "$got" ]; }; then
            why="roles reported by the domains '$got', expected '$want'"
        fi
        refuse 'FATAL|PANIC|ERROR|STILL RUNNING'
        done_test
    done
}

t_fatal_no_boot_cpu() {
    local dtb
    dtb=$(virt_dtb)
    fdtput -r "$dtb" /cpus/cpu@0
    boot fatal-no-boot-cpu --dtb "$dtb"
    expect_exit 0
    expect '^\(HL\) FATAL: boot CPU \(MPIDR 0x80000000\) is not in /cpus of the host device tree' \
        '^\(HL\) stopping: fatal error; powering off'
    refuse 'CPUs online'
    done_test
}

t_image_header() {
    # The raw Image carries the arm64 header loaders rely on, and its image_size covers
    # BSS and stacks (up to the ELF's __image_end), not just the file.
    name=image-header why="" log=$logs/$name.log
    local img=target/aarch64-unknown-hyperlaunch/release/Image elf=target/aarch64-unknown-hyperlaunch/release/hyperlaunch
    local magic text size end
    magic=$(od -An -c -j 56 -N 4 "$img" | tr -d ' ')
    text=$(od -An -t u8 -j 8 -N 8 "$img" | tr -d ' ')
    size=$(od -An -t u8 -j 16 -N 8 "$img" | tr -d ' ')
    end=$((16#$(aarch64-linux-gnu-nm "$elf" | awk '$3 == "__image_end" { print $1 }')))
    echo "magic=$magic text_offset=$text image_size=$size file=$(stat -c %s "$img") __image_end=$end" >"$log"
    [ "$magic" = ARMd ] || why="magic is '$magic', expected ARMd"
    [ -n "$why" ] || [ "$text" -eq $((0x200000)) ] || why="text_offset $text, expected 0x200000"
    [ -n "$why" ] || [ "$size" -eq "$end" ] || why="image_size $size, expected __image_end $end"
    [ -n "$why" ] || [ "$size" -ge "$(stat -c %s "$img")" ] || why="image_size $size smaller than the file"
    done_test
}

. "$root/tests/qemu/measured.sh"
. "$root/tests/qemu/hostile.sh"
. "$root/tests/qemu/dynamic.sh"
. "$root/tests/qemu/links.sh"
. "$root/tests/qemu/timer.sh"

tests=(t_image_header t_virt_gicv3 t_virt_gicv2_a53 t_virt_max_2cpu t_virt_uboot t_zcu102
    t_reserved_memory
    t_debug_level t_fatal_no_boot_cpu t_fatal_bad_reserved_memory
    t_fatal_el2_abort t_fatal_panic t_lcm_hyperlaunch t_lcm_dom0less t_lcm_classic t_lcm_invalid
    t_lcm_module_over_image t_domains t_gzip_affinity_corrupt t_static_mem t_passthrough t_passthrough_uart t_console t_console_skip t_zcu102_console t_control t_reset t_store t_boot_domain t_boot_domain_recovery
    t_boot_domain_timeout t_examples t_linux_lcm t_linux_gicv2 t_linux_zcu102 t_linux_rpi4 t_rpi4_hardware t_rpi4_uboot t_rpi4_pl011 t_rpi4_console t_linux_one_cpu t_linux_dom0less t_linux_recovery t_linux_hardware t_linux_classic
    t_measured_launch t_measured_launch_no_tpm t_measured_launch_required t_measured_launch_tpm_fails
    t_vtimer t_vtimer_firing t_psci_races t_hostile_pmu_debug t_hostile_passthrough_claims t_cpu_offline_placement t_hostile_suite
    t_hostile_boot_domain_flood t_dynamic t_link t_link_hostile t_shm t_console_link)
for t in "${tests[@]}"; do
    if [ -z "$only" ] || [[ "$t" == *"$only"* ]]; then
        "$t"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
