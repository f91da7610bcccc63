#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The TPM backend on a real TPM simulator (swtpm, through tpm2-tss' swtpm
# TCTI): tpm:0 appears when the TPM answers; keys are made inside it and
# kept as TSS2 key files; signatures, decryption and ECDH are checked with
# openssl; keys stay listed and usable across a restart; a TPM that goes
# away makes the device unavailable (calls fail at once with Unavailable,
# keys stay listed) and is picked up again when it comes back; key files
# load in tpm2-openssl, and tpm2-openssl's load in keymux.
. "$KMX_TESTS_DIR/harness.sh"
. "$KMX_TESTS_DIR/tpm-common.sh"
kmx_setup
cd "$KMX_TMP"

# a key file of another TPM: a new state dir is a new owner seed
kmx_start_swtpm
ossl genpkey -algorithm EC -pkeyopt group:P-256 -out foreign.pem 2>/dev/null ||
	fail "tpm2-openssl cannot make a key"
kmx_stop_swtpm
rm -rf "$KMX_TMP/tpm/state"
kmx_start_swtpm
# swtpm stopped without TPM2_Shutdown counts a dictionary-attack failure on
# its next start, and keys are DA-protected: no lockout until the DA test
tpm2_dictionarylockout -s -n 100 -t 1 -l 1 >/dev/null 2>&1 || fail "cannot set the DA parameters"
tpm_conf "$KMX_SWTPM_TCTI"
TPMDIR=$KEYMUX_DATA_DIR/tpm
DEV=$(kmx_device_path tpm:0)
printf 'the message the TPM signs\n' >msg

# ---- the device appears when the TPM answers ----
kmx_start_daemon
assert_contains "$(kmx_prop "$KMX_PATH" org.keymux.Keystore1.Manager Backends)" '"tpm"'
until_ok prop_is "$DEV" Available "b true"
assert_eq "b false" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Locked)"
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Details)" "\"tcti\" s \"$KMX_SWTPM_TCTI\""
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Details)" '"max-auth-fail" u'

# ---- keys made inside the TPM, one TSS2 key file each ----
declare -A KEY
for t in ecdsa-p256 ecdsa-p384 rsa2048 rsa3072; do
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
sign "${KEY[rsa3072]}" rsa-pss-sha384 msg
openssl dgst -sha384 -verify rsa3072.pub -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
	-signature msg.sig msg >/dev/null || fail "RSA-3072 rsa-pss-sha384 signature"
sign "${KEY[ecdsa-p384]}" ecdsa-sha384 msg
openssl dgst -sha384 -verify ecdsa-p384.pub -signature msg.sig msg >/dev/null || fail "P-384 signature"
for h in sha256 sha512; do
	sign "${KEY[rsa2048]}" rsa-pkcs1-$h msg
	openssl dgst -$h -verify rsa2048.pub -signature msg.sig msg >/dev/null || fail "rsa-pkcs1-$h"
	sign "${KEY[rsa2048]}" rsa-pss-$h msg
	openssl dgst -$h -verify rsa2048.pub -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
		-signature msg.sig msg >/dev/null || fail "rsa-pss-$h"
done

# ---- the raw algorithms: "ecdsa" takes a digest of any length (brought to
# the curve's hash size as FIPS 186 reads it), "rsa-pkcs1" pads on the host
# and lets TPM2_RSA_Decrypt apply the bare private key ----
for h in sha1 sha256 sha384 sha512; do
	openssl dgst -$h -binary msg >"d-$h"
	for t in ecdsa-p256 ecdsa-p384; do
		sign "${KEY[$t]}" ecdsa "d-$h"
		openssl pkeyutl -verify -pubin -inkey $t.pub -in "d-$h" -sigfile "d-$h.sig" >/dev/null ||
			fail "the TPM's raw ecdsa over $h with $t does not verify"
	done
done
{ printf '\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14'; openssl dgst -sha1 -binary msg; } >di-sha1
{ openssl dgst -md5 -binary msg; openssl dgst -sha1 -binary msg; } >tls12
head -c 245 /dev/urandom >longest
: >empty
verify_raw_rsa() { # pubkey file: the signature recovers exactly the file
	openssl pkeyutl -verifyrecover -pubin -inkey "$1" -pkeyopt rsa_padding_mode:pkcs1 \
		-in "$2.sig" -out "$2.rec" || fail "the TPM's rsa-pkcs1 over $2 does not verify"
	cmp -s "$2" "$2.rec" || fail "the TPM's rsa-pkcs1 over $2 signed other data"
}
for f in di-sha1 tls12 longest empty; do
	sign "${KEY[rsa2048]}" rsa-pkcs1 $f
	verify_raw_rsa rsa2048.pub $f
done
openssl pkeyutl -verify -pubin -inkey rsa2048.pub -pkeyopt rsa_padding_mode:pkcs1 -in tls12 \
	-sigfile tls12.sig >/dev/null || fail "the TPM's TLS 1.2 signature does not verify"
head -c 246 /dev/urandom >toolong
# shellcheck disable=SC2046
err=$(kmx_call_error kmx_key "${KEY[rsa2048]}" Sign saya{sv} rsa-pkcs1 $(kmx_file_to_ay toolong) 0)
assert_contains "$err" "at most 245 bytes"
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "$P256" \
	--method org.keymux.Keystore1.Key.Sign ecdsa "@ay []" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.InvalidArgument"
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "$P256" \
	--method org.keymux.Keystore1.Key.Sign rsa-pkcs1 "[byte 0x68]" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported"

# ---- decrypt and derive, compared with openssl ----
kmx_check_rsa_decrypt "${KEY[rsa2048]}" rsa2048.pub
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out peer.key
openssl pkey -in peer.key -pubout -outform DER -out peer.der
openssl pkeyutl -derive -inkey peer.key -peerkey ecdsa-p256.pub -out want.bin
# shellcheck disable=SC2046
kmx_key "$P256" Derive saya{sv} ecdh $(kmx_file_to_ay peer.der) 0 | kmx_ay_to_file got.bin
cmp -s want.bin got.bin || fail "ECDH shared secret differs from openssl's"

# ---- restart: the keys are listed and usable ----
kmx_key "$P256" SetLabel s "renamed" >/dev/null
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
kmx_start_daemon
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$P256ID"
assert_eq 's "renamed"' "$(kmx_prop "$P256" org.keymux.Keystore1.Key Label)"
until_ok prop_is "$DEV" Available "b true"
verify_p256 "$P256" ecdsa-p256.pub "a signature after a restart"

# ---- keymuxd killed with keys loaded: swtpm keeps them (no resource
# manager), and the next keymuxd clears its three slots ----
sign "${KEY[rsa2048]}" rsa-pkcs1-sha256 msg
verify_p256 "$P256" ecdsa-p256.pub "a signature before a crash"
kmx_kill_daemon
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
verify_p256 "$P256" ecdsa-p256.pub "a signature after keymuxd was killed"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "flushing transient object"
sign "${KEY[rsa2048]}" rsa-pkcs1-sha256 msg
openssl dgst -sha256 -verify rsa2048.pub -signature msg.sig msg >/dev/null ||
	fail "an RSA signature after keymuxd was killed does not verify"

# ---- the TPM goes away: unavailable, keys listed, no hang ----
kmx_stop_swtpm
until_ok prop_is "$DEV" Available "b false"
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$P256ID"
assert_eq "b false" "$(kmx_prop "$P256" org.keymux.Keystore1.Key Available)"
assert_contains "$(details)" '"error" s'
start=$SECONDS
err=$(kmx_call_error gsign "$P256ID" ecdsa-sha256)
[ $((SECONDS - start)) -le 2 ] || fail "a call on the absent TPM took $((SECONDS - start)) s"
assert_contains "$err" "org.keymux.Keystore1.Error.Unavailable"
assert_contains "$err" "device tpm:0 is not available"

# ---- and back, without a restart ----
kmx_start_swtpm
until_ok prop_is "$DEV" Available "b true"
verify_p256 "$P256" ecdsa-p256.pub "a signature after the TPM came back"

# ---- keymuxd started with no TPM: keys listed, device unavailable ----
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
kmx_stop_swtpm
kmx_start_daemon
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$P256ID"
assert_eq "b false" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Available)"
err=$(kmx_call_error gsign "$P256ID" ecdsa-sha256)
assert_contains "$err" "org.keymux.Keystore1.Error.Unavailable"
kmx_start_swtpm
until_ok prop_is "$DEV" Available "b true"
verify_p256 "$P256" ecdsa-p256.pub "a signature after a late TPM"

# ---- Delete removes both files ----
kmx_key "${KEY[ecdsa-p384]}" Delete >/dev/null
p384id=${KEY[ecdsa-p384]##*/}
[ ! -e "$TPMDIR/$p384id.pem" ] && [ ! -e "$TPMDIR/$p384id.info" ] || fail "Delete left files behind"

# ---- tpm2-openssl and tpm2-tools: keymux's key files load there ----
# (swtpm serves one client at a time: keymuxd lets go of it first)
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
openssl dgst -sha256 -binary msg >msg.sha256
ossl pkeyutl -sign -inkey "$TPMDIR/$P256ID.pem" -in msg.sha256 -out ossl.sig ||
	fail "tpm2-openssl cannot sign with a key file keymux wrote"
openssl pkeyutl -verify -pubin -inkey ecdsa-p256.pub -in msg.sha256 -sigfile ossl.sig >/dev/null ||
	fail "tpm2-openssl's signature with keymux's key does not verify"
timeout 60 tpm2_load -r "$TPMDIR/$P256ID.pem" -c p256.ctx >/dev/null 2>&1 ||
	fail "tpm2_load cannot load a key file keymux wrote"
timeout 60 tpm2_readpublic -c p256.ctx -f pem -o p256.tools.pem >/dev/null 2>&1 ||
	fail "tpm2_readpublic failed"
# tpm2_load leaves its objects in swtpm's three transient slots
timeout 60 tpm2_flushcontext -t >/dev/null 2>&1 || fail "tpm2_flushcontext failed"
openssl pkey -pubin -in p256.tools.pem -outform DER -out p256.tools.der
cmp -s p256.tools.der ecdsa-p256.pub.der || fail "tpm2_readpublic disagrees with keymux's public key"
# a certificate request signed through tpm2-openssl
ossl req -new -key "$TPMDIR/$P256ID.pem" -subj /CN=keymux -out req.csr ||
	fail "tpm2-openssl cannot sign a request with keymux's key"
openssl req -in req.csr -verify -noout >/dev/null 2>&1 || fail "the request's signature does not verify"
openssl req -in req.csr -pubkey -noout | openssl pkey -pubin -outform DER -out req.pub.der
cmp -s req.pub.der ecdsa-p256.pub.der || fail "the request holds another public key"
# the RSA key too: tpm2-openssl signs (PKCS#1 v1.5 over SHA-256), tpm2-tools reads it
RSAFILE=$TPMDIR/${KEY[rsa2048]##*/}.pem
ossl pkeyutl -sign -inkey "$RSAFILE" -pkeyopt digest:sha256 -in msg.sha256 -out ossl.sig ||
	fail "tpm2-openssl cannot sign with keymux's RSA key file"
openssl pkeyutl -verify -pubin -inkey rsa2048.pub -pkeyopt digest:sha256 -in msg.sha256 \
	-sigfile ossl.sig >/dev/null || fail "tpm2-openssl's signature with keymux's RSA key does not verify"
timeout 60 tpm2_load -r "$RSAFILE" -c rsa.ctx >/dev/null 2>&1 || fail "tpm2_load cannot load keymux's RSA key"
timeout 60 tpm2_readpublic -c rsa.ctx -f der -o rsa.tools.der >/dev/null 2>&1 || fail "tpm2_readpublic failed"
timeout 60 tpm2_flushcontext -t >/dev/null 2>&1 || fail "tpm2_flushcontext failed"
cmp -s rsa.tools.der rsa2048.pub.der || fail "tpm2_readpublic disagrees with keymux's RSA public key"
ossl genpkey -algorithm EC -pkeyopt group:P-256 -out ossl.pem 2>/dev/null ||
	fail "tpm2-openssl cannot make a key"
ossl pkey -in ossl.pem -pubout -out ossl.pub
# an RSA-PSS key: a signing scheme of its own
ossl genpkey -algorithm RSA-PSS -pkeyopt digest:sha256 -out pss.pem 2>/dev/null || fail "tpm2-openssl cannot make an RSA-PSS key"
openssl pkey -pubin -in ossl.pub -outform DER -out ossl.pub.der
OSSLID=$(openssl dgst -sha256 -r ossl.pub.der | cut -d' ' -f1)
# and one with a password of its own
ossl genpkey -algorithm EC -pkeyopt group:P-256 -pkeyopt user-auth:keypass -out ossl-auth.pem 2>/dev/null ||
	fail "tpm2-openssl cannot make a key with a password"
openssl asn1parse -in ossl-auth.pem | grep -q 'BOOLEAN *:0$' || fail "tpm2-openssl's key with a password says emptyAuth"
ossl pkey -in ossl-auth.pem -passin pass:keypass -pubout -out ossl-auth.pub

# ---- and tpm2-openssl's key files import into keymux ----
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
assert_eq "$OSSLID" "$("$KEYMUXCTL" import -d tpm:0 -l "from tpm2-openssl" ossl.pem)" "the id of an imported key"
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$OSSLID"
verify_p256 "$(kmx_device_path tpm:0)/$OSSLID" ossl.pub "a signature with tpm2-openssl's key"
# the raw rsa-pkcs1 needs TPM2_RSA_Decrypt with no scheme, which the
# RSA-PSS key's scheme forbids: NotSupported, saying why
PSSID=$("$KEYMUXCTL" import -d tpm:0 pss.pem)
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "$(kmx_device_path tpm:0)/$PSSID" \
	--method org.keymux.Keystore1.Key.Sign rsa-pkcs1 "[byte 0x68]" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported"
assert_contains "$err" "a scheme of its own"
# a key with its own password: the passphrase; it is re-wrapped to the
# device's (empty) secret
assert_exit 4 "$KEYMUXCTL" import -d tpm:0 --passphrase-fd 3 ossl-auth.pem 3< <(printf 'wrong')
AUTHID=$("$KEYMUXCTL" import -d tpm:0 --passphrase-fd 3 ossl-auth.pem 3< <(printf 'keypass'))
verify_p256 "$(kmx_device_path tpm:0)/$AUTHID" ossl-auth.pub "a signature with a key that had a password"
openssl asn1parse -in "$TPMDIR/$AUTHID.pem" | grep -q 'BOOLEAN *:[1-9]' || fail "no emptyAuth after the re-wrap"

# ---- imports keymux refuses, and why ----
assert_exit 8 "$KEYMUXCTL" import -d tpm:0 ossl.pem
assert_exit 1 "$KEYMUXCTL" import -d tpm:0 foreign.pem
assert_contains "$(cat "$KMX_TMP/last.err")" "does not load in this TPM"
# the same key under a persistent parent (0x81000001)
{
	echo 'asn1=SEQUENCE:key'
	echo '[key]'
	echo 'type=OID:2.23.133.10.1.3'
	echo 'empty=EXPLICIT:0,BOOLEAN:TRUE'
	echo 'parent=INTEGER:0x81000001'
	openssl asn1parse -in ossl.pem | sed -n 's/.*OCTET STRING *\[HEX DUMP\]:/FORMAT:HEX,OCTETSTRING:/p' |
		sed '1s/^/pub=/; 2s/^/priv=/'
} >parent.cnf
openssl asn1parse -genconf parent.cnf -out parent.der -noout
{
	echo '-----BEGIN TSS2 PRIVATE KEY-----'
	base64 -w 64 parent.der
	echo '-----END TSS2 PRIVATE KEY-----'
} >parent.pem
assert_exit 7 "$KEYMUXCTL" import -d tpm:0 parent.pem
assert_contains "$(cat "$KMX_TMP/last.err")" "parent is 0x81000001"
openssl genpkey -algorithm ED25519 -out soft-ed25519.pem
assert_exit 7 "$KEYMUXCTL" import -d tpm:0 soft-ed25519.pem
assert_contains "$(cat "$KMX_TMP/last.err")" "not TPM 2.0 algorithms"
printf 'junk' >junk.bin
assert_exit 2 "$KEYMUXCTL" import -d tpm:0 junk.bin
assert_contains "$(cat "$KMX_TMP/last.err")" "not a TSS2 key file nor a private key"

# ---- soft keys wrapped for the TPM (TPM2_Import): they sign as before ----
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out soft-p384.pem
openssl pkey -in soft-p384.pem -pubout -out soft-p384.pub
SOFTID=$("$KEYMUXCTL" import -d tpm:0 -l "was soft" soft-p384.pem)
assert_eq "ecdsa-p384" "$(kmx_prop "$(kmx_device_path tpm:0)/$SOFTID" org.keymux.Keystore1.Key Algorithm | sed 's/^s "\(.*\)"$/\1/')"
sign "$(kmx_device_path tpm:0)/$SOFTID" ecdsa-sha384 msg
openssl dgst -sha384 -verify soft-p384.pub -signature msg.sig msg >/dev/null ||
	fail "an imported P-384 key's signature does not verify"
assert_eq "-----BEGIN TSS2 PRIVATE KEY-----" "$(head -n 1 "$TPMDIR/$SOFTID.pem")"
# an encrypted PKCS#8 RSA key: the passphrase opens it, a wrong one is BadSecret
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out soft-rsa.pem
openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:opensesame -in soft-rsa.pem -out soft-rsa-enc.pem
openssl pkey -in soft-rsa.pem -pubout -out soft-rsa.pub
assert_exit 4 "$KEYMUXCTL" import -d tpm:0 --passphrase-fd 3 soft-rsa-enc.pem 3< <(printf 'wrong')
SOFTRSA=$("$KEYMUXCTL" import -d tpm:0 --passphrase-fd 3 soft-rsa-enc.pem 3< <(printf 'opensesame'))
sign "$(kmx_device_path tpm:0)/$SOFTRSA" rsa-pss-sha256 msg
openssl dgst -sha256 -verify soft-rsa.pub -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
	-signature msg.sig msg >/dev/null || fail "an imported RSA key's signature does not verify"
sign "$(kmx_device_path tpm:0)/$SOFTRSA" rsa-pkcs1 tls12
verify_raw_rsa soft-rsa.pub tls12
assert_exit 8 "$KEYMUXCTL" import -d tpm:0 soft-p384.pem

# ---- every format the soft-key store imports wraps for the TPM too: the
# shared parser reads OpenSSH, PKCS#12 and SEC1 files, and the key file
# under tpm/ holds no clear key ----
pkey_hex() { # PEM FIELD: a private field of `openssl pkey -text`, as hex
	openssl pkey -in "$1" -noout -text | sed -n "/^$2:/,/^[a-zA-Z]/p" | sed '1d;$d' |
		tr -d ' :\n' | sed 's/^00//'
}
hex_of() { # FILE: its bytes as one line of hex
	od -An -v -tx1 "$1" | tr -d ' \n'
}
no_clear_key() { # ID PEM FIELD WHAT: the field of the clear key is not in the TPM key file
	local hex
	hex=$(pkey_hex "$2" "$3")
	[ "${#hex}" -ge 64 ] || fail "$4: no $3 read from the clear key"
	openssl pkey -in "$2" -outform DER -out clear.der
	hex_of clear.der | grep -q "$hex" || fail "$4: the $3 check cannot see the clear key"
	sed '1d;$d' "$TPMDIR/$1.pem" | base64 -d >wrapped.der || fail "$4: the key file is not PEM"
	! hex_of wrapped.der | grep -q "$hex" || fail "$4: the clear key is in its TPM key file"
}
keys_now() { kmx_prop "$DEV" org.keymux.Keystore1.Device Keys; }
# OpenSSH ECDSA P-256, plain; its clear form for the checks from ssh-keygen
ssh-keygen -q -t ecdsa -b 256 -N '' -C sshp256 -f ssh-p256
ssh-keygen -e -m PKCS8 -f ssh-p256.pub >ssh-p256.spki
cp ssh-p256 ssh-p256.clear && ssh-keygen -q -p -N '' -m PEM -f ssh-p256.clear >/dev/null
SSHID=$("$KEYMUXCTL" import -d tpm:0 ssh-p256)
sign "$(kmx_device_path tpm:0)/$SSHID" ecdsa-sha256 msg
openssl dgst -sha256 -verify ssh-p256.spki -signature msg.sig msg >/dev/null ||
	fail "an imported OpenSSH P-256 key's signature does not verify"
no_clear_key "$SSHID" ssh-p256.clear priv "an OpenSSH P-256 key"
# the same kind of key with a passphrase: a wrong one is BadSecret, nothing added
ssh-keygen -q -t ecdsa -b 256 -N 'sshpass' -f ssh-p256-enc
ssh-keygen -e -m PKCS8 -f ssh-p256-enc.pub >ssh-p256-enc.spki
cp ssh-p256-enc ssh-p256-enc.clear && ssh-keygen -q -p -P sshpass -N '' -m PEM -f ssh-p256-enc.clear >/dev/null
before=$(keys_now)
files_before=$(ls "$TPMDIR")
assert_exit 4 "$KEYMUXCTL" import -d tpm:0 --passphrase-fd 3 ssh-p256-enc 3< <(printf 'wrong')
assert_contains "$(cat "$KMX_TMP/last.err")" "wrong passphrase"
assert_exit 4 "$KEYMUXCTL" import -d tpm:0 ssh-p256-enc
assert_eq "$before" "$(keys_now)" "the keys after a wrong passphrase"
assert_eq "$files_before" "$(ls "$TPMDIR")" "the files under tpm/ after a wrong passphrase"
SSHENCID=$("$KEYMUXCTL" import -d tpm:0 --passphrase-fd 3 ssh-p256-enc 3< <(printf 'sshpass'))
sign "$(kmx_device_path tpm:0)/$SSHENCID" ecdsa-sha256 msg
openssl dgst -sha256 -verify ssh-p256-enc.spki -signature msg.sig msg >/dev/null ||
	fail "an imported passphrase-protected OpenSSH key's signature does not verify"
no_clear_key "$SSHENCID" ssh-p256-enc.clear priv "a passphrase-protected OpenSSH key"
# OpenSSH RSA-2048
ssh-keygen -q -t rsa -b 2048 -N '' -f ssh-rsa
ssh-keygen -e -m PKCS8 -f ssh-rsa.pub >ssh-rsa.spki
cp ssh-rsa ssh-rsa.clear && ssh-keygen -q -p -N '' -m PEM -f ssh-rsa.clear >/dev/null
SSHRSA=$("$KEYMUXCTL" import -d tpm:0 ssh-rsa)
assert_eq "rsa2048" "$(kmx_prop "$(kmx_device_path tpm:0)/$SSHRSA" org.keymux.Keystore1.Key Algorithm | sed 's/^s "\(.*\)"$/\1/')"
sign "$(kmx_device_path tpm:0)/$SSHRSA" rsa-pkcs1-sha256 msg
openssl dgst -sha256 -verify ssh-rsa.spki -signature msg.sig msg >/dev/null ||
	fail "an imported OpenSSH RSA key's signature does not verify"
no_clear_key "$SSHRSA" ssh-rsa.clear prime1 "an OpenSSH RSA key"
no_clear_key "$SSHRSA" ssh-rsa.clear privateExponent "an OpenSSH RSA key"
# PKCS#12 with a P-384 key and its certificate, under a password
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p12-p384.pem
openssl pkey -in p12-p384.pem -pubout -out p12-p384.pub
openssl req -x509 -new -key p12-p384.pem -subj /CN=p12 -days 1 -out p12-p384.crt
openssl pkcs12 -export -inkey p12-p384.pem -in p12-p384.crt -passout pass:p12pass -out p384.p12
before=$(keys_now)
assert_exit 4 "$KEYMUXCTL" import -d tpm:0 --passphrase-fd 3 p384.p12 3< <(printf 'wrong')
assert_eq "$before" "$(keys_now)" "the keys after a wrong PKCS#12 password"
P12ID=$("$KEYMUXCTL" import -d tpm:0 --passphrase-fd 3 p384.p12 3< <(printf 'p12pass'))
sign "$(kmx_device_path tpm:0)/$P12ID" ecdsa-sha384 msg
openssl dgst -sha384 -verify p12-p384.pub -signature msg.sig msg >/dev/null ||
	fail "an imported PKCS#12 P-384 key's signature does not verify"
no_clear_key "$P12ID" p12-p384.pem priv "a PKCS#12 key"
# a traditional "EC PRIVATE KEY" PEM (SEC1, with its parameters block)
openssl ecparam -genkey -name prime256v1 -out sec1.pem
grep -q 'BEGIN EC PRIVATE KEY' sec1.pem || fail "openssl wrote no EC PRIVATE KEY"
openssl pkey -in sec1.pem -pubout -out sec1.pub
SEC1ID=$("$KEYMUXCTL" import -d tpm:0 sec1.pem)
sign "$(kmx_device_path tpm:0)/$SEC1ID" ecdsa-sha256 msg
openssl dgst -sha256 -verify sec1.pub -signature msg.sig msg >/dev/null ||
	fail "an imported EC PRIVATE KEY's signature does not verify"
no_clear_key "$SEC1ID" sec1.pem priv "an EC PRIVATE KEY"
# an OpenSSH Ed25519 key: not a TPM algorithm, said so, nothing added
ssh-keygen -q -t ed25519 -N '' -f ssh-ed25519
before=$(keys_now)
assert_exit 7 "$KEYMUXCTL" import -d tpm:0 ssh-ed25519
assert_contains "$(cat "$KMX_TMP/last.err")" "Ed25519 and X25519 are not TPM 2.0 algorithms"
assert_eq "$before" "$(keys_now)" "the keys after an Ed25519 import"

# ---- keymuxctl shows the TPM, its lockout state and keys ----
assert_contains "$("$KEYMUXCTL" devices)" "tpm:0"
assert_contains "$("$KEYMUXCTL" info tpm:0)" "lockout-counter"
assert_contains "$("$KEYMUXCTL" keys tpm:0)" "${OSSLID:0:16}  ecdsa-p256  sign,derive   from tpm2-openssl"

# ---- a damaged key file: the others are listed, the daemon carries on ----
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
BROKEN=$(printf '%064d' 0)
printf 'not a key\n' >"$TPMDIR/$BROKEN.pem"
kmx_start_daemon
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$P256ID"
assert_not_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$BROKEN"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "$BROKEN.pem is not usable"
rm "$TPMDIR/$BROKEN.pem"

# ---- swtpm killed mid-command: Unavailable, no hang; back after a restart ----
until_ok prop_is "$DEV" Available "b true"
(
	rc=0
	kmx_device tpm:0 GenerateKey ssa{sv} rsa3072 slow 0 >killed.out 2>&1 || rc=$?
	echo "exit $rc" >>killed.out
) &
sleep 0.1
kmx_kill_swtpm
until_ok grep -q '^exit' killed.out
if grep -q '^exit 0' killed.out; then
	kmx_log "the key was made before swtpm was killed"
else
	# mid-command, or (a slow run) after a probe saw swtpm gone
	grep -Eq 'does not answer|tpm:0 is not available' killed.out ||
		fail "GenerateKey with swtpm killed: $(cat killed.out)"
fi
until_ok prop_is "$DEV" Available "b false"
assert_contains "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Keys)" "$P256ID"
kmx_start_swtpm
until_ok prop_is "$DEV" Available "b true"
verify_p256 "$P256" ecdsa-p256.pub "a signature after swtpm was killed and restarted"
kmx_stop_daemon || fail "keymuxd did not stop cleanly"

# ---- the device secret: every key's auth value; a wrong one costs one DA try ----
# many tries, a long interval: the counter stays put and never locks out
tpm2_dictionarylockout -c >/dev/null 2>&1 || fail "cannot clear the DA counter"
tpm2_dictionarylockout -s -n 10 -t 600 -l 1 >/dev/null 2>&1 || fail "cannot set the DA parameters"
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
until_ok da_counter_is 0
assert_contains "$(details)" '"protected" b false'
assert_eq "i -1" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device PinRetries)"
kmx_device tpm:0 ChangeSecret ss "" 1234 >/dev/null
assert_eq "b false" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Locked)"
assert_contains "$(details)" '"protected" b true'
assert_eq "i 10" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device PinRetries)"
[ -s "$TPMDIR/secret.pem" ] || fail "no secret.pem after ChangeSecret"
[ -z "$(find "$TPMDIR" -name '*.new')" ] || fail "staged files left after ChangeSecret"
verify_p256 "$P256" ecdsa-p256.pub "a signature under the new secret"
NEWKEY=$(generate ecdsa-p256 "made under the secret")
pubkey "$NEWKEY" new.pub
verify_p256 "$NEWKEY" new.pub "a key made under the secret"
# a soft key imported under the secret takes it as its auth value
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out soft-secret.pem
openssl pkey -in soft-secret.pem -pubout -out soft-secret.pub
SECRETID=$("$KEYMUXCTL" import -d tpm:0 soft-secret.pem)
verify_p256 "$(kmx_device_path tpm:0)/$SECRETID" soft-secret.pub "a key imported under the secret"
openssl asn1parse -in "$TPMDIR/$SECRETID.pem" | grep -q BOOLEAN && fail "emptyAuth on a key imported under a secret"
# a key file with a secret says so: no emptyAuth
openssl asn1parse -in "$TPMDIR/${NEWKEY##*/}.pem" | grep -q BOOLEAN && fail "emptyAuth on a key with a secret"

# locked: nothing works without the secret, and nothing is tried
kmx_device tpm:0 Lock >/dev/null
assert_eq "b true" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Locked)"
err=$(kmx_call_error gsign "$P256ID" ecdsa-sha256 "{'interactive': <false>}")
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"
# a wrong secret: BadSecret, exactly one DA try; a right one: none
err=$(kmx_call_error gdev Unlock 9999 "@a{sv} {}")
assert_contains "$err" "org.keymux.Keystore1.Error.BadSecret"
until_ok da_counter_is 1
assert_eq "i 9" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device PinRetries)"
kmx_device tpm:0 Unlock sa{sv} 1234 0 >/dev/null
assert_eq "b false" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Locked)"
verify_p256 "$P256" ecdsa-p256.pub "a signature after Unlock"
sleep 0.2 # a few probes
assert_eq 1 "$(da_counter)" "a right secret cost a DA try"
# a wrong old secret changes nothing
err=$(kmx_call_error gdev ChangeSecret 0000 5678)
assert_contains "$err" "org.keymux.Keystore1.Error.BadSecret"
until_ok da_counter_is 2
[ -z "$(find "$TPMDIR" -name '*.new')" ] || fail "staged files left after a refused ChangeSecret"

# across a restart: locked, the same secret opens it
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
# the TPM's own count, not keymux's: two wrong secrets, two tries
assert_eq 2 "$(tools_da_counter)" "tpm2_getcap's lockout counter"
kmx_start_daemon
assert_eq "b true" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Locked)"
until_ok prop_is "$DEV" Available "b true"
kmx_device tpm:0 Unlock sa{sv} 1234 0 >/dev/null
verify_p256 "$NEWKEY" new.pub "a signature after a restart under the secret"

# ---- a change cut short by a crash: all old, or all new ----
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
cp -a "$TPMDIR" old # every file under 1234
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
kmx_device tpm:0 Unlock sa{sv} 1234 0 >/dev/null
kmx_device tpm:0 ChangeSecret ss 1234 5678 >/dev/null
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
cp -a "$TPMDIR" new # every file under 5678
restore() { rm -rf "$TPMDIR" && cp -a old "$TPMDIR"; }
# before the commit: secret.pem.new and a staged key: undone
restore
cp new/secret.pem "$TPMDIR/secret.pem.new"
cp "new/$P256ID.pem" "$TPMDIR/$P256ID.pem.new"
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
kmx_device tpm:0 Unlock sa{sv} 1234 0 >/dev/null
verify_p256 "$P256" ecdsa-p256.pub "a key after an undone change"
verify_p256 "$NEWKEY" new.pub "another key after an undone change"
[ -z "$(find "$TPMDIR" -name '*.new')" ] || fail "an undone change left staged files"
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
# after the commit, one key renamed, the others still staged: completed
restore
cp new/secret.pem "$TPMDIR/secret.pem"
for f in new/*.pem; do
	[ "$f" = new/secret.pem ] || cp "$f" "$TPMDIR/${f#new/}.new"
done
mv "$TPMDIR/$P256ID.pem.new" "$TPMDIR/$P256ID.pem"
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
kmx_device tpm:0 Unlock sa{sv} 5678 0 >/dev/null
verify_p256 "$P256" ecdsa-p256.pub "a key after a completed change"
verify_p256 "$NEWKEY" new.pub "a staged key after a completed change"
[ -z "$(find "$TPMDIR" -name '*.new')" ] || fail "a completed change left staged files"

# ---- no secret again ----
kmx_device tpm:0 ChangeSecret ss 5678 "" >/dev/null
assert_eq "b false" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Locked)"
assert_contains "$(details)" '"protected" b false'
[ ! -e "$TPMDIR/secret.pem" ] || fail "secret.pem left after the secret was removed"
kmx_device tpm:0 Lock >/dev/null
assert_eq "b false" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Locked)"
verify_p256 "$NEWKEY" new.pub "a signature with no secret"
assert_eq 2 "$(da_counter)" "right secrets cost DA tries"
kmx_stop_daemon || fail "keymuxd did not stop cleanly"

# ---- keymuxctl: generate, export-public, sign, passwd, lock, unlock ----
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
CTLID=$("$KEYMUXCTL" generate -d tpm:0 -l "from keymuxctl" ecdsa-p256)
"$KEYMUXCTL" export-public "$CTLID" >ctl.pub
"$KEYMUXCTL" sign "$CTLID" msg >ctl.sig
openssl dgst -sha256 -verify ctl.pub -signature ctl.sig msg >/dev/null || fail "keymuxctl sign"
"$KEYMUXCTL" passwd --secret-fd 3 tpm:0 3< <(printf '\n4321\n') >/dev/null
"$KEYMUXCTL" lock tpm:0
assert_eq "b true" "$(kmx_prop "$DEV" org.keymux.Keystore1.Device Locked)"
"$KEYMUXCTL" unlock --secret-fd 3 tpm:0 3< <(printf '4321\n') >/dev/null
"$KEYMUXCTL" sign "$CTLID" msg >ctl.sig
openssl dgst -sha256 -verify ctl.pub -signature ctl.sig msg >/dev/null || fail "keymuxctl sign after unlock"
"$KEYMUXCTL" passwd --secret-fd 3 tpm:0 3< <(printf '4321\n\n') >/dev/null
assert_contains "$(details)" '"protected" b false'
assert_eq 2 "$(da_counter)" "keymuxctl's right secrets cost DA tries"

# ---- PKCS#11 C_GenerateKeyPair on the TPM: RSA up to 3072 bits, EC ----
if [ -n "${KMX_TEST_PKCS11:-}" ]; then
	out=$("$KMX_TEST_PKCS11" "$KMX_PKCS11_MODULE" tpmgen tpm:0) || fail "PKCS#11 on the TPM: $out"
	p11id=$(sed -n 's/^tpm p256 //p' <<<"$out")
	[ ${#p11id} = 64 ] || fail "tpmgen printed '$out'"
	assert_eq 's "ecdsa-p256"' "$(kmx_prop "$DEV/$p11id" org.keymux.Keystore1.Key Algorithm)"
	assert_eq 's "tpm p256"' "$(kmx_prop "$DEV/$p11id" org.keymux.Keystore1.Key Label)"
fi
kmx_stop_daemon || fail "keymuxd did not stop cleanly"

# ---- a soft key wrapped by keymux (TPM2_Import, its secret changed twice
# since) signs in tpm2-openssl ----
ossl pkeyutl -sign -inkey "$TPMDIR/$SOFTID.pem" -in msg.sha256 -out soft.sig ||
	fail "tpm2-openssl cannot sign with a key keymux imported"
openssl pkeyutl -verify -pubin -inkey soft-p384.pub -in msg.sha256 -sigfile soft.sig >/dev/null ||
	fail "tpm2-openssl's signature with an imported key does not verify"
