#!/usr/bin/env bash
# Checks every example LCM in dts/ against the roles of the Hyperlaunch design's table and
# every file in dts/invalid/ against the error named on its first line, through
# scripts/hlcheck on QEMU virt's host DTB (1 GiB, 4 CPUs) with the overlay merged.
# Prints PASS/FAIL per file and, last, "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
work=$(mktemp -d "${TMPDIR:-/tmp}/hyperlaunch-dts.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 4 -m 1G \
    -nodefaults -display none -net none -machine dumpdtb="$work/base.dtb" >/dev/null 2>&1
bash scripts/hlcheck --help >/dev/null 2>&1 || true   # build the checker once

merge() {
    bash scripts/merge-lcm.sh "$work/base.dtb" "$1" "$2"
}

# Expected `domid permissions functions` per domain, and Static/Dynamic, from the design's table.
ALL="recovery,console,xenstore"
DOM0="0 control,hardware $ALL,legacy-dom0"
BOOT="32757 none boot"
declare -A roles mode
roles[classic-dom0]="$DOM0";                                      mode[classic-dom0]=Dynamic
roles[classic-extended-launch-dom0]="$BOOT|$DOM0";                mode[classic-extended-launch-dom0]=Dynamic
roles[classic-basic-cloud]="$DOM0|1 none none|2 none none";       mode[classic-basic-cloud]=Dynamic
roles[classic-cloud]="$BOOT|$DOM0|1 none none|2 none none";       mode[classic-cloud]=Dynamic
roles[static-basic]="1 hardware $ALL|2 none none|3 none none";    mode[static-basic]=Static
roles[static-standard]="$BOOT|1 hardware $ALL|2 none none|3 none none"; mode[static-standard]=Static
roles[static-disaggregated]="$BOOT|1 none xenstore|2 hardware none|3 none recovery|4 none console|5 none none"
mode[static-disaggregated]=Static
roles[dynamic-hardware-domain]="1 control $ALL|2 hardware none";  mode[dynamic-hardware-domain]=Dynamic
roles[dynamic-flexible-disaggregation]="$BOOT|1 control $ALL|2 hardware none|3 none none"
mode[dynamic-flexible-disaggregation]=Dynamic
roles[dynamic-full-disaggregation]="$BOOT|1 none xenstore|2 control none|3 hardware none|4 none recovery|5 none console|6 none none"
mode[dynamic-full-disaggregation]=Dynamic
roles[dom0less]="1 none none|2 none none";                        mode[dom0less]=Static
roles[classic]="$DOM0";                                           mode[classic]=Dynamic
roles[demo]="1 none console|2 none none|3 none none";            mode[demo]=Static
roles[dynamic-demo]="1 control console";                          mode[dynamic-demo]=Dynamic

for f in dts/*.dts; do
    name=$(basename "$f" .dts)
    if [ -z "${roles[$name]:-}" ]; then fail "$f" "no expected roles for this example"; continue; fi
    if ! merge "$f" "$work/$name.dtb" 2>"$work/err"; then fail "$f" "does not compile: $(head -1 "$work/err")"; continue; fi
    out=$(bash scripts/hlcheck --roles "$work/$name.dtb" 2>&1 | paste -sd'|')
    plan=$(bash scripts/hlcheck "$work/$name.dtb" 2>&1)
    if [ "$out" != "${roles[$name]}" ]; then
        fail "$f" "roles '$out', expected '${roles[$name]}'"
    elif ! grep -q "^boot path: .*; ${mode[$name]} " <<<"$plan"; then
        fail "$f" "plan is not ${mode[$name]}: $(head -1 <<<"$plan")"
    else
        pass "$f"
    fi
done

for f in dts/invalid/*.dts; do
    want=$(sed -n '1s|^// error: \([a-z0-9-]*\): \(.*\)$|\1 \2|p' "$f")
    rule=${want%% *} node=${want#* }
    if [ -z "$want" ]; then fail "$f" "first line does not name the expected error"; continue; fi
    if ! merge "$f" "$work/bad.dtb" 2>"$work/err"; then fail "$f" "does not compile: $(head -1 "$work/err")"; continue; fi
    out=$(bash scripts/hlcheck "$work/bad.dtb" 2>&1)
    status=$?
    if [ "$status" -ne 1 ]; then
        fail "$f" "hlcheck exited $status, expected 1: $out"
    elif first=$(grep -m1 '^error: ' <<<"$out" || true) && [[ "$first" != "error: $node: "*" [$rule]" ]]; then
        # The first error line itself must be the expected one, node and rule (compared as
        # literal text), not merely some line of the output.
        fail "$f" "expected first error 'error: $node: ... [$rule]', got: ${first:-$out}"
    else
        pass "$f"
    fi
done

# A truncated host DTB is an error too, not a crash; and usage errors exit 2.
head -c 100 "$work/base.dtb" > "$work/trunc.dtb"
out=$(bash scripts/hlcheck "$work/trunc.dtb" 2>&1); status=$?
if [ "$status" -eq 1 ] && grep -q '^error: /: device tree is truncated \[corrupt-dtb\]$' <<<"$out"; then
    pass "truncated-dtb"
else
    fail "truncated-dtb" "exit $status: $out"
fi
bash scripts/hlcheck >/dev/null 2>&1; status=$?
if [ "$status" -eq 2 ]; then pass "usage-exit-2"; else fail "usage-exit-2" "exit $status"; fi
bash scripts/hlcheck "$work/base.dtb" >"$work/none.out" 2>&1; status=$?
if [ "$status" -eq 1 ] && grep -q '^error: /chosen: nothing to launch' "$work/none.out"; then
    pass "nothing-to-launch"
else
    fail "nothing-to-launch" "exit $status: $(cat "$work/none.out")"
fi

# hlcheck --measure names a module the configuration needs but was not given, and one that
# does not fit the range the configuration declares.
merge tests/lcm/guests/measured.dts "$work/measured.dtb"
head -c 4096 /dev/zero >"$work/small.bin"
out=$(bash scripts/hlcheck --measure "$work/measured.dtb" --module 0x49000000="$work/small.bin" 2>&1); status=$?
if [ "$status" -eq 1 ] && grep -q '^error: hyperlaunch DOM1 kernel: no --module 0x50000000=FILE given for it$' <<<"$out"; then
    pass "measure-missing-module"
else
    fail "measure-missing-module" "exit $status: $out"
fi
head -c $((0x100001)) /dev/zero >"$work/big.bin"
out=$(bash scripts/hlcheck --measure "$work/measured.dtb" --module 0x50000000="$work/small.bin" \
    --module 0x53000000="$work/small.bin" --module 0x49000000="$work/big.bin" 2>&1); status=$?
if [ "$status" -eq 1 ] && grep -q '^error: hyperlaunch DOM2 kernel: .*/big.bin is 1048577 bytes, larger than the 0x100000 bytes the configuration declares at 0x49000000$' <<<"$out"; then
    pass "measure-module-too-large"
else
    fail "measure-module-too-large" "exit $status: $out"
fi

# A partial device tree given with --module is checked as at boot: the GPIO controller is
# given; pointed at the console UART by xen,path, it is refused by name.
merge tests/lcm/guests/passthrough.dts "$work/pt.dtb"
dtc -q -I dts -O dtb -o "$work/gpio.dtb" tests/lcm/partial/gpio.dts
sed 's|xen,path = "/pl061@9030000";|xen,path = "/pl011@9000000";|' tests/lcm/partial/gpio.dts |
    dtc -q -I dts -O dtb -o "$work/gpio-console.dtb" -
out=$(bash scripts/hlcheck "$work/pt.dtb" --module 0x4c000000="$work/gpio.dtb" 2>&1); status=$?
if [ "$status" -eq 0 ] && grep -q '^passthrough: domain 2 gets \[0x9030000, 0x9031000)$' <<<"$out" &&
    grep -q '^warning: DOM2: /passthrough/pl061@9030000 given without an IOMMU' <<<"$out"; then
    pass "passthrough-given"
else
    fail "passthrough-given" "exit $status: $out"
fi
out=$(bash scripts/hlcheck "$work/pt.dtb" --module 0x4c000000="$work/gpio-console.dtb" 2>&1); status=$?
if [ "$status" -eq 1 ] && grep -q "^error: /chosen/hypervisor/domain@2: partial device tree: /passthrough/pl061@9030000: xen,path /pl011@9000000 is the hypervisor's console UART \[passthrough\]$" <<<"$out"; then
    pass "passthrough-console-refused"
else
    fail "passthrough-console-refused" "exit $status: $out"
fi

# A board DTB whose firmware fills /memory at boot (size 0, as the Raspberry Pi 4's): named
# error without --ram, the plan with it.
merge tests/lcm/guests/demo.dts "$work/nomem.dtb"
fdtput -t x "$work/nomem.dtb" /memory@40000000 reg 0 0x40000000 0 0
out=$(bash scripts/hlcheck "$work/nomem.dtb" 2>&1); status=$?
if [ "$status" -eq 1 ] && grep -q '^error: /: host device tree: no memory node with a size (a board whose firmware fills /memory at boot: check with hlcheck --ram SIZE) \[bad-platform\]$' <<<"$out"; then
    pass "firmware-filled-memory"
else
    fail "firmware-filled-memory" "exit $status: $out"
fi
out=$(bash scripts/hlcheck --ram 1G@0x40000000 "$work/nomem.dtb" 2>&1); status=$?
if [ "$status" -eq 0 ] && grep -q '^host: 4 CPU(s), 1024 MiB RAM' <<<"$out" && grep -q '^domain 3 ' <<<"$out"; then
    pass "firmware-filled-memory-ram"
else
    fail "firmware-filled-memory-ram" "exit $status: $out"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
