# SPDX-License-Identifier: LGPL-2.1-or-later
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
#   kmx_own_pcscd "$@"         # first thing in a card test: run it in a mount
#                              # namespace of its own (a private /run/pcscd)
#   kmx_start_pcscd            # pcscd with the vpcd virtual readers (a free
#                              # port pair: KMX_VPCD_PORT and the one after)
#   kmx_start_card_sim [ARGS]  # the OpenPGP card simulator, inserted in it
#   kmx_card_pull / kmx_card_insert
#   kmx_start_system_prompter  # gcr's mock system prompter, scripted by sp
#   kmx_start_swtpm            # a TPM 2.0 simulator in $KMX_TMP/tpm; sets
#                              # KMX_SWTPM_TCTI (its state survives a restart)
#   kmx_stop_swtpm             # TPM2 shut down through the control channel
#   kmx_kill_swtpm             # SIGKILL: a TPM that vanishes mid-command
#
# Meson sets KEYMUXD, KEYMUXCTL and KMX_TESTS_DIR.

set -euo pipefail

: "${KEYMUXD:?KEYMUXD must point to the keymuxd binary}"
: "${KMX_TESTS_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"

KMX_NAME=org.keymux.Keystore1
KMX_PATH=/org/keymux/Keystore1
KMX_DAEMON_PID=
KMX_BUS_PID=
KMX_SWTPM_PID=
KMX_PIDS=()
KMX_PCSCD_PID=
KMX_CARD_PID=
# pcscd's socket: the path is fixed (pcscd ignores PCSCLITE_CSOCK_NAME, its
# clients honour it)
KMX_PCSCD_DIR=/run/pcscd

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

# until_ok CMD...: until CMD succeeds (events, not a fixed sleep)
until_ok() {
	for _ in $(seq 400); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.025
	done
	fail "timed out waiting for: $*"
}

# conditions to wait for with until_ok: a device (by object path) is listed
# or not; a device property has a value as busctl prints it ("b true")
listed() { kmx_manager ListDevices | grep -q "$1"; }
not_listed() { ! listed "$1"; }
prop_is() { [ "$(kmx_prop "$1" org.keymux.Keystore1.Device "$2")" = "$3" ]; }

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
	[ -n "$KMX_CARD_PID" ] && kill "$KMX_CARD_PID" 2>/dev/null
	kmx_stop_pcscd
	[ -n "$KMX_SWTPM_PID" ] && kill "$KMX_SWTPM_PID" 2>/dev/null
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
	# no test sees a pcscd it did not start (kmx_start_pcscd points here)
	export PCSCLITE_CSOCK_NAME="$KMX_TMP/no-pcscd.comm"
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

# kmx_start_bare_bus: a third private bus on which nothing is activatable
# (no keymuxd, and none can be started); its address in KMX_BARE_ADDRESS
kmx_start_bare_bus() {
	local out
	cat >"$KMX_TMP/bare.conf" <<-EOS
	<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
	 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
	<busconfig>
	  <type>session</type>
	  <listen>unix:path=$KMX_TMP/bare.sock</listen>
	  <auth>EXTERNAL</auth>
	  <policy context="default">
	    <allow send_destination="*" eavesdrop="true"/>
	    <allow eavesdrop="true"/>
	    <allow own="*"/>
	  </policy>
	</busconfig>
	EOS
	out=$(dbus-daemon --config-file="$KMX_TMP/bare.conf" --fork --nopidfile --print-address=1 --print-pid=1) ||
		fail "cannot start a bare dbus-daemon"
	KMX_BARE_ADDRESS=$(sed -n 1p <<<"$out")
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

# pubkey PATH FILE: the public key of the key at PATH, as PEM in FILE (and
# its DER SubjectPublicKeyInfo in FILE.der)
pubkey() {
	kmx_prop "$1" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$2.der"
	openssl pkey -pubin -inform DER -in "$2.der" -out "$2"
}

# kmx_check_rsa_decrypt PATH PUB: openssl's PKCS#1 v1.5 and OAEP (SHA-256)
# ciphertexts of "secret words" for PUB (PEM) decrypt with the key at PATH;
# plain, ct.pkcs1 and ct.oaep stay in the current directory
kmx_check_rsa_decrypt() {
	printf 'secret words' >plain
	openssl pkeyutl -encrypt -pubin -inkey "$2" -in plain -out ct.pkcs1
	# shellcheck disable=SC2046
	kmx_key "$1" Decrypt saya{sv} rsa-pkcs1 $(kmx_file_to_ay ct.pkcs1) 0 | kmx_ay_to_file out
	assert_eq "secret words" "$(cat out)" "rsa-pkcs1 decrypt"
	openssl pkeyutl -encrypt -pubin -inkey "$2" -pkeyopt rsa_padding_mode:oaep \
		-pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in plain -out ct.oaep
	# shellcheck disable=SC2046
	kmx_key "$1" Decrypt saya{sv} rsa-oaep-sha256 $(kmx_file_to_ay ct.oaep) 0 | kmx_ay_to_file out
	assert_eq "secret words" "$(cat out)" "rsa-oaep-sha256 decrypt"
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

# kmx_own_pcscd "$@": pcscd's socket and pid file are at a fixed path
# (/run/pcscd), so two card tests, or a card test and the system's pcscd,
# would meet there.  Called first in a card test, this runs the test again
# in a mount namespace of its own with a tmpfs on /run/pcscd (as root, or
# in a user namespace as root there); where no namespace can be made, the
# test goes on sharing /run/pcscd and says so.
kmx_own_pcscd() {
	[ -n "${KMX_PCSCD_NS:-}" ] && return 0
	mkdir -p "$KMX_PCSCD_DIR" 2>/dev/null || true
	local userns=
	[ "$(id -u)" = 0 ] || userns=--map-root-user
	# shellcheck disable=SC2086
	if unshare --mount --propagation private $userns true 2>/dev/null; then
		KMX_PCSCD_NS=1 exec unshare --mount --propagation private $userns \
			/bin/sh -c 'mount -t tmpfs -o mode=0755 kmx-pcscd "$0" && exec /bin/bash "$@"' \
			"$KMX_PCSCD_DIR" "$0" "$@"
	fi
	kmx_log "no mount namespace here: this test shares $KMX_PCSCD_DIR with any other pcscd"
}

# kmx_free_port_pair: an even TCP port that is free, and the one after it
# (vpcd's two readers)
kmx_free_port_pair() {
	/usr/bin/python3 -c '
import random, socket
for _ in range(200):
    port = random.randrange(20000, 60000, 2)
    socks = []
    try:
        for p in (port, port + 1):
            s = socket.socket()
            socks.append(s)
            s.bind(("", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(port)
    break
else:
    raise SystemExit("no free port pair")'
}

# kmx_start_pcscd: a pcscd of the test's own with the vpcd driver (reader
# "Virtual PCD 00 00" on TCP port KMX_VPCD_PORT, "... 00 01" on the next
# one), and the clients pointed at it.  The port pair is picked once per
# test, so a pcscd started again has the same readers.
kmx_start_pcscd() {
	local conf=$KMX_TMP/reader.conf.d pid
	[ -n "${KMX_VPCD_PORT:-}" ] || KMX_VPCD_PORT=$(kmx_free_port_pair)
	export KMX_VPCD_PORT
	mkdir -p "$conf"
	cat >"$conf/vpcd" <<-EOS
	FRIENDLYNAME "Virtual PCD"
	DEVICENAME   /dev/null:$(printf '0x%X' "$KMX_VPCD_PORT")
	LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so
	CHANNELID    $(printf '0x%X' "$KMX_VPCD_PORT")
	EOS
	# a pcscd that was killed leaves its socket and pid file behind
	if [ -f "$KMX_PCSCD_DIR/pcscd.pid" ]; then
		pid=$(tr -d '\0' <"$KMX_PCSCD_DIR/pcscd.pid" 2>/dev/null || true)
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			fail "another pcscd (pid $pid) is running: stop it first"
		fi
		rm -f "$KMX_PCSCD_DIR/pcscd.pid" "$KMX_PCSCD_DIR/pcscd.comm"
	fi
	pcscd -f -a -c "$conf" >>"$KMX_TMP/pcscd.log" 2>&1 &
	KMX_PCSCD_PID=$!
	for _ in $(seq 200); do
		[ -S "$KMX_PCSCD_DIR/pcscd.comm" ] && break
		kill -0 "$KMX_PCSCD_PID" 2>/dev/null || fail "pcscd exited: $(tail -n 5 "$KMX_TMP/pcscd.log")"
		sleep 0.025
	done
	[ -S "$KMX_PCSCD_DIR/pcscd.comm" ] || fail "pcscd made no socket in 5 s"
	export PCSCLITE_CSOCK_NAME="$KMX_PCSCD_DIR/pcscd.comm"
}

# kmx_stop_pcscd: SIGTERM by its pid, and wait until it is gone
kmx_stop_pcscd() {
	[ -n "$KMX_PCSCD_PID" ] || return 0
	kill -TERM "$KMX_PCSCD_PID" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$KMX_PCSCD_PID" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$KMX_PCSCD_PID" 2>/dev/null || true
	wait "$KMX_PCSCD_PID" 2>/dev/null || true
	KMX_PCSCD_PID=
}

# kmx_start_card_sim [ARGS]: the OpenPGP card simulator (tests/openpgp-card-sim.py),
# inserted in the first vpcd reader; its APDUs go to $KMX_TMP/card.log
kmx_start_card_sim() {
	/usr/bin/python3 "$KMX_TESTS_DIR/openpgp-card-sim.py" --port "$KMX_VPCD_PORT" \
		--log "$KMX_TMP/card.log" "$@" \
		>>"$KMX_TMP/card-sim.out" 2>&1 &
	KMX_CARD_PID=$!
}
kmx_card_pull() { kill -USR1 "$KMX_CARD_PID"; }
kmx_card_insert() { kill -USR2 "$KMX_CARD_PID"; }

# kmx_start_system_prompter: gcr's mock system prompter
# ($KMX_TEST_SYSTEM_PROMPTER) on the test's bus, owning its name; it runs in
# the current directory, takes the steps sp writes to fd 8 and prints to
# sp.out (errors to sp.err)
kmx_start_system_prompter() {
	mkfifo sp.in
	"$KMX_TEST_SYSTEM_PROMPTER" <sp.in >sp.out 2>sp.err &
	KMX_PIDS+=($!)
	exec 8>sp.in
	echo own >&8
	for _ in $(seq 400); do grep -q '^ready' sp.out && break; sleep 0.05; done
	grep -q '^ready' sp.out || fail "the mock system prompter did not start: $(cat sp.err)"
}
kmx_system_prompter_done() { grep -c '^done' sp.out || true; }
# sp COMMAND: one scripted step, done when the prompter says so
sp() {
	local before
	before=$(kmx_system_prompter_done)
	echo "$*" >&8
	for _ in $(seq 400); do [ "$(kmx_system_prompter_done)" -gt "$before" ] && return; sleep 0.05; done
	fail "the system prompter did not take '$*': $(cat sp.err)"
}
# ---- TPM 2.0: swtpm in socket mode (docs: TESTBED.md section 2) ----

# kmx_start_swtpm: start swtpm on a unix socket in $KMX_TMP/tpm, with no
# swtpm_setup (an empty state dir is a new TPM) and TPM2_Startup done by
# swtpm itself; the state dir is kept, so a TPM stopped and started again
# is the same TPM.  Sets KMX_SWTPM_TCTI for tpm2-tss and tpm2-tools.
kmx_start_swtpm() {
	local d=$KMX_TMP/tpm
	[ -z "$KMX_SWTPM_PID" ] || fail "swtpm is already running"
	mkdir -p "$d/state"
	# the kernel's limit for a unix socket path (sun_path) is 108 bytes;
	# the swtpm TCTI finds the control socket at <path>.ctrl
	[ ${#d} -lt 90 ] || fail "the temp dir is too long for swtpm's sockets: $d"
	rm -f "$d/swtpm.sock" "$d/swtpm.sock.ctrl" "$d/swtpm.pid"
	swtpm socket --tpm2 --tpmstate dir="$d/state" \
		--server type=unixio,path="$d/swtpm.sock" --ctrl type=unixio,path="$d/swtpm.sock.ctrl" \
		--flags not-need-init,startup-clear --pid file="$d/swtpm.pid" 2>>"$d/swtpm.log" &
	KMX_SWTPM_PID=$!
	for _ in $(seq 200); do
		[ -S "$d/swtpm.sock" ] && [ -S "$d/swtpm.sock.ctrl" ] && break
		kill -0 "$KMX_SWTPM_PID" 2>/dev/null || fail "swtpm exited: $(cat "$d/swtpm.log")"
		sleep 0.025
	done
	[ -S "$d/swtpm.sock" ] || fail "swtpm did not listen within 5 s"
	export KMX_SWTPM_TCTI="swtpm:path=$d/swtpm.sock"
	export TPM2TOOLS_TCTI=$KMX_SWTPM_TCTI TPM2OPENSSL_TCTI=$KMX_SWTPM_TCTI
}

# kmx_stop_swtpm: a clean stop (TPM2_Shutdown, then exit) through the
# control channel; the process is waited for by its PID and killed if it
# does not go
kmx_stop_swtpm() {
	local d=$KMX_TMP/tpm
	[ -n "$KMX_SWTPM_PID" ] || return 0
	swtpm_ioctl --unix "$d/swtpm.sock.ctrl" -s >/dev/null 2>&1 || kill "$KMX_SWTPM_PID" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$KMX_SWTPM_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$KMX_SWTPM_PID" 2>/dev/null || true
	wait "$KMX_SWTPM_PID" 2>/dev/null || true
	KMX_SWTPM_PID=
}

# kmx_kill_swtpm: SIGKILL, by PID: a TPM that vanishes mid-command (its next
# start counts one dictionary-attack failure)
kmx_kill_swtpm() {
	[ -n "$KMX_SWTPM_PID" ] || return 0
	kill -KILL "$KMX_SWTPM_PID" 2>/dev/null || true
	wait "$KMX_SWTPM_PID" 2>/dev/null || true
	KMX_SWTPM_PID=
}
