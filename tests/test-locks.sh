#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Everything locks when the session locks or the system sleeps (DESIGN.md
# §5): logind's PrepareForSleep with a delay inhibitor released only once
# every device is locked and taken again on resume, logind's Session.Lock
# on the caller's session (GetSessionByPID) or the user's display session,
# the screen saver's ActiveChanged, and [daemon] lock-on-screen-lock and
# lock-on-suspend.  logind and the screen saver are stand-ins
# (tests/kmx-test-logind.c) on private buses.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
: "${KMX_TEST_LOGIND:?}"
cd "$KMX_TMP"

T=$KEYMUX_DATA_DIR/test
mkdir -p "$T/plugged"
printf '[device]\npin=123456\nadmin-pin=12345678\ndelay-ms=1500\n' >"$T/plugged/0001"
conf() { printf '[backends]\ntest=true\n[daemon]\nidle-lock-timeout=0\n%s\n' "$*" >"$KEYMUX_CONFIG"; }
conf ""
SOFT=$(kmx_device_path softkey:login)
TEST=$(kmx_device_path test:0001)
locked() { kmx_prop "$1" org.keymux.Keystore1.Device Locked; }
# wait_line FILE PATTERN: until a line of FILE matches (grep -E)
wait_line() {
	for _ in $(seq 400); do grep -qE "$2" "$1" && return 0; sleep 0.05; done
	fail "no line '$2' in $1: $(cat "$1")"
}
# until_locked DEV [CMD]: run CMD (a signal to send again: the daemon may
# subscribe after the stand-in is ready) until DEV is locked
until_locked() {
	for _ in $(seq 200); do
		[ -z "${2:-}" ] || eval "$2"
		[ "$(locked "$1")" = "b true" ] && return 0
		sleep 0.05
	done
	fail "$1 did not lock"
}

# start_logind NAME [ARGS]: a logind stand-in fed through fd 7.  It takes
# its name without queueing, so the one before it (which ends when the
# caller closes fd 7) must have left the bus first
logind_pid=
login1_free() {
	! busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
		GetNameOwner s org.freedesktop.login1
}
start_logind() {
	local name=$1
	shift
	if [ -n "$logind_pid" ]; then
		wait "$logind_pid" || true
		until_ok login1_free
	fi
	rm -f "$name.in"
	mkfifo "$name.in"
	"$KMX_TEST_LOGIND" --snapshot "$T/log" "$@" <"$name.in" >"$name.out" 2>"$name.err" &
	logind_pid=$!
	KMX_PIDS+=($!)
	exec 7>"$name.in"
	wait_line "$name.out" '^ready$'
}

kmx_start_system_bus
start_logind l1
kmx_start_daemon
# the inhibitor is held from the start, and the session is asked for by pid
wait_line l1.out "^inhibit 1 sleep keymux 'Lock keys before sleep' delay$"
wait_line l1.out "^get-session-by-pid $KMX_DAEMON_PID$"

kmx_device softkey:login ChangeSecret ss "" "pw"
kmx_device softkey:login Unlock sa{sv} "pw" 0
kmx_device test:0001 Unlock sa{sv} 123456 0
key=$(kmx_device test:0001 GenerateKey ssa{sv} ed25519 k 1 admin-secret s 12345678 |
	sed -n 's/^o "\(.*\)"$/\1/p')
assert_eq "b false" "$(locked "$SOFT")"
assert_eq "b false" "$(locked "$TEST")"

# ---- suspend: the inhibitor goes only once every device has locked, even
# one busy with a 1.5 s signature when the system wants to sleep ----
(kmx_key "$key" Sign saya{sv} ed25519 2 104 105 0 >sign.out 2>&1; echo "exit $?" >>sign.out) &
sleep 0.5 # the signature is under way: missing that only weakens the check
echo "sleep true" >&7
wait_line l1.out '^snapshot done$'
snapshot=$(sed -n '/^released 1$/,/^snapshot done$/p' l1.out)
assert_contains "$snapshot" "snapshot: lock 0001 ok" \
	"the test device was locked (behind its signature) before the inhibitor was released"
assert_eq "b true" "$(locked "$SOFT")"
assert_eq "b true" "$(locked "$TEST")"
wait_line sign.out '^exit'
assert_contains "$(cat sign.out)" "exit 0" "the signature under way completed"
assert_not_contains "$(cat l1.out)" "inhibit 2" "no new inhibitor before resume"

# ---- LockAll replies once every device has locked: Locked read right
# after the reply is true, with a 1.5 s signature under way on the test
# device, whose lock waits behind it ----
signs() { grep -c '^sign 0001 ' "$T/log" || true; }
signs_past() { [ "$(signs)" -gt "$1" ]; }
kmx_device softkey:login Unlock sa{sv} "pw" 0
kmx_device test:0001 Unlock sa{sv} 123456 0
before=$(signs)
(kmx_key "$key" Sign saya{sv} ed25519 2 104 105 0 >sign2.out 2>&1; echo "exit $?" >>sign2.out) &
until_ok signs_past "$before"
kmx_manager LockAll
assert_eq "b true" "$(locked "$TEST")" "the busy device's Locked right after LockAll's reply"
assert_eq "b true" "$(locked "$SOFT")" "the store's Locked right after LockAll's reply"
wait_line sign2.out '^exit'
assert_contains "$(cat sign2.out)" "exit 0" "the signature under way completed"

# ---- the other session's lock is not ours; resume takes a new inhibitor ----
kmx_device softkey:login Unlock sa{sv} "pw" 0
echo "lock /org/freedesktop/login1/session/other" >&7
echo "sleep false" >&7
# the daemon handles logind's signals in order: the new inhibitor means it
# has seen the other session's Lock too
wait_line l1.out "^inhibit 2 sleep keymux 'Lock keys before sleep' delay$"
assert_eq "b false" "$(locked "$SOFT")" "another session's Lock does not lock"

# ---- Session.Lock of our session locks everything ----
until_locked "$SOFT" "echo lock >&7"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "session /org/freedesktop/login1/session/c1 is locking"

# ---- the screen saver's ActiveChanged(true), GNOME's and freedesktop's ----
exec 8>&-
for name in org.gnome.ScreenSaver org.freedesktop.ScreenSaver; do
	kmx_device softkey:login Unlock sa{sv} "pw" 0
	mkfifo "$name.in"
	"$KMX_TEST_LOGIND" --screen-saver "$name" <"$name.in" >"$name.out" 2>"$name.err" &
	KMX_PIDS+=($!)
	exec 8>"$name.in"
	wait_line "$name.out" '^ready$'
	echo false >&8
	wait_line "$name.out" '^emitted ActiveChanged false$'
	until_locked "$SOFT" "echo true >&8"
	exec 8>&-
done

# ---- a daemon in no session (started by systemd --user) follows the
# user's display session ----
kmx_stop_daemon
exec 7>&-
start_logind l2 --no-session --session /org/freedesktop/login1/session/c2
kmx_start_daemon
wait_line l2.out "^get-session-by-pid $KMX_DAEMON_PID$"
wait_line l2.out "^get-user $(id -u)$"
kmx_device softkey:login Unlock sa{sv} "pw" 0
until_locked "$SOFT" "echo lock >&7"

# ---- lock-on-screen-lock=false: the session's lock and the screen saver
# change nothing ----
kmx_stop_daemon
exec 7>&-
conf "lock-on-screen-lock=false"
start_logind l3
kmx_start_daemon
wait_line l3.out '^inhibit 1 '
echo "sleep true" >&7
wait_line l3.out '^snapshot done$'
kmx_device softkey:login Unlock sa{sv} "pw" 0
echo "lock" >&7
echo "sleep false" >&7
wait_line l3.out '^inhibit 2 '
assert_eq "b false" "$(locked "$SOFT")" "lock-on-screen-lock=false: Session.Lock does not lock"
assert_not_contains "$(cat l3.out)" "get-session-by-pid"

# ---- lock-on-suspend=false: no inhibitor (the daemon asks for its session
# after it would have asked for one) ----
kmx_stop_daemon
exec 7>&-
conf "lock-on-suspend=false"
start_logind l4
kmx_start_daemon
wait_line l4.out "^get-session-by-pid $KMX_DAEMON_PID$"
assert_not_contains "$(cat l4.out)" "inhibit" "lock-on-suspend=false: no inhibitor"
exec 7>&-
echo "ok"
