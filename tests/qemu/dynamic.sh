# Dynamic mode smoke tests, sourced by smoke.sh (its helpers: boot, expect, refuse, ...):
# in each of the design's three Dynamic configurations, a Linux Control domain creates a
# Linux domain with hlctl, destroys it, and creates and destroys a small one 20 times.

# dynamic_dtb EXAMPLE: the example LCM on QEMU virt with 2 GiB, its Control domain given
# Debian's kernel (0x50000000), the control ramdisk (0x53000000), 256 MiB and the test's
# command line; every other domain boots the test guest (0x49000000) as in t_examples.
dynamic_dtb() {
    local dtb=$work/dyn.dtb n ctl="" p m
    qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 4 -m 2G \
        -nodefaults -display none -net none -machine dumpdtb="$work/virt2g.dtb" >/dev/null 2>&1
    bash scripts/merge-lcm.sh "$work/virt2g.dtb" "$1" "$dtb"
    for n in $(fdtget -l "$dtb" /chosen/hypervisor); do
        p=$(fdtget "$dtb" "/chosen/hypervisor/$n" permissions 2>/dev/null || echo 0)
        [ "$p" = 1 ] && ctl=/chosen/hypervisor/$n
    done
    [ -n "$ctl" ] || { echo "dynamic_dtb: no Control domain in $1" >&2; return 1; }
    fdtput -t x "$dtb" "$ctl" memory 0 0x40000
    for m in $(fdtget -l "$dtb" "$ctl"); do
        case $(fdtget "$dtb" "$ctl/$m" compatible) in
            module,kernel)
                fdtput -t x "$dtb" "$ctl/$m" module-addr 0x50000000 "$(printf '%#x' "$(stat -c %s target/guests/linux.img)")"
                fdtput -t s "$dtb" "$ctl/$m" bootargs "console=ttyAMA0 nokaslr quiet hl.name=control hl.dynamic-test"
                ;;
            module,ramdisk)
                fdtput -t x "$dtb" "$ctl/$m" module-addr 0x53000000 "$(printf '%#x' "$(stat -c %s "$CONTROL_RAMDISK")")"
                ;;
        esac
    done
    echo "$dtb"
}

t_dynamic() {
    CONTROL_RAMDISK=$(bash scripts/make-control-ramdisk.sh 2>/dev/null | tail -n 1)
    printf '\n' >"$work/empty"
    local f name dtb c id
    for f in dts/dynamic-*.dts; do
        name=$(basename "$f" .dts)
        dtb=$(dynamic_dtb "$f")
        TIMEOUT=420 boot "$name" --mem 2G --dtb "$dtb" --module 0x49000000=$TESTGUEST \
            --module 0x4c000000=$TESTGUEST --module 0x4c100000="$work/empty" \
            --module 0x50000000=target/guests/linux.img --module 0x53000000="$CONTROL_RAMDISK" \
            --stop-when '^DOM[0-9]+: HL-DYN done$'
        expect_exit 0
        expect '^DOM[0-9]+: HL-LINUX-UP control: [0-9]+ CPU'
        c=$(sed -n 's/^DOM\([0-9]*\): HL-LINUX-UP control:.*/\1/p' "$log" | head -n 1)
        expect "^DOM$c: HL-DYN create linux: rc 0: DOM[0-9]+ created\$"
        id=$(sed -n "s/^DOM$c: HL-DYN create linux: rc 0: DOM\([0-9]*\) created\$/\1/p" "$log")
        expect "INFO  DOM$id: 1 vCPU\(s\), 128 MiB, permissions none, functions none, virtual UART created by DOM$c"
        expect "^DOM$c: HL-DYN list: +$id +running +1 +128 MiB +- +-\$"
        expect "^DOM$id: HL-LINUX-UP dyn: 1 CPU\(s\)"
        expect "^DOM$id: HL-DENY pause: rc 1: hlctl: denied: this domain does not hold the Control permission"
        expect "^DOM$id: HL-DENY create: rc 1: hlctl: denied: this domain does not hold the Control permission: no control window in this domain's device tree\$"
        expect "^DOM$c: HL-DYN linux domain $id: stopped\$" "^DOM$c: HL-DYN destroy: rc 0: DOM$id destroyed\$"
        expect "^DOM$c: HL-DYN free before ([0-9]+) KiB, after destroy \\1 KiB: equal\$"
        expect "^DOM$c: HL-DYN loop: 20 creates and destroys; free [0-9]+ KiB: equal\$"
        expect "^DOM$c: HL-DYN invalid: rc 1: hlctl: refused: missing-property: /bad: missing required property 'memory'\$"
        expect "^DOM$c: HL-DYN done\$"
        refuse 'FATAL|PANIC|ERROR|DIFFERENT'
        done_test
    done
}
