#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The PKCS#11 module with real applications: OpenSC's pkcs11-tool, GnuTLS's
# p11tool, OpenSSH's ssh-keygen, p11-kit, and a dlopen() client of ours
# (threads, fork, keymuxd killed and started again).  Every signature is
# checked with openssl.
# keymuxd is not activatable here: once killed, it stays away until the
# test starts it again.
export KMX_NO_ACTIVATION=1
. "$KMX_TESTS_DIR/harness.sh"
: "${KMX_PKCS11_MODULE:?KMX_PKCS11_MODULE must point to libkeymux-pkcs11.so}"
: "${KMX_TEST_PKCS11:?}"
: "${KMX_TEST_PROMPTER:?}"
kmx_setup
cd "$KMX_TMP"
M=$KMX_PKCS11_MODULE
# the test backend's devices (none plugged until the end): hardware that
# makes no keys through PKCS#11
printf '[backends]\ntest=true\n' >"$KEYMUX_CONFIG"

# a module built with ASan in programs that are not: its runtime first, and
# the programs' own leaks are not ours
asan=
if [[ "${KMX_SANITIZE:-}" == *address* ]]; then
	asan=$(gcc -print-file-name=libasan.so)
fi
p11_client() {
	if [ -n "$asan" ]; then
		LD_PRELOAD=$asan ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 "$@"
	else
		"$@"
	fi
}
p11() { p11_client pkcs11-tool --module "$M" "$@"; }
# a program linking libp11-kit (p11tool, p11-kit) hangs at exit with libasan
# preloaded, in libp11-kit's destructor (freelocale waits for glibc's
# setlocale lock): those only without ASan
p11kit_too() { [ -z "$asan" ]; }

# ---- keymuxd absent: no token, no hang ----
out=$(p11 --list-slots 2>&1) || true
assert_contains "$out" "Available slots:"
assert_not_contains "$out" "keymux"
assert_not_contains "$out" "Slot 0"

kmx_start_daemon

generate() { # type: the new key's id
	local path
	path=$(kmx_device softkey:login GenerateKey ssa{sv} "$1" "p11 $1" 0 | sed -n 's/^o "\(.*\)"$/\1/p')
	[ -n "$path" ] || fail "GenerateKey $1"
	kmx_prop "$path" org.keymux.Keystore1.Key PublicKey | kmx_ay_to_file "$1.der"
	openssl pkey -pubin -inform DER -in "$1.der" -out "$1.pem"
	kmx_prop "$path" org.keymux.Keystore1.Key Id | sed 's/^s "\(.*\)"$/\1/'
}
declare -A ID
for t in ed25519 ecdsa-p256 ecdsa-p384 rsa2048 x25519; do
	ID[$t]=$(generate "$t")
done

# ---- slots, tokens, objects ----
out=$(p11 --list-slots)
assert_contains "$out" "keymux softkey:login"
assert_contains "$out" "token label        : "
assert_not_contains "$out" "login required"
objs=$(p11 --list-objects)
for t in ed25519 ecdsa-p256 ecdsa-p384 rsa2048; do
	assert_contains "$objs" "label:      p11 $t" "the $t key is listed"
	assert_contains "$objs" "ID:         ${ID[$t]}" "CKA_ID is the key id"
done
# X25519 has no key type in PKCS#11 v2.40
assert_not_contains "$objs" "p11 x25519"
assert_contains "$objs" "Access:     sensitive, always sensitive, never extractable"
assert_eq 4 "$(p11 --list-objects --type privkey | grep -c '^Private Key Object')" "private keys"
assert_eq 4 "$(p11 --list-objects --type pubkey | grep -c '^Public Key Object')" "public keys"
# the public key object is the key's: its SPKI equals keymux's
p11 --read-object --type pubkey --id "${ID[rsa2048]}" -o rsa.read.der >/dev/null 2>&1
cmp rsa.read.der rsa2048.der || fail "the RSA public key object differs from keymux's key"
# (EC through GnuTLS: pkcs11-tool 0.23 reads freed memory converting EC keys)
for t in ecdsa-p256 ecdsa-p384 ed25519; do
	p11kit_too || break
	p11tool --provider "$M" --export-pubkey "pkcs11:object=p11%20$t;type=public" \
		--outfile "$t.read.pem" 2>/dev/null || fail "p11tool --export-pubkey $t"
	cmp <(openssl pkey -pubin -in "$t.read.pem" -outform DER) "$t.der" ||
		fail "the $t public key object differs from keymux's key"
done

# ---- signatures, every mechanism, checked by openssl ----
printf 'signed through PKCS#11\n' >msg
openssl dgst -sha256 -binary msg >msg.sha256
openssl dgst -sha384 -binary msg >msg.sha384
sign() { # key mechanism input output [pkcs11-tool options]
	local key=$1 mech=$2 in=$3 outf=$4
	shift 4
	p11 --sign --id "${ID[$key]}" --mechanism "$mech" -i "$in" -o "$outf" "$@" >/dev/null 2>sign.err ||
		fail "$mech with $key: $(cat sign.err)"
}
for h in sha256 sha384 sha512; do
	H=${h^^}
	sign rsa2048 "$H-RSA-PKCS" msg sig
	openssl dgst -"$h" -verify rsa2048.pem -signature sig msg >/dev/null || fail "$H-RSA-PKCS"
	sign rsa2048 "$H-RSA-PKCS-PSS" msg sig --mgf "MGF1-$H"
	openssl dgst -"$h" -verify rsa2048.pem -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
		-signature sig msg >/dev/null || fail "$H-RSA-PKCS-PSS"
done
# raw PKCS#1 v1.5: a DigestInfo made by openssl, signed as given
openssl asn1parse -genstr "SEQUENCE:di" -out digestinfo.der -noout -genconf <(
	printf '[di]\nalg=SEQUENCE:alg\ndigest=FORMAT:HEX,OCTETSTRING:%s\n[alg]\noid=OID:sha256\nnull=NULL\n' \
		"$(xxd -p -c 64 msg.sha256)"
) >/dev/null
sign rsa2048 RSA-PKCS digestinfo.der sig
openssl dgst -sha256 -verify rsa2048.pem -signature sig msg >/dev/null || fail "RSA-PKCS"
sign rsa2048 RSA-PKCS-PSS msg.sha256 sig --hash-algorithm SHA256 --mgf MGF1-SHA256
openssl dgst -sha256 -verify rsa2048.pem -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
	-signature sig msg >/dev/null || fail "RSA-PKCS-PSS"
# PSS with a salt keymux does not use is refused, not signed otherwise
if p11 --sign --id "${ID[rsa2048]}" -m SHA256-RSA-PKCS-PSS --mgf MGF1-SHA256 --salt-len 7 -i msg -o sig >/dev/null 2>err; then
	fail "PSS with a 7-byte salt was accepted"
fi
assert_contains "$(cat err)" "CKR_MECHANISM_PARAM_INVALID"
# ECDSA: r || s from the module, DER for openssl
for key in ecdsa-p256 ecdsa-p384; do
	sign "$key" ECDSA-SHA256 msg sig --signature-format openssl
	openssl dgst -sha256 -verify "$key.pem" -signature sig msg >/dev/null || fail "ECDSA-SHA256 $key"
	sign "$key" ECDSA-SHA384 msg sig --signature-format openssl
	openssl dgst -sha384 -verify "$key.pem" -signature sig msg >/dev/null || fail "ECDSA-SHA384 $key"
	sign "$key" ECDSA msg.sha256 sig --signature-format openssl
	openssl dgst -sha256 -verify "$key.pem" -signature sig msg >/dev/null || fail "ECDSA $key"
done
sign ecdsa-p256 ECDSA msg.sha256 sig
assert_eq 64 "$(stat -c %s sig)" "a raw P-256 signature is r || s"
sign ecdsa-p384 ECDSA msg.sha384 sig
assert_eq 96 "$(stat -c %s sig)" "a raw P-384 signature is r || s"
sign ed25519 EDDSA msg sig
openssl pkeyutl -verify -pubin -inkey ed25519.pem -rawin -in msg -sigfile sig >/dev/null || fail "EDDSA"
# a mechanism of another key type
if p11 --sign --id "${ID[ed25519]}" -m SHA256-RSA-PKCS -i msg -o sig >/dev/null 2>err; then
	fail "RSA signing with an Ed25519 key"
fi
assert_contains "$(cat err)" "CKR_KEY_TYPE_INCONSISTENT"

# ---- decryption ----
printf 'a secret for the RSA key' >plain
openssl pkeyutl -encrypt -pubin -inkey rsa2048.pem -in plain -out ct.pkcs1
p11 --decrypt --id "${ID[rsa2048]}" -m RSA-PKCS -i ct.pkcs1 -o dec >/dev/null 2>err || fail "RSA-PKCS decrypt: $(cat err)"
cmp plain dec || fail "RSA-PKCS decryption differs"
openssl pkeyutl -encrypt -pubin -inkey rsa2048.pem -in plain -out ct.oaep \
	-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
rm -f dec
p11 --decrypt --id "${ID[rsa2048]}" -m RSA-PKCS-OAEP --hash-algorithm SHA256 --mgf MGF1-SHA256 \
	-i ct.oaep -o dec >/dev/null 2>err || fail "RSA-PKCS-OAEP decrypt: $(cat err)"
cmp plain dec || fail "OAEP decryption differs"
# OAEP with SHA-1 is not keymux's
if p11 --decrypt --id "${ID[rsa2048]}" -m RSA-PKCS-OAEP --hash-algorithm SHA-1 --mgf MGF1-SHA1 -i ct.oaep -o dec >/dev/null 2>err; then
	fail "OAEP with SHA-1 was accepted"
fi
assert_contains "$(cat err)" "CKR_MECHANISM_PARAM_INVALID"
# a damaged ciphertext is refused
cp ct.pkcs1 bad
printf '\x00\x00\x00' | dd of=bad bs=1 seek=100 conv=notrunc 2>/dev/null
if p11 --decrypt --id "${ID[rsa2048]}" -m RSA-PKCS -i bad -o dec >/dev/null 2>err; then
	fail "a damaged ciphertext was decrypted"
fi

# multi-part: the ciphertext in parts, the buffer-length rules
out=$(RSAKEYID=${ID[rsa2048]} "$KMX_TEST_PKCS11" "$M" decrypt "${ID[rsa2048]}" ct.pkcs1 ct.oaep plain) ||
	fail "multi-part decryption: $out"
assert_contains "$out" "multi-part decryption"

# ---- ECDH: the shared secret equals openssl's ----
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out peer.key 2>/dev/null
openssl pkey -in peer.key -pubout -outform DER -out peer.der
p11 --derive --id "${ID[ecdsa-p256]}" -m ECDH1-DERIVE -i peer.der -o shared >/dev/null 2>err ||
	fail "ECDH1-DERIVE: $(cat err)"
openssl pkeyutl -derive -inkey peer.key -peerkey ecdsa-p256.pem -out shared.openssl
cmp shared shared.openssl || fail "the ECDH secret differs from openssl's"

# ---- key pairs made through C_GenerateKeyPair: bad templates, new keys ----
out=$("$KMX_TEST_PKCS11" "$M" generate "${ID[ed25519]}") || fail "C_GenerateKeyPair: $out"
gen_p256=$(sed -n 's/^p256 //p' <<<"$out")
gen_ed=$(sed -n 's/^ed25519 //p' <<<"$out")
[ ${#gen_p256} = 64 ] && [ ${#gen_ed} = 64 ] || fail "C_GenerateKeyPair printed '$out'"
# keymux's own keys, of the kind asked for, with the labels asked for
assert_eq "s \"ecdsa-p256\"" "$(kmx_prop "$(kmx_device_path softkey:login)/$gen_p256" org.keymux.Keystore1.Key Algorithm)"
assert_eq "s \"gen p256\"" "$(kmx_prop "$(kmx_device_path softkey:login)/$gen_p256" org.keymux.Keystore1.Key Label)"
assert_eq "s \"ed25519\"" "$(kmx_prop "$(kmx_device_path softkey:login)/$gen_ed" org.keymux.Keystore1.Key Algorithm)"
assert_eq "s \"gen ed25519\"" "$(kmx_prop "$(kmx_device_path softkey:login)/$gen_ed" org.keymux.Keystore1.Key Label)"

# ---- OpenSC's own checks ----
out=$(p11 --test 2>&1) || fail "pkcs11-tool --test: $out"
assert_contains "$out" "all 4 signature functions seem to work"
assert_contains "$out" "No errors"
out=$(p11 --test-fork 2>&1) || fail "pkcs11-tool --test-fork: $out"
assert_contains "$out" "C_Initialize in forked child"

# ---- buffer and attribute rules, multi-part, C_Finalize and again ----
RSAKEYID=${ID[rsa2048]} "$KMX_TEST_PKCS11" "$M" rules "${ID[ed25519]}" rules.sig ||
	fail "PKCS#11 rules"
printf message >rules.msg
openssl pkeyutl -verify -pubin -inkey ed25519.pem -rawin -in rules.msg -sigfile rules.sig >/dev/null ||
	fail "the rules test's signature"

# ---- 16 threads at once, fork ----
out=$("$KMX_TEST_PKCS11" "$M" threads "${ID[ed25519]}") || fail "threads"
assert_contains "$out" "16 threads signed"
out=$("$KMX_TEST_PKCS11" "$M" fork "${ID[ed25519]}") || fail "fork"
assert_contains "$out" "the child re-initialised and signed"

# ---- GnuTLS: p11tool ----
export HOME=$KMX_TMP/home
mkdir -p "$HOME"
if p11kit_too; then
	out=$(p11tool --provider "$M" --list-all-privkeys 2>&1) || fail "p11tool: $out"
	for t in ed25519 ecdsa-p256 ecdsa-p384 rsa2048; do
		assert_contains "$out" "object=p11%20$t;type=private" "p11tool lists the $t key"
	done
	for t in ecdsa-p256 rsa2048 ed25519; do
		hash=()
		[ "$t" = ed25519 ] && hash=(--hash SHA512)
		out=$(p11tool --provider "$M" --test-sign "${hash[@]}" "pkcs11:object=p11%20$t;type=private" 2>&1) ||
			fail "p11tool --test-sign $t: $out"
		assert_contains "$out" "Verifying against public key in the token... ok"
	done
fi

# ---- a TLS handshake whose client key is a keymux key ----
if p11kit_too; then
	key="pkcs11:object=p11%20ecdsa-p256;type=private"
	printf 'cn = "keymux client"\nexpiration_days = 2\ntls_www_client\nsigning_key\n' >client.tmpl
	certtool --provider "$M" --generate-self-signed --load-privkey "$key" --template client.tmpl \
		--outfile client.crt 2>certtool.err || fail "certtool with a keymux key: $(cat certtool.err)"
	printf 'cn = "127.0.0.1"\nip_address = "127.0.0.1"\nexpiration_days = 2\ntls_www_server\nsigning_key\n' >server.tmpl
	certtool --generate-privkey --key-type ecdsa --outfile server.key 2>/dev/null
	certtool --generate-self-signed --load-privkey server.key --template server.tmpl --outfile server.crt 2>/dev/null
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	kmx_bg gnutls-serv --echo --port "$port" --x509keyfile server.key --x509certfile server.crt \
		--require-client-cert --verify-client-cert --x509cafile client.crt >serv.out 2>&1
	for _ in $(seq 400); do grep -q "listening on IPv4" serv.out && break; sleep 0.05; done
	grep -q "listening on IPv4" serv.out || fail "gnutls-serv did not start: $(cat serv.out)"
	# without a client certificate the server refuses
	echo "no key" | timeout 60 gnutls-cli --x509cafile server.crt --port "$port" 127.0.0.1 >cli0.out 2>&1 || true
	echo "through a keymux key" | timeout 60 gnutls-cli --provider "$M" --x509keyfile "$key" \
		--x509certfile client.crt --x509cafile server.crt --port "$port" 127.0.0.1 >cli.out 2>&1 ||
		fail "gnutls-cli with a keymux key: $(cat cli.out)"
	assert_contains "$(cat cli.out)" "Successfully sent 1 certificate(s) to server"
	assert_contains "$(cat cli.out)" "Handshake was completed"
	for _ in $(seq 200); do grep -q "received cmd: through a keymux key" serv.out && break; sleep 0.05; done
	assert_contains "$(cat serv.out)" "received cmd: through a keymux key"
	assert_not_contains "$(cat serv.out)" "received cmd: no key"
fi

# ---- NSS (Firefox, Thunderbird): modutil -add, certutil -K ----
mkdir nssdb
p11_client certutil -N -d sql:nssdb --empty-password
p11_client modutil -dbdir sql:nssdb -add keymux -libfile "$M" -force >/dev/null
out=$(p11_client certutil -K -d sql:nssdb -h all 2>&1) || fail "certutil -K: $out"
assert_contains "$out" 'Checking token "Login keys" in slot "keymux softkey:login"'
for t in rsa2048 ecdsa-p256 ecdsa-p384; do
	assert_contains "$out" "p11 $t" "NSS lists the $t key"
done

# ---- OpenSSH ----
out=$(p11_client ssh-keygen -D "$M" 2>/dev/null) || fail "ssh-keygen -D"
assert_contains "$out" "ssh-rsa "
assert_contains "$out" "ecdsa-sha2-nistp256 "
assert_contains "$out" "ecdsa-sha2-nistp384 "
ssh-keygen -i -m PKCS8 -f rsa2048.pem >rsa.ssh
assert_contains "$out" "$(cut -d' ' -f2 rsa.ssh)" "ssh-keygen -D shows keymux's RSA key"

# ---- p11-kit: the module config, the proxy ----
if p11kit_too; then
	# p11-kit reads ~/.config/pkcs11/modules, but not as root: then as nobody
	as_user=()
	if [ "$(id -u)" = 0 ]; then
		as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
		chmod 711 "$KMX_TMP"
		chmod 755 "$HOME"
	fi
	mkdir -p "$HOME/.config/pkcs11/modules"
	sed "s|^module:.*|module: $M|" "$KMX_PKCS11_CONFIG" >"$HOME/.config/pkcs11/modules/keymux.module"
	chmod -R a+rX "$HOME"
	out=$("${as_user[@]}" env HOME="$HOME" p11-kit list-modules 2>&1) || fail "p11-kit list-modules: $out"
	assert_contains "$out" "keymux: $M"
	assert_contains "$out" "library-description: keymux keys through keymuxd"
	# keymuxd serves its own user only: the proxy reaches it when that is us
	if [ ${#as_user[@]} -eq 0 ]; then
		out=$(pkcs11-tool --module "$(pkg-config --variable=proxy_module p11-kit-1)" --list-slots 2>&1) ||
			fail "p11-kit-proxy: $out"
		assert_contains "$out" "keymux softkey:login" "p11-kit-proxy.so offers keymux's slot"
	fi
	chmod 700 "$KMX_TMP"
fi

# ---- a locked device: login required, wrong PIN, the right one ----
kmx_device softkey:login ChangeSecret ss "" "pass phrase" >/dev/null
kmx_device softkey:login Lock >/dev/null
out=$(p11 --list-token-slots)
assert_contains "$out" "login required"
assert_contains "$out" "PIN pad present"
# listing works locked
assert_contains "$(p11 --list-objects --type privkey)" "p11 rsa2048"
# C_Login and C_Logout, a wrong PIN, operations while locked
out=$(PIN="pass phrase" "$KMX_TEST_PKCS11" "$M" locked "${ID[ed25519]}") || fail "locked"
assert_contains "$out" "locked: login, logout"
# pkcs11-tool: the protected path with nobody to ask, a wrong PIN, the right one
if p11 --sign --id "${ID[ed25519]}" -m EDDSA -i msg -o sig >/dev/null 2>err; then
	fail "signed on a locked device"
fi
assert_contains "$(cat err)" "C_Login failed: rv = CKR_FUNCTION_CANCELED"
if p11 --login --pin "wrong" --sign --id "${ID[ed25519]}" -m EDDSA -i msg -o sig >/dev/null 2>err; then
	fail "signed after a wrong PIN"
fi
assert_contains "$(cat err)" "CKR_PIN_INCORRECT"
assert_eq "b true" "$(kmx_prop "$(kmx_device_path softkey:login)" org.keymux.Keystore1.Device Locked)"
p11 --login --pin "pass phrase" --sign --id "${ID[ed25519]}" -m EDDSA -i msg -o sig >/dev/null 2>err ||
	fail "sign after C_Login: $(cat err)"
openssl pkeyutl -verify -pubin -inkey ed25519.pem -rawin -in msg -sigfile sig >/dev/null || fail "EDDSA after login"

# ---- key pairs made by pkcs11-tool and p11tool, after C_Login ----
# gen_tool SPEC LABEL [options]: the new key's id, its public key in LABEL.pem
gen_tool() {
	local spec=$1 label=$2 id
	shift 2
	kmx_device softkey:login Lock >/dev/null
	p11 --login --pin "pass phrase" --keypairgen --key-type "$spec" --label "$label" "$@" >gen.out 2>&1 ||
		fail "pkcs11-tool --keypairgen $spec: $(cat gen.out)"
	id=$(sed -n 's/^ *ID: *//p' gen.out | head -n 1)
	[ ${#id} = 64 ] || fail "pkcs11-tool --keypairgen $spec printed no key id: $(cat gen.out)"
	"$KEYMUXCTL" export-public "$id" >"$label.pem" || fail "keymuxctl export-public $id"
	echo "$id"
}
gen_rsa=$(gen_tool rsa:2048 "tool rsa")
gen_ec=$(gen_tool EC:prime256v1 "tool p256")
# Ed25519 signs only: pkcs11-tool asks for derive too unless told
kmx_device softkey:login Lock >/dev/null
if p11 --login --pin "pass phrase" --keypairgen --key-type EC:edwards25519 --label "tool ed" >gen.out 2>&1; then
	fail "an Ed25519 key that derives was made"
fi
assert_contains "$(cat gen.out)" "CKR_TEMPLATE_INCONSISTENT"
gen_ed=$(gen_tool EC:edwards25519 "tool ed" --usage-sign)
keys=$("$KEYMUXCTL" keys)
for label in "tool rsa" "tool p256" "tool ed"; do
	assert_contains "$keys" "$label" "keymuxctl keys lists the key pkcs11-tool made"
done
sign_id() { # id mechanism output [options]
	local id=$1 mech=$2 outf=$3
	shift 3
	# (pkcs11-tool logs in to a protected token, and stops at
	# CKR_USER_ALREADY_LOGGED_IN)
	kmx_device softkey:login Lock >/dev/null
	p11 --login --pin "pass phrase" --sign --id "$id" --mechanism "$mech" -i msg -o "$outf" "$@" >/dev/null 2>sign.err ||
		fail "$mech with $id: $(cat sign.err)"
}
sign_id "$gen_rsa" SHA256-RSA-PKCS sig
openssl dgst -sha256 -verify "tool rsa.pem" -signature sig msg >/dev/null || fail "SHA256-RSA-PKCS with a new key"
sign_id "$gen_ec" ECDSA-SHA256 sig --signature-format openssl
openssl dgst -sha256 -verify "tool p256.pem" -signature sig msg >/dev/null || fail "ECDSA-SHA256 with a new key"
sign_id "$gen_ed" EDDSA sig
openssl pkeyutl -verify -pubin -inkey "tool ed.pem" -rawin -in msg -sigfile sig >/dev/null || fail "EDDSA with a new key"
assert_eq 3 "$(printf '%s\n' "$gen_rsa" "$gen_ec" "$gen_ed" | sort -u | wc -l)" "three new keys"
if p11kit_too; then
	# GnuTLS logs in on the protected authentication path (keymux's
	# prompt) whatever PIN it has: the device is unlocked beforehand
	kmx_device softkey:login Unlock sa{sv} "pass phrase" 0 >/dev/null
	out=$(p11tool --provider "$M" --login --generate-privkey ecdsa --curve secp384r1 \
		--label "gnutls p384" "pkcs11:token=Login%20keys" 2>&1) || fail "p11tool --generate-privkey: $out"
	assert_contains "$out" "BEGIN PUBLIC KEY"
	openssl pkey -pubin -in <(sed -n '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/p' <<<"$out") -outform DER -out gnutls.der
	keys=$("$KEYMUXCTL" keys)
	assert_contains "$keys" "gnutls p384"
	cmp gnutls.der <("$KEYMUXCTL" export-public "gnutls p384" | openssl pkey -pubin -outform DER) ||
		fail "p11tool printed another public key than keymux's"
	out=$(p11tool --provider "$M" --login --test-sign "pkcs11:object=gnutls%20p384;type=private" 2>&1) ||
		fail "p11tool --test-sign with the key it made: $out"
	assert_contains "$out" "Verifying against public key in the token... ok"
fi
# the protected authentication path: a NULL PIN is keymux's prompt
kmx_device softkey:login Lock >/dev/null
"$KMX_TEST_PROMPTER" --secret "pass phrase" >prompter.out 2>prompter.err &
KMX_PIDS+=($!)
for _ in $(seq 200); do grep -q ready prompter.out && break; sleep 0.05; done
grep -q ready prompter.out || fail "the prompter did not start"
p11 --sign --id "${ID[ecdsa-p256]}" -m ECDSA-SHA256 -i msg -o sig --signature-format openssl >/dev/null 2>err ||
	fail "sign through the prompt: $(cat err)"
openssl dgst -sha256 -verify ecdsa-p256.pem -signature sig msg >/dev/null || fail "ECDSA after the prompt"
assert_contains "$(cat prompter.out)" "asked $(kmx_device_path softkey:login)"
kill "${KMX_PIDS[-1]}"
kmx_device softkey:login Unlock sa{sv} "pass phrase" 0 >/dev/null
kmx_device softkey:login ChangeSecret ss "pass phrase" "" >/dev/null

# ---- keymuxd killed mid-session and started again ----
mkfifo to_client
exec 3<>to_client
"$KMX_TEST_PKCS11" "$M" restart "${ID[ed25519]}" <&3 >restart.out 2>&1 &
client=$!
KMX_PIDS+=("$client")
for _ in $(seq 400); do grep -q 'killed?' restart.out && break; sleep 0.05; done
grep -q 'killed?' restart.out || fail "the restart client did not start: $(cat restart.out)"
kmx_kill_daemon
echo go >&3
for _ in $(seq 400); do grep -q 'restarted?' restart.out && break; sleep 0.05; done
grep -q 'restarted?' restart.out || fail "the restart client: $(cat restart.out)"
kmx_start_daemon
echo go >&3
wait "$client" || fail "keymuxd restarted: $(cat restart.out)"
assert_contains "$(cat restart.out)" "recovered"
exec 3>&-

# ---- a device that makes no keys through PKCS#11 (the test backend's) ----
mkdir -p "$KEYMUX_DATA_DIR/test/plugged"
printf '[device]\npin=123456\nadmin-pin=12345678\n' >"$KEYMUX_DATA_DIR/test/.plug"
mv "$KEYMUX_DATA_DIR/test/.plug" "$KEYMUX_DATA_DIR/test/plugged/0001"
test_listed() { p11 --list-slots 2>/dev/null | grep -q "keymux test:0001"; }
until_ok test_listed
out=$("$KMX_TEST_PKCS11" "$M" nogen test:0001) || fail "a device that makes no keys: $out"
assert_contains "$out" "no key pair generation"

echo "ok"
