# keymux test harness, sourced by the integration tests.
#
# Every test gets its own temp dir, its own dbus-daemon (never the
# developer's bus), its own data dir and config, and a trap that stops
# everything it started, by PID, whatever way the test ends.
#
#   . "$KMX_TESTS_DIR/harness.sh"
#   kmx_setup                  # temp dir, private bus, KEYMUX_* variables
#                              # (KMX_NO_ACTIVATION=1: keymuxd not activatable)
#   kmx_start_daemon [ARGS]    # start $KEYMUXD, wait until it owns its name
#   kmx_stop_daemon            # SIGTERM, wait for exit
#   kmx_kill_daemon            # SIGKILL
#
# Meson sets KEYMUXD, KEYMUXCTL and KMX_TESTS_DIR.

set -euo pipefail

: "${KEYMUXD:?KEYMUXD must point to the keymuxd binary}"
: "${KMX_TESTS_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"

KMX_NAME=org.keymux.Keystore1
KMX_PATH=/org/keymux/Keystore1
KMX_DAEMON_PID=
KMX_BUS_PID=
KMX_PIDS=()

kmx_log() { printf '# %s\n' "$*" >&2; }

fail() {
	printf 'FAIL: %s\n' "$*" >&2
	if [ -n "${KMX_TMP:-}" ] && [ -f "$KMX_TMP/keymuxd.log" ]; then
		printf -- '--- keymuxd log (last 40 lines) ---\n' >&2
		tail -n 40 "$KMX_TMP/keymuxd.log" >&2 || true
	fi
	exit 1
}

assert_eq() {
	[ "$1" = "$2" ] || fail "${3:-values differ}: expected '$1', got '$2'"
}

assert_contains() {
	case "$1" in
	*"$2"*) ;;
	*) fail "${3:-text does not contain the expected part}: '$2' not in '$1'" ;;
	esac
}

assert_not_contains() {
	case "$1" in
	*"$2"*) fail "${3:-text contains what it must not}: '$2' in '$1'" ;;
	*) ;;
	esac
}

# assert_exit CODE CMD...: run CMD, check its exit status
assert_exit() {
	local want=$1 got=0
	shift
	"$@" >"$KMX_TMP/last.out" 2>"$KMX_TMP/last.err" || got=$?
	[ "$got" = "$want" ] || fail "'$*' exited $got, expected $want; stderr: $(cat "$KMX_TMP/last.err")"
}

# dbus_error_of CMD...: run a busctl/gdbus call that must fail; print the error
kmx_call_error() {
	local out
	if out=$("$@" 2>&1); then
		fail "'$*' succeeded, expected an error: $out"
	fi
	printf '%s\n' "$out"
}

kmx_cleanup() {
	local status=$?
	set +e
	for pid in "${KMX_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	if [ -n "$KMX_DAEMON_PID" ]; then
		kill -TERM "$KMX_DAEMON_PID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$KMX_DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$KMX_DAEMON_PID" 2>/dev/null
	fi
	[ -n "$KMX_BUS_PID" ] && kill "$KMX_BUS_PID" 2>/dev/null
	if [ $status -ne 0 ] && [ -n "${KMX_KEEP_TMP:-}" ]; then
		echo "# kept $KMX_TMP" >&2
	else
		rm -rf "$KMX_TMP"
	fi
	exit $status
}

kmx_setup() {
	KMX_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kmx-test.XXXXXX")
	trap kmx_cleanup EXIT
	trap 'exit 130' INT TERM
	export KEYMUX_DATA_DIR="$KMX_TMP/data"
	export KEYMUX_CONFIG="$KMX_TMP/keymux.conf"
	export G_DEBUG=fatal-criticals
	export TSS2_LOG=all+none
	mkdir -p "$KMX_TMP/services"
	# an activation file for the daemon under test: proves activation works
	# (not with KMX_NO_ACTIVATION=1: a test that kills the daemon under
	# running clients needs their late calls to fail, not to start another)
	if [ -z "${KMX_NO_ACTIVATION:-}" ]; then
		cat >"$KMX_TMP/services/$KMX_NAME.service" <<-EOS
		[D-BUS Service]
		Name=$KMX_NAME
		Exec=$KEYMUXD
		EOS
	fi
	cat >"$KMX_TMP/bus.conf" <<-EOS
	<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
	 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
	<busconfig>
	  <type>session</type>
	  <listen>unix:path=$KMX_TMP/bus.sock</listen>
	  <auth>EXTERNAL</auth>
	  <servicedir>$KMX_TMP/services</servicedir>
	  <policy context="default">
	    <allow send_destination="*" eavesdrop="true"/>
	    <allow eavesdrop="true"/>
	    <allow own="*"/>
	    <allow user="*"/>
	  </policy>
	  <limit name="service_start_timeout">10000</limit>
	  <!-- the limits of a real session bus (session.conf), not the
	       compiled-in ones (128 replies pending per connection): a
	       flood reaches keymuxd as it would in a desktop session -->
	  <limit name="max_incoming_bytes">1000000000</limit>
	  <limit name="max_outgoing_bytes">1000000000</limit>
	  <limit name="max_replies_per_connection">50000</limit>
	  <limit name="max_connections_per_user">100000</limit>
	  <limit name="max_completed_connections">100000</limit>
	</busconfig>
	EOS
	local out
	out=$(dbus-daemon --config-file="$KMX_TMP/bus.conf" --fork --print-address=1 --print-pid=1 --nopidfile 2>/dev/null)
	export DBUS_SESSION_BUS_ADDRESS
	DBUS_SESSION_BUS_ADDRESS=$(sed -n 1p <<<"$out")
	KMX_BUS_PID=$(sed -n 2p <<<"$out")
	[ -n "$KMX_BUS_PID" ] || fail "cannot start a private dbus-daemon"
	unset DBUS_SYSTEM_BUS_ADDRESS
}

# kmx_start_system_bus: a second private bus that the daemon takes for the
# system bus (where logind lives)
kmx_start_system_bus() {
	local out
	sed "s|$KMX_TMP/bus.sock|$KMX_TMP/system.sock|; s|<type>session</type>|<type>system</type>|" \
		"$KMX_TMP/bus.conf" >"$KMX_TMP/system.conf"
	out=$(dbus-daemon --config-file="$KMX_TMP/system.conf" --fork --print-address=1 --print-pid=1 --nopidfile 2>/dev/null)
	export DBUS_SYSTEM_BUS_ADDRESS
	DBUS_SYSTEM_BUS_ADDRESS=$(sed -n 1p <<<"$out")
	KMX_PIDS+=("$(sed -n 2p <<<"$out")")
}

# kmx_name_owner_pid: the pid of the owner of $KMX_NAME, empty if it has none.
# Asks the bus only: `busctl status` also reads /proc and the cgroup file
# system, which a chroot may not have.
kmx_name_owner_pid() {
	busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
		GetConnectionUnixProcessID s "$KMX_NAME" 2>/dev/null | sed -n 's/^u //p'
}

kmx_wait_name() {
	gdbus wait --session --timeout "${1:-20}" "$KMX_NAME" ||
		fail "keymuxd did not take $KMX_NAME in time"
}

kmx_start_daemon() {
	# KMX_DAEMON_WRAPPER="valgrind --leak-check=full" runs the daemon under a tool
	${KMX_DAEMON_WRAPPER:-} "$KEYMUXD" --verbose "$@" >>"$KMX_TMP/keymuxd.log" 2>&1 &
	KMX_DAEMON_PID=$!
	for _ in $(seq 200); do
		if [ "$(kmx_name_owner_pid)" = "$KMX_DAEMON_PID" ]; then
			return 0
		fi
		kill -0 "$KMX_DAEMON_PID" 2>/dev/null || fail "keymuxd exited during start-up"
		sleep 0.05
	done
	fail "keymuxd did not take $KMX_NAME within 10 s"
}

kmx_stop_daemon() {
	[ -n "$KMX_DAEMON_PID" ] || return 0
	kill -TERM "$KMX_DAEMON_PID" 2>/dev/null || true
	local status=0
	wait "$KMX_DAEMON_PID" || status=$?
	KMX_DAEMON_PID=
	return $status
}

kmx_kill_daemon() {
	[ -n "$KMX_DAEMON_PID" ] || return 0
	kill -KILL "$KMX_DAEMON_PID" 2>/dev/null || true
	wait "$KMX_DAEMON_PID" 2>/dev/null || true
	KMX_DAEMON_PID=
}

# kmx_bg CMD...: start a helper process that the cleanup stops
kmx_bg() {
	"$@" &
	KMX_PIDS+=($!)
}

# busctl shorthands on the manager
kmx_manager() {
	busctl --user --timeout=60 call "$KMX_NAME" "$KMX_PATH" org.keymux.Keystore1.Manager "$@"
}

kmx_device_path() {
	# softkey:login -> /org/keymux/Keystore1/devices/softkey_3alogin
	printf '%s/devices/%s\n' "$KMX_PATH" "$(printf '%s' "$1" | sed 's/:/_3a/g; s/-/_2d/g; s/\./_2e/g')"
}

kmx_device() {
	local dev=$1
	shift
	busctl --user --timeout=60 call "$KMX_NAME" "$(kmx_device_path "$dev")" org.keymux.Keystore1.Device "$@"
}

kmx_key() {
	local path=$1
	shift
	busctl --user --timeout=60 call "$KMX_NAME" "$path" org.keymux.Keystore1.Key "$@"
}

kmx_prop() {
	busctl --user get-property "$KMX_NAME" "$1" "$2" "$3"
}

# a property through GLib's gdbus: prints UTF-8 as it is
kmx_gprop() {
	gdbus call --session --dest "$KMX_NAME" --object-path "$1" \
		--method org.freedesktop.DBus.Properties.Get "$2" "$3"
}

# busctl prints ay as 'ay N b1 b2 ...': turn it into a file
kmx_ay_to_file() {
	/usr/bin/python3 -c '
import sys
parts = sys.stdin.read().split()
assert parts[0] == "ay", parts[:2]
n = int(parts[1])
data = bytes(int(x) for x in parts[2:2 + n])
assert len(data) == n
open(sys.argv[1], "wb").write(data)' "$1"
}

# file to busctl 'ay' arguments: N b1 b2 ...
kmx_file_to_ay() {
	/usr/bin/python3 -c '
import sys
d = open(sys.argv[1], "rb").read()
print(len(d), *d)' "$1"
}
