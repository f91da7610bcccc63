#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keymuxctl goes through libkeymux: each run opens a connection of its own
# to keymuxd (Manager.OpenConnection, seen in keymuxd's log and audit),
# KEYMUX_PEER_TO_PEER=0 keeps it on the bus and =1 requires the peer
# connection, and either way the output and exit codes are the same.
. "$KMX_TESTS_DIR/harness.sh"
: "${KEYMUXCTL:?KEYMUXCTL must point to the keymuxctl binary}"
kmx_setup
cd "$KMX_TMP"
printf '[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"
kmx_start_daemon

LOG=$KMX_TMP/keymuxd.log
# the peer connections keymuxd has served and seen closed so far
peers_closed() { grep -c "peer connection of .*/peer[0-9]* closed" "$LOG" || true; }
# wait_peers N: until keymuxd has seen N peer connections close
wait_peers() { until_ok test "$(peers_closed)" -ge "$1" || fail "keymuxd saw $(peers_closed) peer connections close, wanted $1"; }

# ---- keymuxctl is linked to libkeymux, not to the generated proxies ----
objdump -p "$KEYMUXCTL" >headers.txt
grep -q 'NEEDED *libkeymux-1\.so\.1' headers.txt || fail "keymuxctl does not link libkeymux-1"
objdump -t "$KEYMUXCTL" >syms.txt
grep -q ' kmx_cli_connect$' syms.txt || fail "objdump -t sees no symbols of keymuxctl"
syms=$(grep -c ' kmx_dbus_' syms.txt || true)
[ "$syms" = 0 ] || fail "keymuxctl still has $syms gdbus-codegen symbols"

# ---- every run opens one connection of its own ----
n=$(peers_closed)
assert_exit 0 "$KEYMUXCTL" generate ed25519 --label "lib key"
id=$(cat "$KMX_TMP/last.out")
[ -n "$id" ] || fail "generate printed no id"
wait_peers $((n + 1))
printf 'through the library\n' >msg
assert_exit 0 "$KEYMUXCTL" sign "$id" msg
cp "$KMX_TMP/last.out" p2p.sig
wait_peers $((n + 2))
# the audit record names keymuxctl, which asked on its own connection
grep -q "sign key $id by pid [0-9]* (.*keymuxctl)" "$LOG" || fail "no audit record of keymuxctl's signature"

# ---- KEYMUX_PEER_TO_PEER=0: the bus, no OpenConnection, the same answers ----
# every OpenConnection on the bus, in the bus's order
kmx_bg dbus-monitor --session "type='method_call',member='OpenConnection'" >opens.log 2>&1
opens() { grep -c 'member=OpenConnection' opens.log || true; }
# a run of keymuxctl's own shows up once the monitor is there
monitor_sees_one() { "$KEYMUXCTL" devices >/dev/null && [ "$(opens)" -ge 1 ]; }
until_ok monitor_sees_one || fail "dbus-monitor saw no OpenConnection of keymuxctl"
c=$(opens)
KEYMUX_PEER_TO_PEER=0 "$KEYMUXCTL" keys >/dev/null || fail "keys on the bus"
KEYMUX_PEER_TO_PEER=0 "$KEYMUXCTL" sign "$id" msg >/dev/null || fail "sign on the bus"
# then one run that opens a connection: the bus shows it after the others
"$KEYMUXCTL" devices >/dev/null || fail "devices"
until_ok test "$(opens)" -ge $((c + 1)) || fail "no OpenConnection of the last run"
assert_eq $((c + 1)) "$(opens)" "OpenConnection calls although KEYMUX_PEER_TO_PEER=0"
out_p2p() { "$KEYMUXCTL" "$@"; }
out_bus() { KEYMUX_PEER_TO_PEER=0 "$KEYMUXCTL" "$@"; }
for cmd in "devices" "keys" "keys --json" "devices --json" "info $id" "info --json $id" \
	"info softkey:login" "export-public $id" "export-public --ssh $id" "version --json"; do
	# shellcheck disable=SC2086
	a=$(out_p2p $cmd) || fail "keymuxctl $cmd failed on the peer connection"
	# shellcheck disable=SC2086
	b=$(out_bus $cmd) || fail "keymuxctl $cmd failed on the bus"
	assert_eq "$a" "$b" "keymuxctl $cmd: the peer connection and the bus differ"
done
KEYMUX_PEER_TO_PEER=0 "$KEYMUXCTL" sign "$id" msg >bus.sig || fail "sign on the bus"
cmp -s p2p.sig bus.sig || fail "the Ed25519 signatures on the peer connection and on the bus differ"
# exit codes: not found, locked with nobody to ask, bad usage
for mode in "" 0; do
	KEYMUX_PEER_TO_PEER=$mode assert_exit 3 "$KEYMUXCTL" sign ffffffffffff msg
	assert_contains "$(cat last.err)" "no key 'ffffffffffff'"
	KEYMUX_PEER_TO_PEER=$mode assert_exit 2 "$KEYMUXCTL" sign "$id" msg --algorithm nonsense
	cp last.err "usage-$mode.err"
done
cmp -s usage-.err usage-0.err || fail "the errors differ: $(cat usage-.err) / $(cat usage-0.err)"
printf '\nlib secret\n' | "$KEYMUXCTL" passwd softkey:login || fail "passwd"
"$KEYMUXCTL" lock softkey:login || fail "lock"
for mode in "" 0; do
	KEYMUX_PEER_TO_PEER=$mode assert_exit 4 "$KEYMUXCTL" sign "$id" msg </dev/null
	assert_contains "$(cat last.err)" "nobody can be asked"
done
printf 'lib secret\n' | "$KEYMUXCTL" unlock softkey:login || fail "unlock"

# ---- KEYMUX_PEER_TO_PEER=1: the peer connection or nothing ----
n=$(peers_closed)
KEYMUX_PEER_TO_PEER=1 "$KEYMUXCTL" sign "$id" msg >forced.sig || fail "sign with the peer connection required"
cmp -s p2p.sig forced.sig || fail "the forced peer connection signed differently"
wait_peers $((n + 1))
# the bus denies OpenConnection (the last matching rule wins): Denied
sed -i 's|</policy>|<deny send_interface="org.keymux.Keystore1.Manager" send_member="OpenConnection"/>&|' "$KMX_TMP/bus.conf"
busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig >/dev/null
KEYMUX_PEER_TO_PEER=1 assert_exit 6 "$KEYMUXCTL" keys
assert_contains "$(cat last.err)" "no connection of its own to keymuxd"
assert_eq 1 "$(grep -c '' last.err)" "one error line"
# without the switch keymuxctl falls back to the bus and says nothing of it
n=$(peers_closed)
assert_exit 0 "$KEYMUXCTL" sign "$id" msg
cmp -s p2p.sig last.out || fail "the fallback to the bus signed differently"
assert_eq "" "$(cat last.err)" "the fallback to the bus is silent"
assert_exit 0 "$KEYMUXCTL" keys --json
assert_contains "$(cat last.out)" "\"id\":\"$id\""
assert_eq "$n" "$(peers_closed)" "a peer connection although the bus denies OpenConnection"

# ---- monitor stays on the bus (KeymuxClient:running): it sees keymuxd
# stop and start again, which a peer connection, closed with it, cannot ----
"$KEYMUXCTL" monitor >mon.out 2>mon.err &
mon=$!
KMX_PIDS+=("$mon")
until_ok grep -q "Ctrl-C to stop" mon.err || fail "the monitor did not start: $(cat mon.err)"
assert_contains "$(cat mon.err)" "(running)"
kmx_stop_daemon
until_ok grep -q "^service-stopped" mon.out || fail "no service-stopped: $(cat mon.out)"
kmx_start_daemon
until_ok grep -q "^service-started" mon.out || fail "no service-started: $(cat mon.out)"
until_ok grep -q "^device-added softkey:login" mon.out || fail "no device-added: $(cat mon.out)"
"$KEYMUXCTL" set-label "$id" "renamed" || fail "set-label"
until_ok grep -q "^key-changed $id device=softkey:login Label='renamed'" mon.out ||
	fail "no key-changed: $(cat mon.out)"
kill -INT "$mon"
status=0
wait "$mon" || status=$?
assert_eq 0 "$status" "the monitor's exit status after Ctrl-C"

kmx_log "test-cli-lib: all passed"
