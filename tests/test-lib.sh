#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# libkeymux (DESIGN.md §10) against a real keymuxd: the C API over the
# peer connection and, when OpenConnection is denied, over the bus; the
# Python and GJS examples through GObject introspection, their signatures
# checked by openssl and their prompts answered.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
: "${KMX_TEST_LIB:?}" "${KMX_LIB_DIR:?}" "${KMX_EXAMPLES_DIR:?}"
cd "$KMX_TMP"
printf '[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
# the library and its typelib from the build tree
export GI_TYPELIB_PATH=$KMX_LIB_DIR LD_LIBRARY_PATH=$KMX_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# run an interpreter on the library: under ASan it needs the runtime loaded
# first, and its own leaks are not ours to report
gi_run() {
	if [[ "${KMX_SANITIZE:-}" == *address* ]]; then
		LD_PRELOAD=$(ldd "$KMX_TEST_LIB" | awk '/libasan/ {print $3}') ASAN_OPTIONS=detect_leaks=0 "$@"
	else
		"$@"
	fi
}

verify() { # pub.der msg sig
	openssl pkey -pubin -inform DER -in "$1" -out "$1.pem"
	openssl pkeyutl -verify -pubin -inkey "$1.pem" -rawin -in "$2" -sigfile "$3" >/dev/null ||
		fail "the signature $3 does not verify"
}

# ---- the ABI: only keymux_*, every symbol versioned KEYMUX_1.0 ----
lib=$KMX_LIB_DIR/libkeymux-1.so.1
[ -e "$lib" ] || fail "no $lib"
stray=$(objdump -T "$lib" | awk '$2 == "g" && $4 == ".text" && ($7 !~ /^keymux_/ || $6 != "KEYMUX_1.0")')
[ -z "$stray" ] || fail "symbols outside the ABI: $stray"
objdump -T "$lib" | awk '$6 == "KEYMUX_1.0" && $7 == "keymux_key_sign_sync" {f = 1} END {exit !f}' ||
	fail "keymux_key_sign_sync is not KEYMUX_1.0"

delete_all() { kmx_manager ListKeys | grep -o '/org[^"]*' | while read -r k; do kmx_key "$k" Delete; done; }

# ---- the C API over the peer connection ----
mkdir c1
out=$("$KMX_TEST_LIB" p2p c1) || fail "kmx-test-lib p2p: $out"
assert_eq "ok p2p" "$out"
verify c1/ed.pub c1/msg c1/sync.sig
verify c1/ed.pub c1/msg c1/async.sig
grep -q "peer connection of .*/peer[0-9]* closed" "$KMX_TMP/keymuxd.log" ||
	fail "the library did not use a peer connection"
grep -q "sign key .* by pid [0-9]* (.*kmx-test-lib)" "$KMX_TMP/keymuxd.log" ||
	fail "no audit record of the library's signature"

# ---- keymux_client_new() makes no round trip before it returns ----
out=$("$KMX_TEST_LIB" async-new "$KMX_DAEMON_PID") || fail "kmx-test-lib async-new: $out"
assert_eq "ok async-new" "$out"

# ---- keymux_client_new_for_bus(): BUS_ONLY, REQUIRE_SERVICE, a given bus ----
kmx_start_bare_bus
out=$("$KMX_TEST_LIB" flags "$KMX_BARE_ADDRESS") || fail "kmx-test-lib flags: $out"
assert_eq "ok flags" "$out"

# ---- OpenConnection denied by the bus: the library falls back to it ----
delete_all
# (after the allow rules of the policy: the last matching rule wins)
sed -i 's|</policy>|<deny send_interface="org.keymux.Keystore1.Manager" send_member="OpenConnection"/>&|' "$KMX_TMP/bus.conf"
busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$KMX_PATH" \
	--method org.keymux.Keystore1.Manager.OpenConnection)
assert_contains "$err" "AccessDenied"
mkdir c2
out=$("$KMX_TEST_LIB" bus c2) || fail "kmx-test-lib bus: $out"
assert_eq "ok bus" "$out"
verify c2/ed.pub c2/msg c2/sync.sig
sed -i 's|<deny send_interface="org.keymux.Keystore1.Manager" send_member="OpenConnection"/>||' "$KMX_TMP/bus.conf"
busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig

# ---- Python through introspection: list, generate, sign, prompt ----
delete_all
printf 'signed from Python\n' >py.msg
out=$(gi_run /usr/bin/python3 "$KMX_EXAMPLES_DIR/keymux-sign.py" py.msg py.sig py.pub) || fail "python: $out"
assert_contains "$out" "peer-to-peer True"
assert_contains "$out" "generated "
verify py.pub py.msg py.sig
kmx_device softkey:login ChangeSecret ss "" "py secret"
out=$(gi_run /usr/bin/python3 "$KMX_EXAMPLES_DIR/keymux-sign.py" py.msg py2.sig py2.pub "py secret") ||
	fail "python with a prompt: $out"
assert_contains "$out" "asked $(kmx_device_path softkey:login)"
cmp -s py.pub py2.pub || fail "the second run used another key"
verify py2.pub py.msg py2.sig
# a wrong answer: the signature fails with BadSecret, nothing signed
out=$(gi_run /usr/bin/python3 "$KMX_EXAMPLES_DIR/keymux-sign.py" py.msg py3.sig py3.pub "wrong" 2>&1) &&
	fail "a wrong secret signed: $out"
assert_contains "$out" "error "
[ ! -e py3.sig ] || fail "a signature despite a wrong secret"
kmx_device softkey:login Unlock sa{sv} "py secret" 0
kmx_device softkey:login ChangeSecret ss "py secret" ""

# ---- GJS through introspection ----
printf 'signed from GJS\n' >js.msg
out=$(gi_run gjs -m "$KMX_EXAMPLES_DIR/keymux-sign.js" js.msg js.sig js.pub) || fail "gjs: $out"
assert_contains "$out" "peer-to-peer true"
assert_contains "$out" "generated "
openssl pkey -pubin -inform DER -in js.pub -out js.pem
openssl dgst -sha256 -verify js.pem -signature js.sig js.msg >/dev/null || fail "the GJS signature"
kmx_device softkey:login ChangeSecret ss "" "js secret"
out=$(gi_run gjs -m "$KMX_EXAMPLES_DIR/keymux-sign.js" js.msg js2.sig js2.pub "js secret") || fail "gjs with a prompt: $out"
assert_contains "$out" "asked $(kmx_device_path softkey:login)"
openssl dgst -sha256 -verify js.pem -signature js2.sig js.msg >/dev/null || fail "the GJS signature after the prompt"
