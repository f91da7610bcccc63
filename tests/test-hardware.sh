#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The core with hardware-like devices (the test backend, src/backends/test):
# hot-plug, a device pulled out mid-operation, PIN tries counted and never
# retried, Blocked without prompting, the admin PIN, registration across a
# restart, the authorisation hook before any prompt, the state a reply
# implies visible before the reply, shutdown on each device's executor.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup

printf '[backends]\ntest=true\n[daemon]\nprompt-timeout=20\n' >"$KEYMUX_CONFIG"
T=$KEYMUX_DATA_DIR/test
mkdir -p "$T/plugged"
LOG=$T/log

plug() { # plug SERIAL [extra ini lines]
	local serial=$1
	shift
	printf '[device]\npin=123456\nadmin-pin=12345678\n%s\n' "$*" >"$T/.plug.tmp"
	mv "$T/.plug.tmp" "$T/plugged/$serial"
}
unplug() { rm -f "$T/plugged/$1"; }
tries() { grep -c "^$1 $2 $3\$" "$LOG" 2>/dev/null || true; }

# calls through gdbus, which names the D-Bus error
gsign() {
	gdbus call --session --timeout 60 --dest "$KMX_NAME" --object-path "$KMX_PATH" \
		--method org.keymux.Keystore1.Manager.Sign "$1" "$2" "[byte 0x68, 0x69]" "${3:-@a{sv\} {\}}"
}
gdev() {
	local path
	path=$(kmx_device_path "$1")
	shift
	gdbus call --session --timeout 60 --dest "$KMX_NAME" --object-path "$path" \
		--method "org.keymux.Keystore1.Device.$1" "${@:2}"
}

kmx_start_daemon
assert_contains "$(kmx_prop "$KMX_PATH" org.keymux.Keystore1.Manager Backends)" '"test"'
D1=$(kmx_device_path test:0001)

# ---- hot-plug: a device appears, with its state ----
plug 0001
until_ok listed "$D1"
assert_eq "b true" "$(kmx_prop "$D1" org.keymux.Keystore1.Device Available)"
assert_eq "b true" "$(kmx_prop "$D1" org.keymux.Keystore1.Device Locked)"
assert_eq "b false" "$(kmx_prop "$D1" org.keymux.Keystore1.Device Registered)"
assert_eq "i 3" "$(kmx_prop "$D1" org.keymux.Keystore1.Device PinRetries)"
assert_contains "$(kmx_prop "$D1" org.keymux.Keystore1.Device Details)" '"admin-retries" i 3'

# ---- options: unknown names and wrong types say which ----
err=$(kmx_call_error kmx_device test:0001 GenerateKey ssa{sv} ecdsa-p256 k 1 colour s red)
assert_contains "$err" "takes no option 'colour'"
err=$(kmx_call_error kmx_device test:0001 GenerateKey ssa{sv} ecdsa-p256 k 1 admin-secret b true)
assert_contains "$err" "option 'admin-secret' of GenerateKey must be a string"

# ---- the admin PIN: nobody to ask is Locked; a script gives it as an option ----
err=$(kmx_call_error gdev test:0001 GenerateKey ecdsa-p256 k "{'interactive': <false>}")
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"
assert_contains "$err" "admin-secret"
err=$(kmx_call_error gdev test:0001 GenerateKey ecdsa-p256 k "{'admin-secret': <'999'>}")
assert_contains "$err" "org.keymux.Keystore1.Error.BadSecret"
assert_eq "1" "$(tries admin 0001 bad)" "one wrong admin PIN, tried once"
assert_contains "$(kmx_prop "$D1" org.keymux.Keystore1.Device Details)" '"admin-retries" i 2'
out=$(kmx_device test:0001 GenerateKey ssa{sv} ecdsa-p256 "card key" 1 admin-secret s 12345678)
KEY=$(sed 's/^o "\(.*\)"$/\1/' <<<"$out")
KEYID=${KEY##*/}
assert_eq "1" "$(tries admin 0001 ok)"
assert_contains "$(kmx_prop "$D1" org.keymux.Keystore1.Device Keys)" "$KEYID"
# the user PIN was not needed to make a key
assert_eq "b true" "$(kmx_prop "$D1" org.keymux.Keystore1.Device Locked)"

# ---- interactive=false: a locked device fails at once ----
err=$(kmx_call_error gsign "$KEYID" ecdsa-sha256 "{'interactive': <false>}")
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"

# ---- another user reaches neither the device nor the prompter ----
kmx_bg "$KMX_TEST_PROMPTER" --secret 000000 >"$KMX_TMP/prompter.out"
until_ok grep -q ready "$KMX_TMP/prompter.out"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 0755 "$KMX_TMP"
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus call --session --dest "$KMX_NAME" --object-path "$D1" \
		--method org.keymux.Keystore1.Device.Unlock "" '@a{sv} {}')
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	err=$(kmx_call_error setpriv --reuid=65534 --regid=65534 --clear-groups \
		gdbus call --session --dest "$KMX_NAME" --object-path "$D1" \
		--method org.freedesktop.DBus.Properties.GetAll org.keymux.Keystore1.Device)
	assert_contains "$err" "org.keymux.Keystore1.Error.Denied"
	chmod 0700 "$KMX_TMP"
	assert_eq "0" "$(grep -c '^asked' "$KMX_TMP/prompter.out" || true)" "the prompter was asked for a denied caller"
else
	kmx_log "not root: the other-user check needs setpriv as root"
fi

# ---- wrong PINs: one prompt and one try each, never retried, then Blocked ----
for n in 1 2 3; do
	err=$(kmx_call_error gsign "$KEYID" ecdsa-sha256)
	if [ $n -lt 3 ]; then
		assert_contains "$err" "org.keymux.Keystore1.Error.BadSecret"
	else
		assert_contains "$err" "org.keymux.Keystore1.Error.Blocked"
	fi
	assert_eq "$n" "$(tries unlock 0001 bad)" "PIN tries after $n wrong answers"
	assert_eq "$n" "$(grep -c '^asked' "$KMX_TMP/prompter.out")" "prompts after $n wrong answers"
	assert_eq "i $((3 - n))" "$(kmx_prop "$D1" org.keymux.Keystore1.Device PinRetries)"
done
assert_contains "$(grep '^asked' "$KMX_TMP/prompter.out" | tail -1)" "'retries': <1>"
assert_contains "$(grep '^asked' "$KMX_TMP/prompter.out" | tail -1)" "'kind': <'user'>"
err=$(kmx_call_error gsign "$KEYID" ecdsa-sha256)
assert_contains "$err" "org.keymux.Keystore1.Error.Blocked"
err=$(kmx_call_error gdev test:0001 Unlock 123456 "@a{sv} {}")
assert_contains "$err" "org.keymux.Keystore1.Error.Blocked"
assert_eq "3" "$(grep -c '^asked' "$KMX_TMP/prompter.out")" "nobody is prompted at zero retries"
assert_eq "3" "$(tries unlock 0001 bad)" "no PIN is sent at zero retries"
assert_eq "0" "$(tries unlock 0001 ok)"

# ---- a second device: the reply comes after the state it implies ----
plug 0002 "delay-ms=1500"
D2=$(kmx_device_path test:0002)
until_ok listed "$D2"
dbus-monitor --address "$DBUS_SESSION_BUS_ADDRESS" >"$KMX_TMP/monitor.out" 2>&1 &
KMX_PIDS+=($!)
sleep 0.5 # dbus-monitor has no ready signal; missing the start only weakens the check below
kmx_device test:0002 Unlock sa{sv} 123456 0 >/dev/null
assert_eq "b false" "$(kmx_prop "$D2" org.keymux.Keystore1.Device Locked)"
sleep 0.3
kill "${KMX_PIDS[-1]}" 2>/dev/null || true
awk -v path="$D2" '
	/method call/ && /member=Unlock/ { for (i = 1; i <= NF; i++) if ($i ~ /^serial=/) { split($i, a, "="); want = a[2] } }
	want != "" && /signal/ && /member=PropertiesChanged/ && index($0, "path=" path ";") { pc = NR }
	want != "" && /method return/ { for (i = 1; i <= NF; i++) if ($i == "reply_serial=" want) ret = NR }
	END {
		if (want == "" || ret == "") { print "no Unlock call or reply seen"; exit 1 }
		if (pc == "" || pc > ret) { print "the reply to Unlock came before PropertiesChanged"; exit 1 }
	}' "$KMX_TMP/monitor.out" || fail "$(tail -n 30 "$KMX_TMP/monitor.out")"

# ---- pulled out mid-operation: Unavailable, no hang, the daemon lives on ----
out=$(kmx_device test:0002 GenerateKey ssa{sv} ed25519 "slow" 1 admin-secret s 12345678)
KEY2=$(sed 's/^o "\(.*\)"$/\1/' <<<"$out")
KEY2ID=${KEY2##*/}
(
	rc=0
	gsign "$KEY2ID" ed25519 >"$KMX_TMP/pulled.out" 2>&1 || rc=$?
	echo "exit $rc" >>"$KMX_TMP/pulled.out"
) &
KMX_PIDS+=($!)
sleep 0.4
unplug 0002
until_ok grep -q '^exit' "$KMX_TMP/pulled.out"
assert_contains "$(cat "$KMX_TMP/pulled.out")" "org.keymux.Keystore1.Error.Unavailable"
until_ok not_listed "$D2"
kmx_manager ListDevices >/dev/null

# ---- plugged in again: locked again, its keys back ----
plug 0002
until_ok listed "$D2"
assert_eq "b true" "$(kmx_prop "$D2" org.keymux.Keystore1.Device Locked)"
assert_contains "$(kmx_prop "$D2" org.keymux.Keystore1.Device Keys)" "$KEY2ID"
kmx_device test:0002 Unlock sa{sv} 123456 0 >/dev/null
sed -i 's/^delay-ms=.*//' "$T/plugged/0002"

# ---- registered: listed while absent, even across a restart ----
kmx_device test:0002 Register >/dev/null
assert_eq "b true" "$(kmx_prop "$D2" org.keymux.Keystore1.Device Registered)"
unplug 0002
until_ok prop_is "$D2" Available "b false"
assert_eq "b true" "$(kmx_prop "$D2" org.keymux.Keystore1.Device Locked)"
assert_eq "b true" "$(kmx_prop "$D2" org.keymux.Keystore1.Device Registered)"
assert_contains "$(kmx_prop "$D2" org.keymux.Keystore1.Device Keys)" "$KEY2ID"
asked=$(grep -c '^asked' "$KMX_TMP/prompter.out")
err=$(kmx_call_error gsign "$KEY2ID" ed25519)
assert_contains "$err" "org.keymux.Keystore1.Error.Unavailable"
err=$(kmx_call_error gdev test:0002 Unlock "" "@a{sv} {}")
assert_contains "$err" "org.keymux.Keystore1.Error.Unavailable"
assert_eq "$asked" "$(grep -c '^asked' "$KMX_TMP/prompter.out")" "an absent device prompted"
kmx_key "$KEY2" SetLabel s "in the drawer" >/dev/null

# shutdown locks each device on its executor (the backend checks): one
# more whole "lock 0001 ok" line ("unlock 0001 ok" holds the words too)
locks=$(grep -cx 'lock 0001 ok' "$LOG" || true)
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
[ "$(grep -cx 'lock 0001 ok' "$LOG" || true)" -gt "$locks" ] || fail "shutdown did not lock device 0001"
kmx_start_daemon
until_ok listed "$D2"
assert_eq "b false" "$(kmx_prop "$D2" org.keymux.Keystore1.Device Available)"
assert_eq "b true" "$(kmx_prop "$D2" org.keymux.Keystore1.Device Registered)"
assert_contains "$(kmx_prop "$D2" org.keymux.Keystore1.Device Keys)" "$KEY2ID"
assert_eq 's "in the drawer"' "$(kmx_prop "$KEY2" org.keymux.Keystore1.Key Label)"
# back again: the same object path, available, the cached key now usable
plug 0002
until_ok prop_is "$D2" Available "b true"
assert_eq "b true" "$(kmx_prop "$D2" org.keymux.Keystore1.Device Registered)"
kmx_device test:0002 Unlock sa{sv} 123456 0 >/dev/null
out=$(kmx_manager Sign ssaya{sv} "$KEY2ID" ed25519 2 104 105 0)
assert_contains "$out" "ay 64 "
# the raw "ecdsa": a 64-byte digest signed as FIPS 186 says, like a card
out=$(kmx_device test:0002 GenerateKey ssa{sv} ecdsa-p256 "raw" 1 admin-secret s 12345678)
KEY3=$(sed 's/^o "\(.*\)"$/\1/' <<<"$out")
kmx_prop "$KEY3" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$KMX_TMP/raw.der"
printf 'raw' | openssl dgst -sha512 -binary >"$KMX_TMP/raw.dgst"
# shellcheck disable=SC2046
kmx_manager Sign ssaya{sv} "${KEY3##*/}" ecdsa $(kmx_file_to_ay "$KMX_TMP/raw.dgst") 0 |
	kmx_ay_to_file "$KMX_TMP/raw.sig"
openssl pkeyutl -verify -pubin -keyform DER -inkey "$KMX_TMP/raw.der" -in "$KMX_TMP/raw.dgst" \
	-sigfile "$KMX_TMP/raw.sig" >/dev/null || fail "a raw ecdsa signature of the test backend"
err=$(kmx_call_error gsign "$KEY2ID" rsa-pkcs1)
assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported"
# unregistered while absent: it goes
kmx_device test:0002 Unregister >/dev/null
unplug 0002
until_ok not_listed "$D2"
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
echo "ok"
