# Hostile-guest smoke tests, sourced by smoke.sh (its helpers: boot, expect, refuse, ...):
# domains attacking what isolation keeps from them, each test naming what they got.

t_hostile_pmu_debug() {
    # Two domains time-share CPU 0. The PMU and the debug registers trap: every read gives
    # 0 and every write is ignored, the writer's own and across the shared CPU; nothing is
    # injected (Linux touches some of them at boot).
    local zeros='PMCR 0x0 PMCNTENSET 0x0 PMCCNTR 0x0 DBGBVR0 0x0 DBGBCR0 0x0 MDSCR 0x0 OSLSR 0x0'
    boot hostile-pmu-debug --module 0x49000000=$TESTGUEST tests/lcm/guests/hostile.dts
    expect_exit 0
    expect "^DOM1: writer: PMU/debug read $zeros\$" "^DOM1: writer: PMU/debug after writing read $zeros\$"
    expect "^DOM2: reader: PMU/debug read $zeros\$" "^DOM2: reader: PMU/debug after writing read $zeros\$"
    expect 'INFO  all domains have stopped'
    refuse 'NOTICE|FATAL|PANIC|ERROR'
    done_test
}

t_hostile_passthrough_claims() {
    # Partial device trees that claim what no domain may have: the hypervisor's own RAM,
    # the console UART's interrupt by xen,path, a device another domain has, a device with
    # no word about its DMA. Each such domain is not built, the error naming the rule; the
    # domain beside it runs.
    local bad why_re
    for bad in ram console twice no-iommu; do
        case $bad in
            ram)
                sed 's|xen,reg = <0x0 0x9030000 0x0 0x1000 0x0 0x9030000>;|xen,reg = <0x0 0x40200000 0x0 0x1000 0x0 0x9030000>;|' \
                    tests/lcm/partial/gpio.dts >"$work/bad.dts"
                why_re='xen,reg \[0x40200000, 0x40201000\) overlaps RAM at \[0x40000000, 0x80000000\)' ;;
            console)
                sed 's|xen,path = "/pl061@9030000";|xen,path = "/pl011@9000000";|' tests/lcm/partial/gpio.dts >"$work/bad.dts"
                why_re='xen,path /pl011@9000000 is the hypervisor.s console UART' ;;
            twice)
                # DOM1 is given the GPIO controller by a partial device tree of its own too
                # (below): the second claim, DOM2's, is refused.
                cp tests/lcm/partial/gpio.dts "$work/bad.dts"
                why_re='xen,reg \[0x9030000, 0x9031000\) overlaps \[0x9030000, 0x9031000\), given to DOM1' ;;
            no-iommu)
                sed '/xen,force-assign-without-iommu;/d' tests/lcm/partial/gpio.dts >"$work/bad.dts"
                why_re='the hypervisor programs no IOMMU, so a device.s DMA is not confined: give it only with xen,force-assign-without-iommu' ;;
        esac
        dtc -q -I dts -O dtb -o "$work/bad.dtb" "$work/bad.dts"
        dtc -q -I dts -O dtb -o "$work/gpio.dtb" tests/lcm/partial/gpio.dts
        # DOM1 (no Hardware permission here) runs beside it; with "twice" it owns the GPIO.
        sed -e 's|permissions = <0x2>;.*$||' -e 's|hl.name=hw hl.probe=0x9030000,0x40200000 hl.off|hl.name=neighbour hl.off|' \
            tests/lcm/guests/passthrough.dts >"$work/claims.dts"
        if [ "$bad" = twice ]; then
            sed -i 's|\(bootargs = "hl.name=neighbour hl.off";\)|\1\n\t\t\t};\n\t\t\tmodule@4d000000 {\n\t\t\t\tcompatible = "module,device-tree";\n\t\t\t\tmodule-addr = <0x4d000000 0x1000>;|' "$work/claims.dts"
        fi
        boot "hostile-claims-$bad" --module 0x49000000=$TESTGUEST --module 0x4c000000="$work/bad.dtb" \
            --module 0x4d000000="$work/gpio.dtb" "$work/claims.dts"
        expect_exit 0
        expect "ERROR error: /chosen/hypervisor/domain@2: domain 2 not built: partial device tree: /passthrough/pl061@9030000: $why_re\$" \
            '^DOM1: hello from neighbour' 'INFO  all domains have stopped'
        refuse '^DOM2:|FATAL|PANIC'
        done_test
    done
}

t_cpu_offline_placement() {
    # CPU 1 never starts (its enable-method is a spin table QEMU virt does not implement):
    # the three domains' vCPUs go to CPUs 0, 2 and 3, none to the CPU that is not online.
    local dtb
    dtb=$(virt_dtb)
    fdtput -t s "$dtb" /cpus/cpu@1 enable-method spin-table
    fdtput -t x "$dtb" /cpus/cpu@1 cpu-release-addr 0 0x7fff0000
    bash scripts/merge-lcm.sh "$dtb" tests/lcm/guests/demo.dts "$work/offline.dtb"
    boot cpu-offline-placement --module 0x49000000=$TESTGUEST --dtb "$work/offline.dtb"
    expect_exit 0
    expect 'WARN  CPU 1 \(MPIDR 0x1, spin-table\) did not start' 'INFO  3 of 4 CPUs online'
    expect 'INFO  DOM1: built: 1 vCPU\(s\) on CPU\(s\) \[0\]'
    expect 'INFO  DOM2: built: 2 vCPU\(s\) on CPU\(s\) \[2, 3\]'
    expect 'INFO  DOM3: built: 1 vCPU\(s\) on CPU\(s\) \[0\]' 'INFO  all domains have stopped'
    refuse 'CPU\(s\) \[[0-9, ]*1[],]|FATAL|PANIC|ERROR'
    done_test
}

t_hostile_suite() {
    # A hostile domain attacks every guest interface in rounds (HOSTILE_SECONDS, default
    # 30; a long soak with e.g. HOSTILE_SECONDS=3600) while a Linux victim on one of its
    # CPUs beats once a second: the victim keeps beating (no gap over 5 s, scaled), the
    # attacker gets refusals and faults, never an effect, and the hypervisor stays up.
    local secs=${HOSTILE_SECONDS:-30}
    sed "s/hl.hostile=30/hl.hostile=$secs/" tests/lcm/guests/hostile-linux.dts >"$work/hostile.dts"
    TIMEOUT=$((secs + 150)) boot hostile-suite --module 0x49000000=$TESTGUEST "${LINUX[@]}" "$work/hostile.dts"
    expect_exit 0
    expect '^DOM2: attacker: hostile: start$' '^DOM2: attacker: hostile: round 1: calls by HVC: [0-9]+ made: '
    expect '^DOM2: attacker: hostile: round 1: pair and writeback accesses: 12 faulted, 0 WENT THROUGH$' \
        '^DOM2: attacker: hostile: round 1: SIMD and exclusive accesses: (18 refused, 0|15 refused, 3) store-exclusive\(s\) failed without an access, 0 WENT THROUGH, 0 OTHER$' \
        '^DOM2: attacker: hostile: round 1: 14 of 14 accesses outside its memory refused$' \
        '^DOM2: attacker: hostile: round 1: 20000 SGIs sent; store doorbells 20000 made: 0 succeeded'
    expect '^DOM1: HL-HEARTBEAT victim 1 at ' '^DOM1: HL-HEARTBEAT victim 8 at ' 'INFO  DOM1: stopped \(SYSTEM_OFF\)'
    expect '^DOM2: attacker: hostile: done after [0-9]+ round\(s\)$' 'INFO  all domains have stopped'
    # The attack overlapped the heartbeat: an attacker line between the first and last beat.
    if [ -z "$why" ] && ! sed -n '/HL-HEARTBEAT victim 1 /,/HL-HEARTBEAT victim 8 /p' "$log" | has_line 'attacker: hostile: round'; then
        why="no attack round ran while the victim was beating"
    fi
    # No gap between beats over 5 s (times SMOKE_SCALE), by the victim's own uptime.
    if [ -z "$why" ]; then
        local gap
        gap=$(sed -n 's/^DOM1: HL-HEARTBEAT victim [0-9]* at \([0-9.]*\) s$/\1/p' "$log" |
            awk -v s="$SMOKE_SCALE" 'NR > 1 && $1 - p > m { m = $1 - p } { p = $1 } END { print (m > 5 * s) ? "gap " m " s" : "" }')
        [ -z "$gap" ] || why="the victim's heartbeat stalled: $gap"
    fi
    # What the attacks got, for the record.
    grep -a -E '^DOM2: attacker: hostile: round 1: ' "$log" | sed 's/^/  /' >"$logs/hostile-suite.summary"
    refuse 'FATAL|PANIC|ERROR|[1-9][0-9]* WENT THROUGH|LEAKED|STILL RUNNING'
    done_test
}

t_psci_races() {
    # CPU_ON against a vCPU turning itself off: every call answers SUCCESS, ALREADY_ON or
    # ON_PENDING, and the vCPU starts once per SUCCESS. Two vCPUs resetting their domain at
    # once: one restart each time (five, the allowance), then the domain is stopped as a
    # reset loop. The neighbour runs on; the hypervisor stays up.
    boot psci-races --module 0x49000000=$TESTGUEST tests/lcm/guests/races.dts
    expect_exit 0
    expect '^DOM1: racer: psci race: 300 CPU_ON against CPU_OFF: [0-9]+ succeeded, [0-9]+ already on, [0-9]+ pending, 0 OTHER; vCPU 1 started [0-9]+ time\(s\)$'
    expect '^DOM2: resetter: reset race: CPU_ON -> 0; both vCPUs reset the domain$' 'INFO  DOM2: restarted \(SYSTEM_RESET\)'
    expect 'INFO  DOM2: stopped \(SYSTEM_RESET loop: more than 5 restarts in 10 s\)'
    expect '^DOM3: neighbour: still running after 1500 ms$' 'INFO  all domains have stopped'
    if [ -z "$why" ]; then
        local line ok starts restarts
        line=$(grep -a -E '^DOM1: racer: psci race: ' "$log")
        ok=$(sed -E 's/.*: ([0-9]+) succeeded.*/\1/' <<<"$line")
        starts=$(sed -E 's/.*started ([0-9]+) time.*/\1/' <<<"$line")
        [ "$ok" = "$starts" ] && [ "$ok" -gt 0 ] || why="vCPU 1 started $starts time(s) for $ok successful CPU_ON(s)"
        restarts=$(grep -a -c 'INFO  DOM2: restarted (SYSTEM_RESET)' "$log")
        [ -n "$why" ] || [ "$restarts" -eq 5 ] || why="DOM2 restarted $restarts time(s), expected 5 (one per race)"
    fi
    refuse 'FATAL|PANIC|ERROR|[1-9][0-9]* OTHER|STILL RUNNING|RETURNED'
    done_test
}

t_hostile_boot_domain_flood() {
    # A Boot Domain adding 80 distinct properties to one paused domain: the first 64 are
    # taken, every later one refused by name (INVALID), and the launch goes on.
    sed 's|module-addr = <0x4a000000 0x200>;|module-addr = <0x4a000000 0x1000>;|' tests/lcm/guests/boot.dts >"$work/flood.dts"
    local i
    {
        for i in $(seq 1 80); do echo "prop 3 /chosen hl,p$i v"; done
        echo '3 2'
    } >"$work/flood-order"
    boot hostile-boot-domain-flood --cpus 5 --module 0x49000000=$TESTGUEST --module 0x4a000000="$work/flood-order" \
        --module 0x4b000000=$TESTGUEST "$work/flood.dts"
    expect_exit 0
    expect '^DOM32757: boot: property /chosen/hl,p64 of DOM3 -> 0$' '^DOM32757: boot: property /chosen/hl,p65 of DOM3 -> -2$' \
        '^DOM32757: boot: property /chosen/hl,p80 of DOM3 -> -2$' 'INFO  launch: DOM3 unpaused' 'INFO  all domains have stopped'
    expect 'NOTICE: DOM32757: device tree property /chosen/hl,p65 \(2 bytes\) for DOM3 refused: over the quota of 64 added properties and 64 KiB of them per domain'
    if [ -z "$why" ]; then
        local ok bad
        ok=$(grep -c -E '^DOM32757: boot: property /chosen/hl,p[0-9]+ of DOM3 -> 0$' "$log")
        bad=$(grep -c -E '^DOM32757: boot: property /chosen/hl,p[0-9]+ of DOM3 -> -2$' "$log")
        [ "$ok:$bad" = "64:16" ] || why="$ok properties taken and $bad refused, expected 64 and 16"
    fi
    refuse 'FATAL|PANIC'
    done_test
}
