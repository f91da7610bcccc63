#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The desktop's system prompter (DESIGN.md §5): when no application
# prompter is registered, keymuxd asks org.gnome.keyring.SystemPrompter
# through gcr, here gcr's own mock prompter on the private bus, scripted by
# the test.  Looked up at each prompt; closed when nobody waits any more.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
: "${KMX_TEST_SYSTEM_PROMPTER:?}"
cd "$KMX_TMP"
printf '[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
dev=$(kmx_device_path softkey:login)
key=$(kmx_device softkey:login GenerateKey ssa{sv} ed25519 "work key" 0 | sed -n 's/^o "\(.*\)"$/\1/p')
rsa=$(kmx_device softkey:login GenerateKey ssa{sv} rsa2048 "rsa key" 0 | sed -n 's/^o "\(.*\)"$/\1/p')
x25519=$(kmx_device softkey:login GenerateKey ssa{sv} x25519 "dh key" 0 | sed -n 's/^o "\(.*\)"$/\1/p')
openssl genpkey -algorithm ed25519 -out import.pem 2>/dev/null
kmx_device softkey:login ChangeSecret ss "" "correct horse"
kmx_device softkey:login Lock
locked() { kmx_prop "$dev" org.keymux.Keystore1.Device Locked; }
sign() {
	gdbus call --session --timeout 120 --dest org.keymux.Keystore1 --object-path "$key" \
		--method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1, 2]' "${1:-{\}}"
}
count() { grep -c "^$1" sp.out || true; }
# the length of the ay in a gdbus reply (printed as [byte 0x..] or, when it
# happens to end in one 0 byte, as a b'' bytestring)
reply_len() {
	/usr/bin/python3 -c 'import sys
from gi.repository import GLib
print(GLib.Variant.parse(None, open(sys.argv[1]).read().strip(), None, None).get_child_value(0).n_children())' "$1"
}

# ---- no system prompter on the bus: Locked, saying how to unlock ----
err=$(kmx_call_error sign)
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"
assert_contains "$err" "no system prompter is on the session bus"
assert_contains "$err" "keymuxctl unlock softkey:login"

# ---- the system prompter appears after keymuxd started ----
kmx_start_system_prompter

# ---- a wrong password, then the right one; what the prompt says ----
sp answer "not it"
err=$(kmx_call_error sign)
assert_contains "$err" "org.keymux.Keystore1.Error.BadSecret"
assert_eq 1 "$(count opened)" "one prompt"
assert_contains "$(cat sp.out)" "title=Unlock keys"
assert_contains "$(cat sp.out)" "message=Enter the password to unlock “"
desc=$(grep '^description=' sp.out | tail -n 1)
keyid=${key##*/}
assert_contains "$desc" "$(command -v gdbus) wants to sign with the key “work key” (${keyid:0:16})" \
	"the prompt says who asks, for what, with which key"
assert_contains "$desc" "(softkey:login)."
assert_contains "$(cat sp.out)" "choice-label=Remember in my login keyring"
assert_contains "$(cat sp.out)" "continue-label=Unlock"
for _ in $(seq 400); do [ "$(count closed)" -ge 1 ] && break; sleep 0.05; done
assert_eq 1 "$(count closed)" "the answered prompt is closed"
assert_eq "b true" "$(locked)"
sp answer "correct horse"
sign >/dev/null
assert_eq "b false" "$(locked)"
assert_eq 2 "$(count opened)"
sign >/dev/null
assert_eq 2 "$(count opened)" "an unlocked store is not prompted for"

# ---- the user cancels: Cancelled, still locked ----
kmx_device softkey:login Lock
sp cancel
err=$(kmx_call_error sign)
assert_contains "$err" "org.keymux.Keystore1.Error.Cancelled"
assert_contains "$err" "the user cancelled the prompt"
assert_eq "b true" "$(locked)"

# ---- interactive=false: Locked at once, nobody is prompted ----
opened=$(count opened)
err=$(kmx_call_error sign "{'interactive': <false>}")
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"
err=$(kmx_call_error gdbus call --session --dest org.keymux.Keystore1 --object-path "$dev" \
	--method org.keymux.Keystore1.Device.Unlock "" "{'interactive': <false>}")
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"
# every operation that may prompt honours it
noprompt="1 interactive b false"
err=$(kmx_call_error kmx_manager Sign ssaya{sv} "${key##*/}" ed25519 2 1 2 $noprompt)
assert_contains "$err" "is locked and the caller asked not to be prompted"
err=$(kmx_call_error kmx_manager Decrypt ssaya{sv} "${rsa##*/}" rsa-pkcs1 256 $(seq 0 255) $noprompt)
assert_contains "$err" "is locked and the caller asked not to be prompted"
err=$(kmx_call_error kmx_key "$rsa" Decrypt saya{sv} rsa-pkcs1 256 $(seq 0 255) $noprompt)
assert_contains "$err" "is locked and the caller asked not to be prompted"
err=$(kmx_call_error kmx_key "$x25519" Derive saya{sv} x25519 32 $(seq 32) $noprompt)
assert_contains "$err" "is locked and the caller asked not to be prompted"
err=$(kmx_call_error kmx_device softkey:login GenerateKey ssa{sv} ed25519 new $noprompt)
assert_contains "$err" "is locked and the caller asked not to be prompted"
pem=$(od -An -v -tu1 import.pem | tr -s ' \n' ' ')
err=$(kmx_call_error kmx_device softkey:login ImportKey ayssa{sv} "$(wc -c <import.pem)" $pem "" imported $noprompt)
assert_contains "$err" "is locked and the caller asked not to be prompted"
assert_eq "$opened" "$(count opened)" "interactive=false never prompts"

# ---- the caller leaves mid-prompt: the prompt is closed ----
sp delay 600000
sp answer "correct horse"
closed=$(count closed)
timeout 2 gdbus call --session --timeout 120 --dest org.keymux.Keystore1 --object-path "$key" \
	--method org.keymux.Keystore1.Key.Sign ed25519 '[byte 1]' '{}' >/dev/null 2>&1 || true
for _ in $(seq 400); do [ "$(count closed)" -gt "$closed" ] && break; sleep 0.05; done
assert_eq $((closed + 1)) "$(count closed)" "the prompt of a caller that left is closed"
assert_eq "b true" "$(locked)" "nothing was answered"

# ---- two requests share one prompt ----
sp delay 500
sp answer "correct horse"
opened=$(count opened)
sign >s1.out &
s1=$!
sign >s2.out &
s2=$!
kmx_device softkey:login Unlock sa{sv} "" 0 &
s3=$!
wait $s1 || fail "the first waiting request failed"
wait $s2 || fail "the second waiting request failed"
wait $s3 || fail "the waiting Unlock failed"
assert_eq 64 "$(reply_len s1.out)" "the first request's signature"
assert_eq 64 "$(reply_len s2.out)" "the second request's signature"
assert_eq $((opened + 1)) "$(count opened)" "three requests, one prompt"
sp delay 0

# ---- an application prompter is asked before the system prompter ----
kmx_device softkey:login Lock
"$KMX_TEST_PROMPTER" --secret "correct horse" >p1.out 2>p1.err &
p1=$!; KMX_PIDS+=($p1)
for _ in $(seq 400); do grep -q ready p1.out && break; sleep 0.05; done
opened=$(count opened)
sign >/dev/null
assert_eq 1 "$(grep -c '^asked' p1.out)"
assert_eq "$opened" "$(count opened)" "the application prompter answered first"
kill "$p1"; wait "$p1" 2>/dev/null || true

# ---- the system prompter leaves the bus: Locked again ----
kmx_device softkey:login Lock
sp release
err=$(kmx_call_error sign)
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"

# ---- it is back: asked again; [daemon] system-prompter=none: never asked ----
echo own >&8
for _ in $(seq 400); do [ "$(count ready)" -ge 2 ] && break; sleep 0.05; done
assert_eq 2 "$(count ready)" "the mock system prompter took its name again"
sp answer "correct horse"
opened=$(count opened)
sign >/dev/null
assert_eq $((opened + 1)) "$(count opened)" "a system prompter that came back is asked"
kmx_stop_daemon
printf '[daemon]\nidle-lock-timeout=0\nsystem-prompter=none\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
err=$(kmx_call_error sign)
assert_contains "$err" "org.keymux.Keystore1.Error.Locked"
assert_eq $((opened + 1)) "$(count opened)" "system-prompter=none: the desktop is not asked"
assert_not_contains "$(cat "$KMX_TMP/keymuxd.log")" "correct horse"
exec 8>&-
echo "PASS: test-system-prompt"
