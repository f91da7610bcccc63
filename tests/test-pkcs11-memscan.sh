#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What the PKCS#11 module keeps of a plaintext or a shared secret in the
# application's memory: nothing once the application has wiped its own
# copies.  kmx-test-pkcs11 decrypts (a size query, a short buffer, the
# result) and derives an extractable ECDH secret it reads and destroys; its
# memory is searched, as root reading /proc/PID/mem, for both.  The control
# scan, while the application still holds them, must find them, so that the
# scan after finding none proves the module's copies were wiped: the raw
# reply read from the socket, the D-Bus message body, the result kept for
# a short buffer, the derived key's value and the attribute copy of it.
. "$KMX_TESTS_DIR/harness.sh"
: "${KMX_PKCS11_MODULE:?}"
: "${KMX_TEST_PKCS11:?}"

if [ "$(id -u)" != 0 ]; then
	kmx_log "not root: reading another process's memory needs root (CI runs as root); not run"
	echo "PASS: test-pkcs11-memscan (not run)"
	exit 0
fi
# ASan keeps freed memory in quarantine, unwiped: what it finds is ASan's
case "${KMX_SANITIZE:-none}" in
*address*)
	kmx_log "built with AddressSanitizer (b_sanitize=$KMX_SANITIZE); not run"
	echo "PASS: test-pkcs11-memscan (not run)"
	exit 0
	;;
esac

kmx_setup
cd "$KMX_TMP"
# glibc would fill freed memory itself, which the module must not rely on
unset MALLOC_PERTURB_
kmx_start_daemon

new_key() { # type: the new key's id; its public key in TYPE.pem
	local path
	path=$(kmx_device softkey:login GenerateKey ssa{sv} "$1" "memscan $1" 0 | sed -n 's/^o "\(.*\)"$/\1/p')
	[ -n "$path" ] || fail "GenerateKey $1"
	kmx_prop "$path" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$1.der"
	openssl pkey -pubin -inform DER -in "$1.der" -out "$1.pem"
	kmx_prop "$path" org.keymux.Keystore1.Key Id | sed 's/^s "\(.*\)"$/\1/'
}
rsa=$(new_key rsa2048)
ec=$(new_key ecdsa-p256)
# long enough that its freed chunk is not soon reused for something else
head -c 200 /dev/urandom >plain
openssl pkeyutl -encrypt -pubin -inkey rsa2048.pem -in plain -out ct
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out peer.key 2>/dev/null
openssl pkey -in peer.key -pubout -outform DER -out peer.der
# the uncompressed point ends the SubjectPublicKeyInfo
tail -c 65 peer.der >peer.point
openssl pkeyutl -derive -inkey peer.key -peerkey ecdsa-p256.pem -out shared
secrets=(--hex "plaintext=$(xxd -p -c 64 plain)" --hex "shared secret=$(xxd -p -c 64 shared)")

mkfifo to_client
exec 3<>to_client
"$KMX_TEST_PKCS11" "$KMX_PKCS11_MODULE" memscan "$rsa" "$ec" ct plain peer.point shared <&3 >client.out 2>&1 &
client=$!
KMX_PIDS+=("$client")
for _ in $(seq 600); do grep -q '^control' client.out && break; sleep 0.05; done
grep -q '^control' client.out || fail "the client did not decrypt and derive: $(cat client.out)"

# control: the application's own copies are there to be found
status=0
/usr/bin/python3 "$KMX_TESTS_DIR/kmx-memscan.py" "$client" "${secrets[@]}" >control.out 2>&1 || status=$?
[ $status = 1 ] || { cat control.out >&2; fail "the control scan found nothing (status $status)"; }
for name in plaintext "shared secret"; do
	grep -q "^memscan: HIT $name" control.out || { cat control.out >&2; fail "the control scan did not find the $name"; }
done

# the application wiped its copies: the module's must be gone too
echo go >&3
for _ in $(seq 600); do grep -q '^scan' client.out && break; sleep 0.05; done
grep -q '^scan' client.out || fail "the client: $(cat client.out)"
status=0
/usr/bin/python3 "$KMX_TESTS_DIR/kmx-memscan.py" "$client" "${secrets[@]}" >scan.out 2>&1 || status=$?
cat scan.out >&2
case $status in
0) ;;
1) fail "the PKCS#11 module left a plaintext or a shared secret in the application's memory" ;;
*) fail "the memory scan failed (status $status)" ;;
esac
echo go >&3
wait "$client" || fail "the client: $(cat client.out)"
exec 3>&-
figures=$(sed -n 's/^memscan: pid [0-9]*: //p' scan.out)
echo "PASS: test-pkcs11-memscan ($figures)"
