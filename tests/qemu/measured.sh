# Measured launch smoke tests, sourced by smoke.sh (its helpers: boot, expect, refuse, ...).
# The PCR values the hypervisor reads back from the TPM (swtpm) must equal what
# `hlcheck --measure` predicts offline from the same files, and what an independent replay
# of the event log (parsed here in shell, SHA-256 from coreutils) gives; the log is the one
# the Linux hardware domain read from its device tree.

MEASURED_MODULES=(--module 0x49000000=$TESTGUEST "${LINUX[@]}")

# replay_log HEXFILE: "PCR12 <hex>" and "PCR13 <hex>" after replaying the event log (its
# bytes in hex, whitespace separated) from zero PCRs; exit 1 on a record it cannot read.
replay_log() {
    local -a b
    read -r -d '' -a b <"$1" || true
    local n=${#b[@]} off pcr digest dlen cat
    local -A val=([12]=$(printf '0%.0s' {1..64}) [13]=$(printf '0%.0s' {1..64}))
    le32() { echo $((16#${b[$1 + 3]}${b[$1 + 2]}${b[$1 + 1]}${b[$1]})); }
    # The header: a TCG_PCClientPCREvent whose event (at 32) is the Spec ID event.
    [ "$n" -gt 48 ] && [ "$(le32 4)" -eq 3 ] || return 1
    off=$((32 + $(le32 28)))
    while [ "$off" -lt "$n" ]; do
        # TCG_PCR_EVENT2: PCR, type, digest count, algorithm, digest, event size, event.
        pcr=$(le32 "$off")
        [ "$(le32 $((off + 8)))" -eq 1 ] && [ "${b[off + 13]}${b[off + 12]}" = 000b ] || return 1
        digest=$(IFS=; echo "${b[*]:off+14:32}")
        dlen=$(le32 $((off + 46)))
        off=$((off + 50 + dlen))
        [ "$off" -le "$n" ] && [ -n "${val[$pcr]:-}" ] || return 1
        cat=${val[$pcr]}$digest
        val[$pcr]=$(printf "$(sed 's/../\\x&/g' <<<"$cat")" | sha256sum | cut -d' ' -f1)
    done
    echo "PCR12 ${val[12]}"
    echo "PCR13 ${val[13]}"
}

# predict NAME RUN_ARGS...: the host DTB exactly as QEMU hands it over, then hlcheck's
# prediction for it (in $work/NAME.predicted); sets p12 and p13.
predict() {
    local n=$1
    shift
    bash scripts/run.sh "$@" --dump-dtb "$work/$n.dtb" >/dev/null 2>&1
    local mods=() a
    for a in "$@"; do [[ "$a" == 0x*=* ]] && mods+=(--module "$a"); done
    bash scripts/hlcheck --measure "$work/$n.dtb" "${mods[@]}" >"$work/$n.predicted" 2>&1
    p12=$(sed -n 's/^PCR12 //p' "$work/$n.predicted")
    p13=$(sed -n 's/^PCR13 //p' "$work/$n.predicted")
}

t_measured_launch() {
    # With a TPM, and the LCM requiring one.
    sed 's|compatible = "hypervisor,xen";|&\n\t\tmeasured-launch = "required";|' tests/lcm/guests/measured.dts \
        >"$work/measured-required.dts"
    local args=(--tpm --fixed-dtb "${MEASURED_MODULES[@]}" "$work/measured-required.dts") q12 q13
    predict measured "${args[@]}"
    TIMEOUT=120 boot measured-launch "${args[@]}"
    expect_exit 0
    [ -n "$p12" ] && [ -n "$p13" ] || why="no prediction: $(head -3 "$work/measured.predicted")"
    expect 'plan: measured launch: required' 'measure: 4 event\(s\), [0-9]+ KiB hashed' \
        "measure: TPM at 0xc000000: PCR12 = $p12 \\(as the event log replays\\)$" \
        "measure: TPM at 0xc000000: PCR13 = $p13 \\(as the event log replays\\)$" 'INFO  DOM1: unpaused|launch: DOM1 unpaused'
    expect_linux 1 hw 1 128
    expect '^DOM1: HL-EVENTLOG hw: [0-9]+ bytes$' '^DOM1: HL-EVENTLOG-BEGIN$' '^DOM1: HL-EVENTLOG-END$'
    if [ -z "$why" ]; then
        sed -n '/^DOM1: HL-EVENTLOG-BEGIN$/,/^DOM1: HL-EVENTLOG-END$/p' "$log" | grep -v HL-EVENTLOG |
            sed 's/^DOM1: //' >"$work/log.hex"
        replay_log "$work/log.hex" >"$work/replayed" || why="the event log DOM1 read does not parse"
        [ -n "$why" ] || [ "$(cat "$work/replayed")" = "$(printf 'PCR12 %s\nPCR13 %s' "$p12" "$p13")" ] ||
            why="replay of DOM1's event log: $(paste -sd' ' "$work/replayed"), TPM/prediction: $p12 $p13"
        # Its size: a header and 4 events, as the hypervisor said.
        local bytes
        bytes=$(sed -n 's/^DOM1: HL-EVENTLOG hw: \([0-9]*\) bytes$/\1/p' "$log")
        [ -n "$why" ] || [ "$(wc -w <"$work/log.hex")" -eq "$bytes" ] || why="DOM1 dumped $(wc -w <"$work/log.hex") of $bytes bytes"
    fi
    expect 'INFO  all domains have stopped'
    refuse 'NOTICE|FATAL|PANIC|ERROR|NOT what the event log replays'
    done_test

    # One byte of one module changed (a reserved field of DOM2's kernel header): PCR13
    # changes, to the new prediction, and PCR12 does not.
    q12=$p12 q13=$p13
    cp "$TESTGUEST" "$work/testguest-changed.img"
    printf '\x01' | dd of="$work/testguest-changed.img" bs=1 seek=$((0x28)) conv=notrunc status=none
    args=(--tpm --fixed-dtb --module 0x49000000="$work/testguest-changed.img" "${LINUX[@]}" "$work/measured-required.dts")
    predict measured-changed "${args[@]}"
    TIMEOUT=60 boot measured-launch-one-byte "${args[@]}" --stop-when 'measure: TPM took'
    expect_exit 0
    [ -n "$why" ] || [ "$p12" = "$q12" ] || why="PCR12 prediction changed with a kernel byte: $q12 -> $p12"
    [ -n "$why" ] || [ "$p13" != "$q13" ] || why="PCR13 prediction did not change with a kernel byte"
    expect "measure: TPM at 0xc000000: PCR12 = $q12 \\(as the event log replays\\)$" \
        "measure: TPM at 0xc000000: PCR13 = $p13 \\(as the event log replays\\)$"
    done_test
}

t_measured_launch_no_tpm() {
    # Without a TPM: the same event log, given to the hardware domain, and a note, not a
    # warning.
    local args=(--fixed-dtb "${MEASURED_MODULES[@]}" tests/lcm/guests/measured.dts)
    predict measured-no-tpm "${args[@]}"
    TIMEOUT=120 boot measured-launch-no-tpm "${args[@]}"
    expect_exit 0
    expect 'INFO  measure: the host device tree has no TPM \(tcg,tpm-tis-mmio\): the launch is measured in the event log only'
    expect "measure: event log: PCR12 = $p12$"
    expect "measure: event log: PCR13 = $p13$"
    expect_linux 1 hw 1 128
    expect '^DOM1: HL-EVENTLOG hw: [0-9]+ bytes$' 'INFO  all domains have stopped'
    refuse 'WARN|NOTICE|FATAL|PANIC|ERROR'
    done_test
}

t_measured_launch_required() {
    # Required without a TPM: a named configuration error, and nothing launched.
    boot measured-launch-required --module 0x49000000=$TESTGUEST dts/invalid/measured-launch-without-tpm.dts
    expect_exit 0
    expect 'ERROR error: /chosen/hypervisor: measured-launch = "required" but the host device tree has no TPM \(tcg,tpm-tis-mmio\)' \
        '^\(HL\) stopping: invalid launch configuration; powering off'
    refuse 'measure:|DOM1'
    done_test
}

t_measured_launch_tpm_fails() {
    # Required, and the TPM node points at a device that is no TPM (QEMU virt's PL061 GPIO
    # controller): the TPM driver gives up in bounded time, the launch stops before any
    # domain runs (domains are built, paused, while the launch is measured), and the error
    # names the TPM and the command.
    local dtb
    dtb=$(virt_dtb)
    fdtput -c "$dtb" /tpm@9030000
    fdtput -t s "$dtb" /tpm@9030000 compatible tcg,tpm-tis-mmio
    fdtput -t x "$dtb" /tpm@9030000 reg 0 0x9030000 0 0x1000
    bash scripts/merge-lcm.sh "$dtb" dts/invalid/measured-launch-without-tpm.dts "$work/tpm-fails.dtb"
    boot measured-launch-tpm-fails --module 0x49000000=$TESTGUEST --dtb "$work/tpm-fails.dtb"
    expect_exit 0
    expect 'plan: measured launch: required' \
        'ERROR error: measured launch is required \(measured-launch = "required"\), but TPM at 0x9030000: TPM2_Startup: no TPM answers at its address$' \
        '^\(HL\) stopping: measured launch failed'
    refuse 'unpaused|starts on|DOM1: HL|launch: finalized'
    done_test
}
