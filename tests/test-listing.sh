#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# ListKeys' reply is built when the keys change, not per call: after every
# GenerateKey, ImportKey, Delete and SetLabel, ListKeys, GetManagedObjects
# and the device's Keys agree with each other and with the keys made, on
# the bus and on a peer connection, and stay so across repeated calls.
# With keys on two devices ListKeys joins them; with one device's keys
# alone again it is that device's Keys.
. "$KMX_TESTS_DIR/harness.sh"
: "${KMX_TEST_P2P:?}"
kmx_setup
kmx_start_daemon
cd "$KMX_TMP"

dev=$(kmx_device_path softkey:login)

# the sorted object paths of a busctl "ao N p1 p2 …" answer
paths_of() { tr ' ' '\n' | sed -n 's/^"\(\/.*\)"$/\1/p' | sort; }
list_keys() { kmx_manager ListKeys | paths_of; }
# the key objects GetManagedObjects names, and their labels, via gdbus
managed() {
	gdbus call --session --dest "$KMX_NAME" --object-path "$KMX_PATH" \
		--method org.freedesktop.DBus.ObjectManager.GetManagedObjects >managed.out
	# the objects are the dictionary's keys (gdbus types only the first)
	grep -o "'$dev/[^']*': {" managed.out | sed "s/^'\(.*\)': {$/\1/" | sort
}
# what must be there: $expect, one path a line
check() { # what
	local want
	want=$(printf '%s\n' "${!EXPECT[@]}" | sed '/^$/d' | sort)
	for round in 1 2; do
		assert_eq "$want" "$(list_keys)" "ListKeys after $1 (call $round)"
		assert_eq "$want" "$(managed)" "GetManagedObjects after $1 (call $round)"
		assert_eq "$want" "$(kmx_prop "$dev" org.keymux.Keystore1.Device Keys | paths_of)" \
			"Device.Keys after $1"
		assert_eq "$want" "$("$KMX_TEST_P2P" list | sed -n 's/^key //p' | sort)" \
			"ListKeys on a peer connection after $1 (call $round)"
	done
}
generate() {
	kmx_device softkey:login GenerateKey ssa{sv} "$1" "$2" 0 | sed -n 's/^o "\(.*\)"$/\1/p'
}

declare -A EXPECT=()
check "start"

# ---- keys added: each call after it sees it ----
for i in 1 2 3; do
	k=$(generate ed25519 "key $i")
	[ -n "$k" ] || fail "GenerateKey $i returned no path"
	EXPECT[$k]=1
	check "GenerateKey $i"
done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -outform DER -out p256.der 2>/dev/null
# shellcheck disable=SC2046
imp=$(kmx_device softkey:login ImportKey ayssa{sv} $(kmx_file_to_ay p256.der) "" "imported" 0 |
	sed -n 's/^ao 1 "\(.*\)"$/\1/p')
[ -n "$imp" ] || fail "ImportKey returned no path"
EXPECT[$imp]=1
check "ImportKey"

# ---- renamed: the same paths, the new label in GetManagedObjects ----
kmx_key "$imp" SetLabel s "renamed key"
check "SetLabel"
assert_contains "$(cat managed.out)" "'renamed key'" "GetManagedObjects shows the new label"
assert_not_contains "$(cat managed.out)" "'imported'" "GetManagedObjects drops the old label"

# ---- deleted: gone from every listing ----
kmx_key "$imp" Delete
unset "EXPECT[$imp]"
check "Delete of the imported key"
for k in "${!EXPECT[@]}"; do
	kmx_key "$k" Delete
	unset "EXPECT[$k]"
	check "Delete of $k"
done
assert_eq "ao 0" "$(kmx_manager ListKeys)" "no keys left"

# ---- after a restart, the store on disk gives the same listing ----
k=$(generate ecdsa-p256 "survivor")
EXPECT[$k]=1
kmx_stop_daemon
kmx_start_daemon
check "a restart"

# ---- keys on two devices: ListKeys joins them; one device's alone again
# once the other has none (then the reply is that device's Keys itself) ----
kmx_stop_daemon
printf '[backends]\ntest=true\n' >"$KEYMUX_CONFIG"
mkdir -p "$KEYMUX_DATA_DIR/test/plugged"
printf '[device]\npin=123456\nadmin-pin=12345678\n' >"$KEYMUX_DATA_DIR/test/.plug.tmp"
mv "$KEYMUX_DATA_DIR/test/.plug.tmp" "$KEYMUX_DATA_DIR/test/plugged/0001"
kmx_start_daemon
card=$(kmx_device_path test:0001)
listed() { kmx_manager ListDevices | grep -q "$card"; }
until_ok listed
ck=$(kmx_device test:0001 GenerateKey ssa{sv} ecdsa-p256 "card key" 1 admin-secret s 12345678 |
	sed -n 's/^o "\(.*\)"$/\1/p')
[ -n "$ck" ] || fail "GenerateKey on the test device returned no path"
both=$(printf '%s\n' "$k" "$ck" | sort)
for round in 1 2; do
	assert_eq "$both" "$(list_keys)" "ListKeys with keys on two devices (call $round)"
	assert_eq "$both" "$("$KMX_TEST_P2P" list | sed -n 's/^key //p' | sort)" \
		"ListKeys on a peer connection with keys on two devices (call $round)"
done
assert_eq "$ck" "$(kmx_prop "$card" org.keymux.Keystore1.Device Keys | paths_of)" \
	"the test device's Keys"
assert_eq "$k" "$(kmx_prop "$dev" org.keymux.Keystore1.Device Keys | paths_of)" \
	"the soft-key store's Keys beside it"
kmx_key "$k" Delete
for round in 1 2; do
	assert_eq "$ck" "$(list_keys)" "ListKeys with the test device's key alone (call $round)"
done
# a card's key is not deleted: the device goes, and its keys with it
rm -f "$KEYMUX_DATA_DIR/test/plugged/0001"
gone() { ! listed; }
until_ok gone
assert_eq "ao 0" "$(kmx_manager ListKeys)" "no keys left once the test device is gone"
