#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A flood of calls: many callers, each with many signatures in flight.
# Calls over the per-caller and total limits of the work in flight are
# refused at once (Failed, "too many requests in flight"), never queued or
# timed out; a caller that leaves has its queued work dropped, not done;
# the daemon still signs afterwards, and its memory comes back near where
# it started (VmRSS from /proc, the figures in the test log).
. "$KMX_TESTS_DIR/harness.sh"
: "${KMX_TEST_FLOOD:?KMX_TEST_FLOOD must point to kmx-test-flood}"
kmx_setup

T=$KEYMUX_DATA_DIR/test
mkdir -p "$T/plugged"

plug() { # plug SERIAL [extra ini lines]
	printf '[device]\npin=123456\nadmin-pin=12345678\n%s\n' "$2" >"$T/.plug.tmp"
	mv "$T/.plug.tmp" "$T/plugged/$1"
}
key_of() { sed 's/^o "\(.*\)"$/\1/' <<<"$1"; }
status_kb() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$KMX_DAEMON_PID/status"; }
# flood_count NAME: a count from kmx-test-flood's line
flood_count() { sed -n "s/.*\<$1=\([0-9]*\).*/\1/p" "$KMX_TMP/flood.out"; }
# audit_count KEYID RESULT-PATTERN: audit records of signatures with that key
audit_count() { grep -c "^keymux-audit: sign key $1 by .*: $2" "$KMX_TMP/keymuxd.log" || true; }

# small limits, so that a slow card meets them with few calls: a caller
# may have 16 in flight, everyone together 64
cat >"$KEYMUX_CONFIG" <<-EOF
[backends]
test=true
[daemon]
max-requests-per-caller=16
max-requests=64
EOF
kmx_start_daemon

# a slow card (50 ms a signature, one at a time) keeps requests in flight
plug 0001 "delay-ms=50"
until_ok listed "$(kmx_device_path test:0001)"
CARD=$(key_of "$(kmx_device test:0001 GenerateKey ssa{sv} ecdsa-p256 card 1 admin-secret s 12345678)")
kmx_device test:0001 Unlock sa{sv} 123456 0 >/dev/null
# a soft key: the shared pool, as in the attack run
SOFT=$(key_of "$(kmx_device softkey:login GenerateKey ssa{sv} ed25519 soft 0)")
kmx_key "$SOFT" Sign saya{sv} ed25519 2 1 2 0 >/dev/null
kmx_key "$CARD" Sign saya{sv} ecdsa-sha256 2 1 2 0 >/dev/null

sleep 1
rss_start=$(status_kb VmRSS)
kmx_log "VmRSS at the start: $rss_start kB"

# ---- one caller with 200 in flight meets its own limit ----
"$KMX_TEST_FLOOD" --key "$CARD" --algorithm ecdsa-sha256 --clients 1 --calls 200 --wait \
	>"$KMX_TMP/flood.out" || fail "kmx-test-flood failed"
kmx_log "1 caller x 200 on the card: $(cat "$KMX_TMP/flood.out")"
assert_eq 0 "$(flood_count timeout)" "no call may time out"
assert_eq 0 "$(flood_count other)" "no error but the refusal"
assert_eq 0 "$(flood_count refused-total)" "one caller alone stays under the total"
assert_eq 200 "$(($(flood_count ok) + $(flood_count refused)))" "every call answered"
[ "$(flood_count refused-caller)" -ge 100 ] || fail "too few refusals for one caller: $(cat "$KMX_TMP/flood.out")"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "has 16 requests in flight: refusing more"

# ---- 50 callers with 200 each meet the total ----
"$KMX_TEST_FLOOD" --key "$CARD" --algorithm ecdsa-sha256 --clients 50 --calls 200 --wait \
	>"$KMX_TMP/flood.out" || fail "kmx-test-flood failed"
kmx_log "50 callers x 200 on the card: $(cat "$KMX_TMP/flood.out")"
assert_eq 0 "$(flood_count timeout)" "no call may time out"
assert_eq 0 "$(flood_count other)" "no error but the refusal"
assert_eq 10000 "$(($(flood_count ok) + $(flood_count refused)))" "every call answered"
[ "$(flood_count refused-total)" -gt 0 ] || fail "the total limit was never met: $(cat "$KMX_TMP/flood.out")"
[ "$(flood_count ok)" -gt 0 ] || fail "nothing was signed: $(cat "$KMX_TMP/flood.out")"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "requests in flight from all callers: refusing more"

# ---- the attack: 50 callers send 200 each to a soft key and leave ----
log_lines=$(wc -l <"$KMX_TMP/keymuxd.log")
"$KMX_TEST_FLOOD" --key "$SOFT" --clients 50 --calls 200 >"$KMX_TMP/flood.out" ||
	fail "kmx-test-flood failed"
# the daemon answers and signs afterwards, with both keys
until_ok kmx_key "$SOFT" Sign saya{sv} ed25519 2 1 2 0
assert_contains "$(kmx_key "$SOFT" Sign saya{sv} ed25519 2 1 2 0)" "ay 64"
assert_contains "$(kmx_key "$CARD" Sign saya{sv} ecdsa-sha256 2 1 2 0)" "ay "
rss_peak=$(status_kb VmHWM)

# a few seconds after, the heap is given back: a second after the last
# call, then once more 5 s later
trims() { tail -n +$((log_lines + 1)) "$KMX_TMP/keymuxd.log" | grep -c "returned free heap" || true; }
for _ in $(seq 300); do
	[ "$(trims)" -ge 2 ] && break
	sleep 0.1
done
rss_after=$(status_kb VmRSS)
bound=$((3 * rss_start + 20 * 1024))
kmx_log "VmRSS: start $rss_start kB, peak $rss_peak kB, after $rss_after kB (bound $bound kB; $(trims) trims since the flood)"
# the allocators of the sanitizers and valgrind keep what they like
if [ -n "${KMX_DAEMON_WRAPPER:-}" ] || grep -qa __asan_init "$KEYMUXD"; then
	kmx_log "not checking the bound: the daemon runs under a tool"
elif [ "$rss_after" -gt "$bound" ]; then
	fail "VmRSS stayed at $rss_after kB after the flood (start $rss_start kB, bound $bound kB)"
fi

# ---- a caller that leaves has its queued work dropped, not done ----
kmx_stop_daemon
cat >"$KEYMUX_CONFIG" <<-EOF
[backends]
test=true
[daemon]
max-requests-per-caller=1000
EOF
kmx_start_daemon
# 100 ms a signature: 200 of them would take 20 s
plug 0002 "delay-ms=100"
until_ok listed "$(kmx_device_path test:0002)"
CARD2=$(key_of "$(kmx_device test:0002 GenerateKey ssa{sv} ecdsa-p256 slow 1 admin-secret s 12345678)")
CARD2ID=${CARD2##*/}
kmx_device test:0002 Unlock sa{sv} 123456 0 >/dev/null
# the caller leaves 2 s after its calls reached the bus: about 20 signed
"$KMX_TEST_FLOOD" --key "$CARD2" --algorithm ecdsa-sha256 --clients 1 --calls 200 \
	--linger 2000 >"$KMX_TMP/flood.out" || fail "kmx-test-flood failed"
# a call of another caller queues on the card behind what is left of them
t0=$(date +%s%N)
assert_contains "$(kmx_key "$CARD2" Sign saya{sv} ecdsa-sha256 2 1 2 0)" "ay "
waited_ms=$((($(date +%s%N) - t0) / 1000000))
done_ok=$(($(audit_count "$CARD2ID" ok) - 1))
dropped=$(audit_count "$CARD2ID" "the request was cancelled")
# calls GDBus dispatched after the caller was known to be gone were
# refused at the door, without a request or a record
kmx_log "1 caller queued 200 on a 100 ms card and left: $done_ok signed, $dropped dropped before they started, $((200 - done_ok - dropped)) refused at the door; the next call waited $waited_ms ms"
[ "$done_ok" -lt 100 ] || fail "$done_ok of 200 signatures were made for a caller that left"
[ "$dropped" -gt 0 ] || fail "no queued request was dropped"
[ $((done_ok + dropped)) -le 200 ] || fail "more records than calls: $done_ok signed, $dropped dropped"

kmx_stop_daemon
