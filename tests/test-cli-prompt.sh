#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keymuxctl as a prompter on its terminal (DESIGN.md §5): a command that
# needs a locked device, run on a terminal (a pseudo-terminal here, driven
# by tests/kmx-pty.py), registers keymuxctl as a prompter while it waits
# and asks without echo, pinentry-style; Ctrl-C cancels cleanly.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
: "${KEYMUXCTL:?}"
cd "$KMX_TMP"
printf '[backends]\ntest=true\n[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
dev=$(kmx_device_path softkey:login)
key=$(kmx_device softkey:login GenerateKey ssa{sv} ed25519 "work key" 0 | sed -n 's/^o "\(.*\)"$/\1/p')
keyid=${key##*/}
kmx_device softkey:login ChangeSecret ss "" "correct horse"
kmx_device softkey:login Lock
locked() { kmx_prop "$dev" org.keymux.Keystore1.Device Locked; }
echo "sign this" >msg
# on_tty ARGS... -- COMMAND...: run on a terminal; prints what kmx-pty.py says
on_tty() { /usr/bin/python3 "$KMX_TESTS_DIR/kmx-pty.py" --transcript tty.out --stdout out.bin "$@"; }

# ---- keymuxctl sign on a locked store just asks ----
res=$(on_tty --answer "correct horse" -- "$KEYMUXCTL" sign "$keyid" msg)
assert_contains "$res" "exit 0" "$(cat tty.out)"
assert_contains "$res" "asked"
assert_contains "$res" "echo on"
assert_contains "$(cat tty.out)" "Enter the password to unlock “"
assert_contains "$(cat tty.out)" "$KEYMUXCTL wants to sign with the key “work key” (${keyid:0:16})"
assert_contains "$(cat tty.out)" "Password: "
assert_not_contains "$(cat tty.out)" "correct horse" "the password is not echoed"
assert_eq 64 "$(wc -c <out.bin)" "the signature"
assert_eq "b false" "$(locked)"

# ---- an unlocked store: nobody is asked ----
res=$(on_tty --no-prompt -- "$KEYMUXCTL" sign "$keyid" msg)
assert_contains "$res" "exit 0"
assert_contains "$res" "not asked"

# ---- a wrong password: BadSecret (exit 4), asked once, echo back on ----
kmx_device softkey:login Lock
res=$(on_tty --answer "wrong" -- "$KEYMUXCTL" sign "$keyid" msg)
assert_contains "$res" "exit 4"
assert_contains "$res" "echo on"
assert_eq 1 "$(grep -c 'Password: ' tty.out)" "a wrong password is not retried"
assert_eq "b true" "$(locked)"

# ---- Ctrl-C: Cancelled (exit 9), the terminal echoes again, nothing unlocked ----
res=$(on_tty --interrupt -- "$KEYMUXCTL" sign "$keyid" msg)
assert_contains "$res" "exit 9" "$(cat tty.out)"
assert_contains "$res" "echo on"
assert_contains "$(cat tty.out)" "cancelled with Ctrl-C"
assert_eq "b true" "$(locked)"
kmx_manager ListDevices >/dev/null

# ---- unlocked another way while keymuxctl asks: the question is withdrawn ----
rm -f asked.flag
on_tty --leave asked.flag -- "$KEYMUXCTL" sign "$keyid" msg >left.res &
pty=$!
for _ in $(seq 400); do [ -e asked.flag ] && break; sleep 0.05; done
[ -e asked.flag ] || fail "keymuxctl did not ask"
kmx_device softkey:login Unlock sa{sv} "correct horse" 0
wait $pty || fail "the terminal driver failed"
assert_contains "$(cat left.res)" "exit 0" "$(cat tty.out)"
assert_contains "$(cat left.res)" "echo on"
assert_contains "$(cat tty.out)" "(no longer needed)"
assert_eq 64 "$(wc -c <out.bin)" "the signature, once unlocked another way"
kmx_device softkey:login Lock

# ---- not on a terminal: keymuxctl does not ask; Locked (exit 4) ----
assert_exit 4 "$KEYMUXCTL" sign "$keyid" msg </dev/null
assert_contains "$(cat "$KMX_TMP/last.err")" "nobody can be asked"

# ---- keymuxctl unlock asks on the terminal too ----
res=$(on_tty --answer "correct horse" -- "$KEYMUXCTL" unlock softkey:login)
assert_contains "$res" "exit 0" "$(cat tty.out)"
assert_contains "$res" "echo on"
assert_eq "b false" "$(locked)"

# ---- a card-like device: its PIN, and the tries left ----
T=$KEYMUX_DATA_DIR/test
mkdir -p "$T/plugged"
printf '[device]\npin=123456\nadmin-pin=12345678\nretries=3\n' >"$T/.plug.tmp"
mv "$T/.plug.tmp" "$T/plugged/0001"
for _ in $(seq 400); do kmx_device test:0001 Lock >/dev/null 2>&1 && break; sleep 0.05; done
card_key=$(kmx_device test:0001 GenerateKey ssa{sv} ed25519 "card key" 1 admin-secret s 12345678 |
	sed -n 's/^o "\(.*\)"$/\1/p')
kmx_device test:0001 Lock
res=$(on_tty --answer "000000" -- "$KEYMUXCTL" sign "${card_key##*/}" msg)
assert_contains "$res" "exit 4"
assert_contains "$(cat tty.out)" "3 tries are left."
assert_contains "$(cat tty.out)" "PIN: "
res=$(on_tty --answer "123456" -- "$KEYMUXCTL" sign "${card_key##*/}" msg)
assert_contains "$res" "exit 0" "$(cat tty.out)"
assert_contains "$(cat tty.out)" "2 tries are left."

assert_not_contains "$(cat "$KMX_TMP/keymuxd.log")" "correct horse"
echo "PASS: test-cli-prompt"
