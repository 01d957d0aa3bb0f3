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
