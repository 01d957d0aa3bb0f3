# Dynamic mode smoke tests, sourced by smoke.sh (its helpers: boot, expect, refuse, ...):
# in each of the design's three Dynamic configurations (and the demo's), a Linux Control
# domain creates a Linux domain with hlctl, destroys it, creates and destroys a small one 20
# times, a store client, domains with static memory, a passthrough device and the Hardware
# permission.

# dynamic_dtb EXAMPLE: the example LCM on QEMU virt with 2 GiB, its Control domain given
# Debian's kernel (0x50000000), the control ramdisk (0x53000000), 256 MiB and the test's
# command line; every other domain boots the test guest (0x49000000) as in t_examples.
dynamic_dtb() {
    local dtb=$work/dyn.dtb n ctl="" p m f
    qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 4 -m 2G \
        -nodefaults -display none -net none -machine dumpdtb="$work/virt2g.dtb" >/dev/null 2>&1
    bash scripts/merge-lcm.sh "$work/virt2g.dtb" "$1" "$dtb"
    for n in $(fdtget -l "$dtb" /chosen/hypervisor); do
        p=$(fdtget "$dtb" "/chosen/hypervisor/$n" permissions 2>/dev/null || echo 0)
        [ "$p" = 1 ] && ctl=/chosen/hypervisor/$n
    done
    # A store domain other than the Control domain serves its clients for good.
    for n in $(fdtget -l "$dtb" /chosen/hypervisor); do
        f=$(fdtget "$dtb" "/chosen/hypervisor/$n" functions 2>/dev/null || echo 0)
        if [ $((f & 0x40000000)) != 0 ] && [ "/chosen/hypervisor/$n" != "$ctl" ]; then
            for m in $(fdtget -l "$dtb" "/chosen/hypervisor/$n"); do
                [ "$(fdtget "$dtb" "/chosen/hypervisor/$n/$m" compatible)" = module,kernel ] || continue
                fdtput -t s "$dtb" "/chosen/hypervisor/$n/$m" bootargs \
                    "$(fdtget "$dtb" "/chosen/hypervisor/$n/$m" bootargs) hl.store-serve"
            done
        fi
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
        if [ "$name" = dynamic-full-disaggregation ]; then
            # The store (a test guest) serves a client created at run time, twice in one
            # slot: the slot is given back at destroy and its page is zero for the next.
            expect 'INFO  store: DOM[0-9]+ serves [0-9]+ client\(s\)'
            st=$(sed -n 's/.*INFO  store: DOM\([0-9]*\) serves.*/\1/p' "$log" | head -n 1)
            expect "^DOM$st: store-server: serving 30 slot\(s\)\$"
            local r sid k k1=""
            for r in 1 2; do
                expect "^DOM$c: HL-DYN store client $r: rc 0: DOM[0-9]+ created\$"
                sid=$(sed -n "s/^DOM$c: HL-DYN store client $r: rc 0: DOM\([0-9]*\) created\$/\1/p" "$log")
                # Each side's lines in order (the two sides' lines interleave as they run).
                expect "^DOM$sid: store: ring at 0x23000000, store is DOM$st\$" \
                    "^DOM$sid: store: reply: ack hello from dynstore\$"
                expect "^DOM$st: store-server: from DOM$sid at 0x24[0-9a-f]{3}000: hello from dynstore\$" \
                    "^DOM$st: store-server: replied to DOM$sid, doorbell -> 0\$"
                expect "^DOM$c: HL-DYN store client $r: destroy: rc 0: DOM$sid destroyed\$"
                k=$(sed -n "s/^DOM$st: store-server: slot \([0-9]*\): DOM$sid\$/\1/p" "$log" | tail -n 1)
                [ -n "$k$why" ] || why="store client $r (DOM$sid): the store never saw it join"
                expect "^DOM$st: store-server: slot $k: free\$"
                if [ "$r" = 1 ]; then k1=$k; fi
            done
            [ "$k" = "$k1" ] || [ -n "$why" ] || why="the second store client took slot $k, not the freed slot $k1"
        else
            # The Control domain is the store, or there is none: no client to create.
            refuse "^DOM$c: HL-DYN store client"
        fi
        # Static memory from free memory, once at a time.
        local stid pid hid
        expect "^DOM$c: HL-DYN static: rc 0: DOM[0-9]+ created \(paused\)\$"
        stid=$(sed -n "s/^DOM$c: HL-DYN static: rc 0: DOM\([0-9]*\) created (paused)\$/\1/p" "$log")
        expect "INFO  DOM$stid: built: 1 vCPU\(s\) .*16 MiB at IPA 0x40000000 \(1 chunk\(s\), static memory\)" \
            "^DOM$c: HL-DYN static again: rc 1: hlctl: refused: static-mem-overlap: /st: static memory \[0xb8000000, 0xb9000000\) is not free memory" \
            "^DOM$c: HL-DYN static: destroy: rc 0: DOM$stid destroyed\$"
        expect "^DOM$stid: st: tests done\$"
        # A device by a partial device tree and a hardware domain: given where the launch
        # has no hardware domain, refused by name where its hardware domain holds them.
        if [ "$name" = dynamic-demo ]; then
            expect "^DOM$c: HL-DYN passthrough: rc 0: DOM[0-9]+ created\$"
            pid=$(sed -n "s/^DOM$c: HL-DYN passthrough: rc 0: DOM\([0-9]*\) created\$/\1/p" "$log")
            expect "^DOM$pid: pt: peek 0x9030fe0 = 0x61\$" "^DOM$pid: pt: peek 0x9030fe4 = 0x10\$"
            expect "^DOM$c: HL-DYN passthrough: destroy: rc 0: DOM$pid destroyed\$" \
                "^DOM$c: HL-DYN hardware: rc 0: DOM[0-9]+ created\$"
            hid=$(sed -n "s/^DOM$c: HL-DYN hardware: rc 0: DOM\([0-9]*\) created\$/\1/p" "$log")
            expect "INFO  DOM$hid: hardware: [0-9]+ host device\(s\) given" \
                "INFO  DOM$hid: built: .*direct-mapped"
            expect "^DOM$hid: hw: peek 0x9030fe0 = 0x61\$"
            expect "^DOM$c: HL-DYN hardware: destroy: rc 0: DOM$hid destroyed\$"
        else
            expect "^DOM$c: HL-DYN passthrough: rc 1: hlctl: refused: passthrough: /pt: /passthrough/pl061@9030000: xen,reg \[0x9030000, 0x9031000\) overlaps \[0x9030000, 0x9031000\), given to DOM[0-9]+\$" \
                "^DOM$c: HL-DYN hardware: rc 1: hlctl: refused: duplicate-hardware: /hw: a second domain with the hardware permission \(the first is DOM[0-9]+\)\$"
        fi
        expect "^DOM$c: HL-DYN devices and static memory: free [0-9]+ KiB: equal\$"
        expect "^DOM$c: HL-DYN invalid: rc 1: hlctl: refused: missing-property: /bad: missing required property 'memory'\$"
        expect "^DOM$c: HL-DYN done\$"
        refuse 'FATAL|PANIC|ERROR|DIFFERENT'
        done_test
    done
}
