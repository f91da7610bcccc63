#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Secrets remembered in the login keyring (DESIGN.md §5), against a real
# Secret Service: gnome-keyring-daemon on the test's private bus, with a
# temporary home and an unlocked login keyring.  The desktop's prompt is
# gcr's mock prompter, whose "remember" choice the test ticks.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
: "${KMX_TEST_SYSTEM_PROMPTER:?}"
cd "$KMX_TMP"

# ---- a login keyring of our own ----
mkdir -p home run
chmod 700 home run
export HOME=$KMX_TMP/home XDG_RUNTIME_DIR=$KMX_TMP/run
export XDG_DATA_HOME=$KMX_TMP/home/.local/share XDG_CONFIG_HOME=$KMX_TMP/home/.config
# --unlock reads the keyring's password on stdin and creates "login"
printf 'keyring password' | gnome-keyring-daemon --foreground --unlock --components=secrets \
	>keyring.out 2>keyring.err &
KMX_PIDS+=($!)
gdbus wait --session --timeout 20 org.freedesktop.secrets || fail "gnome-keyring-daemon did not start: $(cat keyring.err)"

printf '[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"
kmx_start_daemon
dev=$(kmx_device_path softkey:login)
key=$(kmx_device softkey:login GenerateKey ssa{sv} ed25519 k 0 | sed -n 's/^o "\(.*\)"$/\1/p')
kmx_device softkey:login ChangeSecret ss "" "correct horse"
kmx_device softkey:login Lock
locked() { kmx_prop "$dev" org.keymux.Keystore1.Device Locked; }
sign1() { kmx_key "$key" Sign saya{sv} ed25519 3 1 2 3 0 >/dev/null; }
count() { grep -c "^$1" sp.out || true; }
remembered() { secret-tool lookup device softkey:login 2>/dev/null || true; }

kmx_start_system_prompter

# ---- not ticked: nothing is remembered ----
sp answer "correct horse"
sign1
assert_eq 1 "$(count opened)"
assert_eq "" "$(remembered)" "a secret is remembered only when the user asks"
kmx_device softkey:login Lock

# ---- "remember" ticked: kept in the login keyring once the store took it ----
sp remember "correct horse"
sign1
assert_eq 2 "$(count opened)"
assert_contains "$(cat sp.out)" "choice-chosen=TRUE"
for _ in $(seq 400); do [ -n "$(remembered)" ] && break; sleep 0.05; done
assert_eq "correct horse" "$(remembered)" "the secret is in the login keyring"
assert_contains "$(secret-tool search --all device softkey:login 2>&1)" "org.keymux.Keystore1.Secret"

# ---- later uses unlock from it, without a prompt, across a restart ----
kmx_device softkey:login Lock
sign1
assert_eq "b false" "$(locked)"
assert_eq 2 "$(count opened)" "the remembered secret unlocked without a prompt"
kmx_stop_daemon
kmx_start_daemon
assert_eq "b true" "$(locked)"
kmx_device softkey:login Unlock sa{sv} "" 0
assert_eq "b false" "$(locked)"
assert_eq 2 "$(count opened)" "Unlock(\"\") unlocked from the keyring"

# ---- interactive=false does not read the keyring either: Locked ----
kmx_device softkey:login Lock
err=$(kmx_call_error kmx_key "$key" Sign saya{sv} ed25519 1 1 1 interactive b false)
assert_contains "$err" "is locked and the caller asked not to be prompted"

# ---- a remembered secret the store rejects is deleted, the user prompted ----
printf 'stale password' | secret-tool store --label="stale" \
	xdg:schema org.keymux.Keystore1.Secret device softkey:login
assert_eq "stale password" "$(remembered)"
sp answer "correct horse"
sign1
assert_eq "b false" "$(locked)"
assert_eq 3 "$(count opened)" "after the rejected secret, the user was prompted"
for _ in $(seq 400); do [ -z "$(remembered)" ] && break; sleep 0.05; done
assert_eq "" "$(remembered)" "the rejected secret is deleted"
grep -q "remembered in the login keyring was rejected" "$KMX_TMP/keymuxd.log" ||
	fail "the daemon did not say it forgot the rejected secret"

# ---- keymuxctl forget ----
if [ -n "${KEYMUXCTL:-}" ]; then
	kmx_device softkey:login Lock
	sp remember "correct horse"
	sign1
	for _ in $(seq 400); do [ -n "$(remembered)" ] && break; sleep 0.05; done
	assert_eq "correct horse" "$(remembered)"
	assert_exit 0 "$KEYMUXCTL" forget softkey:login
	assert_contains "$(cat "$KMX_TMP/last.out")" "softkey:login is forgotten"
	assert_eq "" "$(remembered)" "forget deletes it"
	assert_exit 3 "$KEYMUXCTL" forget softkey:login
	assert_contains "$(cat "$KMX_TMP/last.err")" "no secret of softkey:login is remembered"
	assert_exit 3 "$KEYMUXCTL" forget no-such-device
	assert_exit 2 "$KEYMUXCTL" forget
	# and the next use prompts again
	kmx_device softkey:login Lock
	opened=$(count opened)
	sp answer "correct horse"
	sign1
	assert_eq $((opened + 1)) "$(count opened)" "a forgotten secret is asked for again"
fi

# ---- a remembered secret is a secret: never in the log ----
assert_not_contains "$(cat "$KMX_TMP/keymuxd.log")" "correct horse"
assert_not_contains "$(cat "$KMX_TMP/keymuxd.log")" "stale password"
exec 8>&-
echo "PASS: test-remember"
