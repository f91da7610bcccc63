#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The TPM's dictionary-attack lockout through keymux (TPM.md): a wrong
# device secret costs exactly one try and a right one none, as the TPM
# itself counts them (read by tpm2-tools, not by keymux); at the limit the
# device is Blocked, with nobody asked and nothing tried; Details says so
# and counts down the time to recovery; once the TPM has healed, the secret
# opens the device again.
. "$KMX_TESTS_DIR/harness.sh"
. "$KMX_TESTS_DIR/tpm-common.sh"
kmx_setup
cd "$KMX_TMP"

kmx_start_swtpm
# three tries, a long interval: no recovery while the test looks
tpm2_dictionarylockout -s -n 3 -t 600 -l 1 >/dev/null 2>&1 || fail "cannot set the DA parameters"
assert_eq 0 "$(tools_da_counter)" "a new TPM's lockout counter"
tpm_conf "$KMX_SWTPM_TCTI"
DEV=$(kmx_device_path tpm:0)
printf 'the message the TPM signs\n' >msg
wrong_unlock() {
	local err
	err=$(kmx_call_error gdev Unlock 9999 "@a{sv} {}")
	assert_contains "$err" "org.keymux.Keystore1.Error.BadSecret"
}

kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
KEY=$(generate ecdsa-p256 "under a secret")
pubkey "$KEY" key.pub
kmx_device tpm:0 ChangeSecret ss "" 1234 >/dev/null
verify_p256 "$KEY" key.pub "a signature under the secret"
kmx_device tpm:0 Lock >/dev/null
until_ok prop_is "$DEV" PinRetries "i 3"
assert_contains "$(details)" '"in-lockout" b false'

# ---- one wrong secret: one try, as the TPM counts ----
wrong_unlock
until_ok prop_is "$DEV" PinRetries "i 2"
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
assert_eq 1 "$(tools_da_counter)" "tries after one wrong secret"

# ---- a right one: none ----
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
kmx_device tpm:0 Unlock sa{sv} 1234 0 >/dev/null
verify_p256 "$KEY" key.pub "a signature after Unlock"
kmx_device tpm:0 Lock >/dev/null
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
assert_eq 1 "$(tools_da_counter)" "tries after a right secret"

# ---- the last tries: lockout, Blocked; nobody asked, the TPM not tried ----
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
wrong_unlock
wrong_unlock
until_ok prop_is "$DEV" PinRetries "i 0"
assert_contains "$(details)" '"in-lockout" b true'
secs=$(lockout_seconds)
[ -n "$secs" ] && [ "$secs" -ge 1 ] && [ "$secs" -le 600 ] ||
	fail "lockout-recovery-seconds is '$secs', not within the 600 s interval"
assert_contains "$("$KEYMUXCTL" info tpm:0)" "in-lockout"
assert_contains "$("$KEYMUXCTL" info tpm:0)" "lockout-recovery-seconds"
err=$(kmx_call_error gdev Unlock 1234 "@a{sv} {}")
assert_contains "$err" "org.keymux.Keystore1.Error.Blocked"
# what to do, said for a TPM: wait or clear the lockout, not an admin PIN
assert_contains "$err" "wait for it to recover"
case $err in *"admin PIN"*) fail "a TPM's Blocked error speaks of an admin PIN: $err" ;; esac
err=$(kmx_call_error gsign "${KEY##*/}" ecdsa-sha256)
assert_contains "$err" "org.keymux.Keystore1.Error.Blocked"
assert_exit 4 "$KEYMUXCTL" unlock --secret-fd 3 tpm:0 3< <(printf '1234\n')
assert_contains "$(cat "$KMX_TMP/last.err")" "blocked"
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
assert_eq 3 "$(tools_da_counter)" "tries after three wrong secrets and a blocked device"

# ---- a short interval: Details counts down, the TPM heals, the secret opens it ----
# (new DA parameters restart the TPM's self-healing timer)
tpm2_dictionarylockout -s -n 3 -t 5 -l 1 >/dev/null 2>&1 || fail "cannot set the DA parameters"
kmx_start_daemon
until_ok prop_is "$DEV" Available "b true"
until_ok prop_is "$DEV" PinRetries "i 0"
first=$(lockout_seconds)
[ -n "$first" ] && [ "$first" -ge 1 ] && [ "$first" -le 5 ] ||
	fail "lockout-recovery-seconds is '$first', not within the 5 s interval"
# lower than at first, or already healed: on a loaded machine the polls can
# miss the whole countdown; a value stuck or rising fails.  One read of
# Details answers both, so that the TPM healing between two reads cannot
# make them disagree
below() {
	local d s
	d=$(details)
	case $d in *'"in-lockout" b false'*) return 0 ;; esac
	s=$(printf '%s\n' "$d" | sed -n 's/.*"lockout-recovery-seconds" u \([0-9]*\).*/\1/p')
	[ -n "$s" ] && [ "$s" -lt "$1" ]
}
[ "$first" -eq 1 ] || until_ok below "$first"
until_ok prop_is "$DEV" PinRetries "i 1"
assert_contains "$(details)" '"in-lockout" b false'
assert_not_contains "$(details)" "lockout-recovery-seconds"
kmx_device tpm:0 Unlock sa{sv} 1234 0 >/dev/null
verify_p256 "$KEY" key.pub "a signature after the lockout"
kmx_stop_daemon || fail "keymuxd did not stop cleanly"
