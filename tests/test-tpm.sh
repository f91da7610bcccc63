#!/bin/bash
# The TPM backend on a real TPM simulator (swtpm, through tpm2-tss' swtpm
# TCTI): tpm:0 appears when the TPM answers; keys are made inside it and
# kept as TSS2 key files; signatures, decryption and ECDH are checked with
# openssl; keys stay listed and usable across a restart; a TPM that goes
# away makes the device unavailable (calls fail at once with Unavailable,
# keys stay listed) and is picked up again when it comes back; key files
# load in tpm2-openssl, and tpm2-openssl's load in keymux.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
cd "$KMX_TMP"

kmx_start_swtpm
printf '[tpm]\ntcti=%s\npoll-interval-ms=50\n' "$KMX_SWTPM_TCTI" >"$KEYMUX_CONFIG"
TPMDIR=$KEYMUX_DATA_DIR/tpm
DEV=$(kmx_device_path tpm:0)
printf 'the message the TPM signs\n' >msg

until_ok() {
	for _ in $(seq 400); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.025
	done
	fail "timed out waiting for: $*"
}
prop_is() { [ "$(kmx_prop "$1" org.keymux.Keystore1.Device "$2")" = "$3" ]; }
generate() { # type label: the new key's object path
	kmx_device tpm:0 GenerateKey ssa{sv} "$1" "$2" 0 | sed -n 's/^o "\(.*\)"$/\1/p'
}
pubkey() { # path file: the SPKI as PEM
	kmx_prop "$1" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$2.der"
	openssl pkey -pubin -inform DER -in "$2.der" -out "$2"
}
sign() { # path algorithm file: signature into file.sig
	# shellcheck disable=SC2046
	kmx_key "$1" Sign saya{sv} "$2" $(kmx_file_to_ay "$3") 0 | kmx_ay_to_file "$3.sig"
}
gsign() { # key-id algorithm: through gdbus, which names the D-Bus error
	gdbus call --session --timeout 10 --dest "$KMX_NAME" --object-path "$KMX_PATH" \
		--method org.keymux.Keystore1.Manager.Sign "$1" "$2" "[byte 0x68, 0x69]" "@a{sv} {}"
}

# ---- the device appears when the TPM answers ----
kmx_start_daemon
assert_contains "$(kmx_prop "$KMX_PATH" org.keymux.Keystore1.Manager Backends)" '"tpm"'
until_ok prop_is "$DEV" Available "b true"
assert_eq "b false" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Locked)"
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Details)" "\"tcti\" s \"$KMX_SWTPM_TCTI\""
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Details)" '"max-auth-fail" u'

# ---- keys made inside the TPM, one TSS2 key file each ----
declare -A KEY
for t in ecdsa-p256 ecdsa-p384 rsa2048; do
	KEY[$t]=$(generate $t "tpm $t")
	[ -n "${KEY[$t]}" ] || fail "GenerateKey $t returned no path"
	id=${KEY[$t]##*/}
	pubkey "${KEY[$t]}" "$t.pub"
	assert_eq "$(openssl dgst -sha256 -r "$t.pub.der" | cut -d' ' -f1)" "$id" "key id of $t"
	assert_eq "s \"$t\"" "$(kmx_prop "${KEY[$t]}" org.keymux.Keystore1.Key Algorithm)"
	assert_eq "-----BEGIN TSS2 PRIVATE KEY-----" "$(head -n 1 "$TPMDIR/$id.pem")"
	assert_contains "$(cat "$TPMDIR/$id.info")" "label=tpm $t"
	assert_eq "600" "$(stat -c %a "$TPMDIR/$id.pem")"
done
assert_eq 'as 2 "sign" "derive"' "$(kmx_prop "${KEY[ecdsa-p256]}" org.keymux.Keystore1.Key Usage)"
assert_eq 'as 2 "sign" "decrypt"' "$(kmx_prop "${KEY[rsa2048]}" org.keymux.Keystore1.Key Usage)"
P256=${KEY[ecdsa-p256]}
P256ID=${P256##*/}

# ---- Ed25519 and X25519 are not TPM algorithms ----
for t in ed25519 x25519; do
	err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "$DEV" \
		--method org.keymux.Keystore1.Device.GenerateKey $t k '{}')
	assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported"
	assert_contains "$err" "not a TPM 2.0 algorithm"
done

# ---- signatures, checked by openssl ----
for alg in ecdsa-sha256 ecdsa-sha384; do
	sign "$P256" $alg msg
	openssl dgst -${alg#ecdsa-} -verify ecdsa-p256.pub -signature msg.sig msg >/dev/null ||
		fail "P-256 $alg signature does not verify"
done
sign "${KEY[ecdsa-p384]}" ecdsa-sha384 msg
openssl dgst -sha384 -verify ecdsa-p384.pub -signature msg.sig msg >/dev/null || fail "P-384 signature"
for h in sha256 sha512; do
	sign "${KEY[rsa2048]}" rsa-pkcs1-$h msg
	openssl dgst -$h -verify rsa2048.pub -signature msg.sig msg >/dev/null || fail "rsa-pkcs1-$h"
	sign "${KEY[rsa2048]}" rsa-pss-$h msg
	openssl dgst -$h -verify rsa2048.pub -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
		-signature msg.sig msg >/dev/null || fail "rsa-pss-$h"
done

# ---- decrypt and derive, compared with openssl ----
printf 'secret words' >plain
openssl pkeyutl -encrypt -pubin -inkey rsa2048.pub -in plain -out ct.pkcs1
# shellcheck disable=SC2046
kmx_key "${KEY[rsa2048]}" Decrypt saya{sv} rsa-pkcs1 $(kmx_file_to_ay ct.pkcs1) 0 | kmx_ay_to_file out
assert_eq "secret words" "$(cat out)" "rsa-pkcs1 decrypt"
openssl pkeyutl -encrypt -pubin -inkey rsa2048.pub -pkeyopt rsa_padding_mode:oaep \
	-pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in plain -out ct.oaep
# shellcheck disable=SC2046
kmx_key "${KEY[rsa2048]}" Decrypt saya{sv} rsa-oaep-sha256 $(kmx_file_to_ay ct.oaep) 0 | kmx_ay_to_file out
assert_eq "secret words" "$(cat out)" "rsa-oaep-sha256 decrypt"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out peer.key
openssl pkey -in peer.key -pubout -outform DER -out peer.der
openssl pkeyutl -derive -inkey peer.key -peerkey ecdsa-p256.pub -out want.bin
# shellcheck disable=SC2046
kmx_key "$P256" Derive saya{sv} ecdh $(kmx_file_to_ay peer.der) 0 | kmx_ay_to_file got.bin
cmp -s want.bin got.bin || fail "ECDH shared secret differs from openssl's"

# ---- restart: the keys are listed and usable ----
kmx_key "$P256" SetLabel s "renamed" >/dev/null

# ---- tpm2-openssl: keymux's key files load there, and its files here ----
# (swtpm serves one client at a time: keymuxd lets go of it first)
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
ossl() { timeout 60 openssl "$@" -provider tpm2 -provider default -propquery '?provider=tpm2'; }
openssl dgst -sha256 -binary msg >msg.sha256
ossl pkeyutl -sign -inkey "$TPMDIR/$P256ID.pem" -in msg.sha256 -out ossl.sig ||
	fail "tpm2-openssl cannot sign with a key file keymux wrote"
openssl pkeyutl -verify -pubin -inkey ecdsa-p256.pub -in msg.sha256 -sigfile ossl.sig >/dev/null ||
	fail "tpm2-openssl's signature with keymux's key does not verify"
ossl genpkey -algorithm EC -pkeyopt group:P-256 -out ossl.pem 2>/dev/null ||
	fail "tpm2-openssl cannot make a key"
ossl pkey -in ossl.pem -pubout -out ossl.pub
openssl pkey -pubin -in ossl.pub -outform DER -out ossl.pub.der
OSSLID=$(openssl dgst -sha256 -r ossl.pub.der | cut -d' ' -f1)
cp ossl.pem "$TPMDIR/$OSSLID.pem"
kmx_start_daemon
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$OSSLID"
until_ok prop_is "$DEV" Available "b true"
sign "$(kmx_device_path tpm:0)/$OSSLID" ecdsa-sha256 msg
openssl dgst -sha256 -verify ossl.pub -signature msg.sig msg >/dev/null ||
	fail "keymux's signature with tpm2-openssl's key does not verify"
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
kmx_start_daemon
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$P256ID"
assert_eq 's "renamed"' "$(kmx_prop "$P256" org.keymux.Keystore1.Key Label)"
until_ok prop_is "$DEV" Available "b true"
sign "$P256" ecdsa-sha256 msg
openssl dgst -sha256 -verify ecdsa-p256.pub -signature msg.sig msg >/dev/null ||
	fail "signature after a restart does not verify"

# ---- the TPM goes away: unavailable, keys listed, no hang ----
kmx_stop_swtpm
until_ok prop_is "$DEV" Available "b false"
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$P256ID"
assert_eq "b false" "$(kmx_prop "$P256" org.keymux.Keystore1.Key Available)"
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Details)" '"error" s'
start=$SECONDS
err=$(kmx_call_error gsign "$P256ID" ecdsa-sha256)
[ $((SECONDS - start)) -le 2 ] || fail "a call on the absent TPM took $((SECONDS - start)) s"
assert_contains "$err" "org.keymux.Keystore1.Error.Unavailable"
assert_contains "$err" "device tpm:0 is not available"

# ---- and back, without a restart ----
kmx_start_swtpm
until_ok prop_is "$DEV" Available "b true"
sign "$P256" ecdsa-sha256 msg
openssl dgst -sha256 -verify ecdsa-p256.pub -signature msg.sig msg >/dev/null ||
	fail "signature after the TPM came back does not verify"

# ---- keymuxd started with no TPM: keys listed, device unavailable ----

# ---- tpm2-openssl: keymux's key files load there, and its files here ----
# (swtpm serves one client at a time: keymuxd lets go of it first)
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
ossl() { timeout 60 openssl "$@" -provider tpm2 -provider default -propquery '?provider=tpm2'; }
openssl dgst -sha256 -binary msg >msg.sha256
ossl pkeyutl -sign -inkey "$TPMDIR/$P256ID.pem" -in msg.sha256 -out ossl.sig ||
	fail "tpm2-openssl cannot sign with a key file keymux wrote"
openssl pkeyutl -verify -pubin -inkey ecdsa-p256.pub -in msg.sha256 -sigfile ossl.sig >/dev/null ||
	fail "tpm2-openssl's signature with keymux's key does not verify"
ossl genpkey -algorithm EC -pkeyopt group:P-256 -out ossl.pem 2>/dev/null ||
	fail "tpm2-openssl cannot make a key"
ossl pkey -in ossl.pem -pubout -out ossl.pub
openssl pkey -pubin -in ossl.pub -outform DER -out ossl.pub.der
OSSLID=$(openssl dgst -sha256 -r ossl.pub.der | cut -d' ' -f1)
cp ossl.pem "$TPMDIR/$OSSLID.pem"
kmx_start_daemon
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$OSSLID"
until_ok prop_is "$DEV" Available "b true"
sign "$(kmx_device_path tpm:0)/$OSSLID" ecdsa-sha256 msg
openssl dgst -sha256 -verify ossl.pub -signature msg.sig msg >/dev/null ||
	fail "keymux's signature with tpm2-openssl's key does not verify"
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
kmx_stop_swtpm
kmx_start_daemon
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$P256ID"
assert_eq "b false" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Available)"
err=$(kmx_call_error gsign "$P256ID" ecdsa-sha256)
assert_contains "$err" "org.keymux.Keystore1.Error.Unavailable"
kmx_start_swtpm
until_ok prop_is "$DEV" Available "b true"
sign "$P256" ecdsa-sha256 msg
openssl dgst -sha256 -verify ecdsa-p256.pub -signature msg.sig msg >/dev/null ||
	fail "signature after a late TPM does not verify"

# ---- Delete removes both files ----
kmx_key "${KEY[ecdsa-p384]}" Delete >/dev/null
p384id=${KEY[ecdsa-p384]##*/}
[ ! -e "$TPMDIR/$p384id.pem" ] && [ ! -e "$TPMDIR/$p384id.info" ] || fail "Delete left files behind"

# ---- tpm2-openssl: keymux's key files load there, and its files here ----
# (swtpm serves one client at a time: keymuxd lets go of it first)
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
ossl() { timeout 60 openssl "$@" -provider tpm2 -provider default -propquery '?provider=tpm2'; }
openssl dgst -sha256 -binary msg >msg.sha256
ossl pkeyutl -sign -inkey "$TPMDIR/$P256ID.pem" -in msg.sha256 -out ossl.sig ||
	fail "tpm2-openssl cannot sign with a key file keymux wrote"
openssl pkeyutl -verify -pubin -inkey ecdsa-p256.pub -in msg.sha256 -sigfile ossl.sig >/dev/null ||
	fail "tpm2-openssl's signature with keymux's key does not verify"
ossl genpkey -algorithm EC -pkeyopt group:P-256 -out ossl.pem 2>/dev/null ||
	fail "tpm2-openssl cannot make a key"
ossl pkey -in ossl.pem -pubout -out ossl.pub
openssl pkey -pubin -in ossl.pub -outform DER -out ossl.pub.der
OSSLID=$(openssl dgst -sha256 -r ossl.pub.der | cut -d' ' -f1)
cp ossl.pem "$TPMDIR/$OSSLID.pem"
kmx_start_daemon
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$OSSLID"
until_ok prop_is "$DEV" Available "b true"
sign "$(kmx_device_path tpm:0)/$OSSLID" ecdsa-sha256 msg
openssl dgst -sha256 -verify ossl.pub -signature msg.sig msg >/dev/null ||
	fail "keymux's signature with tpm2-openssl's key does not verify"
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
