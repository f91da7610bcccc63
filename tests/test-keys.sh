#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Keys over D-Bus with the soft-key store: generate every type, use every
# operation, check every result with openssl, and every refusal.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
kmx_start_daemon
cd "$KMX_TMP"

dev=$(kmx_device_path softkey:login)
printf 'the message keymux signs\n' >msg

# object path of a new key of type $1
generate() {
	kmx_device softkey:login GenerateKey ssa{sv} "$1" "test $1" 0 | sed -n 's/^o "\(.*\)"$/\1/p'
}
sign() { # path algorithm file [prehashed]: signature into file.sig
	local opts=0
	[ "${4:-}" = prehashed ] && opts='1 prehashed b true'
	# shellcheck disable=SC2046
	kmx_key "$1" Sign saya{sv} "$2" $(kmx_file_to_ay "$3") $opts | kmx_ay_to_file "$3.sig"
}

# ---- watch the bus: no polling, a client sees every change ----
kmx_bg dbus-monitor --session "type='signal',sender='org.keymux.Keystore1'" >"$KMX_TMP/signals.log" 2>&1
# a monitor announces itself with NameLost: from then on it sees everything
for _ in $(seq 200); do grep -q NameLost "$KMX_TMP/signals.log" && break; sleep 0.05; done
grep -q NameLost "$KMX_TMP/signals.log" || fail "dbus-monitor did not start"

declare -A KEY
for t in ed25519 ecdsa-p256 ecdsa-p384 rsa2048 x25519; do
	KEY[$t]=$(generate "$t")
	[ -n "${KEY[$t]}" ] || fail "GenerateKey $t returned no path"
	id=$(kmx_prop "${KEY[$t]}" org.keymux.Keystore1.Key Id | sed 's/^s "\(.*\)"$/\1/')
	pubkey "${KEY[$t]}" "$t.pub"
	# the id is the SHA-256 of the DER SubjectPublicKeyInfo
	assert_eq "$(openssl dgst -sha256 -r "$t.pub.der" | cut -d' ' -f1)" "$id" "key id of $t"
	assert_eq "s \"$t\"" "$(kmx_prop "${KEY[$t]}" org.keymux.Keystore1.Key Algorithm)"
	assert_eq "b false" "$(kmx_prop "${KEY[$t]}" org.keymux.Keystore1.Key Locked)"
done
assert_eq 'as 2 "sign" "derive"' "$(kmx_prop "${KEY[ecdsa-p256]}" org.keymux.Keystore1.Key Usage)"
assert_eq 'as 1 "derive"' "$(kmx_prop "${KEY[x25519]}" org.keymux.Keystore1.Key Usage)"
keys=$(kmx_prop "$dev" org.keymux.Keystore1.Device Keys)
assert_contains "$keys" "ao 5"
assert_eq "ao 5" "$(kmx_manager ListKeys | cut -d' ' -f1-2)"

# ---- signatures, checked by openssl ----
sign "${KEY[ed25519]}" ed25519 msg
openssl pkeyutl -verify -pubin -inkey ed25519.pub -rawin -in msg -sigfile msg.sig >/dev/null ||
	fail "ed25519 signature does not verify"
for alg in ecdsa-sha256 ecdsa-sha384; do
	sign "${KEY[ecdsa-p256]}" $alg msg
	openssl dgst -${alg#ecdsa-} -verify ecdsa-p256.pub -signature msg.sig msg >/dev/null ||
		fail "$alg signature does not verify"
done
sign "${KEY[ecdsa-p384]}" ecdsa-sha384 msg
openssl dgst -sha384 -verify ecdsa-p384.pub -signature msg.sig msg >/dev/null || fail "P-384 signature"
for h in sha256 sha384 sha512; do
	sign "${KEY[rsa2048]}" rsa-pkcs1-$h msg
	openssl dgst -$h -verify rsa2048.pub -signature msg.sig msg >/dev/null || fail "rsa-pkcs1-$h"
	sign "${KEY[rsa2048]}" rsa-pss-$h msg
	openssl dgst -$h -verify rsa2048.pub -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
		-signature msg.sig msg >/dev/null || fail "rsa-pss-$h"
done

# ---- prehashed: the digest is signed as given ----
openssl dgst -sha256 -binary msg >msg.sha256
sign "${KEY[ecdsa-p256]}" ecdsa-sha256 msg.sha256 prehashed
cp msg.sha256.sig msg.sig
openssl dgst -sha256 -verify ecdsa-p256.pub -signature msg.sig msg >/dev/null || fail "prehashed ECDSA"
sign "${KEY[rsa2048]}" rsa-pss-sha256 msg.sha256 prehashed
openssl dgst -sha256 -verify rsa2048.pub -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
	-signature msg.sha256.sig msg >/dev/null || fail "prehashed PSS"
err=$(kmx_call_error kmx_key "${KEY[ecdsa-p256]}" Sign saya{sv} ecdsa-sha256 3 1 2 3 1 prehashed b true)
assert_contains "$err" "32 bytes"
err=$(kmx_call_error kmx_key "${KEY[ed25519]}" Sign saya{sv} ed25519 3 1 2 3 1 prehashed b true)
assert_contains "$err" "prehashed"
err=$(kmx_call_error kmx_key "${KEY[ecdsa-p256]}" Sign saya{sv} ecdsa-sha256 3 1 2 3 1 prehashed s yes)
assert_contains "$err" "must be a boolean"

# ---- decrypt: ciphertexts made by openssl ----
kmx_check_rsa_decrypt "${KEY[rsa2048]}" rsa2048.pub
# a broken ciphertext is an error, and the daemon carries on
head -c 256 /dev/zero >ct.bad
# shellcheck disable=SC2046
err=$(kmx_call_error kmx_key "${KEY[rsa2048]}" Decrypt saya{sv} rsa-oaep-sha256 $(kmx_file_to_ay ct.bad) 0)
assert_contains "$err" "ecrypt"

# ---- derive, compared with openssl's ----
for t in ecdsa-p256 x25519; do
	if [ $t = x25519 ]; then openssl genpkey -algorithm X25519 -out peer.key; alg=x25519
	else openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out peer.key; alg=ecdh; fi
	openssl pkey -in peer.key -pubout -outform DER -out peer.der
	openssl pkeyutl -derive -inkey peer.key -peerkey "$t.pub" -out want.bin
	# shellcheck disable=SC2046
	kmx_key "${KEY[$t]}" Derive saya{sv} $alg $(kmx_file_to_ay peer.der) 0 | kmx_ay_to_file got.bin
	cmp -s want.bin got.bin || fail "$alg shared secret differs from openssl's"
done

# ---- refusals ----
err=$(kmx_call_error kmx_key "${KEY[ed25519]}" Sign saya{sv} md5-rsa 1 1 0)
assert_contains "$err" "unknown sign algorithm"
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "${KEY[ed25519]}" \
	--method org.keymux.Keystore1.Key.Decrypt rsa-pkcs1 '[byte 1]' '{}')
assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported"
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "${KEY[rsa2048]}" \
	--method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1]' '{}')
assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported"
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "${KEY[x25519]}" \
	--method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1]' '{}')
assert_contains "$err" "NotSupported"
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "${KEY[x25519]}" \
	--method org.keymux.Keystore1.Key.Derive x25519 '[byte 1, 2, 3]' '{}')
assert_contains "$err" "InvalidArgument"

# ---- Manager.Sign / Decrypt by id and prefix, either case ----
id=$(kmx_prop "${KEY[ed25519]}" org.keymux.Keystore1.Key Id | sed 's/^s "\(.*\)"$/\1/')
# shellcheck disable=SC2046
kmx_manager Sign ssaya{sv} "${id:0:10}" ed25519 $(kmx_file_to_ay msg) 0 | kmx_ay_to_file msg.sig
openssl pkeyutl -verify -pubin -inkey ed25519.pub -rawin -in msg -sigfile msg.sig >/dev/null || fail "Manager.Sign by prefix"
upper=$(tr a-f A-F <<<"${id:0:12}")
assert_contains "$(kmx_manager FindKey s "$upper")" "${KEY[ed25519]}"
rid=$(kmx_prop "${KEY[rsa2048]}" org.keymux.Keystore1.Key Id | sed 's/^s "\(.*\)"$/\1/')
# shellcheck disable=SC2046
kmx_manager Decrypt ssaya{sv} "$rid" rsa-pkcs1 $(kmx_file_to_ay ct.pkcs1) 0 | kmx_ay_to_file out
assert_eq "secret words" "$(cat out)" "Manager.Decrypt"

# ---- metadata: label, import, exists, delete ----
kmx_key "${KEY[ed25519]}" SetLabel s "renamed ✓"
assert_contains "$(kmx_gprop "${KEY[ed25519]}" org.keymux.Keystore1.Key Label)" "'renamed ✓'"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out imp.pem
# shellcheck disable=SC2046
out=$(kmx_device softkey:login ImportKey ayssa{sv} $(kmx_file_to_ay imp.pem) "" "imported" 0)
imp=$(sed -n 's/^ao 1 "\(.*\)"$/\1/p' <<<"$out")
[ -n "$imp" ] || fail "ImportKey returned '$out'"
openssl pkey -in imp.pem -pubout -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1 >want.id
assert_contains "$imp" "$(cat want.id)" "imported key id"
# shellcheck disable=SC2046
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$dev" \
	--method org.keymux.Keystore1.Device.ImportKey "[byte $(od -An -tu1 -v imp.pem | tr -s ' \n' ',' | sed 's/^,//; s/,$//; s/,/, byte /g')]" "" "" '{}')
assert_contains "$err" "org.keymux.Keystore1.Error.Exists"
printf 'not a key at all' >junk
# shellcheck disable=SC2046
err=$(kmx_call_error kmx_device softkey:login ImportKey ayssa{sv} $(kmx_file_to_ay junk) "" "" 0)
assert_contains "$err" "PKCS"
assert_eq "ao 6" "$(kmx_manager ListKeys | cut -d' ' -f1-2)"
kmx_key "$imp" Delete
assert_eq "ao 5" "$(kmx_manager ListKeys | cut -d' ' -f1-2)"
ls "$KEYMUX_DATA_DIR"/softkey/login/ | grep -q "$(cat want.id)" && fail "a file of the deleted key is left"
err=$(kmx_call_error kmx_key "$imp" Sign saya{sv} ecdsa-sha256 1 1 0)
assert_contains "$err" "does not exist"

# ---- two clients at once, many requests each ----
pids=()
for c in 1 2 3 4 5 6 7 8; do
	(
		for i in 1 2 3 4 5; do
			# shellcheck disable=SC2046
			kmx_key "${KEY[ecdsa-p256]}" Sign saya{sv} ecdsa-sha256 $(kmx_file_to_ay msg) 0 | kmx_ay_to_file "c$c.sig"
			openssl dgst -sha256 -verify ecdsa-p256.pub -signature "c$c.sig" msg >/dev/null || exit 1
		done
	) &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent client failed"; done

# ---- the events a client saw ----
for _ in $(seq 400); do grep -q renamed "$KMX_TMP/signals.log" && break; sleep 0.05; done
signals=$(cat "$KMX_TMP/signals.log")
assert_contains "$signals" "InterfacesAdded"
assert_contains "$signals" "InterfacesRemoved"
assert_contains "$signals" "PropertiesChanged"
assert_contains "$signals" "renamed"

# ---- the audit trail names operations and keys, never data ----
log=$(cat "$KMX_TMP/keymuxd.log")
assert_contains "$log" "sign key $id"
assert_contains "$log" "decrypt key $rid"
assert_not_contains "$log" "secret words"

# ---- keys survive a restart ----
kmx_stop_daemon
kmx_start_daemon
assert_eq "ao 5" "$(kmx_manager ListKeys | cut -d' ' -f1-2)"
sign "${KEY[ed25519]}" ed25519 msg
openssl pkeyutl -verify -pubin -inkey ed25519.pub -rawin -in msg -sigfile msg.sig >/dev/null || fail "after restart"
assert_contains "$(kmx_gprop "${KEY[ed25519]}" org.keymux.Keystore1.Key Label)" "'renamed ✓'"
echo "PASS: test-keys"
