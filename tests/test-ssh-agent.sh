#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The ssh-agent frontend with the real OpenSSH tools: ssh-add, ssh-keygen -Y,
# a login to an sshd of our own; and what no OpenSSH tool sends (malformed,
# oversized, half messages, many clients at once).
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
: "${KEYMUXCTL:?}" "${KMX_TEST_PROMPTER:?}"
cd "$KMX_TMP"

export XDG_RUNTIME_DIR="$KMX_TMP/run"
mkdir -m 0700 "$XDG_RUNTIME_DIR"
sock="$XDG_RUNTIME_DIR/keymux/ssh"
client() { /usr/bin/python3 "$KMX_TESTS_DIR/kmx-ssh-agent-client.py" "$sock" "$@"; }
hex() { printf '%s' "$1" | xxd -p | tr -d '\n'; }
u32() { printf '%08x' "$1"; }
sshstr() { u32 "${#1}"; hex "$1"; }
keyid() { "$KEYMUXCTL" keys | awk -v l="$1" 'index($0, l) { print $1; exit }'; }
log_count() { grep -c -- "$1" "$KMX_TMP/keymuxd.log" || true; }

# ---- off unless enabled ----
kmx_start_daemon
[ ! -e "$sock" ] || fail "the agent socket exists though [ssh-agent] is not enabled"
kmx_stop_daemon

printf '[ssh-agent]\nenabled=true\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
export SSH_AUTH_SOCK="$sock"

# ---- the socket is the user's alone ----
[ -S "$sock" ] || fail "no agent socket at $sock"
assert_eq 700 "$(stat -c %a "$XDG_RUNTIME_DIR/keymux")" "mode of the socket directory"
assert_eq 600 "$(stat -c %a "$sock")" "mode of the socket"

# ---- identities: the keys OpenSSH can use, with the fingerprints of export-public --ssh ----
declare -A ID
for t in ed25519 ecdsa-p256 ecdsa-p384 rsa2048 x25519; do
	kmx_device softkey:login GenerateKey ssa{sv} "$t" "agent $t" 0 >/dev/null
	ID[$t]=$(keyid "agent $t")
	[ -n "${ID[$t]}" ] || fail "no key 'agent $t'"
done
listed=$(ssh-add -l) || fail "ssh-add -l failed"
assert_eq 4 "$(wc -l <<<"$listed")" "ssh-add -l lists the four keys OpenSSH can use"
assert_not_contains "$listed" "agent x25519"
lines=$(ssh-add -L)
for t in ed25519 ecdsa-p256 ecdsa-p384 rsa2048; do
	"$KEYMUXCTL" export-public --ssh "${ID[$t]}" >"$t.pub"
	grep -qxF "$(cat "$t.pub")" <<<"$lines" || fail "export-public --ssh of $t is no line of ssh-add -L"
	fp=$(ssh-keygen -lf "$t.pub" | cut -d' ' -f2)
	assert_contains "$listed" "$fp agent $t" "fingerprint of $t"
	"$KEYMUXCTL" export-public "${ID[$t]}" >"$t.pem"
done
assert_exit 7 "$KEYMUXCTL" export-public --ssh "${ID[x25519]}"
assert_contains "$(cat last.err)" "OpenSSH"

# ---- ssh-keygen -Y sign through the agent, ssh-keygen -Y verify ----
printf 'a message signed through the agent\n' >msg
for t in ed25519 ecdsa-p256 ecdsa-p384 rsa2048; do
	rm -f msg.sig
	ssh-keygen -Y sign -f "$t.pub" -n file msg 2>sign.err || fail "ssh-keygen -Y sign with $t: $(cat sign.err)"
	printf 'me %s\n' "$(cat "$t.pub")" >allowed
	ssh-keygen -Y verify -f allowed -I me -n file -s msg.sig <msg >/dev/null ||
		fail "the $t signature does not verify"
	printf 'a different message\n' >other
	if ssh-keygen -Y verify -f allowed -I me -n file -s msg.sig <other >/dev/null 2>&1; then
		fail "the $t signature verifies another message"
	fi
done
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "sign key ${ID[ed25519]}"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "(/usr/bin/ssh-keygen): ok"

# ---- RSA: rsa-sha2-256 and rsa-sha2-512 as asked, SHA-1 refused ----
for f in 2:rsa-sha2-256:sha256 4:rsa-sha2-512:sha512; do
	IFS=: read -r flags name digest <<<"$f"
	got=$(client sign rsa2048.pub "$flags" msg rsa.sig) || fail "RSA sign with flags $flags"
	assert_eq "$name" "$got" "the RSA signature's algorithm"
	openssl dgst "-$digest" -verify rsa2048.pem -signature rsa.sig msg >/dev/null ||
		fail "the $name signature does not verify"
done
rsa_blob=$(cut -d' ' -f2 rsa2048.pub | base64 -d | xxd -p | tr -d '\n')
sign_rsa_sha1="0d$(u32 $((${#rsa_blob} / 2)))${rsa_blob}$(sshstr data)$(u32 0)"
client failure "$sign_rsa_sha1" || fail "a SHA-1 ssh-rsa signature was not refused"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "refused a SHA-1 ssh-rsa signature"

# ---- a login to a real sshd with each key type, through the agent ----
ssh_dir="$KMX_TMP/sshd"
mkdir -m 0700 "$ssh_dir"
ssh-keygen -q -t ed25519 -N '' -C host -f "$ssh_dir/host_key"
# host keys of the other kinds, which sign the session-bind a client asks for
ssh-keygen -q -t ecdsa -b 384 -N '' -C host -f "$ssh_dir/host_key_ecdsa"
ssh-keygen -q -t rsa -b 2048 -N '' -C host -f "$ssh_dir/host_key_rsa"
cat ed25519.pub ecdsa-p256.pub ecdsa-p384.pub rsa2048.pub >"$ssh_dir/authorized_keys"
user=$(id -un)
# the privilege separation directory sshd chroots into when it runs as root
# (the openssh-server package creates it at boot with tmpfiles)
if [ "$(id -u)" = 0 ] && [ ! -d /run/sshd ]; then
	mkdir -p -m 0755 /run/sshd
fi
start_sshd() { # on a free port; another test may take it first: then again
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	cat >"$ssh_dir/sshd_config" <<-EOF
		Port $port
		ListenAddress 127.0.0.1
		HostKey $ssh_dir/host_key
		HostKey $ssh_dir/host_key_ecdsa
		HostKey $ssh_dir/host_key_rsa
		AuthorizedKeysFile $ssh_dir/authorized_keys
		PidFile none
		# the temp dir is not under the user's home, so not owned the way
		# StrictModes wants
		StrictModes no
		UsePAM no
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		PubkeyAuthentication yes
		PermitRootLogin prohibit-password
		AllowUsers $user
		LogLevel VERBOSE
	EOF
	# by its absolute path, which sshd needs to re-execute itself
	/usr/sbin/sshd -D -e -f "$ssh_dir/sshd_config" 2>>"$ssh_dir/sshd.log" &
	sshd_pid=$!
	KMX_PIDS+=("$sshd_pid")
	for _ in $(seq 200); do
		kill -0 "$sshd_pid" 2>/dev/null || return 1
		/usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
started=
for _ in 1 2 3 4 5; do
	start_sshd && started=1 && break
done
[ -n "$started" ] || fail "sshd did not start: $(tail -5 "$ssh_dir/sshd.log")"
for k in host_key host_key_ecdsa host_key_rsa; do
	printf '[127.0.0.1]:%s %s\n' "$port" "$(cat "$ssh_dir/$k.pub")"
done >"$ssh_dir/known_hosts"
ssh_to() { # pubfile [ssh options]: run a command on the sshd, authenticated by that key
	local pub=$1
	shift
	ssh -F /dev/null -p "$port" -o BatchMode=yes -o StrictHostKeyChecking=yes \
		-o UserKnownHostsFile="$ssh_dir/known_hosts" -o IdentitiesOnly=yes \
		-o IdentityFile="$KMX_TMP/$pub" -o ConnectTimeout=60 "$@" "$user@127.0.0.1" \
		echo "logged-in-with-$pub"
}
for t in ed25519 ecdsa-p256 ecdsa-p384 rsa2048; do
	out=$(ssh_to "$t.pub" 2>ssh.err) || fail "ssh login with $t: $(cat ssh.err); sshd: $(tail -5 "$ssh_dir/sshd.log")"
	assert_eq "logged-in-with-$t.pub" "$out"
done
for alg in rsa-sha2-256 rsa-sha2-512; do
	out=$(ssh_to rsa2048.pub -o PubkeyAcceptedAlgorithms=$alg 2>ssh.err) ||
		fail "ssh login with $alg: $(cat ssh.err)"
	assert_eq "logged-in-with-rsa2048.pub" "$out"
done
assert_contains "$(cat "$ssh_dir/sshd.log")" "Accepted publickey for $user"
# OpenSSH 8.9+ binds the session: the host key's signature over the
# session id verified, then the bind recorded
host_fp=$(ssh-keygen -lf "$ssh_dir/host_key.pub" | cut -d' ' -f2)
grep -q "session-bind to host key $host_fp by pid [0-9]* (/usr/bin/ssh): ok, host signature verified" \
	"$KMX_TMP/keymuxd.log" || fail "no verified session-bind of ssh in the audit"
for f in ecdsa-sha2-nistp384:host_key_ecdsa rsa-sha2-512:host_key_rsa rsa-sha2-256:host_key_rsa; do
	fp=$(ssh-keygen -lf "$ssh_dir/${f#*:}.pub" | cut -d' ' -f2)
	verified="session-bind to host key $fp by pid [0-9]* (/usr/bin/ssh): ok, host signature verified"
	before=$(grep -c "$verified" "$KMX_TMP/keymuxd.log" || true)
	out=$(ssh_to ed25519.pub -o HostKeyAlgorithms="${f%%:*}" 2>ssh.err) ||
		fail "ssh login to a ${f%%:*} host key: $(cat ssh.err)"
	assert_eq "logged-in-with-ed25519.pub" "$out"
	[ "$(grep -c "$verified" "$KMX_TMP/keymuxd.log")" -gt "$before" ] ||
		fail "no verified session-bind to the ${f%%:*} host key"
done
assert_not_contains "$(cat "$KMX_TMP/keymuxd.log")" "refused session-bind"
# a key the server does not know is not accepted through the agent either
ssh-keygen -q -t ed25519 -N '' -C stranger -f stranger
if ssh_to stranger.pub >/dev/null 2>&1; then
	fail "a login with a key that is not in keymux succeeded"
fi

# ---- ssh-add FILE: plain and passphrase-protected keys become soft keys ----
ssh-keygen -q -t ed25519 -N '' -C 'plain ed25519 from ssh-add' -f add1
ssh-keygen -q -t ecdsa -b 384 -N 'a pass phrase' -C 'protected ecdsa from ssh-add' -f add2
ssh-keygen -q -t rsa -b 2048 -N '' -C 'plain rsa from ssh-add' -f add3
printf '#!/bin/sh\necho "a pass phrase"\n' >askpass
chmod +x askpass
ssh-add add1 2>add.err || fail "ssh-add of an unencrypted key: $(cat add.err)"
SSH_ASKPASS="$KMX_TMP/askpass" SSH_ASKPASS_REQUIRE=force ssh-add add2 </dev/null 2>add.err ||
	fail "ssh-add of a passphrase-protected key: $(cat add.err)"
ssh-add add3 2>add.err || fail "ssh-add of an RSA key: $(cat add.err)"
listed=$(ssh-add -l)
for k in add1 add2 add3; do
	fp=$(ssh-keygen -lf "$k.pub" | cut -d' ' -f2)
	assert_contains "$listed" "$fp" "the key ssh-add added ($k) is listed"
	rm -f msg.sig
	ssh-keygen -Y sign -f "$k.pub" -n file msg 2>sign.err || fail "sign with the added $k: $(cat sign.err)"
	printf 'me %s\n' "$(cat "$k.pub")" >allowed
	ssh-keygen -Y verify -f allowed -I me -n file -s msg.sig <msg >/dev/null || fail "added $k: bad signature"
done
keys=$("$KEYMUXCTL" keys)
assert_contains "$keys" "plain ed25519 from ssh-add"
assert_contains "$keys" "protected ecdsa from ssh-add"
# the same key again: nothing changes, no error
ssh-add add1 2>/dev/null || fail "adding a key keymux has again failed"
assert_eq 1 "$("$KEYMUXCTL" keys | grep -c 'plain ed25519 from ssh-add')"

# constraints keymux cannot honour: refused, logged, not added
ssh-keygen -q -t ed25519 -N '' -C 'constrained' -f add4
for opt in "-t 60" "-c"; do
	# shellcheck disable=SC2086
	if SSH_ASKPASS=/bin/false SSH_ASKPASS_REQUIRE=never ssh-add $opt add4 </dev/null >/dev/null 2>&1; then
		fail "ssh-add $opt succeeded"
	fi
done
assert_not_contains "$("$KEYMUXCTL" keys)" "constrained"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "of a key with a lifetime of 60 s (-t)"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "of a key with confirmation of each use (-c)"

# deleting is keymuxctl's: refused, logged, nothing removed
assert_exit 1 ssh-add -d add1.pub
assert_exit 1 ssh-add -D
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "keymux keys are deleted with 'keymuxctl delete KEY'"
assert_eq 7 "$(ssh-add -l | wc -l)" "every key is still there"

# ---- lock and unlock: ssh-add -x / -X ----
kmx_device softkey:login ChangeSecret ss "" "store password"
locked() { kmx_prop "$(kmx_device_path softkey:login)" org.keymux.Keystore1.Device Locked; }
printf '#!/bin/sh\necho "%s"\n' "ignored by LockAll" >askpass-lock
chmod +x askpass-lock
SSH_ASKPASS="$KMX_TMP/askpass-lock" SSH_ASKPASS_REQUIRE=force ssh-add -x </dev/null 2>lock.err ||
	fail "ssh-add -x: $(cat lock.err)"
assert_eq "b true" "$(locked)" "ssh-add -x locks the store"
assert_eq 7 "$(ssh-add -l | wc -l)" "a locked store's keys are still listed"
# nobody can be asked: the signature fails, nothing hangs
rm -f msg.sig
if ssh-keygen -Y sign -f ed25519.pub -n file msg >/dev/null 2>&1; then
	fail "a locked key signed with nobody to ask"
fi
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "sign key ${ID[ed25519]}"
assert_contains "$(tail -n 20 "$KMX_TMP/keymuxd.log")" "is locked and nobody can be asked"
printf '#!/bin/sh\necho "wrong password"\n' >askpass-wrong
chmod +x askpass-wrong
if SSH_ASKPASS="$KMX_TMP/askpass-wrong" SSH_ASKPASS_REQUIRE=force ssh-add -X </dev/null >/dev/null 2>&1; then
	fail "ssh-add -X with a wrong password succeeded"
fi
assert_eq "b true" "$(locked)"
printf '#!/bin/sh\necho "store password"\n' >askpass-right
chmod +x askpass-right
SSH_ASKPASS="$KMX_TMP/askpass-right" SSH_ASKPASS_REQUIRE=force ssh-add -X </dev/null 2>lock.err ||
	fail "ssh-add -X: $(cat lock.err)"
assert_eq "b false" "$(locked)" "ssh-add -X unlocks the store"
rm -f msg.sig
ssh-keygen -Y sign -f ed25519.pub -n file msg 2>sign.err || fail "sign after ssh-add -X: $(cat sign.err)"

# a locked key with a prompter: it is asked, and the caller is the ssh client
kmx_manager LockAll
assert_eq "b true" "$(locked)"
"$KMX_TEST_PROMPTER" --secret "store password" >p1.out 2>p1.err &
p1=$!
KMX_PIDS+=("$p1")
for _ in $(seq 400); do grep -q ready p1.out && break; sleep 0.05; done
grep -q ready p1.out || fail "the prompter did not register: $(cat p1.err)"
rm -f msg.sig
ssh-keygen -Y sign -f ecdsa-p256.pub -n file msg 2>sign.err || fail "sign with a prompter: $(cat sign.err)"
printf 'me %s\n' "$(cat ecdsa-p256.pub)" >allowed
ssh-keygen -Y verify -f allowed -I me -n file -s msg.sig <msg >/dev/null || fail "bad signature after a prompt"
assert_eq 1 "$(grep -c '^asked' p1.out)" "the prompter is asked once"
assert_contains "$(cat p1.out)" "'caller': <'/usr/bin/ssh-keygen'>"
assert_eq "b false" "$(locked)"
kill "$p1"
wait "$p1" 2>/dev/null || true

# a client that hangs up while its request waits for a prompt: withdrawn
kmx_manager LockAll
"$KMX_TEST_PROMPTER" --mode hang >p2.out 2>p2.err &
p2=$!
KMX_PIDS+=("$p2")
for _ in $(seq 400); do grep -q ready p2.out && break; sleep 0.05; done
client hangup-sign ed25519.pub hangup.go &
hangup=$!
KMX_PIDS+=("$hangup")
for _ in $(seq 400); do grep -q '^asked' p2.out && break; sleep 0.05; done
grep -q '^asked' p2.out || fail "the prompter was not asked for the client"
touch hangup.go
wait "$hangup" || fail "hangup-sign"
cancelled="sign key ${ID[ed25519]}[0-9a-f]* by pid [0-9]* (/usr/bin/python3[^)]*): .*cancelled"
for _ in $(seq 400); do grep -q "$cancelled" "$KMX_TMP/keymuxd.log" && break; sleep 0.05; done
for _ in $(seq 400); do grep -q '^cancel ' p2.out && break; sleep 0.05; done
grep -q '^cancel ' p2.out || fail "the question of a client that hung up was not withdrawn"
grep -q "$cancelled" "$KMX_TMP/keymuxd.log" || fail "the request of a client that hung up was not cancelled"
assert_eq "b true" "$(locked)"
kill "$p2"
wait "$p2" 2>/dev/null || true
kmx_device softkey:login Unlock sa{sv} "store password" 0

# ---- what no OpenSSH tool sends: that connection closes, nothing else ----
client idle "$KMX_TMP/idle.go" >idle.out 2>idle.err &
idle=$!
KMX_PIDS+=("$idle")
for _ in $(seq 400); do grep -q idle idle.out && break; sleep 0.05; done
grep -q idle idle.out || fail "the idle client did not connect: $(cat idle.err)"
before=$(log_count "closing the connection")
client oversized || fail "oversized"
client empty || fail "empty"
client closes "00000005""0d""00000010" || fail "a string longer than its message"
client closes "00000009""0d""00000000""00000000" || fail "SIGN_REQUEST without flags"
client closes "0000000e""0d""00000000""00000000""00000000""00" || fail "SIGN_REQUEST with a trailing byte"
client closes "00000002""0b""00" || fail "REQUEST_IDENTITIES with a trailing byte"
client closes "00000009""11""00000010""41414141" || fail "ADD_IDENTITY cut short"
client closes "00000009""1b""00000005""41414141" || fail "EXTENSION with a short name"
client closes "00000005""17""00000010" || fail "UNLOCK cut short"
client partial || fail "partial"
assert_eq $((before + 9)) "$(log_count "closing the connection")" "each bad message closed its connection"
client failure "63" || fail "an unknown message type is a failure"
client failure "1b$(sshstr 'no-such-extension@example.com')" || fail "an unknown extension is a failure"
# session-bind: only what the host key signed; a forged bind is refused and
# logged, not recorded
client failure "1b$(sshstr session-bind@openssh.com)$(sshstr hostkey)$(sshstr sid)$(sshstr sig)00" ||
	fail "a session-bind with no key in it"
openssl genpkey -algorithm ED25519 -out forger.pem 2>/dev/null
client bind "$ssh_dir/host_key.pub" forger.pem failure || fail "a bind to the sshd's key signed by another"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "refused session-bind to host key $host_fp from pid"
client bind - forger.pem failure tamper || fail "a bind whose session id is not the one signed"
client bind - forger.pem success || fail "a bind its host key signed"
assert_eq 3 "$(log_count "refused session-bind")" "each forged bind is logged"
assert_eq 0 "$(grep -c "session-bind to host key $host_fp by pid [0-9]* (/usr/bin/python3" "$KMX_TMP/keymuxd.log" || true)" \
	"a forged bind in the audit"
client pipeline || fail "pipelined requests"
client halfclose ed25519.pub || fail "a client that shuts down its writing side"
# ADD_IDENTITY of a key type keymux has not: a failure, the connection lives
client failure "11$(sshstr ssh-dss)$(sshstr x)" || fail "ADD_IDENTITY of a DSA key"
# no more connections than [ssh-agent] max-connections (256): the idle
# client holds one, and a client that left a moment ago may still hold one
kept=$(client many 300) || fail "300 connections"
[ "$kept" -le 255 ] && [ "$kept" -ge 250 ] || fail "$kept of 300 connections were kept, not at most 255"
assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "256 clients are connected: refusing more"
out=$(client concurrent ed25519.pub 32 10) || fail "32 concurrent clients"
assert_eq "320 signatures" "$out"
ssh-add -l >/dev/null || fail "the agent does not answer after all that"
# the idle client was never in anyone's way, and its connection still works
: >"$KMX_TMP/idle.go"
wait "$idle" || fail "the idle client's connection: $(cat idle.err)"

# ---- a peer of another user is refused by the authorisation hook ----
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	# open the way to the socket, so that only the hook stands in it
	chmod 0711 "$XDG_RUNTIME_DIR" "$XDG_RUNTIME_DIR/keymux"
	chmod 0666 "$sock"
	chmod 0755 "$KMX_TMP"
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups ssh-add -l 2>&1) &&
		fail "uid 65534 listed keys: $out"
	assert_not_contains "$out" "SHA256:"
	assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "ssh-agent: refused pid"
	assert_contains "$(cat "$KMX_TMP/keymuxd.log")" "only the user who runs this keymuxd"
	chmod 0700 "$XDG_RUNTIME_DIR" "$XDG_RUNTIME_DIR/keymux" "$KMX_TMP"
	chmod 0600 "$sock"
else
	kmx_log "not root: the other-user check needs setpriv as root"
fi

# ---- a stale socket is replaced, a live one is not taken over ----
kmx_stop_daemon
[ ! -e "$sock" ] || fail "keymuxd left its socket behind"
printf '[ssh-agent]\nenabled=true\nallow-sha1-rsa=true\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
ssh-add -l >/dev/null || fail "no agent after a restart"

# SHA-1 ssh-rsa when the configuration allows it: a signature openssl
# verifies, made with the raw rsa-pkcs1 mechanism over a SHA-1 DigestInfo
SSH_ASKPASS="$KMX_TMP/askpass-right" SSH_ASKPASS_REQUIRE=force ssh-add -X </dev/null 2>lock.err ||
	fail "ssh-add -X after a restart: $(cat lock.err)"
got=$(client sign rsa2048.pub 0 msg rsa.sig 2>sha1.err) || fail "an allowed ssh-rsa signature: $(cat sha1.err)"
assert_eq ssh-rsa "$got" "the legacy RSA signature's algorithm"
openssl dgst -sha1 -verify rsa2048.pem -signature rsa.sig msg >/dev/null ||
	fail "the ssh-rsa signature does not verify"
"$KEYMUXD" --replace >second.log 2>&1 &
second=$!
KMX_PIDS+=("$second")
for _ in $(seq 200); do [ "$(kmx_name_owner_pid)" = "$second" ] && break; sleep 0.05; done
assert_contains "$(cat second.log)" "another agent serves"
kill "$second"
wait "$second" 2>/dev/null || true
kmx_kill_daemon

# ---- the socket handed over by systemd (LISTEN_FDS), with enabled=false ----
printf '[ssh-agent]\nenabled=false\n' >"$KEYMUX_CONFIG"
rm -f "$sock"
act="$KMX_TMP/activated.sock"
/usr/bin/python3 - "$act" "$KEYMUXD" >>"$KMX_TMP/keymuxd.log" 2>&1 <<-'EOF' &
	import os, socket, sys
	s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
	s.bind(sys.argv[1])
	s.listen(16)
	os.dup2(s.fileno(), 3)
	os.set_inheritable(3, True)
	env = dict(os.environ, LISTEN_PID=str(os.getpid()), LISTEN_FDS="1",
	           LISTEN_FDNAMES="keymuxd-ssh-agent.socket")
	os.execve(sys.argv[2], [sys.argv[2], "--verbose"], env)
EOF
KMX_DAEMON_PID=$!
for _ in $(seq 200); do [ "$(kmx_name_owner_pid)" = "$KMX_DAEMON_PID" ] && break; sleep 0.05; done
out=$(SSH_AUTH_SOCK="$act" ssh-add -l) || fail "no agent on the socket systemd passed"
assert_contains "$out" "agent ed25519"
[ ! -e "$sock" ] || fail "keymuxd bound its own socket beside the one it was given"
kmx_stop_daemon
echo "ok"
