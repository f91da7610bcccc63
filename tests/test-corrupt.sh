#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Broken files in the data dir never stop the daemon: a truncated key file,
# a garbage .info, a broken store.info are reported, and every other key
# keeps working.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
cd "$KMX_TMP"
kmx_start_daemon
store="$KEYMUX_DATA_DIR/softkey/login"

gen() { kmx_device softkey:login GenerateKey ssa{sv} ed25519 "$1" 0 | sed -n 's/^o "\(.*\)"$/\1/p'; }
a=$(gen good); b=$(gen truncated); c=$(gen garbage)
idb=${b##*/}; idc=${c##*/}
kmx_stop_daemon

# a .pem cut in half, an .info that is not a key file
head -c 60 "$store/$idb.pem" >"$store/$idb.pem.cut" && mv "$store/$idb.pem.cut" "$store/$idb.pem"
printf '\x00\x01 not [a key file\n' >"$store/$idc.info"
kmx_start_daemon
listed=$(kmx_manager ListKeys)
assert_contains "$listed" "$a"
assert_not_contains "$listed" "$idc" "a key whose .info is garbage is not offered"
details=$(kmx_prop "$(kmx_device_path softkey:login)" org.keymux.Keystore1.Device Details)
assert_contains "$details" '"broken-keys" u 1'
kmx_key "$a" Sign saya{sv} ed25519 3 1 2 3 0 >/dev/null || fail "a good key stopped working"
# listed from its intact .info; using it says clearly that its file is broken
assert_contains "$listed" "$b"
err=$(kmx_call_error kmx_key "$b" Sign saya{sv} ed25519 3 1 2 3 0)
assert_contains "$err" "$idb.pem"
kmx_key "$a" Sign saya{sv} ed25519 3 1 2 3 0 >/dev/null || fail "the daemon stopped serving"
grep -q "$idc.info" "$KMX_TMP/keymuxd.log" || fail "the broken .info was not reported in the log"
kmx_stop_daemon

# a broken store.info: the store is unavailable, its files untouched
cp "$store/store.info" store.info.orig
printf 'garbage' >"$store/store.info"
sum_before=$(cat "$store"/*.pem | sha256sum)
kmx_start_daemon
dev=$(kmx_device_path softkey:login)
assert_eq "b false" "$(kmx_prop "$dev" org.keymux.Keystore1.Device Available)"
assert_contains "$(kmx_prop "$dev" org.keymux.Keystore1.Device Details)" '"error"'
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$a" \
	--method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1]' '{}')
assert_contains "$err" "org.keymux.Keystore1.Error.Unavailable"
assert_contains "$err" "store.info is damaged"
kmx_stop_daemon
assert_eq "$sum_before" "$(cat "$store"/*.pem | sha256sum)" "key files were changed"
# putting store.info back brings everything back
cp store.info.orig "$store/store.info"
kmx_start_daemon
kmx_key "$a" Sign saya{sv} ed25519 3 1 2 3 0 >/dev/null || fail "the store did not come back"
echo "PASS: test-corrupt"
