#!/usr/bin/env bash
# The test suite: host unit tests, formatting, clippy on the host and on the EL2 target,
# the EL2 image build, and QEMU smoke tests. Ends with one line "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh >/dev/null || { echo "install-deps failed"; echo "0 passed, 1 failed"; exit 1; }

logs=$root/target/test-logs
mkdir -p "$logs"
passed=0 failed=0

# check NAME CMD...: one pass or fail for a whole command.
check() {
    local name=$1; shift
    if "$@" >"$logs/$name.log" 2>&1; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name (log: target/test-logs/$name.log)"
        tail -n 30 "$logs/$name.log" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

# Host unit tests: each counts (--no-fail-fast: every binary runs). A test binary that did
# not build, crashed or aborted ends cargo test with a non-zero status (its tests then drop
# out of the count): that is a failure of its own, and so is a count below the floor kept
# in tests/host-test-floor (raise it when tests are added).
echo "== host unit tests (cargo test)"
status=0
cargo test --no-fail-fast >"$logs/cargo-test.log" 2>&1 || status=$?
grep -E '^test |test result' "$logs/cargo-test.log"
sum_field() {
    sed -n "s/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\\$1/p" "$logs/cargo-test.log" |
        awk '{ s += $1 } END { print s + 0 }'
}
p=$(sum_field 1)
f=$(sum_field 2)
passed=$((passed + p))
failed=$((failed + f))
if [ "$status" -ne 0 ]; then
    echo "FAIL cargo-test: exit status $status (log: target/test-logs/cargo-test.log)"
    grep -E '^error|panicked|SIGSEGV|SIGABRT|signal: |process didn.t exit successfully' "$logs/cargo-test.log" |
        head -n 10 | sed 's/^/    /'
    failed=$((failed + 1))
fi
floor=$(tr -dc '0-9' <tests/host-test-floor)
if [ -z "$floor" ] || [ "$((p + f))" -lt "$floor" ]; then
    echo "FAIL host-test-count: $((p + f)) host tests ran, the floor (tests/host-test-floor) is ${floor:-missing}"
    failed=$((failed + 1))
else
    echo "PASS host-test-count: $((p + f)) host tests ran (floor $floor)"
    passed=$((passed + 1))
fi

echo "== static checks"
check rustfmt cargo fmt --check
check clippy-host cargo clippy --all-targets -- -D warnings
check clippy-el2 cargo hv-clippy -- -D warnings
check build-image bash scripts/build.sh
check build-guests bash scripts/make-guests.sh
check rustfmt-guests cargo fmt --check --manifest-path guests/testguest/Cargo.toml
check clippy-guests cargo clippy --manifest-path guests/testguest/Cargo.toml \
    --target aarch64-unknown-hyperlaunch.json -Zjson-target-spec \
    -Zbuild-std=core -Zbuild-std-features=compiler-builtins-mem -- -D warnings

echo "== launch configurations (dts/ through scripts/hlcheck)"
bash tests/lcm/check-dts.sh | tee "$logs/check-dts.log"
dts_status=${PIPESTATUS[0]}

# FUZZ_SECONDS (default 60) for all the targets together, at least 10 s each.
fuzz_targets=$(ls fuzz/fuzz_targets/*.rs | wc -l)
fuzz_each=$(( ${FUZZ_SECONDS:-60} / (fuzz_targets > 0 ? fuzz_targets : 1) ))
[ "$fuzz_each" -ge 10 ] || fuzz_each=10
echo "== fuzzing ($fuzz_targets target(s) in fuzz/fuzz_targets, $fuzz_each s each)"
check fuzz bash scripts/fuzz.sh "$fuzz_each"
grep '^fuzz: ' "$logs/fuzz.log" || true

echo "== QEMU smoke tests"
bash tests/qemu/smoke.sh | tee "$logs/smoke.log"
smoke_status=${PIPESTATUS[0]}
# add_summary NAME LOG STATUS: adds a sub-suite's closing "N passed, N failed" line to the
# totals; a missing line, or a failed exit status with no failure counted, is a failure.
add_summary() {
    local sp sf
    sp=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$2" | tail -n 1)
    sf=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$2" | tail -n 1)
    if [ -z "$sp" ]; then
        echo "FAIL $1 (no summary line; exit status $3)"
        failed=$((failed + 1))
    else
        passed=$((passed + sp))
        failed=$((failed + sf))
        if [ "$3" -ne 0 ] && [ "$sf" -eq 0 ]; then
            echo "FAIL $1 (exit status $3 with no failure counted)"
            failed=$((failed + 1))
        fi
    fi
}
add_summary check-dts "$logs/check-dts.log" "$dts_status"
add_summary smoke "$logs/smoke.log" "$smoke_status"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
