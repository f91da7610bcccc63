#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# keymux test fixture: runs a command on a pseudo-terminal, as a person
# would on theirs, and answers its question for a secret.
#
#   kmx-pty.py [--answer TEXT | --interrupt | --no-prompt | --leave FILE]
#              --transcript FILE --stdout FILE -- COMMAND...
#
# The command gets the terminal as its controlling terminal (stdin and
# stderr), its stdout goes to FILE.  Once it shows a question (what it
# wrote ends with ": "), TEXT and Enter are typed, or Ctrl-C; with --leave,
# nothing is typed: FILE is created, and the command is waited for.  Prints "exit N" (or "signal N")
# "echo on|off": whether the terminal echoes again afterwards, and "asked"
# or "not asked".
import argparse
import fcntl
import os
import select
import subprocess
import sys
import termios
import time

parser = argparse.ArgumentParser()
what = parser.add_mutually_exclusive_group(required=True)
what.add_argument("--answer")
what.add_argument("--interrupt", action="store_true")
what.add_argument("--no-prompt", action="store_true")
what.add_argument("--leave")
parser.add_argument("--transcript", required=True)
parser.add_argument("--stdout", required=True)
parser.add_argument("command", nargs="+")
args = parser.parse_args()

master, slave = os.openpty()


def controlling_tty():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


with open(args.stdout, "wb") as out:
    child = subprocess.Popen(args.command, stdin=slave, stdout=out, stderr=slave,
                             preexec_fn=controlling_tty, close_fds=True)
transcript = b""
answered = args.no_prompt
asked = False
# a guard against a hang, not a measure: the command is waited for
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    ready, _, _ = select.select([master], [], [], 0.1)
    if ready:
        try:
            transcript += os.read(master, 4096)
        except OSError:
            pass
    if not asked and transcript.endswith(b": "):
        asked = True
    if asked and not answered:
        if args.leave:
            open(args.leave, "w").close()
        else:
            os.write(master, b"\x03" if args.interrupt else args.answer.encode() + b"\r")
        answered = True
    if child.poll() is not None and not ready:
        break
else:
    child.kill()
    print("timeout")
attrs = termios.tcgetattr(slave)
with open(args.transcript, "wb") as f:
    f.write(transcript)
rc = child.wait()
print(f"exit {rc}" if rc >= 0 else f"signal {-rc}")
print("echo on" if attrs[3] & termios.ECHO else "echo off")
print("asked" if asked else "not asked")
