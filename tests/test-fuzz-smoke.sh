#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Feed the soft-key import parser hundreds of broken key files: truncated at
# every length class, bytes flipped, lengths inflated.  Under the sanitizer
# build this is a memory-safety check; a crash fails the test.
set -euo pipefail
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:abort_on_error=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:halt_on_error=1:abort_on_error=1"
: "${KMX_FUZZER:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

openssl genpkey -algorithm ED25519 -out ed.pem 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null
openssl pkey -in ec.pem -outform DER -out ec.der
openssl ec -in ec.pem -out sec1.pem 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa.pem 2>/dev/null
openssl rsa -in rsa.pem -traditional -out pkcs1.pem 2>/dev/null
openssl pkcs8 -topk8 -in ec.pem -passout pass:fuzz -outform DER -out enc.der 2>/dev/null
openssl req -new -x509 -key ec.pem -subj /CN=x -days 1 -out cert.pem 2>/dev/null
openssl pkcs12 -export -inkey ec.pem -in cert.pem -passout pass:fuzz -out p12.p12 2>/dev/null
ssh-keygen -q -t ed25519 -N '' -f ssh_ed -C fuzz
ssh-keygen -q -t ecdsa -N '' -f ssh_ec -C fuzz
ssh-keygen -q -t ed25519 -N fuzz -f ssh_enc -C fuzz

/usr/bin/python3 - <<'PY'
import os, random
rnd = random.Random(20261122)
seeds = ["ed.pem", "ec.pem", "ec.der", "sec1.pem", "pkcs1.pem", "enc.der", "p12.p12", "ssh_ed", "ssh_ec",
         "ssh_enc"]
os.mkdir("cases")
n = 0
def put(data):
    global n
    # first byte: low bit picks the passphrase ("" or the fixed one)
    open(f"cases/{n:05d}", "wb").write(bytes([n & 1]) + data)
    n += 1
for name in seeds:
    d = open(name, "rb").read()
    put(d)
    for cut in sorted({1, 2, 7, 16, 31, 64, len(d) // 3, len(d) // 2, len(d) - 1}):
        if 0 < cut < len(d):
            put(d[:cut])
    for _ in range(25):
        b = bytearray(d)
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(len(b))
            b[i] = rnd.randrange(256)
        put(bytes(b))
    if name.startswith("ssh"):
        # the OpenSSH format is base64 of length-prefixed fields: inflate them
        import base64
        lines = d.decode().splitlines()
        raw = bytearray(base64.b64decode("".join(lines[1:-1])))
        for i in range(15, min(len(raw) - 4, 200), 4):
            r = bytearray(raw)
            r[i:i + 4] = b"\xff\xff\xff\xf0"
            body = base64.b64encode(bytes(r)).decode()
            put((lines[0] + "\n" + body + "\n" + lines[-1] + "\n").encode())
print(n, "cases")
PY

crashes=0
for f in cases/*; do
	status=0
	"$KMX_FUZZER" <"$f" >/dev/null 2>"$f.err" || status=$?
	if [ $status -ge 2 ]; then
		echo "crash ($status) on $(basename "$f"):" >&2
		head -20 "$f.err" >&2
		crashes=$((crashes + 1))
	fi
done
[ $crashes = 0 ] || { echo "FAIL: $crashes inputs crashed the parser" >&2; exit 1; }
echo "PASS: test-fuzz-smoke ($(ls cases | grep -vc err) inputs)"
