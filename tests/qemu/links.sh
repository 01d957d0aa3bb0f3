# Network-link smoke tests, sourced by smoke.sh (its helpers: boot, expect, refuse, ...).

t_link() {
    # Two Debian Linux domains joined by a link ping each other and move 16 MiB over TCP
    # (both sides' SHA-256 must match); a third domain has no interface and reaches nobody.
    TIMEOUT=300 boot link "${LINUX[@]}" --stop-when '^DOM1: HL-RECV alpha' --stop-when '^DOM3: HL-PING gamma' \
        tests/lcm/guests/link.dts
    expect_exit 0
    expect 'INFO  plan: link: domain 1 <-> domain 2 \(virtio-net, /chosen/hypervisor/link@0\)'
    expect '^DOM1: HL-NET alpha: eth0 10.0.0.1/24 mac 02:48:4c:00:00:01$'
    expect '^DOM2: HL-NET beta: eth0 10.0.0.2/24 mac 02:48:4c:00:00:02$'
    expect '^DOM3: HL-NET gamma: no network interface$'
    expect '^DOM1: HL-PING alpha: 3 of 3 replies from 10.0.0.2, average round trip [0-9.]+ ms$'
    expect '^DOM2: HL-PING beta: 3 of 3 replies from 10.0.0.1, average round trip [0-9.]+ ms$'
    expect '^DOM3: HL-PING gamma: 0 of 3 replies from 10.0.0.1$'
    expect '^DOM2: HL-SEND beta: 16777216 bytes, sha256 [0-9a-f]{64}$'
    local sha
    sha=$(sed -n 's/^DOM2: HL-SEND beta: 16777216 bytes, sha256 \([0-9a-f]*\)$/\1/p' "$log")
    expect "^DOM1: HL-RECV alpha: 16777216 bytes, sha256 $sha\$"
    refuse 'FATAL|PANIC|ERROR|NOTICE'
    done_test
}

t_link_hostile() {
    # A hostile driver's bad descriptors fail only its own device; after its reset the
    # Linux peer answers it.
    TIMEOUT=180 boot link-hostile "${LINUX[@]}" --module 0x49000000=$TESTGUEST \
        --stop-when '^DOM2: hostile: vnet: (ARP reply|no ARP reply)' tests/lcm/guests/link-hostile.dts
    expect_exit 0
    expect '^DOM2: hostile: vnet: virtio-net found, MAC 02:48:4c:00:00:02$'
    expect '^DOM2: hostile: vnet: a buffer outside its RAM: device status 0x[0-9a-f]+: needs reset$'
    expect 'NOTICE: DOM2: link 0: its virtio device failed \(reset it\): buffer at 0x1000 outside its RAM'
    expect '^DOM2: hostile: vnet: a chain that loops: device status 0x[0-9a-f]+: needs reset$'
    expect 'NOTICE: DOM2: link 0: its virtio device failed \(reset it\): descriptor chain loops'
    expect '^DOM2: hostile: vnet: ARP reply from 10.0.0.1: 02:48:4c:00:00:01'
    expect '^DOM1: HL-NET linux: eth0 10.0.0.1/24 mac 02:48:4c:00:00:01$'
    refuse 'FATAL|PANIC|ERROR|NOT FAILED|NOTICE: DOM1'
    done_test
}

t_shm() {
    # Static shared memory (Xen's binding): what the owner writes the borrower reads; a
    # third domain is not given the region.
    TIMEOUT=120 boot shm "${LINUX[@]}" --stop-when '^DOM2: HL-SHM borrower' --stop-when '^DOM3: HL-SHM outsider' \
        tests/lcm/guests/shm.dts
    expect_exit 0
    expect 'INFO  plan:     shared memory "hl-shm-0" \[0x70000000, 0x70200000\) at guest 0x10000000 \(owner\)'
    expect '^DOM1: HL-SHM owner: wrote 0x484C5348 at 0x10000000 \(hl-shm-0\)$'
    expect '^DOM2: HL-SHM borrower: read 0x484C5348 at 0x10000000 \(hl-shm-0\)$'
    expect '^DOM3: HL-SHM outsider: no shared memory in the device tree$'
    refuse 'FATAL|PANIC|ERROR|NOTICE'
    done_test
}

t_console_link() {
    # Two Linux domains joined by a console link: a line written to /dev/hvc0 on one side is
    # read from /dev/hvc0 on the other.
    TIMEOUT=120 boot console-link "${LINUX[@]}" --stop-when '^DOM2: HL-HVC reader' tests/lcm/guests/console-link.dts
    expect_exit 0
    expect 'INFO  plan: link: domain 1 <-> domain 2 \(virtio-console, /chosen/hypervisor/link@0\)'
    expect "^DOM1: HL-HVC writer: sending 'hello-over-a-console-link'\$"
    expect "^DOM2: HL-HVC reader: received 'hello-over-a-console-link'\$"
    refuse 'FATAL|PANIC|ERROR|NOTICE'
    done_test
}
