#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What crossed the TPM bus, from the capture tpm2-tss' pcap TCTI writes
(TCTI "pcap:<child>", file TCTI_PCAP_FILE): a pcapng file whose packets
are TCP segments to (commands) and from (responses) port 2321, one TPM
message each.

usage: kmx-tpm-pcap.py FILE commands   one line per command the TPM ran: its
                                       code, hex (a command the TPM answered
                                       "retry" is sent again: it is the resent
                                       one that counts)
       kmx-tpm-pcap.py FILE hex        every message's bytes, hex, a line each

Bad input is an error with a message, never a traceback.
"""
import struct
import sys

TPM_PORT = 2321
# TPM_RC_RETRY, TPM_RC_YIELDED, TPM_RC_TESTING: the TSS sends the command again
RETRY = (0x922, 0x908, 0x90A)


def blocks(data):
    """yields (type, body) of every pcapng block"""
    if len(data) < 12 or struct.unpack_from("<I", data, 0)[0] != 0x0A0D0D0A:
        raise ValueError("not a pcapng file")
    magic = struct.unpack_from("<I", data, 8)[0]
    if magic == 0x1A2B3C4D:
        order = "<"
    elif magic == 0x4D3C2B1A:
        order = ">"
    else:
        raise ValueError("bad byte-order magic")
    off = 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from(order + "II", data, off)
        if blen < 12 or blen % 4 or off + blen > len(data):
            # the writer may have been killed mid-block: the rest is cut off
            break
        yield order, btype, data[off + 8:off + blen - 4]
        off += blen


def messages(data):
    """yields ('C' or 'R', payload) of every TPM message"""
    for order, btype, body in blocks(data):
        if btype != 6 or len(body) < 20:  # enhanced packet block
            continue
        caplen = struct.unpack_from(order + "I", body, 12)[0]
        pkt = body[20:20 + caplen]
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        if len(pkt) < ihl + 20:
            continue
        sport, dport = struct.unpack_from(">HH", pkt, ihl)
        thl = (pkt[ihl + 12] >> 4) * 4
        payload = pkt[ihl + thl:]
        if not payload:
            continue
        if dport == TPM_PORT:
            yield "C", payload
        elif sport == TPM_PORT:
            yield "R", payload


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("commands", "hex"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1], "rb") as f:
            data = f.read()
        pending = None
        for kind, payload in messages(data):
            if sys.argv[2] == "hex":
                print(payload.hex())
            elif kind == "C" and len(payload) >= 10:
                if pending is not None:  # no response: the connection broke
                    print("0x%08x" % pending)
                pending = struct.unpack_from(">I", payload, 6)[0]
            elif kind == "R" and pending is not None:
                rc = struct.unpack_from(">I", payload, 6)[0] if len(payload) >= 10 else 0
                if rc not in RETRY:
                    print("0x%08x" % pending)
                pending = None
        if pending is not None:
            print("0x%08x" % pending)
    except (OSError, ValueError, struct.error) as e:
        print(f"kmx-tpm-pcap: {sys.argv[1]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
