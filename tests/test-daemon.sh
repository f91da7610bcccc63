#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keymuxd's life on the bus: start, activation, replace, exit, config, and
# the errors every caller can meet before touching a key.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup

# ---- D-Bus activation: the first call starts the daemon ----
out=$(kmx_manager ListDevices)
assert_contains "$out" "softkey_3alogin" "activation starts keymuxd with the default store"
owner_pid=$(kmx_name_owner_pid)
[ -n "$owner_pid" ] || fail "no pid for the activated daemon"
kill -TERM "$owner_pid"
for _ in $(seq 400); do kill -0 "$owner_pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$owner_pid" 2>/dev/null && fail "the activated daemon ignored SIGTERM"

# ---- properties ----
kmx_start_daemon
assert_contains "$(kmx_prop "$KMX_PATH" org.keymux.Keystore1.Manager Version)" '"0.1.0"'
assert_contains "$(kmx_prop "$KMX_PATH" org.keymux.Keystore1.Manager Backends)" '"softkey"'
dev=$(kmx_device_path softkey:login)
assert_eq 's "softkey:login"' "$(kmx_prop "$dev" org.keymux.Keystore1.Device Id)"
assert_eq 's "softkey"' "$(kmx_prop "$dev" org.keymux.Keystore1.Device Backend)"
assert_eq 'b false' "$(kmx_prop "$dev" org.keymux.Keystore1.Device Locked)" "a new store is unprotected"
assert_eq 'b true' "$(kmx_prop "$dev" org.keymux.Keystore1.Device Available)"
assert_eq 'i -1' "$(kmx_prop "$dev" org.keymux.Keystore1.Device PinRetries)"
assert_contains "$(kmx_prop "$dev" org.keymux.Keystore1.Device Details)" '"protected" b false'
# the object manager lists the device with its interfaces
objs=$(busctl --user call org.keymux.Keystore1 "$KMX_PATH" org.freedesktop.DBus.ObjectManager GetManagedObjects)
assert_contains "$objs" "org.keymux.Keystore1.Device"

# ---- a second daemon does not steal the name; --replace does ----
status=0
"$KEYMUXD" >"$KMX_TMP/second.log" 2>&1 || status=$?
assert_eq 1 "$status" "a second keymuxd must exit 1"
assert_contains "$(cat "$KMX_TMP/second.log")" "--replace"
old=$KMX_DAEMON_PID
KMX_DAEMON_PID=
kmx_start_daemon --replace
for _ in $(seq 400); do kill -0 "$old" 2>/dev/null || break; sleep 0.05; done
kill -0 "$old" 2>/dev/null && fail "the replaced keymuxd is still running"
wait "$old" || true
kmx_manager ListDevices >/dev/null

# ---- malformed calls get D-Bus errors, and the daemon carries on ----
err=$(kmx_call_error busctl --user call org.keymux.Keystore1 "$KMX_PATH" org.keymux.Keystore1.Manager FindKey i 5)
assert_contains "$err" "does not match expected type"
err=$(kmx_call_error kmx_manager FindKey s abc)
assert_contains "$err" "at least 8"
err=$(kmx_call_error kmx_manager FindKey s zzzzzzzzzz)
assert_contains "$err" "hexadecimal"
err=$(kmx_call_error kmx_manager FindKey s 0123456789abcdef)
assert_contains "$err" "no key with id"
err=$(kmx_call_error busctl --user call org.keymux.Keystore1 "$KMX_PATH" org.keymux.Keystore1.Manager NoSuchMethod)
assert_contains "$err" "NoSuchMethod"
err=$(kmx_call_error kmx_manager Sign ssaya{sv} 0123456789abcdef ed25519 1 65 0)
assert_contains "$err" "no key with id"
err=$(kmx_call_error kmx_manager UnregisterPrompter o /never/registered)
assert_contains "$err" "not a prompter"
err=$(kmx_call_error kmx_device softkey:login GenerateKey ssa{sv} dsa1024 x 0)
assert_contains "$err" "unknown key algorithm 'dsa1024'"
err=$(kmx_call_error kmx_device softkey:login ImportKey ayssa{sv} 0 "" "" 0)
assert_contains "$err" "no key data"
# error names reach clients as org.keymux.Keystore1.Error.*
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$KMX_PATH" \
	--method org.keymux.Keystore1.Manager.FindKey abc)
assert_contains "$err" "org.keymux.Keystore1.Error.InvalidArgument"
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$KMX_PATH" \
	--method org.keymux.Keystore1.Manager.FindKey 0123456789abcdef)
assert_contains "$err" "org.keymux.Keystore1.Error.NotFound"
kmx_manager ListDevices >/dev/null

# ---- the authorisation hook: another user is denied everything ----
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 0755 "$KMX_TMP"
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus call --session --dest org.keymux.Keystore1 --object-path "$KMX_PATH" \
		--method org.keymux.Keystore1.Manager.ListDevices)
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus call --session --dest org.keymux.Keystore1 --object-path "$dev" \
		--method org.keymux.Keystore1.Device.GenerateKey ed25519 x '@a{sv} {}')
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus call --session --dest org.keymux.Keystore1 --object-path "$dev" \
		--method org.freedesktop.DBus.Properties.Get org.keymux.Keystore1.Device Id)
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus call --session --dest org.keymux.Keystore1 --object-path "$KMX_PATH" \
		--method org.freedesktop.DBus.ObjectManager.GetManagedObjects)
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	# a refusal for bad arguments is given only after the authorisation
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus call --session --dest org.keymux.Keystore1 --object-path "$KMX_PATH" \
		--method org.keymux.Keystore1.Manager.Sign 0123456789abcdef ed25519 '[byte 1]' '@a{sv} {}')
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	# property reads pass the same hook: Get and GetAll, on every object
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus call --session --dest org.keymux.Keystore1 --object-path "$KMX_PATH" \
		--method org.freedesktop.DBus.Properties.GetAll org.keymux.Keystore1.Manager)
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus call --session --dest org.keymux.Keystore1 --object-path "$KMX_PATH" \
		--method org.freedesktop.DBus.Properties.Get org.keymux.Keystore1.Manager Version)
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus call --session --dest org.keymux.Keystore1 --object-path "$dev" \
		--method org.freedesktop.DBus.Properties.GetAll org.keymux.Keystore1.Device)
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	# and Introspect below the devices: key ids are object paths
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus introspect --session --dest org.keymux.Keystore1 --object-path "$dev")
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus introspect --session --dest org.keymux.Keystore1 \
		--object-path /org/keymux/Keystore1/devices)
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	assert_eq "ao 0" "$(kmx_manager ListKeys)" "a denied call changed nothing"
	chmod 0700 "$KMX_TMP"
else
	kmx_log "not root: the other-user check needs setpriv as root"
fi

# ---- SIGTERM: clean exit ----
kmx_stop_daemon || fail "keymuxd did not exit cleanly on SIGTERM"

# ---- the config file: a disabled backend is not started ----
printf '[backends]\nsoftkey=false\ncard=false\ntpm=false\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
assert_eq 'as 0' "$(kmx_prop "$KMX_PATH" org.keymux.Keystore1.Manager Backends)"
assert_eq 'ao 0' "$(kmx_manager ListDevices)"
kmx_stop_daemon

# ---- a broken config file: a clear error, no start ----
printf 'this is [not a key file\n' >"$KEYMUX_CONFIG"
status=0
"$KEYMUXD" >"$KMX_TMP/bad.log" 2>&1 || status=$?
assert_eq 1 "$status"
assert_contains "$(cat "$KMX_TMP/bad.log")" "keymux.conf"
rm "$KEYMUX_CONFIG"

# ---- the process hardens itself: no core files, no new privileges ----
kmx_start_daemon
assert_eq 1 "$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/$KMX_DAEMON_PID/status)" "no_new_privs"
# both limits 0: the hard one too, which a shell's default leaves unlimited
assert_eq "0 0" "$(awk '/^Max core file size/ {print $5, $6}' /proc/$KMX_DAEMON_PID/limits)" \
	"core file size limits"

# ---- not dumpable: another process of the same user cannot read it ----
# (seen as root owning /proc/PID/mem of a daemon run by an ordinary user)
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	kmx_stop_daemon
	chmod 0755 "$KMX_TMP"
	mkdir -p "$KMX_TMP/nobody-data"
	chown 65534:65534 "$KMX_TMP/nobody-data"
	KEYMUX_DATA_DIR="$KMX_TMP/nobody-data" \
		KMX_DAEMON_WRAPPER="setpriv --reuid=65534 --regid=65534 --clear-groups" kmx_start_daemon
	# real, effective, saved and file-system uid
	uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' /proc/$KMX_DAEMON_PID/status)
	assert_eq "65534 65534 65534 65534" "$uids" "the daemon runs as uid 65534"
	assert_eq 0 "$(stat -c %u /proc/$KMX_DAEMON_PID/mem)" "/proc/PID/mem of a non-dumpable process"
	kmx_stop_daemon
	chmod 0700 "$KMX_TMP"
	kmx_start_daemon
else
	kmx_log "not root: the dumpable check needs setpriv as root"
fi

# ---- the bus goes away: the daemon exits ----
kill "$KMX_BUS_PID"
KMX_BUS_PID=
for _ in $(seq 400); do kill -0 "$KMX_DAEMON_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$KMX_DAEMON_PID" 2>/dev/null && fail "keymuxd outlived its bus"
wait "$KMX_DAEMON_PID" || true
KMX_DAEMON_PID=
echo "PASS: test-daemon"
