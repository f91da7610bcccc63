# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
# What the TPM tests (test-tpm*.sh) share; sourced after harness.sh.  The
# functions use $DEV (tpm:0's object path) and the files in the current
# directory.

# tpm2-openssl, on the TCTI the harness exported
ossl() { timeout 60 openssl "$@" -provider tpm2 -provider default -propquery '?provider=tpm2'; }
# keymux.conf for swtpm; extra lines after the TCTI
tpm_conf() { # tcti [line...]
	printf '[tpm]\ntcti=%s\npoll-interval-ms=50\n' "$1" >"$KEYMUX_CONFIG"
	[ $# -lt 2 ] || printf '%s\n' "${@:2}" >>"$KEYMUX_CONFIG"
}
# the TPM's own dictionary-attack counter, as tpm2-tools reads it (swtpm
# serves one client at a time: keymuxd must not be running)
tools_da_counter() {
	local v
	v=$(timeout 60 tpm2_getcap properties-variable | sed -n 's/^TPM2_PT_LOCKOUT_COUNTER: *//p')
	[ -n "$v" ] || fail "tpm2_getcap did not say the lockout counter"
	printf '%d\n' "$v"
}
generate() { # type label: the new key's object path
	kmx_device tpm:0 GenerateKey ssa{sv} "$1" "$2" 0 | sed -n 's/^o "\(.*\)"$/\1/p'
}
sign() { # path algorithm file: signature into file.sig
	# shellcheck disable=SC2046
	kmx_key "$1" Sign saya{sv} "$2" $(kmx_file_to_ay "$3") 0 | kmx_ay_to_file "$3.sig"
}
gsign() { # key-id algorithm [options]: through gdbus, which names the D-Bus error
	gdbus call --session --timeout 10 --dest "$KMX_NAME" --object-path "$KMX_PATH" \
		--method org.keymux.Keystore1.Manager.Sign "$1" "$2" "[byte 0x68, 0x69]" "${3:-@a{sv\} {\}}"
}
gdev() { # method args...: a device call through gdbus
	gdbus call --session --timeout 30 --dest "$KMX_NAME" --object-path "$DEV" \
		--method "org.keymux.Keystore1.Device.$1" "${@:2}"
}
details() { kmx_prop "$DEV" org.keymux.Keystore1.Device Details; }
da_counter() { details | sed -n 's/.*"lockout-counter" u \([0-9]*\).*/\1/p'; }
da_counter_is() { [ "$(da_counter)" = "$1" ]; }
verify_p256() { # key path: a signature with it verifies
	sign "$1" ecdsa-sha256 msg
	openssl dgst -sha256 -verify "$2" -signature msg.sig msg >/dev/null || fail "${3:-signature} does not verify"
}
lockout_seconds() { details | sed -n 's/.*"lockout-recovery-seconds" u \([0-9]*\).*/\1/p'; }
