#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Locking, unlocking and the prompter flow of DESIGN.md §5: who is asked,
# how often, and what happens when a prompter or a caller goes away.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
: "${KMX_TEST_PROMPTER:?}"
cd "$KMX_TMP"
printf '[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
dev=$(kmx_device_path softkey:login)

key=$(kmx_device softkey:login GenerateKey ssa{sv} ed25519 k 0 | sed -n 's/^o "\(.*\)"$/\1/p')
locked() { kmx_prop "$dev" org.keymux.Keystore1.Device Locked; }
sign1() { kmx_key "$key" Sign saya{sv} ed25519 3 1 2 3 0; }

# ---- an unprotected store: Unlock("") succeeds, nothing to lock ----
kmx_device softkey:login Unlock sa{sv} "" 0
assert_eq "b false" "$(locked)"

# ---- protect it ----
kmx_device softkey:login ChangeSecret ss "" "correct horse"
assert_contains "$(kmx_prop "$dev" org.keymux.Keystore1.Device Details)" '"protected" b true'
kmx_device softkey:login Lock
assert_eq "b true" "$(locked)"
assert_eq "b true" "$(kmx_prop "$key" org.keymux.Keystore1.Key Locked)"
# metadata works while locked
kmx_key "$key" SetLabel s "still listed"
assert_contains "$(kmx_manager ListKeys)" "$key"

# ---- locked, no prompter: Locked, saying what to do ----
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$key" \
	--method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1]' '{}')
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"
assert_contains "$err" "no prompter is registered"
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$dev" \
	--method org.keymux.Keystore1.Device.Unlock "" '{}')
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"

# ---- wrong password: BadSecret, still locked ----
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$dev" \
	--method org.keymux.Keystore1.Device.Unlock "wrong" '{}')
assert_contains "$err" "org.keymux.Keystore1.Error.BadSecret"
assert_eq "b true" "$(locked)"
kmx_device softkey:login Unlock sa{sv} "correct horse" 0
assert_eq "b false" "$(locked)"
sign1 >/dev/null
kmx_manager LockAll
assert_eq "b true" "$(locked)"

# ---- a prompter is asked, once, and the call goes through ----
"$KMX_TEST_PROMPTER" --secret "correct horse" >p1.out 2>p1.err &
p1=$!; KMX_PIDS+=($p1)
for _ in $(seq 400); do grep -q ready p1.out && break; sleep 0.05; done
grep -q ready p1.out || fail "prompter 1 did not register: $(cat p1.err)"
sign1 >/dev/null
assert_eq 1 "$(grep -c '^asked' p1.out)" "the prompter is asked once"
assert_contains "$(cat p1.out)" "$dev"
assert_contains "$(cat p1.out)" "'device-id': <'softkey:login'>"
assert_eq "b false" "$(locked)"
sign1 >/dev/null
assert_eq 1 "$(grep -c '^asked' p1.out)" "an unlocked device is not prompted for"

# ---- the most recent prompter is asked; a wrong answer is not retried ----
kmx_device softkey:login Lock
"$KMX_TEST_PROMPTER" --secret "wrong guess" >p2.out 2>p2.err &
p2=$!; KMX_PIDS+=($p2)
for _ in $(seq 400); do grep -q ready p2.out && break; sleep 0.05; done
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$key" \
	--method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1]' '{}')
assert_contains "$err" "org.keymux.Keystore1.Error.BadSecret"
assert_eq 1 "$(grep -c '^asked' p2.out)" "a wrong secret is never retried"
assert_eq 1 "$(grep -c '^asked' p1.out)" "the older prompter is not asked"
assert_eq "b true" "$(locked)"

# ---- a prompter that left the bus is dropped: the older one answers ----
kill "$p2"; wait "$p2" 2>/dev/null || true
sign1 >/dev/null
assert_eq 2 "$(grep -c '^asked' p1.out)" "after the newer prompter left, the older is asked"
kmx_device softkey:login Lock

# ---- a prompter that vanishes mid-question: the next one is asked ----
"$KMX_TEST_PROMPTER" --mode vanish >p3.out 2>p3.err &
p3=$!; KMX_PIDS+=($p3)
for _ in $(seq 400); do grep -q ready p3.out && break; sleep 0.05; done
sign1 >/dev/null
assert_eq 1 "$(grep -c '^asked' p3.out)"
assert_eq 3 "$(grep -c '^asked' p1.out)" "the vanished prompter's question went to the next"
kmx_device softkey:login Lock

# ---- a prompter that refuses: Cancelled ----
"$KMX_TEST_PROMPTER" --mode refuse >p4.out 2>p4.err &
p4=$!; KMX_PIDS+=($p4)
for _ in $(seq 400); do grep -q ready p4.out && break; sleep 0.05; done
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$key" \
	--method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1]' '{}')
assert_contains "$err" "org.keymux.Keystore1.Error.Cancelled"
assert_contains "$err" "closed the dialog"
kill "$p4"; wait "$p4" 2>/dev/null || true

# ---- a caller that leaves while its request waits: cancelled, nothing unlocked ----
"$KMX_TEST_PROMPTER" --secret "correct horse" --delay-ms 1500 >p5.out 2>p5.err &
p5=$!; KMX_PIDS+=($p5)
for _ in $(seq 400); do grep -q ready p5.out && break; sleep 0.05; done
timeout 0.5 gdbus call --session --dest org.keymux.Keystore1 --object-path "$key" \
	--method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1]' '{}' >/dev/null 2>&1 || true
for _ in $(seq 400); do grep -q '^answered' p5.out && break; sleep 0.05; done
grep -q '^answered' p5.out || fail "the delayed prompter did not answer"
# the daemon has the answer now; give it time to (wrongly) use it
sleep 1
assert_eq "b true" "$(locked)" "the answer for a gone caller must not unlock the device"
grep -q "cancelled" "$KMX_TMP/keymuxd.log" || fail "the daemon did not cancel the gone caller's request"
assert_contains "$(cat p5.out)" "cancel $dev" "the prompter is told the question is withdrawn"
kill "$p5"; wait "$p5" 2>/dev/null || true

# ---- a caller that gives up waiting but stays: the late answer still unlocks ----
"$KMX_TEST_PROMPTER" --secret "correct horse" --delay-ms 1500 >p10.out 2>p10.err &
p10=$!; KMX_PIDS+=($p10)
for _ in $(seq 400); do grep -q ready p10.out && break; sleep 0.05; done
"$KMX_TEST_PROMPTER" --sign "$key" --timeout-ms 200 >c10.out 2>c10.err &
c10=$!; KMX_PIDS+=($c10)
for _ in $(seq 400); do grep -q '^gave up' c10.out && break; sleep 0.05; done
assert_contains "$(cat c10.out)" "gave up: " "the caller's own timeout passed first"
for _ in $(seq 400); do [ "$(locked)" = "b false" ] && break; sleep 0.05; done
assert_eq "b false" "$(locked)" "an answer after the caller's timeout still unlocks"
assert_eq 1 "$(grep -c '^answered' p10.out)"
kill "$p10" "$c10"; wait "$p10" "$c10" 2>/dev/null || true
kmx_device softkey:login Lock

# ---- Unlock("") asks the prompter ----
kmx_device softkey:login Unlock sa{sv} "" 0
assert_eq "b false" "$(locked)"
assert_eq 4 "$(grep -c '^asked' p1.out)"

# ---- requests that wait on one locked device share one question ----
kmx_device softkey:login Lock
"$KMX_TEST_PROMPTER" --secret "correct horse" --delay-ms 700 >p6.out 2>p6.err &
p6=$!; KMX_PIDS+=($p6)
for _ in $(seq 400); do grep -q ready p6.out && break; sleep 0.05; done
sign1 >s1.out &
s1=$!
sign1 >s2.out &
s2=$!
kmx_device softkey:login Unlock sa{sv} "" 0 &
s3=$!
wait $s1 || fail "the first waiting request failed"
wait $s2 || fail "the second waiting request failed"
wait $s3 || fail "the waiting Unlock failed"
assert_contains "$(cat s1.out)" "ay 64"
assert_contains "$(cat s2.out)" "ay 64"
assert_eq 1 "$(grep -c '^asked' p6.out)" "three requests, one question"
kill "$p6"; wait "$p6" 2>/dev/null || true

# ---- UnregisterPrompter: no one to ask any more ----
kill "$p1"; wait "$p1" 2>/dev/null || true
kmx_device softkey:login Lock
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$key" \
	--method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1]' '{}')
assert_contains "$err" "no prompter is registered"

# ---- a protected store starts locked; the password survives a restart ----
kmx_stop_daemon
kmx_start_daemon
assert_eq "b true" "$(locked)"
kmx_device softkey:login Unlock sa{sv} "correct horse" 0
sign1 >/dev/null

# ---- change the password, then the old one is refused ----
kmx_device softkey:login ChangeSecret ss "correct horse" "battery staple"
kmx_device softkey:login Lock
err=$(kmx_call_error kmx_device softkey:login Unlock sa{sv} "correct horse" 0)
assert_contains "$err" "assword"
kmx_device softkey:login Unlock sa{sv} "battery staple" 0
sign1 >/dev/null
err=$(kmx_call_error kmx_device softkey:login ChangeSecret ss "nope" "x")
assert_contains "$err" "assword"

# ---- idle lock ----
kmx_stop_daemon
printf '[daemon]\nidle-lock-timeout=1\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
kmx_device softkey:login Unlock sa{sv} "battery staple" 0
sign1 >/dev/null
for _ in $(seq 400); do [ "$(locked)" = "b true" ] && break; sleep 0.1; done
assert_eq "b true" "$(locked)" "the store locks itself when unused"

# ---- logind's PrepareForSleep(true) locks everything ----
kmx_stop_daemon
printf '[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"
kmx_start_system_bus
mkfifo logind.in
"$KMX_TEST_LOGIND" <logind.in >logind.out 2>logind.err &
KMX_PIDS+=($!)
exec 7>logind.in
for _ in $(seq 400); do grep -q ready logind.out && break; sleep 0.05; done
grep -q ready logind.out || fail "the logind stand-in did not start: $(cat logind.err)"
kmx_start_daemon
kmx_device softkey:login Unlock sa{sv} "battery staple" 0
sign1 >/dev/null
echo false >&7
sleep 0.3
assert_eq "b false" "$(locked)" "waking up does not lock"
echo true >&7
for _ in $(seq 400); do [ "$(locked)" = "b true" ] && break; sleep 0.05; done
assert_eq "b true" "$(locked)" "PrepareForSleep(true) locks the store"
exec 7>&-
unset DBUS_SYSTEM_BUS_ADDRESS

# ---- Unlock checks the secret it is given, even on an open store ----
kmx_device softkey:login Unlock sa{sv} "battery staple" 0
assert_eq "b false" "$(locked)"
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$dev" \
	--method org.keymux.Keystore1.Device.Unlock "not the password" '{}')
assert_contains "$err" "org.keymux.Keystore1.Error.BadSecret"
assert_eq "b false" "$(locked)" "a wrong secret changes nothing on an open store"

# ---- a question nobody answers: the waiting call goes on once the device
# is unlocked another way, and the question is withdrawn ----
kmx_device softkey:login Lock
"$KMX_TEST_PROMPTER" --mode hang >p8.out 2>p8.err &
KMX_PIDS+=($!)
for _ in $(seq 400); do grep -q ready p8.out && break; sleep 0.05; done
(
	rc=0
	gdbus call --session --timeout 60 --dest org.keymux.Keystore1 --object-path "$key" \
		--method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1]' '{}' >waiting.out 2>&1 || rc=$?
	echo "exit $rc" >>waiting.out
) &
for _ in $(seq 400); do grep -q '^asked' p8.out && break; sleep 0.05; done
grep -q '^asked' p8.out || fail "the hanging prompter was not asked"
assert_contains "$(grep '^asked' p8.out)" "'kind': <'user'>"
for h in "'retries': <-1>" "'operation': <'sign'>" "'key': <'${key##*/}'>" "'caller': <'"; do
	assert_contains "$(grep '^asked' p8.out)" "$h"
done
assert_contains "$(grep '^asked' p8.out)" "wants to sign with the key “still listed”"
kmx_device softkey:login Unlock sa{sv} "battery staple" 0
for _ in $(seq 400); do grep -q '^exit' waiting.out && break; sleep 0.05; done
assert_contains "$(cat waiting.out)" "exit 0"
for _ in $(seq 400); do grep -q '^cancel' p8.out && break; sleep 0.05; done
assert_contains "$(cat p8.out)" "cancel $dev" "a question answered another way is withdrawn"

# ---- and after [daemon] prompt-timeout, the waiters get Cancelled ----
kmx_stop_daemon
printf '[daemon]\nidle-lock-timeout=0\nprompt-timeout=1\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
"$KMX_TEST_PROMPTER" --mode hang >p9.out 2>p9.err &
KMX_PIDS+=($!)
for _ in $(seq 400); do grep -q ready p9.out && break; sleep 0.05; done
err=$(kmx_call_error gdbus call --session --timeout 60 --dest org.keymux.Keystore1 \
	--object-path "$key" --method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1]' '{}')
assert_contains "$err" "org.keymux.Keystore1.Error.Cancelled"
assert_contains "$err" "nobody answered"
assert_eq "b true" "$(locked)"

# ---- a caller cannot write an audit record of its own ----
kmx_device softkey:login Unlock sa{sv} "battery staple" 0
forged=$'ed25519\nkeymux-audit: sign key forged by pid 1 (/usr/bin/ssh): ok'
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$key" \
	--method org.keymux.Keystore1.Key.Sign "$forged" '[byte 1]' '{}')
assert_contains "$err" "InvalidArgument"
if grep -q '^keymux-audit: sign key forged' "$KMX_TMP/keymuxd.log"; then
	fail "a caller's algorithm name became an audit line of its own"
fi

# ---- the audit trail never holds a password ----
assert_not_contains "$(cat "$KMX_TMP/keymuxd.log")" "battery staple"
assert_not_contains "$(cat "$KMX_TMP/keymuxd.log")" "correct horse"
# ---- the daemon killed while a client waits: a clear error, no hang ----
if [ -n "${KEYMUXCTL:-}" ]; then
	kmx_device softkey:login Lock
	"$KMX_TEST_PROMPTER" --mode hang >p7.out 2>p7.err &
	KMX_PIDS+=($!)
	for _ in $(seq 400); do grep -q ready p7.out && break; sleep 0.05; done
	echo hi >msg
	"$KEYMUXCTL" sign "${key##*/}" msg >sig 2>cli.err &
	cli=$!
	for _ in $(seq 400); do grep -q '^asked' p7.out && break; sleep 0.05; done
	grep -q '^asked' p7.out || fail "the hanging prompter was not asked"
	kmx_kill_daemon
	status=0
	wait $cli || status=$?
	assert_eq 5 "$status" "keymuxctl's exit code when keymuxd dies"
	assert_contains "$(cat cli.err)" "keymuxd stopped before it answered"
	# and the store is whole: the next daemon opens it with the password
	kmx_start_daemon
	kmx_device softkey:login Unlock sa{sv} "battery staple" 0
	sign1 >/dev/null
fi
echo "PASS: test-prompt"
