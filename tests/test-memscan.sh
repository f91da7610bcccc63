#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# After Lock, keymuxd's memory holds no byte of the keys it used, nor of
# what it decrypted or derived (DESIGN.md §6): known keys are imported into
# a password-protected store, used for every operation, the store is
# locked, and every readable mapping of the daemon is searched, as root
# reading /proc/PID/mem, for each private number, the base64 lines of the
# imported files, the plaintexts, the shared secrets, the file key and the
# password.  A control scan before Lock must find every key's private
# numbers in libcrypto's form (the one form an unlocked soft key has), so
# that the scan after Lock finding none proves they were wiped.
. "$KMX_TESTS_DIR/harness.sh"

if [ "$(id -u)" != 0 ]; then
	kmx_log "not root: reading the daemon's memory needs root (CI runs as root); not run"
	echo "PASS: test-memscan (not run)"
	exit 0
fi
# ASan replaces the allocator whose freed chunks keymuxd wipes, keeps freed
# memory in quarantine unwiped, and maps terabytes of shadow memory: what
# it would find is ASan's, not keymuxd's
case "${KMX_SANITIZE:-none}" in
*address*)
	kmx_log "keymuxd is built with AddressSanitizer (b_sanitize=$KMX_SANITIZE); not run"
	echo "PASS: test-memscan (not run)"
	exit 0
	;;
esac

kmx_setup
cd "$KMX_TMP"
# meson sets it for tests; glibc then fills freed memory, which keymuxd
# must not rely on
unset MALLOC_PERTURB_
dev=$(kmx_device_path softkey:login)

# ---- known keys, and their private values as hex, from openssl ----
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256.pem 2>/dev/null
openssl genpkey -algorithm ED25519 -out ed25519.pem
openssl genpkey -algorithm X25519 -out x25519.pem
# hexof FILE FIELD: the hex digits below FIELD: in openssl's text form
hexof() {
	openssl pkey -in "$1" -noout -text |
		awk -v f="$2:" '$0 == f { on = 1; next } on && /^    / { gsub(/[: ]/, ""); printf "%s", $0; next } { on = 0 }'
}
secrets=()
# secret NAME FILE FIELD
secret() {
	local hex
	hex=$(hexof "$2" "$3")
	[ -n "$hex" ] || fail "no '$3' in openssl's text form of $2"
	secrets+=(--hex "$1=$hex")
}
# the numbers libcrypto holds while a store is unlocked, for the control scan
held=(--hex "rsa prime1=$(hexof rsa.pem prime1)" --hex "rsa prime2=$(hexof rsa.pem prime2)"
	--hex "p256 scalar=$(hexof p256.pem priv)" --hex "ed25519 seed=$(hexof ed25519.pem priv)"
	--hex "x25519 scalar=$(hexof x25519.pem priv)")
for f in privateExponent prime1 prime2 exponent1 exponent2 coefficient; do
	secret "rsa $f" rsa.pem $f
done
secret "p256 scalar" p256.pem priv
secret "ed25519 seed" ed25519.pem priv
# what Ed25519 signs with: SHA-512 of the seed, a scalar (its first half,
# without the bits clamping changes) and the nonce prefix (its second half)
h=$(hexof ed25519.pem priv | xxd -r -p | openssl dgst -sha512 -binary | xxd -p -c 64)
secrets+=(--hex "ed25519 scalar=${h:2:60}" --hex "ed25519 nonce prefix=${h:64:64}")
secret "x25519 scalar" x25519.pem priv
for t in rsa p256 ed25519 x25519; do
	n=0
	while read -r line; do
		n=$((n + 1))
		[ ${#line} -ge 16 ] && secrets+=(--text "$t.pem base64 line $n=$line")
	done < <(grep -v '^-----' $t.pem)
done

# ---- a protected store: the file key, then a password ----
kmx_start_daemon
file_key=$(sed -n 's/^key=//p' "$KEYMUX_DATA_DIR/softkey/login/store.info" | base64 -d | xxd -p -c 64)
[ ${#file_key} = 64 ] || fail "no file key in the new store's store.info"
secrets+=(--hex "file key=$file_key" --text "file key as passphrase=$file_key")
password="memscan-$(head -c 12 /dev/urandom | xxd -p)"
secrets+=(--text "password=$password")
kmx_device softkey:login ChangeSecret ss "" "$password"
kmx_device softkey:login Lock
kmx_device softkey:login Unlock sa{sv} "$password" 0
assert_eq "b false" "$(kmx_prop "$dev" org.keymux.Keystore1.Device Locked)"

# ---- import the keys ----
declare -A KEY
for t in rsa p256 ed25519 x25519; do
	# shellcheck disable=SC2046
	out=$(kmx_device softkey:login ImportKey ayssa{sv} $(kmx_file_to_ay $t.pem) "" "memscan $t" 0)
	KEY[$t]=$(sed -n 's/^ao 1 "\(.*\)"$/\1/p' <<<"$out")
	[ -n "${KEY[$t]}" ] || fail "ImportKey $t returned '$out'"
	openssl pkey -in $t.pem -pubout -out $t.pub
done

# ---- use every operation ----
printf 'the message keymux signs\n' >msg
# twice each: the second signature reuses the context the key keeps
for op in "rsa rsa-pss-sha256" "rsa rsa-pkcs1-sha256" "rsa rsa-pss-sha256" "rsa rsa-pkcs1-sha256" \
	"p256 ecdsa-sha256" "p256 ecdsa-sha256" "ed25519 ed25519" "ed25519 ed25519"; do
	read -r t alg <<<"$op"
	# shellcheck disable=SC2046
	kmx_key "${KEY[$t]}" Sign saya{sv} "$alg" $(kmx_file_to_ay msg) 0 | kmx_ay_to_file msg.sig
done
openssl pkeyutl -verify -pubin -inkey ed25519.pub -rawin -in msg -sigfile msg.sig >/dev/null ||
	fail "the Ed25519 signature does not verify"
# decryptions of random plaintexts, OAEP (libcrypto) and PKCS#1 v1.5 (gnutls)
head -c 32 /dev/urandom >oaep.plain
openssl pkeyutl -encrypt -pubin -inkey rsa.pub -pkeyopt rsa_padding_mode:oaep \
	-pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in oaep.plain -out oaep.ct
# shellcheck disable=SC2046
kmx_key "${KEY[rsa]}" Decrypt saya{sv} rsa-oaep-sha256 $(kmx_file_to_ay oaep.ct) 0 | kmx_ay_to_file out
cmp -s oaep.plain out || fail "RSA-OAEP decryption returned another plaintext"
head -c 32 /dev/urandom >pkcs1.plain
openssl pkeyutl -encrypt -pubin -inkey rsa.pub -in pkcs1.plain -out pkcs1.ct
# shellcheck disable=SC2046
kmx_key "${KEY[rsa]}" Decrypt saya{sv} rsa-pkcs1 $(kmx_file_to_ay pkcs1.ct) 0 | kmx_ay_to_file out
cmp -s pkcs1.plain out || fail "RSA PKCS#1 decryption returned another plaintext"
secrets+=(--hex "OAEP plaintext=$(xxd -p -c 64 oaep.plain)" --hex "PKCS#1 plaintext=$(xxd -p -c 64 pkcs1.plain)")
# key agreement with known peers: the shared secrets are known
for op in "p256 ecdh EC -pkeyopt ec_paramgen_curve:P-256" "x25519 x25519 X25519"; do
	read -r t alg peer_args <<<"$op"
	# shellcheck disable=SC2086
	openssl genpkey -algorithm $peer_args -out peer.$t.key 2>/dev/null
	openssl pkey -in peer.$t.key -pubout -outform DER -out peer.$t.der
	openssl pkeyutl -derive -inkey peer.$t.key -peerkey $t.pub -out $t.shared
	# shellcheck disable=SC2046
	kmx_key "${KEY[$t]}" Derive saya{sv} "$alg" $(kmx_file_to_ay peer.$t.der) 0 | kmx_ay_to_file out
	cmp -s $t.shared out || fail "$alg returned another shared secret than openssl's"
	secrets+=(--hex "$alg shared secret=$(xxd -p -c 64 $t.shared)")
done

# ---- control: unlocked, the scan finds the keys in libcrypto's form ----
# (an EVP_PKEY in libcrypto's secure heap: bignum limbs, the Ed25519 and
# X25519 keys as bytes), so that finding nothing after Lock means wiped
status=0
/usr/bin/python3 "$KMX_TESTS_DIR/kmx-memscan.py" "$KMX_DAEMON_PID" "${held[@]}" >control.out 2>&1 || status=$?
[ $status = 1 ] || { cat control.out >&2; fail "the control scan of the unlocked daemon found no key (status $status)"; }
for name in "rsa prime1" "rsa prime2" "p256 scalar" "ed25519 seed" "x25519 scalar"; do
	grep -q "^memscan: HIT $name" control.out ||
		{ cat control.out >&2; fail "the control scan did not find the $name while unlocked"; }
done

# ---- locked, a prompter gives the password for the next operation ----
kmx_device softkey:login Lock
"$KMX_TEST_PROMPTER" --secret "$password" >prompter.out 2>prompter.err &
KMX_PIDS+=($!)
for _ in $(seq 400); do grep -q ready prompter.out && break; sleep 0.05; done
grep -q ready prompter.out || fail "the prompter did not register: $(cat prompter.err)"
# shellcheck disable=SC2046
kmx_key "${KEY[ed25519]}" Sign saya{sv} ed25519 $(kmx_file_to_ay msg) 0 | kmx_ay_to_file msg.sig
grep -q '^asked' prompter.out || fail "the prompter was not asked for the password"
openssl pkeyutl -verify -pubin -inkey ed25519.pub -rawin -in msg -sigfile msg.sig >/dev/null ||
	fail "the Ed25519 signature after the prompt does not verify"

# ---- secrets sent over peer connections (Manager.OpenConnection), each
# the last message of its connection, which stays open while the memory is
# searched: GDBus's read buffer of that connection must not keep them ----
kmx_device softkey:login Lock
openssl genpkey -algorithm ED25519 -out p2p.pem
p2p_pass="p2p-import-$(head -c 12 /dev/urandom | xxd -p)"
secrets+=(--text "passphrase of ImportKey over a peer connection=$p2p_pass")
openssl pkcs8 -topk8 -in p2p.pem -passout "pass:$p2p_pass" -out p2p.enc.pem
# p2p_hold NAME ARGS...: kmx-test-p2p ARGS, its stdin p2p-NAME.hold (held open
# by this shell), until it has said "done"
p2p_hold() {
	local name=$1
	shift
	"$KMX_TEST_P2P" "$@" <"p2p-$name.hold" >"p2p-$name.out" 2>&1 &
	KMX_PIDS+=($!)
	for _ in $(seq 600); do
		grep -q . "p2p-$name.out" && break
		sleep 0.05
	done
	assert_eq "done" "$(cat "p2p-$name.out")"
}
mkfifo p2p-unlock.hold p2p-import.hold
exec 7<>p2p-unlock.hold 8<>p2p-import.hold
p2p_hold unlock unlock "$dev" "$password"
p2p_hold import import "$dev" p2p.enc.pem "$p2p_pass"

# ---- lock, and search the daemon's memory ----
kmx_device softkey:login Lock
assert_eq "b true" "$(kmx_prop "$dev" org.keymux.Keystore1.Device Locked)"
assert_eq "b true" "$(kmx_prop "${KEY[rsa]}" org.keymux.Keystore1.Key Locked)"
status=0
/usr/bin/python3 "$KMX_TESTS_DIR/kmx-memscan.py" "$KMX_DAEMON_PID" "${secrets[@]}" >scan.out 2>&1 || status=$?
cat scan.out >&2
case $status in
0) ;;
1) fail "secrets are left in keymuxd's memory after Lock (see the hits above)" ;;
*) fail "the memory scan failed (status $status)" ;;
esac
exec 7>&- 8>&-
figures=$(sed -n 's/^memscan: pid [0-9]*: //p' scan.out)
[ -n "$figures" ] || fail "the memory scan printed no figures"
kmx_stop_daemon || fail "keymuxd did not exit cleanly"
echo "PASS: test-memscan ($figures)"
