#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# keymux-settings (DESIGN.md §10) in a real window: Xvfb, a real keymuxd on
# a private bus, an AT-SPI bus on it, and the panel driven through AT-SPI
# by tests/kmx-panel-driver.py.  Each step is checked in the accessible tree
# (by the driver) and against keymuxd (busctl, keymuxctl), on disk and on
# the X clipboard (xclip), and a screenshot of each is kept and checked:
# not blank, not the same as the step before.  A card (the OpenPGP card
# simulator behind the test's own pcscd) comes and goes while the panel is
# open.
#
#   test-panel.sh KEYMUX-SETTINGS SCREENSHOT-DIR
. "$KMX_TESTS_DIR/harness.sh"
kmx_own_pcscd "$@"
panel_bin=${1:?usage: test-panel.sh KEYMUX-SETTINGS SCREENSHOT-DIR}
shots=${2:?usage: test-panel.sh KEYMUX-SETTINGS SCREENSHOT-DIR}
kmx_setup
cd "$KMX_TMP"
printf '[daemon]\nidle-lock-timeout=0\n' >"$KEYMUX_CONFIG"
kmx_start_pcscd
kmx_start_daemon
rm -rf "$shots"
mkdir -p "$shots"
dev=softkey:login
name="Login keys"

# ---- an X server on a free display, the accessibility bus on our bus ----
exec 3>"$KMX_TMP/display"
kmx_bg Xvfb -displayfd 3 -screen 0 1024x800x24 -nolisten tcp -nolisten unix
exec 3>&-
for _ in $(seq 200); do
	[ -s "$KMX_TMP/display" ] && break
	sleep 0.05
done
[ -s "$KMX_TMP/display" ] || fail "Xvfb did not start"
export DISPLAY=":$(cat "$KMX_TMP/display")"
kmx_log "Xvfb on $DISPLAY"
# GTK 4 talks to the accessibility bus the launcher announces on the
# session bus as org.a11y.Bus; the registry is activated on that bus
kmx_bg /usr/libexec/at-spi-bus-launcher --launch-immediately
gdbus wait --session --timeout 20 org.a11y.Bus || fail "no accessibility bus"
export GTK_A11Y=atspi GDK_BACKEND=x11 GSK_RENDERER=cairo
unset NO_AT_BRIDGE

driver() {
	timeout 120 /usr/bin/python3 "$KMX_TESTS_DIR/kmx-panel-driver.py" "$@" ||
		fail "the panel did not do '$*' (panel log: $(tail -n 20 "$KMX_TMP/panel.log"))"
}

# shot NAME: a screenshot of the screen, checked: many colours (a drawn
# window, not a blank screen) and other pixels than the step before
last_sig=
shot() {
	local f=$shots/$1.png colours sig
	import -window root "$f" || fail "no screenshot $1"
	colours=$(identify -format '%k' "$f")
	[ "$colours" -gt 50 ] || fail "screenshot $1 is blank: $colours colours"
	sig=$(identify -format '%#' "$f")
	[ "$sig" != "$last_sig" ] || fail "screenshot $1 shows nothing new"
	last_sig=$sig
	kmx_log "screenshot $f: $colours colours"
}

locked() { kmx_prop "$(kmx_device_path $dev)" org.keymux.Keystore1.Device Locked; }
keys_json() { busctl --user --json=short call "$KMX_NAME" "$KMX_PATH" org.keymux.Keystore1.Manager ListKeys; }
key_label() { kmx_prop "$1" org.keymux.Keystore1.Key Label; }
only_key() {
	local k
	k=$(keys_json | grep -o '/org[^"]*')
	[ "$(wc -l <<<"$k")" = 1 ] || fail "expected one key, have: $k"
	printf '%s\n' "$k"
}

# ---- open: the soft-key store and its state ----
# under ASan, GTK's and fontconfig's own leaks are not ours to report; the
# file chooser keeps its settings in memory (no dconf on this bus) and its
# recent files in the test's own dirs
mkdir -p "$KMX_TMP/xdg-data" "$KMX_TMP/xdg-config"
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 GSETTINGS_BACKEND=memory \
	XDG_DATA_HOME=$KMX_TMP/xdg-data XDG_CONFIG_HOME=$KMX_TMP/xdg-config \
	kmx_bg "$panel_bin" >"$KMX_TMP/panel.log" 2>&1
panel_pid=$!
out=$(driver open "$name")
assert_contains "$out" "Unprotected"
driver names "Generate a key on $name" "Import a key into $name" "Set a password on $name"
shot 01-open

# ---- set a password through the panel: the store is protected ----
driver set-password "$name" "panel secret"
kmx_prop "$(kmx_device_path $dev)" org.keymux.Keystore1.Device Details | grep -q '"protected" b true' ||
	fail "the store is not protected after Set Password"
driver state "$name" ": Unlocked"
driver names "Lock $name" "Change the password of $name"
shot 02-password

# ---- generate ----
driver generate "$name" "panel key"
k=$(only_key)
assert_eq 's "panel key"' "$(key_label "$k")" "label of the generated key"
assert_eq 's "ed25519"' "$(kmx_prop "$k" org.keymux.Keystore1.Key Algorithm)"
driver names "Rename key panel key" "Delete key panel key" "Public key of panel key"
shot 03-generate

# ---- rename ----
driver rename "panel key" "renamed key"
assert_eq 's "renamed key"' "$(key_label "$k")" "label after the rename"
shot 04-rename

# ---- lock, then unlock through the panel's own dialog ----
driver lock "$name"
assert_eq "b true" "$(locked)" "Locked after the panel's Lock"
shot 05-lock
driver unlock "$name" "not the secret" bad
assert_eq "b true" "$(locked)" "Locked after a wrong password"
shot 06-unlock-wrong
driver cancel "Unlock $name"
driver state "$name" ": Locked"
driver unlock "$name" "panel secret"
driver state "$name" ": Unlocked"
assert_eq "b false" "$(locked)" "Locked after the panel's Unlock"
shot 07-unlock

# ---- live updates: changes made elsewhere show without a click ----
kmx_device $dev GenerateKey ssa{sv} ecdsa-p256 "made elsewhere" 0 >/dev/null
driver key "made elsewhere"
kmx_device $dev Lock
driver state "$name" ": Locked"
shot 08-live

# ---- the panel is the prompter while focused: a signature asks it ----
printf 'data' >msg
id=$(kmx_prop "$k" org.keymux.Keystore1.Key Id | sed 's/^s "\(.*\)"$/\1/')
kmx_bg busctl --user --timeout=120 call "$KMX_NAME" "$KMX_PATH" org.keymux.Keystore1.Manager Sign \
	'ssaya{sv}' "$id" ed25519 4 100 97 116 97 0 >sign.out 2>sign.err
driver prompt "$name" "panel secret"
for _ in $(seq 200); do
	[ -s sign.out ] && break
	sleep 0.1
done
assert_contains "$(cat sign.out)" "ay 64"
driver state "$name" ": Unlocked"
shot 09-prompt

# ---- a question withdrawn: another client unlocks, the dialog goes ----
kmx_device $dev Lock
kmx_bg busctl --user --timeout=120 call "$KMX_NAME" "$KMX_PATH" org.keymux.Keystore1.Manager Sign \
	'ssaya{sv}' "$id" ed25519 4 100 97 116 97 0 >sign2.out 2>sign2.err
driver asked "$name"
kmx_device $dev Unlock 'sa{sv}' "panel secret" 0
driver withdrawn "$name"
for _ in $(seq 200); do
	[ -s sign2.out ] && break
	sleep 0.1
done
assert_contains "$(cat sign2.out)" "ay 64"

# ---- the public key, copied as PEM and as an authorized_keys line ----
# (the driver waits until the X clipboard has it; xclip reads it here)
clipboard() { xclip -selection clipboard -o; }
driver copy "renamed key" pem >/dev/null
clipboard >copied.pem
"$KEYMUXCTL" export-public "$id" >want.pem
cmp copied.pem want.pem || fail "the PEM copied differs from keymuxctl's: $(cat copied.pem)"
driver copy "renamed key" ssh >/dev/null
clipboard >copied.ssh
"$KEYMUXCTL" export-public --ssh "$id" >want.ssh
assert_eq "$(cat want.ssh)" "$(cat copied.ssh)" "the authorized_keys line copied"
assert_contains "$(cat copied.ssh)" "ssh-ed25519 "
shot 10-copy

# ---- import from a file: an OpenSSH key and a PKCS#8 PEM key, each with a
# passphrase; the key keymuxd then has is the file's (its id is the SHA-256
# of the SubjectPublicKeyInfo, computed here by openssl) ----
mkdir files
ssh-keygen -q -t ed25519 -N "ssh file pass" -C "from a file" -f files/id_ed25519
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes-256-cbc \
	-pass pass:"pem file pass" -out files/p256.pem
spki_id() { openssl pkey "$@" -pubout -outform DER | sha256sum | cut -d' ' -f1; }
# (OpenSSH 9.2 exports no Ed25519 key as PKCS#8: python3-cryptography reads it)
ssh_id=$(/usr/bin/python3 -c '
import sys
from cryptography.hazmat.primitives import serialization as s
k = s.load_ssh_public_key(open(sys.argv[1], "rb").read())
sys.stdout.buffer.write(k.public_bytes(s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo))' files/id_ed25519.pub |
	sha256sum | cut -d' ' -f1)
pem_id=$(spki_id -in files/p256.pem -passin pass:"pem file pass")
nkeys() { keys_json | grep -o '/org[^"]*' | wc -l; }
before=$(nkeys)
driver import "$name" "$KMX_TMP/files/id_ed25519" "ssh import" "not the passphrase" bad
assert_eq "$before" "$(nkeys)" "keys after a wrong passphrase"
shot 11-import-wrong
driver import-again "$KMX_TMP/files/id_ed25519" "ssh import" "ssh file pass"
ssh_key=$(kmx_device_path $dev)/$ssh_id
assert_eq 's "ssh import"' "$(key_label "$ssh_key")" "the imported OpenSSH key, by the id of its public key"
assert_eq "$(ssh-keygen -lf files/id_ed25519.pub | cut -d' ' -f2)" \
	"$("$KEYMUXCTL" export-public --ssh "$ssh_id" | ssh-keygen -lf - | cut -d' ' -f2)" \
	"the fingerprint of the imported OpenSSH key"
driver import "$name" "$KMX_TMP/files/p256.pem" "pem import" "pem file pass"
assert_eq 's "pem import"' "$(key_label "$(kmx_device_path $dev)/$pem_id")" "the imported PEM key"
assert_eq 's "ecdsa-p256"' "$(kmx_prop "$(kmx_device_path $dev)/$pem_id" org.keymux.Keystore1.Key Algorithm)"
assert_contains "$("$KEYMUXCTL" keys)" "${pem_id:0:16}"
shot 12-import

# ---- files that are no keys: a notice, nothing imported, no hang ----
before=$(nkeys)
driver import-refused "$name" /dev/zero "not a regular file"
: >files/empty.key
driver import-refused "$name" "$KMX_TMP/files/empty.key" "the file is empty"
head -c 1100000 /dev/zero >files/huge.key
driver import-refused "$name" "$KMX_TMP/files/huge.key" "too large"
printf 'no key in here\n' >files/garbage.txt
driver import-fails "$name" "$KMX_TMP/files/garbage.txt" "Cannot import the key"
assert_eq "$before" "$(nkeys)" "keys after the files that are no keys"
shot 13-import-refused

# ---- save the public key: PEM and an authorized_keys line, each the
# keymuxctl export and the same key as the file imported ----
driver save "ssh import" pem "$KMX_TMP/files/saved.pem"
"$KEYMUXCTL" export-public "$ssh_id" >want-saved.pem
cmp files/saved.pem want-saved.pem || fail "the PEM saved differs from keymuxctl's: $(cat files/saved.pem)"
assert_eq "$ssh_id" "$(spki_id -pubin -in files/saved.pem)" "the key in the PEM saved"
driver save "ssh import" ssh "$KMX_TMP/files/saved.pub"
assert_eq "$("$KEYMUXCTL" export-public --ssh "$ssh_id")" "$(cat files/saved.pub)" "the authorized_keys line saved"
assert_eq "$(ssh-keygen -lf files/id_ed25519.pub | cut -d' ' -f2)" "$(ssh-keygen -lf files/saved.pub | cut -d' ' -f2)" \
	"the fingerprint of the authorized_keys line saved"
shot 14-save

# ---- change the password: the old one no longer unlocks, the new one does ----
driver change-password "$name" "panel secret" "second secret"
driver lock "$name"
driver unlock "$name" "panel secret" bad
assert_eq "b true" "$(locked)" "Locked after the old password"
driver cancel "Unlock $name"
err=$(kmx_call_error kmx_device $dev Unlock 'sa{sv}' "panel secret" 0)
assert_contains "$err" "wrong password"
driver unlock "$name" "second secret"
driver state "$name" ": Unlocked"
assert_eq "b false" "$(locked)" "Locked after the new password"
shot 15-password

# ---- delete, confirmed ----
driver delete "renamed key"
left=$(keys_json)
assert_not_contains "$left" "$k"
driver names "Key made elsewhere"
shot 16-delete

# ---- a card comes, is registered, goes and comes back, is forgotten ----
card="Jane Doe"
cdev=card:FFFE0000BEEF
cpath=$(kmx_device_path $cdev)
kmx_start_card_sim --serial 0000BEEF --keys sig=ecdsa-p256,dec=x25519,aut=ed25519 --name 'Doe<<Jane'
driver device "$card"
driver state "$card" ": Locked · Available · 3 tries left"
driver names "Unlock $card" "Register $card" "Change the PIN of $card" "PIN and registration" "Key Signature key"
assert_eq "b false" "$(kmx_prop "$cpath" org.keymux.Keystore1.Device Registered)"
shot 17-card
# unlocked with its PIN in the panel's dialog: a wrong one spends a try
driver unlock "$card" "654321" bad
driver cancel "Unlock $card"
driver state "$card" ": Locked · Available · 2 tries left"
assert_eq "i 2" "$(kmx_prop "$cpath" org.keymux.Keystore1.Device PinRetries)"
driver unlock "$card" "123456"
driver state "$card" ": Unlocked · Available · 3 tries left"
assert_eq "b false" "$(kmx_prop "$cpath" org.keymux.Keystore1.Device Locked)"
driver register "$card"
assert_eq "b true" "$(kmx_prop "$cpath" org.keymux.Keystore1.Device Registered)" "Registered after the panel's Register"
shot 18-card-registered
kmx_card_pull
driver state "$card" "Registered · Not available"
assert_eq "b false" "$(kmx_prop "$cpath" org.keymux.Keystore1.Device Available)"
driver key "Signature key"
driver sensitive "Delete key Signature key" no
shot 19-card-out
kmx_card_insert
driver state "$card" "Registered · Available"
driver sensitive "Delete key Signature key" yes
driver forget "$card"
assert_eq "b false" "$(kmx_prop "$cpath" org.keymux.Keystore1.Device Registered)" "Registered after the panel's Forget"
kmx_card_pull
driver no-device "$card"
driver no-key "Signature key"
shot 20-card-gone

# ---- closed, the panel exits cleanly and is nobody's prompter any more ----
driver close
status=0
wait "$panel_pid" || status=$?
assert_eq 0 "$status" "the panel's exit status (log: $(tail -n 20 "$KMX_TMP/panel.log"))"
grep -E "CRITICAL|WARNING" "$KMX_TMP/panel.log" && fail "the panel warned"
kmx_device $dev Lock
err=$(kmx_call_error kmx_manager Sign 'ssaya{sv}' "$pem_id" ecdsa-sha256 1 1 0)
assert_contains "$err" "no prompter is registered"
