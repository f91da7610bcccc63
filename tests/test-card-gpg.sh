#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# OpenPGP cards and GnuPG, on the same simulated card (scdaemon in shared
# mode: pcsc-shared, disable-ccid):
# - the fingerprints keymux writes for the keys it generates are the ones
#   gpg computes for those keys (Ed25519, X25519 with its KDF, RSA);
# - gpg signs, verifies, encrypts and decrypts with keys keymux generated;
# - keymux signs with a key gpg generated on the card, and reads the same
#   public key gpg exports;
# - gpg using the card between two keymux operations leaves keymux working.
. "$KMX_TESTS_DIR/harness.sh"
kmx_own_pcscd "$@"
kmx_setup

count() { grep -c "$1" "$KMX_TMP/card.log" || true; }

kmx_start_pcscd
kmx_start_card_sim --serial 00006E6E # empty slots
export GNUPGHOME=$KMX_TMP/gnupg
mkdir -m 0700 "$GNUPGHOME"
printf 'pcsc-shared\ndisable-ccid\n' >"$GNUPGHOME/scdaemon.conf"
PIN=(--batch --pinentry-mode loopback --passphrase 123456)
# gpg-agent and scdaemon leave with the test, however it ends
trap 'status=$?; gpgconf --kill all; (exit $status); kmx_cleanup' EXIT

kmx_start_daemon
DEV=card:FFFE00006E6E
D=$(kmx_device_path $DEV)
until_ok listed "$D"
assert_eq "ao 0" "$(kmx_prop "$D" org.keymux.Keystore1.Device Keys)"

# ---- keymux generates the three keys ----
gen() { # ALG SLOT: the key's object path
	kmx_device $DEV GenerateKey ssa{sv} "$1" "$2" 2 slot s "$2" admin-secret s 12345678 |
		sed 's/^o "\(.*\)"$/\1/'
}
SIG=$(gen ed25519 sig)
DEC=$(gen x25519 dec)
AUT=$(gen rsa2048 aut)
for k in "$SIG" "$DEC" "$AUT"; do
	kmx_prop "$k" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$KMX_TMP/${k##*/}.der"
	openssl pkey -pubin -inform DER -in "$KMX_TMP/${k##*/}.der" -out "$KMX_TMP/${k##*/}.pub"
done

# ---- gpg reads the card: the fingerprints keymux wrote ----
card_colons() { gpg --batch --card-status --with-colons 2>/dev/null; }
until_ok card_colons
status=$(card_colons)
IFS=: read -r _ FPR_SIG FPR_DEC FPR_AUT _ <<<"$(grep '^fpr:' <<<"$status")"
IFS=: read -r _ T_SIG T_DEC T_AUT _ <<<"$(grep '^fprtime:' <<<"$status")"
IFS=: read -r _ G_SIG G_DEC G_AUT _ <<<"$(grep '^grp:' <<<"$status")"
for v in "$FPR_SIG" "$FPR_DEC" "$FPR_AUT" "$T_SIG" "$T_DEC" "$T_AUT"; do
	[ -n "$v" ] && [ "$v" != 0000000000000000000000000000000000000000 ] ||
		fail "gpg sees an empty slot: $status"
done

# gpg makes OpenPGP keys of the card's keys, created when keymux made them
# on the card: gpg's fingerprints must be the ones keymux wrote
gpg_key() { # NAME DATE TYPE GRIP [SUBTYPE SUBGRIP]: the new key's fingerprints
	{
		printf 'Key-Type: %s\nKey-Grip: %s\n' "$3" "$4"
		[ -n "${5:-}" ] && printf 'Subkey-Type: %s\nSubkey-Grip: %s\nSubkey-Usage: encrypt\n' "$5" "$6"
		printf 'Name-Real: %s\nCreation-Date: seconds=%s\nExpire-Date: 0\n%%commit\n' "$1" "$2"
	} >"$KMX_TMP/params"
	gpg "${PIN[@]}" --generate-key "$KMX_TMP/params" >/dev/null 2>&1 || fail "gpg cannot make a key of the card's $1"
	gpg --batch --with-colons --list-keys "$1" | awk -F: '/^fpr:/ {print $10}'
}
assert_eq "$FPR_SIG" "$(gpg_key sig-key "$T_SIG" eddsa "$G_SIG")" "the Ed25519 key's fingerprint"
assert_eq "$FPR_AUT" "$(gpg_key aut-key "$T_AUT" rsa "$G_AUT")" "the RSA key's fingerprint"
# the X25519 key, as the encryption subkey of a key created when it was
fprs=$(gpg_key dec-key "$T_DEC" eddsa "$G_SIG" ecdh "$G_DEC")
assert_eq "$FPR_DEC" "$(tail -1 <<<"$fprs")" "the X25519 (ECDH) key's fingerprint"

# ---- keymux signs; then gpg signs, verifies, encrypts and decrypts with
# the same card; then keymux again ----
printf 'hello from the card' >"$KMX_TMP/msg"
ksign() { # KEY MECHANISM
	# shellcheck disable=SC2046
	kmx_key "$1" Sign saya{sv} "$2" $(kmx_file_to_ay "$KMX_TMP/msg") 0 | kmx_ay_to_file "$KMX_TMP/msg.sig"
}
kmx_device $DEV Unlock sa{sv} 123456 0 >/dev/null
ksign "$SIG" ed25519
openssl pkeyutl -verify -pubin -inkey "$KMX_TMP/${SIG##*/}.pub" -rawin -in "$KMX_TMP/msg" \
	-sigfile "$KMX_TMP/msg.sig" >/dev/null || fail "keymux's Ed25519 signature does not verify"

pso=$(count '^2A 9E9A 9000')
gpg "${PIN[@]}" -u "$FPR_SIG" -o "$KMX_TMP/msg.gpg" --sign "$KMX_TMP/msg" 2>/dev/null ||
	fail "gpg cannot sign with the card"
assert_eq $((pso + 1)) "$(count '^2A 9E9A 9000')" "gpg's PSO:CDS"
out=$(gpg --batch --status-fd 1 --verify "$KMX_TMP/msg.gpg" 2>/dev/null)
assert_contains "$out" "GOODSIG"
assert_contains "$out" "VALIDSIG $FPR_SIG"
gpg --batch --trust-model always -r "$FPR_DEC" -o "$KMX_TMP/msg.enc" --encrypt "$KMX_TMP/msg" ||
	fail "gpg cannot encrypt to the card's key"
decipher=$(count '^2A 8086 9000')
gpg "${PIN[@]}" -o "$KMX_TMP/msg.dec" --decrypt "$KMX_TMP/msg.enc" 2>/dev/null ||
	fail "gpg cannot decrypt with the card"
cmp -s "$KMX_TMP/msg" "$KMX_TMP/msg.dec" || fail "gpg's decryption with the card differs"
assert_eq $((decipher + 1)) "$(count '^2A 8086 9000')" "gpg's PSO:DECIPHER"

# keymux carries on: a signature and an X25519 agreement checked by openssl
ksign "$SIG" ed25519
openssl pkeyutl -verify -pubin -inkey "$KMX_TMP/${SIG##*/}.pub" -rawin -in "$KMX_TMP/msg" \
	-sigfile "$KMX_TMP/msg.sig" >/dev/null || fail "keymux's signature after gpg's does not verify"
openssl genpkey -algorithm X25519 -out "$KMX_TMP/peer.key"
openssl pkey -in "$KMX_TMP/peer.key" -pubout -outform DER -out "$KMX_TMP/peer.der"
openssl pkeyutl -derive -inkey "$KMX_TMP/peer.key" -peerkey "$KMX_TMP/${DEC##*/}.pub" -out "$KMX_TMP/want.bin"
# shellcheck disable=SC2046
kmx_key "$DEC" Derive saya{sv} x25519 $(kmx_file_to_ay "$KMX_TMP/peer.der") 0 | kmx_ay_to_file "$KMX_TMP/got.bin"
cmp -s "$KMX_TMP/want.bin" "$KMX_TMP/got.bin" || fail "keymux's X25519 after gpg's decryption differs"
assert_eq "b false" "$(kmx_prop "$D" org.keymux.Keystore1.Device Locked)"

# ---- gpg generates a key in the AUT slot; keymux reads it when the card
# comes back, sees the key gpg exports, and signs with it ----
printf '12345678' >"$KMX_TMP/admin-pin"
gpg-connect-agent 'OPTION pinentry-mode=loopback' "/definqfile PASSPHRASE $KMX_TMP/admin-pin" \
	'SCD GENKEY --force 3' /bye >"$KMX_TMP/genkey.out" 2>&1
assert_contains "$(cat "$KMX_TMP/genkey.out")" "KEY-FPR"
status=$(card_colons)
IFS=: read -r _ _ _ FPR_NEW _ <<<"$(grep '^fpr:' <<<"$status")"
IFS=: read -r _ _ _ T_NEW _ <<<"$(grep '^fprtime:' <<<"$status")"
IFS=: read -r _ _ _ G_NEW _ <<<"$(grep '^grp:' <<<"$status")"
assert_eq "$FPR_NEW" "$(gpg_key gpg-made "$T_NEW" rsa "$G_NEW")" "the fingerprint of gpg's key"
gpg --batch --export-ssh-key "$FPR_NEW!" 2>/dev/null | cut -d' ' -f2 >"$KMX_TMP/gpg-ssh"
[ -s "$KMX_TMP/gpg-ssh" ] || fail "gpg exports no SSH key of its card key"
gpgconf --kill all
kmx_card_pull
until_ok not_listed "$D"
kmx_card_insert
until_ok listed "$D"
NEW=
for k in $(kmx_prop "$D" org.keymux.Keystore1.Device Keys | sed 's/^ao [0-9]* //; s/"//g'); do
	[ "$k" = "$SIG" ] || [ "$k" = "$DEC" ] || NEW=$k
done
[ -n "$NEW" ] && [ "$NEW" != "$AUT" ] || fail "keymux does not see gpg's new AUT key"
kmx_prop "$NEW" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$KMX_TMP/new.der"
openssl pkey -pubin -inform DER -in "$KMX_TMP/new.der" -out "$KMX_TMP/new.pub"
# the same public key for both
assert_eq "$(cat "$KMX_TMP/gpg-ssh")" "$(ssh-keygen -i -m PKCS8 -f "$KMX_TMP/new.pub" | cut -d' ' -f2)" \
	"keymux's and gpg's view of gpg's key"
kmx_device $DEV Unlock sa{sv} 123456 0 >/dev/null
ksign "$NEW" rsa-pkcs1-sha256
openssl dgst -sha256 -verify "$KMX_TMP/new.pub" -signature "$KMX_TMP/msg.sig" "$KMX_TMP/msg" >/dev/null ||
	fail "keymux's signature with gpg's key does not verify"

gpgconf --kill all
kmx_stop_daemon || fail "keymuxd did not exit cleanly"
