#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Loose permissions in the data dir: directories others may enter and key
# files others may read (an unprotected store.info holds its file key in
# clear) are made private at start, with a warning; a store whose files
# keymux cannot make private (another user owns them) is unavailable, and
# says which chmod to run.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
cd "$KMX_TMP"
mode() { stat -c %a "$1"; }

kmx_start_daemon
key=$(kmx_device softkey:login GenerateKey ssa{sv} ed25519 perms 0 | sed -n 's/^o "\(.*\)"$/\1/p')
id=${key##*/}
kmx_stop_daemon
data=$KEYMUX_DATA_DIR
store=$data/softkey/login
assert_eq 700 "$(mode "$store")"
assert_eq 600 "$(mode "$store/store.info")"

# ---- what a careless chmod -R or a restored backup leaves ----
chmod 0777 "$data" "$data/softkey" "$store"
chmod 0644 "$store/store.info" "$store/$id.pem"
chmod 0640 "$store/$id.info"
kmx_start_daemon
for d in "$data" "$data/softkey" "$store"; do
	assert_eq 700 "$(mode "$d")" "mode of $d"
done
for f in store.info "$id.pem" "$id.info"; do
	assert_eq 600 "$(mode "$store/$f")" "mode of $f"
done
log=$(cat "$KMX_TMP/keymuxd.log")
assert_contains "$log" "other users could enter $data (mode 0777)"
assert_contains "$log" "other users could read or change 4 of its files"
dev=$(kmx_device_path softkey:login)
assert_eq "b true" "$(kmx_prop "$dev" org.keymux.Keystore1.Device Available)"
kmx_key "$key" Sign saya{sv} ed25519 3 1 2 3 0 >/dev/null || fail "the key does not work"
kmx_stop_daemon

# ---- files keymux cannot fix: refuse the store, say what to run ----
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	chmod 0755 "$KMX_TMP"
	other=$KMX_TMP/nobody-data
	mkdir -p "$other/softkey"
	cp -a "$data/softkey/login" "$other/softkey/login"
	chown -R 65534:65534 "$other"
	chmod 0700 "$other"
	# root's file, readable by all: the daemon (uid 65534) cannot chmod it
	chown 0:0 "$other/softkey/login/store.info"
	chmod 0644 "$other/softkey/login/store.info"
	KEYMUX_DATA_DIR=$other KMX_DAEMON_WRAPPER="setpriv --reuid=65534 --regid=65534 --clear-groups" \
		kmx_start_daemon
	available=$(as_nobody busctl --user get-property "$KMX_NAME" "$dev" \
		org.keymux.Keystore1.Device Available)
	assert_eq "b false" "$available" "a store others can read is not offered"
	details=$(as_nobody busctl --user get-property "$KMX_NAME" "$dev" \
		org.keymux.Keystore1.Device Details)
	assert_contains "$details" "run chmod 0600 $other/softkey/login/store.info and restart"
	err=$(kmx_call_error as_nobody busctl --user call "$KMX_NAME" "$key" org.keymux.Keystore1.Key \
		Sign saya{sv} ed25519 3 1 2 3 0)
	assert_contains "$err" "other users"
	assert_eq 644 "$(mode "$other/softkey/login/store.info")"
	kmx_stop_daemon
	# the owner runs the command: the store is back
	chmod 0600 "$other/softkey/login/store.info"
	chown 65534:65534 "$other/softkey/login/store.info"
	KEYMUX_DATA_DIR=$other KMX_DAEMON_WRAPPER="setpriv --reuid=65534 --regid=65534 --clear-groups" \
		kmx_start_daemon
	as_nobody busctl --user call "$KMX_NAME" "$key" org.keymux.Keystore1.Key \
		Sign saya{sv} ed25519 3 1 2 3 0 >/dev/null || fail "the store did not come back"
	kmx_stop_daemon
	chmod 0700 "$KMX_TMP"
else
	kmx_log "not root: the check of files keymux cannot fix needs setpriv as root"
fi
echo "PASS: test-perms"
