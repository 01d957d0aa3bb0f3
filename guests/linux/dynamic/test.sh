#!/bin/sh
# Dynamic mode from a Linux Control domain, as tests/qemu/dynamic.sh checks it: create a
# Linux domain, wait for it to power off, destroy it (free memory as before), create and
# destroy a small domain 20 times, create a store client twice when there is a store,
# create domains with static memory, a passthrough device and the Hardware permission, and
# try an invalid configuration. Lines start HL-DYN.
d=/dynamic
say() { echo "HL-DYN $*"; }
free_kib() { hlctl free | sed -n 's/^free memory: \([0-9]*\) KiB.*/\1/p'; }
# Free memory once it stops changing (a destroyed domain's memory returns when its vCPUs
# have left their CPUs).
settled_free() {
    a=$(free_kib); i=0
    while [ $i -lt 20 ]; do sleep 1; b=$(free_kib); [ "$a" = "$b" ] && break; a=$b; i=$((i + 1)); done
    echo "$a"
}
# The id in hlctl create's output ("DOMn created ...").
created_id() { echo "$1" | sed -n 's/^DOM\([0-9]*\) created.*/\1/p'; }
# Waits up to $2 s for domain $1 to stop; prints its last state.
wait_stopped() {
    i=0 st=""
    while [ $i -lt "$2" ]; do
        st=$(hlctl info "$1" | sed -n 's/^state: //p')
        [ "$st" = stopped ] && break
        sleep 1
        i=$((i + 1))
    done
    echo "$st"
}
# Waits for domain $2 to stop and destroys it, under NAME $1.
stop_destroy() {
    wait_stopped "$2" 60 >/dev/null
    out=$(hlctl destroy "$2" 2>&1)
    say "$1: destroy: rc $?: $out"
}
# run_once NAME ARGS...: "hlctl create ARGS", then the domain is waited for and destroyed.
run_once() {
    name=$1; shift
    out=$(hlctl create "$@" 2>&1)
    say "$name: rc $?: $out"
    id=$(created_id "$out")
    [ -z "$id" ] || stop_destroy "$name" "$id"
}
hlctl list | sed 's/^/HL-DYN list: /'
before=$(settled_free)
out=$(hlctl create $d/linux.dts --kernel $d/linux.gz --ramdisk $d/initramfs.cpio.gz 2>&1)
say "create linux: rc $?: $out"
id=$(created_id "$out")
hlctl list | sed 's/^/HL-DYN list: /'
say "linux domain $id: $(wait_stopped "$id" 300)"
out=$(hlctl destroy "$id" 2>&1)
say "destroy: rc $?: $out"
after=$(settled_free)
if [ "$before" = "$after" ]; then eq=equal; else eq=DIFFERENT; fi
say "free before $before KiB, after destroy $after KiB: $eq"
n=0
while [ $n -lt 20 ]; do
    out=$(hlctl create $d/testguest.dts --kernel $d/testguest.img 2>&1) || { say "loop $n: $out"; break; }
    id=$(created_id "$out")
    out=$(hlctl destroy "$id" 2>&1) || { say "loop $n: $out"; break; }
    n=$((n + 1))
done
after=$(settled_free)
if [ "$before" = "$after" ]; then eq=equal; else eq=DIFFERENT; fi
say "loop: $n creates and destroys; free $after KiB: $eq"
# A store client, twice (the second takes the slot the first gave back), when another
# domain is the store.
if [ -e /proc/device-tree/hypervisor/store ]; then
    for round in 1 2; do
        run_once "store client $round" $d/store.dts --kernel $d/testguest.img
    done
fi
# Static memory taken from free memory; the same range twice at once is refused.
out=$(hlctl create $d/static.dts --kernel $d/testguest.img --paused 2>&1)
say "static: rc $?: $out"
sid=$(created_id "$out")
out=$(hlctl create $d/static.dts --kernel $d/testguest.img 2>&1)
say "static again: rc $?: $out"
if [ -n "$sid" ]; then
    hlctl unpause "$sid" >/dev/null
    stop_destroy static "$sid"
fi
# A device by a partial device tree, then a hardware domain (each refused where the
# launch's hardware domain holds the device or the permission).
run_once passthrough $d/passthrough.dts --kernel $d/testguest.img --dtb $d/gpio.dtb
run_once hardware $d/hardware.dts --kernel $d/testguest.img
after=$(settled_free)
if [ "$before" = "$after" ]; then eq=equal; else eq=DIFFERENT; fi
say "devices and static memory: free $after KiB: $eq"
out=$(hlctl create $d/bad.dts --kernel $d/testguest.img 2>&1)
say "invalid: rc $?: $out"
say "done"
