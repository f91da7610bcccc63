#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Make the seed corpus of ssh_agent_message_fuzzer: the messages the
# OpenSSH tools send an agent, captured by a stand-in agent (ssh-add of
# every key type keymux takes, with and without constraints, -l, -L, -d,
# -D, -x, -X; ssh-keygen -Y sign with each key), session-bind messages
# signed with openssl, and broken-* variants (cut short, lengths inflated).
#   tests/fuzz/make-ssh-agent-corpus.sh [OUT_DIR]
set -euo pipefail
out=$(realpath -m "${1:-$(dirname "$0")/corpus/ssh_agent_message}")
tmp=$(mktemp -d)
trap 'kill "${agent:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir -p "$out"
cd "$tmp"

for k in ed25519:256 ecdsa:256 ecdsa:384 rsa:2048; do
	ssh-keygen -q -t "${k%%:*}" -b "${k#*:}" -N '' -C "seed ${k/:/-}" -f "key-${k/:/-}"
done
# the stand-in agent: records each message in msg-N, answers identities
# with the keys above, everything else with success (a signature: failure)
/usr/bin/python3 - "$tmp/sock" key-*.pub >agent.log 2>&1 <<-'PY' &
	import base64, os, socket, struct, sys
	blobs = [base64.b64decode(open(f).read().split()[1]) for f in sys.argv[2:]]
	s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
	s.bind(sys.argv[1])
	s.listen(8)
	n = 0
	def recv(c, k):
	    b = b""
	    while len(b) < k:
	        d = c.recv(k - len(b))
	        if not d:
	            raise EOFError
	        b += d
	    return b
	def string(b):
	    return struct.pack(">I", len(b)) + b
	while True:
	    c, _ = s.accept()
	    try:
	        while True:
	            (l,) = struct.unpack(">I", recv(c, 4))
	            m = recv(c, l)
	            open("msg-%03d" % n, "wb").write(m)
	            n += 1
	            if m[0] == 11:
	                r = bytes([12]) + struct.pack(">I", len(blobs))
	                r += b"".join(string(b) + string(b"seed") for b in blobs)
	            elif m[0] == 13:
	                r = bytes([5])
	            else:
	                r = bytes([6])
	            c.sendall(string(r))
	    except EOFError:
	        c.close()
PY
agent=$!
for _ in $(seq 100); do [ -S sock ] && break; sleep 0.05; done
export SSH_AUTH_SOCK="$tmp/sock"
printf '#!/bin/sh\necho "seed pass phrase"\n' >askpass
chmod +x askpass
export SSH_ASKPASS="$tmp/askpass" SSH_ASKPASS_REQUIRE=force
name() { # the last message captured (or the first: name NAME first) becomes OUT/$1
	local last
	last=$(ls msg-* | if [ "${2:-}" = first ]; then head -n 1; else tail -n 1; fi)
	mv "$last" "$out/$1"
	rm -f msg-*
}
ssh-add -l >/dev/null && name identities
printf 'signed\n' >msg
for k in key-*; do
	[ "${k%.pub}" = "$k" ] || continue
	t=${k#key-}
	ssh-add -q "$k" 2>/dev/null && name "add-$t"
	ssh-add -q -c -t 60 "$k" 2>/dev/null && name "add-constrained-$t"
	ssh-keygen -Y sign -f "$k.pub" -n file msg >/dev/null 2>&1 || true
	name "sign-$t"
done
ssh-add -q -d key-ed25519-256.pub 2>/dev/null && name remove-ed25519
ssh-add -D >/dev/null 2>&1 && name remove-all first
ssh-add -x </dev/null >/dev/null 2>&1 && name lock
ssh-add -X </dev/null >/dev/null 2>&1 && name unlock
kill "$agent"

# session-bind@openssh.com: an Ed25519 host key signs the session id, as
# sshd's key exchange does; a bind by OpenSSH proper comes from the test's
# real logins (test-ssh-agent.sh)
/usr/bin/python3 - "$out" <<-'PY'
	import os, struct, subprocess, sys
	out = sys.argv[1]
	def string(b):
	    return struct.pack(">I", len(b)) + b
	subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", "host.pem"], check=True)
	der = subprocess.run(["openssl", "pkey", "-in", "host.pem", "-pubout", "-outform", "DER"],
	                     check=True, capture_output=True).stdout
	blob = string(b"ssh-ed25519") + string(der[-32:])
	sid = os.urandom(32)
	open("sid", "wb").write(sid)
	sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", "host.pem", "-in", "sid"],
	                     check=True, capture_output=True).stdout
	sigblob = string(b"ssh-ed25519") + string(sig)
	for fwd in (0, 1):
	    m = bytes([27]) + string(b"session-bind@openssh.com") + string(blob) + string(sid) + string(sigblob) + bytes([fwd])
	    open(os.path.join(out, "session-bind-ed25519" + ("-forwarded" if fwd else "")), "wb").write(m)
	open(os.path.join(out, "extension-unknown"), "wb").write(bytes([27]) + string(b"query") )
	# broken: each kind cut short, and a length inflated
	for name in sorted(os.listdir(out)):
	    if name.startswith("broken-") or name in ("identities", "remove-all"):
	        continue
	    d = open(os.path.join(out, name), "rb").read()
	    open(os.path.join(out, "broken-truncated-" + name), "wb").write(d[:len(d) // 2])
	    open(os.path.join(out, "broken-length-" + name), "wb").write(d[:1] + b"\xff\xff\xff\xf0" + d[5:])
	open(os.path.join(out, "broken-identities-trailing"), "wb").write(bytes([11, 0]))
	PY
ls "$out" | wc -l
