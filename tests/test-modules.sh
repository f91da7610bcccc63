#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keymuxd loads libssh, gcr and libsecret only when an operation needs
# them, from its private modules (src/modules, found through
# KMX_MODULE_DIR here): an idle daemon, and one that generates, signs,
# imports plain keys and lists, maps none of them; importing a
# passphrase-protected OpenSSH key maps libssh; the desktop's prompt maps
# gcr and, for the remembered-secret lookup before it, libsecret.  Without
# the modules, or with a wrong file in their place, those operations fail
# with an error that names what is missing, and nothing else changes.
. "$KMX_TESTS_DIR/harness.sh"
kmx_setup
: "${KMX_TEST_SYSTEM_PROMPTER:?}" "${KEYMUXCTL:?}" "${KMX_MODULE_DIR:?}"
cd "$KMX_TMP"
modules=$KMX_MODULE_DIR
printf '[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"

# mapped NAME: whether the daemon maps a file whose name starts with NAME
mapped() { grep -q "/$1[^/]*\$" "/proc/$KMX_DAEMON_PID/maps"; }
assert_mapped() { mapped "$1" || fail "keymuxd does not map $1 $2"; }
assert_not_mapped() { ! mapped "$1" || fail "keymuxd maps $1 $2"; }
ssh_libs=(keymux-ssh.so libssh.so libgssapi_krb5.so libkrb5.so)
gcr_libs=(keymux-gcr.so libgcr-base-3.so libgck-1.so libgcrypt.so)
secret_libs=(keymux-secret.so libsecret-1.so)
dev=$(kmx_device_path softkey:login)
locked() { kmx_prop "$dev" org.keymux.Keystore1.Device Locked; }
import() { kmx_device softkey:login ImportKey ayssa{sv} $(kmx_file_to_ay "$1") "$2" "$3" 0; }
count() { grep -c "^$1" sp.out || true; }

ssh-keygen -q -t ed25519 -N 'pass phrase' -C enc -f enc
ssh-keygen -q -t ed25519 -N 'pass phrase' -C enc2 -f enc2
openssl genpkey -algorithm ed25519 -out plain.pem 2>/dev/null
openssl genpkey -algorithm ed25519 -out plain2.pem 2>/dev/null

# ---- at rest, and through the common operations: none is mapped ----
kmx_start_daemon
# the check is real: keymuxd maps its other libraries by these names
assert_mapped libgio-2.0.so "(the check of the maps)"
for lib in "${ssh_libs[@]}" "${gcr_libs[@]}" "${secret_libs[@]}"; do
	assert_not_mapped "$lib" "at rest"
done
key=$(kmx_device softkey:login GenerateKey ssa{sv} ed25519 k 0 | sed -n 's/^o "\(.*\)"$/\1/p')
kmx_key "$key" Sign saya{sv} ed25519 3 1 2 3 0 >/dev/null
import plain.pem "" plain >/dev/null
busctl --user call "$KMX_NAME" "$KMX_PATH" org.freedesktop.DBus.ObjectManager GetManagedObjects >/dev/null
for lib in "${ssh_libs[@]}" "${gcr_libs[@]}" "${secret_libs[@]}"; do
	assert_not_mapped "$lib" "after generate, sign, a plain import and GetManagedObjects"
done

# ---- a passphrase-protected OpenSSH key: libssh, and only it ----
err=$(kmx_call_error import enc "wrong phrase" enc)
assert_contains "$err" "wrong passphrase for the OpenSSH key"
for lib in "${ssh_libs[@]}"; do
	assert_mapped "$lib" "after importing a passphrase-protected OpenSSH key"
done
out=$(import enc "pass phrase" enc)
assert_contains "$out" "ao 1 \"$dev/"
for lib in "${gcr_libs[@]}" "${secret_libs[@]}"; do
	assert_not_mapped "$lib" "after importing an OpenSSH key"
done

# ---- the desktop's prompt: gcr, and libsecret for the lookup before it ----
kmx_device softkey:login ChangeSecret ss "" "correct horse"
kmx_device softkey:login Lock
kmx_start_system_prompter
sp answer "correct horse"
kmx_key "$key" Sign saya{sv} ed25519 3 1 2 3 0 >/dev/null
assert_eq 1 "$(count opened)" "the system prompter asked"
assert_eq "b false" "$(locked)"
for lib in "${gcr_libs[@]}" "${secret_libs[@]}"; do
	assert_mapped "$lib" "after a prompt through gcr"
done
kmx_stop_daemon

# ---- no modules: each operation says what is missing; nothing else changes ----
mkdir no-modules
export KMX_MODULE_DIR=$KMX_TMP/no-modules
kmx_start_daemon
assert_eq "b true" "$(locked)"
kmx_device softkey:login Unlock sa{sv} "correct horse" 0
err=$(kmx_call_error import enc2 "pass phrase" enc2)
assert_contains "$err" "importing a passphrase-protected OpenSSH key needs libssh (package libssh-4)"
assert_contains "$err" "no-modules/keymux-ssh.so"
# the prompt: no system prompter without gcr, so Locked; the log says why
kmx_device softkey:login Lock
err=$(kmx_call_error kmx_key "$key" Sign saya{sv} ed25519 3 1 2 3 0)
assert_contains "$err" "is locked"
assert_contains "$err" "keymuxctl unlock softkey:login"
assert_eq 1 "$(count opened)" "no prompt was opened without gcr"
grep -q "the desktop's password prompt needs gcr (package libgcr-base-3-1)" "$KMX_TMP/keymuxd.log" ||
	fail "the log does not say that the prompt needs gcr"
# keymuxctl forget needs libsecret
! "$KEYMUXCTL" forget softkey:login >forget.out 2>forget.err || fail "forget without libsecret succeeded"
assert_contains "$(cat forget.err)" "remembering secrets in the login keyring needs libsecret (package libsecret-1-0)"
# the daemon is alive and everything else works: unlock, sign, a plain import
kill -0 "$KMX_DAEMON_PID" || fail "keymuxd died"
kmx_device softkey:login Unlock sa{sv} "correct horse" 0
kmx_key "$key" Sign saya{sv} ed25519 3 1 2 3 0 >/dev/null
import plain2.pem "" plain2 >/dev/null
for lib in "${ssh_libs[@]}" "${gcr_libs[@]}" "${secret_libs[@]}"; do
	assert_not_mapped "$lib" "without its module"
done
kmx_stop_daemon

# ---- files of the wrong kind where the module should be: not a shared
# object, and another module (which lacks the function asked for) ----
mkdir wrong-modules
cp plain.pem wrong-modules/keymux-ssh.so
cp "$modules/keymux-ssh.so" wrong-modules/keymux-secret.so
export KMX_MODULE_DIR=$KMX_TMP/wrong-modules
kmx_start_daemon
kmx_device softkey:login Unlock sa{sv} "correct horse" 0
err=$(kmx_call_error import enc2 "pass phrase" enc2)
assert_contains "$err" "needs libssh (package libssh-4)"
assert_contains "$err" "wrong-modules/keymux-ssh.so"
! "$KEYMUXCTL" forget softkey:login >forget.out 2>forget.err || fail "forget with a wrong module succeeded"
assert_contains "$(cat forget.err)" "keymux-secret.so is not a keymux keymux-secret module of this version"
kill -0 "$KMX_DAEMON_PID" || fail "keymuxd died"
kmx_stop_daemon
kmx_log "test-modules: all passed"
