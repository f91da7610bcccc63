#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The ssh-agent with devices that count wrong tries, and with keys that come
# and go: agent UNLOCK (ssh-add -X) offers its passphrase only to devices
# without a retry counter, so a guess never costs a card or a TPM a try;
# the agent's key -> blob cache forgets a deleted key.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
: "${KEYMUXCTL:?}"
cd "$KMX_TMP"

export XDG_RUNTIME_DIR="$KMX_TMP/run"
mkdir -m 0700 "$XDG_RUNTIME_DIR"
export SSH_AUTH_SOCK="$XDG_RUNTIME_DIR/keymux/ssh"
printf '[backends]\ntest=true\n[ssh-agent]\nenabled=true\n' >"$KEYMUX_CONFIG"
T=$KEYMUX_DATA_DIR/test
mkdir -p "$T/plugged"
printf '[device]\npin=123456\nadmin-pin=12345678\n' >"$T/.plug.tmp"
mv "$T/.plug.tmp" "$T/plugged/0001"
askpass() { # askpass NAME SECRET: an SSH_ASKPASS program that answers SECRET
	printf '#!/bin/sh\necho "%s"\n' "$2" >"$KMX_TMP/$1"
	chmod +x "$KMX_TMP/$1"
}
ssh_add_X() { # ssh_add_X ASKPASS: ssh-add -X with that passphrase
	SSH_ASKPASS="$KMX_TMP/$1" SSH_ASKPASS_REQUIRE=force ssh-add -X </dev/null >/dev/null 2>&1
}
prop() { kmx_prop "$(kmx_device_path "$1")" org.keymux.Keystore1.Device "$2"; }
card_tries() { grep -c "^unlock 0001 " "$T/log" 2>/dev/null || true; }

kmx_start_daemon
until_ok listed "$(kmx_device_path test:0001)"
# a key on the card, which the agent lists though the card is locked
kmx_device test:0001 GenerateKey ssa{sv} ecdsa-p256 "card key" 1 admin-secret s 12345678 >/dev/null
assert_contains "$(ssh-add -l)" "(ECDSA)"
kmx_device softkey:login ChangeSecret ss "" "store password"
kmx_manager LockAll
assert_eq "b true" "$(prop test:0001 Locked)"
assert_eq "b true" "$(prop softkey:login Locked)"
assert_eq "i 3" "$(prop test:0001 PinRetries)"

# ---- UNLOCK: never a try of the card's ----
askpass wrong "wrong"
askpass pin "123456"
askpass store "store password"
if ssh_add_X wrong; then
	fail "ssh-add -X with a wrong passphrase succeeded"
fi
assert_eq "i 3" "$(prop test:0001 PinRetries)" "the card's counter after ssh-add -X wrong"
assert_eq 0 "$(card_tries)" "the card's Unlock called by ssh-add -X wrong"
assert_eq "b true" "$(prop softkey:login Locked)"
# not even its own PIN: the card prompts when a key of its is used
if ssh_add_X pin; then
	fail "ssh-add -X with the card's PIN unlocked something"
fi
assert_eq 0 "$(card_tries)" "the card's Unlock called by ssh-add -X with its PIN"
assert_eq "b true" "$(prop test:0001 Locked)"
assert_eq "i 3" "$(prop test:0001 PinRetries)"
# the store's own password opens the store, and the card is still untouched
ssh_add_X store || fail "ssh-add -X with the store's password failed"
assert_eq "b false" "$(prop softkey:login Locked)"
assert_eq "b true" "$(prop test:0001 Locked)"
assert_eq 0 "$(card_tries)" "the card's Unlock called by ssh-add -X"
assert_eq "i 3" "$(prop test:0001 PinRetries)"

# ---- the key cache follows deleted keys ----
# the log says how many keys the agent's cache holds after it changed
cached() { grep -o 'ssh-agent: [0-9]* keys in the cache' "$KMX_TMP/keymuxd.log" | tail -n 1 | cut -d' ' -f2; }
live=$(ssh-add -l | wc -l)
for round in 1 2 3 4 5; do
	out=$(kmx_device softkey:login GenerateKey ssa{sv} ed25519 "cycle $round" 0)
	key=$(sed 's/^o "\(.*\)"$/\1/' <<<"$out")
	id=${key##*/}
	assert_contains "$(ssh-add -l)" "cycle $round"
	"$KEYMUXCTL" export-public --ssh "$id" >cycle.pub
	printf 'cycle %s\n' "$round" >msg
	rm -f msg.sig
	ssh-keygen -Y sign -f cycle.pub -n file msg 2>sign.err || fail "sign with cycle $round: $(cat sign.err)"
	kmx_key "$key" Delete >/dev/null
	assert_not_contains "$(ssh-add -l)" "cycle $round"
	# a deleted key signs nothing, through its cached blob or otherwise
	rm -f msg.sig
	if ssh-keygen -Y sign -f cycle.pub -n file msg >/dev/null 2>&1; then
		fail "a deleted key signed through the agent"
	fi
	assert_eq "$live" "$(cached)" "keys in the agent's cache after round $round"
done

# ---- LOCK (ssh-add -x) replies once every device has locked: a card busy
# with a 1.5 s signature too, whose lock waits behind it ----
printf '[device]\npin=123456\nadmin-pin=12345678\ndelay-ms=1500\n' >"$T/.plug.tmp"
mv "$T/.plug.tmp" "$T/plugged/0002"
until_ok listed "$(kmx_device_path test:0002)"
slow=$(kmx_device test:0002 GenerateKey ssa{sv} ed25519 slow 1 admin-secret s 12345678 |
	sed -n 's/^o "\(.*\)"$/\1/p')
kmx_device test:0002 Unlock sa{sv} 123456 0
assert_eq "b false" "$(prop softkey:login Locked)"
signs_past() { [ "$(grep -c '^sign 0002 ' "$T/log" || true)" -gt "$1" ]; }
before=$(grep -c '^sign 0002 ' "$T/log" || true)
(kmx_key "$slow" Sign saya{sv} ed25519 2 104 105 0 >slow.out 2>&1; echo "exit $?" >>slow.out) &
until_ok signs_past "$before"
askpass lockpw "lock password"
SSH_ASKPASS="$KMX_TMP/lockpw" SSH_ASKPASS_REQUIRE=force ssh-add -x </dev/null >/dev/null 2>lock.err ||
	fail "ssh-add -x: $(cat lock.err)"
assert_eq "b true" "$(prop test:0002 Locked)" "the busy card's Locked right after LOCK's reply"
assert_eq "b true" "$(prop softkey:login Locked)" "the store's Locked right after LOCK's reply"
until_ok grep -q '^exit' slow.out
assert_contains "$(cat slow.out)" "exit 0" "the signature under way completed"
kmx_stop_daemon
echo "ok"
