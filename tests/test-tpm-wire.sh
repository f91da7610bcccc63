#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What crosses the bus between keymuxd and the TPM, captured by tpm2-tss'
# pcap TCTI (pcap:swtpm:…, read by tests/kmx-tpm-pcap.py):
# - a key stays loaded after its first use: each later signature is one
#   TPM2_Sign and nothing else; with the slots full (two keys besides the
#   primary on swtpm) the least recently used key is flushed for the next;
# - the device secret, a new secret, a decrypted plaintext and an ECDH
#   result never cross in the clear (a salted HMAC session with parameter
#   encryption), while the operations still give the right results.
. "$KMX_TESTS_DIR/harness.sh"
. "$KMX_TESTS_DIR/tpm-common.sh"
kmx_setup
cd "$KMX_TMP"

kmx_start_swtpm
tpm2_dictionarylockout -s -n 100 -t 1 -l 1 >/dev/null 2>&1 || fail "cannot set the DA parameters"
tpm_conf "pcap:$KMX_SWTPM_TCTI"
DEV=$(kmx_device_path tpm:0)
printf 'the message the TPM signs\n' >msg
pcap() { /usr/bin/python3 "$KMX_TESTS_DIR/kmx-tpm-pcap.py" "$@" || fail "cannot read the capture $1"; }
# the TPM commands keymuxd sent, by name, without the probes' GetCapability
commands() {
	pcap "$1" commands | sed 's/^0x0000017a$//; s/^0x00000153$/Create/; s/^0x00000157$/Load/;
		s/^0x0000015d$/Sign/; s/^0x00000165$/FlushContext/' | sed '/^$/d' | tr '\n' ' '
}
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

# ---- one TPM2_Sign per signature after the first; LRU eviction ----
declare -A KEY
export TCTI_PCAP_FILE=$KMX_TMP/sign.pcap
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
for k in A B C; do
	KEY[$k]=$(generate ecdsa-p256 "key $k")
	pubkey "${KEY[$k]}" "$k.pub"
done
for k in A A A B A C A B; do
	verify_p256 "${KEY[$k]}" "$k.pub" "a signature with key $k"
done
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
got=$(commands sign.pcap)
# after the three Creates: A loaded once; B loaded; C evicts B (the least
# recently used), B evicts C; the rest is one Sign each
want="Load Sign Sign Sign Load Sign Sign FlushContext Load Sign Sign FlushContext Load Sign "
assert_contains "$got" "Create Create Create $want"
after=${got#*"Create Create Create $want"}
assert_not_contains "$after" "Sign"
assert_not_contains "$after" "Load"

# ---- secrets cross encrypted ----
export TCTI_PCAP_FILE=$KMX_TMP/secret.pcap
PIN=kmx-pin-canary-7f3e9a
PIN2=kmx-newpin-canary-c41d
PLAIN=kmx-plaintext-canary-91c2
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
RSA=$(generate rsa2048 "rsa")
pubkey "$RSA" rsa.pub
kmx_device tpm:0 ChangeSecret ss "" "$PIN" >/dev/null
kmx_device tpm:0 Lock >/dev/null
kmx_device tpm:0 Unlock sa{sv} "$PIN" 0 >/dev/null
verify_p256 "${KEY[A]}" A.pub "a signature under the secret"
kmx_device tpm:0 ChangeSecret ss "$PIN" "$PIN2" >/dev/null
P256=$(generate ecdsa-p256 "made under the secret")
pubkey "$P256" p256.pub
verify_p256 "$P256" p256.pub "a key made under the secret"
printf '%s' "$PLAIN" >plain
openssl pkeyutl -encrypt -pubin -inkey rsa.pub -pkeyopt rsa_padding_mode:oaep \
	-pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in plain -out ct
# shellcheck disable=SC2046
kmx_key "$RSA" Decrypt saya{sv} rsa-oaep-sha256 $(kmx_file_to_ay ct) 0 | kmx_ay_to_file out
assert_eq "$PLAIN" "$(cat out)" "the decrypted plaintext"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out peer.key
openssl pkey -in peer.key -pubout -outform DER -out peer.der
openssl pkeyutl -derive -inkey peer.key -peerkey p256.pub -out want.bin
# shellcheck disable=SC2046
kmx_key "$P256" Derive saya{sv} ecdh $(kmx_file_to_ay peer.der) 0 | kmx_ay_to_file got.bin
cmp -s want.bin got.bin || fail "ECDH shared secret differs from openssl's"
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
pcap secret.pcap hex >secret.hex
[ "$(wc -l <secret.hex)" -gt 20 ] || fail "the capture holds $(wc -l <secret.hex) messages"
assert_contains "$(commands secret.pcap)" "Sign"
for what in PIN PIN2 PLAIN; do
	grep -q "$(hex "${!what}")" secret.hex && fail "$what crossed to the TPM in the clear"
done
grep -q "$(od -An -v -tx1 want.bin | tr -d ' \n')" secret.hex && fail "the ECDH result crossed in the clear"
true
