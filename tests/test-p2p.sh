#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Manager.OpenConnection (DESIGN.md §4, §10): the same objects on a private
# peer-to-peer connection, for the caller alone, with the same authorisation
# and audit; closing it cancels what it had in flight and drops its
# prompters; opening and closing many leaks nothing.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
: "${KMX_TEST_P2P:?}" "${KMX_TEST_PROMPTER:?}"
cd "$KMX_TMP"
printf '[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
# background clients are started without this function, so that $! is the
# client itself and the cleanup stops it (not a subshell that leaves it behind)
p2p() { "$KMX_TEST_P2P" "$@"; }
dev=$(kmx_device_path softkey:login)
locked() { kmx_prop "$dev" org.keymux.Keystore1.Device Locked; }
generate() {
	kmx_device softkey:login GenerateKey ssa{sv} "$1" "p2p $1" 0 | sed -n 's/^o "\(.*\)"$/\1/p'
}
ed=$(generate ed25519)
rsa=$(generate rsa2048)
pubkey "$ed" ed.pub
pubkey "$rsa" rsa.pub
ed_id=${ed##*/}
rsa_id=${rsa##*/}

# ---- list over a peer connection: the same objects as on the bus ----
out=$(p2p list)
assert_contains "$out" "key $ed"
assert_contains "$out" "key $rsa"
assert_contains "$out" "objects 3" "GetManagedObjects: the device and its two keys"
assert_contains "$out" "version (<'"

# ---- sign and decrypt over it, checked by openssl ----
printf 'signed over a peer connection\n' >msg
p2p sign "$ed_id" ed25519 msg msg.sig
openssl pkeyutl -verify -pubin -inkey ed.pub -rawin -in msg -sigfile msg.sig >/dev/null ||
	fail "the Ed25519 signature made over a peer connection does not verify"
printf 'a secret for the peer\n' >plain
openssl pkeyutl -encrypt -pubin -inkey rsa.pub -pkeyopt rsa_padding_mode:oaep \
	-pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in plain -out ct
p2p decrypt "$rsa_id" rsa-oaep-sha256 ct out
cmp -s plain out || fail "decrypt over a peer connection"
# errors arrive as on the bus
err=$(kmx_call_error p2p sign "$ed_id" ed448 msg x.sig)
assert_contains "$err" "org.keymux.Keystore1.Error.InvalidArgument"
err=$(kmx_call_error p2p decrypt "$ed_id" rsa-pkcs1 msg x)
assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported"

# ---- audited as the process that opened it ----
p2p sign "${ed_id:0:12}" ed25519 msg msg2.sig
grep -q "sign key $ed_id by pid [0-9]* (.*kmx-test-p2p)" "$KMX_TMP/keymuxd.log" ||
	fail "no audit record naming the peer connection's process"

# ---- property changes and new objects are signalled on the peer connection ----
"$KMX_TEST_P2P" watch "renamed on the bus" >watch.out 2>watch.err &
wpid=$!
KMX_PIDS+=($wpid)
for _ in $(seq 400); do grep -q ready watch.out && break; sleep 0.05; done
grep -q ready watch.out || fail "the watcher did not start: $(cat watch.err)"
kmx_key "$ed" SetLabel s "renamed on the bus"
wait "$wpid" || fail "the watcher failed: $(cat watch.err)"
assert_contains "$(cat watch.out)" "signal $ed org.freedesktop.DBus.Properties.PropertiesChanged ('org.keymux.Keystore1.Key', {'Label': <'renamed on the bus'>}"
"$KMX_TEST_P2P" watch InterfacesAdded >watch2.out 2>watch2.err &
wpid=$!
KMX_PIDS+=($wpid)
for _ in $(seq 400); do grep -q ready watch2.out && break; sleep 0.05; done
ec=$(generate ecdsa-p256)
wait "$wpid" || fail "the watcher failed: $(cat watch2.err)"
assert_contains "$(cat watch2.out)" "InterfacesAdded ('$ec'"

# ---- a prompter registered on a peer connection is asked, then dropped with it ----
kmx_device softkey:login ChangeSecret ss "" "peer secret"
kmx_device softkey:login Lock
assert_eq "b true" "$(locked)"
"$KMX_TEST_P2P" prompter "peer secret" >pr.out 2>pr.err &
ppid=$!
KMX_PIDS+=($ppid)
for _ in $(seq 400); do grep -q ready pr.out && break; sleep 0.05; done
grep -q ready pr.out || fail "the peer prompter did not register: $(cat pr.err)"
kmx_device softkey:login Unlock sa{sv} "" 0
assert_eq "b false" "$(locked)"
assert_contains "$(cat pr.out)" "asked $dev"
kill "$ppid"
wait "$ppid" 2>/dev/null || true
kmx_device softkey:login Lock
# the daemon hears of the closed connection on its own: no prompter left
for _ in $(seq 200); do grep -q "prompter of a peer connection /prompter left" "$KMX_TMP/keymuxd.log" && break; sleep 0.05; done
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$dev" \
	--method org.keymux.Keystore1.Device.Unlock "" '{}')
assert_contains "$err" "no prompter is registered"

# ---- a caller that closes its connection mid-request: the request is
# cancelled where it waits for the prompter ----
"$KMX_TEST_PROMPTER" --mode hang >hang.out 2>hang.err &
hpid=$!
KMX_PIDS+=($hpid)
for _ in $(seq 400); do grep -q ready hang.out && break; sleep 0.05; done
coproc CLOSER { exec "$KMX_TEST_P2P" call-and-close "$ed" 2>closer.err; }
KMX_PIDS+=($CLOSER_PID)
# bash unsets CLOSER once the coprocess exits: keep its pipes in fds of our own
exec {closer_out}<&"${CLOSER[0]}" {closer_in}>&"${CLOSER[1]}"
read -r line <&"$closer_out"
assert_eq sent "$line"
for _ in $(seq 400); do grep -q '^asked' hang.out && break; sleep 0.05; done
grep -q '^asked' hang.out || fail "the prompter was not asked for the peer's request"
grep -q "the request was cancelled" "$KMX_TMP/keymuxd.log" && fail "cancelled before the connection closed"
echo close >&"$closer_in"
read -r line <&"$closer_out"
assert_eq closed "$line"
exec {closer_out}<&- {closer_in}>&-
for _ in $(seq 400); do grep -q "sign key $ed_id by pid .*the request was cancelled" "$KMX_TMP/keymuxd.log" && break; sleep 0.05; done
grep -q "sign key $ed_id by pid .*the request was cancelled while waiting for the secret" "$KMX_TMP/keymuxd.log" ||
	fail "the closed connection's request was not cancelled"
assert_eq "b true" "$(locked)"
kill "$hpid"
wait "$hpid" 2>/dev/null || true

# ---- the authorisation hook: another user cannot open a connection ----
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 0755 "$KMX_TMP"
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups "$KMX_TEST_P2P" list)
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
else
	kmx_log "not root: the other-user check of OpenConnection runs in CI"
fi

# ---- many connections, opened and closed, abandoned, fed garbage: no fd leaks ----
fds() { find "/proc/$KMX_DAEMON_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
p2p churn 5 >/dev/null
kmx_manager ListDevices >/dev/null
before=$(fds)
assert_eq done "$(p2p churn 200)"
assert_eq done "$(p2p abandon 50)"
assert_eq done "$(p2p garbage 50)"
# the daemon sees every close, then answers this
after=
for _ in $(seq 200); do
	kmx_manager ListDevices >/dev/null
	after=$(fds)
	[ "$after" -le "$before" ] && break
	sleep 0.05
done
assert_eq "$before" "$after" "file descriptors of keymuxd before and after 300 peer connections"

# ---- handshakes never done: every slot taken by a client that holds its
# end and says nothing; each is given up after its deadline, and a new
# client gets in (without it, never) ----
mkfifo hold.in
exec 7<>hold.in
"$KMX_TEST_P2P" hold 256 <hold.in >hold.out 2>&1 &
KMX_PIDS+=($!)
for _ in $(seq 1200); do grep -q . hold.out && break; sleep 0.05; done
assert_contains "$(cat hold.out)" "too many peer connections (256)"
assert_contains "$(cat hold.out)" "full "
ok=
for _ in $(seq 120); do
	if p2p list >/dev/null 2>list.err; then ok=1; break; fi
	assert_contains "$(cat list.err)" "too many peer connections"
	sleep 0.5
done
[ -n "$ok" ] || fail "256 handshakes never done keep every peer slot: $(cat list.err)"
exec 7>&-
kill -0 "$KMX_DAEMON_PID" || fail "keymuxd died"
