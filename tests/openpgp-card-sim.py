#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""An OpenPGP card (application version 3.4 subset) for the tests.

A TCP client of vpcd (the vsmartcard virtual reader driver that pcscd
loads): connecting is inserting the card, closing the socket is pulling it
out.  The keys and their arithmetic are python3-cryptography's (OpenSSL):
ECDSA and ECDH on P-256 and P-384, Ed25519, X25519, RSA-2048/3072/4096
(PKCS#1 v1.5 signatures of a DigestInfo, decryption).  A test fixture,
never a key store.

    openpgp-card-sim.py [--port 35963] [--serial 0000BEEF] [--keys sig=ecdsa-p256,...]
                        [--key-files dec=key.pem,...]
                        [--sig-pin-forced] [--short] [--log FILE] [--name NAME]

Transport: extended Lc/Le (historical bytes and 7F66 say so), or with
--short only short APDUs: command chaining in, 61xx and GET RESPONSE out.

Signals: SIGUSR1 pulls the card out, SIGUSR2 puts it back (the card forgets
its verified PINs either way); SIGHUP makes signatures slow (2 s), or fast
again, so a test can pull the card in the middle of one; SIGWINCH makes
the card stop answering (it takes the next command and says nothing), and
the next SIGWINCH answers that command after all.  Every APDU's
instruction and status is appended to --log as "INS P1P2 SW", with " x"
after it when the command came in extended length, so tests can count
VERIFYs and PSOs and see the transport.
"""

import argparse
import hashlib
import hmac
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

from cryptography.exceptions import InvalidKey, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils, x25519

# ---- the keys: python3-cryptography does the arithmetic ---------------------

CURVES = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}
# the DER prefix of a DigestInfo (RFC 8017 9.2) -> its hash
DIGEST_INFOS = {
    bytes.fromhex("3021300906052b0e03021a05000414"): hashes.SHA1(),
    bytes.fromhex("302d300d06096086480165030402040500041c"): hashes.SHA224(),
    bytes.fromhex("3031300d060960864801650304020105000420"): hashes.SHA256(),
    bytes.fromhex("3041300d060960864801650304020205000430"): hashes.SHA384(),
    bytes.fromhex("3051300d060960864801650304020305000440"): hashes.SHA512(),
}
# a bare ECDSA digest's length -> a hash of that size (only the size counts)
DIGEST_SIZES = {20: hashes.SHA1(), 28: hashes.SHA224(), 32: hashes.SHA256(),
                48: hashes.SHA384(), 64: hashes.SHA512()}
RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
POINT = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint


def key_public(alg, priv):
    """the public part as the card shows it: (n, e) for RSA, else the point"""
    pub = priv.public_key()
    if alg.startswith("rsa"):
        nums = pub.public_numbers()
        return (nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big"),
                nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big"))
    if alg in ("ed25519", "x25519"):
        return pub.public_bytes(*RAW)
    return pub.public_bytes(*POINT)


def key_generate(alg):
    if alg.startswith("rsa"):
        return rsa.generate_private_key(65537, int(alg[3:]))
    if alg == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "x25519":
        return x25519.X25519PrivateKey.generate()
    return ec.generate_private_key(CURVES[alg[-4:]])


def rsa_from_parts(e, p, q, bits):
    """the key import template gives e, p and q"""
    if not (e and p and q) or p == q or (p * q).bit_length() != bits:
        raise CardError(b"\x6A\x80")
    try:
        d = pow(e, -1, (p - 1) * (q - 1))
        pub = rsa.RSAPublicNumbers(e, p * q)
        return rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                     rsa.rsa_crt_iqmp(p, q), pub).private_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CardError(b"\x6A\x80")


def rsa_sign(priv, data):
    """PSO:CDS on RSA: the card pads what it is given (PKCS#1 v1.5 type 1),
    a DigestInfo or any other string (TLS 1.2's MD5+SHA1) up to the modulus
    length less 11 bytes"""
    for prefix, alg in DIGEST_INFOS.items():
        if data.startswith(prefix) and len(data) == len(prefix) + alg.digest_size:
            return priv.sign(data[len(prefix):], padding.PKCS1v15(), utils.Prehashed(alg))
    if len(data) > priv.key_size // 8 - 11:
        raise CardError(b"\x67\x00")
    # cryptography has no raw PKCS#1 signature: openssl's rsautl makes it
    # (pkeyutl refuses input longer than a hash)
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd, path = tempfile.mkstemp(prefix="card-sim-key.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        done = subprocess.run(["openssl", "rsautl", "-sign", "-inkey", path], input=data,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    finally:
        os.unlink(path)
    if done.returncode != 0 or len(done.stdout) != priv.key_size // 8:
        raise CardError(b"\x6A\x80")
    return done.stdout


def rsa_decrypt(priv, data):
    k = priv.key_size // 8
    if len(data) != k + 1 or data[0] != 0:  # the padding indicator byte, then c
        raise CardError(b"\x6A\x80")
    try:
        return priv.decrypt(data[1:], padding.PKCS1v15())
    except ValueError:
        raise CardError(b"\x6A\x80")


def ecdsa_sign(priv, digest):
    """the card signs the digest it is given; r || s, each the curve's size"""
    alg = DIGEST_SIZES.get(len(digest))
    if alg is None:
        raise CardError(b"\x67\x00")
    r, s = utils.decode_dss_signature(priv.sign(digest, ec.ECDSA(utils.Prehashed(alg))))
    size = (priv.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def ecdh(alg, priv, point):
    try:
        if alg == "x25519":
            if len(point) == 33 and point[0] == 0x40:
                point = point[1:]
            return priv.exchange(x25519.X25519PublicKey.from_public_bytes(point))
        peer = ec.EllipticCurvePublicKey.from_encoded_point(priv.curve, point)
        return priv.exchange(ec.ECDH(), peer)
    except (ValueError, InvalidKey, UnsupportedAlgorithm):
        raise CardError(b"\x6A\x80")


# ---- the card -------------------------------------------------------------------

OID_P256 = bytes.fromhex("2A8648CE3D030107")
OID_P384 = bytes.fromhex("2B81040022")
OID_ED25519 = bytes.fromhex("2B06010401DA470F01")
OID_CV25519 = bytes.fromhex("2B060104019755010501")
# algorithm attributes -> name
ALGOS = {
    b"\x13" + OID_P256: "ecdsa-p256",
    b"\x12" + OID_P256: "ecdh-p256",
    b"\x13" + OID_P384: "ecdsa-p384",
    b"\x12" + OID_P384: "ecdh-p384",
    b"\x16" + OID_ED25519: "ed25519",
    b"\x12" + OID_CV25519: "x25519",
    bytes.fromhex("010800002000"): "rsa2048",
    bytes.fromhex("010C00002000"): "rsa3072",
    bytes.fromhex("011000002000"): "rsa4096",
}
ATTRS = {v: k for k, v in ALGOS.items()}
SLOTS = {0xB6: 0, 0xB8: 1, 0xA4: 2}  # CRT tag -> slot index (sig, dec, aut)
SLOT_NAMES = ["sig", "dec", "aut"]
SW_OK = b"\x90\x00"


def tlv(tag, value):
    t = tag.to_bytes(2 if tag > 0xFF else 1, "big")
    n = len(value)
    if n < 0x80:
        ln = bytes([n])
    elif n < 0x100:
        ln = b"\x81" + bytes([n])
    else:
        ln = b"\x82" + n.to_bytes(2, "big")
    return t + ln + value


class CardError(Exception):
    def __init__(self, sw):
        super().__init__(sw.hex())
        self.sw = sw


class Card:
    def __init__(self, args):
        self.manufacturer = bytes.fromhex(args.manufacturer)
        self.serial = bytes.fromhex(args.serial)
        self.short = args.short
        self.exact_le = args.exact_le
        self.name = args.name.encode()
        self.pins = {0x81: args.pin.encode(), 0x82: args.pin.encode(), 0x83: args.admin_pin.encode()}
        self.retries = {1: 3, 3: 3}  # PW1, PW3
        self.sig_pin_forced = args.sig_pin_forced
        self.sig_count = 0
        self.attrs = [ATTRS["ecdsa-p256"], ATTRS["x25519"], ATTRS["ed25519"]]
        self.keys = [None, None, None]  # (algo name, private, public point bytes)
        self.fprs = [bytes(20)] * 3
        self.dates = [bytes(4)] * 3
        self.garbage = args.garbage
        self.hist = bytes.fromhex("0073000080059000" if self.short else "00730000E0059000")
        files = dict(spec.split("=", 1) for spec in filter(None, (args.key_files or "").split(",")))
        for spec in filter(None, args.keys.split(",")):
            slot, alg = spec.split("=")
            i = SLOT_NAMES.index(slot)
            self.attrs[i] = ATTRS[alg]
            if slot in files:
                # a key made beforehand (RSA-4096 takes seconds to generate)
                with open(files[slot], "rb") as f:
                    priv = serialization.load_pem_private_key(f.read(), None)
                self.keys[i] = (alg, priv, key_public(alg, priv))
            else:
                self.generate(i)
            # a made-up fingerprint: the slot is in use (a real card got
            # one from whoever generated the key)
            self.fprs[i] = hashlib.sha1(repr(self.keys[i][2]).encode()).digest()
            self.dates[i] = struct.pack(">I", int(time.time()))
        self.reset()

    def reset(self):
        self.last_extended = False
        self.verified = set()
        self.chain = b""
        self.pending = b""

    def atr(self):
        body = bytes([0x80 | len(self.hist), 0x80, 0x01]) + self.hist
        tck = 0
        for b in body:
            tck ^= b
        return b"\x3B" + body + bytes([tck])

    def aid(self):
        return bytes.fromhex("D276000124010304") + self.manufacturer + self.serial + b"\x00\x00"

    def pw_status(self):
        return bytes([0 if self.sig_pin_forced else 1, 0x7F, 0x7F, 0x7F,
                      self.retries[1], 0, self.retries[3]])

    def app_data(self):
        disc = (tlv(0xC0, bytes.fromhex("3400000008000000FF00"))
                + tlv(0xC1, self.attrs[0]) + tlv(0xC2, self.attrs[1]) + tlv(0xC3, self.attrs[2])
                + tlv(0xC4, self.pw_status())
                + tlv(0xC5, b"".join(self.fprs)) + tlv(0xC6, bytes(60))
                + tlv(0xCD, b"".join(self.dates))
                + tlv(0xDE, bytes([1, 1 if self.keys[0] else 0, 2, 1 if self.keys[1] else 0,
                                   3, 1 if self.keys[2] else 0])))
        return (tlv(0x4F, self.aid()) + tlv(0x5F52, self.hist)
                + tlv(0x7F66, bytes.fromhex("0202080002020800")) + tlv(0x73, disc))

    def generate(self, i):
        alg = ALGOS.get(self.attrs[i])
        if alg is None:
            raise CardError(b"\x6A\x80")
        priv = key_generate(alg)
        self.keys[i] = (alg, priv, key_public(alg, priv))

    def import_key(self, data):
        """PUT DATA 3FFF: 4D { CRT, 7F48 { tag len... }, 5F48 { values } }"""
        body = parse_path(data, [0x4D])
        if body is None or len(body) < 2 or body[0] not in SLOTS or body[1] != 0:
            raise CardError(b"\x6A\x80")
        i = SLOTS[body[0]]
        header, values = parse_path(body, [0x7F48]), parse_path(body, [0x5F48])
        if header is None or values is None:
            raise CardError(b"\x6A\x80")
        parts, pos, off = {}, 0, 0
        while pos < len(header):
            tag = header[pos]
            if pos + 1 >= len(header):
                raise CardError(b"\x6A\x80")
            n = header[pos + 1]
            pos += 2
            if n in (0x81, 0x82):
                k = n - 0x80
                n = int.from_bytes(header[pos:pos + k], "big")
                pos += k
            if off + n > len(values):
                raise CardError(b"\x6A\x80")
            parts[tag] = values[off:off + n]
            off += n
        alg = ALGOS.get(self.attrs[i])
        if alg is None:
            raise CardError(b"\x6A\x80")
        try:
            if alg.startswith("rsa"):
                e, p, q = (int.from_bytes(parts.get(t, b""), "big") for t in (0x91, 0x92, 0x93))
                priv = rsa_from_parts(e, p, q, int(alg[3:]))
            elif alg == "ed25519":
                priv = ed25519.Ed25519PrivateKey.from_private_bytes(parts.get(0x92, b""))
            elif alg == "x25519":
                priv = x25519.X25519PrivateKey.from_private_bytes(parts.get(0x92, b""))
            else:
                k = int.from_bytes(parts.get(0x92, b""), "big")
                priv = ec.derive_private_key(k, CURVES[alg[-4:]])
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise CardError(b"\x6A\x80")
        self.keys[i] = (alg, priv, key_public(alg, priv))
        self.fprs[i] = bytes(20)
        return b""

    def public(self, i):
        if self.keys[i] is None:
            raise CardError(b"\x6A\x88")
        if self.keys[i][0].startswith("rsa"):
            n, e = self.keys[i][2]
            return tlv(0x7F49, tlv(0x81, n) + tlv(0x82, e))
        return tlv(0x7F49, tlv(0x86, self.keys[i][2]))

    def need(self, ref):
        if ref not in self.verified:
            raise CardError(b"\x69\x82")

    def sign(self, i, data):
        key = self.keys[i]
        if key is None:
            raise CardError(b"\x6A\x88")
        alg, priv, _ = key
        if alg.startswith("ecdsa"):
            return ecdsa_sign(priv, data)
        if alg == "ed25519":
            return priv.sign(data)
        if alg.startswith("rsa"):
            return rsa_sign(priv, data)
        raise CardError(b"\x69\x85")

    def decipher(self, data):
        key = self.keys[1]
        if key is None:
            raise CardError(b"\x6A\x88")
        alg, priv, _ = key
        if alg.startswith("rsa"):
            return rsa_decrypt(priv, data)
        if alg not in ("x25519", "ecdh-p256", "ecdh-p384"):
            raise CardError(b"\x69\x85")
        # A6 { 7F49 { 86 point } }
        point = parse_path(data, [0xA6, 0x7F49, 0x86])
        if point is None:
            raise CardError(b"\x6A\x80")
        return ecdh(alg, priv, point)

    def verify(self, p2, data):
        if p2 not in (0x81, 0x82, 0x83):
            raise CardError(b"\x6A\x86")
        pw = 3 if p2 == 0x83 else 1
        if not data:
            if p2 in self.verified:
                return b""
            raise CardError(bytes([0x63, 0xC0 | self.retries[pw]]))
        if self.retries[pw] == 0:
            raise CardError(b"\x69\x83")
        if not hmac.compare_digest(data, self.pins[p2]):
            self.retries[pw] -= 1
            self.verified.discard(p2)
            if self.retries[pw] == 0:
                raise CardError(b"\x69\x83")
            raise CardError(bytes([0x63, 0xC0 | self.retries[pw]]))
        self.retries[pw] = 3
        self.verified.add(p2)
        return b""

    def get_data(self, tag):
        if tag == 0x6E:
            data = tlv(0x6E, self.app_data())
            if self.garbage == "appdata":
                # the fingerprints' length runs past the end
                i = data.index(b"\xC5\x3C")
                return data[:i] + b"\xC5\x82\x7F\xFF" + data[i + 2:i + 12]
            return data
        if tag == 0x4F:
            return self.aid()
        if tag == 0x5F52:
            return self.hist
        if tag == 0xC4:
            return self.pw_status()
        if tag == 0x65:
            return tlv(0x65, tlv(0x5B, self.name) + tlv(0x5F2D, b"en") + tlv(0x5F35, b"9"))
        if tag == 0x5B:
            return self.name
        if tag == 0x7A:
            return tlv(0x7A, tlv(0x93, self.sig_count.to_bytes(3, "big")))
        if tag in (0x5E, 0x5F50, 0x7F21):
            return b""
        raise CardError(b"\x6A\x88")

    def put_data(self, tag, data):
        self.need(0x83)
        if tag in (0xC1, 0xC2, 0xC3):
            if data not in ALGOS:
                raise CardError(b"\x6A\x80")
            self.attrs[tag - 0xC1] = data
        elif tag in (0xC7, 0xC8, 0xC9):
            if len(data) != 20:
                raise CardError(b"\x67\x00")
            self.fprs[tag - 0xC7] = data
        elif tag in (0xCE, 0xCF, 0xD0):
            if len(data) != 4:
                raise CardError(b"\x67\x00")
            self.dates[tag - 0xCE] = data
        elif tag == 0x5B:
            self.name = data
        elif tag in (0xC4,):
            if len(data) < 1:
                raise CardError(b"\x67\x00")
            self.sig_pin_forced = data[0] == 0
        else:
            raise CardError(b"\x6A\x88")
        return b""

    def command(self, cla, ins, p1, p2, data):
        if ins == 0xA4:  # SELECT
            if p1 == 4 and data.startswith(bytes.fromhex("D27600012401")):
                return b""
            raise CardError(b"\x6A\x82")
        if ins == 0xCA:
            return self.get_data(p1 << 8 | p2)
        if ins == 0x20:
            if p1 == 0xFF:
                self.verified.discard(p2)
                return b""
            return self.verify(p2, data)
        if ins == 0x47:
            if not data or data[0] not in SLOTS:
                raise CardError(b"\x6A\x80")
            i = SLOTS[data[0]]
            if p1 == 0x81:
                return self.public(i)
            if p1 == 0x80:
                self.need(0x83)
                self.generate(i)
                self.fprs[i] = bytes(20)
                if i == 0:
                    self.sig_count = 0
                return self.public(i)
            raise CardError(b"\x6A\x86")
        if ins == 0x2A and p1 == 0x9E and p2 == 0x9A:
            self.need(0x81)
            out = self.sign(0, data)
            if self.garbage == "sign":
                out = out[:7]
            self.sig_count += 1
            if self.sig_pin_forced:
                self.verified.discard(0x81)
            return out
        if ins == 0x2A and p1 == 0x80 and p2 == 0x86:
            self.need(0x82)
            return self.decipher(data)
        if ins == 0x88:
            self.need(0x82)
            return self.sign(2, data)
        if ins == 0xDA:
            return self.put_data(p1 << 8 | p2, data)
        if ins == 0xDB and p1 == 0x3F and p2 == 0xFF:
            self.need(0x83)
            return self.import_key(data)
        if ins == 0x24 and p2 in (0x81, 0x83):  # CHANGE REFERENCE DATA: old || new
            pw = 3 if p2 == 0x83 else 1
            old = self.pins[p2]
            if self.retries[pw] == 0:
                raise CardError(b"\x69\x83")
            if not data.startswith(old) or len(data) == len(old):
                self.retries[pw] -= 1
                raise CardError(bytes([0x63, 0xC0 | self.retries[pw]]))
            new = data[len(old):]
            if pw == 1:
                self.pins[0x81] = self.pins[0x82] = new
            else:
                self.pins[0x83] = new
            self.retries[pw] = 3
            return b""
        raise CardError(b"\x6D\x00")

    def apdu(self, apdu):
        """one command APDU -> response APDU; parses like a card: anything malformed is 67 00"""
        if len(apdu) < 4:
            return b"\x67\x00"
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        self.last_extended = False
        data, le = b"", None
        if len(body) == 0:
            pass
        elif len(body) == 1:
            le = body[0] or 256
        elif body[0] == 0 and len(body) >= 3 and not self.short:
            self.last_extended = True
            lc = body[1] << 8 | body[2]
            if len(body) == 3:
                le = lc or 65536
            else:
                data = body[3:3 + lc]
                if len(data) != lc or len(body) not in (3 + lc, 5 + lc):
                    return b"\x67\x00"
                if len(body) == 5 + lc:
                    le = (body[-2] << 8 | body[-1]) or 65536
        else:
            lc = body[0]
            data = body[1:1 + lc]
            if lc == 0 or len(data) != lc or len(body) not in (1 + lc, 2 + lc):
                return b"\x67\x00"
            if len(body) == 2 + lc:
                le = body[-1] or 256
        if ins == 0xC0:  # GET RESPONSE
            out, self.pending = self.pending, b""
            return self.respond(out, le)
        self.pending = b""
        if cla & 0x10:  # command chaining
            self.chain += data
            if len(self.chain) > 4096:
                self.chain = b""
                return b"\x67\x00"
            return SW_OK
        data, self.chain = self.chain + data, b""
        try:
            out = self.command(cla & ~0x10, ins, p1, p2, data)
        except CardError as e:
            return e.sw
        # a card that wants the exact length (T=0 style): "6C xx, ask again"
        if self.exact_le and ins == 0xCA and le is not None and 0 < len(out) < 256 and le != len(out):
            return bytes([0x6C, len(out)])
        return self.respond(out, le)

    def respond(self, out, le):
        limit = 256 if (self.short or le is None or le <= 256) else 65536
        if len(out) > limit:
            self.pending = out[limit:]
            n = len(self.pending)
            return out[:limit] + bytes([0x61, 0 if n > 255 else n])
        return out + SW_OK


# ---- vpcd ------------------------------------------------------------------

class Sim:
    def __init__(self, args):
        self.args = args
        self.card = Card(args)
        self.sock = None
        self.want_inserted = True
        self.slow = False
        self.mute = False
        self.held = None  # the command a mute card did not answer
        self.log = open(args.log, "a", buffering=1) if args.log else None
        signal.signal(signal.SIGUSR1, lambda *_: self.set_inserted(False))
        signal.signal(signal.SIGUSR2, lambda *_: self.set_inserted(True))
        signal.signal(signal.SIGHUP, lambda *_: self.toggle_slow())
        signal.signal(signal.SIGWINCH, lambda *_: self.toggle_mute())
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def toggle_slow(self):
        self.slow = not self.slow

    def toggle_mute(self):
        self.mute = not self.mute

    def set_inserted(self, on):
        self.want_inserted = on

    def note(self, text):
        if self.log:
            self.log.write(text + "\n")

    def connect(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.args.port), timeout=1)
        except OSError:
            return
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_QUICKACK"):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        s.settimeout(None)
        self.sock = s
        self.card.reset()
        self.note("inserted")

    def disconnect(self, why):
        if self.sock:
            self.sock.close()
            self.sock = None
            self.held = None
            self.card.reset()
            self.note(why)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("vpcd closed")
            buf += chunk
        return buf

    def send(self, payload):
        self.sock.sendall(struct.pack(">H", len(payload)) + payload)
        if hasattr(socket, "TCP_QUICKACK"):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def serve_one(self):
        n = struct.unpack(">H", self.recv_exact(2))[0]
        msg = self.recv_exact(n) if n else b""
        if n == 1:
            if msg[0] in (0, 1, 2):  # power off, on, reset: PINs forgotten
                self.card.reset()
                self.note("power %d" % msg[0])
            elif msg[0] == 4:
                self.send(self.card.atr())
            return
        if self.slow and len(msg) > 1 and msg[1] in (0x2A, 0x88):
            for _ in range(40):
                time.sleep(0.05)
                if not self.want_inserted:
                    raise ConnectionError("pulled in the middle of an operation")
        if self.mute:
            self.held = msg
            self.note("%02X %02X%02X held" % tuple((msg + bytes(4))[1:4]))
            return
        self.answer(msg)

    def answer(self, msg):
        resp = self.card.apdu(msg)
        self.note("%02X %02X%02X %s%s" % (msg[1] if len(msg) > 1 else 0,
                                          msg[2] if len(msg) > 2 else 0,
                                          msg[3] if len(msg) > 3 else 0, resp[-2:].hex().upper(),
                                          " x" if self.card.last_extended else ""))
        self.send(resp)

    def run(self):
        while True:
            if not self.want_inserted:
                self.disconnect("pulled")
            elif self.sock is None:
                self.connect()
                if self.sock is None:
                    time.sleep(0.05)
                    continue
            if self.sock is None:
                time.sleep(0.05)
                continue
            if self.held is not None and not self.mute:
                held, self.held = self.held, None
                try:
                    self.answer(held)
                except (ConnectionError, OSError):
                    self.disconnect("vpcd gone")
                continue
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r or self.held is not None:
                continue
            try:
                self.serve_one()
            except (ConnectionError, OSError):
                self.disconnect("vpcd gone")
                time.sleep(0.1)


def parse_path(data, path):
    """the value at a path of nested BER-TLV tags, or None"""
    for want in path:
        found = None
        i = 0
        while i < len(data):
            tag = data[i]
            i += 1
            if tag & 0x1F == 0x1F:
                if i >= len(data):
                    return None
                tag = tag << 8 | data[i]
                i += 1
            if i >= len(data):
                return None
            n = data[i]
            i += 1
            if n == 0x81 or n == 0x82:
                k = n - 0x80
                if i + k > len(data):
                    return None
                n = int.from_bytes(data[i:i + k], "big")
                i += k
            elif n > 0x80:
                return None
            if i + n > len(data):
                return None
            if tag == want:
                found = data[i:i + n]
                break
            i += n
        if found is None:
            return None
        data = found
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=35963)
    ap.add_argument("--manufacturer", default="FFFE")
    ap.add_argument("--serial", default="0000BEEF")
    ap.add_argument("--pin", default="123456")
    ap.add_argument("--admin-pin", default="12345678")
    ap.add_argument("--name", default="")
    ap.add_argument("--keys", default="", help="slot=algorithm,... (sig|dec|aut = "
                    "ecdsa-p256|ecdh-p256|ecdsa-p384|ecdh-p384|ed25519|x25519|rsa2048|rsa3072|rsa4096)")
    ap.add_argument("--key-files", help="slot=PEM,...: the key of a slot in --keys from a file "
                    "(unencrypted PKCS#8) instead of generated")
    ap.add_argument("--sig-pin-forced", action="store_true", help="PW1 is valid for one signature")
    ap.add_argument("--short", action="store_true", help="no extended length: chaining and 61xx")
    ap.add_argument("--exact-le", action="store_true",
                    help="GET DATA with another Le than the answer's length gets 6Cxx")
    ap.add_argument("--garbage", choices=["appdata", "sign"],
                    help="answer nonsense: a malformed application data object, or signatures of 7 bytes")
    ap.add_argument("--log")
    ap.add_argument("--pidfile")
    args = ap.parse_args()
    if len(args.manufacturer) != 4 or len(args.serial) != 8:
        ap.error("--manufacturer is 4 hex digits, --serial 8")
    sim = Sim(args)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    sim.run()


if __name__ == "__main__":
    main()
