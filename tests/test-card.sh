#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# OpenPGP cards: a real pcscd with the vpcd driver and the project's card
# simulator (tests/openpgp-card-sim.py); gpg reads the same simulator, which
# keeps it honest.
. "$KMX_TESTS_DIR/harness.sh"
kmx_own_pcscd "$@"
kmx_setup

# exit_log: keymuxd's log since it was last told to exit
exit_log() { awk '/signal received: locking everything and exiting/ { b = "" } { b = b $0 "\n" } END { printf "%s", b }' "$KMX_TMP/keymuxd.log"; }

kmx_start_pcscd
kmx_start_card_sim --serial 0000BEEF --keys sig=ecdsa-p256,dec=x25519,aut=ed25519 --name 'Doe<<Jane'
until_ok grep -q '^inserted' "$KMX_TMP/card.log"

# ---- gpg's scdaemon reads the simulator: the card is what it says it is ----
export GNUPGHOME=$KMX_TMP/gnupg
mkdir -m 0700 "$GNUPGHOME"
printf 'pcsc-shared\ndisable-ccid\n' >"$GNUPGHOME/scdaemon.conf"
gpg_status() { gpg --batch --card-status 2>&1; }
until_ok gpg_status
status=$(gpg_status)
gpgconf --kill all
assert_contains "$status" "Application ID ...: D276000124010304FFFE0000BEEF0000"
assert_contains "$status" "Name of cardholder: Jane Doe"
assert_contains "$status" "Key attributes ...: nistp256 cv25519 ed25519"
assert_contains "$status" "PIN retry counter : 3 0 3"

# ---- keymuxd sees the card: one device, its keys, locked ----
printf '[daemon]\nprompt-timeout=20\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
assert_contains "$(kmx_prop "$KMX_PATH" org.keymux.Keystore1.Manager Backends)" '"card"'
DEV=card:FFFE0000BEEF
D=$(kmx_device_path $DEV)
until_ok listed "$D"
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Available)"
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"
assert_eq "i 3" "$(kmx_prop "$D" org.keymux.Keystore1.Device PinRetries)"
assert_eq 's "Jane Doe"' "$(kmx_prop "$D" org.keymux.Keystore1.Device Label)"
details=$(kmx_prop "$D" org.keymux.Keystore1.Device Details)
assert_contains "$details" '"admin-retries" i 3'
assert_contains "$details" '"reader" s "Virtual PCD 00 00"'
assert_contains "$details" '"sig-algorithm" s "ecdsa-p256"'
assert_contains "$details" '"dec-algorithm" s "x25519"'
assert_contains "$details" '"manufacturer" s "FFFE"'
assert_contains "$details" '"manufacturer-name" s "unmanaged serial number range"'
assert_contains "$details" '"version" s "3.4"'
assert_contains "$details" '"signature-counter" u 0'
assert_contains "$details" '"sig-pin-forced" b false'
keys=$(kmx_prop "$D" org.keymux.Keystore1.Device Keys)
assert_contains "$keys" "ao 3 "

# the keys by algorithm: SIG ecdsa-p256, DEC x25519, AUT ed25519
declare -A KEY
for k in $(kmx_prop "$D" org.keymux.Keystore1.Device Keys | sed 's/^ao [0-9]* //; s/"//g'); do
	alg=$(kmx_prop "$k" org.keymux.Keystore1.Key Algorithm | sed 's/^s "\(.*\)"$/\1/')
	KEY[$alg]=$k
	kmx_prop "$k" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$KMX_TMP/$alg.der"
	openssl pkey -pubin -inform DER -in "$KMX_TMP/$alg.der" -out "$KMX_TMP/$alg.pub"
	# the id is the SHA-256 of the SubjectPublicKeyInfo, as everywhere
	assert_eq "$(sha256sum "$KMX_TMP/$alg.der" | cut -d' ' -f1)" "${k##*/}" "key id of $alg"
done
assert_contains "${!KEY[*]}" "ecdsa-p256"
assert_contains "${!KEY[*]}" "ed25519"
assert_contains "${!KEY[*]}" "x25519"
assert_contains "$(kmx_prop "${KEY[x25519]}" org.keymux.Keystore1.Key Usage)" '"derive"'
assert_contains "$(kmx_prop "${KEY[ed25519]}" org.keymux.Keystore1.Key Usage)" '"sign"'

gdev() {
	local path
	path=$(kmx_device_path "$1")
	shift
	gdbus call --session --timeout 60 --dest "$KMX_NAME" --object-path "$path" \
		--method "org.keymux.Keystore1.Device.$1" "${@:2}"
}
verifies() { grep -c "^20 00$1 " "$KMX_TMP/card.log" || true; }

# ---- a locked card with nobody to ask: Locked, and no PIN is sent ----
printf 'hello card' >"$KMX_TMP/msg"
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "${KEY[ecdsa-p256]}" \
	--method org.keymux.Keystore1.Key.Sign ecdsa-sha256 "[byte 0x68]" "{'interactive': <false>}")
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"
assert_eq 0 "$(verifies 81)"

# ---- a wrong PIN costs one try, is never sent again, and the counter shows it ----
err=$(kmx_call_error gdev $DEV Unlock 654321 "@a{sv} {}")
assert_contains "$err" "org.keymux.Keystore1.Error.BadSecret"
assert_eq 1 "$(verifies 82)" "VERIFY 82 after one wrong PIN"
assert_eq "1" "$(grep -c '^20 0082 63C2' "$KMX_TMP/card.log")"
assert_eq "i 2" "$(kmx_prop "$D" org.keymux.Keystore1.Device PinRetries)"
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"

# ---- Unlock: one VERIFY 82, the counter back at 3 ----
kmx_device $DEV Unlock sa{sv} 123456 0 >/dev/null
assert_eq 2 "$(verifies 82)"
assert_eq "b false" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"
assert_eq "i 3" "$(kmx_prop "$D" org.keymux.Keystore1.Device PinRetries)"

# ---- signatures, checked by openssl: SIG (PSO:CDS) and AUT (INTERNAL AUTHENTICATE) ----
sign() { # KEY ALG FILE
	# shellcheck disable=SC2046
	kmx_key "$1" Sign saya{sv} "$2" $(kmx_file_to_ay "$3") 0 | kmx_ay_to_file "$3.sig"
}
pso_before=$(grep -c '^2A 9E9A 9000' "$KMX_TMP/card.log" || true)
sign "${KEY[ecdsa-p256]}" ecdsa-sha256 "$KMX_TMP/msg"
openssl dgst -sha256 -verify "$KMX_TMP/ecdsa-p256.pub" -signature "$KMX_TMP/msg.sig" "$KMX_TMP/msg" >/dev/null ||
	fail "the card's ECDSA signature does not verify"
assert_eq 1 "$(verifies 81)" "the PIN goes to VERIFY 81 once"
# after that, a signature is one PSO:CDS: no VERIFY, no GET DATA
lines=$(grep -c "" "$KMX_TMP/card.log")
sign "${KEY[ecdsa-p256]}" ecdsa-sha256 "$KMX_TMP/msg"
openssl dgst -sha256 -verify "$KMX_TMP/ecdsa-p256.pub" -signature "$KMX_TMP/msg.sig" "$KMX_TMP/msg" >/dev/null ||
	fail "the second ECDSA signature does not verify"
assert_eq "2A 9E9A 9000 x" "$(tail -n +$((lines + 1)) "$KMX_TMP/card.log")" "APDUs of one signature (extended length)"
assert_eq $((pso_before + 2)) "$(grep -c '^2A 9E9A 9000' "$KMX_TMP/card.log")"
sign "${KEY[ed25519]}" ed25519 "$KMX_TMP/msg"
openssl pkeyutl -verify -pubin -inkey "$KMX_TMP/ed25519.pub" -rawin -in "$KMX_TMP/msg" \
	-sigfile "$KMX_TMP/msg.sig" >/dev/null || fail "the card's Ed25519 signature does not verify"
assert_eq 1 "$(grep -c '^88 0000 9000' "$KMX_TMP/card.log")"

# ---- gpg beside keymux: scdaemon (shared mode) reads the card between two
# signatures, and keymux carries on ----
status=$(gpg_status)
gpgconf --kill all
assert_contains "$status" "Signature counter : 2"
assert_contains "$status" "Serial number ....: 0000BEEF"
sign "${KEY[ecdsa-p256]}" ecdsa-sha256 "$KMX_TMP/msg"
openssl dgst -sha256 -verify "$KMX_TMP/ecdsa-p256.pub" -signature "$KMX_TMP/msg.sig" "$KMX_TMP/msg" >/dev/null ||
	fail "a signature after gpg used the card does not verify"

# ---- another client resets the card: it forgets the PIN it had accepted;
# keymux reconnects, selects the application and sends that PIN again ----
v81=$(verifies 81)
opensc-tool --reader 0 --reset >/dev/null 2>&1 || fail "opensc-tool cannot reset the card"
sign "${KEY[ecdsa-p256]}" ecdsa-sha256 "$KMX_TMP/msg"
openssl dgst -sha256 -verify "$KMX_TMP/ecdsa-p256.pub" -signature "$KMX_TMP/msg.sig" "$KMX_TMP/msg" >/dev/null ||
	fail "a signature after a reset does not verify"
assert_eq $((v81 + 1)) "$(verifies 81)" "VERIFY 81 after the reset"
assert_eq "b false" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"

# ---- the raw "ecdsa": a digest of any length, signed as FIPS 186 says ----
for h in sha1 sha256 sha384 sha512; do
	openssl dgst -$h -binary "$KMX_TMP/msg" >"$KMX_TMP/d-$h"
	sign "${KEY[ecdsa-p256]}" ecdsa "$KMX_TMP/d-$h"
	openssl pkeyutl -verify -pubin -inkey "$KMX_TMP/ecdsa-p256.pub" -in "$KMX_TMP/d-$h" \
		-sigfile "$KMX_TMP/d-$h.sig" >/dev/null || fail "the card's raw ecdsa over $h does not verify"
done
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "${KEY[ecdsa-p256]}" \
	--method org.keymux.Keystore1.Key.Sign ecdsa "@ay []" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.InvalidArgument"
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "${KEY[ed25519]}" \
	--method org.keymux.Keystore1.Key.Sign ecdsa "[byte 0x68]" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported"

# ---- derive: X25519 through PSO:DECIPHER, compared with openssl's ----
openssl genpkey -algorithm X25519 -out "$KMX_TMP/peer.key"
openssl pkey -in "$KMX_TMP/peer.key" -pubout -outform DER -out "$KMX_TMP/peer.der"
openssl pkeyutl -derive -inkey "$KMX_TMP/peer.key" -peerkey "$KMX_TMP/x25519.pub" -out "$KMX_TMP/want.bin"
# shellcheck disable=SC2046
kmx_key "${KEY[x25519]}" Derive saya{sv} x25519 $(kmx_file_to_ay "$KMX_TMP/peer.der") 0 |
	kmx_ay_to_file "$KMX_TMP/got.bin"
cmp -s "$KMX_TMP/want.bin" "$KMX_TMP/got.bin" || fail "the card's X25519 secret differs from openssl's"
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "${KEY[x25519]}" \
	--method org.keymux.Keystore1.Key.Sign ed25519 "[byte 0x68]" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported"

# ---- the last PIN try (CARD.md): another program spends two; keymux never
# sends the PIN it keeps on the last one, and a person is asked, told so ----
# wrong_pins N: another PC/SC client sends N wrong PINs (VERIFY 82), then resets the card
wrong_pins() {
	local apdus=() i
	for i in $(seq "$1"); do apdus+=(-s 0020008206313131313131); done
	opensc-tool --reader 0 -s 00A4040006D27600012401 "${apdus[@]}" >/dev/null 2>&1 ||
		fail "opensc-tool cannot send wrong PINs"
	opensc-tool --reader 0 --reset >/dev/null 2>&1 || fail "opensc-tool cannot reset the card"
}
wrong_pins 2
v81=$(verifies 81)
v82=$(verifies 82)
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "${KEY[ecdsa-p256]}" \
	--method org.keymux.Keystore1.Key.Sign ecdsa-sha256 "[byte 0x68]" "{'interactive': <false>}")
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"
assert_contains "$err" "one PIN try left"
assert_eq "$v81" "$(verifies 81)" "VERIFY 81 with the kept PIN on the last try"
assert_eq "i 1" "$(kmx_prop "$D" org.keymux.Keystore1.Device PinRetries)"
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "one PIN try left: the PIN keymux keeps is not sent"
# a person who is told it is the last try may spend it: the prompt says 1
kmx_bg "$KMX_TEST_PROMPTER" --secret 123456 >"$KMX_TMP/prompter.out"
until_ok grep -q ready "$KMX_TMP/prompter.out"
sign "${KEY[ecdsa-p256]}" ecdsa-sha256 "$KMX_TMP/msg"
openssl dgst -sha256 -verify "$KMX_TMP/ecdsa-p256.pub" -signature "$KMX_TMP/msg.sig" "$KMX_TMP/msg" >/dev/null ||
	fail "a signature after the last-try prompt does not verify"
assert_contains "$(grep '^asked' "$KMX_TMP/prompter.out")" "'retries': <1>"
assert_eq $((v82 + 1)) "$(verifies 82)" "one VERIFY 82 with the prompted PIN"
assert_eq "i 3" "$(kmx_prop "$D" org.keymux.Keystore1.Device PinRetries)"
kill "${KMX_PIDS[-1]}"
# Unlock with a PIN given while PinRetries still said 3: the counter is read
# first, and the last try is not spent on a caller who was not told
kmx_device $DEV Lock >/dev/null
wrong_pins 2
v82=$(verifies 82)
err=$(kmx_call_error gdev $DEV Unlock 123456 "@a{sv} {}")
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"
assert_contains "$err" "one PIN try left"
assert_eq "$v82" "$(verifies 82)" "VERIFY 82 on an unannounced last try"
assert_eq "i 1" "$(kmx_prop "$D" org.keymux.Keystore1.Device PinRetries)"
# now that PinRetries says 1, the same Unlock is the caller's choice
kmx_device $DEV Unlock sa{sv} 123456 0 >/dev/null
assert_eq $((v82 + 1)) "$(verifies 82)"
assert_eq "i 3" "$(kmx_prop "$D" org.keymux.Keystore1.Device PinRetries)"
assert_eq "b false" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"

# ---- Lock: the card forgets the PIN too; the next signature needs Unlock ----
kmx_device $DEV Lock >/dev/null
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "${KEY[ecdsa-p256]}" \
	--method org.keymux.Keystore1.Key.Sign ecdsa-sha256 "[byte 0x68]" "{'interactive': <false>}")
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"

# ---- GenerateKey: a used slot is Exists before anything is written ----
apdus_before=$(grep -c "" "$KMX_TMP/card.log")
err=$(kmx_call_error gdev $DEV GenerateKey ed25519 k "{'slot': <'aut'>, 'admin-secret': <'12345678'>}")
assert_contains "$err" "org.keymux.Keystore1.Error.Exists"
err=$(kmx_call_error gdev $DEV GenerateKey x25519 k "{'admin-secret': <'12345678'>}")
assert_contains "$err" "org.keymux.Keystore1.Error.Exists"
err=$(kmx_call_error gdev $DEV GenerateKey ed25519 k "{'slot': <'dec'>, 'replace': <true>, 'admin-secret': <'12345678'>}")
assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported"
err=$(kmx_call_error gdev $DEV GenerateKey ed25519 k "{'slot': <'top'>, 'admin-secret': <'12345678'>}")
assert_contains "$err" "org.keymux.Keystore1.Error.InvalidArgument"
assert_eq "$apdus_before" "$(grep -c "" "$KMX_TMP/card.log")" "APDUs sent for refused GenerateKey calls"

# ---- a wrong admin PIN: one try, counted ----
err=$(kmx_call_error gdev $DEV GenerateKey ed25519 k "{'slot': <'sig'>, 'replace': <true>, 'admin-secret': <'999999999'>}")
assert_contains "$err" "org.keymux.Keystore1.Error.BadSecret"
assert_eq 1 "$(verifies 83)"
assert_contains "$(kmx_prop "$D" org.keymux.Keystore1.Device Details)" '"admin-retries" i 2'
assert_eq 0 "$(grep -c '^47 8000' "$KMX_TMP/card.log" || true)"

# ---- generate Ed25519 into the SIG slot, which held a P-256 key: the
# algorithm attributes change first, then fingerprint and date are written ----
out=$(kmx_device $DEV GenerateKey ssa{sv} ed25519 "new sig" 3 slot s sig replace b true admin-secret s 12345678)
NEW=$(sed 's/^o "\(.*\)"$/\1/' <<<"$out")
assert_eq 2 "$(verifies 83)"
assert_eq 1 "$(grep -c '^DA 00C1 9000' "$KMX_TMP/card.log")" "PUT DATA C1 (algorithm)"
assert_eq 1 "$(grep -c '^47 8000 9000' "$KMX_TMP/card.log")" "GENERATE"
assert_eq 1 "$(grep -c '^DA 00C7 9000' "$KMX_TMP/card.log")" "PUT DATA C7 (fingerprint)"
assert_eq 1 "$(grep -c '^DA 00CE 9000' "$KMX_TMP/card.log")" "PUT DATA CE (date)"
assert_contains "$(kmx_prop "$D" org.keymux.Keystore1.Device Details)" '"admin-retries" i 3'
assert_contains "$(kmx_prop "$D" org.keymux.Keystore1.Device Details)" '"sig-algorithm" s "ed25519"'
assert_eq 's "ed25519"' "$(kmx_prop "$NEW" org.keymux.Keystore1.Key Algorithm)"
assert_eq 's "new sig"' "$(kmx_prop "$NEW" org.keymux.Keystore1.Key Label)"
assert_contains "$(kmx_prop "$D" org.keymux.Keystore1.Device Keys)" "${NEW##*/}"
kmx_prop "$NEW" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$KMX_TMP/new.der"
openssl pkey -pubin -inform DER -in "$KMX_TMP/new.der" -out "$KMX_TMP/new.pub"
# the user PIN was not needed to make a key
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"
kmx_device $DEV Unlock sa{sv} 123456 0 >/dev/null
sign "$NEW" ed25519 "$KMX_TMP/msg"
openssl pkeyutl -verify -pubin -inkey "$KMX_TMP/new.pub" -rawin -in "$KMX_TMP/msg" \
	-sigfile "$KMX_TMP/msg.sig" >/dev/null || fail "the new key's signature does not verify"
# the replaced key is gone, and never signs with the key that took its slot
assert_not_contains "$(kmx_prop "$D" org.keymux.Keystore1.Device Keys)" "${KEY[ecdsa-p256]##*/}"
assert_contains "$(kmx_prop "$D" org.keymux.Keystore1.Device Keys)" "ao 3 "
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "$KMX_PATH" \
	--method org.keymux.Keystore1.Manager.Sign "${KEY[ecdsa-p256]##*/}" ecdsa-sha256 "[byte 0x68]" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.NotFound"

# ---- ImportKey: a soft key written into a slot; the same key id as anywhere ----
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$KMX_TMP/soft.pem"
openssl pkey -in "$KMX_TMP/soft.pem" -pubout -outform DER -out "$KMX_TMP/soft.der"
openssl pkey -in "$KMX_TMP/soft.pem" -pubout -out "$KMX_TMP/soft.pub"
SOFTID=$(sha256sum "$KMX_TMP/soft.der" | cut -d' ' -f1)
# shellcheck disable=SC2046
err=$(kmx_call_error kmx_device $DEV ImportKey ayssa{sv} $(kmx_file_to_ay "$KMX_TMP/soft.pem") "" imported 1 admin-secret s 12345678)
assert_contains "$err" "replace"
# shellcheck disable=SC2046
out=$(kmx_device $DEV ImportKey ayssa{sv} $(kmx_file_to_ay "$KMX_TMP/soft.pem") "" imported 3 \
	slot s aut replace b true admin-secret s 12345678)
assert_eq "ao 1 \"$D/$SOFTID\"" "$out"
assert_eq 1 "$(grep -c '^DB 3FFF 9000' "$KMX_TMP/card.log")" "PUT DATA 3FFF"
assert_contains "$(kmx_prop "$D" org.keymux.Keystore1.Device Details)" '"aut-algorithm" s "ecdsa-p256"'
sign "$D/$SOFTID" ecdsa-sha256 "$KMX_TMP/msg"
openssl dgst -sha256 -verify "$KMX_TMP/soft.pub" -signature "$KMX_TMP/msg.sig" "$KMX_TMP/msg" >/dev/null ||
	fail "the imported key's signature does not verify with the soft key's public key"
printf 'not a key' >"$KMX_TMP/junk"
# shellcheck disable=SC2046
err=$(kmx_call_error gdev $DEV ImportKey "$(/usr/bin/python3 -c 'import sys; print("[" + ", ".join("byte %d" % b for b in open(sys.argv[1], "rb").read()) + "]")' "$KMX_TMP/junk")" "''" "''" "{'slot': <'aut'>, 'replace': <true>, 'admin-secret': <'12345678'>}")
assert_contains "$err" "org.keymux.Keystore1.Error.InvalidArgument"

# ---- keymuxctl: the card's state, and generate into a slot with the admin PIN ----
if [ -n "${KEYMUXCTL:-}" ]; then
	out=$("$KEYMUXCTL" devices)
	assert_contains "$(grep -F "$DEV" <<<"$out")" "unlocked, 3 PIN tries"
	out=$("$KEYMUXCTL" devices --json)
	assert_contains "$out" '"admin-retries":3'
	assert_exit 8 "$KEYMUXCTL" generate --device $DEV --slot aut --admin-pin-fd 3 ed25519 3<<<"12345678"
	assert_contains "$(cat "$KMX_TMP/last.err")" "replace"
	AUTID=$("$KEYMUXCTL" generate --device $DEV --slot aut --replace --label login --admin-pin-fd 3 ed25519 3<<<"12345678")
	assert_contains "$(kmx_prop "$D" org.keymux.Keystore1.Device Keys)" "$AUTID"
	assert_contains "$("$KEYMUXCTL" keys)" "${AUTID:0:16}"
fi

# ---- Register: the card stays listed while it is out ----
kmx_device $DEV Register >/dev/null
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Registered)"

# ---- pulled out in the middle of a signature: Unavailable, no hang ----
kill -HUP "$KMX_CARD_PID" # signatures take 2 s
rc=0
gdbus call --session --timeout 30 --dest "$KMX_NAME" --object-path "$NEW" \
	--method org.keymux.Keystore1.Key.Sign ed25519 "[byte 0x68]" "{}" >"$KMX_TMP/inflight.out" 2>&1 &
inflight=$!
sleep 0.7 # the PSO:CDS is under way: it takes 2 s now
kmx_card_pull
wait "$inflight" || rc=$?
assert_eq 1 "$rc" "exit status of the signature cut short"
assert_contains "$(cat "$KMX_TMP/inflight.out")" "org.keymux.Keystore1.Error.Unavailable"
kill -HUP "$KMX_CARD_PID"
until_ok prop_is "$D" Available "b false"
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Registered)"
assert_contains "$(kmx_prop "$D" org.keymux.Keystore1.Device Keys)" "${NEW##*/}"
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "$NEW" \
	--method org.keymux.Keystore1.Key.Sign ed25519 "[byte 0x68]" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.Unavailable"

# ---- back in: Available, Locked, the same keys ----
kmx_card_insert
until_ok prop_is "$D" Available "b true"
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"
assert_eq "i 3" "$(kmx_prop "$D" org.keymux.Keystore1.Device PinRetries)"
assert_contains "$(kmx_prop "$D" org.keymux.Keystore1.Device Keys)" "${NEW##*/}"
kmx_device $DEV Unlock sa{sv} 123456 0 >/dev/null
sign "$NEW" ed25519 "$KMX_TMP/msg"
openssl pkeyutl -verify -pubin -inkey "$KMX_TMP/new.pub" -rawin -in "$KMX_TMP/msg" \
	-sigfile "$KMX_TMP/msg.sig" >/dev/null || fail "a signature after re-insertion does not verify"

# ---- pcscd stops and comes back: the card goes and returns by itself ----
kmx_stop_pcscd
until_ok prop_is "$D" Available "b false"
kmx_start_pcscd
until_ok prop_is "$D" Available "b true"
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"

# ---- a registered card in a drawer across a daemon restart: listed with its
# keys, not available; put back, it is the card again ----
kmx_card_pull
until_ok prop_is "$D" Available "b false"
kmx_stop_daemon || fail "keymuxd did not exit cleanly"
# a card keymuxd holds at exit is let go: its PC/SC context and connection
# released (an unlocked or pulled card's device outlived the exit before)
assert_contains "$(exit_log)" "the PC/SC connection to the card in Virtual PCD 00 00 is closed"
kmx_start_daemon
until_ok listed "$D"
assert_eq "b false" "$(kmx_prop "$D" org.keymux.Keystore1.Device Available)"
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Registered)"
assert_contains "$(kmx_prop "$D" org.keymux.Keystore1.Device Keys)" "${NEW##*/}"
assert_eq 's "ed25519"' "$(kmx_prop "$NEW" org.keymux.Keystore1.Key Algorithm)"
kmx_card_insert
until_ok prop_is "$D" Available "b true"
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Registered)"

# ---- Unregister: out of the reader, the card is gone from the list ----
kmx_device $DEV Unregister >/dev/null
assert_eq "b false" "$(kmx_prop "$D" org.keymux.Keystore1.Device Registered)"
kmx_card_pull
until_ok not_listed "$D"
kmx_card_insert
until_ok listed "$D"
# read from the card again: its three slots, the replaced key gone
keys=$(kmx_prop "$D" org.keymux.Keystore1.Device Keys)
assert_contains "$keys" "ao 3 "
assert_contains "$keys" "${NEW##*/}"
assert_not_contains "$keys" "${KEY[ecdsa-p256]##*/}"

# ---- a second card in the second reader: RSA-2048, PW1 for every signature,
# short APDUs only (command chaining out, GET RESPONSE in) ----
/usr/bin/python3 "$KMX_TESTS_DIR/openpgp-card-sim.py" --port $((KMX_VPCD_PORT + 1)) --serial 0000CAFE \
	--keys sig=rsa2048,dec=rsa2048 --sig-pin-forced --short --exact-le --log "$KMX_TMP/card2.log" \
	>>"$KMX_TMP/card-sim.out" 2>&1 &
KMX_PIDS+=($!)
DEV2=card:FFFE0000CAFE
D2=$(kmx_device_path $DEV2)
for _ in $(seq 30); do listed "$D2" && break; sleep 0.5; done
until_ok listed "$D2"
assert_contains "$(kmx_manager ListDevices)" "$D" "the first card beside the second"
details=$(kmx_prop "$D2" org.keymux.Keystore1.Device Details)
assert_contains "$details" '"reader" s "Virtual PCD 00 01"'
assert_contains "$details" '"sig-pin-forced" b true'
assert_eq 's "OpenPGP card 0000CAFE"' "$(kmx_prop "$D2" org.keymux.Keystore1.Device Label)"
# a 7F49 of 270 bytes came in two parts
assert_contains "$(cat "$KMX_TMP/card2.log")" "C0 0000 9000"
# GET DATA asked again with the length the card wants (6C xx)
assert_contains "$(cat "$KMX_TMP/card2.log")" "$(printf 'CA 007A 6C07\nCA 007A 9000')"
unset RSA
for k in $(kmx_prop "$D2" org.keymux.Keystore1.Device Keys | sed 's/^ao [0-9]* //; s/"//g'); do
	if kmx_prop "$k" org.keymux.Keystore1.Key Usage | grep -q '"sign"'; then RSA=$k; else RSADEC=$k; fi
done
kmx_prop "$RSA" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$KMX_TMP/rsa.der"
openssl pkey -pubin -inform DER -in "$KMX_TMP/rsa.der" -out "$KMX_TMP/rsa.pub"
kmx_prop "$RSADEC" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$KMX_TMP/rsadec.der"
openssl pkey -pubin -inform DER -in "$KMX_TMP/rsadec.der" -out "$KMX_TMP/rsadec.pub"
assert_eq 's "rsa2048"' "$(kmx_prop "$RSA" org.keymux.Keystore1.Key Algorithm)"
assert_contains "$(kmx_prop "$RSADEC" org.keymux.Keystore1.Key Usage)" '"decrypt"'

kmx_device $DEV2 Unlock sa{sv} 123456 0 >/dev/null
# the card wants PW1 for each signature: one prompt, one VERIFY 81 per signature
for n in 1 2; do
	sign "$RSA" rsa-pkcs1-sha256 "$KMX_TMP/msg"
	openssl dgst -sha256 -verify "$KMX_TMP/rsa.pub" -signature "$KMX_TMP/msg.sig" "$KMX_TMP/msg" >/dev/null ||
		fail "RSA signature $n does not verify"
	assert_eq $n "$(grep -c '^20 0081 9000' "$KMX_TMP/card2.log")" "VERIFY 81 for signature $n"
done
# the raw "rsa-pkcs1": the card pads what it is given (a SHA-1 DigestInfo,
# TLS 1.2's MD5+SHA1, the longest the modulus allows, chained, and nothing)
{ printf '\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14'; openssl dgst -sha1 -binary "$KMX_TMP/msg"; } >"$KMX_TMP/di-sha1"
{ openssl dgst -md5 -binary "$KMX_TMP/msg"; openssl dgst -sha1 -binary "$KMX_TMP/msg"; } >"$KMX_TMP/tls12"
head -c 245 /dev/urandom >"$KMX_TMP/longest"
: >"$KMX_TMP/empty"
for f in di-sha1 tls12 longest empty; do
	sign "$RSA" rsa-pkcs1 "$KMX_TMP/$f"
	openssl pkeyutl -verifyrecover -pubin -inkey "$KMX_TMP/rsa.pub" -pkeyopt rsa_padding_mode:pkcs1 \
		-in "$KMX_TMP/$f.sig" -out "$KMX_TMP/$f.rec" || fail "the card's rsa-pkcs1 over $f does not verify"
	cmp -s "$KMX_TMP/$f" "$KMX_TMP/$f.rec" || fail "the card's rsa-pkcs1 over $f signed other data"
done
openssl pkeyutl -verify -pubin -inkey "$KMX_TMP/rsa.pub" -pkeyopt rsa_padding_mode:pkcs1 \
	-in "$KMX_TMP/tls12" -sigfile "$KMX_TMP/tls12.sig" >/dev/null || fail "the card's TLS 1.2 signature"
head -c 246 /dev/urandom >"$KMX_TMP/toolong"
# shellcheck disable=SC2046
err=$(kmx_call_error kmx_key "$RSA" Sign saya{sv} rsa-pkcs1 $(kmx_file_to_ay "$KMX_TMP/toolong") 0)
assert_contains "$err" "at most 245 bytes"
# RSA decryption: 257 bytes of PSO:DECIPHER data go in two chained commands
openssl pkeyutl -encrypt -pubin -inkey "$KMX_TMP/rsadec.pub" -in "$KMX_TMP/msg" -out "$KMX_TMP/ct"
# shellcheck disable=SC2046
kmx_key "$RSADEC" Decrypt saya{sv} rsa-pkcs1 $(kmx_file_to_ay "$KMX_TMP/ct") 0 | kmx_ay_to_file "$KMX_TMP/pt"
cmp -s "$KMX_TMP/msg" "$KMX_TMP/pt" || fail "the card's RSA decryption differs"
assert_eq 2 "$(grep -c '^2A 8086 9000' "$KMX_TMP/card2.log")" "PSO:DECIPHER in two chained parts"
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "$RSADEC" \
	--method org.keymux.Keystore1.Key.Decrypt rsa-oaep-sha256 "[byte 0x68]" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.NotSupported"
# imports into the second card: RSA-2048 over the SIG key (the template is
# longer than one short APDU: chained), Ed25519 into the empty AUT slot
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KMX_TMP/softrsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$KMX_TMP/softed.pem"
chained=$(grep -c '^DB 3FFF 9000' "$KMX_TMP/card2.log" || true)
for t in softrsa softed; do
	openssl pkey -in "$KMX_TMP/$t.pem" -pubout -outform DER -out "$KMX_TMP/$t.der"
	openssl pkey -in "$KMX_TMP/$t.pem" -pubout -out "$KMX_TMP/$t.pub"
	slot=sig
	[ $t = softed ] && slot=aut
	# shellcheck disable=SC2046
	out=$(kmx_device $DEV2 ImportKey ayssa{sv} $(kmx_file_to_ay "$KMX_TMP/$t.pem") "" $t 3 \
		slot s $slot replace b true admin-secret s 12345678)
	assert_eq "ao 1 \"$D2/$(sha256sum "$KMX_TMP/$t.der" | cut -d' ' -f1)\"" "$out" "ImportKey $t"
done
assert_eq $((chained + 3)) "$(grep -c '^DB 3FFF 9000' "$KMX_TMP/card2.log")" "PUT DATA 3FFF: RSA in two parts, Ed25519 in one"
sign "$D2/$(sha256sum "$KMX_TMP/softrsa.der" | cut -d' ' -f1)" rsa-pkcs1-sha256 "$KMX_TMP/msg"
openssl dgst -sha256 -verify "$KMX_TMP/softrsa.pub" -signature "$KMX_TMP/msg.sig" "$KMX_TMP/msg" >/dev/null ||
	fail "the imported RSA key's signature does not verify"
sign "$D2/$(sha256sum "$KMX_TMP/softed.der" | cut -d' ' -f1)" ed25519 "$KMX_TMP/msg"
openssl pkeyutl -verify -pubin -inkey "$KMX_TMP/softed.pub" -rawin -in "$KMX_TMP/msg" \
	-sigfile "$KMX_TMP/msg.sig" >/dev/null || fail "the imported Ed25519 key's signature does not verify"

# the first card did not notice
assert_eq "b true" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"

# ---- cards that answer nonsense: Failed and a log line, never a crash ----
kill "${KMX_PIDS[-1]}"
until_ok not_listed "$D2"
garbage_card() { # MODE SERIAL: a card in the second reader that answers nonsense
	/usr/bin/python3 "$KMX_TESTS_DIR/openpgp-card-sim.py" --port $((KMX_VPCD_PORT + 1)) --serial "$2" \
		--keys sig=ecdsa-p256 --garbage "$1" --log "$KMX_TMP/card-$1.log" >>"$KMX_TMP/card-sim.out" 2>&1 &
	KMX_PIDS+=($!)
}
garbage_card appdata 0000BAD1
until_ok grep -q "Virtual PCD 00 01 is not used: the card.s data has no valid object" "$KMX_TMP/keymuxd.log"
assert_not_contains "$(kmx_manager ListDevices)" "0000BAD1"
assert_contains "$(kmx_manager ListDevices)" "$D" "the good card is still there"
kill "${KMX_PIDS[-1]}"
garbage_card sign 0000BAD2
D3=$(kmx_device_path card:FFFE0000BAD2)
until_ok listed "$D3"
kmx_device card:FFFE0000BAD2 Unlock sa{sv} 123456 0 >/dev/null
BADKEY=$(kmx_prop "$D3" org.keymux.Keystore1.Device Keys | sed 's/^ao 1 "\(.*\)"$/\1/')
err=$(kmx_call_error gdbus call --session --dest "$KMX_NAME" --object-path "$BADKEY" \
	--method org.keymux.Keystore1.Key.Sign ecdsa-sha256 "[byte 0x68]" "{}")
assert_contains "$err" "org.keymux.Keystore1.Error.Failed"
assert_eq "b true" "$(kmx_prop "$D3" org.keymux.Keystore1.Device Available)"

kmx_stop_daemon || fail "keymuxd did not exit cleanly"
assert_contains "$(exit_log)" "the PC/SC connection to the card in Virtual PCD 00 00 is closed"
assert_contains "$(exit_log)" "the PC/SC connection to the card in Virtual PCD 00 01 is closed"
