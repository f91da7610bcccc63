#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""An OpenPGP card (application version 3.4 subset) for the tests.

A TCP client of vpcd (the vsmartcard virtual reader driver that pcscd
loads): connecting is inserting the card, closing the socket is pulling it
out.  Standard library only.  Crypto in plain Python: ECDSA and ECDH on
P-256, Ed25519, X25519, RSA-2048 (PKCS#1 v1.5).  Slow and not constant-time: a test fixture, never
a key store.

    openpgp-card-sim.py [--port 35963] [--serial 0000BEEF] [--keys sig=ecdsa-p256,...]
                        [--sig-pin-forced] [--short] [--log FILE] [--name NAME]

Signals: SIGUSR1 pulls the card out, SIGUSR2 puts it back (the card forgets
its verified PINs either way); SIGHUP makes signatures slow (2 s), or fast
again, so a test can pull the card in the middle of one.  Every APDU's instruction and status is
appended to --log as "INS P1P2 SW", so tests can count VERIFYs and PSOs.
"""

import argparse
import hashlib
import os
import secrets
import select
import signal
import socket
import struct
import sys
import time

# ---- P-256 ------------------------------------------------------------------

P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
          0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


def p256_on_curve(pt):
    x, y = pt
    p = P256_P
    return 0 <= x < p and 0 <= y < p and (y * y - (x * x * x - 3 * x + P256_B)) % p == 0


def p256_add(a, b):
    """affine addition; None is the point at infinity"""
    p = P256_P
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0]:
        if (a[1] + b[1]) % p == 0:
            return None
        lam = (3 * a[0] * a[0] - 3) * pow(2 * a[1], -1, p) % p
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, p) % p
    x = (lam * lam - a[0] - b[0]) % p
    return (x, (lam * (a[0] - x) - a[1]) % p)


def p256_mul(k, pt):
    acc = None
    while k:
        if k & 1:
            acc = p256_add(acc, pt)
        pt = p256_add(pt, pt)
        k >>= 1
    return acc


def p256_point_bytes(pt):
    return b"\x04" + pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")


def p256_parse_point(data):
    if len(data) != 65 or data[0] != 4:
        return None
    pt = (int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big"))
    return pt if p256_on_curve(pt) else None


def p256_generate():
    d = 1 + secrets.randbelow(P256_N - 1)
    return d, p256_point_bytes(p256_mul(d, P256_G))


def p256_sign(d, digest):
    e = int.from_bytes(digest, "big")
    if len(digest) > 32:  # FIPS 186: the leftmost bits of the digest
        e >>= 8 * len(digest) - 256
    while True:
        k = 1 + secrets.randbelow(P256_N - 1)
        r = p256_mul(k, P256_G)[0] % P256_N
        if r == 0:
            continue
        s = pow(k, -1, P256_N) * (e + r * d) % P256_N
        if s:
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# ---- Ed25519 and X25519 (RFC 8032, RFC 7748) ---------------------------------

ED_P = 2**255 - 19
ED_L = 2**252 + 27742317777372353535851937790883648493
ED_D = -121665 * pow(121666, -1, ED_P) % ED_P
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)


def ed_recover_x(y, sign):
    p = ED_P
    xx = (y * y - 1) * pow(ED_D * y * y + 1, -1, p) % p
    x = pow(xx, (p + 3) // 8, p)
    if (x * x - xx) % p:
        x = x * ED_SQRT_M1 % p
    if (x * x - xx) % p:
        return None
    if x & 1 != sign:
        x = p - x
    return x


ED_BY = 4 * pow(5, -1, ED_P) % ED_P
ED_B = (ed_recover_x(ED_BY, 0), ED_BY, 1, ed_recover_x(ED_BY, 0) * ED_BY % ED_P)


def ed_add(a, b):
    """extended coordinates (X, Y, Z, T)"""
    p = ED_P
    A = (a[1] - a[0]) * (b[1] - b[0]) % p
    B = (a[1] + a[0]) * (b[1] + b[0]) % p
    C = 2 * a[3] * b[3] * ED_D % p
    D = 2 * a[2] * b[2] % p
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F % p, G * H % p, F * G % p, E * H % p)


def ed_mul(k, pt):
    acc = (0, 1, 1, 0)
    while k:
        if k & 1:
            acc = ed_add(acc, pt)
        pt = ed_add(pt, pt)
        k >>= 1
    return acc


def ed_encode(pt):
    zi = pow(pt[2], -1, ED_P)
    x, y = pt[0] * zi % ED_P, pt[1] * zi % ED_P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def ed_expand(seed):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def ed_generate():
    seed = secrets.token_bytes(32)
    a, _ = ed_expand(seed)
    return seed, ed_encode(ed_mul(a, ED_B))


def ed_sign(seed, msg):
    a, prefix = ed_expand(seed)
    pub = ed_encode(ed_mul(a, ED_B))
    r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % ED_L
    R = ed_encode(ed_mul(r, ED_B))
    k = int.from_bytes(hashlib.sha512(R + pub + msg).digest(), "little") % ED_L
    return R + ((r + k * a) % ED_L).to_bytes(32, "little")


def x25519(k_bytes, u_bytes):
    p = ED_P
    k = bytearray(k_bytes)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    k = int.from_bytes(k, "little")
    u = int.from_bytes(u_bytes, "little") & ((1 << 255) - 1)
    x1, x2, z2, x3, z3, swap = u, 1, 0, u, 1, 0
    a24 = 121665
    for t in reversed(range(255)):
        kt = (k >> t) & 1
        swap ^= kt
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = kt
        A, B = (x2 + z2) % p, (x2 - z2) % p
        AA, BB = A * A % p, B * B % p
        E = (AA - BB) % p
        C, D = (x3 + z3) % p, (x3 - z3) % p
        DA, CB = D * A % p, C * B % p
        x3 = (DA + CB) ** 2 % p
        z3 = x1 * (DA - CB) ** 2 % p
        x2 = AA * BB % p
        z2 = E * (AA + a24 * E) % p
    if swap:
        x2, x3, z2, z3 = x3, x2, z3, z2
    return (x2 * pow(z2, p - 2, p) % p).to_bytes(32, "little")


def x25519_generate():
    k = secrets.token_bytes(32)
    return k, x25519(k, (9).to_bytes(32, "little"))


# ---- RSA ------------------------------------------------------------------------

SMALL_PRIMES = [p for p in range(3, 2000) if all(p % q for q in range(2, int(p ** 0.5) + 1))]


def is_probable_prime(n):
    for p in SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(16):  # enough for a test fixture's keys
        a = 2 + secrets.randbelow(n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def rsa_prime(bits, e):
    while True:
        c = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if c % e != 1 and is_probable_prime(c):
            return c


def rsa_generate(bits=2048, e=65537):
    while True:
        p, q = rsa_prime(bits // 2, e), rsa_prime(bits // 2, e)
        n = p * q
        if p != q and n.bit_length() == bits:
            d = pow(e, -1, (p - 1) * (q - 1))
            return (n, e, d, p, q)


def rsa_private(key, c):
    n, e, d, p, q = key
    mp = pow(c, d % (p - 1), p)
    mq = pow(c, d % (q - 1), q)
    h = pow(q, -1, p) * (mp - mq) % p
    return mq + h * q


def rsa_sign(key, data):
    k = (key[0].bit_length() + 7) // 8
    if len(data) > k - 11:
        raise CardError(b"\x67\x00")
    em = b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + data
    return rsa_private(key, int.from_bytes(em, "big")).to_bytes(k, "big")


def rsa_decrypt(key, data):
    k = (key[0].bit_length() + 7) // 8
    if len(data) != k + 1 or data[0] != 0:  # the padding indicator byte, then c
        raise CardError(b"\x6A\x80")
    c = int.from_bytes(data[1:], "big")
    if c >= key[0]:
        raise CardError(b"\x6A\x80")
    em = rsa_private(key, c).to_bytes(k, "big")
    sep = em.find(b"\x00", 2)
    if em[:2] != b"\x00\x02" or sep < 10:
        raise CardError(b"\x6A\x80")
    return em[sep + 1:]


# ---- the card -------------------------------------------------------------------

OID_P256 = bytes.fromhex("2A8648CE3D030107")
OID_ED25519 = bytes.fromhex("2B06010401DA470F01")
OID_CV25519 = bytes.fromhex("2B060104019755010501")
# algorithm attributes -> (name, can sign, can agree)
ALGOS = {
    b"\x13" + OID_P256: "ecdsa-p256",
    b"\x12" + OID_P256: "ecdh-p256",
    b"\x16" + OID_ED25519: "ed25519",
    b"\x12" + OID_CV25519: "x25519",
    bytes.fromhex("010800002000"): "rsa2048",
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
        for spec in filter(None, args.keys.split(",")):
            slot, alg = spec.split("=")
            i = SLOT_NAMES.index(slot)
            self.attrs[i] = ATTRS[alg if alg != "ecdh-p256" else "ecdh-p256"]
            self.generate(i)
            # a made-up fingerprint: the slot is in use (a real card got
            # one from whoever generated the key)
            self.fprs[i] = hashlib.sha1(repr(self.keys[i][2]).encode()).digest()
            self.dates[i] = struct.pack(">I", int(time.time()))
        self.reset()

    def reset(self):
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
        if alg in ("ecdsa-p256", "ecdh-p256"):
            d, pub = p256_generate()
        elif alg == "ed25519":
            d, pub = ed_generate()
        elif alg == "x25519":
            d, pub = x25519_generate()
        elif alg == "rsa2048":
            d = rsa_generate()
            pub = (d[0].to_bytes(256, "big"), d[1].to_bytes(3, "big"))
        else:
            raise CardError(b"\x6A\x80")
        self.keys[i] = (alg, d, pub)

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
        if alg == "rsa2048":
            e, p, q = (int.from_bytes(parts.get(t, b""), "big") for t in (0x91, 0x92, 0x93))
            if not (e and p and q) or (p * q).bit_length() != 2048:
                raise CardError(b"\x6A\x80")
            d = (p * q, e, pow(e, -1, (p - 1) * (q - 1)), p, q)
            self.keys[i] = (alg, d, ((p * q).to_bytes(256, "big"), e.to_bytes(3, "big")))
        elif alg in ("ecdsa-p256", "ecdh-p256"):
            k = int.from_bytes(parts.get(0x92, b""), "big")
            if not 0 < k < P256_N:
                raise CardError(b"\x6A\x80")
            self.keys[i] = (alg, k, p256_point_bytes(p256_mul(k, P256_G)))
        elif alg == "ed25519":
            seed = parts.get(0x92, b"")
            if len(seed) != 32:
                raise CardError(b"\x6A\x80")
            self.keys[i] = (alg, seed, ed_encode(ed_mul(ed_expand(seed)[0], ED_B)))
        elif alg == "x25519":
            k = parts.get(0x92, b"")
            if len(k) != 32:
                raise CardError(b"\x6A\x80")
            self.keys[i] = (alg, k, x25519(k, (9).to_bytes(32, "little")))
        else:
            raise CardError(b"\x6A\x80")
        self.fprs[i] = bytes(20)
        return b""

    def public(self, i):
        if self.keys[i] is None:
            raise CardError(b"\x6A\x88")
        if self.keys[i][0] == "rsa2048":
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
        alg, d, _ = key
        if alg == "ecdsa-p256":
            if len(data) > 64:
                raise CardError(b"\x67\x00")
            return p256_sign(d, data)
        if alg == "ed25519":
            return ed_sign(d, data)
        if alg == "rsa2048":
            return rsa_sign(d, data)
        raise CardError(b"\x69\x85")

    def decipher(self, data):
        key = self.keys[1]
        if key is None:
            raise CardError(b"\x6A\x88")
        alg, d, _ = key
        if alg == "rsa2048":
            return rsa_decrypt(d, data)
        # A6 { 7F49 { 86 point } }
        point = parse_path(data, [0xA6, 0x7F49, 0x86])
        if point is None:
            raise CardError(b"\x6A\x80")
        if alg == "x25519":
            if len(point) == 33 and point[0] == 0x40:
                point = point[1:]
            if len(point) != 32:
                raise CardError(b"\x6A\x80")
            out = x25519(d, point)
            if out == bytes(32):
                raise CardError(b"\x6A\x80")
            return out
        if alg == "ecdh-p256":
            pt = p256_parse_point(point)
            if pt is None:
                raise CardError(b"\x6A\x80")
            return p256_mul(d, pt)[0].to_bytes(32, "big")
        raise CardError(b"\x69\x85")

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
        if not secrets.compare_digest(data, self.pins[p2]):
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
        data, le = b"", None
        if len(body) == 0:
            pass
        elif len(body) == 1:
            le = body[0] or 256
        elif body[0] == 0 and len(body) >= 3 and not self.short:
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
        self.log = open(args.log, "a", buffering=1) if args.log else None
        signal.signal(signal.SIGUSR1, lambda *_: self.set_inserted(False))
        signal.signal(signal.SIGUSR2, lambda *_: self.set_inserted(True))
        signal.signal(signal.SIGHUP, lambda *_: self.toggle_slow())
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def toggle_slow(self):
        self.slow = not self.slow

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
        resp = self.card.apdu(msg)
        self.note("%02X %02X%02X %s" % (msg[1] if len(msg) > 1 else 0,
                                        msg[2] if len(msg) > 2 else 0,
                                        msg[3] if len(msg) > 3 else 0, resp[-2:].hex().upper()))
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
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
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
                    "ecdsa-p256|ecdh-p256|ed25519|x25519|rsa2048)")
    ap.add_argument("--sig-pin-forced", action="store_true", help="PW1 is valid for one signature")
    ap.add_argument("--short", action="store_true", help="no extended length: chaining and 61xx")
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
