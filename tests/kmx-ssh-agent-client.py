#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""keymux test fixture: an ssh-agent client that sends what ssh-add never would.

  kmx-ssh-agent-client.py SOCKET CASE [ARGS]

Cases (each exits 0 when the agent behaved, 1 with a message when not):
  closes HEX          send the bytes, expect the agent to close the connection
  oversized           a length of 256 KiB + 1: closed before the body
  empty               a message of length 0: closed
  partial             half a message, then hang up (mid-request)
  hangup-sign PUBFILE GOFILE
                      a whole SIGN_REQUEST, then wait for GOFILE to exist and
                      hang up before the reply
  halfclose PUBFILE   a SIGN_REQUEST, then shut down the writing side: the
                      reply still comes, then the agent closes
  many N              N connections at once; print how many the agent kept
                      open (it answers REQUEST_IDENTITIES on them)
  idle FILE           connect, say nothing, print "idle", wait for FILE to
                      exist, then expect an answer to REQUEST_IDENTITIES
  failure HEX         send one message, expect SSH_AGENT_FAILURE, then a
                      REQUEST_IDENTITIES on the same connection still works
  success HEX         send one message, expect SSH_AGENT_SUCCESS
  pipeline            two REQUEST_IDENTITIES in one write: two answers
  sign PUBFILE FLAGS DATAFILE SIGFILE
                      SIGN_REQUEST; print the signature's algorithm name and
                      write the raw signature to SIGFILE
  bind HOSTPUB PEM EXPECT [tamper]
                      session-bind@openssh.com to the host key in HOSTPUB,
                      a random session id signed by the Ed25519 key in PEM
                      (openssl); HOSTPUB - for PEM's own key; with tamper, a
                      byte of the id changed after signing; EXPECT is
                      success or failure
  concurrent PUBFILE N ROUNDS
                      N clients at once, ROUNDS signatures each
Only the standard library: this runs with Debian's /usr/bin/python3.
"""
import base64
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

FAILURE, SUCCESS = 5, 6
IDENTITIES, IDENTITIES_ANSWER = 11, 12
SIGN, SIGN_RESPONSE = 13, 14
EXTENSION = 27
# a guard against a hang, not a measure of speed
TIMEOUT = 120


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def connect(path):
    # a full listen backlog is EAGAIN on a Unix socket with a timeout: the
    # agent accepts them on its next turn of the main loop
    for _ in range(2000):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            time.sleep(0.01)
    die("cannot connect: the listen backlog stays full")


def string(b):
    return struct.pack(">I", len(b)) + b


def frame(body):
    return struct.pack(">I", len(body)) + body


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_msg(s):
    head = recv_exact(s, 4)
    if head is None:
        return None
    (n,) = struct.unpack(">I", head)
    return recv_exact(s, n)


def expect_closed(s, what):
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return
            # a reply to something before is fine; the connection must end
    except ConnectionResetError:
        return
    except socket.timeout:
        die(what + ": the agent did not close the connection")


def read_string(b, off):
    (n,) = struct.unpack(">I", b[off:off + 4])
    return b[off + 4:off + 4 + n], off + 4 + n


def blob_of(pubfile):
    with open(pubfile) as f:
        return base64.b64decode(f.read().split()[1])


def sign(path, blob, data, flags):
    s = connect(path)
    s.sendall(frame(bytes([SIGN]) + string(blob) + string(data) + struct.pack(">I", flags)))
    reply = recv_msg(s)
    s.close()
    return reply


def main():
    path, case, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if case == "closes":
        s = connect(path)
        s.sendall(bytes.fromhex(args[0]))
        expect_closed(s, "malformed message " + args[0])
    elif case == "oversized":
        s = connect(path)
        s.sendall(struct.pack(">I", 256 * 1024 + 1) + bytes([SIGN]))
        expect_closed(s, "oversized message")
    elif case == "empty":
        s = connect(path)
        s.sendall(struct.pack(">I", 0))
        expect_closed(s, "empty message")
    elif case == "partial":
        s = connect(path)
        s.sendall(struct.pack(">I", 100) + bytes([SIGN]) + b"\0\0")
        s.close()
    elif case == "hangup-sign":
        s = connect(path)
        blob = blob_of(args[0])
        s.sendall(frame(bytes([SIGN]) + string(blob) + string(b"data") + struct.pack(">I", 0)))
        while not os.path.exists(args[1]):
            time.sleep(0.05)
        s.close()
    elif case == "halfclose":
        s = connect(path)
        blob = blob_of(args[0])
        s.sendall(frame(bytes([SIGN]) + string(blob) + string(b"data") + struct.pack(">I", 0)))
        s.shutdown(socket.SHUT_WR)
        reply = recv_msg(s)
        if reply is None or reply[0] != SIGN_RESPONSE:
            die("half-closed: expected SIGN_RESPONSE, got %r" % (reply,))
        expect_closed(s, "half-closed connection")
    elif case == "many":
        conns = [connect(path) for _ in range(int(args[0]))]
        kept = 0
        for s in conns:
            try:
                s.sendall(frame(bytes([IDENTITIES])))
                reply = recv_msg(s)
            except OSError:
                reply = None
            if reply is not None and reply[0] == IDENTITIES_ANSWER:
                kept += 1
        print(kept)
    elif case == "idle":
        s = connect(path)
        print("idle", flush=True)
        while not os.path.exists(args[0]):
            time.sleep(0.05)
        s.sendall(frame(bytes([IDENTITIES])))
        reply = recv_msg(s)
        if reply is None or reply[0] != IDENTITIES_ANSWER:
            die("the idle connection: %r" % (reply,))
    elif case in ("failure", "success"):
        s = connect(path)
        s.sendall(frame(bytes.fromhex(args[0])))
        reply = recv_msg(s)
        want = FAILURE if case == "failure" else SUCCESS
        if reply != bytes([want]):
            die("%s: expected [%d], got %r" % (args[0], want, reply))
        s.sendall(frame(bytes([IDENTITIES])))
        reply = recv_msg(s)
        if reply is None or reply[0] != IDENTITIES_ANSWER:
            die("the connection is not usable after the reply: %r" % (reply,))
    elif case == "bind":
        sid = os.urandom(32)
        # Ed25519 signs in one shot: openssl reads the data from a file
        with tempfile.NamedTemporaryFile() as f:
            f.write(sid)
            f.flush()
            sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", args[1], "-in", f.name],
                                 check=True, capture_output=True).stdout
        if len(args) > 3 and args[3] == "tamper":
            sid = bytes([sid[0] ^ 1]) + sid[1:]
        if args[0] == "-":
            der = subprocess.run(["openssl", "pkey", "-in", args[1], "-pubout", "-outform", "DER"],
                                 check=True, capture_output=True).stdout
            host = string(b"ssh-ed25519") + string(der[-32:])
        else:
            host = blob_of(args[0])
        body = (bytes([EXTENSION]) + string(b"session-bind@openssh.com") + string(host)
                + string(sid) + string(string(b"ssh-ed25519") + string(sig)) + b"\0")
        s = connect(path)
        s.sendall(frame(body))
        reply = recv_msg(s)
        want = FAILURE if args[2] == "failure" else SUCCESS
        if reply != bytes([want]):
            die("bind: expected [%d], got %r" % (want, reply))
    elif case == "pipeline":
        s = connect(path)
        s.sendall(frame(bytes([IDENTITIES])) * 2)
        for i in range(2):
            reply = recv_msg(s)
            if reply is None or reply[0] != IDENTITIES_ANSWER:
                die("pipelined request %d: %r" % (i, reply))
    elif case == "sign":
        with open(args[2], "rb") as f:
            data = f.read()
        reply = sign(path, blob_of(args[0]), data, int(args[1]))
        if reply is None or reply[0] != SIGN_RESPONSE:
            die("sign: expected SIGN_RESPONSE, got %r" % (reply,))
        sig, _ = read_string(reply, 1)
        name, off = read_string(sig, 0)
        raw, _ = read_string(sig, off)
        with open(args[3], "wb") as f:
            f.write(raw)
        print(name.decode())
    elif case == "concurrent":
        blob = blob_of(args[0])
        n, rounds = int(args[1]), int(args[2])
        errors = []
        start = threading.Barrier(n)

        def client(i):
            try:
                s = connect(path)
                start.wait()
                for r in range(rounds):
                    data = b"client %d round %d" % (i, r)
                    s.sendall(frame(bytes([SIGN]) + string(blob) + string(data) + struct.pack(">I", 0)))
                    reply = recv_msg(s)
                    if reply is None or reply[0] != SIGN_RESPONSE:
                        errors.append("client %d round %d: %r" % (i, r, reply))
                        return
                s.close()
            except Exception as e:  # noqa: BLE001 - any failure is the test's
                errors.append("client %d: %s" % (i, e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            die("; ".join(errors[:5]))
        print("%d signatures" % (n * rounds))
    else:
        die("unknown case " + case)


main()
