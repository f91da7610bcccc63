#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The raw sign algorithms with soft keys: "rsa-pkcs1" pads what the client
# encoded (a DigestInfo, TLS 1.2's MD5+SHA1), "ecdsa" signs a digest of any
# length as FIPS 186 says; every signature is checked by openssl, which is
# given the same bytes and no digest.  Then every refusal.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
kmx_start_daemon
cd "$KMX_TMP"

printf 'the message keymux signs raw\n' >msg

generate() {
	kmx_device softkey:login GenerateKey ssa{sv} "$1" "raw $1" 0 | sed -n 's/^o "\(.*\)"$/\1/p'
}
sign() { # path algorithm file [options...]: the signature into file.sig
	local path=$1 alg=$2 file=$3
	shift 3
	local opts=(0)
	[ $# -gt 0 ] && opts=("$@")
	# shellcheck disable=SC2046
	kmx_key "$path" Sign saya{sv} "$alg" $(kmx_file_to_ay "$file") "${opts[@]}" | kmx_ay_to_file "$file.sig"
}
verify_rsa() { # pubkey file: the signature recovers exactly the file's bytes
	# (pkeyutl -verify takes at most 64 bytes, "a hash")
	if [ "$(wc -c <"$2")" -le 64 ]; then
		openssl pkeyutl -verify -pubin -inkey "$1" -pkeyopt rsa_padding_mode:pkcs1 \
			-in "$2" -sigfile "$2.sig" >/dev/null || fail "rsa-pkcs1 over $2 with $1 does not verify"
	fi
	openssl pkeyutl -verifyrecover -pubin -inkey "$1" -pkeyopt rsa_padding_mode:pkcs1 \
		-in "$2.sig" -out "$2.rec" || fail "rsa-pkcs1 over $2 with $1 does not recover"
	cmp -s "$2" "$2.rec" || fail "rsa-pkcs1 over $2 with $1 recovers other data"
}
gsign() { # path algorithm file: through gdbus, which names the error
	local ay
	ay=$(/usr/bin/python3 -c '
import sys
d = open(sys.argv[1], "rb").read()
print("[" + ", ".join("byte %d" % b for b in d) + "]" if d else "@ay []")' "$3")
	gdbus call --session --dest "$KMX_NAME" --object-path "$1" \
		--method org.keymux.Keystore1.Key.Sign "$2" "$ay" '{}'
}
verify_ec() { # pubkey file: a DER signature over the file as a digest
	openssl pkeyutl -verify -pubin -inkey "$1" -in "$2" -sigfile "$2.sig" >/dev/null ||
		fail "ecdsa over $2 with $1 does not verify"
}

# what TLS 1.0-1.2 and PKCS#11 callers hand over
{ printf '\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14'; openssl dgst -sha1 -binary msg; } >di-sha1
{ printf '\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20'; openssl dgst -sha256 -binary msg; } >di-sha256
{ openssl dgst -md5 -binary msg; openssl dgst -sha1 -binary msg; } >tls12
assert_eq 36 "$(wc -c <tls12)" "the TLS 1.2 MD5+SHA1 blob"
for h in sha1 sha256 sha384 sha512; do openssl dgst -$h -binary msg >"d-$h"; done
: >empty

declare -A KEY
for t in rsa2048 rsa3072 rsa4096 ecdsa-p256 ecdsa-p384 ed25519 x25519; do
	KEY[$t]=$(generate "$t")
	[ -n "${KEY[$t]}" ] || fail "GenerateKey $t returned no path"
	pubkey "${KEY[$t]}" "$t.pub"
done

# ---- rsa-pkcs1: the data is padded as given ----
for t in rsa2048 rsa3072 rsa4096; do
	for f in di-sha1 di-sha256 tls12; do
		sign "${KEY[$t]}" rsa-pkcs1 $f
		verify_rsa "$t.pub" $f
	done
	# and the DigestInfo one is an ordinary SHA-256 signature of the message
	openssl dgst -sha256 -verify "$t.pub" -signature di-sha256.sig msg >/dev/null ||
		fail "rsa-pkcs1 over a SHA-256 DigestInfo is not an RSA-SHA256 signature ($t)"
	# the longest the modulus allows, and one byte more
	max=$(($(kmx_prop "${KEY[$t]}" org.keymux.Keystore1.Key Algorithm | tr -dc 0-9) / 8 - 11))
	head -c "$max" /dev/urandom >"longest-$t"
	sign "${KEY[$t]}" rsa-pkcs1 "longest-$t"
	verify_rsa "$t.pub" "longest-$t"
	head -c $((max + 1)) /dev/urandom >"toolong-$t"
	err=$(kmx_call_error gsign "${KEY[$t]}" rsa-pkcs1 "toolong-$t")
	assert_contains "$err" "org.keymux.Keystore1.Error.InvalidArgument"
	assert_contains "$err" "at most $max bytes"
done
# empty data is a valid PKCS#1 message: the signature recovers nothing
sign "${KEY[rsa2048]}" rsa-pkcs1 empty
assert_eq 256 "$(wc -c <empty.sig)" "an rsa-pkcs1 signature of nothing"
openssl pkeyutl -verifyrecover -pubin -inkey rsa2048.pub -pkeyopt rsa_padding_mode:pkcs1 \
	-in empty.sig -out recovered || fail "the signature of nothing does not recover"
assert_eq 0 "$(wc -c <recovered)" "what the signature of nothing recovers"
# Decrypt's rsa-pkcs1 is not Sign's: a signature is no ciphertext
# shellcheck disable=SC2046
err=$(kmx_call_error kmx_key "${KEY[rsa2048]}" Decrypt saya{sv} rsa-pkcs1 $(kmx_file_to_ay di-sha1.sig) 0)
assert_not_contains "$err" "unknown"

# ---- ecdsa: a digest of any length, truncated by FIPS 186 ----
for t in ecdsa-p256 ecdsa-p384; do
	for h in sha1 sha256 sha384 sha512; do
		sign "${KEY[$t]}" ecdsa "d-$h"
		verify_ec "$t.pub" "d-$h"
	done
	# a digest of the message is an ordinary ecdsa-sha* signature of it
	sign "${KEY[$t]}" ecdsa d-sha256
	openssl dgst -sha256 -verify "$t.pub" -signature d-sha256.sig msg >/dev/null ||
		fail "ecdsa over a SHA-256 digest is not an ECDSA-SHA256 signature ($t)"
	err=$(kmx_call_error gsign "${KEY[$t]}" ecdsa empty)
	assert_contains "$err" "org.keymux.Keystore1.Error.InvalidArgument"
	assert_contains "$err" "empty"
done
# a signature made over one digest does not verify over another
sign "${KEY[ecdsa-p256]}" ecdsa d-sha384
cp d-sha384.sig d-sha512.sig
openssl pkeyutl -verify -pubin -inkey ecdsa-p256.pub -in d-sha512 -sigfile d-sha512.sig >/dev/null 2>&1 &&
	fail "openssl accepts an ecdsa signature over the wrong digest"

# ---- "prehashed" means nothing to the raw algorithms: accepted, no hashing ----
sign "${KEY[ecdsa-p256]}" ecdsa d-sha256 1 prehashed b true
verify_ec ecdsa-p256.pub d-sha256
sign "${KEY[rsa2048]}" rsa-pkcs1 tls12 1 prehashed b true
verify_rsa rsa2048.pub tls12
sign "${KEY[rsa2048]}" rsa-pkcs1 tls12 1 prehashed b false
verify_rsa rsa2048.pub tls12

# ---- refusals: a key type that cannot, an unknown name ----
for pair in "ed25519 rsa-pkcs1" "ed25519 ecdsa" "rsa2048 ecdsa" "ecdsa-p256 rsa-pkcs1" "x25519 ecdsa"; do
	read -r t alg <<<"$pair"
	err=$(kmx_call_error gsign "${KEY[$t]}" "$alg" d-sha256)
	assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported" "$alg with $t"
done
err=$(kmx_call_error gsign "${KEY[ecdsa-p256]}" ecdsa-raw d-sha256)
assert_contains "$err" "org.keymux.Keystore1.Error.InvalidArgument"
assert_contains "$err" "unknown sign algorithm"
err=$(kmx_call_error kmx_key "${KEY[rsa2048]}" Decrypt saya{sv} ecdsa 3 1 2 3 0)
assert_contains "$err" "unknown decrypt algorithm"
err=$(kmx_call_error kmx_key "${KEY[ecdsa-p256]}" Derive saya{sv} ecdsa 3 1 2 3 0)
assert_contains "$err" "unknown derive algorithm"

# ---- Manager.Sign by id, and keymuxctl ----
rid=$(kmx_prop "${KEY[rsa2048]}" org.keymux.Keystore1.Key Id | sed 's/^s "\(.*\)"$/\1/')
# shellcheck disable=SC2046
kmx_manager Sign ssaya{sv} "$rid" rsa-pkcs1 $(kmx_file_to_ay di-sha256) 0 | kmx_ay_to_file di-sha256.sig
verify_rsa rsa2048.pub di-sha256
eid=$(kmx_prop "${KEY[ecdsa-p384]}" org.keymux.Keystore1.Key Id | sed 's/^s "\(.*\)"$/\1/')
# shellcheck disable=SC2046
kmx_manager Sign ssaya{sv} "${eid:0:12}" ecdsa $(kmx_file_to_ay d-sha512) 0 | kmx_ay_to_file d-sha512.sig
verify_ec ecdsa-p384.pub d-sha512
if [ -n "${KEYMUXCTL:-}" ]; then
	"$KEYMUXCTL" sign --algorithm rsa-pkcs1 "$rid" tls12 >tls12.sig || fail "keymuxctl sign rsa-pkcs1"
	verify_rsa rsa2048.pub tls12
	"$KEYMUXCTL" sign -a ecdsa "$eid" d-sha1 >d-sha1.sig || fail "keymuxctl sign ecdsa"
	verify_ec ecdsa-p384.pub d-sha1
fi

# the daemon is still well after all of it
sign "${KEY[ecdsa-p256]}" ecdsa d-sha256
verify_ec ecdsa-p256.pub d-sha256
echo "PASS: test-raw-sign"
