#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# keymux test helper: search every readable mapping of a process for known
# secrets, as an attacker with root would (tests/test-memscan.sh).
#
#   kmx-memscan.py PID [--hex NAME=HEX]... [--text NAME=STRING]...
#
# --hex is a binary secret (a key's private number, a plaintext): it is
# searched as given (big-endian, as in DER and on the wire) and reversed
# (little-endian, as bignum libraries keep it in limbs).  --text is searched
# as given (a line of base64, a password).  For both, a few 16-byte windows
# are searched too, to catch partial copies.  Prints what it searched and
# every hit (secret, mapping, offset); exits 1 on any hit, 2 when it could
# not read the process (or a mapping of it).  Standard library only.
import os
import sys

WINDOW = 16
CHUNK = 8 << 20


def windows(data):
    """the secret and up to three 16-byte windows of it"""
    out = [data]
    if len(data) >= 2 * WINDOW:
        for start in (0, len(data) // 2 - WINDOW // 2, len(data) - WINDOW):
            out.append(data[start : start + WINDOW])
    elif len(data) > WINDOW:
        out += [data[:WINDOW], data[-WINDOW:]]
    return out


def needles_of(args):
    """(label, bytes) for every string to search, and the number of secrets"""
    needles = {}
    secrets = 0
    i = 0
    while i < len(args):
        kind, spec = args[i], args[i + 1]
        i += 2
        name, _, value = spec.partition("=")
        if kind == "--hex":
            data = bytes.fromhex(value).lstrip(b"\0")
            forms = [("", data), (" reversed", data[::-1])]
        elif kind == "--text":
            data = value.encode()
            forms = [("", data)]
        else:
            sys.exit("kmx-memscan: unknown option %s" % kind)
        if len(data) < 8:
            sys.exit("kmx-memscan: %s is too short to search for" % name)
        secrets += 1
        for suffix, form in forms:
            for n, w in enumerate(windows(form)):
                label = name + suffix + ("" if n == 0 else " window %d" % n)
                needles.setdefault(w, label)
    return [(label, data) for data, label in needles.items()], secrets


def thread_stacks(pid):
    """{tid: (stack pointer, comm)} from /proc/PID/task/*/syscall"""
    stacks = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/syscall" % (pid, tid)) as f:
                fields = f.read().split()
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if len(fields) >= 3 and fields[-2].startswith("0x"):
            stacks[int(tid)] = (int(fields[-2], 16), comm)
    return stacks


def mappings(pid):
    stacks = thread_stacks(pid)
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            perms = parts[1]
            name = parts[5].strip() if len(parts) > 5 else ""
            if not name:
                owners = [
                    "%s %d" % (comm, tid)
                    for tid, (sp, comm) in sorted(stacks.items())
                    if start <= sp < end
                ]
                name = "[stack of %s]" % ", ".join(owners) if owners else "[anonymous]"
            yield start, end, perms, name


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    pid = int(sys.argv[1])
    needles, secrets = needles_of(sys.argv[2:])
    longest = max(len(d) for _, d in needles)
    scanned = 0
    mapped = 0
    unreadable = []
    hits = []
    try:
        mem = open("/proc/%d/mem" % pid, "rb", buffering=0)
        maps = list(mappings(pid))
    except OSError as e:
        print("memscan: cannot read the memory of pid %d: %s" % (pid, e))
        return 2
    with mem:
        for start, end, perms, name in maps:
            if perms[0] != "r":
                continue
            mapped += end - start
            pos = start
            tail = b""
            while pos < end:
                size = min(CHUNK, end - pos)
                try:
                    mem.seek(pos)
                    data = mem.read(size)
                except OSError as e:
                    unreadable.append("%s %x-%x (%s)" % (name, start, end, e.strerror))
                    break
                if not data:
                    unreadable.append("%s %x-%x (short read)" % (name, start, end))
                    break
                scanned += len(data)
                # the end of the previous chunk: a secret may straddle chunks
                buf = tail + data
                base = pos - len(tail)
                for label, needle in needles:
                    at = buf.find(needle)
                    while at >= 0:
                        # a hit wholly inside the tail was reported already
                        if at + len(needle) > len(tail):
                            hits.append((label, name, base + at, base + at - start))
                        at = buf.find(needle, at + 1)
                tail = buf[-(longest - 1) :]
                pos += len(data)
    print(
        "memscan: pid %d: %d bytes scanned in readable mappings of %d bytes; "
        "%d secrets searched as %d byte strings; %d hits"
        % (pid, scanned, mapped, secrets, len(needles), len(hits))
    )
    for what in unreadable:
        print("memscan: not readable: %s" % what)
    # the kernel's [vvar] pages cannot be read through /proc/PID/mem: any
    # other mapping not read is memory the scan did not search
    missed = [w for w in unreadable if not w.startswith("[vvar")]
    # one line per secret and mapping: the windows of one copy are one hit
    groups = {}
    for label, name, addr, offset in hits:
        secret = label.split(" window ")[0]
        groups.setdefault((secret, name), []).append((addr, offset))
    for (secret, name), where in sorted(groups.items()):
        addr, offset = min(where)
        print(
            "memscan: HIT %s in %s at 0x%x (offset 0x%x)%s"
            % (secret, name, addr, offset, "" if len(where) == 1 else ", %d hits there" % len(where))
        )
    if hits:
        return 1
    return 2 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
