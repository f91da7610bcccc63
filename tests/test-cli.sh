#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keymuxctl against a real keymuxd on a private bus: listing, every key type,
# signatures and ciphertexts checked with openssl, import, labels, lookups,
# passwords, exit codes and the monitor.
. "$KMX_TESTS_DIR/harness.sh"
: "${KEYMUXCTL:?KEYMUXCTL must point to the keymuxctl binary}"
kmx_setup

K() { "$KEYMUXCTL" "$@"; }
# json EXPR: parse stdin as JSON into d, then run the python statements EXPR
json() { /usr/bin/python3 -c "import json, sys; d = json.load(sys.stdin); $1"; }
lines() { grep -c '' <"$1" || true; }
# The monitors' output is read only past a mark taken before the action
# waited on, so that a line printed for an earlier event never answers for
# a later one.  since[FILE] is the byte offset of FILE's mark.
declare -A since=()
marks=0
# the complete lines of FILE past byte OFFSET (a line still being written
# is left for the next look)
lines_from() {
	local chunk
	chunk=$(tail -c +$(($2 + 1)) "$1" 2>/dev/null; printf x)
	chunk=${chunk%x}
	case $chunk in *$'\n'*) printf '%s\n' "${chunk%$'\n'*}" ;; esac
}
# mark FILE...: FILE's writer starts with the action (or is idle): its
# lines from now on
mark() {
	local f
	for f in "$@"; do since[$f]=$(stat -c %s "$f" 2>/dev/null || echo 0); done
}
# mark_monitors FILE...: the monitors writing FILE may still be printing
# earlier events: a label set on a key of the marks' own is the last
# event before the mark, and each FILE is marked past its line (the bus
# keeps keymuxd's signals in order)
mark_monitors() {
	local f n text
	marks=$((marks + 1))
	text="monitor mark $marks."
	K set-label "$MARK_KEY" "$text"
	for f in "$@"; do
		for _ in $(seq 200); do
			n=$(lines_from "$f" 0 | grep -nF -- "$text" | cut -d: -f1) && break
			sleep 0.05
		done
		[ -n "$n" ] || fail "the mark '$text' did not show up in $f: $(cat "$f")"
		since[$f]=$(head -n "$n" "$f" | wc -c)
	done
}
# wait_for FILE TEXT [SECONDS]: bounded wait until a line of FILE past its
# mark (which this uses up) contains TEXT; those lines are in $waited
wait_for() {
	local from=${since[$1]:-}
	[ -n "$from" ] || fail "wait_for $1: no mark taken before the action"
	unset "since[$1]"
	for _ in $(seq $((${3:-10} * 20))); do
		waited=$(lines_from "$1" "$from" | grep -F -- "$2") && return 0
		sleep 0.05
	done
	fail "'$2' did not show up in $1 past byte $from within ${3:-10} s: $(cat "$1")"
}
# the errors of keymuxctl are one line, without the D-Bus prefix
assert_one_error_line() {
	assert_eq 1 "$(lines "$KMX_TMP/last.err")" "keymuxctl prints one error line"
	assert_contains "$(cat "$KMX_TMP/last.err")" "keymuxctl: "
	assert_not_contains "$(cat "$KMX_TMP/last.err")" "GDBus.Error"
}

cd "$KMX_TMP"
printf 'the message to sign\n' >msg

# ---- no keymuxd on the bus: a clear error at once, not a hang ----
kmx_start_bare_bus
bare_address=$KMX_BARE_ADDRESS
# (a hang would be D-Bus's 25 s timeout: timeout(1) ends it first, exit 124)
assert_exit 5 timeout 20 "$KEYMUXCTL" --address "$bare_address" devices
assert_contains "$(cat last.err)" "keymuxd is not running"
assert_one_error_line
assert_exit 5 timeout 20 "$KEYMUXCTL" keys --address "$bare_address"
assert_exit 0 timeout 20 "$KEYMUXCTL" --address "$bare_address" version
assert_contains "$(cat last.out)" "keymuxctl "

kmx_start_daemon

# ---- usage errors: exit 2 ----
assert_exit 2 K
assert_exit 2 K no-such-command
assert_contains "$(cat last.err)" "unknown command 'no-such-command'"
assert_exit 2 K sign
assert_one_error_line
assert_exit 2 K generate dsa1024
assert_contains "$(cat last.err)" "unknown algorithm 'dsa1024'"
assert_exit 2 K lock a b
assert_exit 2 K sign --no-such-option x
for c in sign decrypt; do
	assert_exit 2 K $c --base64 --hex somekey
	assert_contains "$(cat last.err)" "$c: --base64 and --hex exclude each other"
done
assert_exit 2 K derive --base64 --hex somekey peer.der
assert_contains "$(cat last.err)" "derive: --base64 and --hex exclude each other"
assert_exit 0 K sign --help
assert_contains "$(cat last.out)" "KEY [FILE|-]"

# ---- version ----
out=$(K version)
assert_contains "$out" "keymuxctl 0.1.0"
assert_contains "$out" "keymuxd"
K version --json | json 'assert d["keymuxctl"] == "0.1.0"; assert "softkey" in d["backends"], d'

# ---- devices ----
out=$(K devices)
assert_contains "$(head -n1 <<<"$out")" "DEVICE ID"
assert_contains "$(head -n1 <<<"$out")" "STATE"
assert_contains "$out" "softkey:login"
assert_contains "$(grep softkey:login <<<"$out")" "unprotected (no password)"
assert_not_contains "$out" "unlocked" "a store without a password is not shown as unlocked"
K devices --json | json '
dev = [x for x in d if x["id"] == "softkey:login"]
assert len(dev) == 1, d
assert dev[0]["locked"] is False and dev[0]["available"] is True, dev
assert dev[0]["details"]["protected"] is False, dev'
K --json devices | json 'assert isinstance(d, list)'
K info softkey:login | grep -q "Backend: *softkey" || fail "info DEVICE shows the backend"

# ---- generate every key type ----
declare -A KEY
for alg in ed25519 ecdsa-p256 ecdsa-p384 rsa2048 rsa3072 x25519; do
	KEY[$alg]=$(K generate --label "t-$alg" "$alg")
	[[ ${KEY[$alg]} =~ ^[0-9a-f]{64}$ ]] || fail "generate $alg printed '${KEY[$alg]}'"
done
ED=${KEY[ed25519]} EC=${KEY[ecdsa-p256]} EC384=${KEY[ecdsa-p384]}
RSA=${KEY[rsa2048]} X=${KEY[x25519]}
K generate --json --device softkey:login --label from-json ecdsa-p256 |
	json 'assert d[0]["label"] == "from-json" and d[0]["algorithm"] == "ecdsa-p256", d'

out=$(K keys)
assert_contains "$(head -n1 <<<"$out")" "KEY ID"
assert_contains "$(head -n1 <<<"$out")" "ALGORITHM"
for alg in "${!KEY[@]}"; do
	line=$(grep -F "${KEY[$alg]:0:16}" <<<"$out") || fail "keys lists no $alg key"
	assert_contains "$line" "t-$alg"
	assert_contains "$line" "softkey:login"
	assert_not_contains "$line" "${KEY[$alg]:0:17}" "the table shows 16 digits of an id"
done
assert_contains "$(grep -F "${EC:0:16}" <<<"$out")" "sign,derive"
assert_contains "$(grep -F "${X:0:16}" <<<"$out")" "derive"
assert_eq "$(K keys softkey:login)" "$out" "keys DEVICE lists the same keys"
K keys --json | json "
ids = {k['id'] for k in d}
assert {'$ED', '$EC', '$EC384', '$RSA', '$X'} <= ids, ids
k = [k for k in d if k['id'] == '$RSA'][0]
assert k['algorithm'] == 'rsa2048' and k['usage'] == ['sign', 'decrypt'], k
assert k['device'] == 'softkey:login' and k['label'] == 't-rsa2048', k"
assert_exit 3 K keys no-such-device
assert_one_error_line

# ---- export-public and sign, checked by openssl ----
for id in "$ED" "$EC" "$EC384" "$RSA" "$X"; do
	K export-public "$id" >"$id.pem"
	head -n1 "$id.pem" | grep -qx -- "-----BEGIN PUBLIC KEY-----" || fail "export-public PEM armor"
	awk 'length > 64 { exit 1 }' "$id.pem" || fail "export-public lines longer than 64 columns"
	got=$(openssl pkey -pubin -in "$id.pem" -outform DER | sha256sum | cut -d' ' -f1)
	assert_eq "$id" "$got" "the key id is the SHA-256 of the exported SPKI"
done

K sign "$ED" msg >ed.sig
openssl pkeyutl -verify -pubin -inkey "$ED.pem" -rawin -in msg -sigfile ed.sig >/dev/null ||
	fail "openssl rejects the ed25519 signature"
K sign "$EC" msg >ec.sig
openssl dgst -sha256 -verify "$EC.pem" -signature ec.sig msg >/dev/null ||
	fail "openssl rejects the ecdsa-sha256 signature"
K sign "$EC384" <msg >ec384.sig
openssl dgst -sha384 -verify "$EC384.pem" -signature ec384.sig msg >/dev/null ||
	fail "openssl rejects the ecdsa-sha384 signature (stdin)"
K sign "$RSA" - <msg >pss.sig
openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
	-verify "$RSA.pem" -signature pss.sig msg >/dev/null ||
	fail "openssl rejects the default RSA signature (rsa-pss-sha256)"
K sign --algorithm rsa-pkcs1-sha256 "$RSA" msg >pkcs1.sig
openssl dgst -sha256 -verify "$RSA.pem" -signature pkcs1.sig msg >/dev/null ||
	fail "openssl rejects the rsa-pkcs1-sha256 signature"
K sign -a rsa-pss-sha384 "$RSA" msg >pss384.sig
openssl dgst -sha384 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
	-verify "$RSA.pem" -signature pss384.sig msg >/dev/null || fail "rsa-pss-sha384"
openssl dgst -sha256 -binary msg >msg.sha256
K sign --prehashed "$EC" msg.sha256 >pre.sig
openssl dgst -sha256 -verify "$EC.pem" -signature pre.sig msg >/dev/null ||
	fail "openssl rejects the signature of a prehashed digest"
# ed25519 is deterministic: the text forms carry the same bytes
assert_eq "$(base64 -w0 ed.sig)" "$(K sign --base64 "$ED" msg)" "sign --base64"
assert_eq "$(od -An -v -tx1 ed.sig | tr -d ' \n')" "$(K sign --hex "$ED" msg)" "sign --hex"
assert_exit 2 K sign --base64 --hex "$ED" msg
assert_exit 7 K sign "$X" msg
assert_one_error_line
assert_exit 2 K sign -a no-such-algorithm "$ED" msg
assert_exit 3 K sign "$ED" no-such-file

# ---- decrypt what openssl encrypted ----
printf 'a secret for the rsa key' >plain
openssl pkeyutl -encrypt -pubin -inkey "$RSA.pem" -pkeyopt rsa_padding_mode:oaep \
	-pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in plain -out oaep.bin
K decrypt "$RSA" oaep.bin >oaep.out
cmp -s plain oaep.out || fail "decrypt (rsa-oaep-sha256, the default) gave other bytes"
openssl pkeyutl -encrypt -pubin -inkey "$RSA.pem" -pkeyopt rsa_padding_mode:pkcs1 \
	-in plain -out pkcs1.bin
K decrypt --algorithm rsa-pkcs1 "$RSA" <pkcs1.bin >pkcs1.out
cmp -s plain pkcs1.out || fail "decrypt -a rsa-pkcs1 gave other bytes"
assert_eq "$(od -An -v -tx1 plain | tr -d ' \n')" "$(K decrypt --hex "$RSA" oaep.bin)"
assert_exit 7 K decrypt "$ED" oaep.bin
assert_one_error_line

# ---- derive, compared with openssl ----
openssl genpkey -algorithm X25519 -out peer-x.key 2>/dev/null
openssl pkey -in peer-x.key -pubout -out peer-x.pem
openssl pkey -in peer-x.key -pubout -outform DER -out peer-x.der
openssl pkeyutl -derive -inkey peer-x.key -peerkey "$X.pem" -out x.expected
K derive "$X" peer-x.pem >x.got
cmp -s x.expected x.got || fail "derive x25519 (PEM peer) differs from openssl"
K derive "$X" peer-x.der >x.got
cmp -s x.expected x.got || fail "derive x25519 (DER peer) differs from openssl"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out peer-ec.key 2>/dev/null
openssl pkey -in peer-ec.key -pubout -out peer-ec.pem
openssl pkeyutl -derive -inkey peer-ec.key -peerkey "$EC.pem" -out ec.expected
K derive "$EC" peer-ec.pem >ec.got
cmp -s ec.expected ec.got || fail "derive ecdh (P-256) differs from openssl"
printf -- '-----BEGIN PUBLIC KEY-----\nnot base64 at all!\n-----END PUBLIC KEY-----\n' >bad.pem
assert_exit 2 K derive "$X" bad.pem
assert_one_error_line
openssl pkey -in peer-ec.key -out peer-ec-private.pem
assert_exit 2 K derive "$EC" peer-ec-private.pem

# ---- import a PEM made by openssl ----
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out imp.pem 2>/dev/null
want=$(openssl pkey -in imp.pem -pubout -outform DER | sha256sum | cut -d' ' -f1)
IMP=$(K import --label imported imp.pem </dev/null)
assert_eq "$want" "$IMP" "import prints the id of the key"
K info --json "$IMP" | json 'assert d["kind"] == "key" and d["keys"][0]["label"] == "imported", d'
assert_exit 8 K import imp.pem
assert_contains "$(cat last.err)" "keymuxctl: "
# an encrypted file: without a terminal the passphrase comes from --passphrase-fd
openssl genpkey -algorithm ed25519 -aes-256-cbc -pass pass:file-pw -out enc.pem 2>/dev/null
spki_id() { openssl pkey "$@" -pubout -outform DER | sha256sum | cut -d' ' -f1; }
want=$(spki_id -in enc.pem -passin pass:file-pw)
assert_exit 4 K import enc.pem </dev/null
assert_contains "$(cat last.err)" "--passphrase-fd"
assert_exit 4 K import --passphrase-fd 3 enc.pem 3<<<"wrong-pw"
ENC=$(K import --passphrase-fd 3 enc.pem 3<<<"file-pw")
assert_eq "$want" "$ENC" "import of an encrypted PKCS#8"
printf 'garbage' >garbage.pem
assert_exit 2 K import garbage.pem </dev/null
# what cannot be a key file is refused before it is read to the end
assert_exit 3 K import no-such-file.pem </dev/null
assert_exit 2 timeout 60 "$KEYMUXCTL" import /dev/zero
assert_contains "$(cat last.err)" "not a regular file"
head -c 1100000 /dev/zero >huge.pem
assert_exit 2 K import huge.pem </dev/null
assert_contains "$(cat last.err)" "too large"
assert_exit 2 K import - <huge.pem
assert_contains "$(cat last.err)" "too large"

# ---- lookups: prefixes, labels, ambiguity, unknown keys ----
assert_contains "$(K info "${ED:0:8}")" "$ED"
assert_contains "$(K info "$(tr a-f A-F <<<"${ED:0:12}")")" "$ED" "prefixes in upper case"
assert_contains "$(K info t-ed25519)" "$ED" "a label names a key"
K sign t-ed25519 msg | cmp -s - ed.sig || fail "sign by label"
assert_exit 3 K info ffffffffffffffff0000
assert_one_error_line
assert_contains "$(cat last.err)" "no key or device"
assert_exit 3 K sign 0000000000000000 msg
assert_exit 3 K info "${ED:0:3}"
K set-label "$EC384" same-label
K set-label "$RSA" same-label
assert_exit 2 K info same-label
assert_one_error_line
assert_contains "$(cat last.err)" "${EC384:0:16}"
assert_contains "$(cat last.err)" "${RSA:0:16}"
# a label that is also another key's prefix is ambiguous too
K set-label "$EC384" "${ED:0:8}"
assert_exit 2 K sign "${ED:0:8}" msg
assert_contains "$(cat last.err)" "several keys"
K set-label "$EC384" t-ecdsa-p384
K set-label "$RSA" t-rsa2048

# ---- set-label, delete ----
K set-label "$ED" -- "-dash label"
assert_contains "$(K info -- "-dash label")" "$ED" "-- ends the options"
K set-label "$ED" "renamed key"
K info --json "$ED" | json 'assert d["keys"][0]["label"] == "renamed key", d'
assert_contains "$(K keys)" "renamed key"
K delete --yes "$IMP"
assert_exit 3 K info "$IMP"
# stdin is no terminal here: delete does not ask
K delete "$ENC" </dev/null
assert_exit 3 K export-public "$ENC"
if [ -d "$KEYMUX_DATA_DIR" ]; then
	left=$(find "$KEYMUX_DATA_DIR" -name "$IMP*" -o -name "$ENC*")
	assert_eq "" "$left" "delete leaves no file of the key"
fi

# ---- monitor: events as they happen ----
MARK_KEY=$(K generate --label "monitor marks" ed25519)
mark mon.out mon.err monj.out monj.err
kmx_bg "$KEYMUXCTL" monitor >mon.out 2>mon.err
wait_for mon.err "monitoring"
kmx_bg "$KEYMUXCTL" monitor --json >monj.out 2>monj.err
wait_for monj.err "monitoring"
mark_monitors mon.out
MON=$(K generate --label watched ed25519)
wait_for mon.out "key-added $MON"
assert_contains "$waited" "device=softkey:login"
mark_monitors mon.out
K set-label "$MON" "watched again"
wait_for mon.out "key-changed $MON"
assert_contains "$waited" "watched again"
mark_monitors mon.out monj.out
K delete --yes "$MON"
wait_for mon.out "key-removed $MON"
wait_for monj.out "\"key-removed\""
/usr/bin/python3 -c '
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
added = [e for e in events if e["event"] == "key-added"]
assert added and added[0]["id"] == sys.argv[2], events
assert added[0]["device"] == "softkey:login", added' monj.out "$MON"

# ---- passwords: passwd, lock, unlock, wrong password ----
printf '\nfirst-pw\n' | K passwd softkey:login
K devices --json | json '
dev = [x for x in d if x["id"] == "softkey:login"][0]
assert dev["details"]["protected"] is True, dev'
mark_monitors mon.out
K lock softkey:login
wait_for mon.out "device-changed softkey:login"
assert_contains "$waited" "Locked=true"
K delete --yes "$MARK_KEY"
assert_contains "$(K devices | grep softkey:login)" "locked"
K devices --json | json 'assert [x for x in d if x["id"] == "softkey:login"][0]["locked"] is True'
# metadata works while locked
K set-label "$EC" "locked label"
assert_contains "$(K keys)" "locked label"
K export-public "$EC" | cmp -s - "$EC.pem" || fail "export-public while locked"
# no prompter registered: a locked key says so, exit 4
assert_exit 4 K sign "$EC" msg
assert_one_error_line
assert_exit 4 K unlock softkey:login <<<"wrong-pw"
assert_one_error_line
err=$(cat last.err)
assert_contains "$(K devices | grep softkey:login)" "locked"
printf 'first-pw\n' | K unlock softkey:login
assert_contains "$(K devices | grep softkey:login)" "unlocked"
K sign "$EC" msg >ec2.sig
openssl dgst -sha256 -verify "$EC.pem" -signature ec2.sig msg >/dev/null || fail "sign after unlock"
# change it; the new one unlocks through --secret-fd, the old one no more
printf 'first-pw\nsecond-pw\n' | K passwd softkey:login
assert_exit 4 K passwd softkey:login <<<$'not-the-pw\nthird-pw'
K lock-all
K devices --json | json 'assert all(x["locked"] for x in d if x["id"] == "softkey:login")'
assert_exit 4 K unlock softkey:login <<<"first-pw"
K unlock --secret-fd 3 softkey:login 3<<<"second-pw"
K devices --json | json 'assert not [x for x in d if x["id"] == "softkey:login"][0]["locked"]'
# unlocking an unlocked device reads no secret
K unlock softkey:login </dev/null 2>unlocked.err
assert_contains "$(cat unlocked.err)" "not locked"
printf '# wrong password: %s\n' "$err" >&2

# ---- on a terminal: prompts without echo, confirmations ----
# on_tty EXPECT SEND [EXPECT SEND...] -- CMD...: run CMD on a pty, answer
# each prompt; print what the terminal showed, exit with CMD's status
cat >on-tty.py <<-'EOF'
import os, pty, select, sys, time
sep = sys.argv.index("--")
pairs, argv = sys.argv[1:sep], sys.argv[sep + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
seen = b""
def more(deadline):
    global seen
    r, _, _ = select.select([fd], [], [], max(0, deadline - time.time()))
    if not r:
        return False
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        return False
    seen += chunk
    return bool(chunk)
for expect, send in zip(pairs[0::2], pairs[1::2]):
    deadline = time.time() + 10
    while expect.encode() not in seen:
        if not more(deadline):
            sys.exit("no prompt %r on the terminal, got %r" % (expect, seen))
    seen = seen.replace(expect.encode(), b"<" + expect.encode() + b">", 1)
    os.write(fd, send.encode() + b"\n")
deadline = time.time() + 20
while more(deadline):
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
EOF
on_tty() { /usr/bin/python3 "$KMX_TMP/on-tty.py" "$@"; }
K lock softkey:login
out=$(on_tty "Password or PIN for" second-pw -- "$KEYMUXCTL" unlock softkey:login)
assert_not_contains "$out" "second-pw" "the password is not echoed"
K devices --json | json 'assert not [x for x in d if x["id"] == "softkey:login"][0]["locked"]'
status=0
out=$(on_tty "[y/N]" n -- "$KEYMUXCTL" delete "$X") || status=$?
assert_eq 9 "$status" "declining the confirmation exits 9"
assert_contains "$out" "$X"
K info "$X" >/dev/null
on_tty "[y/N]" y -- "$KEYMUXCTL" delete "$X" >/dev/null
assert_exit 3 K info "$X"
status=0
out=$(on_tty "Current" second-pw "New" third-pw "Repeat" other-pw -- \
	"$KEYMUXCTL" passwd softkey:login) || status=$?
assert_eq 2 "$status" "passwd with two different new passwords"
assert_contains "$out" "differ"
on_tty "Current" second-pw "New" third-pw "Repeat" third-pw -- \
	"$KEYMUXCTL" passwd softkey:login >/dev/null
K lock softkey:login
K unlock softkey:login <<<"third-pw"
openssl genpkey -algorithm ed25519 -aes-256-cbc -pass pass:tty-pw -out enc2.pem 2>/dev/null
out=$(on_tty "Passphrase for" tty-pw -- "$KEYMUXCTL" import enc2.pem)
assert_not_contains "$out" "tty-pw" "the passphrase is not echoed"
want=$(spki_id -in enc2.pem -passin pass:tty-pw)
assert_contains "$out" "$want"

# ---- an unprotected store says so, and passwd explains the choice ----
out=$(on_tty "Current" third-pw "New" "" "Repeat" "" -- "$KEYMUXCTL" passwd softkey:login)
assert_contains "$out" "an empty new password removes the protection"
assert_contains "$out" "softkey:login is now unprotected (no password)."
assert_contains "$(K devices | grep softkey:login)" "unprotected (no password)"
assert_contains "$(K info softkey:login)" "State:       unprotected (no password)"
out=$(on_tty "New" "" "Repeat" "" -- "$KEYMUXCTL" passwd softkey:login)
assert_contains "$out" "softkey:login is unprotected (no password): any program of yours"
assert_contains "$out" "softkey:login stays unprotected (no password)."
out=$(on_tty "New" fourth-pw "Repeat" fourth-pw -- "$KEYMUXCTL" passwd softkey:login)
assert_contains "$out" "softkey:login is now protected by a password."
assert_contains "$(K devices | grep softkey:login)" "unlocked"
assert_not_contains "$(K devices | grep softkey:login)" "unprotected"

kmx_log "test-cli: all passed"
