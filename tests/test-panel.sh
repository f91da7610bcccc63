#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keymux-settings (DESIGN.md §10) in a real window: Xvfb, a real keymuxd on
# a private bus, an AT-SPI bus on it, and the panel driven through AT-SPI
# by tests/kmx-panel-driver.py.  Each step is checked in the accessible tree
# (by the driver) and against keymuxd (busctl, keymuxctl), and a screenshot
# of each is kept and checked: not blank, not the same as the step before.
#
#   test-panel.sh KEYMUX-SETTINGS SCREENSHOT-DIR
. "$KMX_TESTS_DIR/harness.sh"
panel_bin=${1:?usage: test-panel.sh KEYMUX-SETTINGS SCREENSHOT-DIR}
shots=${2:?usage: test-panel.sh KEYMUX-SETTINGS SCREENSHOT-DIR}
kmx_setup
cd "$KMX_TMP"
printf '[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
rm -rf "$shots"
mkdir -p "$shots"
dev=softkey:login
name="Login keys"

# ---- an X server on a free display, the accessibility bus on our bus ----
exec 3>"$KMX_TMP/display"
kmx_bg Xvfb -displayfd 3 -screen 0 1024x800x24 -nolisten tcp -nolisten unix
exec 3>&-
for _ in $(seq 200); do
	[ -s "$KMX_TMP/display" ] && break
	sleep 0.05
done
[ -s "$KMX_TMP/display" ] || fail "Xvfb did not start"
export DISPLAY=":$(cat "$KMX_TMP/display")"
kmx_log "Xvfb on $DISPLAY"
# GTK 4 talks to the accessibility bus the launcher announces on the
# session bus as org.a11y.Bus; the registry is activated on that bus
kmx_bg /usr/libexec/at-spi-bus-launcher --launch-immediately
gdbus wait --session --timeout 20 org.a11y.Bus || fail "no accessibility bus"
export GTK_A11Y=atspi GDK_BACKEND=x11 GSK_RENDERER=cairo
unset NO_AT_BRIDGE

driver() {
	timeout 120 /usr/bin/python3 "$KMX_TESTS_DIR/kmx-panel-driver.py" "$@" ||
		fail "the panel did not do '$*' (panel log: $(tail -n 20 "$KMX_TMP/panel.log"))"
}

# shot NAME: a screenshot of the screen, checked: many colours (a drawn
# window, not a blank screen) and other pixels than the step before
last_sig=
shot() {
	local f=$shots/$1.png colours sig
	import -window root "$f" || fail "no screenshot $1"
	colours=$(identify -format '%k' "$f")
	[ "$colours" -gt 50 ] || fail "screenshot $1 is blank: $colours colours"
	sig=$(identify -format '%#' "$f")
	[ "$sig" != "$last_sig" ] || fail "screenshot $1 shows nothing new"
	last_sig=$sig
	kmx_log "screenshot $f: $colours colours"
}

locked() { kmx_prop "$(kmx_device_path $dev)" org.keymux.Keystore1.Device Locked; }
keys_json() { busctl --user --json=short call "$KMX_NAME" "$KMX_PATH" org.keymux.Keystore1.Manager ListKeys; }
key_label() { kmx_prop "$1" org.keymux.Keystore1.Key Label; }
only_key() {
	local k
	k=$(keys_json | grep -o '/org[^"]*')
	[ "$(wc -l <<<"$k")" = 1 ] || fail "expected one key, have: $k"
	printf '%s\n' "$k"
}

# ---- open: the soft-key store and its state ----
# under ASan, GTK's and fontconfig's own leaks are not ours to report
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 kmx_bg "$panel_bin" >"$KMX_TMP/panel.log" 2>&1
panel_pid=$!
out=$(driver open "$name")
assert_contains "$out" "Unprotected"
driver names "Generate a key on $name" "Import a key into $name" "Set a password on $name"
shot 01-open

# ---- set a password through the panel: the store is protected ----
driver set-password "$name" "panel secret"
kmx_prop "$(kmx_device_path $dev)" org.keymux.Keystore1.Device Details | grep -q '"protected" b true' ||
	fail "the store is not protected after Set Password"
driver state "$name" ": Unlocked"
driver names "Lock $name" "Change the password of $name"
shot 02-password

# ---- generate ----
driver generate "$name" "panel key"
k=$(only_key)
assert_eq 's "panel key"' "$(key_label "$k")" "label of the generated key"
assert_eq 's "ed25519"' "$(kmx_prop "$k" org.keymux.Keystore1.Key Algorithm)"
driver names "Rename key panel key" "Delete key panel key" "Public key of panel key"
shot 03-generate

# ---- rename ----
driver rename "panel key" "renamed key"
assert_eq 's "renamed key"' "$(key_label "$k")" "label after the rename"
shot 04-rename

# ---- lock, then unlock through the panel's own dialog ----
driver lock "$name"
assert_eq "b true" "$(locked)" "Locked after the panel's Lock"
shot 05-lock
driver unlock "$name" "not the secret" bad
assert_eq "b true" "$(locked)" "Locked after a wrong password"
shot 06-unlock-wrong
driver cancel "Unlock $name"
driver state "$name" ": Locked"
driver unlock "$name" "panel secret"
driver state "$name" ": Unlocked"
assert_eq "b false" "$(locked)" "Locked after the panel's Unlock"
shot 07-unlock

# ---- live updates: changes made elsewhere show without a click ----
kmx_device $dev GenerateKey ssa{sv} ecdsa-p256 "made elsewhere" 0 >/dev/null
driver key "made elsewhere"
kmx_device $dev Lock
driver state "$name" ": Locked"
shot 08-live

# ---- the panel is the prompter while focused: a signature asks it ----
printf 'data' >msg
id=$(kmx_prop "$k" org.keymux.Keystore1.Key Id | sed 's/^s "\(.*\)"$/\1/')
kmx_bg busctl --user --timeout=120 call "$KMX_NAME" "$KMX_PATH" org.keymux.Keystore1.Manager Sign \
	'ssaya{sv}' "$id" ed25519 4 100 97 116 97 0 >sign.out 2>sign.err
driver prompt "$name" "panel secret"
for _ in $(seq 200); do
	[ -s sign.out ] && break
	sleep 0.1
done
assert_contains "$(cat sign.out)" "ay 64"
driver state "$name" ": Unlocked"
shot 09-prompt

# ---- a question withdrawn: another client unlocks, the dialog goes ----
kmx_device $dev Lock
kmx_bg busctl --user --timeout=120 call "$KMX_NAME" "$KMX_PATH" org.keymux.Keystore1.Manager Sign \
	'ssaya{sv}' "$id" ed25519 4 100 97 116 97 0 >sign2.out 2>sign2.err
driver asked "$name"
kmx_device $dev Unlock 'sa{sv}' "panel secret" 0
driver withdrawn "$name"
for _ in $(seq 200); do
	[ -s sign2.out ] && break
	sleep 0.1
done
assert_contains "$(cat sign2.out)" "ay 64"

# ---- the public key, copied as PEM and as an authorized_keys line ----
driver copy "renamed key" pem >copied.pem
"$KEYMUXCTL" export-public "$id" >want.pem
cmp copied.pem want.pem || fail "the PEM copied differs from keymuxctl's: $(cat copied.pem)"
driver copy "renamed key" ssh >copied.ssh
"$KEYMUXCTL" export-public --ssh "$id" >want.ssh
assert_eq "$(cat want.ssh)" "$(cat copied.ssh)" "the authorized_keys line copied"
assert_contains "$(cat copied.ssh)" "ssh-ed25519 "
shot 10-copy

# ---- change the password: the old one no longer unlocks ----
driver change-password "$name" "panel secret" "second secret"
kmx_device $dev Lock
err=$(kmx_call_error kmx_device $dev Unlock 'sa{sv}' "panel secret" 0)
assert_contains "$err" "wrong password"
kmx_device $dev Unlock 'sa{sv}' "second secret" 0
driver state "$name" ": Unlocked"

# ---- delete, confirmed ----
driver delete "renamed key"
left=$(keys_json)
assert_not_contains "$left" "$k"
driver names "Key made elsewhere"
shot 11-delete

# ---- closed, the panel exits cleanly and is nobody's prompter any more ----
driver close
status=0
wait "$panel_pid" || status=$?
assert_eq 0 "$status" "the panel's exit status (log: $(tail -n 20 "$KMX_TMP/panel.log"))"
grep -E "CRITICAL|WARNING" "$KMX_TMP/panel.log" && fail "the panel warned"
kmx_device $dev Lock
err=$(kmx_call_error kmx_manager Sign 'ssaya{sv}' "$(kmx_prop "$(keys_json | grep -o '/org[^"]*' | head -n 1)" org.keymux.Keystore1.Key Id | sed 's/^s "\(.*\)"$/\1/')" ecdsa-sha256 1 1 0)
assert_contains "$err" "no prompter is registered"
