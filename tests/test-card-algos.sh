#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# OpenPGP cards, every key type of the card contract end to end, checked by
# openssl: RSA-3072/4096 (sign, decrypt), ECDSA P-384, ECDH P-256 and P-384
# (derive); both transport styles (an extended-length card and a card of
# short APDUs only); and a card that stops answering.
. "$KMX_TESTS_DIR/harness.sh"
kmx_own_pcscd "$@"
kmx_setup

kmx_start_pcscd
# card A: extended Lc/Le; card B: short APDUs, chaining and GET RESPONSE.
# Their DEC slots hold the same RSA-4096 key (one key fewer to generate: a
# few seconds each, far more on a loaded machine)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$KMX_TMP/dec4096.pem" 2>/dev/null
kmx_start_card_sim --serial 00000A4A --keys sig=rsa4096,dec=rsa4096,aut=ecdsa-p384 \
	--key-files "dec=$KMX_TMP/dec4096.pem"
/usr/bin/python3 "$KMX_TESTS_DIR/openpgp-card-sim.py" --port $((KMX_VPCD_PORT + 1)) --serial 00000B4B \
	--keys sig=rsa3072,dec=rsa4096,aut=ecdsa-p384 --key-files "dec=$KMX_TMP/dec4096.pem" \
	--short --log "$KMX_TMP/cardb.log" >>"$KMX_TMP/card-sim.out" 2>&1 &
KMX_PIDS+=($!)
CARDB_PID=$!
LOGA=$KMX_TMP/card.log
LOGB=$KMX_TMP/cardb.log
# the simulators make their other RSA keys before they insert their cards:
# wait for that as long as it takes (the meson timeout bounds it)
inserted() { [ -f "$1" ] && grep -q '^inserted' "$1"; }
while ! inserted "$LOGA" || ! inserted "$LOGB"; do
	kill -0 "$KMX_CARD_PID" "$CARDB_PID" 2>/dev/null || fail "a card simulator exited: $(tail -3 "$KMX_TMP/card-sim.out")"
	sleep 0.1
done

kmx_start_daemon
A=card:FFFE00000A4A
B=card:FFFE00000B4B
until_ok listed "$(kmx_device_path $A)"
until_ok listed "$(kmx_device_path $B)"

# keys DEV: "slot-usage algorithm path" per key, the public keys saved
declare -A K
keys_of() {
	local dev=$1 tag=$2 k alg usage
	for k in $(kmx_prop "$(kmx_device_path "$dev")" org.keymux.Keystore1.Device Keys | sed 's/^ao [0-9]* //; s/"//g'); do
		alg=$(kmx_prop "$k" org.keymux.Keystore1.Key Algorithm | sed 's/^s "\(.*\)"$/\1/')
		usage=$(kmx_prop "$k" org.keymux.Keystore1.Key Usage | grep -o '"[a-z]*"' | head -1 | tr -d '"')
		K[$tag-$alg-$usage]=$k
		kmx_prop "$k" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$KMX_TMP/${k##*/}.der"
		openssl pkey -pubin -inform DER -in "$KMX_TMP/${k##*/}.der" -out "$KMX_TMP/${k##*/}.pub"
		assert_eq "$(sha256sum "$KMX_TMP/${k##*/}.der" | cut -d' ' -f1)" "${k##*/}" "key id of $alg"
	done
}
keys_of $A a
keys_of $B b
pub() { printf '%s/%s.pub' "$KMX_TMP" "${1##*/}"; }
assert_contains "${!K[*]}" "a-rsa4096-sign"
assert_contains "${!K[*]}" "a-rsa4096-decrypt"
assert_contains "${!K[*]}" "a-ecdsa-p384-sign"
assert_contains "${!K[*]}" "b-rsa3072-sign"
assert_contains "${!K[*]}" "b-rsa4096-decrypt"

sign() { # KEY MECHANISM FILE
	# shellcheck disable=SC2046
	kmx_key "$1" Sign saya{sv} "$2" $(kmx_file_to_ay "$3") 0 | kmx_ay_to_file "$3.sig"
}
verify() { # KEY DIGEST FILE
	openssl dgst "-$2" -verify "$(pub "$1")" -signature "$3.sig" "$3" >/dev/null ||
		fail "the signature of ${1##*/} ($2) does not verify"
}
decrypt_check() { # KEY LOG: openssl encrypts, the card decrypts
	openssl pkeyutl -encrypt -pubin -inkey "$(pub "$1")" -in "$KMX_TMP/msg" -out "$KMX_TMP/ct"
	# shellcheck disable=SC2046
	kmx_key "$1" Decrypt saya{sv} rsa-pkcs1 $(kmx_file_to_ay "$KMX_TMP/ct") 0 | kmx_ay_to_file "$KMX_TMP/pt"
	cmp -s "$KMX_TMP/msg" "$KMX_TMP/pt" || fail "the card's RSA decryption with ${1##*/} differs"
}
derive_check() { # KEY CURVE: openssl's ECDH with a fresh peer key agrees with the card's
	openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$KMX_TMP/peer.key"
	openssl pkey -in "$KMX_TMP/peer.key" -pubout -outform DER -out "$KMX_TMP/peer.der"
	openssl pkeyutl -derive -inkey "$KMX_TMP/peer.key" -peerkey "$(pub "$1")" -out "$KMX_TMP/want.bin"
	# shellcheck disable=SC2046
	kmx_key "$1" Derive saya{sv} ecdh $(kmx_file_to_ay "$KMX_TMP/peer.der") 0 | kmx_ay_to_file "$KMX_TMP/got.bin"
	cmp -s "$KMX_TMP/want.bin" "$KMX_TMP/got.bin" || fail "the card's ECDH ($2) differs from openssl's"
}
count() { grep -c "$1" "$2" || true; }

printf 'a message for the card' >"$KMX_TMP/msg"
kmx_device $A Unlock sa{sv} 123456 0 >/dev/null
kmx_device $B Unlock sa{sv} 123456 0 >/dev/null

# ---- card A, extended length: RSA-4096 and P-384 each in one command ----
sign "${K[a-rsa4096-sign]}" rsa-pkcs1-sha512 "$KMX_TMP/msg"
verify "${K[a-rsa4096-sign]}" sha512 "$KMX_TMP/msg"
assert_eq 512 "$(stat -c %s "$KMX_TMP/msg.sig")" "an RSA-4096 signature's size"
sign "${K[a-ecdsa-p384-sign]}" ecdsa-sha384 "$KMX_TMP/msg"
verify "${K[a-ecdsa-p384-sign]}" sha384 "$KMX_TMP/msg"
before=$(count '^2A 8086' "$LOGA")
decrypt_check "${K[a-rsa4096-decrypt]}"
# 513 bytes of PSO:DECIPHER data: one extended command, no chaining
assert_eq "2A 8086 9000 x" "$(grep '^2A 8086' "$LOGA" | tail -n +$((before + 1)))" "RSA-4096 decipher, extended"
assert_eq 0 "$(count '^C0 ' "$LOGA")" "GET RESPONSE on an extended-length card"

# ---- card B, short APDUs: the same work in chained commands and 61xx ----
sign "${K[b-rsa3072-sign]}" rsa-pkcs1-sha384 "$KMX_TMP/msg"
verify "${K[b-rsa3072-sign]}" sha384 "$KMX_TMP/msg"
sign "${K[b-ecdsa-p384-sign]}" ecdsa-sha256 "$KMX_TMP/msg"
verify "${K[b-ecdsa-p384-sign]}" sha256 "$KMX_TMP/msg"
decrypt_check "${K[b-rsa4096-decrypt]}"
# 513 bytes: 255 + 255 + 3, the first two chained
assert_eq 3 "$(count '^2A 8086 9000$' "$LOGB")" "RSA-4096 decipher in three short commands"
assert_eq 0 "$(count ' x$' "$LOGB")" "an extended command to a card without extended length"
# the 7F49 of the RSA-4096 keys (about 530 bytes) came with GET RESPONSE
assert_contains "$(cat "$LOGB")" "C0 0000 61"

# ---- ECDH P-384 and P-256 in the DEC slot, generated by keymux on card B ----
for curve in p384 p256; do
	out=$(kmx_device $B GenerateKey ssa{sv} "ecdsa-$curve" "ecdh $curve" 3 slot s dec replace b true \
		admin-secret s 12345678)
	k=$(sed 's/^o "\(.*\)"$/\1/' <<<"$out")
	assert_contains "$(kmx_prop "$k" org.keymux.Keystore1.Key Usage)" '"derive"'
	kmx_prop "$k" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$KMX_TMP/${k##*/}.der"
	openssl pkey -pubin -inform DER -in "$KMX_TMP/${k##*/}.der" -out "$KMX_TMP/${k##*/}.pub"
	kmx_device $B Unlock sa{sv} 123456 0 >/dev/null
	derive_check "$k" "$([ $curve = p384 ] && echo P-384 || echo P-256)"
	assert_contains "$(kmx_prop "$(kmx_device_path $B)" org.keymux.Keystore1.Device Details)" \
		"\"dec-algorithm\" s \"ecdsa-$curve\""
done

# ---- RSA-3072 generated on card A's AUT slot: signs with INTERNAL AUTHENTICATE ----
out=$(kmx_device $A GenerateKey ssa{sv} rsa3072 "login" 3 slot s aut replace b true admin-secret s 12345678)
k=$(sed 's/^o "\(.*\)"$/\1/' <<<"$out")
kmx_prop "$k" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$KMX_TMP/${k##*/}.der"
openssl pkey -pubin -inform DER -in "$KMX_TMP/${k##*/}.der" -out "$KMX_TMP/${k##*/}.pub"
assert_eq 's "rsa3072"' "$(kmx_prop "$k" org.keymux.Keystore1.Key Algorithm)"
kmx_device $A Unlock sa{sv} 123456 0 >/dev/null
before=$(count '^88 0000 9000 x' "$LOGA")
sign "$k" rsa-pkcs1-sha256 "$KMX_TMP/msg"
verify "$k" sha256 "$KMX_TMP/msg"
assert_eq $((before + 1)) "$(count '^88 0000 9000 x' "$LOGA")" "INTERNAL AUTHENTICATE"

# ---- a card that stops answering: Unavailable and a log line, never a hang;
# it works again once it answers ----
kmx_stop_daemon || fail "keymuxd did not exit cleanly"
printf '[card]\ntimeout-ms=1500\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
until_ok listed "$(kmx_device_path $A)"
kmx_device $A Unlock sa{sv} 123456 0 >/dev/null
sign "${K[a-rsa4096-sign]}" rsa-pkcs1-sha256 "$KMX_TMP/msg"
kill -WINCH "$KMX_CARD_PID" # the card holds the next command and says nothing
err=$(kmx_call_error gdbus call --session --timeout 60 --dest "$KMX_NAME" --object-path "${K[a-rsa4096-sign]}" \
	--method org.keymux.Keystore1.Key.Sign rsa-pkcs1-sha256 "[byte 0x68]" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.Unavailable"
assert_contains "$err" "does not answer"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "did not answer in 1500 ms"
assert_eq 1 "$(count '^2A 9E9A held' "$LOGA")" "the PSO:CDS the card held"
# while the card still holds that command, a call fails at once and sends nothing
lines=$(grep -c "" "$LOGA")
err=$(kmx_call_error gdbus call --session --timeout 60 --dest "$KMX_NAME" --object-path "${K[a-rsa4096-sign]}" \
	--method org.keymux.Keystore1.Key.Sign rsa-pkcs1-sha256 "[byte 0x68]" "{}")
assert_contains "$err" "still does not answer"
assert_eq "$lines" "$(grep -c "" "$LOGA")" "APDUs sent to a card that does not answer"
# the other card is not held up
kmx_device $B Unlock sa{sv} 123456 0 >/dev/null
sign "${K[b-rsa3072-sign]}" rsa-pkcs1-sha384 "$KMX_TMP/msg"
verify "${K[b-rsa3072-sign]}" sha384 "$KMX_TMP/msg"
kill -WINCH "$KMX_CARD_PID" # it answers the held command at last
answered() { tail -n +$((lines + 1)) "$LOGA" | grep -q '^2A 9E9A 9000'; }
until_ok answered
ok_sign() { sign "${K[a-rsa4096-sign]}" rsa-pkcs1-sha256 "$KMX_TMP/msg"; }
until_ok ok_sign
verify "${K[a-rsa4096-sign]}" sha256 "$KMX_TMP/msg"
assert_eq "b true" "$(kmx_prop "$(kmx_device_path $A)" org.keymux.Keystore1.Device Available)"

# ---- stops answering and is pulled out: Unavailable, then back as new ----
kill -WINCH "$KMX_CARD_PID"
err=$(kmx_call_error gdbus call --session --timeout 60 --dest "$KMX_NAME" --object-path "${K[a-rsa4096-sign]}" \
	--method org.keymux.Keystore1.Key.Sign rsa-pkcs1-sha256 "[byte 0x68]" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.Unavailable"
kmx_card_pull
kill -WINCH "$KMX_CARD_PID"
until_ok not_listed "$(kmx_device_path $A)"
kmx_card_insert
until_ok listed "$(kmx_device_path $A)"
assert_eq "b true" "$(kmx_prop "$(kmx_device_path $A)" org.keymux.Keystore1.Device Locked)"
kmx_device $A Unlock sa{sv} 123456 0 >/dev/null
sign "${K[a-rsa4096-sign]}" rsa-pkcs1-sha256 "$KMX_TMP/msg"
verify "${K[a-rsa4096-sign]}" sha256 "$KMX_TMP/msg"

# ---- the same card in the other reader: the same device, its reader in Details ----
kill "$CARDB_PID"
until_ok not_listed "$(kmx_device_path $B)"
kill "$KMX_CARD_PID"
until_ok not_listed "$(kmx_device_path $A)"
/usr/bin/python3 "$KMX_TESTS_DIR/openpgp-card-sim.py" --port $((KMX_VPCD_PORT + 1)) --serial 00000A4A \
	--keys sig=ecdsa-p256 --log "$KMX_TMP/moved.log" >>"$KMX_TMP/card-sim.out" 2>&1 &
KMX_PIDS+=($!)
until_ok listed "$(kmx_device_path $A)"
assert_contains "$(kmx_prop "$(kmx_device_path $A)" org.keymux.Keystore1.Device Details)" \
	'"reader" s "Virtual PCD 00 01"'

kmx_stop_daemon || fail "keymuxd did not exit cleanly"
